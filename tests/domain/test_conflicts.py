"""Two writes of one account at the same moment (DynamoDB's TransactionConflict): retried with jitter, and
when they keep meeting, a 429 the caller retries (aigc.core.errors.Busy), never a 5xx, and nothing written.

moto runs one request at a time, so the conflicts are DynamoDB's documented answers injected at the botocore
edge by the local fault switch (local/faults.py: `transaction-conflict`, `write-conflict`).
"""
from __future__ import annotations

import pytest

from aigc.core.errors import AppError, Busy
from aigc.core.vocab import LedgerKind, TaskStatus
from aigc.domain import points, settlement
from aigc.store import dynamo
from aigc.store.db import TaskItem
from local import faults
from tests.domain.support import grant, new_task, reload, snapshot, submitted


@pytest.fixture(autouse=True)
def switch(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(dynamo.time, "sleep", slept.append)  # the jittered waits, recorded instead of slept
    undo = faults.install()
    yield slept
    undo()


def conflicts(preset: str, times: int | None = None) -> faults.Fault:
    return faults.SWITCH.add(faults.parse_fault({"preset": preset, "times": times}))


def test_a_debit_that_meets_another_transaction_is_retried_and_charged_once(switch):
    grant("alice", 30)
    fault = conflicts("transaction-conflict", times=3)
    task = new_task("alice")

    points.debit_for_new_task(task, rate_limit_per_minute=5)

    assert fault.hits == 3  # three attempts met a transaction, the fourth wrote
    assert points.get_balance("alice") == 20
    assert [e.kind for e in points.ledger_entries("alice", task.task_no)] == [LedgerKind.DEBIT]
    assert len(switch) == 3 and all(0 <= s <= dynamo.CONFLICT_CAP_SECONDS for s in switch)


def test_a_debit_that_keeps_meeting_transactions_is_a_429_with_retry_after_and_writes_nothing(switch):
    grant("alice", 30)
    before = snapshot()
    fault = conflicts("transaction-conflict")

    with pytest.raises(Busy) as refused:
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=5)

    assert (refused.value.status, refused.value.retry_after) == (429, 1)
    assert "nothing was changed" in refused.value.message
    assert fault.hits == dynamo.CONFLICT_ATTEMPTS
    assert len(switch) == dynamo.CONFLICT_ATTEMPTS - 1  # a wait between attempts, none after the last
    faults.SWITCH.clear()
    assert snapshot() == before  # no task, no debit, no rate counter: the retry starts from nothing


def test_the_waits_grow_and_stay_under_the_cap():
    windows = [min(dynamo.CONFLICT_CAP_SECONDS, dynamo.CONFLICT_BASE_SECONDS * 2 ** attempt)
               for attempt in range(1, dynamo.CONFLICT_ATTEMPTS)]
    assert windows == sorted(windows) and windows[-1] <= dynamo.CONFLICT_CAP_SECONDS
    assert sum(windows) < 2.0  # the worst case stays well inside the API function's timeout
    draws = [dynamo.backoff(attempt) for attempt in range(1, dynamo.CONFLICT_ATTEMPTS) for _ in range(50)]
    assert min(draws) >= 0 and max(draws) <= dynamo.CONFLICT_CAP_SECONDS
    assert len({round(d, 6) for d in draws}) > 200  # jittered: two requests that met do not meet again in step


def test_a_cancel_that_keeps_meeting_transactions_refunds_nothing_and_a_retry_refunds_once():
    task = submitted("alice")
    conflicts("transaction-conflict")

    with pytest.raises(Busy):
        settlement.cancel_task("alice", task.task_no)

    assert reload(task).status != TaskStatus.CANCELLED and not reload(task).refunded
    assert points.get_balance("alice") == 0
    faults.SWITCH.clear()

    settlement.cancel_task("alice", task.task_no)
    assert reload(task).status == TaskStatus.CANCELLED
    assert points.get_balance("alice") == int(task.points_cost)
    assert sorted(e.kind for e in points.ledger_entries("alice", task.task_no)) == [LedgerKind.DEBIT, LedgerKind.REFUND]


def test_a_single_write_refused_by_a_transaction_in_flight_is_retried(switch):
    task = submitted("alice")
    fault = conflicts("write-conflict", times=2)

    written = dynamo.conditional(lambda: task.update(actions=[TaskItem.provider_status.set("RUNNING")],
                                                     condition=TaskItem.status == TaskStatus.QUEUED))

    assert written and fault.hits == 2 and len(switch) == 2
    assert reload(task).provider_status == "RUNNING"


def test_a_single_write_that_keeps_meeting_transactions_is_busy_and_its_condition_is_not_run_as_failed():
    task = submitted("alice")
    conflicts("write-conflict")
    failed = []

    with pytest.raises(Busy):
        dynamo.conditional(lambda: task.update(actions=[TaskItem.provider_status.set("RUNNING")]), on_failure=lambda: failed.append(1))

    assert failed == []  # a conflict is not a failed condition: the rule was never evaluated
    faults.SWITCH.clear()
    assert reload(task).provider_status != "RUNNING"


def test_busy_is_an_app_error_the_api_maps_to_429_not_a_server_error():
    assert issubclass(Busy, AppError) and Busy.status == 429 and Busy().retry_after == 1
