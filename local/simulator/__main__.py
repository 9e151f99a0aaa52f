"""python -m local.simulator --port 8090 [--host 0.0.0.0] [--latency-min 2 --latency-max 4] ..."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from .server import SimConfig, start_simulator


def main(argv: list[str] | None = None) -> None:
    defaults = SimConfig()
    p = argparse.ArgumentParser(prog="python -m local.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--dashscope-api-key", default=defaults.dashscope_api_key)
    p.add_argument("--openai-api-key", default=defaults.openai_api_key)
    p.add_argument("--latency-min", type=float, default=defaults.latency_min)
    p.add_argument("--latency-max", type=float, default=defaults.latency_max)
    p.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
    p.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency)
    p.add_argument("--result-ttl-seconds", type=float, default=defaults.result_ttl_seconds)
    p.add_argument("--public-url", default=None, help="base URL written into result links")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {k: v for k, v in vars(args).items() if k not in ("host", "port")}
    sim = start_simulator(args.host, args.port, quiet=False, **config)
    print(f"provider simulator listening on {sim.url}", flush=True)
    print(json.dumps(sim.config.as_dict(), indent=2), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
