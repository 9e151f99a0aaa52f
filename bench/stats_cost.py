"""What one GET /admin/stats reads, after 100 and after 2,000 tasks: the counters versus a scan.

The template's tables in moto (with local/moto_dynamodb's atomic transactions, as the local stack
runs them); tasks made by the real rules (debit, provider job, completion or refund) for 50 users
and two models; their stream records, read from moto as the event source mapping would, fed to the
real consumer (aigc.flows.stats_feed). Then the stats of the day (bucket=hour, 24 buckets) and of
the month (bucket=day, 30 buckets) are read with aigc.domain.stats; "scan" is what counting the same
numbers from the tasks would read (a Scan of the tasks table). Items read is DynamoDB's ScannedCount.

    PYTHONPATH=layers/common:. python -m bench.stats_cost --tasks 100 2000
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from datetime import datetime, timedelta, timezone


def _reads():
    """Count items read (ScannedCount of Query and Scan) and requests made through pynamodb."""
    from pynamodb.connection.base import Connection

    counted = {"items": 0, "requests": 0}
    original = Connection._make_api_call

    def counting(self, operation_name, operation_kwargs):
        data = original(self, operation_name, operation_kwargs)
        if operation_name in ("Query", "Scan"):
            counted["requests"] += 1
            counted["items"] += int(data.get("ScannedCount", 0))
        return data

    Connection._make_api_call = counting
    return counted, lambda: setattr(Connection, "_make_api_call", original)


class _Stream:
    """A table's stream records not yet fed, read from moto in this process (as local/queues.py does)."""

    def __init__(self, table_name: str):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self.table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(table_name)
        self.position = self.table.stream_shard.starting_sequence_number

    def take(self) -> list[dict]:
        shard = self.table.stream_shard
        records = copy.deepcopy(shard.get(self.position, 100_000))
        self.position += len(records)
        for record in records:
            record["dynamodb"]["ApproximateCreationDateTime"] = record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
            record["eventSourceARN"] = f"{self.table.table_arn}/stream/{self.table.latest_stream_label}"
        return records


def _make_tasks(count: int, start: int) -> None:
    from aigc.core.catalog import get_model
    from aigc.core.vocab import JobStatus, TaskStatus
    from aigc.domain import points, tasks

    models = [get_model("wanx-v1"), get_model("image-out-painting")]
    for i in range(start, start + count):
        user, model = f"user{i % 50}", models[i % 2]
        task = tasks.new_task(user_id=user, model=model, prompt="p", negative_prompt=None, image_urls=[],
                              provider_parameters={}, effect=None, points_cost=1, task_deadline_seconds=600,
                              queue_timeout_seconds=1800)
        points.debit_for_new_task(task, rate_limit_per_minute=0)
        if i % 10 == 9:
            points.refund_task(task, status=TaskStatus.CANCELLED, error_code="Cancelled", error_message="cancelled")
            continue
        tasks.record_provider_job(task, f"job-{i}", JobStatus.RUNNING)
        if i % 10 in (7, 8):
            points.refund_task(task, status=TaskStatus.FAILED, error_code="InternalError.Algo", error_message="failed")
            continue
        tasks.record_provider_outputs(task, JobStatus.SUCCEEDED, ["https://x.aliyuncs.com/o.png"])
        tasks.complete(task, [f"results/{user}/{task.task_no}/1.png"], None)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[100, 2000], help="measure after each total")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    from moto import mock_aws

    from local import moto_dynamodb

    rows = []
    with mock_aws():
        undo_atomic = moto_dynamodb.install()
        try:
            from local.stack import deploy

            deploy(parameters={"JwtIssuer": "http://127.0.0.1/bench", "JwtAudience": "bench"})
            from aigc.domain import points, stats
            from aigc.flows import stats_feed
            from aigc.store.db import TaskItem

            for user in range(50):
                points.grant(f"user{user}", 10**6, "bench", grant_id=f"GRANT-bench-{user}", actor="bench")
            streams = [_Stream(os.environ["TASKS_TABLE"]), _Stream(os.environ["POINTS_TABLE"])]
            made, fed = 0, 0
            for total in sorted(args.tasks):
                _make_tasks(total - made, made)
                made = total
                started = time.perf_counter()
                records = [record for stream in streams for record in stream.take()]
                for i in range(0, len(records), 100):
                    stats_feed.handle_event({"Records": records[i:i + 100]}, None,
                                            tasks_table=os.environ["TASKS_TABLE"],
                                            points_table=os.environ["POINTS_TABLE"])
                fed += len(records)
                feed_ms = (time.perf_counter() - started) * 1000 / max(1, len(records))
                now = datetime.now(timezone.utc)
                counted, undo = _reads()
                try:
                    row = {"tasks": total, "records": fed, "feed_ms_per_record": round(feed_ms, 1)}
                    for bucket, span in (("hour", timedelta(hours=24)), ("day", timedelta(days=30))):
                        before = dict(counted)
                        started = time.perf_counter()
                        report = stats.read(now - span, now, bucket)
                        row[bucket] = {"buckets": len(report.buckets), "items": counted["items"] - before["items"],
                                       "queries": counted["requests"] - before["requests"],
                                       "ms": round((time.perf_counter() - started) * 1000, 1)}
                        created = sum(r.get(stats.CREATED) for b in report.buckets for r in b.models.values())
                        assert created == total, (created, total)
                    before = dict(counted)
                    scanned = sum(1 for _ in TaskItem.scan())
                    row["scan"] = {"items": counted["items"] - before["items"], "tasks": scanned}
                finally:
                    undo()
                rows.append(row)
                print(f"after {total} tasks ({fed} stream records, {row['feed_ms_per_record']} ms each to count): "
                      f"stats of the day by hour: {row['hour']['items']} items in {row['hour']['queries']} queries "
                      f"({row['hour']['ms']} ms); of 30 days by day: {row['day']['items']} items in "
                      f"{row['day']['queries']} queries ({row['day']['ms']} ms); a scan of the tasks: "
                      f"{row['scan']['items']} items", flush=True)
        finally:
            undo_atomic()
    return rows


if __name__ == "__main__":
    main()
