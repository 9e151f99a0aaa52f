"""The business numbers' pure rules (aigc.domain.stats): the duration histogram and its percentiles,
which change of a task counts as what, the buckets of a range."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from aigc.core.errors import BadRequest
from aigc.domain import stats
from aigc.store.db import TaskItem

T0 = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_each_bucket_is_a_fixed_ratio_wide_and_holds_its_upper_edge():
    for seconds in (0.3, 1, 1.5, 2, 7.9, 30, 59.99, 600, 3600):
        index = stats.histogram_index(seconds)
        assert stats.upper_edge(index - 1) < seconds <= stats.upper_edge(index) * (1 + 1e-9), seconds
    assert stats.histogram_index(0) == stats.histogram_index(0.01) == stats.LOWEST
    assert stats.histogram_index(10 ** 9) == stats.HIGHEST
    assert stats.upper_edge(1) / stats.upper_edge(0) == pytest.approx(stats.RESOLUTION) == pytest.approx(1.1892, abs=1e-4)


def test_percentiles_are_never_below_the_true_value_and_at_most_one_bucket_above():
    rng = random.Random(7)
    for _ in range(50):
        values = [rng.lognormvariate(3, 1) for _ in range(rng.randint(1, 300))]
        histogram: dict[int, int] = {}
        for value in values:
            index = stats.histogram_index(value)
            histogram[index] = histogram.get(index, 0) + 1
        ordered = sorted(values)
        for q in (0.5, 0.95):
            true = ordered[max(1, math.ceil(q * len(ordered))) - 1]  # nearest rank
            estimate = stats.percentile(histogram, q)
            assert true <= estimate * (1 + 1e-9) and estimate < true * stats.RESOLUTION * (1 + 1e-6), (q, true, estimate)
    assert stats.percentile({}, 0.5) is None


def _task(**fields) -> TaskItem:
    base = dict(user_id="alice", created_at="2031-01-02T03:04:05.000Z", model_name="m", task_type="outpainting",
                provider="p", provider_model="pm", status="queued", points_cost=5, expected_seconds=10,
                deadline_at=T0 + timedelta(hours=1), refunded=False)
    return TaskItem("TASK-1", **{**base, **fields})


def _flat(counts) -> dict:
    out: dict = {}
    for count in counts:
        for name, value in count.counters.items():
            out[name] = out.get(name, 0) + value
    return out


def test_which_change_counts_as_what():
    created = _task()
    assert _flat(stats.task_counts(None, created, T0)) == {stats.CREATED: 1, stats.POINTS_DEBITED: 5}
    running = _task(status="processing", started_at=T0 + timedelta(seconds=5), provider_status="RUNNING")
    assert stats.task_counts(created, running, T0) == []  # progress counts nothing
    succeeded = _task(status="processing", started_at=T0 + timedelta(seconds=5), provider_status="SUCCEEDED",
                      updated_at=T0 + timedelta(seconds=35))
    assert _flat(stats.task_counts(running, succeeded, T0)) == {f"{stats.JOB_TIME}{stats.histogram_index(30)}": 1}
    done = _task(status="completed", started_at=T0 + timedelta(seconds=5), provider_status="SUCCEEDED",
                 completed_at=T0 + timedelta(seconds=40))
    assert _flat(stats.task_counts(succeeded, done, T0)) == {
        stats.COMPLETED: 1, f"{stats.TOTAL_TIME}{stats.histogram_index(40)}": 1}
    assert stats.task_counts(done, done, T0) == []  # a repeated write of the same ending
    held = _task(status="failed", hold_until=T0 + timedelta(hours=1), error_code="InternalError.Retryable")
    assert stats.task_counts(running, held, T0) == []  # not ended: it may still complete
    refunded = _task(status="failed", refunded=True, error_code="Timeout", completed_at=T0)
    assert _flat(stats.task_counts(held, refunded, T0)) == {stats.FAILED: 1, stats.ERROR + "Timeout": 1,
                                                             stats.REFUNDED: 1, stats.POINTS_REFUNDED: 5}
    cancelled = _task(status="cancelled", refunded=True, error_code="Cancelled", completed_at=T0)
    assert _flat(stats.task_counts(running, cancelled, T0)) == {stats.CANCELLED: 1, stats.REFUNDED: 1,
                                                                 stats.POINTS_REFUNDED: 5}
    sync = _task(status="processing", started_at=T0, provider_status="SUCCEEDED", updated_at=T0)
    assert stats.task_counts(created, sync, T0) == []  # a synchronous provider's job has no time of its own


def test_counts_are_dated_when_they_happened_and_keyed_by_hour_and_day():
    done = _task(status="completed", completed_at=T0 + timedelta(hours=2))
    (count,) = stats.task_counts(_task(status="processing"), done, T0)
    assert count.moment == T0 + timedelta(hours=2)
    shard = stats.shard_of("TASK-1")
    assert stats.counter_keys(count.moment, "m", shard) == [
        (f"H#2031-01#{shard}", "2031-01-02T05#m"), (f"D#2031#{shard}", "2031-01-02#m")]
    assert 0 <= shard < stats.SHARDS


def test_ledger_kinds_map_through_one_table():
    assert stats.ledger_counter("GRANT") == "ledger:granted"
    assert stats.ledger_counter("EXPIRE") == "ledger:expired"
    assert stats.ledger_counter("CLAWBACK") == "ledger:clawback"
    (count,) = stats.ledger_counts("EXPIRE", -7, "LOT-1", "2031-01-02T03:04:05.000Z#x", "TXN#x", T0)
    assert count.counters == {"ledger:expired": 7} and count.model == stats.ALL_MODELS and count.moment == T0


def test_the_buckets_of_a_range():
    starts = stats.bucket_range(T0, T0 + timedelta(hours=2), "hour")
    assert starts == [T0.replace(minute=0, second=0) + timedelta(hours=i) for i in range(3)]
    midnight = T0.replace(hour=0, minute=0, second=0)
    assert len(stats.bucket_range(midnight, midnight + timedelta(days=366), "day")) == 366
    with pytest.raises(BadRequest):
        stats.bucket_range(T0, T0 + timedelta(days=400), "day")
    start, end = stats.window(None, T0.replace(tzinfo=None), "day")
    assert end == T0 and start == T0 - timedelta(days=30)
