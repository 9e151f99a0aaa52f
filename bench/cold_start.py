"""Cold-start import time of each handler, without and with bytecode, as ratios to `import boto3`.

- without bytecode: a fresh interpreter with an empty PYTHONPYCACHEPREFIX, so every module
  (boto3, pydantic, pynamodb, powertools, aigc) is compiled from source, as a layer built
  without .pyc does on every cold start (Lambda cannot write into /opt);
- with bytecode: the same import with the .pyc in place, as the layer `make build` compiles with
  a Python 3.13 ships them.

`import boto3` is measured the same two ways in the same run: the ratios compare across machines
and loads, the milliseconds do not. Times are the importing process's CPU time (compiling and
executing modules is CPU work), so other processes sharing the cores do not inflate them; the
median of N runs per target.
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
HANDLERS = ["api", "provider_submit", "provider_poll", "store_results", "refund", "s3_upload", "reconcile", "webhooks"]
PROBE = """
import importlib.util, sys, time
start = time.process_time()
if sys.argv[1] == "boto3":
    import boto3
else:
    spec = importlib.util.spec_from_file_location("app", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print((time.process_time() - start) * 1000)
"""
BOTO3 = "boto3"
FAKE_ENV = {
    "POINTS_TABLE": "p", "TASKS_TABLE": "t", "IDEMPOTENCY_TABLE": "i", "RESULTS_BUCKET": "b",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x", "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}


def _target(handler: str) -> str:
    return BOTO3 if handler == BOTO3 else str(ROOT / "functions" / handler / "app.py")


def measure(handler: str, runs: int, cold: bool) -> float:
    if not cold:  # make sure the .pyc exist (an untimed run writes any that are missing)
        _run(handler, cold=False)
    return statistics.median(_run(handler, cold) for _ in range(runs))


def _run(handler: str, cold: bool) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, **FAKE_ENV, "PYTHONPATH": str(ROOT / "layers" / "common")}
        if cold:
            env.update(PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run([sys.executable, "-c", PROBE, _target(handler)],
                             env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    boto3_ms = {"no_pyc": measure(BOTO3, args.runs, True), "pyc": measure(BOTO3, args.runs, False)}
    results = {}
    for handler in HANDLERS:
        no_pyc, pyc = measure(handler, args.runs, True), measure(handler, args.runs, False)
        results[handler] = {
            "no_pyc_ms": round(no_pyc), "pyc_ms": round(pyc),
            "no_pyc_x_boto3": round(no_pyc / boto3_ms["no_pyc"], 2),  # both compiled from source
            "pyc_x_boto3": round(pyc / boto3_ms["pyc"], 2),  # both from bytecode
            "no_pyc_over_pyc": round(no_pyc / pyc, 2),
        }
    print(json.dumps({"python": sys.version.split()[0], "runs": args.runs,
                      "boto3_ms": {k: round(v) for k, v in boto3_ms.items()}, "import": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
