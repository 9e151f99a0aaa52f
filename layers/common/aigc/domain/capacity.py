"""Provider capacity: a semaphore per pool in DynamoDB, and a fair queue in front of it.

A pool is one provider account or model group (catalog.json "capacity", overridden by the
`ProviderCapacity` template parameter): how many jobs the provider runs at once for us and how many
submits a second it accepts. Nothing is sent beyond them. Items in SchedulerTable:

- `POOL#<pool>` / `SLOTS`: `holders` = {taskNo: lease expiry}. A slot is taken by a conditional
  update (`size(holders) < concurrency`) and given back by a conditional REMOVE, so every holder
  releases exactly once, whoever ends the task. A lease nobody renewed (a crashed holder) is reclaimed.
- `POOL#<pool>` / `RATE#<window>`: submits sent in that window (TTL).
- `QUEUE#<pool>` / `<tier>#<created>#<taskNo>`: a waiting task and its execution's task token, sorted
  by tier (0 members, 1 everyone else) then arrival: first come, first served within a tier.

Whoever frees a slot hands it to the head of the queue: it takes the slot on the head's behalf,
deletes the ticket (only one waker can) and wakes the execution with SendTaskSuccess. A waiting
execution costs no Lambda time and no transitions while it waits.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from aigc.core.catalog import get_model, load_pools
from aigc.core.config import get_settings
from aigc.core.errors import ProviderThrottled
from aigc.core.observability import count, logger
from aigc.core.vocab import Outcome
from aigc.domain import durations, tasks
from aigc.store import executions
from aigc.store.db import SchedulerItem, TaskItem
from aigc.store.dynamo import conditional, get_or_none, size

TIER_MEMBER, TIER_DEFAULT = 0, 1
LEASE_SECONDS = 300  # a holder renews at every step; a crashed one's slot comes back after this
HANDOFF_LEASE_SECONDS = 120  # the woken execution renews it as soon as it runs
UNREGISTERED_TICKET_SECONDS = 60  # a ticket whose execution never came to wait is skipped after this


@dataclass(frozen=True)
class Pool:
    name: str
    concurrency: int
    submits_per_second: float


@lru_cache(maxsize=1)
def _overrides() -> dict:
    return get_settings().provider_capacity  # ProviderCapacity: JSON, validated with the environment


def _pool(name: str) -> Pool:
    default, pools = load_pools()
    spec = pools.get(name, default).model_dump(by_alias=True)
    spec.update(_overrides().get("*") or {})  # every pool (one provider account for all models)
    spec.update(_overrides().get(name) or {})
    return Pool(name, int(spec["concurrency"]), float(spec["submitsPerSecond"]))


def pool_of(model_name: str) -> Pool:
    return _pool(get_model(model_name).pool)


def tier_for(groups, member_group: str) -> int:
    """Members (the MEMBER_GROUP JWT group, admin-managed in Cognito) go before everyone else."""
    return TIER_MEMBER if member_group in (groups or ()) else TIER_DEFAULT


def _now() -> float:
    return time.time()


def _conditional(call) -> bool:
    return conditional(call)


# --- the semaphore ---------------------------------------------------------------------------


def _slots(pool: Pool) -> SchedulerItem:
    return SchedulerItem(f"POOL#{pool.name}", "SLOTS")


def _acquire(pool: Pool, task_no: str, lease: float) -> bool:
    """Take (or keep) a slot for task_no. Idempotent: a holder acquiring again only renews its lease."""
    item = _slots(pool)
    holder = SchedulerItem.holders[task_no]

    full = size(SchedulerItem.holders) >= pool.concurrency
    return _conditional(lambda: item.update(actions=[holder.set(int(_now() + lease))],
                                            condition=SchedulerItem.holders.exists() & (holder.exists() | ~full)))


def _ensure_slots(pool: Pool) -> None:
    _conditional(lambda: SchedulerItem(f"POOL#{pool.name}", "SLOTS", holders={}).save(
        condition=SchedulerItem.pk.does_not_exist()))


def holders(pool: Pool) -> dict[str, float]:
    try:
        item = SchedulerItem.get(f"POOL#{pool.name}", "SLOTS", consistent_read=True)
    except SchedulerItem.DoesNotExist:
        return {}
    return {k: float(v) for k, v in (item.holders.as_dict() if item.holders else {}).items()}


def _reclaim_expired(pool: Pool) -> int:
    """Take back slots whose lease ran out (a holder that crashed and was never released)."""
    reclaimed = 0
    for task_no, lease in holders(pool).items():
        if lease < _now():
            holder = SchedulerItem.holders[task_no]
            if _conditional(lambda h=holder, v=lease: _slots(pool).update(actions=[h.remove()],
                                                                          condition=h == int(v))):
                reclaimed += 1
                count("SlotLeasesReclaimed")
                logger.warning("reclaimed an expired provider slot", extra={"pool": pool.name, "holder": task_no})
    return reclaimed


def _take(pool: Pool, task_no: str, lease: float) -> bool:
    """Acquire, creating the pool's item on first use and reclaiming expired leases when full."""
    if _acquire(pool, task_no, lease):
        return True
    _ensure_slots(pool)
    if _acquire(pool, task_no, lease):
        return True
    return _reclaim_expired(pool) > 0 and _acquire(pool, task_no, lease)


def renew(task: TaskItem, seconds: float) -> bool:
    """A holder still at work extends its lease; a task running without a slot (a redrive) takes one."""
    return _take(pool_of(task.model_name), task.task_no, max(seconds, 0) + LEASE_SECONDS)


def _release(pool: Pool, task_no: str) -> bool:
    holder = SchedulerItem.holders[task_no]
    return _conditional(lambda: _slots(pool).update(actions=[holder.remove()], condition=holder.exists()))


# --- the queue -------------------------------------------------------------------------------


def _ticket_key(task: TaskItem) -> str:
    tier = TIER_DEFAULT if task.priority is None else int(task.priority)
    return f"{tier}#{task.created_at}#{task.task_no}"


def _ticket(pool: Pool, task: TaskItem) -> SchedulerItem:
    return SchedulerItem(f"QUEUE#{pool.name}", _ticket_key(task))


def _enqueue(pool: Pool, task: TaskItem, token: str | None = None) -> None:
    actions = [SchedulerItem.task_no.set(task.task_no), SchedulerItem.enqueued_at.set(
        SchedulerItem.enqueued_at | int(_now()))]
    if token:
        actions.append(SchedulerItem.token.set(token))
    _ticket(pool, task).update(actions=actions)


def _drop_ticket(pool: Pool, task: TaskItem) -> bool:
    return _conditional(lambda: _ticket(pool, task).delete(condition=SchedulerItem.sk.exists()))


def _leave_queue(pool: Pool, task: TaskItem) -> bool:
    """A task settled while it waited: drop its ticket and wake its execution so it ends now
    (AlreadySettled) instead of at the queue's time limit. True when this call dropped the ticket."""
    ticket = get_or_none(SchedulerItem, f"QUEUE#{pool.name}", _ticket_key(task))
    if ticket is None or not _drop_ticket(pool, task):
        return False
    if ticket.token:
        executions.send_task_success(ticket.token, {"taskNo": task.task_no, "job": {"status": Outcome.SETTLED}})
    return True


def _tickets(pool: Pool, limit: int | None = None, before: str | None = None) -> list[SchedulerItem]:
    condition = SchedulerItem.sk < before if before else None
    return list(SchedulerItem.query(f"QUEUE#{pool.name}", condition, consistent_read=True, limit=limit))


def try_start(task: TaskItem) -> bool:
    """Before a task is sent to the provider: take a slot unless it is full or others wait ahead.

    False means the task is now in the queue (its execution waits for a task token next).
    """
    pool = pool_of(task.model_name)
    if task.task_no in holders(pool):  # handed over while it waited
        started = _acquire(pool, task.task_no, LEASE_SECONDS)
    else:
        started = not _tickets(pool, limit=1, before=_ticket_key(task)) and _take(pool, task.task_no, LEASE_SECONDS)
    if started:
        _drop_ticket(pool, task)
        return True
    _enqueue(pool, task)
    count("TasksQueued")
    return False


def wait_for_slot(task: TaskItem, token: str) -> None:
    """The waiting state's Lambda: register the execution's token, then let the queue move.

    A slot may have freed between the failed try and now: `wake` then hands it over at once (maybe to
    this very task, which then stops waiting immediately).
    """
    pool = pool_of(task.model_name)
    _enqueue(pool, task, token)
    wake(pool)


def wake(pool: Pool) -> int:
    """Hand free slots to the head of the queue, in order; returns how many executions were woken."""
    woken = 0
    for _ in range(pool.concurrency + 10):
        head = next(iter(_tickets(pool, limit=1)), None)
        if head is None:
            break
        if not head.token:
            if _now() - float(head.enqueued_at or 0) < UNREGISTERED_TICKET_SECONDS:
                break  # its execution is about to wait and will call wake itself
            _conditional(lambda h=head: h.delete(condition=SchedulerItem.token.does_not_exist()))
            continue
        if not _take(pool, head.task_no, HANDOFF_LEASE_SECONDS):
            break  # full
        if not _conditional(lambda h=head: h.delete(condition=SchedulerItem.sk.exists())):
            _release_if_settled(pool, head.task_no)  # another waker handed it, or the task ended meanwhile
            continue
        if _send_admitted(head):
            woken += 1
        else:  # its execution no longer waits (stopped, or timed out in the queue)
            _release(pool, head.task_no)
    return woken


def _send_admitted(ticket: SchedulerItem) -> bool:
    return executions.send_task_success(ticket.token, {"taskNo": ticket.task_no, "job": {"status": Outcome.ADMITTED}})


def _release_if_settled(pool: Pool, task_no: str) -> None:
    try:
        task = tasks.get_task(task_no)
    except Exception:
        _release(pool, task_no)
        return
    if tasks.is_settled(task) or tasks.is_held(task):
        _release(pool, task_no)


def finish(task: TaskItem) -> bool:
    """Every ending (completed, failed, refunded, cancelled, aborted, timed out, held, reconciled):
    leave the queue, give the slot back if this task holds one (exactly once), and let the queue move.
    """
    pool = pool_of(task.model_name)
    left_queue = _leave_queue(pool, task)
    released = _release(pool, task.task_no)
    if released or left_queue:  # a head that leaves may leave a free slot kept for it: hand it on
        wake(pool)
    return released


def pump_all() -> int:
    """The sweep: reclaim expired leases and wake waiting tasks in every pool with a queue."""
    woken = 0
    seen = set()
    for item in SchedulerItem.scan(SchedulerItem.pk.startswith("QUEUE#")):
        name = item.pk.split("#", 1)[1]
        if name in seen:
            continue
        seen.add(name)
        pool = _pool(name)
        _reclaim_expired(pool)
        woken += wake(pool)
    return woken


# --- submit rate -----------------------------------------------------------------------------


def take_submit_turn(task: TaskItem, max_wait: float = 10.0, sleep=time.sleep) -> None:
    """Wait (briefly, inside the submit step) until the pool's submit rate allows one more call."""
    pool = pool_of(task.model_name)
    window = max(1.0, math.ceil(1.0 / pool.submits_per_second))
    allowed = max(1, int(pool.submits_per_second * window))
    give_up = _now() + max_wait
    while True:
        bucket = int(_now() // window)
        item = SchedulerItem(f"POOL#{pool.name}", f"RATE#{bucket}")
        if _conditional(lambda item=item: item.update(
                actions=[SchedulerItem.submits.add(1), SchedulerItem.expires_at.set(int(_now() + 3600))],
                condition=SchedulerItem.submits.does_not_exist() | (SchedulerItem.submits < allowed))):
            return
        if _now() >= give_up:
            raise ProviderThrottled(f"submit rate of pool {pool.name} is used up")
        sleep(max(0.05, (bucket + 1) * window - _now()))


# --- what the user sees ----------------------------------------------------------------------


def queue_position(task: TaskItem) -> tuple[int, datetime] | None:
    """(1-based position in its pool's queue, estimated start) for a waiting task, else None."""
    pool = pool_of(task.model_name)
    key = _ticket_key(task)
    try:
        SchedulerItem.get(f"QUEUE#{pool.name}", key, consistent_read=True)
    except SchedulerItem.DoesNotExist:
        return None
    position = SchedulerItem.count(f"QUEUE#{pool.name}", SchedulerItem.sk < key, consistent_read=True) + 1
    typical = durations.window(get_model(task.model_name)).typical
    running = len(holders(pool))
    free = max(0, pool.concurrency - running)
    if position <= free:
        wait = 0.0
    else:
        # Running jobs are on average half done; then every `concurrency` tasks ahead take one duration.
        wait = typical / 2 + ((position - free - 1) // pool.concurrency) * typical
    return position, datetime.now(timezone.utc) + timedelta(seconds=wait)
