"""The points ledger: balances and append-only entries. Treat it like money.

Every change is one DynamoDB transaction: the balance update, an append-only ledger entry whose
key is (reference, kind) so a repeat is a no-op, the lots it takes from or gives to
(aigc.domain.lots) and (for tasks) the task record itself.
The BALANCE item also carries the list totals (`task_count`, `ledger_count`), bumped in those same
transactions: a repeat cancels the whole transaction, so it never bumps a counter either.
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from aigc.core.catalog import TaskType
from aigc.core.observability import count, logger
from aigc.core.errors import BadRequest, Busy, Conflict, RateLimited
from aigc.core.i18n import Message, _
from aigc.core.timeutil import iso_ms, utcnow
from aigc.core.vocab import LedgerKind, LotCategory
from aigc.domain import lots, tasks
from aigc.domain.lots import BALANCE, ledger_key
from aigc.store.db import PointsItem, TaskItem
from aigc.store.dynamo import ConditionFailed, TransactWrite, conditional, get_or_none, transact, transaction_applied
from aigc.store.paging import Cursor, Page, read_page

__all__ = ["BALANCE", "ledger_key"]  # the ledger's key forms live with the lots (aigc.domain.lots)
_ledger_entry = lots.ledger_entry


def _count_task(task: TaskItem) -> list:
    return [PointsItem.task_count.add(1), getattr(PointsItem, f"{task.task_type}_count").add(1)]


def has_account(user_id: str) -> bool:
    """A user is known once points were ever granted to them (a BALANCE item with a balance)."""
    item = get_or_none(PointsItem, user_id, BALANCE)
    return item is not None and item.balance is not None


def get_balance(user_id: str) -> int:
    item = get_or_none(PointsItem, user_id, BALANCE)
    return int(item.balance or 0) if item else 0


def debit_for_new_task(task: TaskItem, *, rate_limit_per_minute: int, extra_writes: Sequence = ()) -> None:
    """Create the task and charge for it atomically, within the user's submit rate limit.

    One transaction: rate counter (guarded by the limit), balance (guarded by balance >= cost), the
    lots that pay for it (aigc.domain.lots: spending order, each guarded by what was read), the
    LedgerKind.DEBIT ledger entry and the task record, both carrying which lots paid what. If any
    guard fails nothing is written; a lot that changed meanwhile makes it read the lots again.
    `extra_writes`: more guarded updates in the same transaction (an API key's daily spend,
    aigc.domain.api_keys.DailySpend), each `write(tx)` adding exactly one update, written last;
    when its condition fails, its `refusal()` is raised.
    """
    cost = int(task.points_cost)
    now = utcnow()
    minute = now.strftime("%Y%m%d%H%M")
    with_rate = rate_limit_per_minute > 0
    for _attempt in range(lots.PLAN_ATTEMPTS):
        takes = lots.plan_debit(task.user_id, cost, iso_ms(now))
        task.points_lots = lots.allocation(takes)

        def write(tx: TransactWrite, takes=takes) -> None:
            if with_rate:
                tx.update(
                    PointsItem(task.user_id, f"RATE#{minute}"),
                    actions=[PointsItem.submits.add(1), PointsItem.expires_at.set(int(time.time()) + 180)],
                    condition=PointsItem.submits.does_not_exist() | (PointsItem.submits < rate_limit_per_minute),
                )
            tx.update(
                PointsItem(task.user_id, BALANCE),
                actions=[PointsItem.balance.add(-cost), PointsItem.ledger_count.add(1), *_count_task(task),
                         *lots.emptied(takes)],
                condition=PointsItem.balance >= cost,
            )
            lots.take_actions(tx, task.user_id, takes)
            tx.save(
                _ledger_entry(task.user_id, task.task_no, LedgerKind.DEBIT, -cost, _("task {model}", model=task.model_name),
                              task.user_id, lots=task.points_lots),
                condition=PointsItem.entry.does_not_exist(),
            )
            tx.save(task, condition=TaskItem.task_no.does_not_exist())
            for extra in extra_writes:  # last: their checks are the transaction's last ones
                extra.write(tx)

        try:
            transact(write)
            return
        except ConditionFailed as failure:
            # pynamodb sends puts before updates: [ledger, task, (rate), balance, lots...]
            names = ["ledger", "task"] + (["rate"] if with_rate else []) + ["balance"]
            failed = dict(zip(names, failure.checks, strict=False))
            if failed.get("rate"):
                raise RateLimited(
                    _("too many submissions: at most {limit} tasks a minute, please retry shortly",
                      limit=rate_limit_per_minute),
                    retry_after=60 - now.second,
                ) from None
            for extra, hit in zip(extra_writes, failure.checks[-len(extra_writes):] if extra_writes else [], strict=False):
                if hit:
                    raise extra.refusal() from None
            if failed.get("ledger") or failed.get("task"):
                raise Conflict(_("this task number already exists; please retry")) from None
            # the balance or a lot moved since they were read (another request of this user): read them again
            lots.pause(_attempt)
    raise Busy(_("your points changed while this task was charged (another request of this account); nothing was "
                 "charged, please retry"))


def take_submit_turn(user_id: str, *, rate_limit_per_minute: int, what: Message | str) -> None:
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
        raise RateLimited(_("too many {what}: at most {limit} tasks a minute (submits and upload "
                            "URLs together), please retry shortly", what=what, limit=rate_limit_per_minute),
                          retry_after=60 - now.second)


def refund_task(task: TaskItem, *, status: str, error_code: str | None, error_message: Message | str) -> bool:
    """Give a task's points back once and settle it as `status` (failed or cancelled).

    The points go back to the lots the debit took them from (the task's `points_lots`). The part that came
    from a lot which has expired since is recorded as given back and expired at once: a REFUND entry of the
    whole cost and an EXPIRE entry (keyed by the task) of that part, in the same transaction.
    Returns False (and changes nothing) when the task is completed or was already refunded.
    """
    if status not in ("failed", "cancelled"):
        raise ValueError(status)
    cost = int(task.points_cost)
    now = utcnow()
    taken = _taken(task, cost)
    gone: set[str] = {key for key in taken if lots.SpendKey.parse(key).expired(iso_ms(now))}
    for _attempt in range(lots.PLAN_ATTEMPTS):
        returned = {key: points for key, points in taken.items() if key not in gone}
        expired = {key: points for key, points in taken.items() if key in gone}
        lost = sum(expired.values())

        def write(tx: TransactWrite, returned=returned, expired=expired, lost=lost) -> None:
            tx.save(
                _ledger_entry(task.user_id, task.task_no, LedgerKind.REFUND, cost, error_message, "system",
                              lots=taken),
                condition=PointsItem.entry.does_not_exist(),
            )
            if lost:
                tx.save(_ledger_entry(task.user_id, task.task_no, LedgerKind.EXPIRE, -lost,
                                      _("refunded to a lot that has expired (or whose order was refunded)"), "system",
                                      lots=expired),
                        condition=PointsItem.entry.does_not_exist())
            tx.update(PointsItem(task.user_id, BALANCE), actions=[
                PointsItem.balance.add(cost - lost), PointsItem.ledger_count.add(2 if lost else 1),
                *([PointsItem.active_lots.add(set(returned))] if returned else [])])
            tx.update(
                task,
                actions=[
                    *tasks.status_actions(task, status),
                    TaskItem.refunded.set(True),
                    TaskItem.error_code.set(error_code),
                    *tasks.error_actions(error_message),
                    TaskItem.completed_at.set(now),
                    TaskItem.updated_at.set(now),
                    *tasks.settled_actions(),
                ],
                condition=(TaskItem.status != "completed") & (TaskItem.refunded == False),
            )
            lots.give_back_actions(tx, task.user_id, returned)

        try:
            transact(write)
            return True
        except ConditionFailed as failure:
            # puts, then updates: [REFUND, (EXPIRE), balance, task, lots...]
            puts = 2 if lost else 1
            checks = failure.checks
            if any(checks[:puts]) or checks[puts + 1]:
                return False  # refunded before, or completed
            lot_checks = checks[puts + 2:]
            gone |= {key for key, failed in zip(returned, lot_checks, strict=False) if failed}
    raise Busy(_("the task's points kept changing while it was refunded (another request of this account); please "
                 "retry"))


def _taken(task: TaskItem, cost: int) -> dict[str, int]:
    """{spend key: points} the task's debit took; a debit from before lots took from the OPENING lot."""
    recorded = lots.plain(task.points_lots)
    if recorded:
        return recorded
    lots.adopt_opening(task.user_id)
    return {lots.opening_key(): cost}


@dataclass(frozen=True)
class GrantResult:
    grant_id: str
    applied: bool
    balance: int
    lot_id: str | None = None
    expire_time: str | None = None


def grant(user_id: str, amount: int, reason: str, *, grant_id: str, actor: str,
          max_amount: int | None = None, category: str = LotCategory.PROMOTIONAL,
          valid_days: int | None = None) -> GrantResult:
    """Add points to a user (admin) as a lot of `category` that expires after `valid_days` (None: never).
    `grant_id` makes a repeated grant a no-op (it is also the lot's id); `max_amount` is the deployment's
    per-grant cap (MaxGrantPoints). Every applied grant is counted in PointsGranted, which the
    points-granted alarm watches."""
    if amount <= 0:
        raise BadRequest(_("amount: must be a positive whole number of points"))
    if max_amount is not None and amount > max_amount:
        raise BadRequest(_("amount: at most {limit} points per grant (the stack's MaxGrantPoints)", limit=max_amount))
    now = utcnow()
    lot = lots.new_lot(user_id, grant_id, category=category, source="grant", ref=grant_id, points=amount,
                       expire_time=lots.expiry_after(now, valid_days), now=now)
    applied = add_points(user_id, [lot], [(grant_id, LedgerKind.GRANT, amount, reason, actor)])
    if applied:
        count("PointsGranted", amount)
        logger.info("points granted", extra={"user_id": user_id, "amount": amount, "actor": actor,
                                             "grant_id": grant_id, "category": category, "valid_days": valid_days})
    return GrantResult(grant_id, applied, get_balance(user_id), lot.lot_id, lot.expire_time)


def add_points(user_id: str, new_lots: list, entries: list[tuple[str, str, int, str, str]],
               extra: callable = None) -> bool:
    """Put new lots and their ledger entries (ref, kind, amount, reason, actor; the i-th entry is the i-th
    lot's) in one transaction with the balance; `extra(tx)` adds the caller's own writes (an order's update),
    which go after these. False when an entry already exists or `extra`'s condition failed: nothing written."""
    total = sum(lot_points for _, _, lot_points, _, _ in entries)

    def write(tx: TransactWrite) -> None:
        for lot, (ref, kind, points, reason, actor) in zip(new_lots, entries, strict=True):
            tx.save(_ledger_entry(user_id, ref, kind, points, reason, actor, lots={lots.key_of(lot).text: points}),
                    condition=PointsItem.entry.does_not_exist())
        actions = lots.add_lots(tx, new_lots)
        tx.update(PointsItem(user_id, BALANCE),
                  actions=[PointsItem.balance.add(total), PointsItem.ledger_count.add(len(entries)), *actions],
                  condition=lots.lotted_condition())
        if extra is not None:
            extra(tx)

    for _attempt in range(2):
        try:
            transact(write)
            return True
        except ConditionFailed as failure:
            # puts: [entries..., lots...]; updates: [balance, extra...]
            puts = 2 * len(entries)
            if any(failure.checks[:puts]) or any(failure.checks[puts + 1:]):
                return False
            lots.adopt_opening(user_id)  # the balance held points from before lots: adopt them, then again
    return False


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
