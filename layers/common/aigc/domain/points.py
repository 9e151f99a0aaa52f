"""The points ledger: balances and append-only entries. Treat it like money.

Every change is one DynamoDB transaction: the balance update, an append-only ledger entry whose
key is (reference, kind) so a repeat is a no-op, and (for tasks) the task record itself.
The BALANCE item also carries the list totals (`task_count`, `ledger_count`), bumped in those same
transactions: a repeat cancels the whole transaction, so it never bumps a counter either.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import get_args

from aigc.core.catalog import TaskType
from aigc.core.observability import count, logger
from aigc.core.errors import BadRequest, Conflict, InsufficientPoints, RateLimited
from aigc.core.timeutil import iso_ms, utcnow
from aigc.core.vocab import LedgerKind
from aigc.domain import tasks
from aigc.store.db import PointsItem, TaskItem
from aigc.store.dynamo import ConditionFailed, TransactWrite, conditional, get_or_none, transact, transaction_applied
from aigc.store.paging import Cursor, Page, read_page

BALANCE = "BALANCE"


def ledger_key(ref: str, kind: str) -> str:
    return f"TXN#{ref}#{kind}"


def _ledger_entry(user_id: str, ref: str, kind: str, amount: int, reason: str, actor: str | None) -> PointsItem:
    now = utcnow()
    return PointsItem(
        user_id,
        ledger_key(ref, kind),
        ledger_time=f"{iso_ms(now)}#{ref}#{kind}",
        kind=kind,
        amount=amount,
        ref=ref,
        reason=reason,
        actor=actor,
    )


def _count_task(task: TaskItem) -> list:
    return [PointsItem.task_count.add(1), getattr(PointsItem, f"{task.task_type}_count").add(1)]


def has_account(user_id: str) -> bool:
    """A user is known once points were ever granted to them (a BALANCE item with a balance)."""
    item = get_or_none(PointsItem, user_id, BALANCE)
    return item is not None and item.balance is not None


def get_balance(user_id: str) -> int:
    item = get_or_none(PointsItem, user_id, BALANCE)
    return int(item.balance or 0) if item else 0


def debit_for_new_task(task: TaskItem, *, rate_limit_per_minute: int) -> None:
    """Create the task and charge for it atomically, within the user's submit rate limit.

    One transaction: rate counter (guarded by the limit), balance (guarded by balance >= cost),
    the LedgerKind.DEBIT ledger entry and the task record. If any guard fails nothing is written.
    """
    cost = int(task.points_cost)
    now = utcnow()
    minute = now.strftime("%Y%m%d%H%M")
    with_rate = rate_limit_per_minute > 0

    def write(tx: TransactWrite) -> None:
        if with_rate:
            tx.update(
                PointsItem(task.user_id, f"RATE#{minute}"),
                actions=[PointsItem.submits.add(1), PointsItem.expires_at.set(int(time.time()) + 180)],
                condition=PointsItem.submits.does_not_exist() | (PointsItem.submits < rate_limit_per_minute),
            )
        tx.update(
            PointsItem(task.user_id, BALANCE),
            actions=[PointsItem.balance.add(-cost), PointsItem.ledger_count.add(1), *_count_task(task)],
            condition=PointsItem.balance >= cost,
        )
        tx.save(
            _ledger_entry(task.user_id, task.task_no, LedgerKind.DEBIT, -cost, f"task {task.model_name}", task.user_id),
            condition=PointsItem.entry.does_not_exist(),
        )
        tx.save(task, condition=TaskItem.task_no.does_not_exist())

    try:
        transact(write)
    except ConditionFailed as failure:
        # pynamodb sends puts before updates: [ledger, task, (rate), balance]
        failed = dict(zip(["ledger", "task"] + (["rate"] if with_rate else []) + ["balance"], failure.checks,
                          strict=False))
        if failed.get("rate"):
            raise RateLimited(
                f"too many submissions: at most {rate_limit_per_minute} tasks a minute, please retry shortly",
                retry_after=60 - now.second,
            ) from None
        if failed.get("balance"):
            raise InsufficientPoints(cost=cost, balance=get_balance(task.user_id)) from None
        if any(failed.values()):
            raise Conflict("this task number already exists; please retry") from None
        raise


def take_submit_turn(user_id: str, *, rate_limit_per_minute: int, what: str) -> None:
    """One turn in the user's per-minute submit window (the RATE# counter a debit takes) for
    something that becomes a task later without one: an upload URL. RateLimited (nothing
    written) when the minute is used up."""
    if rate_limit_per_minute <= 0:
        return
    now = utcnow()
    counter = PointsItem(user_id, f"RATE#{now.strftime('%Y%m%d%H%M')}")
    if not conditional(lambda: counter.update(
            actions=[PointsItem.submits.add(1), PointsItem.expires_at.set(int(time.time()) + 180)],
            condition=PointsItem.submits.does_not_exist() | (PointsItem.submits < rate_limit_per_minute))):
        raise RateLimited(f"too many {what}: at most {rate_limit_per_minute} tasks a minute (submits and upload "
                          "URLs together), please retry shortly", retry_after=60 - now.second)


def refund_task(task: TaskItem, *, status: str, error_code: str | None, error_message: str) -> bool:
    """Give a task's points back once and settle it as `status` (failed or cancelled).

    Returns False (and changes nothing) when the task is completed or was already refunded.
    """
    if status not in ("failed", "cancelled"):
        raise ValueError(status)
    cost = int(task.points_cost)
    now = utcnow()

    def write(tx: TransactWrite) -> None:
        tx.update(PointsItem(task.user_id, BALANCE),
                  actions=[PointsItem.balance.add(cost), PointsItem.ledger_count.add(1)])
        tx.save(
            _ledger_entry(task.user_id, task.task_no, LedgerKind.REFUND, cost, error_message[:200], "system"),
            condition=PointsItem.entry.does_not_exist(),
        )
        tx.update(
            task,
            actions=[
                TaskItem.status.set(status),
                TaskItem.refunded.set(True),
                TaskItem.error_code.set(error_code),
                TaskItem.error_message.set(error_message),
                TaskItem.completed_at.set(now),
                TaskItem.updated_at.set(now),
                *tasks.settled_actions(),
            ],
            condition=(TaskItem.status != "completed") & (TaskItem.refunded == False),
        )

    return transaction_applied(write)


@dataclass(frozen=True)
class GrantResult:
    grant_id: str
    applied: bool
    balance: int


def grant(user_id: str, amount: int, reason: str, *, grant_id: str, actor: str,
          max_amount: int | None = None) -> GrantResult:
    """Add points to a user (admin). `grant_id` makes a repeated grant a no-op; `max_amount` is the
    deployment's per-grant cap (MaxGrantPoints). Every applied grant is counted in PointsGranted,
    which the points-granted alarm watches."""
    if amount <= 0:
        raise BadRequest("amount: must be a positive whole number of points")
    if max_amount is not None and amount > max_amount:
        raise BadRequest(f"amount: at most {max_amount} points per grant (the stack's MaxGrantPoints)")

    def write(tx: TransactWrite) -> None:
        tx.update(PointsItem(user_id, BALANCE),
                  actions=[PointsItem.balance.add(amount), PointsItem.ledger_count.add(1)])
        tx.save(_ledger_entry(user_id, grant_id, LedgerKind.GRANT, amount, reason, actor),
                condition=PointsItem.entry.does_not_exist())

    applied = transaction_applied(write)
    if applied:
        count("PointsGranted", amount)
        logger.info("points granted", extra={"user_id": user_id, "amount": amount, "actor": actor,
                                             "grant_id": grant_id})
    return GrantResult(grant_id, applied, get_balance(user_id))


def task_total(user_id: str, task_type: str | None) -> int:
    """How many tasks the user's list holds (all, or of one type): the counters of `totals`."""
    counted = totals(user_id)
    return counted.tasks_by_type.get(task_type, 0) if task_type else counted.tasks


def ledger_entries(user_id: str, ref: str | None = None) -> list[PointsItem]:
    """All ledger entries of a user (newest first), or of one reference (a task number)."""
    condition = PointsItem.entry.startswith(f"TXN#{ref}#" if ref else "TXN#")
    items = list(PointsItem.query(user_id, range_key_condition=condition, consistent_read=True))
    return sorted(items, key=lambda item: item.ledger_time or "", reverse=True)


def save_uncharged_task(task: TaskItem) -> bool:
    """Record a task that is charged nothing (a rejected upload) and count it in the user's list.

    False when the task already exists (a repeated event): then nothing is written or counted.
    The BALANCE item it counts on may not exist (an unknown user): it gets a count, no balance.
    """

    def write(tx: TransactWrite) -> None:
        tx.save(task, condition=TaskItem.task_no.does_not_exist())
        tx.update(PointsItem(task.user_id, BALANCE), actions=_count_task(task))

    return transaction_applied(write)


@dataclass(frozen=True)
class Totals:
    tasks: int
    tasks_by_type: dict[str, int]
    ledger: int


def totals(user_id: str) -> Totals:
    """The counters kept on the BALANCE item: tasks in the user's list (all, per type), ledger entries."""
    item = get_or_none(PointsItem, user_id, BALANCE) or PointsItem(user_id, BALANCE)
    by_type = {name: int(getattr(item, f"{name}_count") or 0) for name in get_args(TaskType)}
    return Totals(int(item.task_count or 0), by_type, int(item.ledger_count or 0))


LEDGER_CURSOR = Cursor("ledger", "user_id", {
    "entry": re.compile(r"TXN#[^\x00-\x1f]{1,300}"),
    "ledger_time": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#[^\x00-\x1f]{1,300}"),
})


def ledger_page(user_id: str, page: int, size: int, token: str | None = None) -> Page[PointsItem]:
    """One page of the ledger, newest first; `total` from the ledger counter."""
    def query(start: dict | None, limit: int):
        return PointsItem.ledger_by_time.query(user_id, scan_index_forward=False, last_evaluated_key=start,
                                               limit=limit)

    return read_page(query, LEDGER_CURSOR, owner=user_id, page=page, size=size, token=token,
                     total=totals(user_id).ledger)
