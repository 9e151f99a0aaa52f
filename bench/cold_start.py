"""Cold-start import time of each handler, as Lambda runs a SAM build: no .pyc anywhere.

Each measurement is a fresh interpreter with an empty PYTHONPYCACHEPREFIX, so every module
(boto3, pydantic, pynamodb, powertools, aigc) is compiled from source, like the first
invocation of a new Lambda instance. Reports the median of N runs per handler.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ["api", "provider_submit", "provider_poll", "store_results", "refund", "s3_upload", "reconcile"]
PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - start) * 1000)
"""
FAKE_ENV = {
    "POINTS_TABLE": "p", "TASKS_TABLE": "t", "IDEMPOTENCY_TABLE": "i", "RESULTS_BUCKET": "b",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x", "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}


def measure(handler: str, runs: int, cold: bool) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, **FAKE_ENV, "PYTHONPATH": str(ROOT / "layers" / "common")}
            if cold:
                env.update(PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="1")
            out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "functions" / handler / "app.py")],
                                 env=env, capture_output=True, text=True, check=True)
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results = {h: {"cold_ms": round(measure(h, args.runs, True)), "warm_ms": round(measure(h, args.runs, False))}
               for h in HANDLERS}
    print(json.dumps({"python": sys.version.split()[0], "runs": args.runs, "import_ms": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
