"""What one list page reads from DynamoDB: counting the partition (before) versus the counters.

A user with N tasks (each created by the real debit transaction) on the template's tables in moto.
"before" is the removed code path: Query(Select=COUNT) over the user's partition for `total`, then
the page. "after" is `tasks.list_user_tasks` / `points.ledger_page`: the page (size + 1 items) and
one GetItem of the counters. Items read are DynamoDB's own ScannedCount (what read capacity bills).
"""
from __future__ import annotations

import argparse
import os
import time
from itertools import islice


def _reads():
    """Sum ScannedCount of every Query (and 1 per GetItem) made through pynamodb."""
    from pynamodb.connection.base import Connection

    counted = {"items": 0, "requests": 0}
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        data = original(self, operation_name, operation_kwargs)
        counted["requests"] += 1
        counted["items"] += int(data.get("ScannedCount", 0)) if operation_name == "Query" else int("Item" in data)
        return data

    Connection._make_api_call = counting
    return counted, lambda: setattr(Connection, "_make_api_call", original)


def _measure(counted, call, repeat: int) -> tuple[float, float]:
    before = counted["items"]
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (counted["items"] - before) / repeat, (time.perf_counter() - start) * 1000 / repeat


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    from moto import mock_aws

    with mock_aws():
        from local.stack import deploy

        deploy(parameters={"JwtIssuer": "http://127.0.0.1/bench", "JwtAudience": "bench"})
        from aigc.core.catalog import get_model
        from aigc.domain import points, tasks
        from aigc.store.db import PointsItem, TaskItem

        model = get_model("wanx-v1")
        points.grant("bench", 10**9, "bench", grant_id="GRANT-bench", actor="bench")
        for _ in range(args.tasks):
            task = tasks.new_task(user_id="bench", model=model, prompt="p", negative_prompt=None, image_urls=[],
                                  provider_parameters={}, effect=None, points_cost=1,
                                  task_deadline_seconds=600, queue_timeout_seconds=1800)
            points.debit_for_new_task(task, rate_limit_per_minute=0)
        counted, undo = _reads()
        try:
            def tasks_before():
                TaskItem.count("bench", index_name="UserTasks")
                list(islice(TaskItem.user_tasks.query("bench", scan_index_forward=False), args.size))

            def ledger_before():
                PointsItem.count("bench", index_name="LedgerByTime")
                list(islice(PointsItem.ledger_by_time.query("bench", scan_index_forward=False), args.size))

            rows = {
                "tasks": (_measure(counted, tasks_before, args.repeat), _measure(counted, lambda: tasks.list_user_tasks(
                    "bench", page=1, size=args.size, task_type=None, status=None,
                    total=points.task_total("bench", None)), args.repeat)),
                "ledger": (_measure(counted, ledger_before, args.repeat), _measure(
                    counted, lambda: points.ledger_page("bench", 1, args.size), args.repeat)),
            }
            page = tasks.list_user_tasks("bench", page=1, size=args.size, task_type=None, status=None,
                                         total=points.task_total("bench", None))
            assert page.total == args.tasks and len(page.items) == args.size
        finally:
            undo()
    print(f"list page of {args.size} for a user with {args.tasks} tasks ({args.tasks + 1} ledger entries), "
          f"mean of {args.repeat}:")
    for name, ((items_b, ms_b), (items_a, ms_a)) in rows.items():
        print(f"  {name}: items read {items_b:.0f} -> {items_a:.0f} ({items_b / items_a:.0f}x fewer); "
              f"time {ms_b:.1f} ms -> {ms_a:.1f} ms ({ms_b / ms_a:.1f}x)")
    return rows


if __name__ == "__main__":
    main()
