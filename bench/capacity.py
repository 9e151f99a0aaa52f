"""Draining a burst through the provider quota: N tasks of S seconds on K keys of quota C.

`python -m bench.capacity [--tasks 30] [--seconds 20] [--quota 2] [--keys 1]`

Runs the local stack (`python -m local`, real waits; `--provider-keys dashscope=K`) with the outpainting
pool's per-account concurrency and the simulator's per-key `max_concurrency` both set to C, submits N
outpainting jobs of S seconds at once over HTTP (as `make dev` users would), and waits until every task
is settled. Reports the drain time (first submit to last completion) against the ideal N*S/(K*C), the
simulator's refusals (429) and peak concurrency (per key), how many tasks completed or were refunded,
FIFO order, and the state transitions and Lambda invocations per task read from the execution histories.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from bench.stack import LocalStack

USER = "bench-capacity"
POOL = "dashscope:image-out-painting"


def _epoch(value) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--quota", type=int, default=2, help="jobs at once per key")
    parser.add_argument("--keys", type=int, default=1, help="provider accounts (keys)")
    args = parser.parse_args(argv)
    slots = args.quota * args.keys
    params = {"SubmitRateLimitPerMinute": 1000, "ProviderCapacity": json.dumps({POOL: {"concurrency": args.quota}})}
    with LocalStack(params=params, sim={"max_concurrency": args.quota}, provider_keys=args.keys) as stack:
        stack.grant(USER, 100_000)
        started = time.time()
        with ThreadPoolExecutor(max_workers=4) as pool:
            task_nos = list(pool.map(lambda _: stack.outpaint(USER, args.seconds), range(args.tasks)))
        pending = set(task_nos)
        give_up = time.monotonic() + args.tasks * args.seconds / slots * 3 + 300
        while pending and time.monotonic() < give_up:
            for task_no in list(pending):
                if stack.record(task_no)["status"] in ("completed", "failed", "cancelled"):
                    pending.discard(task_no)
            time.sleep(1)
        records = {t: stack.record(t) for t in task_nos}
        stats = stack.sim_stats()
        costs = {t: stack.costs(t) for t in task_nos}
    done = [r for r in records.values() if r["status"] == "completed"]
    refunded = [r for r in records.values() if r.get("refunded")]
    drain = max(_epoch(r["completed_at"]) for r in done) - started if done else float("nan")
    ideal = args.tasks * args.seconds / slots
    by_created = sorted(task_nos, key=lambda t: records[t]["created_at"])
    by_start = sorted((t for t in task_nos if records[t].get("started_at")), key=lambda t: _epoch(records[t]["started_at"]))
    # Inversions beyond the quota's width: with C slots, up to C tasks start at the same moment.
    position = {t: i for i, t in enumerate(by_created)}
    out_of_order = sum(1 for i, t in enumerate(by_start) if abs(position[t] - i) > slots)
    transitions = [c["transitions"] for c in costs.values()]
    invocations = [c["invocations"] for c in costs.values()]
    waited = sum(1 for c in costs.values() if "WaitForSlot" in c["states"])
    result = {
        "tasks": args.tasks, "seconds": args.seconds, "quota": args.quota, "keys": args.keys,
        "peak_per_key": {key: account["peak_concurrency"] for key, account in sorted(stats.get("by_key", {}).items())},
        "completed": len(done), "refunded": len(refunded), "unfinished": len(pending),
        "drain_s": round(drain, 1), "ideal_s": ideal, "ratio": round(drain / ideal, 3),
        "limit_s": 1.2 * ideal + 10, "refused_429": stats["refused"], "peak_concurrency": stats["peak_concurrency"],
        "waited_in_queue": waited, "out_of_fifo_order": out_of_order,
        "transitions_mean": round(statistics.mean(transitions), 1), "transitions_max": max(transitions),
        "invocations_mean": round(statistics.mean(invocations), 1), "invocations_max": max(invocations),
    }
    print(f"{args.tasks} outpainting tasks of {args.seconds:g} s on {args.keys} key(s) of quota {args.quota} "
          "(local stack, real waits)")
    print("| completed | refunded | drain | ideal N*S/(K*C) | drain / ideal | limit 1.2 x ideal + 10 s | 429s | peak at provider "
          "| waited in queue | out of FIFO order | transitions / task (mean, max) | invocations / task (mean, max) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(done)}/{args.tasks} | {len(refunded)} | {drain:.1f} s | {ideal:.0f} s | {drain / ideal:.3f} "
          f"| {1.2 * ideal + 10:.0f} s | {stats['refused']} | {stats['peak_concurrency']} per key "
          f"({'/'.join(str(v) for v in result['peak_per_key'].values())}) | {waited} | {out_of_order} "
          f"| {result['transitions_mean']}, {result['transitions_max']} | {result['invocations_mean']}, {result['invocations_max']} |")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
