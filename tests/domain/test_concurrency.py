"""Many deciders at once on the same task or pool: exactly one wins, and the books still balance.

Threads call the domain in process against moto. moto 5.2.5's DynamoDB is not atomic under threads
(a TransactWriteItems is applied item by item and rolled back by restoring table copies, erasing
other writers' changes; measured here: two of eight concurrent refunds of one task both succeeded,
and a third died with "dictionary changed size during iteration"). DynamoDB itself is, so these
tests serialise moto's requests with local/moto_dynamodb.py, exactly as the local stack does.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aigc.core.errors import AppError, Conflict, InsufficientPoints
from aigc.core.vocab import JobStatus, LedgerKind, Outcome, TaskStatus
from aigc.domain import capacity, points, settlement, tasks
from aigc.flows import workflow
from aigc.store.db import TaskItem
from local import moto_dynamodb
from tests.domain.support import clear_caches, grant, holders, new_task, reload, submitted

THREADS = 8


@pytest.fixture(autouse=True)
def atomic_dynamodb():
    undo = moto_dynamodb.install()
    yield
    undo()


def race(*calls):
    """Run the calls at the same moment, one thread each; their results (or the AppError raised)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except AppError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _refunds(task) -> int:
    return sum(e.kind == LedgerKind.REFUND for e in points.ledger_entries(task.user_id, task.task_no))


def test_many_refunds_of_one_task_refund_it_once():
    task = submitted("alice")

    results = race(*[lambda: points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X",
                                                error_message="x")] * THREADS)

    assert results.count(True) == 1 and results.count(False) == THREADS - 1
    assert _refunds(task) == 1 and points.get_balance("alice") == 10


@pytest.mark.parametrize("round_", range(3))
def test_cancel_refund_and_completion_racing_end_in_exactly_one_outcome(provider, round_):
    """The user cancels, an operator refunds, the workflow refunds and the store step completes, at once."""
    task = submitted("alice")
    assert capacity.try_start(task)
    assert tasks.record_provider_job(task, "job-1", JobStatus.RUNNING)
    assert tasks.record_provider_outputs(task, JobStatus.SUCCEEDED, ["https://x.aliyuncs.com/out/1.png"])
    state = {"taskNo": task.task_no, "job": {"status": Outcome.FAILED, "errorCode": "X"}}
    calls = [
        lambda: settlement.cancel_task("alice", task.task_no),
        lambda: settlement.operator_refund(task.task_no, "by hand"),
        lambda: workflow.refund_step(state),
        lambda: workflow.store_step({"taskNo": task.task_no}),
    ]

    results = race(*(calls[(i + round_) % len(calls)] for i in range(THREADS)))

    final = reload(task)
    refunders = [r for r in results if isinstance(r, TaskItem) or _answered(r, Outcome.REFUNDED)]
    completers = [r for r in results if _answered(r, Outcome.COMPLETED)]  # the one, or a step that found it so
    others = [r for r in results if not (isinstance(r, TaskItem) or _answered(r, Outcome.REFUNDED, Outcome.COMPLETED))]
    assert all(isinstance(r, Conflict) or _answered(r, Outcome.SETTLED) for r in others), others
    if final.status == TaskStatus.COMPLETED:
        assert refunders == [] and _refunds(task) == 0 and points.get_balance("alice") == 0
    else:
        assert len(refunders) == 1 and completers == [], results
        assert final.refunded and _refunds(task) == 1 and points.get_balance("alice") == 10
    assert holders() == {}


def _answered(result, *statuses) -> bool:
    return isinstance(result, dict) and result.get("job", {}).get("status") in statuses


def test_many_submits_of_one_task_number_charge_it_once():
    grant("alice", 100)
    first = new_task("alice")

    def same_number():
        task = new_task("alice")
        task.task_no = first.task_no
        return points.debit_for_new_task(task, rate_limit_per_minute=0)

    results = race(*[same_number] * THREADS)

    assert results.count(None) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert points.get_balance("alice") == 90


def test_concurrent_submits_never_overdraw_the_balance():
    grant("alice", 30)  # three tasks' worth

    results = race(*[lambda: points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=0)] * THREADS)

    assert results.count(None) == 3
    assert all(isinstance(r, InsufficientPoints) for r in results if r is not None)
    assert points.get_balance("alice") == 0


def test_concurrent_starts_take_at_most_concurrency_slots(monkeypatch):
    monkeypatch.setenv("PROVIDER_CAPACITY", '{"*": {"concurrency": 2, "submitsPerSecond": 1000}}')
    clear_caches()
    waiting = [submitted(f"user{i}") for i in range(THREADS)]

    results = race(*[lambda task=task: capacity.try_start(task) for task in waiting])

    assert results.count(True) == 2 and len(holders()) == 2


def test_many_endings_of_one_holder_release_its_slot_once_and_wake_one(monkeypatch, sfn):
    monkeypatch.setenv("PROVIDER_CAPACITY", '{"*": {"concurrency": 1, "submitsPerSecond": 1000}}')
    clear_caches()
    holder = submitted("alice")
    assert capacity.try_start(holder)
    queued = []
    for name in ("bob", "cid"):
        task = submitted(name)
        assert not capacity.try_start(task)
        capacity.wait_for_slot(task, f"{name}-token")
        queued.append(task)

    results = race(*[lambda: capacity.finish(holder)] * THREADS)

    assert results.count(True) == 1
    assert sfn.woken_tasks(Outcome.ADMITTED) == [queued[0].task_no]
    assert list(holders()) == [queued[0].task_no]
