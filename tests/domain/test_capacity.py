"""Provider capacity (aigc.domain.capacity): a pool is its provider's accounts, each with its own slots;
a task takes a slot on the least loaded account and records it; every ending gives that slot back exactly
once; the queue is sequence numbers (position = my number - served) that wake in order (tier, then
number) and survive a crashed waker; admission control refuses, before any charge, what would time out."""
from __future__ import annotations

import json
from contextlib import contextmanager

import botocore.client
import pytest

import aigc.providers
from aigc.core.errors import ProviderThrottled, RateLimited
from aigc.core.vocab import JobStatus, Outcome, TaskStatus
from aigc.domain import capacity, durations, settlement, tasks
from aigc.flows import submission, workflow
from tests.domain.support import (
    OUTPAINTING,
    clear_caches,
    execution_ended,
    grant,
    holders,
    holders_by_account,
    new_task,
    reload,
    snapshot,
    submitted,
    tickets,
)


@pytest.fixture
def pool(monkeypatch):
    """Size every pool (per account) as the ProviderCapacity template parameter would."""

    def size(concurrency: int, submits_per_second: float = 1000):
        monkeypatch.setenv("PROVIDER_CAPACITY", json.dumps(
            {"*": {"concurrency": concurrency, "submitsPerSecond": submits_per_second}}))
        clear_caches()
        return capacity.pool_of(OUTPAINTING)

    return size


@pytest.fixture
def keys(monkeypatch):
    """The provider keys' secret with these DashScope entries (a key, or {"id", "key", "concurrency"})."""
    secret = {}

    def use(*entries):
        secret.clear()
        secret["dashscope_api_keys"] = list(entries)
        monkeypatch.setenv("PROVIDER_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys")
        clear_caches()
        return [account.id for account in aigc.providers.accounts("dashscope")]

    monkeypatch.setattr(aigc.providers, "provider_keys", lambda: secret)
    return use


@contextmanager
def dynamodb_requests():
    """Every DynamoDB request made meanwhile: (operation, its parameters); failed conditions in `failed`."""
    made, failed = [], []
    real = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            made.append((operation, params))
        try:
            return real(client, operation, params)
        except botocore.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                failed.append((operation, params))
            raise

    botocore.client.BaseClient._make_api_call = record
    try:
        yield made, failed
    finally:
        botocore.client.BaseClient._make_api_call = real


WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def _writes(made) -> list[str]:
    """The partition keys written, one entry per write (tasks by number, scheduler items by pk)."""
    keys = []
    for operation, params in made:
        if operation in WRITES:
            key = params.get("Key") or params.get("Item") or {}
            keys.append((key.get("pk") or key.get("task_no") or {"S": "?"})["S"])
    return keys


def _waiting(task, token: str | None = None):
    """A task that found the pool full and whose execution now waits on a task token."""
    assert not capacity.try_start(task)
    capacity.wait_for_slot(reload(task), token or f"token-{task.task_no}")
    return task


def _admitted(sfn) -> list[str]:
    return sfn.woken_tasks(Outcome.ADMITTED)


# --- accounts and the semaphore ----------------------------------------------------------------------


def test_a_pool_gives_out_at_most_its_accounts_slots_least_loaded_first(pool, keys):
    accounts = keys("sk-a", "sk-b", "sk-c")
    pool(2)
    started = [submitted(f"user{i}") for i in range(7)]
    results = [capacity.try_start(task) for task in started]

    assert results == [True] * 6 + [False]
    spread = holders_by_account()
    assert sorted(spread) == sorted(accounts) and all(len(held) == 2 for held in spread.values())
    # Least loaded first: the first three went to three different accounts.
    assert len({started[i].provider_account for i in range(3)}) == 3


def test_an_accounts_own_concurrency_and_a_new_key_add_capacity_without_a_deploy(pool, keys):
    keys({"id": "small", "key": "sk-a", "concurrency": 1})
    pool(3)
    assert [capacity.try_start(submitted(f"user{i}")) for i in range(2)] == [True, False]

    keys({"id": "small", "key": "sk-a", "concurrency": 1}, "sk-b")  # a key added to the secret
    newcomer = submitted("zoe")
    assert capacity.pool_of(OUTPAINTING).slots == 4
    # One number is still waiting ahead: the newcomer queues behind it (fair), the free slots go in order.
    assert not capacity.try_start(newcomer)


def test_a_full_pool_is_joined_without_a_failing_write(pool, keys):
    keys("sk-a", "sk-b")
    pool(1)
    for name in ("ann", "bob"):
        assert capacity.try_start(submitted(name))
    late = submitted("cid")

    with dynamodb_requests() as (made, failed):
        assert not capacity.try_start(late)

    assert failed == []
    assert _writes(made) == [f"QUEUE#{capacity.pool_of(OUTPAINTING).name}", late.task_no]  # the number, on the task


def test_a_holder_asking_again_keeps_its_one_slot(pool):
    pool(2)
    task = submitted("alice")
    assert capacity.try_start(task)
    assert capacity.try_start(reload(task))
    assert capacity.renew(task, 30)

    assert list(holders()) == [task.task_no]
    assert capacity.try_start(submitted("bob"))  # the second slot is still free


def test_renewing_writes_only_when_the_lease_runs_short(pool):
    pool(1)
    task = submitted("alice")
    assert capacity.try_start(task)
    with dynamodb_requests() as (made, _):
        assert capacity.renew(task, 30)
    assert _writes(made) == []
    with dynamodb_requests() as (made, _):
        assert capacity.renew(task, capacity.LEASE_SECONDS)
    assert len(_writes(made)) == 1


def test_a_slot_is_given_back_exactly_once(pool, sfn):
    pool(1)
    first = submitted("alice")
    assert capacity.try_start(first)
    second = _waiting(submitted("bob"))

    assert capacity.finish(first) is True
    with dynamodb_requests() as (made, failed):
        assert capacity.finish(first) is False  # again: nothing to give back, nobody else woken
    assert _writes(made) == [] and failed == []

    assert list(holders()) == [second.task_no]  # the slot went to the waiting task, and stays its
    assert _admitted(sfn) == [second.task_no]


def test_a_crashed_holders_slot_comes_back_when_its_lease_runs_out(pool, monkeypatch):
    pool(1)
    crashed = submitted("alice")
    assert capacity.try_start(crashed)

    later = capacity._now() + capacity.LEASE_SECONDS + 1
    monkeypatch.setattr(capacity, "_now", lambda: later)
    newcomer = submitted("bob")
    assert capacity.try_start(newcomer)
    assert list(holders()) == [newcomer.task_no]


# --- the account a task runs on -------------------------------------------------------------------------


def test_a_task_is_submitted_polled_and_cancelled_with_the_account_it_recorded(pool, keys, provider):
    keys("sk-a", "sk-b")
    pool(1)
    first, second = submitted("ann"), submitted("bob")
    for task in (first, second):
        workflow.submit_step({"taskNo": task.task_no})
    accounts = [reload(task).provider_account for task in (first, second)]
    assert sorted(accounts) == sorted(holders_by_account())  # one each, recorded on the task
    assert provider.accounts_used[-1] == accounts[1]  # the submit spoke with the account of its slot

    provider.accounts_used.clear()
    workflow.poll_step({"taskNo": second.task_no}, remaining_ms=12_000)
    assert set(provider.accounts_used) == {accounts[1]}

    provider.accounts_used.clear()
    settlement.cancel_task("bob", second.task_no)
    assert provider.accounts_used == [accounts[1]] and provider.cancelled == ["job-2"]
    assert holders_by_account() == {accounts[0]: [first.task_no]}  # its account's slot, given back


# --- ending paths: each gives the slot back on its account, once, and lets the queue move ---------------


def _end_by_poll(task, sfn, provider):
    provider.will_answer(JobStatus.SUCCEEDED)
    workflow.poll_step({"taskNo": task.task_no}, remaining_ms=12_000)


def _end_by_store(task, sfn, provider):
    tasks.record_provider_outputs(task, "SUCCEEDED", ["https://x.aliyuncs.com/1.png"])
    assert workflow.store_step({"taskNo": task.task_no})["job"]["status"] == Outcome.COMPLETED


def _end_by_provider_failure(task, sfn, provider):
    provider.will_answer(JobStatus.FAILED, error_code="InternalError.Algo")
    state = workflow.poll_step({"taskNo": task.task_no}, remaining_ms=12_000)
    workflow.refund_step(state)


def _end_by_refund_step(task, sfn, provider):
    workflow.refund_step({"taskNo": task.task_no, "job": {"status": Outcome.FAILED, "errorCode": "X"}})


def _end_by_deadline(task, sfn, provider):
    workflow.refund_step({"taskNo": task.task_no, "job": {"status": Outcome.TIMED_OUT}})


def _end_by_cancel(task, sfn, provider):
    settlement.cancel_task(task.user_id, task.task_no)


def _end_by_operator(task, sfn, provider):
    settlement.operator_refund(task.task_no, "by hand")


def _end_by_reconciler(status):
    return lambda task, sfn, provider: execution_ended(sfn, task, status)


def _end_by_sweep(task, sfn, provider):
    tasks.hold(task, "Lambda.ServiceException", 60)
    sfn.status[task.task_no] = "FAILED"
    reload(task).update(actions=[tasks.TaskItem.attention_at.set("2000-01-01T00:00:00.000Z")])
    assert settlement.sweep()["refunded"] == 1


ENDINGS = {
    "job ended (poll)": _end_by_poll,
    "completed (store step)": _end_by_store,
    "provider failure (poll, refund step)": _end_by_provider_failure,
    "refunded (refund step)": _end_by_refund_step,
    "deadline (refund step)": _end_by_deadline,
    "cancelled by the user": _end_by_cancel,
    "refunded by an operator": _end_by_operator,
    "execution timed out": _end_by_reconciler("TIMED_OUT"),
    "execution aborted": _end_by_reconciler("ABORTED"),
    "execution failed (held)": _end_by_reconciler("FAILED"),
    "hold window passed (sweep)": _end_by_sweep,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_ending_gives_the_slot_back_on_its_account_once_and_wakes_the_next(pool, keys, sfn, provider, ending):
    keys("sk-a", "sk-b")
    pool(1)
    other = submitted("zed")
    workflow.submit_step({"taskNo": other.task_no})
    holder = submitted("alice")
    workflow.submit_step({"taskNo": holder.task_no})
    account = reload(holder).provider_account
    assert account != reload(other).provider_account
    waiting = _waiting(submitted("bob"))

    with dynamodb_requests() as (made, _):
        ENDINGS[ending](reload(holder), sfn, provider)
    slot_key = f"POOL#{capacity.pool_of(OUTPAINTING).name}#{account}"
    assert _writes(made).count(slot_key) == 2  # one release and one hand-over, on the holder's account only
    assert holders_by_account()[account] == [waiting.task_no]
    assert _admitted(sfn) == [waiting.task_no]

    with dynamodb_requests() as (made, failed):
        assert capacity.finish(reload(holder)) is False  # any later ending of the same task: nothing
    assert slot_key not in _writes(made) and failed == []
    assert _admitted(sfn) == [waiting.task_no]


def test_a_task_cancelled_while_queued_leaves_the_queue_and_frees_no_slot_it_did_not_hold(pool, sfn):
    pool(1)
    holder = submitted("alice")
    assert capacity.try_start(holder)
    queued = _waiting(submitted("bob"), token="bob-token")

    settlement.cancel_task("bob", queued.task_no)

    assert tickets() == [] and list(holders()) == [holder.task_no]
    assert sfn.woken == [("bob-token", {"taskNo": queued.task_no, "job": {"status": Outcome.SETTLED}})]


# --- the fair queue ---------------------------------------------------------------------------------


def test_the_queue_wakes_members_first_then_everyone_in_arrival_order(pool, sfn, clock):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    first = _waiting(submitted("ann"))
    second = _waiting(submitted("bob"))
    member = _waiting(submitted("meg", priority=capacity.TIER_MEMBER))
    later_member = _waiting(submitted("max", priority=capacity.TIER_MEMBER))
    assert tickets() == [member.task_no, later_member.task_no, first.task_no, second.task_no]

    order = []
    current = running
    for _ in range(4):
        capacity.finish(current)
        woken = _admitted(sfn)[-1]
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
    assert not capacity.try_start(early)  # has its number; its execution has not reached WaitForSlot yet

    capacity.finish(running)  # the slot is free, but kept for the one waiting ahead
    assert holders() == {}
    newcomer = submitted("bob")
    assert not capacity.try_start(newcomer)

    capacity.wait_for_slot(reload(early), "ann-token")
    assert _admitted(sfn) == [early.task_no]
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
    assert holders() == {} and _admitted(sfn) == []

    if leaves == "cancelled":
        settlement.cancel_task("ann", head.task_no)
    else:
        workflow.refund_step({"taskNo": head.task_no, "job": {"status": Outcome.QUEUE_TIMEOUT}})

    assert _admitted(sfn) == [nxt.task_no], "a free slot and a waiting task, nobody woken"
    assert list(holders()) == [nxt.task_no]
    # The head's execution arrives at WaitForSlot late: it ends at once and takes nothing.
    assert workflow.submit_step({"taskNo": head.task_no, "taskToken": "ann-late"}) == {"waiting": False}
    assert list(holders()) == [nxt.task_no]


def test_a_waiting_execution_that_is_gone_gets_no_slot_and_the_next_one_does(pool, sfn):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    gone = _waiting(submitted("ann"), token="ann-token")
    nxt = _waiting(submitted("bob"))
    sfn.gone_tokens.add("ann-token")  # it timed out in the queue or was stopped

    capacity.finish(running)

    assert _admitted(sfn) == [nxt.task_no]
    assert list(holders()) == [nxt.task_no]
    assert gone.task_no not in tickets()


def test_a_number_whose_ticket_never_comes_is_passed_over_after_the_grace(pool, sfn, monkeypatch):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    lost = submitted("ann")
    assert not capacity.try_start(lost)  # the step that took the number crashed: no ticket will ever come
    nxt = _waiting(submitted("bob"))

    capacity.finish(running)
    assert _admitted(sfn) == []  # within the grace, the slot is kept for the number

    later = capacity._now() + capacity.HOLE_GRACE_SECONDS + 1
    monkeypatch.setattr(capacity, "_now", lambda: later)
    assert settlement.sweep()["woken"] == 1
    assert _admitted(sfn) == [nxt.task_no] and list(holders()) == [nxt.task_no]
    # The lost one's execution shows up after all: it takes a new number, at the back.
    capacity.wait_for_slot(reload(lost), "ann-token")
    assert tickets() == [lost.task_no]


def test_a_wait_retried_after_its_first_token_died_is_not_stranded(pool, sfn):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    task = _waiting(submitted("ann"), token="first-attempt")
    sfn.gone_tokens.add("first-attempt")  # WaitForSlot's Lambda failed after placing the ticket: its token is dead

    capacity.finish(running)  # the slot is handed to its number, the wake-up fails: the number is passed
    assert _admitted(sfn) == [] and holders() == {}

    capacity.wait_for_slot(reload(task), "second-attempt")  # the state's retry, with a new token
    assert sfn.woken[-1] == ("second-attempt", {"taskNo": task.task_no, "job": {
        "status": Outcome.ADMITTED, "account": capacity.pool_of(OUTPAINTING).accounts[0].id}})
    assert list(holders()) == [task.task_no]


# --- a waker that crashes half way -----------------------------------------------------------------------


def test_a_waker_that_crashed_after_granting_the_slot_is_finished_by_the_next_one(pool, sfn, monkeypatch):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    head, behind = _waiting(submitted("ann")), _waiting(submitted("bob"))

    def crash(*args):
        raise RuntimeError("the waker's Lambda died here")

    with monkeypatch.context() as patched:
        patched.setattr(capacity, "_advance", crash)  # granted the head a slot, then died
        with pytest.raises(RuntimeError):
            capacity.finish(running)
    assert list(holders()) == [head.task_no] and _admitted(sfn) == []
    assert [capacity.queue_position(reload(t))[0] for t in (head, behind)] == [1, 2]

    assert capacity.wake(capacity.pool_of(OUTPAINTING)) == 1  # the next waker: the head, once
    assert _admitted(sfn) == [head.task_no] and list(holders()) == [head.task_no]
    assert capacity.queue_position(reload(head)) is None and capacity.queue_position(reload(behind))[0] == 1
    assert capacity.wake(capacity.pool_of(OUTPAINTING)) == 0


def test_a_waker_that_crashed_before_the_wake_up_is_recovered_when_the_lease_runs_out(pool, sfn, monkeypatch):
    pool(1)
    running = submitted("zoe")
    assert capacity.try_start(running)
    head, behind = _waiting(submitted("ann"), "ann-token"), _waiting(submitted("bob"))

    with monkeypatch.context() as patched:
        patched.setattr(capacity, "_send_admitted", lambda ticket, account: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError):
            capacity.finish(running)
    # Served and granted, never woken: the others' positions already count it as gone.
    assert list(holders()) == [head.task_no] and _admitted(sfn) == []
    assert capacity.queue_position(reload(head)) is None and capacity.queue_position(reload(behind))[0] == 1

    later = capacity._now() + capacity.LEASE_SECONDS + 1
    monkeypatch.setattr(capacity, "_now", lambda: later)
    settlement.sweep()
    assert _admitted(sfn) == [head.task_no] and list(holders()) == [head.task_no]
    assert capacity.try_start(reload(head))


# --- what the user sees ----------------------------------------------------------------------------------


def test_queue_position_is_my_number_minus_served_and_moves_with_the_queue(pool, sfn):
    pool(1)
    assert capacity.try_start(submitted("zoe"))
    waiting = [_waiting(submitted(name)) for name in ("ann", "bob", "cid")]
    member = _waiting(submitted("meg", priority=capacity.TIER_MEMBER))

    positions = [capacity.queue_position(reload(task)) for task in waiting]
    assert [p[0] for p in positions] == [2, 3, 4]  # the member goes first
    assert positions[0][1] <= positions[1][1] <= positions[2][1]
    assert capacity.queue_position(reload(member))[0] == 1

    settlement.cancel_task("ann", waiting[0].task_no)  # leaves: passed over when its number comes
    assert capacity.queue_position(reload(waiting[0])) is None or reload(waiting[0]).status == TaskStatus.CANCELLED
    assert capacity.queue_position(reload(waiting[1]))[0] == 3  # counted until the queue passes it


def test_queue_position_reads_one_counter_item_whatever_the_depth(pool):
    pool(1)
    assert capacity.try_start(submitted("zoe"))
    queued = [submitted(f"user{i}") for i in range(30)]
    for task in queued:
        assert not capacity.try_start(task)

    for task in (queued[0], queued[-1]):
        with dynamodb_requests() as (made, _):
            position = capacity.queue_position(reload(task))
        reads = [(op, params) for op, params in made if op not in ("GetItem",) or "task_no" not in params["Key"]]
        assert [op for op, _ in reads] == ["BatchGetItem"] or [op for op, _ in reads] == ["BatchGetItem", "GetItem"]
        assert sum(len(p["RequestItems"][t]["Keys"]) for op, p in reads if op == "BatchGetItem" for t in p["RequestItems"]) == 1
    assert position[0] == 30


def test_a_list_page_reads_each_pools_counters_once(pool):
    pool(1)
    assert capacity.try_start(submitted("zoe"))
    queued = [submitted(f"user{i}") for i in range(5)]
    for task in queued:
        assert not capacity.try_start(task)
    rows = [reload(task) for task in queued]

    with dynamodb_requests() as (made, _), capacity.shared_reads():
        positions = [capacity.queue_position(task)[0] for task in rows]
    assert positions == [1, 2, 3, 4, 5]
    assert [op for op, _ in made].count("BatchGetItem") == 1


# --- admission control, before the debit ------------------------------------------------------------------


def test_a_submit_that_would_wait_past_the_queue_limit_is_refused_before_any_charge(pool, monkeypatch):
    pool(2)
    monkeypatch.setattr(durations, "recent", lambda model: [60.0] * 30)  # jobs take a minute
    for i in range(2):
        assert capacity.try_start(submitted(f"run{i}"))
    queued = [submitted(f"user{i}") for i in range(51)]
    for task in queued:
        assert not capacity.try_start(task)
    # 51 ahead, 2 slots, a minute (+ 2 s of the slot's overhead) each: (51 + 0.5) * 62 / 2 = 1596.5 s, within
    # the admission's limit (0.9 x 1800 s = 1620 s).
    late = new_task("late")
    grant("late", 100)
    submission.charge_and_start(late)
    assert not capacity.try_start(reload(late))  # number 52: (52 + 0.5) * 31 = 1627.5 s from now on

    refused = new_task("later")
    grant("later", 100)
    before = snapshot()
    with pytest.raises(RateLimited) as raised:
        submission.charge_and_start(refused)
    assert snapshot() == before  # nothing charged, nothing written
    assert raised.value.retry_after == 8 and "52 tasks are waiting" in raised.value.message
    assert "about 28 minutes" in raised.value.message

    with dynamodb_requests() as (made, _):  # the next refusal in this container reuses that read
        with pytest.raises(RateLimited):
            capacity.admit(OUTPAINTING, capacity.TIER_DEFAULT, 1800)
    assert made == []

    member = new_task("meg", priority=capacity.TIER_MEMBER)  # members wait only behind members
    grant("meg", 100)
    submission.charge_and_start(member)


def test_joining_a_queue_faster_than_its_counter_should_take_is_refused_in_part(pool, monkeypatch):
    pool(1)
    assert capacity.try_start(submitted("run"))
    assert not capacity.try_start(submitted("first"))  # a queue: a new submit would join it
    now = [capacity._now()]
    monkeypatch.setattr(capacity, "_now", lambda: now[0])
    capacity.admit(OUTPAINTING, capacity.TIER_DEFAULT, 10**9)  # this container's first look at the counter
    for i in range(300):  # 300 numbers given out within half a second: 600 joins a second
        joining = new_task(f"user{i}", cost=0)
        joining.save()
        capacity._take_number(capacity.pool_of(OUTPAINTING), joining)
    now[0] += 0.5

    monkeypatch.setattr(capacity.random, "random", lambda: 0.9)  # above 400 / 600: this one is refused
    with pytest.raises(RateLimited) as raised:
        capacity.admit(OUTPAINTING, capacity.TIER_DEFAULT, 10**9)
    assert raised.value.retry_after == 1 and "nothing was charged" in raised.value.message
    monkeypatch.setattr(capacity.random, "random", lambda: 0.5)  # two in three still join
    capacity.admit(OUTPAINTING, capacity.TIER_DEFAULT, 10**9)
    capacity.admit(OUTPAINTING, capacity.TIER_MEMBER, 10**9)  # nobody waits among members: it starts, no number


def test_an_upload_is_not_refused_it_waits_or_times_out_refunded(pool, monkeypatch):
    pool(1)
    monkeypatch.setattr(durations, "recent", lambda model: [3600.0] * 30)
    assert capacity.try_start(submitted("run"))
    assert not capacity.try_start(submitted("queued"))
    upload = new_task("alice")
    upload.source = "upload"
    grant("alice", 100)
    submission.charge_and_start(upload)
    with pytest.raises(RateLimited):
        capacity.admit(OUTPAINTING, capacity.TIER_DEFAULT, 1800)


# --- the submit rate ----------------------------------------------------------------------------------


def test_the_submit_rate_is_per_account_waits_for_the_next_window_and_gives_up_after_max_wait(pool, keys, monkeypatch):
    keys("sk-a", "sk-b")
    pool(10, submits_per_second=2)
    now = [1_000_000.0]
    monkeypatch.setattr(capacity, "_now", lambda: now[0])
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    task, other = submitted("alice"), submitted("bob")
    accounts = aigc.providers.accounts("dashscope")
    task.provider_account, other.provider_account = accounts[0].id, accounts[1].id
    capacity.take_submit_turn(task, sleep=sleep)
    capacity.take_submit_turn(task, sleep=sleep)
    capacity.take_submit_turn(other, sleep=sleep)  # another account: its own window
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


def test_the_sweep_reads_its_pools_from_the_catalog_and_scans_nothing(pool):
    pool(1)
    assert capacity.try_start(submitted("alice"))
    with dynamodb_requests() as (made, _):
        settlement.sweep()
    assert not [op for op, _ in made if op == "Scan"]
