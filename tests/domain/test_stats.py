"""Business numbers (aigc.domain.stats, aigc.flows.stats_feed) on moto's DynamoDB: the tables' real
stream records, made by the real ledger and task rules, fed to the consumer as Lambda would; the
numbers read back are exact, a redelivered batch counts once, and the read never touches tasks."""
from __future__ import annotations

import copy
import importlib
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from aigc.api.admin import stats_view
from aigc.core.vocab import JobStatus, TaskStatus
from aigc.domain import points, settlement, stats, tasks
from aigc.flows import stats_feed
from aigc.store.db import PointsItem, StatsItem, TaskItem
from tests.domain.support import REGION, TEMPLATE, grant, reload, rejected_upload, submitted

WANX = "wanx-v1"
T0 = datetime(2031, 3, 4, 10, 5, tzinfo=timezone.utc)


@pytest.fixture
def at(clock, monkeypatch):
    """Freeze the domain's clock at a moment (the ledger's lots module too, where it exists)."""
    for name in ("aigc.domain.lots", "aigc.domain.settlement"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "utcnow"):
            monkeypatch.setattr(module, "utcnow", clock.now)

    def freeze(seconds: float = 0.0) -> datetime:
        moment = T0 + timedelta(seconds=seconds)
        clock.freeze(moment)
        return moment

    freeze()
    return freeze


class Streams:
    """The tables' stream records not yet taken, in order, as Lambda's event source mapping hands them over
    (read from moto's backend, as local/queues.py does: moto's stream API is not implemented in mock mode)."""

    def __init__(self):
        self.taken: dict[str, int] = {}

    @staticmethod
    def _all(table_name: str) -> list[dict]:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
        shard = table.stream_shard
        records = copy.deepcopy(shard.get(shard.starting_sequence_number, len(shard.items) + 1))
        for record in records:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if isinstance(created, datetime):
                record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
            record["eventSourceARN"] = f"{table.table_arn}/stream/{table.latest_stream_label}"
        return records

    def take(self, *models) -> list[dict]:
        out = []
        for model in models or (TaskItem, PointsItem):
            table = model.Meta.table_name
            records = self._all(table)
            out += records[self.taken.get(table, 0):]
            self.taken[table] = len(records)
        return out


@pytest.fixture
def streams() -> Streams:
    return Streams()


def feed(records: list[dict]) -> dict:
    return stats_feed.handle_event({"Records": records}, None, tasks_table=os.environ["TASKS_TABLE"],
                                   points_table=os.environ["POINTS_TABLE"])


def numbers(bucket: str = "hour", start: datetime = T0.replace(minute=0), hours: int = 1) -> dict:
    return stats_view(stats.read(start, start + timedelta(hours=hours), bucket))


def completed(task: TaskItem, *, job_start: float, job_end: float, end: float, at) -> None:
    at(job_start)
    assert tasks.record_provider_job(task, "job-1", JobStatus.RUNNING)
    at(job_end)
    assert tasks.record_provider_outputs(task, JobStatus.SUCCEEDED, ["https://x.aliyuncs.com/o.png"])
    at(end)
    assert tasks.complete(task, [f"results/{task.user_id}/{task.task_no}/1.png"], None)


def failed(task: TaskItem, code: str) -> None:
    assert points.refund_task(task, status=TaskStatus.FAILED, error_code=code, error_message="it failed")


def the_day(at, streams):
    """alice: two outpaintings completed (one held for a redrive first), one failed; bob: a wanx task
    cancelled; carol: an upload rejected; grants to alice and bob."""
    one = submitted("alice")
    completed(one, job_start=10, job_end=40, end=50, at=at)
    at(60)
    two = submitted("alice")
    at(61)
    assert tasks.hold(two, "a bug", 3600)
    assert tasks.resume_if_held(reload(two))
    completed(reload(two), job_start=70, job_end=130, end=140, at=at)
    at(200)
    three = submitted("alice")
    failed(three, "InternalError.Algo")
    four = submitted("bob", WANX)
    at(230)
    settlement.cancel_task("bob", four.task_no)
    assert points.save_uncharged_task(rejected_upload("carol"))
    return [one, two, three, four]


def test_the_numbers_are_exact_and_come_from_the_streams_alone(at, streams):
    made = the_day(at, streams)
    result = feed(streams.take())
    assert result == {"batchItemFailures": []}

    report = numbers()
    (bucket,) = report["buckets"]
    assert bucket["start"] == "2031-03-04T10:00:00Z" and bucket["end"] == "2031-03-04T11:00:00Z"
    models = {m["modelName"]: m for m in bucket["models"]}
    outpainting, wanx = models["image-out-painting"], models[WANX]
    cost = int(made[0].points_cost)
    assert (outpainting["created"], outpainting["completed"], outpainting["failed"], outpainting["cancelled"],
            outpainting["refunded"]) == (4, 2, 2, 0, 1)  # 3 of alice's + carol's rejected upload
    assert outpainting["successRate"] == 0.5 and outpainting["refundRate"] == 0.25
    assert outpainting["topErrors"] == [{"code": "InternalError.Algo", "count": 1},
                                        {"code": "Rejected.CorruptImage", "count": 1}]
    assert outpainting["pointsDebited"] == 3 * cost and outpainting["pointsRefunded"] == cost
    assert outpainting["activeUsers"] == 2  # alice and carol
    assert outpainting["totalSeconds"]["count"] == 2 and outpainting["jobSeconds"]["count"] == 2
    # submit -> completion: 50 s and 80 s; the provider's jobs: 30 s and 60 s (upper edges of 2^(1/4) buckets)
    assert 50 <= outpainting["totalSeconds"]["p50"] < 50 * stats.RESOLUTION
    assert 80 <= outpainting["totalSeconds"]["p95"] < 80 * stats.RESOLUTION
    assert 30 <= outpainting["jobSeconds"]["p50"] < 30 * stats.RESOLUTION
    assert 60 <= outpainting["jobSeconds"]["p95"] < 60 * stats.RESOLUTION
    assert (wanx["created"], wanx["cancelled"], wanx["refunded"], wanx["successRate"], wanx["refundRate"]) == (
        1, 1, 1, None, 1.0)
    assert wanx["activeUsers"] == 1
    everyone = bucket["tasks"]
    assert (everyone["created"], everyone["completed"], everyone["failed"], everyone["cancelled"],
            everyone["refunded"], everyone["activeUsers"]) == (5, 2, 2, 1, 2, 3)
    wanx_cost = int(made[3].points_cost)
    assert bucket["points"] == {"debited": 3 * cost + wanx_cost, "refunded": cost + wanx_cost,
                                "granted": 3 * cost + wanx_cost, "bought": 0, "expired": 0}
    assert report["totals"]["tasks"] == {**everyone}
    assert report["cost"]["itemsRead"] <= 3 * stats.SHARDS  # two models and the ALL row, at most


def test_a_redelivered_batch_counts_once(at, streams):
    the_day(at, streams)
    records = streams.take()
    feed(records)
    once = numbers()
    items = StatsItem.scan()
    counters = sorted((item.pk, item.sk, sorted(item.counters.items())) for item in items
                      if not item.pk.startswith(("REC#", "USER#")))
    feed(records)  # Lambda retries the whole batch
    feed(records[len(records) // 2:])  # or a bisected half of it
    for record in records[:5]:
        assert stats_feed.count_record(record, tasks_table=os.environ["TASKS_TABLE"],
                                       points_table=os.environ["POINTS_TABLE"]) is False
    assert numbers() == once
    assert counters == sorted((item.pk, item.sk, sorted(item.counters.items())) for item in StatsItem.scan()
                              if not item.pk.startswith(("REC#", "USER#")))


def test_counts_land_in_the_hour_and_day_they_happened(at, streams):
    task = submitted("alice")
    at(3600)  # the next hour
    completed(task, job_start=3600, job_end=3620, end=3630, at=at)
    feed(streams.take(TaskItem))
    first, second = numbers(hours=2)["buckets"]
    assert [m["created"] for m in first["models"]] == [1] and first["models"][0]["completed"] == 0
    assert [m["completed"] for m in second["models"]] == [1] and second["models"][0]["created"] == 0
    assert second["models"][0]["totalSeconds"]["p50"] >= 3630
    (day,) = numbers("day", T0.replace(hour=0, minute=0), hours=24)["buckets"]
    assert (day["tasks"]["created"], day["tasks"]["completed"], day["tasks"]["successRate"]) == (1, 1, 1.0)


def test_a_held_task_counts_as_failed_only_once_it_is_refunded(at, streams):
    task = submitted("alice")
    assert tasks.hold(task, "a bug", 3600)
    feed(streams.take())
    assert numbers()["buckets"][0]["tasks"]["failed"] == 0
    at(120)
    failed(reload(task), "InternalError.Retryable")  # the sweep refunds it when the window ends
    feed(streams.take())
    everyone = numbers()["buckets"][0]["tasks"]
    assert (everyone["failed"], everyone["refunded"], everyone["topErrors"]) == (
        1, 1, [{"code": "InternalError.Retryable", "count": 1}])


def test_every_ledger_kind_is_counted_and_an_unknown_one_under_its_own_name(at, streams):
    grant("alice", 40)
    for kind, amount in (("PURCHASE", 500), ("EXPIRE", -30), ("BONUS", 7)):
        # written raw, for a user without a balance (the books check balances against their ledgers)
        PointsItem("dora", f"TXN#ref-{kind}#{kind}", ledger_time=f"2031-03-04T10:20:00.000Z#ref-{kind}#{kind}",
                   kind=kind, amount=amount, ref=f"ref-{kind}", reason="test").save()
    feed(streams.take(PointsItem))
    assert numbers()["buckets"][0]["points"] == {"debited": 0, "refunded": 0, "granted": 40, "bought": 500,
                                                "expired": 30, "bonus": 7}
    assert stats.ledger_counter("PURCHASE") == "ledger:bought" and stats.ledger_counter("Weird kind!") == (
        "ledger:weird_kind_")


def test_active_users_are_distinct_per_hour_and_day_whatever_the_order(at, streams):
    for user, model, seconds in (("alice", WANX, 0), ("alice", WANX, 10), ("bob", WANX, 20),
                                 ("alice", "image-out-painting", 30), ("alice", WANX, 3600 + 5)):
        at(seconds)
        submitted(user, model)
    records = streams.take(TaskItem)
    feed(list(reversed(records)))
    feed(records)
    first, second = numbers(hours=2)["buckets"]
    assert first["tasks"]["activeUsers"] == 2
    assert {m["modelName"]: m["activeUsers"] for m in first["models"]} == {WANX: 2, "image-out-painting": 1}
    assert second["tasks"]["activeUsers"] == 1
    (day,) = numbers("day", T0.replace(hour=0, minute=0), hours=24)["buckets"]
    assert day["tasks"]["activeUsers"] == 2 and day["tasks"]["created"] == 5
    assert numbers(hours=2)["totals"]["tasks"]["activeUsers"] is None  # distinct users do not add up


def test_the_read_costs_the_same_however_many_tasks(at, streams):
    """Counter items only: a stats query reads at most buckets x (models + 1) x SHARDS items."""
    for i in range(3):
        submitted(f"user{i}")
    feed(streams.take())
    small = numbers()["cost"]
    for i in range(40):
        submitted(f"user{i}")
    feed(streams.take())
    large = numbers()["cost"]
    assert large["queries"] == small["queries"] == stats.SHARDS
    assert large["itemsRead"] <= 2 * stats.SHARDS  # one model and the ALL row, per shard


def test_only_the_records_the_template_filters_let_through_count(at, streams):
    """The mappings' FilterCriteria (template.yaml) drop what the rules would not count anyway."""
    the_day(at, streams)
    events = TEMPLATE["Resources"]["StatsFunction"]["Properties"]["Events"]
    patterns = {name: [json.loads(f["Pattern"]) for f in event["Properties"]["FilterCriteria"]["Filters"]]
                for name, event in events.items()}
    for name, model in (("TaskChanges", TaskItem), ("LedgerEntries", PointsItem)):
        for record in streams.take(model):
            if not any(_matches(pattern, record) for pattern in patterns[name]):
                assert stats_feed.count_record(record, tasks_table=os.environ["TASKS_TABLE"],
                                               points_table=os.environ["POINTS_TABLE"]) is False, record


def _matches(pattern, value) -> bool:
    """EventBridge-style content filtering, as far as the template uses it: lists of values or prefixes."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(key in value and _matches(rule, value[key])
                                               for key, rule in pattern.items())
    return any(value == option or (isinstance(option, dict) and str(value).startswith(option["prefix"]))
               for option in pattern)


def test_a_range_too_long_is_refused_naming_the_limit():
    from aigc.core.errors import BadRequest

    with pytest.raises(BadRequest, match="168 hour buckets"):
        stats.read(T0, T0 + timedelta(days=8), "hour")
    with pytest.raises(BadRequest, match="after from"):
        stats.read(T0, T0, "day")
