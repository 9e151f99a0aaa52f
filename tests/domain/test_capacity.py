"""Provider capacity (aigc.domain.capacity): a pool's slots are taken at most `concurrency` times,
every ending gives a slot back exactly once, and the queue wakes in order (tier, then arrival)."""
from __future__ import annotations

import json

import pytest

from aigc.core.errors import ProviderThrottled
from aigc.core.vocab import Outcome, TaskStatus
from aigc.domain import capacity, settlement, tasks
from aigc.flows import workflow
from tests.domain.support import clear_caches, execution_ended, holders, reload, submitted, tickets


@pytest.fixture
def pool(monkeypatch):
    """Size every pool as the ProviderCapacity template parameter would."""

    def size(concurrency: int, submits_per_second: float = 1000):
        monkeypatch.setenv("PROVIDER_CAPACITY", json.dumps(
            {"*": {"concurrency": concurrency, "submitsPerSecond": submits_per_second}}))
        clear_caches()
        return capacity.pool_of("image-out-painting")

    return size


def _waiting(task, token: str | None = None):
    """A task that found the pool full and whose execution now waits on a task token."""
    assert not capacity.try_start(task)
    capacity.wait_for_slot(task, token or f"token-{task.task_no}")
    return task


# --- the semaphore --------------------------------------------------------------------------------


def test_a_pool_gives_out_at_most_concurrency_slots(pool):
    pool(2)
    started = [capacity.try_start(submitted(f"user{i}")) for i in range(5)]

    assert started == [True, True, False, False, False]
    assert len(holders()) == 2 and len(tickets()) == 3


def test_a_holder_asking_again_keeps_its_one_slot(pool):
    pool(2)
    task = submitted("alice")
    assert capacity.try_start(task)
    assert capacity.try_start(task)
    assert capacity.renew(task, 30)

    assert list(holders()) == [task.task_no]
    assert capacity.try_start(submitted("bob"))  # the second slot is still free


def test_a_slot_is_given_back_exactly_once(pool, sfn):
    pool(1)
    first = submitted("alice")
    assert capacity.try_start(first)
    second = _waiting(submitted("bob"))

    assert capacity.finish(first) is True
    assert capacity.finish(first) is False  # again: nothing to give back, nobody else woken

    assert list(holders()) == [second.task_no]  # the slot went to the waiting task, and stays its
    assert sfn.woken_tasks(Outcome.ADMITTED) == [second.task_no]


def test_a_crashed_holders_slot_comes_back_when_its_lease_runs_out(pool, monkeypatch):
    pool(1)
    crashed = submitted("alice")
    assert capacity.try_start(crashed)
    newcomer = submitted("bob")
    assert not capacity.try_start(newcomer)
    capacity._drop_ticket(capacity.pool_of(newcomer.model_name), newcomer)

    later = capacity._now() + capacity.LEASE_SECONDS + 1
    monkeypatch.setattr(capacity, "_now", lambda: later)
    assert capacity.try_start(newcomer)
    assert list(holders()) == [newcomer.task_no]


# --- ending paths: each gives the slot back once and lets the queue move ------------------------------


def _end_by_store(task, sfn):
    tasks.record_provider_outputs(task, "SUCCEEDED", ["https://x.aliyuncs.com/1.png"])
    assert workflow.store_step({"taskNo": task.task_no})["job"]["status"] == Outcome.COMPLETED


def _end_by_refund_step(task, sfn):
    workflow.refund_step({"taskNo": task.task_no, "job": {"status": Outcome.FAILED, "errorCode": "X"}})


def _end_by_cancel(task, sfn):
    settlement.cancel_task(task.user_id, task.task_no)


def _end_by_operator(task, sfn):
    settlement.operator_refund(task.task_no, "by hand")


def _end_by_reconciler(status):
    return lambda task, sfn: execution_ended(sfn, task, status)


ENDINGS = {
    "completed (store step)": _end_by_store,
    "refunded (refund step)": _end_by_refund_step,
    "cancelled by the user": _end_by_cancel,
    "refunded by an operator": _end_by_operator,
    "execution timed out": _end_by_reconciler("TIMED_OUT"),
    "execution aborted": _end_by_reconciler("ABORTED"),
    "execution failed (held)": _end_by_reconciler("FAILED"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_ending_gives_the_slot_back_once_and_wakes_the_next(pool, sfn, ending):
    pool(1)
    holder = submitted("alice")
    assert capacity.try_start(holder)
    assert tasks.record_provider_job(holder, "job-1", "RUNNING")
    waiting = _waiting(submitted("bob"))

    ENDINGS[ending](reload(holder), sfn)
    assert list(holders()) == [waiting.task_no]
    assert sfn.woken_tasks(Outcome.ADMITTED) == [waiting.task_no]

    assert capacity.finish(reload(holder)) is False  # any later ending of the same task: no second release
    assert list(holders()) == [waiting.task_no]
    assert sfn.woken_tasks(Outcome.ADMITTED) == [waiting.task_no]


def test_a_task_cancelled_while_queued_leaves_the_queue_and_frees_no_slot_it_did_not_hold(pool, sfn):
    pool(1)
    holder = submitted("alice")
    assert capacity.try_start(holder)
    queued = _waiting(submitted("bob"), token="bob-token")

    settlement.cancel_task("bob", queued.task_no)

    assert tickets() == [] and list(holders()) == [holder.task_no]
    assert sfn.woken == [("bob-token", {"taskNo": queued.task_no, "job": {"status": Outcome.SETTLED}})]


# --- the fair queue -------------------------------------------------------------------------------


def test_the_queue_wakes_members_first_then_everyone_in_arrival_order(pool, sfn, clock):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    first = _waiting(submitted("ann"))
    clock.advance(1)
    second = _waiting(submitted("bob"))
    clock.advance(1)
    member = _waiting(submitted("meg", priority=capacity.TIER_MEMBER))
    clock.advance(1)
    later_member = _waiting(submitted("max", priority=capacity.TIER_MEMBER))

    order = []
    current = running
    for _ in range(4):
        capacity.finish(current)
        woken = sfn.woken_tasks(Outcome.ADMITTED)[-1]
        order.append(woken)
        current = tasks.get_task(woken)
        assert capacity.try_start(current)  # the woken execution finds its slot handed over
        assert list(holders()) == [woken]

    assert order == [member.task_no, later_member.task_no, first.task_no, second.task_no]
    assert tickets() == []


def test_a_newcomer_does_not_overtake_a_task_already_waiting(pool, sfn):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    early = submitted("ann")
    assert not capacity.try_start(early)  # queued; its execution has not reached WaitForSlot yet

    capacity.finish(running)  # the slot is free, but kept for the one waiting ahead
    assert holders() == {}
    newcomer = submitted("bob")
    assert not capacity.try_start(newcomer)

    capacity.wait_for_slot(early, "ann-token")
    assert sfn.woken_tasks(Outcome.ADMITTED) == [early.task_no]
    assert list(holders()) == [early.task_no]


@pytest.mark.parametrize("leaves", ["cancelled", "queue timeout"])
def test_when_the_head_of_the_queue_leaves_the_next_one_gets_the_free_slot(pool, sfn, leaves):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    head = submitted("ann")
    assert not capacity.try_start(head)  # queued; its execution is on its way to WaitForSlot
    nxt = _waiting(submitted("bob"))
    capacity.finish(running)  # the free slot is kept for the head
    assert holders() == {} and sfn.woken_tasks(Outcome.ADMITTED) == []

    if leaves == "cancelled":
        settlement.cancel_task("ann", head.task_no)
    else:
        workflow.refund_step({"taskNo": head.task_no, "job": {"status": Outcome.QUEUE_TIMEOUT}})

    assert sfn.woken_tasks(Outcome.ADMITTED) == [nxt.task_no], "a free slot and a waiting task, nobody woken"
    assert list(holders()) == [nxt.task_no]


def test_a_waiting_execution_that_is_gone_gets_no_slot_and_the_next_one_does(pool, sfn):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    gone = _waiting(submitted("ann"), token="ann-token")
    nxt = _waiting(submitted("bob"))
    sfn.gone_tokens.add("ann-token")  # it timed out in the queue or was stopped

    capacity.finish(running)

    assert sfn.woken_tasks(Outcome.ADMITTED) == [nxt.task_no]
    assert list(holders()) == [nxt.task_no]
    assert gone.task_no not in tickets()


def test_queue_position_counts_from_one_and_moves_with_the_queue(pool, clock):
    pool(1)
    assert capacity.try_start(submitted("zoe"))
    waiting = []
    for name in ("ann", "bob", "cid"):
        waiting.append(_waiting(submitted(name)))
        clock.advance(1)

    positions = [capacity.queue_position(task) for task in waiting]
    assert [p[0] for p in positions] == [1, 2, 3]
    assert positions[0][1] <= positions[1][1] <= positions[2][1]

    settlement.cancel_task("ann", waiting[0].task_no)
    assert capacity.queue_position(waiting[1])[0] == 1
    assert capacity.queue_position(reload(waiting[0])) is None


# --- the submit rate ------------------------------------------------------------------------------


def test_the_submit_rate_waits_for_the_next_window_and_gives_up_after_max_wait(pool, monkeypatch):
    pool(10, submits_per_second=2)
    now = [1_000_000.0]
    monkeypatch.setattr(capacity, "_now", lambda: now[0])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    task = submitted("alice")
    capacity.take_submit_turn(task, sleep=sleep)
    capacity.take_submit_turn(task, sleep=sleep)
    assert slept == []
    capacity.take_submit_turn(task, sleep=sleep)  # the third in the same second waits for the next
    assert slept == [1.0]

    capacity.take_submit_turn(task, sleep=sleep)
    with pytest.raises(ProviderThrottled):
        capacity.take_submit_turn(task, max_wait=0, sleep=sleep)


def test_a_settled_task_is_not_started(pool):
    pool(1)
    task = submitted("alice")
    settlement.cancel_task("alice", task.task_no)
    assert workflow.submit_step({"taskNo": task.task_no})["job"]["status"] == Outcome.SETTLED
    assert holders() == {} and reload(task).status == TaskStatus.CANCELLED
