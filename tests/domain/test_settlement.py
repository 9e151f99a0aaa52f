"""Settlement (aigc.domain.settlement): the user's cancel, the operator's refund, the reconciler of
ended executions and the sweep. Each settles a task at most once, never a completed one."""
from __future__ import annotations

import json

import pytest

from aigc.core.config import get_settings
from aigc.core.errors import Conflict, NotFound
from aigc.core.vocab import LedgerKind, TaskStatus
from aigc.domain import capacity, points, settlement, tasks
from tests.domain.support import accepted, execution_ended, holders, rejected_upload, reload, snapshot, submitted


def _processing(task):
    """The provider accepted the job: the task holds a slot and has a provider job id."""
    assert capacity.try_start(task)
    assert tasks.record_provider_job(task, "job-7", "RUNNING")
    return reload(task)


def _refunds(task) -> int:
    return sum(entry.kind == LedgerKind.REFUND for entry in points.ledger_entries(task.user_id, task.task_no))


# --- the user's cancel ------------------------------------------------------------------------------


def test_cancel_refunds_stops_the_execution_cancels_the_job_and_frees_the_slot(sfn, provider):
    task = _processing(submitted("alice"))
    assert task.task_no in holders()

    cancelled = settlement.cancel_task("alice", task.task_no)

    assert (cancelled.status, cancelled.refunded, cancelled.error_code) == (TaskStatus.CANCELLED, True, "Cancelled")
    assert points.get_balance("alice") == 10
    assert sfn.stopped == [task.task_no]
    assert provider.cancelled == ["job-7"]
    assert task.task_no not in holders()


def test_cancel_of_a_queued_task_refunds_it_before_any_provider_call(sfn, provider):
    task = submitted("alice")

    settlement.cancel_task("alice", task.task_no)

    assert points.get_balance("alice") == 10
    assert provider.cancelled == [] and provider.submitted == []


@pytest.mark.parametrize("ending", ["completed", "cancelled", "failed-and-refunded"])
def test_cancel_of_a_settled_task_is_409_and_changes_nothing(ending):
    task = submitted("alice")
    if ending == "completed":
        assert tasks.complete(task, ["results/alice/1.png"], None)
    elif ending == "cancelled":
        settlement.cancel_task("alice", task.task_no)
    else:
        settlement.refund(task, status=TaskStatus.FAILED, code="ProviderFailed", message="boom")
    before = snapshot()

    with pytest.raises(Conflict) as refused:
        settlement.cancel_task("alice", task.task_no)

    assert refused.value.status == 409
    assert "already" in refused.value.message
    assert snapshot() == before


def test_cancel_that_loses_the_race_to_completion_is_409(monkeypatch):
    """The task was read active, then completed before the refund: the refund's condition decides."""
    task = submitted("alice")
    original = tasks.get_user_task

    def read_then_complete(user_id, task_no):
        read = original(user_id, task_no)
        assert tasks.complete(reload(read), ["results/alice/1.png"], None)
        return read

    monkeypatch.setattr(tasks, "get_user_task", read_then_complete)
    with pytest.raises(Conflict, match="completed"):
        settlement.cancel_task("alice", task.task_no)
    assert points.get_balance("alice") == 0


def test_another_users_task_cannot_be_cancelled_and_looks_missing():
    task = submitted("alice")
    before = snapshot()
    with pytest.raises(NotFound):
        settlement.cancel_task("mallory", task.task_no)
    assert snapshot() == before


def test_cancel_succeeds_even_when_the_execution_cannot_be_stopped(sfn):
    task = submitted("alice")
    sfn.fail_stop = True

    cancelled = settlement.cancel_task("alice", task.task_no)

    assert cancelled.status == TaskStatus.CANCELLED
    assert points.get_balance("alice") == 10


# --- the operator's refund --------------------------------------------------------------------------


def test_operator_refund_of_a_completed_task_is_409_and_changes_nothing():
    task = submitted("alice")
    assert tasks.complete(task, ["results/alice/1.png"], None)
    before = snapshot()

    with pytest.raises(Conflict) as refused:
        settlement.operator_refund(task.task_no, "customer complaint")

    assert refused.value.status == 409
    assert snapshot() == before
    assert points.get_balance("alice") == 0


def test_operator_refund_refunds_an_open_task_once(sfn):
    task = _processing(submitted("alice"))

    refunded = settlement.operator_refund(task.task_no, "stuck")
    with pytest.raises(Conflict, match="already refunded"):
        settlement.operator_refund(task.task_no, "stuck")

    assert (refunded.status, refunded.error_code) == (TaskStatus.FAILED, "RefundedByOperator")
    assert "stuck" in refunded.error_message
    assert _refunds(task) == 1 and points.get_balance("alice") == 10
    assert sfn.stopped == [task.task_no]
    assert task.task_no not in holders()


def test_operator_refund_of_a_task_that_was_never_charged_is_409_and_writes_nothing():
    task = rejected_upload("stranger")
    assert points.save_uncharged_task(task)
    before = snapshot()

    with pytest.raises(Conflict):
        settlement.operator_refund(task.task_no, "customer asked")

    assert snapshot() == before
    assert not points.has_account("stranger")


# --- the reconciler: executions that ended badly ----------------------------------------------------


def _ended(sfn, task, status: str, *, redrive_count: int = 0) -> str:
    return execution_ended(sfn, task, status, redrive_count=redrive_count)


def test_a_failed_execution_holds_the_points_for_a_redrive_and_frees_the_slot(sfn):
    task = _processing(submitted("alice"))

    assert _ended(sfn, task, "FAILED") == "held"
    assert _ended(sfn, task, "FAILED") == "already-settled"  # EventBridge delivers twice

    held = reload(task)
    assert tasks.is_held(held) and not tasks.is_settled(held)
    assert (held.status, held.error_code, held.refunded) == (TaskStatus.FAILED, "InternalError.Retryable", False)
    assert points.get_balance("alice") == 0  # still debited: a redrive may complete it
    assert task.task_no not in holders()


@pytest.mark.parametrize(("status", "code"), [("TIMED_OUT", "ExecutionTimedOut"), ("ABORTED", "ExecutionAborted")])
def test_a_timed_out_or_aborted_execution_is_refunded_once(sfn, provider, status, code):
    task = _processing(submitted("alice"))

    assert _ended(sfn, task, status) == "refunded"
    assert _ended(sfn, task, status) == "already-settled"

    assert reload(task).error_code == code
    assert _refunds(task) == 1 and points.get_balance("alice") == 10
    assert provider.cancelled == ["job-7"]
    assert task.task_no not in holders()


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_an_execution_ending_after_its_task_completed_refunds_nothing(sfn, status):
    task = submitted("alice")
    assert tasks.complete(task, ["results/alice/1.png"], None)

    assert _ended(sfn, task, status) == "already-settled"
    assert reload(task).status == TaskStatus.COMPLETED
    assert points.get_balance("alice") == 0


def test_an_event_of_an_earlier_run_of_a_redriven_execution_is_ignored(sfn):
    task = _processing(submitted("alice"))
    before = snapshot()

    sfn.redrives[task.task_no] = 1
    assert _ended(sfn, task, "FAILED", redrive_count=0) == "superseded"  # a later run ended since
    sfn.redrives[task.task_no] = 0
    sfn.status[task.task_no] = "RUNNING"
    detail = {"name": task.task_no, "status": "ABORTED", "input": json.dumps({"taskNo": task.task_no})}
    assert settlement.on_execution_ended(  # it runs again (redriven): the latest run decides
        detail, **accepted(settlement.on_execution_ended, hold_grace_seconds=60)) == "superseded"

    assert snapshot() == before


def test_an_execution_of_an_unknown_task_changes_nothing(sfn):
    detail = {"name": "TASK-unknown", "status": "FAILED", "input": "{not json"}
    before = snapshot()
    assert settlement.on_execution_ended(
        detail, **accepted(settlement.on_execution_ended, hold_grace_seconds=60)) == "unknown-task"
    assert snapshot() == before


# --- the sweep ------------------------------------------------------------------------------------


def test_the_sweep_refunds_a_held_task_once_its_window_has_passed_and_only_once(sfn, clock):
    task = _processing(submitted("alice"))
    assert _ended(sfn, task, "FAILED") == "held"

    assert settlement.sweep()["refunded"] == 0  # inside the window: an operator may still redrive
    assert points.get_balance("alice") == 0

    clock.advance(get_settings().hold_grace_seconds + 1)
    first, second = settlement.sweep(), settlement.sweep()

    assert (first["refunded"], second["refunded"]) == (1, 0)
    assert (reload(task).error_code, reload(task).refunded) == ("InternalError", True)
    assert _refunds(task) == 1 and points.get_balance("alice") == 10


def test_the_sweep_refunds_a_task_that_never_got_an_execution_after_its_deadline(sfn, provider, clock):
    task = submitted("alice")
    del sfn.status[task.task_no]  # the API died between the debit and the start

    assert settlement.sweep()["refunded"] == 0
    clock.advance((task.deadline_at - clock.now()).total_seconds() + tasks.SWEEP_SLACK.total_seconds() + 1)
    outcome = settlement.sweep()

    assert outcome["refunded"] == 1
    assert reload(task).error_code == "Timeout"
    assert points.get_balance("alice") == 10
    assert settlement.sweep()["seen"] == 0  # settled: out of the sweep's index


def test_the_sweep_leaves_a_running_execution_to_settle_its_own_task(sfn, clock):
    task = submitted("alice")
    clock.advance((task.deadline_at - clock.now()).total_seconds() + tasks.SWEEP_SLACK.total_seconds() + 1)

    outcome = settlement.sweep()

    assert (outcome["refunded"], outcome["postponed"]) == (0, 1)
    assert points.get_balance("alice") == 0
    assert settlement.sweep()["seen"] == 0  # postponed: not looked at again at once


def test_the_sweep_skips_a_task_someone_settled_meanwhile(sfn, clock):
    task = _processing(submitted("alice"))
    assert _ended(sfn, task, "FAILED") == "held"
    clock.advance(get_settings().hold_grace_seconds + 1)
    settlement.operator_refund(task.task_no, "refunded by hand first")

    assert settlement.sweep()["refunded"] == 0
    assert _refunds(task) == 1
