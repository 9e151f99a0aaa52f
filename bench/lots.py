"""Submit latency with 1 lot versus 20 lots on the account (issue 15): the debit reads the lots in spending order
and takes from them in the same one transaction as the task, so 20 lots must not make a submit slower.

`python -m bench.lots [--submits 60] [--debits 200]`

1. Over HTTP on the local stack (`python -m local`, as `make dev`): two users, one holding 1 lot, one holding
   20 (10 promotional and 10 paid, expiring from 10 days to never), submit outpainting tasks one at a time,
   interleaved (the same run, the same machine load), `--submits` each. The stack's workflow runs every
   task to completion in the background for both alike.
2. In process on moto's DynamoDB (the domain tier's tables from template.yaml): `--debits` debits for each
   account, timed alone, and the DynamoDB requests each one makes (the debit must stay one
   TransactWriteItems, whatever the lots).

Prints p50/p95/max per account and the p95 ratio (goal: <= 1.3).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter

from bench.stack import LocalStack, percentile

LOTS = 20


def _lot_grants(user: str, count: int) -> list[dict]:
    """`count` grants: 1 lot of 20000, or 10 promotional + 10 paid lots of 1000 with different expiries."""
    if count == 1:
        return [{"userId": user, "amount": 20_000, "reason": "bench: one lot", "category": "paid"}]
    grants = []
    for n in range(count):
        category = "promotional" if n < count // 2 else "paid"
        days = None if n % 4 == 3 else 10 * (n + 1)
        grants.append({"userId": user, "amount": 1000, "reason": f"bench: lot {n}", "category": category,
                       **({"validDays": days} if days else {})})
    return grants


def over_http(submits: int) -> dict[int, list[float]]:
    timings: dict[int, list[float]] = {1: [], LOTS: []}
    with LocalStack(params={"SubmitRateLimitPerMinute": 100000}, sim={"max_concurrency": 100,
                                                                       "latency_min": 0.2, "latency_max": 0.4},
                    wait_scale=0.05) as stack:
        users = {count: f"bench-lots-{count}" for count in timings}
        for count, user in users.items():
            for body in _lot_grants(user, count):
                stack.call("POST", "/admin/points/grant", "bench-admin", admin=True, json=body)
            shown = stack.call("GET", "/user/points/consumption/balance", user)
            assert len(shown["lots"]) == count, shown
        url = f"{stack.sim_url}/samples/bench.png?w=64&h=64"
        body = {"modelName": "image-out-painting", "imageUrl": url, "parameters": {"xScale": 1.5}}
        for user in users.values():  # warm both paths once
            stack.call("POST", "/user/ai/tasks/submit", user, json=body)
        for _ in range(submits):
            for count, user in users.items():
                started = time.perf_counter()
                stack.call("POST", "/user/ai/tasks/submit", user, json=body)
                timings[count].append(time.perf_counter() - started)
        for count, user in users.items():
            shown = stack.call("GET", "/user/points/consumption/balance", user)
            assert len(shown["lots"]) == count and shown["balance"] == 20_000 - 10 * (submits + 1), shown
    return timings


def in_process(debits: int) -> tuple[dict[int, list[float]], dict[int, Counter]]:
    from moto import mock_aws
    from pynamodb.connection.base import Connection

    from aigc.core.catalog import get_model
    from aigc.core.config import get_settings
    from aigc.domain import points, tasks
    from local import moto_dynamodb
    from tests.domain.support import ENVIRONMENT, clear_caches, create_tables

    os.environ.update(ENVIRONMENT)
    clear_caches()
    timings: dict[int, list[float]] = {1: [], LOTS: []}
    calls: dict[int, Counter] = {1: Counter(), LOTS: Counter()}
    recording: list[Counter | None] = [None]
    dispatch = Connection.dispatch

    def counted(self, operation_name, operation_kwargs, *args, **kwargs):
        if recording[0] is not None:
            recording[0][operation_name] += 1
        return dispatch(self, operation_name, operation_kwargs, *args, **kwargs)

    Connection.dispatch = counted
    undo = moto_dynamodb.install()  # as the local stack runs moto: atomic, and no table copy per transaction
    try:
        with mock_aws():
            create_tables()
            settings = get_settings()
            spec = get_model("image-out-painting")
            for count in timings:
                user = f"bench-lots-{count}"
                for n, body in enumerate(_lot_grants(user, count)):
                    points.grant(user, body["amount"], body["reason"], grant_id=f"G-{count}-{n}", actor="bench",
                                 category=body["category"], valid_days=body.get("validDays"))
            for round_ in range(debits + 1):
                for count in timings:
                    task = tasks.new_task(user_id=f"bench-lots-{count}", model=spec, prompt=None,
                                          negative_prompt=None, image_urls=["https://example.com/a.png"],
                                          provider_parameters={}, effect=None, points_cost=10,
                                          task_deadline_seconds=settings.task_deadline_seconds,
                                          queue_timeout_seconds=settings.queue_timeout_seconds)
                    recording[0] = calls[count] if round_ else None  # round 0 warms up
                    started = time.perf_counter()
                    points.debit_for_new_task(task, rate_limit_per_minute=0)
                    if round_:
                        timings[count].append(time.perf_counter() - started)
                    recording[0] = None
    finally:
        Connection.dispatch = dispatch
        undo()
    return timings, calls


def _report(title: str, timings: dict[int, list[float]]) -> float:
    print(title)
    print("| lots on the account | submits | p50 | p95 | max | mean |")
    print("|---|---|---|---|---|---|")
    for count, values in timings.items():
        ms = [v * 1000 for v in values]
        print(f"| {count} | {len(ms)} | {statistics.median(ms):.1f} ms | {percentile(ms, 0.95):.1f} ms | "
              f"{max(ms):.1f} ms | {statistics.mean(ms):.1f} ms |")
    ratio = percentile(timings[LOTS], 0.95) / percentile(timings[1], 0.95)
    print(f"p95 ratio (20 lots / 1 lot): {ratio:.2f} (goal <= 1.3)\n")
    return ratio


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=60, help="HTTP submits per account (0: skip)")
    parser.add_argument("--debits", type=int, default=200, help="in-process debits per account (0: skip)")
    args = parser.parse_args(argv)
    result = {}
    if args.debits:
        timings, calls = in_process(args.debits)
        result["debit_ratio"] = _report("In process (moto DynamoDB), the debit alone:", timings)
        for count, counter in calls.items():
            per = {name: round(n / args.debits, 2) for name, n in sorted(counter.items())}
            print(f"DynamoDB requests per debit, {count} lot(s): {per}")
            assert per.get("TransactWriteItems") == 1.0, per
        print()
    if args.submits:
        result["submit_ratio"] = _report("Over HTTP (local stack), POST /user/ai/tasks/submit:", over_http(args.submits))
    return result


if __name__ == "__main__":
    main()
