"""The points ledger (aigc.domain.points): what a user's points do when a task is charged and refunded.

Every test ends with the books checked (conftest `books`): balance == grants - debits + refunds.
"""
from __future__ import annotations

import pytest

from aigc.core.errors import BadRequest, Conflict, InsufficientPoints, RateLimited, ServiceUnavailable
from aigc.core.vocab import LedgerKind, TaskStatus
from aigc.domain import points, tasks
from tests.domain.support import grant, new_task, rejected_upload, reload, snapshot, submitted


def _kinds(user: str, ref: str | None = None) -> list[tuple[str, int]]:
    return sorted((entry.kind, int(entry.amount)) for entry in points.ledger_entries(user, ref))


# --- debit ----------------------------------------------------------------------------------------


def test_a_task_is_charged_once_and_recorded_with_its_debit():
    grant("alice", 25)
    task = new_task("alice")
    points.debit_for_new_task(task, rate_limit_per_minute=0)

    assert points.get_balance("alice") == 25 - 10
    assert _kinds("alice", task.task_no) == [(LedgerKind.DEBIT, -10)]
    assert reload(task).status == TaskStatus.QUEUED
    totals = points.totals("alice")
    assert (totals.tasks, totals.tasks_by_type["outpainting"], totals.ledger) == (1, 1, 2)


def test_a_second_debit_of_the_same_task_is_a_conflict_and_writes_nothing():
    grant("alice", 100)
    task = new_task("alice")
    points.debit_for_new_task(task, rate_limit_per_minute=0)
    before = snapshot()

    with pytest.raises(Conflict):
        points.debit_for_new_task(new_task_like(task), rate_limit_per_minute=0)

    assert snapshot() == before
    assert points.get_balance("alice") == 90


def new_task_like(task):
    """Another request carrying the same task number (a retried submit, a colliding number)."""
    again = new_task(task.user_id)
    again.task_no = task.task_no
    return again


def test_insufficient_points_names_cost_and_balance_and_writes_nothing():
    grant("alice", 7)
    before = snapshot()

    with pytest.raises(InsufficientPoints) as refused:
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=5)

    assert (refused.value.cost, refused.value.balance, refused.value.status) == (10, 7, 402)
    assert "10" in refused.value.message and "7" in refused.value.message
    assert snapshot() == before  # no task, no ledger entry, no rate counter, no count


def test_a_user_never_granted_points_has_none_to_spend():
    with pytest.raises(InsufficientPoints) as refused:
        points.debit_for_new_task(new_task("nobody"), rate_limit_per_minute=0)

    assert refused.value.balance == 0
    assert all(not items for items in snapshot().values())  # not even a BALANCE item


def test_the_balance_can_be_spent_to_exactly_zero_never_below():
    grant("alice", 20)
    points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=0)
    points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=0)
    assert points.get_balance("alice") == 0

    with pytest.raises(InsufficientPoints):
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=0)
    assert points.get_balance("alice") == 0


def test_rate_limit_refuses_with_retry_after_and_writes_nothing(clock):
    clock.freeze()  # all in one minute
    grant("alice", 100)
    for _ in range(2):
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=2)
    before = snapshot()

    with pytest.raises(RateLimited) as refused:
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=2)

    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.retry_after == 60 - clock.now().second
    assert "2 tasks a minute" in refused.value.message
    assert snapshot() == before
    assert points.get_balance("alice") == 80


def test_a_refused_submit_does_not_use_up_the_rate_limit(clock):
    clock.freeze()
    grant("alice", 10)
    for _ in range(3):
        with pytest.raises(InsufficientPoints):
            points.debit_for_new_task(new_task("alice", cost=50), rate_limit_per_minute=1)

    points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=1)  # the one allowed this minute
    assert points.get_balance("alice") == 0


def test_the_rate_limit_is_per_user(clock):
    clock.freeze()
    grant("alice", 100)
    grant("bob", 100)
    points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=1)
    points.debit_for_new_task(new_task("bob"), rate_limit_per_minute=1)
    with pytest.raises(RateLimited):
        points.debit_for_new_task(new_task("alice"), rate_limit_per_minute=1)


# --- grants ---------------------------------------------------------------------------------------


def test_a_grant_is_applied_once_per_grant_id():
    first = points.grant("alice", 50, "welcome", grant_id="order-1", actor="admin")
    again = points.grant("alice", 50, "welcome", grant_id="order-1", actor="admin")

    assert (first.applied, first.balance) == (True, 50)
    assert (again.applied, again.balance) == (False, 50)
    assert _kinds("alice") == [(LedgerKind.GRANT, 50)]


@pytest.mark.parametrize("amount", [0, -5])
def test_a_grant_must_add_points(amount):
    with pytest.raises(BadRequest):
        points.grant("alice", amount, "oops", grant_id="g", actor="admin")
    assert all(not items for items in snapshot().values())


# --- refund ---------------------------------------------------------------------------------------


def test_a_refund_gives_the_points_back_once():
    task = submitted("alice")
    assert points.get_balance("alice") == 0

    first = points.refund_task(task, status=TaskStatus.FAILED, error_code="ProviderFailed", error_message="boom")
    before = snapshot()
    second = points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="Other", error_message="again")

    assert (first, second) == (True, False)
    assert snapshot() == before  # the second refund wrote nothing: not the code, not the message
    assert points.get_balance("alice") == 10
    assert _kinds("alice", task.task_no) == [(LedgerKind.DEBIT, -10), (LedgerKind.REFUND, 10)]
    settled = reload(task)
    assert (settled.status, settled.refunded, settled.error_code) == (TaskStatus.FAILED, True, "ProviderFailed")
    assert settled.unsettled is None and settled.completed_at is not None


def test_a_stale_copy_of_the_task_cannot_refund_it_twice():
    """Two deciders each holding the task as they read it earlier: the condition is on the table."""
    task = submitted("alice")
    stale = reload(task)
    assert points.refund_task(task, status=TaskStatus.CANCELLED, error_code="Cancelled", error_message="x")
    assert not points.refund_task(stale, status=TaskStatus.FAILED, error_code="Timeout", error_message="y")
    assert reload(task).status == TaskStatus.CANCELLED


def test_a_completed_task_is_never_refunded():
    task = submitted("alice")
    assert tasks.complete(task, ["results/alice/t/1.png"], None)
    before = snapshot()

    assert not points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="Late", error_message="late")
    assert not points.refund_task(task, status=TaskStatus.CANCELLED, error_code="Cancelled", error_message="x")

    assert snapshot() == before
    assert points.get_balance("alice") == 0
    assert reload(task).status == TaskStatus.COMPLETED


def test_a_refunded_task_cannot_complete_afterwards():
    task = submitted("alice")
    stale = reload(task)
    assert points.refund_task(task, status=TaskStatus.CANCELLED, error_code="Cancelled", error_message="x")

    assert not tasks.complete(stale, ["results/alice/t/1.png"], None)
    assert reload(task).status == TaskStatus.CANCELLED
    assert reload(task).result_keys is None


@pytest.mark.parametrize("status", ["completed", "queued", "refunded"])
def test_a_refund_settles_only_as_failed_or_cancelled(status):
    task = submitted("alice")
    with pytest.raises(ValueError):
        points.refund_task(task, status=status, error_code=None, error_message="x")
    assert points.get_balance("alice") == 0


def test_a_refund_reaches_only_its_own_user():
    grant("bob", 30)
    task = submitted("alice")
    points.refund_task(task, status=TaskStatus.FAILED, error_code="X", error_message="x")
    assert (points.get_balance("alice"), points.get_balance("bob")) == (10, 30)


# --- uncharged tasks (rejected uploads) -------------------------------------------------------------


def test_a_rejected_upload_is_listed_once_and_costs_nothing():
    grant("alice", 5)
    task = rejected_upload("alice")

    assert points.save_uncharged_task(task)
    assert not points.save_uncharged_task(task)  # S3 delivered the event twice

    assert points.get_balance("alice") == 5
    assert points.totals("alice").tasks == 1
    assert points.ledger_entries("alice", task.task_no) == []


def test_a_rejected_upload_of_an_unknown_user_creates_no_account():
    assert points.save_uncharged_task(rejected_upload("stranger"))
    assert not points.has_account("stranger")
    assert points.totals("stranger").tasks == 1


# --- submit: charge, then start ---------------------------------------------------------------------


def test_a_task_whose_workflow_cannot_start_is_refunded_at_once(sfn):
    from aigc.flows import submission

    grant("alice", 10)
    task = new_task("alice")
    sfn.fail_start = True

    with pytest.raises(ServiceUnavailable, match="refunded"):
        submission.charge_and_start(task, rate_limit_per_minute=0)

    assert points.get_balance("alice") == 10
    settled = reload(task)
    assert (settled.status, settled.refunded, settled.error_code) == (TaskStatus.FAILED, True, "StartFailed")
