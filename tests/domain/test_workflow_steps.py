"""The workflow's steps (aigc.flows.workflow), called directly with the state machine's small state
`{"taskNo": ..., "job": {...}}`, against a fake provider: what each step decides, and that running
a step twice (a Lambda retry, a redrive) changes nothing the second time."""
from __future__ import annotations

import pytest

from aigc.core.errors import ProviderRejected
from aigc.core.vocab import JobStatus, LedgerKind, Outcome, TaskStatus
from aigc.domain import durations, points, settlement, tasks
from aigc.flows import workflow
from aigc.store import storage
from aigc.store.db import PointsItem, SchedulerItem, TaskItem
from tests.domain.support import (
    RESULT_URL,
    execution_ended,
    holders,
    reload,
    snapshot,
    submitted,
    tickets,
)

POLL_BUDGET_MS = 15_000  # a poll invocation of 5 polls (15 s minus its 10 s reserve, 1 s apart)


def _status(state: dict) -> str:
    return state["job"]["status"]


def _ledger(task) -> list[tuple[str, int]]:
    return sorted((e.kind, int(e.amount)) for e in points.ledger_entries(task.user_id, task.task_no))


def _through_submit(task) -> dict:
    state = workflow.submit_step({"taskNo": task.task_no})
    assert _status(state) == Outcome.RUNNING and state["job"]["waitSeconds"] >= 1
    return state


# --- the happy path -------------------------------------------------------------------------------


def test_submit_poll_store_completes_the_task_charged_once(provider, fake_storage):
    task = submitted("alice")
    provider.will_answer(JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED)

    state = _through_submit(task)
    assert reload(task).status == TaskStatus.PROCESSING and reload(task).provider_task_id == "job-1"
    state = workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)
    assert _status(state) == Outcome.SUCCEEDED
    assert holders() == {}  # the provider is free as soon as the job ended, before the copy
    state = workflow.store_step(state)

    assert state == {"taskNo": task.task_no, "job": {"status": Outcome.COMPLETED}}
    done = reload(task)
    prefix = f"results/alice/{task.task_no}/"
    assert (done.status, done.result_keys, done.thumbnail_key) == (
        TaskStatus.COMPLETED, [f"{prefix}1.png"], f"{prefix}thumbnail.jpg")
    assert fake_storage.copied == [(RESULT_URL.format(job="job-1"), f"{prefix}1.png")]
    assert [r.model for r in provider.submitted] == ["image-out-painting"]
    assert provider.submitted[0].image_urls == ["https://example.com/picture.png"]
    assert provider.polls == ["job-1"] * 3
    assert _ledger(task) == [(LedgerKind.DEBIT, -10)]
    assert durations.recent("image-out-painting")  # the duration was learned


def test_a_sync_provider_answers_at_submit_and_frees_its_slot_at_once(provider):
    provider.is_async = False
    task = submitted("alice")

    state = workflow.submit_step({"taskNo": task.task_no})
    assert _status(state) == Outcome.SUCCEEDED and holders() == {}
    assert _status(workflow.store_step(state)) == Outcome.COMPLETED
    assert reload(task).status == TaskStatus.COMPLETED


def test_a_long_job_chains_another_poll_invocation(provider):
    task = submitted("alice")
    state = _through_submit(task)

    state = workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)

    assert _status(state) == Outcome.POLLING
    assert len(provider.polls) == 5
    assert reload(task).status == TaskStatus.PROCESSING and task.task_no in holders()


def test_a_job_that_ended_past_the_deadline_is_still_delivered(provider, clock):
    task = submitted("alice")
    state = _through_submit(task)
    clock.advance(tasks.deadline_seconds(task) + 60)
    provider.will_answer(JobStatus.SUCCEEDED)

    assert _status(workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)) == Outcome.SUCCEEDED
    assert _status(workflow.store_step(state)) == Outcome.COMPLETED


# --- failures: refunded with the provider's code --------------------------------------------------


@pytest.mark.parametrize(("status", "provider_code", "code"), [
    (JobStatus.FAILED, "InvalidParameter.FileDownload", "InvalidParameter.FileDownload"),
    (JobStatus.FAILED, None, "ProviderFailed"),
    (JobStatus.CANCELED, None, "TaskCanceled"),
    (JobStatus.UNKNOWN, None, "TaskUnknown"),  # expired at the provider
    ("EXPLODED", None, "TaskExploded"),  # a status nobody knows is an end, never an endless loop
])
def test_a_job_the_provider_failed_is_refunded_with_its_code(provider, status, provider_code, code):
    task = submitted("alice")
    provider.will_answer(JobStatus.RUNNING, status, error_code=provider_code,
                         error_message="internal detail from the provider, request id 1234")
    state = _through_submit(task)

    state = workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)
    assert (_status(state), state["job"]["errorCode"]) == (Outcome.FAILED, code)
    assert holders() == {}
    state = workflow.refund_step(state)

    assert state == {"taskNo": task.task_no, "job": {"status": Outcome.REFUNDED, "errorCode": code}}
    failed = reload(task)
    assert (failed.status, failed.error_code, failed.refunded) == (TaskStatus.FAILED, code, True)
    assert failed.error_message
    assert points.get_balance("alice") == 10


def test_a_job_the_provider_refuses_at_submit_is_refunded_and_holds_no_slot(provider):
    task = submitted("alice")
    provider.reject = ProviderRejected("bad picture", code="InvalidParameter.ImageFormat")

    state = workflow.submit_step({"taskNo": task.task_no})
    assert (_status(state), state["job"]["errorCode"]) == (Outcome.FAILED, "InvalidParameter.ImageFormat")
    assert holders() == {}
    assert _status(workflow.refund_step(state)) == Outcome.REFUNDED
    assert reload(task).error_code == "InvalidParameter.ImageFormat"
    assert points.get_balance("alice") == 10


def test_past_the_deadline_the_task_times_out_and_is_refunded(provider, clock):
    task = submitted("alice")
    state = _through_submit(task)
    clock.advance(tasks.deadline_seconds(task) + 1)

    state = workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)
    assert _status(state) == Outcome.TIMED_OUT
    assert len(provider.polls) == 1  # asked once more (a finished job would be delivered), then stopped
    state = workflow.refund_step(state)

    assert (_status(state), state["job"]["errorCode"]) == (Outcome.REFUNDED, "Timeout")
    assert "timed out" in reload(task).error_message
    assert provider.cancelled == ["job-1"]
    assert holders() == {} and points.get_balance("alice") == 10


def test_a_task_that_waited_too_long_in_the_queue_is_refunded_and_leaves_it(sfn):
    capacity_full = [submitted(f"user{i}") for i in range(2)]
    for task in capacity_full:
        _through_submit(task)
    queued = submitted("alice")
    state = workflow.submit_step({"taskNo": queued.task_no})
    assert _status(state) == Outcome.QUEUED and 1 <= state["job"]["queueSeconds"] <= 1800
    workflow.submit_step({"taskNo": queued.task_no, "taskToken": "alice-token"})  # WaitForSlot

    state = workflow.refund_step({"taskNo": queued.task_no, "job": {"status": Outcome.QUEUE_TIMEOUT}})

    assert (_status(state), state["job"]["errorCode"]) == (Outcome.REFUNDED, "QueueTimeout")
    assert "busy" in reload(queued).error_message
    assert tickets() == [] and set(holders()) == {t.task_no for t in capacity_full}


# --- the queue, through the steps -----------------------------------------------------------------


def test_a_queued_task_is_woken_when_a_slot_frees_and_is_then_submitted(provider, sfn):
    running = [submitted(f"user{i}") for i in range(2)]
    states = [_through_submit(task) for task in running]
    queued = submitted("alice")
    assert _status(workflow.submit_step({"taskNo": queued.task_no})) == Outcome.QUEUED
    assert workflow.submit_step({"taskNo": queued.task_no, "taskToken": "alice-token"}) == {"waiting": True}
    assert len(provider.submitted) == 2

    provider.will_answer(JobStatus.SUCCEEDED)
    workflow.poll_step(states[0], remaining_ms=POLL_BUDGET_MS)  # the first job ends: its slot goes on

    assert sfn.woken == [("alice-token", {"taskNo": queued.task_no,
                                          "job": {"status": Outcome.ADMITTED, "account": "default"}})]
    provider.will_answer(JobStatus.RUNNING)
    _through_submit(queued)
    assert len(provider.submitted) == 3 and len(holders()) == 2


def test_waiting_for_a_slot_with_a_settled_task_ends_its_wait_at_once(sfn):
    task = submitted("alice")
    settlement.cancel_task("alice", task.task_no)

    assert workflow.submit_step({"taskNo": task.task_no, "taskToken": "t"}) == {"waiting": False}
    assert sfn.woken == [("t", {"taskNo": task.task_no, "job": {"status": Outcome.SETTLED}})]
    assert tickets() == []


# --- settled by someone else meanwhile ------------------------------------------------------------


def test_a_cancel_between_polls_ends_the_poll_loop(provider):
    task = submitted("alice")
    state = _through_submit(task)
    answer = provider.poll

    def poll_then_user_cancels(job_id):
        if len(provider.polls) == 1:
            settlement.cancel_task("alice", task.task_no)
        return answer(job_id)

    provider.poll = poll_then_user_cancels
    assert _status(workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)) == Outcome.SETTLED
    assert len(provider.polls) == 2
    assert reload(task).status == TaskStatus.CANCELLED


def test_a_cancel_while_the_results_are_copied_wins_and_the_task_is_not_completed(provider, fake_storage,
                                                                                   monkeypatch):
    """Completion is conditional on 'not refunded': exactly one outcome, the user's cancel."""
    task = submitted("alice")
    provider.will_answer(JobStatus.SUCCEEDED)
    state = workflow.poll_step(_through_submit(task), remaining_ms=POLL_BUDGET_MS)
    copy = fake_storage.copy_url_to_s3

    def copy_while_the_user_cancels(*args, **kwargs):
        settlement.cancel_task("alice", task.task_no)
        return copy(*args, **kwargs)

    monkeypatch.setattr(storage, "copy_url_to_s3", copy_while_the_user_cancels)
    assert _status(workflow.store_step(state)) == Outcome.SETTLED

    settled = reload(task)
    assert (settled.status, settled.result_keys) == (TaskStatus.CANCELLED, None)
    assert points.get_balance("alice") == 10


@pytest.mark.parametrize("step", ["submit", "poll", "store"])
def test_a_step_of_a_cancelled_task_does_nothing(provider, step):
    task = submitted("alice")
    state = _through_submit(task) if step != "submit" else {"taskNo": task.task_no}
    settlement.cancel_task("alice", task.task_no)
    submits, polls = len(provider.submitted), len(provider.polls)
    before = snapshot()

    state = getattr(workflow, f"{step}_step")(state)

    assert _status(state) == Outcome.SETTLED
    assert (len(provider.submitted), len(provider.polls)) == (submits, polls)
    assert snapshot() == before


def test_a_late_refund_of_a_completed_task_refunds_nothing(provider):
    task = submitted("alice")
    provider.will_answer(JobStatus.SUCCEEDED)
    state = workflow.poll_step(_through_submit(task), remaining_ms=POLL_BUDGET_MS)
    workflow.store_step(state)
    before = snapshot()

    state = workflow.refund_step({"taskNo": task.task_no, "job": {"status": Outcome.TIMED_OUT}})

    assert _status(state) == Outcome.SETTLED
    assert snapshot() == before
    assert reload(task).status == TaskStatus.COMPLETED


# --- every step twice -----------------------------------------------------------------------------


def _ledger_and_task() -> dict:
    return snapshot(PointsItem, TaskItem)


def test_submit_twice_sends_one_job(provider):
    task = submitted("alice")
    first = _through_submit(task)
    before = _ledger_and_task()

    second = workflow.submit_step({"taskNo": task.task_no})

    assert len(provider.submitted) == 1
    assert _status(second) in (Outcome.RUNNING, Outcome.POLLING)
    assert second["job"].get("waitSeconds", 0) <= first["job"]["waitSeconds"]
    assert _ledger_and_task() == before
    assert list(holders()) == [task.task_no]  # its one slot, the lease renewed


def test_submit_of_a_sync_task_that_already_answered_sends_nothing_again(provider):
    provider.is_async = False
    task = submitted("alice")
    workflow.submit_step({"taskNo": task.task_no})
    before = snapshot()

    assert _status(workflow.submit_step({"taskNo": task.task_no})) == Outcome.SUCCEEDED
    assert len(provider.submitted) == 1
    assert snapshot() == before


def test_poll_twice_after_success_changes_only_the_update_time(provider):
    task = submitted("alice")
    provider.will_answer(JobStatus.SUCCEEDED)
    state = _through_submit(task)
    assert _status(workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)) == Outcome.SUCCEEDED
    before = snapshot(PointsItem, TaskItem)

    assert _status(workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)) == Outcome.SUCCEEDED

    after = snapshot(PointsItem, TaskItem)
    assert after[PointsItem.Meta.table_name] == before[PointsItem.Meta.table_name]
    assert _without(after[TaskItem.Meta.table_name], "updated_at") == _without(
        before[TaskItem.Meta.table_name], "updated_at")
    assert SchedulerItem.count(f"DUR#{task.model_name}") == 1 and holders() == {}


def _without(items: list[dict], name: str) -> list[dict]:
    return [{k: v for k, v in item.items() if k != name} for item in items]


def test_a_repeated_poll_does_not_change_the_duration_learned(provider, clock):
    task = submitted("alice")
    provider.will_answer(JobStatus.SUCCEEDED)
    state = _through_submit(task)
    workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)
    learned = snapshot(SchedulerItem)

    clock.advance(600)  # the poll Lambda's answer was lost; the retry (or a redrive) runs much later
    workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)

    assert snapshot(SchedulerItem) == learned


def test_store_twice_completes_once(provider, fake_storage):
    task = submitted("alice")
    provider.will_answer(JobStatus.SUCCEEDED)
    state = workflow.poll_step(_through_submit(task), remaining_ms=POLL_BUDGET_MS)
    assert _status(workflow.store_step(state)) == Outcome.COMPLETED
    before = snapshot()

    assert _status(workflow.store_step(state)) == Outcome.COMPLETED
    assert snapshot() == before
    assert len(fake_storage.copied) == 1


def test_refund_twice_refunds_once(provider):
    task = submitted("alice")
    provider.will_answer(JobStatus.FAILED, error_code="InternalError.Algo")
    state = workflow.poll_step(_through_submit(task), remaining_ms=POLL_BUDGET_MS)
    assert _status(workflow.refund_step(state)) == Outcome.REFUNDED
    before = snapshot()

    assert _status(workflow.refund_step(state)) == Outcome.SETTLED
    assert snapshot() == before
    assert _ledger(task) == [(LedgerKind.DEBIT, -10), (LedgerKind.REFUND, 10)]


# --- a redrive of a held task ---------------------------------------------------------------------


def test_a_redriven_held_task_completes_charged_once_and_the_sweep_leaves_it(provider, sfn, clock):
    task = submitted("alice")
    state = _through_submit(task)
    assert execution_ended(sfn, task, "FAILED") == "held"  # our own failure at the poll step
    assert holders() == {}

    sfn.status[task.task_no] = "RUNNING"  # the operator redrives from the failed state
    provider.will_answer(JobStatus.SUCCEEDED)
    state = workflow.poll_step(state, remaining_ms=POLL_BUDGET_MS)
    assert _status(state) == Outcome.SUCCEEDED
    assert _status(workflow.store_step(state)) == Outcome.COMPLETED

    clock.advance(24 * 3600)
    assert settlement.sweep()["refunded"] == 0
    done = reload(task)
    assert (done.status, done.error_code, done.hold_until) == (TaskStatus.COMPLETED, None, None)
    assert _ledger(task) == [(LedgerKind.DEBIT, -10)]
    assert len(provider.submitted) == 1
    assert SchedulerItem.count(f"DUR#{task.model_name}") == 1
