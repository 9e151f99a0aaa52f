"""Lateness of completion by job length: when the user sees `completed` minus when the provider finished.

`python -m bench.latency [--lengths 3,10,21,30,45,90] [--repeat 3]`

Runs the local stack (`python -m local`, real waits, the simulator with room for every job) and
submits outpainting jobs of the given lengths (the simulator's `sim_seconds` directive). A warm-up
round (one job per length) lets the workflow learn the model's durations, as it would in
production; then `--repeat` jobs per length run at once. For each job: lateness = our
`completed_at` minus the simulator's `end_time`, the execution's state transitions and Lambda
invocations, and the provider queries it made.
"""
from __future__ import annotations

import argparse
import time

from bench.stack import LocalStack, percentile

USER = "bench-latency"


def _parse_time(value) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def run_round(stack: LocalStack, lengths: list[float], repeat: int) -> list[dict]:
    submitted = [(seconds, stack.outpaint(USER, seconds)) for seconds in lengths for _ in range(repeat)]
    pending = {task_no for _, task_no in submitted}
    deadline = time.monotonic() + max(lengths) * 3 + 120
    while pending and time.monotonic() < deadline:
        for task_no in list(pending):
            if stack.record(task_no)["status"] in ("completed", "failed", "cancelled"):
                pending.discard(task_no)
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"{len(pending)} tasks did not finish")
    rows = []
    for seconds, task_no in submitted:
        record = stack.record(task_no)
        if record["status"] != "completed":
            raise RuntimeError(f"{task_no} ended {record['status']}: {record.get('error_message')}")
        submit, end = stack.provider_seconds(record["provider_task_id"])
        costs = stack.costs(task_no)
        completed = _parse_time(record["completed_at"])
        rows.append({"length": seconds, "lateness": completed - end, "provider_seconds": end - submit,
                     "seen": costs["last_exit"]["PollProvider"] - end, **costs})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="3,10,21,30,45,90")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true", help="measure with the catalog prior only")
    args = parser.parse_args(argv)
    lengths = [float(x) for x in args.lengths.split(",")]
    with LocalStack(params={"SubmitRateLimitPerMinute": 1000}, sim={"max_concurrency": 100}) as stack:
        stack.grant(USER, 1_000_000)
        if not args.no_warmup:
            run_round(stack, lengths, 1)
        queries_before = stack.sim_stats()["queries"]
        started = time.monotonic()
        rows = run_round(stack, lengths, args.repeat)
        wall = time.monotonic() - started
        queries = stack.sim_stats()["queries"] - queries_before
    print(f"lateness (completed seen - provider end), {args.repeat} jobs per length at once, "
          f"{'after a warm-up round' if not args.no_warmup else 'catalog prior only'}; wall {wall:.0f} s")
    print("| job length | lateness p50 | lateness p95 | max | of which: poll saw it (p50) | transitions (max) "
          "| Lambda invocations (max) |")
    print("|---|---|---|---|---|---|---|")
    for length in lengths:
        mine = [r for r in rows if r["length"] == length]
        late = [r["lateness"] for r in mine]
        seen = [r["seen"] for r in mine]
        print(f"| {length:g} s | {percentile(late, 0.5):.2f} s | {percentile(late, 0.95):.2f} s | {max(late):.2f} s "
              f"| {percentile(seen, 0.5):.2f} s | {max(r['transitions'] for r in mine)} | {max(r['invocations'] for r in mine)} |")
    late = [r["lateness"] for r in rows]
    print(f"all {len(rows)} jobs: p95 lateness {percentile(late, 0.95):.2f} s; provider queries "
          f"{queries / len(rows):.1f} per job ({queries / sum(r['provider_seconds'] for r in rows):.2f} per job-second)")
    return rows


if __name__ == "__main__":
    main()
