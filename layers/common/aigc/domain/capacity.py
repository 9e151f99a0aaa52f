"""Provider capacity: pools of provider accounts, a slot semaphore per account, a fair queue of sequence
numbers in front of them, and admission control at submit.

The policy and why: docs/ARCHITECTURE.md, "Provider capacity and the fair queue"; the items: "Tables".
In short, per pool (catalog.json "capacity", one per provider model by default):

- Accounts are the provider's keys (aigc.providers.accounts); each has `concurrency` slots for the pool.
  `POOL#<pool>#<account>` / `SLOTS` holds `holders` = {taskNo: lease expiry}. A task takes a slot on the
  least loaded account with a free one (a conditional write, tried only where a read showed room),
  records the account, and gives the slot back exactly once (a conditional REMOVE) whoever ends it.
- The queue is two counters per tier on one item (`QUEUE#<pool>` / `SEQ`: `issued_<tier>`, `served_<tier>`)
  and one ticket per number (`TICKET#<pool>#<tier>#<n>`: the task and its execution's token). A task that
  finds the pool full or others waiting takes the next number (one write), keeps it on its record, and its
  execution registers its token on the ticket; a position is `my number - served` (plus the members
  waiting, for everyone else): constant reads whatever the depth.
- Whoever frees a slot hands it on: it takes a slot for the head ticket, moves `served` on with a
  condition (only one waker can), then wakes the execution (SendTaskSuccess). Every step survives a
  crash of the waker: a grant without the move is reused by the next waker, a move without the wake
  is found when the grant's lease runs out (the waiting execution is woken then).
"""
from __future__ import annotations

import contextvars
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterator

from aigc import providers
from aigc.core.catalog import get_model, load_catalog, load_pools
from aigc.core.config import get_settings
from aigc.core.errors import NotFound, ProviderThrottled, RateLimited
from aigc.core.i18n import Message, _
from aigc.core.observability import count, logger
from aigc.core.vocab import Outcome
from aigc.domain import durations, tasks
from aigc.store import executions
from aigc.store.db import SchedulerItem, TaskItem
from aigc.store.dynamo import conditional, get_or_none, size

TIER_MEMBER, TIER_DEFAULT = 0, 1
TIERS = (TIER_MEMBER, TIER_DEFAULT)
LEASE_SECONDS = 300  # a holder renews before this runs out; a crashed one's slot comes back after it
RENEW_MARGIN_SECONDS = 30  # a holder writes a new lease only when less than what it needs + this is left
HOLE_GRACE_SECONDS = 60  # a number given out whose ticket never came (a crashed step) is passed over after this
TICKET_KEEP_SECONDS = 24 * 3600  # tickets and hole marks are read only while their number waits (TTL)
RATE_KEEP_SECONDS = 3600
# A slot is busy a little longer than the provider's job: the submit step before it, the poll that sees its end
# (up to a second late), the hand-over to the next task. Estimates count it; admission keeps a margin besides.
SLOT_OVERHEAD_SECONDS = 2.0
ADMISSION_MARGIN = 0.9  # admit only while the estimated wait is within this share of QueueTimeoutSeconds
_SLOTS, _TICKET = "SLOTS", "T"


@dataclass(frozen=True)
class Account:
    id: str
    concurrency: int


@dataclass(frozen=True)
class Pool:
    name: str
    provider: str
    accounts: tuple[Account, ...]
    submits_per_second: float  # per account

    @property
    def slots(self) -> int:
        return sum(account.concurrency for account in self.accounts)

    def account(self, account_id: str | None) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)


@lru_cache(maxsize=1)
def _overrides() -> dict:
    return get_settings().provider_capacity  # ProviderCapacity: JSON, validated with the environment


def _spec(name: str) -> dict:
    default, pools = load_pools()
    spec = pools.get(name, default).model_dump(by_alias=True)
    spec.update(_overrides().get("*") or {})  # every pool
    spec.update(_overrides().get(name) or {})
    return spec


def _pool(name: str, provider: str) -> Pool:
    spec = _spec(name)
    accounts = tuple(Account(a.id, a.concurrency or int(spec["concurrency"])) for a in providers.accounts(provider))
    return Pool(name, provider, accounts, float(spec["submitsPerSecond"]))


def pool_of(model_name: str) -> Pool:
    model = get_model(model_name)
    return _pool(model.pool, model.provider)


def pools() -> list[Pool]:
    """Every pool the catalog's models use, once each (what the sweep looks at: no scan)."""
    found: dict[str, str] = {}
    for model in load_catalog().values():
        found.setdefault(model.pool, model.provider)
    return [_pool(name, provider) for name, provider in sorted(found.items())]


def tier_for(groups, member_group: str) -> int:
    """Members (the MEMBER_GROUP JWT group, admin-managed in Cognito) go before everyone else."""
    return TIER_MEMBER if member_group in (groups or ()) else TIER_DEFAULT


def tier_of(task: TaskItem) -> int:
    return TIER_DEFAULT if task.priority is None else int(task.priority)


def _now() -> float:
    return time.time()


# --- keys -------------------------------------------------------------------------------------


def _slots(pool: Pool, account_id: str) -> SchedulerItem:
    return SchedulerItem(f"POOL#{pool.name}#{account_id}", _SLOTS)


def _seq(pool: Pool) -> SchedulerItem:
    return SchedulerItem(f"QUEUE#{pool.name}", "SEQ")


def _issued(tier: int):
    return getattr(SchedulerItem, f"issued_{tier}")


def _served(tier: int):
    return getattr(SchedulerItem, f"served_{tier}")


def _ticket_key(pool: Pool, tier: int, number: int) -> tuple[str, str]:
    return f"TICKET#{pool.name}#{tier}#{number}", _TICKET


def _ticket(pool: Pool, tier: int, number: int) -> SchedulerItem:
    return SchedulerItem(*_ticket_key(pool, tier, number))


# --- one read of a pool's state ------------------------------------------------------------------


@dataclass
class State:
    """The queue's counters and each account's holders, as one BatchGetItem read them."""

    pool: Pool
    issued: dict[int, int] = field(default_factory=dict)
    served: dict[int, int] = field(default_factory=dict)
    holders: dict[str, dict[str, float]] = field(default_factory=dict)  # account -> {task: lease}; absent: no item

    def waiting(self, tier: int = TIER_DEFAULT) -> int:
        """Numbers given out and not yet served in this tier and the ones before it."""
        return sum(max(0, self.issued.get(t, 0) - self.served.get(t, 0)) for t in TIERS if t <= tier)

    def live(self, account: Account) -> int:
        now = _now()
        return sum(1 for lease in self.holders.get(account.id, {}).values() if lease >= now)

    def free(self, account: Account) -> int:
        return max(0, account.concurrency - self.live(account))

    def holding(self, task_no: str) -> str | None:
        return next((account for account, held in self.holders.items() if task_no in held), None)

    def running(self) -> int:
        return sum(self.live(account) for account in self.pool.accounts)


_shared: contextvars.ContextVar[dict | None] = contextvars.ContextVar("capacity_shared_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within this block, a pool's queue counters are read once (a list page shows many queued tasks)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def read(pool: Pool, *, accounts: tuple[Account, ...] | None = None, counters: bool = True,
         consistent: bool = True) -> State:
    """The pool's counters and the holders of `accounts` (all of them by default): one request."""
    accounts = pool.accounts if accounts is None else accounts
    keys = [(f"QUEUE#{pool.name}", "SEQ")] if counters else []
    keys += [(f"POOL#{pool.name}#{account.id}", _SLOTS) for account in accounts]
    state = State(pool)
    for item in SchedulerItem.batch_get(keys, consistent_read=consistent):
        if item.sk == "SEQ":
            for tier in TIERS:
                state.issued[tier] = int(getattr(item, f"issued_{tier}") or 0)
                state.served[tier] = int(getattr(item, f"served_{tier}") or 0)
        else:
            account_id = item.pk.rsplit("#", 1)[1]
            state.holders[account_id] = {k: float(v) for k, v in (item.holders.as_dict() if item.holders else {}).items()}
    return state


def _counters(pool: Pool) -> State:
    memo = _shared.get()
    if memo is not None and pool.name in memo:
        return memo[pool.name]
    state = read(pool, accounts=(), consistent=False)
    if memo is not None:
        memo[pool.name] = state
    return state


def holders(pool: Pool) -> dict[str, float]:
    """Every holder of the pool, whichever account (tools and tests)."""
    return {task: lease for held in read(pool, counters=False).holders.values() for task, lease in held.items()}


# --- the semaphore ------------------------------------------------------------------------------


def _lease(seconds: float) -> float:
    """A lease expiry, unique to this grant (the fraction), so a grant can be taken back only by who made it."""
    return int(_now() + seconds) + random.randint(1, 999_999) / 1_000_000


def _ensure(pool: Pool, account_id: str) -> None:
    item = SchedulerItem(f"POOL#{pool.name}#{account_id}", _SLOTS, holders={})
    conditional(lambda: item.save(condition=SchedulerItem.pk.does_not_exist()))


def _grant(pool: Pool, account: Account, task_no: str, seconds: float) -> float | None:
    """A free slot on `account` for a task that holds none there: the lease written, or None."""
    value = _lease(seconds)
    holder = SchedulerItem.holders[task_no]
    condition = SchedulerItem.holders.exists() & holder.does_not_exist() & (size(SchedulerItem.holders) < account.concurrency)
    granted = conditional(lambda: _slots(pool, account.id).update(actions=[holder.set(value)], condition=condition))
    return value if granted else None


def _set_lease(pool: Pool, account_id: str, task_no: str, seconds: float) -> bool:
    holder = SchedulerItem.holders[task_no]
    return conditional(lambda: _slots(pool, account_id).update(actions=[holder.set(_lease(seconds))],
                                                               condition=holder.exists()))


def _remove(pool: Pool, account_id: str, task_no: str, lease: float | None = None) -> bool:
    """Give a slot back: any lease of the task (an ending), or only the given one (taking back a grant)."""
    holder = SchedulerItem.holders[task_no]
    condition = holder.exists() if lease is None else holder == lease
    return conditional(lambda: _slots(pool, account_id).update(actions=[holder.remove()], condition=condition))


def _reclaim(pool: Pool, state: State, accounts: tuple[Account, ...] | None = None) -> int:
    """Take back slots whose lease ran out: a holder that crashed, or a task woken from the queue whose
    waker crashed before the wake (that one is woken now instead, if its execution still waits)."""
    reclaimed, now = 0, _now()
    for account in accounts or pool.accounts:
        for task_no, lease in list(state.holders.get(account.id, {}).items()):
            if lease >= now:
                continue
            if _wake_lost(pool, account, task_no, lease):
                continue
            if _remove(pool, account.id, task_no, lease):
                reclaimed += 1
                state.holders[account.id].pop(task_no, None)
                count("SlotLeasesReclaimed")
                logger.warning("reclaimed an expired provider slot",
                               extra={"pool": pool.name, "account": account.id, "holder": task_no})
    return reclaimed


def _wake_lost(pool: Pool, account: Account, task_no: str, lease: float) -> bool:
    """A slot granted to a queued task whose wake never came: grant it again and wake it. False otherwise."""
    try:
        task = tasks.get_task(task_no)
    except NotFound:
        return False
    if task.started_at is not None or task.queue_ticket is None or tasks.is_settled(task) or tasks.is_held(task):
        return False
    ticket = get_or_none(SchedulerItem, *_ticket_key(pool, tier_of(task), int(task.queue_ticket)))
    if ticket is None or not ticket.token or ticket.left or ticket.task_no != task_no:
        return False
    holder = SchedulerItem.holders[task_no]
    value = _lease(LEASE_SECONDS)
    if not conditional(lambda: _slots(pool, account.id).update(actions=[holder.set(value)], condition=holder == lease)):
        return True  # someone else changed it meanwhile: not ours to take back
    if _send_admitted(ticket, account.id):
        logger.warning("woke a queued task whose wake-up was lost", extra={"pool": pool.name, "holder": task_no})
        return True
    _remove(pool, account.id, task_no, value)
    return True


def _least_loaded(pool: Pool, state: State) -> list[Account]:
    """Accounts with a free slot, least used first (share of its slots in use; ties at random)."""
    free = [account for account in pool.accounts if state.free(account) > 0]
    return sorted(free, key=lambda a: (state.live(a) / a.concurrency, random.random()))


def _take(pool: Pool, state: State, task_no: str, seconds: float) -> tuple[str, float] | None:
    """A slot on the least loaded account with room, tried only where the read showed room: (account, lease)."""
    for account in _least_loaded(pool, state):
        held = state.holders.get(account.id)
        if held is None:
            _ensure(pool, account.id)
        elif len(held) >= account.concurrency:  # room only once the expired leases are taken back
            _reclaim(pool, state, (account,))
        lease = _grant(pool, account, task_no, seconds)
        if lease is not None:
            state.holders.setdefault(account.id, {})[task_no] = lease
            return account.id, lease
    return None


# --- starting, renewing and ending ----------------------------------------------------------------


def try_start(task: TaskItem) -> bool:
    """Before a task is sent to the provider: take a slot unless the pool is full or others wait ahead.

    True: the task holds a slot, on `task.provider_account`. False: the task has a number in the queue
    (`task.queue_ticket`); its execution waits for a task token next.
    """
    pool = pool_of(task.model_name)
    state = read(pool)
    held = state.holding(task.task_no)
    if held:  # handed over while it waited (its lease is fresh), or a repeat of this step
        task.provider_account = held
        return True
    tier = tier_of(task)
    if task.queue_ticket is not None and int(task.queue_ticket) > state.served.get(tier, 0):
        return False  # it already waits its turn (a repeat of this step)
    if state.waiting(tier) == 0:
        taken = _take(pool, state, task.task_no, LEASE_SECONDS)
        if taken is not None:
            task.provider_account = taken[0]
            return True
    _take_number(pool, task)
    count("TasksQueued")
    return False


def _take_number(pool: Pool, task: TaskItem) -> int:
    """The next number of the task's tier (one write to the pool's counter), kept on the task record."""
    tier = tier_of(task)
    seq = _seq(pool)
    seq.update(actions=[_issued(tier).add(1)])
    number = int(getattr(seq, f"issued_{tier}"))
    task.update(actions=[TaskItem.queue_ticket.set(number)], condition=TaskItem.task_no.exists())
    return number


def _place_ticket(pool: Pool, task: TaskItem, number: int, token: str) -> bool:
    ticket = SchedulerItem(*_ticket_key(pool, tier_of(task), number), task_no=task.task_no, token=token,
                           enqueued_at=int(_now()), expires_at=int(_now()) + TICKET_KEEP_SECONDS)
    condition = SchedulerItem.skipped.does_not_exist() & SchedulerItem.left.does_not_exist() & (
        SchedulerItem.task_no.does_not_exist() | (SchedulerItem.task_no == task.task_no))
    return conditional(lambda: ticket.save(condition=condition))


def wait_for_slot(task: TaskItem, token: str) -> None:
    """The waiting state's Lambda: put the execution's token on the task's ticket, then let the queue move
    (a slot may have freed since the task took its number: it is handed over at once, maybe to this task)."""
    pool = pool_of(task.model_name)
    number = task.queue_ticket
    if number is not None and not _place_ticket(pool, task, int(number), token):
        found = get_or_none(SchedulerItem, *_ticket_key(pool, tier_of(task), int(number)))
        if found is not None and found.left:  # settled on its way here
            executions.send_task_success(token, {"taskNo": task.task_no, "job": {"status": Outcome.SETTLED}})
            return
        number = None  # passed over while the execution was on its way here
    if number is None:  # no number (an execution from before numbers, or passed over): a new one, at the back
        number = _take_number(pool, task)
        _place_ticket(pool, task, number, token)
    state = read(pool)
    if int(number) <= state.served.get(tier_of(task), 0):
        # Served while an earlier attempt of this state held the ticket (its token died with it): the slot, if
        # it is still granted, is this execution's; else a new number, at the back.
        held = state.holding(task.task_no)
        if held:
            executions.send_task_success(token, {"taskNo": task.task_no,
                                                 "job": {"status": Outcome.ADMITTED, "account": held}})
            return
        _place_ticket(pool, task, _take_number(pool, task), token)
        state = None
    wake(pool, state)


def renew(task: TaskItem, seconds: float) -> bool:
    """A holder still at work makes sure its lease covers the next `seconds` (a write only when it does not);
    a task running without a slot (a redrive after its slot was given back) takes one, on its job's account."""
    pool = pool_of(task.model_name)
    account = pool.account(task.provider_account)
    state = read(pool, accounts=(account,) if account else None, counters=False)
    held = state.holding(task.task_no)
    if held:
        if state.holders[held][task.task_no] >= _now() + max(seconds, 0) + RENEW_MARGIN_SECONDS:
            return True
        return _set_lease(pool, held, task.task_no, max(seconds, 0) + LEASE_SECONDS)
    seconds = max(seconds, 0) + LEASE_SECONDS
    if account is not None and task.provider_task_id:  # the job runs at that account: its slot, if it has room
        if state.free(account) == 0 and not _reclaim(pool, state, (account,)):
            return False
        if account.id not in state.holders:
            _ensure(pool, account.id)
        return _grant(pool, account, task.task_no, seconds) is not None
    if account is not None:
        state = read(pool, counters=False)
    taken = _take(pool, state, task.task_no, seconds)
    if taken:
        task.provider_account = taken[0]
    return taken is not None


def _release(pool: Pool, task: TaskItem) -> bool:
    """Give back the task's slot if it holds one: read first, so an ending that holds none writes nothing."""
    account = pool.account(task.provider_account)
    state = read(pool, accounts=(account,) if account else None, counters=False)
    held = state.holding(task.task_no)
    return bool(held) and _remove(pool, held, task.task_no)


def _leave_queue(pool: Pool, task: TaskItem) -> bool:
    """A task settled while it waited: mark its ticket left (the queue passes it at once) and wake its
    execution so it ends now (AlreadySettled), not at the queue's time limit. True when it left now."""
    if task.queue_ticket is None or task.started_at is not None:
        return False
    ticket = _ticket(pool, tier_of(task), int(task.queue_ticket))
    found = get_or_none(SchedulerItem, ticket.pk, ticket.sk)
    if found is None or not found.task_no:  # its execution has not registered yet: leave a mark for it
        mark = SchedulerItem(ticket.pk, ticket.sk, task_no=task.task_no, left=True,
                             expires_at=int(_now()) + TICKET_KEEP_SECONDS)
        if conditional(lambda: mark.save(condition=SchedulerItem.task_no.does_not_exist()
                                          & SchedulerItem.skipped.does_not_exist())):
            return True
        found = get_or_none(SchedulerItem, ticket.pk, ticket.sk)
    if found is None or found.task_no != task.task_no or found.left or found.skipped:
        return False
    if not conditional(lambda: ticket.update(actions=[SchedulerItem.left.set(True)],
                                             condition=SchedulerItem.left.does_not_exist())):
        return False
    if found.token:
        executions.send_task_success(found.token, {"taskNo": task.task_no, "job": {"status": Outcome.SETTLED}})
    return True


def finish(task: TaskItem) -> bool:
    """Every ending (completed, failed, refunded, cancelled, aborted, timed out, held, reconciled): leave the
    queue, give the slot back if this task holds one (exactly once), and let the queue move."""
    pool = pool_of(task.model_name)
    left = _leave_queue(pool, task)
    released = _release(pool, task)
    if released or left:
        wake(pool)
    return released


# --- handing slots to the queue -------------------------------------------------------------------

_STOP, _NEXT, _WOKEN = "stop", "next", "woken"


def wake(pool: Pool, state: State | None = None) -> int:
    """Hand free slots to the head of the queue, in order (members first, then by number); returns how
    many executions were woken. `state`: the pool as the caller has just read it (saves the first read)."""
    woken = 0
    for _round in range(pool.slots + 20):
        state = state or read(pool)
        tier = next((t for t in TIERS if state.issued.get(t, 0) > state.served.get(t, 0)), None)
        if tier is None:
            break
        number = state.served.get(tier, 0) + 1
        ticket = get_or_none(SchedulerItem, *_ticket_key(pool, tier, number))
        outcome = _hand(pool, state, tier, number, ticket)
        if outcome == _STOP:
            break
        woken += outcome == _WOKEN
        state = None
    return woken


def _advance(pool: Pool, tier: int, number: int) -> bool:
    """Move `served` from number - 1 to number: only one waker can."""
    before = _served(tier) == number - 1
    if number == 1:
        before = _served(tier).does_not_exist() | before
    return conditional(lambda: _seq(pool).update(actions=[_served(tier).set(number)], condition=before))


def _hand(pool: Pool, state: State, tier: int, number: int, ticket: SchedulerItem | None) -> str:
    if ticket is None or not ticket.task_no:
        return _hole(pool, tier, number, ticket)
    if ticket.left or ticket.skipped:
        _advance(pool, tier, number)
        return _NEXT
    held = state.holding(ticket.task_no)
    if held:  # a waker before us granted it a slot and stopped before moving on: finish its work
        lease, fresh = state.holders[held][ticket.task_no], False
    else:
        taken = _take(pool, state, ticket.task_no, LEASE_SECONDS)
        if taken is None:
            return _STOP  # no free slot: the next ending hands one on
        (held, lease), fresh = taken, True
    if not _advance(pool, tier, number):  # another waker handed this number meanwhile
        if fresh:
            _remove(pool, held, ticket.task_no, lease)
        return _NEXT
    if _send_admitted(ticket, held):
        return _WOKEN
    _remove(pool, held, ticket.task_no, lease)  # its execution no longer waits (stopped, or out of queue time)
    return _NEXT


def _hole(pool: Pool, tier: int, number: int, ticket: SchedulerItem | None) -> str:
    """A number given out whose ticket is not there: its execution is on its way (it wakes the queue itself
    once its ticket is in), or the step that took the number crashed. Passed over after HOLE_GRACE_SECONDS."""
    key = _ticket_key(pool, tier, number)
    if ticket is None:
        mark = SchedulerItem(*key, hole_at=int(_now()), expires_at=int(_now()) + TICKET_KEEP_SECONDS)
        conditional(lambda: mark.save(condition=SchedulerItem.pk.does_not_exist()))
        return _STOP
    if _now() - float(ticket.hole_at or 0) < HOLE_GRACE_SECONDS:
        return _STOP
    if conditional(lambda: SchedulerItem(*key).update(actions=[SchedulerItem.skipped.set(True)],
                                                      condition=SchedulerItem.task_no.does_not_exist())):
        _advance(pool, tier, number)
        count("QueueNumbersSkipped")
        logger.warning("passed over a queue number whose ticket never came", extra={"pool": pool.name, "number": number})
    return _NEXT


def _send_admitted(ticket: SchedulerItem, account_id: str) -> bool:
    return executions.send_task_success(ticket.token, {"taskNo": ticket.task_no,
                                                       "job": {"status": Outcome.ADMITTED, "account": account_id}})


def pump_all() -> int:
    """The sweep: in every pool of the catalog, take back expired leases and hand free slots on (a lost
    wake-up). One read per pool when nothing is to be done."""
    woken = 0
    for pool in pools():
        state = read(pool)
        _reclaim(pool, state)
        if state.waiting():
            woken += wake(pool)
    return woken


def waiting(pool: Pool) -> list[str]:
    """The tasks waiting in the pool's queue, in the order they will be served (tools and tests: reads one
    ticket per waiting number)."""
    state = read(pool, accounts=())
    found = []
    for tier in TIERS:
        for number in range(state.served.get(tier, 0) + 1, state.issued.get(tier, 0) + 1):
            ticket = get_or_none(SchedulerItem, *_ticket_key(pool, tier, number))
            if ticket is not None and ticket.task_no and not ticket.left and not ticket.skipped:
                found.append(ticket.task_no)
    return found


# --- submit rate ------------------------------------------------------------------------------


def take_submit_turn(task: TaskItem, max_wait: float = 10.0, sleep=time.sleep) -> None:
    """Wait (briefly, inside the submit step) until the account's submit rate allows one more call."""
    pool = pool_of(task.model_name)
    account = task.provider_account or pool.accounts[0].id
    window = max(1.0, math.ceil(1.0 / pool.submits_per_second))
    allowed = max(1, int(pool.submits_per_second * window))
    give_up = _now() + max_wait
    while True:
        bucket = int(_now() // window)
        item = SchedulerItem(f"RATE#{pool.name}#{account}", str(bucket))
        if conditional(lambda item=item: item.update(
                actions=[SchedulerItem.submits.add(1), SchedulerItem.expires_at.set(int(_now() + RATE_KEEP_SECONDS))],
                condition=SchedulerItem.submits.does_not_exist() | (SchedulerItem.submits < allowed))):
            return
        if _now() >= give_up:
            raise ProviderThrottled(f"submit rate of pool {pool.name}, account {account} is used up")
        sleep(max(0.05, (bucket + 1) * window - _now()))


# --- what the user sees, and admission --------------------------------------------------------------


def _typical(model_name: str) -> float:
    return durations.window(get_model(model_name)).typical


def wait_seconds(pool: Pool, ahead: int, typical: float) -> float:
    """When a task with `ahead` tasks before it should start: the pool finishes `slots` jobs per `typical`
    seconds (plus the slot's overhead), and the running ones are half done on average."""
    return (ahead + 0.5) * (typical + SLOT_OVERHEAD_SECONDS) / max(1, pool.slots)


def queue_position(task: TaskItem) -> tuple[int, datetime] | None:
    """(1-based position in its pool's queue, estimated start) for a waiting task, else None. Constant reads:
    the pool's two counters (shared by a whole list page, see shared_reads) and the learned durations."""
    if task.queue_ticket is None:
        return None
    pool = pool_of(task.model_name)
    state = _counters(pool)
    tier, number = tier_of(task), int(task.queue_ticket)
    if number <= state.served.get(tier, 0):
        return None  # handed a slot (or passed over): starting
    ahead = (number - state.served.get(tier, 0) - 1) + state.waiting(tier - 1)
    wait = wait_seconds(pool, ahead, _typical(task.model_name))
    return ahead + 1, datetime.now(timezone.utc) + timedelta(seconds=wait)


# A refusal's read, reused by the same container for a few seconds: a queue too long now cannot drain in
# that time (it shrinks by `slots` jobs per job duration), so a burst's refusals cost no reads.
REFUSAL_REUSE_SECONDS = 5.0
_refusals: dict[tuple[str, int], tuple[float, int, float]] = {}  # (pool, tier) -> (read at, ahead, wait)


# Tasks a second that may join one pool's queue: each writes its counter item, and 1,000 writes a second is a
# DynamoDB partition's limit. Past it (measured by this container from the counters it reads), submits that
# would join the queue are refused at random in the share that brings the rate back under it: 429, Retry-After 1.
JOIN_RATE_LIMIT = 400.0
_joins: dict[str, tuple[float, int, float]] = {}  # pool -> (read at, numbers given out then, joins a second)


def _joining_too_fast(pool: Pool, state: State) -> bool:
    now, issued = _now(), sum(state.issued.values())
    at, before, rate = _joins.get(pool.name, (now, issued, 0.0))
    if now - at >= 0.5:
        rate = (issued - before) / (now - at)
        _joins[pool.name] = (now, issued, rate)
    elif pool.name not in _joins:
        _joins[pool.name] = (now, issued, 0.0)
    return rate > JOIN_RATE_LIMIT and random.random() > JOIN_RATE_LIMIT / rate


def admit(model_name: str, tier: int, queue_timeout_seconds: int) -> None:
    """Admission control, before the debit: when a task submitted now would wait longer than (a margin of)
    the queue's time limit, refuse it (429) with the estimate and when to come back, instead of charging for
    work that would time out. One read (the pool's counters), none while a recent refusal still holds;
    nothing is written."""
    pool = pool_of(model_name)
    limit = ADMISSION_MARGIN * queue_timeout_seconds
    recent = _refusals.get((pool.name, tier))
    if recent and time.monotonic() - recent[0] < REFUSAL_REUSE_SECONDS:
        ahead, wait = recent[1], recent[2] - (time.monotonic() - recent[0])
    else:
        state = _counters(pool)
        ahead = state.waiting(tier)
        wait = wait_seconds(pool, ahead, _typical(model_name)) if ahead else 0.0
        if wait > limit:
            _refusals[(pool.name, tier)] = (time.monotonic(), ahead, wait)
        elif ahead and _joining_too_fast(pool, state):
            count("SubmitsRefusedBusy", model=model_name)
            raise RateLimited(_("the provider queue for {model} is taking more tasks a second than it can "
                                "number; nothing was charged, please retry in a second", model=model_name),
                              retry_after=1)
    if wait <= limit:
        return
    retry_after = max(1, math.ceil(wait - limit))
    count("SubmitsRefusedBusy", model=model_name)
    raise RateLimited(_(
        "the provider is busy: {ahead} tasks are waiting for {model} and a task submitted now would wait "
        "about {wait}, more than the queue's limit of {limit}; nothing was charged, please retry in about {retry}",
        ahead=ahead, model=model_name, wait=_minutes(wait), limit=_minutes(queue_timeout_seconds),
        retry=_minutes(retry_after)), retry_after=retry_after)


def _minutes(seconds: float) -> Message:
    return (_("{minutes} minutes", minutes=math.ceil(seconds / 60)) if seconds >= 90
            else _("{seconds} seconds", seconds=math.ceil(seconds)))
