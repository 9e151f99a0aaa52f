"""Points lots (aigc.domain.lots with aigc.domain.points): spending order, refunds to the lots the points came
from, expiry, the bound on one debit, and points from before lots.

Every test ends with the lot books checked for every user (tests/lot_books.py) besides the tier's own books.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from aigc.core.errors import Conflict, InsufficientPoints
from aigc.core.timeutil import iso_ms
from aigc.core.vocab import LedgerKind, LotCategory, TaskStatus
from aigc.domain import lots, points
from aigc.store.db import LotItem, PointsItem
from local import moto_dynamodb
from tests import lot_books
from tests.domain.support import new_task, reload, snapshot

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def days(self, days: float) -> None:
        self.now += timedelta(days=days)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """One clock for the ledger's modules (grants set expiries, debits and refunds read the time)."""
    clock = Clock()
    for module in ("aigc.domain.lots", "aigc.domain.points", "aigc.domain.orders", "aigc.domain.tasks"):
        monkeypatch.setattr(f"{module}.utcnow", clock)
    return clock


@pytest.fixture(autouse=True)
def lot_books_checked(aws):
    yield
    lot_books.check_all()


def grant(user: str, amount: int, *, category=LotCategory.PAID, days: int | None = None, grant_id: str | None = None):
    grant_id = grant_id or f"G-{category}-{days}-{amount}-{len(lot_books.user_lots(user))}"
    points.grant(user, amount, "test", grant_id=grant_id, actor="test", category=category, valid_days=days)
    return grant_id


def debit(user: str = "alice", cost: int = 10):
    task = new_task(user, cost=cost)
    points.debit_for_new_task(task, rate_limit_per_minute=0)
    return task


def remaining(user: str = "alice") -> dict[str, int]:
    return {lot.lot_id: int(lot.remaining) for lot in lot_books.user_lots(user)}


# --- spending order -----------------------------------------------------------------------------------


def test_promotional_lots_are_spent_before_paid_and_earliest_expiry_first(clock):
    paid_soon = grant("alice", 10, category=LotCategory.PAID, days=5)
    promo_late = grant("alice", 10, category=LotCategory.PROMOTIONAL, days=60)
    promo_never = grant("alice", 10, category=LotCategory.PROMOTIONAL)
    promo_soon = grant("alice", 10, category=LotCategory.PROMOTIONAL, days=30)

    first, second, third, fourth = (debit(cost=10) for _ in range(4))

    assert [lots.plain(t.points_lots) for t in (first, second, third, fourth)] == [
        {lots.SpendKey(LotCategory.PROMOTIONAL, iso_ms(START + timedelta(days=30)), promo_soon).text: 10},
        {lots.SpendKey(LotCategory.PROMOTIONAL, iso_ms(START + timedelta(days=60)), promo_late).text: 10},
        {lots.SpendKey(LotCategory.PROMOTIONAL, None, promo_never).text: 10},
        {lots.SpendKey(LotCategory.PAID, iso_ms(START + timedelta(days=5)), paid_soon).text: 10},
    ]
    assert points.get_balance("alice") == 0


def test_one_debit_takes_from_several_lots_in_one_transaction_and_records_them(clock):
    a = grant("alice", 3, category=LotCategory.PROMOTIONAL, days=1)
    b = grant("alice", 4, category=LotCategory.PROMOTIONAL, days=2)
    c = grant("alice", 20, category=LotCategory.PAID)

    task = debit(cost=10)

    assert remaining() == {a: 0, b: 0, c: 17}
    debit_entry = points.ledger_entries("alice", task.task_no)[0]
    assert sorted(lots.plain(debit_entry.lots).values()) == [3, 3, 4]
    assert lots.plain(debit_entry.lots) == lots.plain(reload(task).points_lots)
    assert int(debit_entry.amount) == -10


def test_not_enough_points_names_what_can_be_spent_now_and_writes_nothing(clock):
    grant("alice", 8, days=1)
    grant("alice", 5)
    clock.days(2)  # the 8 have expired (the schedule has not run yet)
    before = snapshot()

    with pytest.raises(InsufficientPoints) as refused:
        debit(cost=10)

    assert (refused.value.cost, refused.value.balance) == (10, 5)
    assert "GET /points/packs" in refused.value.message
    assert snapshot() == before


def test_a_lot_past_its_expiry_is_never_spent_even_before_the_schedule_handles_it(clock):
    old = grant("alice", 10, category=LotCategory.PROMOTIONAL, days=1)
    fresh = grant("alice", 10, category=LotCategory.PAID)
    clock.days(1)  # exactly at expiry: expired

    debit(cost=10)

    assert remaining() == {old: 10, fresh: 0}


# --- refunds ------------------------------------------------------------------------------------------


def test_a_refund_returns_points_to_the_lots_they_came_from(clock):
    a = grant("alice", 6, category=LotCategory.PROMOTIONAL, days=10)
    b = grant("alice", 20, category=LotCategory.PAID)
    task = debit(cost=10)
    assert remaining() == {a: 0, b: 16}

    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="failed")

    assert remaining() == {a: 6, b: 20}
    refund = [e for e in points.ledger_entries("alice", task.task_no) if e.kind == LedgerKind.REFUND][0]
    assert int(refund.amount) == 10 and sorted(lots.plain(refund.lots).values()) == [4, 6]
    # the emptied promotional lot is first in the spending order again
    assert debit(cost=5).points_lots is not None and remaining() == {a: 1, b: 20}


def test_a_refund_to_a_lot_the_expiry_handled_expires_that_part_at_once(clock):
    promo = grant("alice", 6, category=LotCategory.PROMOTIONAL, days=3)
    paid = grant("alice", 20, category=LotCategory.PAID)
    task = debit(cost=10)  # 6 from promo, 4 from paid
    clock.days(4)
    assert lots.expire_due()["lots"] == 1  # promo is empty: nothing to expire, it leaves the index

    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="failed")

    assert remaining() == {promo: 0, paid: 20}
    kinds = sorted((e.kind, int(e.amount)) for e in points.ledger_entries("alice", task.task_no))
    assert kinds == [(LedgerKind.DEBIT, -10), (LedgerKind.EXPIRE, -6), (LedgerKind.REFUND, 10)]
    assert points.get_balance("alice") == 20


def test_a_refund_to_a_lot_past_expiry_that_the_schedule_has_not_reached_expires_that_part_too(clock):
    promo = grant("alice", 6, category=LotCategory.PROMOTIONAL, days=3)
    paid = grant("alice", 20)
    task = debit(cost=10)
    clock.days(4)  # promo is due, not handled

    assert points.refund_task(reload(task), status=TaskStatus.CANCELLED, error_code="C", error_message="x")
    assert lots.expire_due()["lots"] == 1

    assert remaining() == {promo: 0, paid: 20}
    assert points.get_balance("alice") == 20


def test_a_refund_racing_the_expiry_of_its_lot_counts_the_lot_expired(clock, monkeypatch):
    """The refund decided the lot was still good; the expiry handled it before the refund wrote: the
    refund's condition on that lot fails and it tries again with that part expired."""
    promo = grant("alice", 6, category=LotCategory.PROMOTIONAL, days=3)
    paid = grant("alice", 20)
    task = debit(cost=10)
    clock.days(3)
    real = lots.give_back_actions

    def expire_first(tx, user_id, returned):
        if any(lots.SpendKey.parse(key).lot_id == promo for key in returned):
            lots.expire_lot("alice", promo, now=iso_ms(clock.now + timedelta(seconds=1)))
        return real(tx, user_id, returned)

    monkeypatch.setattr(lots, "give_back_actions", expire_first)
    clock.now -= timedelta(seconds=1)  # the refund still sees the lot one second before its expiry

    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="x")

    assert remaining() == {promo: 0, paid: 20}
    assert sorted(e.kind for e in points.ledger_entries("alice", task.task_no)) == [
        LedgerKind.DEBIT, LedgerKind.EXPIRE, LedgerKind.REFUND]


# --- expiry -------------------------------------------------------------------------------------------


def test_the_schedule_expires_what_is_left_of_due_lots_once_and_only_them(clock, monkeypatch):
    due = grant("alice", 10, days=1)
    later = grant("alice", 10, days=30)
    never = grant("alice", 10)
    other = grant("bob", 7, category=LotCategory.PROMOTIONAL, days=1)
    debit(cost=4)  # from alice's earliest lot: 6 left of it
    clock.days(2)

    def no_scan(*args, **kwargs):
        raise AssertionError("expiry must query the index, never scan")

    with monkeypatch.context() as patched:
        patched.setattr(LotItem, "scan", no_scan)
        patched.setattr(PointsItem, "scan", no_scan)
        assert lots.expire_due() == {"lots": 2, "points": 13}
        assert lots.expire_due() == {"lots": 0, "points": 0}  # handled lots left the index
        assert lots.expire_lot("alice", due) == 0  # and a direct repeat is a no-op

    assert remaining() == {due: 0, later: 10, never: 10} and remaining("bob") == {other: 0}
    expired = [e for e in points.ledger_entries("alice") if e.kind == LedgerKind.EXPIRE]
    assert [(e.ref, int(e.amount)) for e in expired] == [(due, -6)]
    assert points.get_balance("alice") == 20 and points.get_balance("bob") == 0


def test_lots_spread_over_the_expiry_shards():
    shards = {lots.new_lot(f"user-{n}", f"G-{n}", category=LotCategory.PAID, source="grant", ref="G", points=1,
                           expire_time=iso_ms(START), now=START).expiry_shard for n in range(64)}
    assert len(shards) >= 12 and shards <= {f"{n:02d}" for n in range(lots.EXPIRY_SHARDS)}


# --- grants -------------------------------------------------------------------------------------------


def test_a_grant_is_a_lot_of_its_category_and_expiry_and_a_repeat_grants_once(clock):
    first = points.grant("alice", 50, "welcome", grant_id="G-1", actor="admin", valid_days=30)
    again = points.grant("alice", 50, "welcome", grant_id="G-1", actor="admin", valid_days=30)

    assert (first.applied, again.applied, again.balance) == (True, False, 50)
    lot = LotItem.get("alice", lots.lot_entry("G-1"))
    assert (lot.category, lot.source, int(lot.granted), lot.expire_time) == (
        LotCategory.PROMOTIONAL, "grant", 50, iso_ms(START + timedelta(days=30)))
    assert first.expire_time == lot.expire_time


# --- the bound on one debit ---------------------------------------------------------------------------


def _many_one_point_lots(user: str, count: int) -> None:
    """`count` lots of 1 point, written at once (one GRANT entry naming them all): 91 grants take seconds."""
    made = [lots.new_lot(user, f"G-{n:03d}", category=LotCategory.PAID, source="grant", ref="G-bulk", points=1,
                         expire_time=None, now=START) for n in range(count)]
    with LotItem.batch_write() as batch:
        for lot in made:
            batch.save(lot)
    keys = {lots.key_of(lot).text: 1 for lot in made}
    lots.ledger_entry(user, "G-bulk", LedgerKind.GRANT, count, "bulk", "test", lots=keys).save()
    PointsItem(user, lots.BALANCE, balance=count, ledger_count=1, lotted=True, active_lots=set(keys)).save()


def test_a_debit_may_touch_at_most_the_bound_of_lots(clock):
    _many_one_point_lots("alice", lots.MAX_LOTS_PER_DEBIT + 1)

    task = debit(cost=lots.MAX_LOTS_PER_DEBIT)  # 90 lots + rate, balance, entry, task: 94 items, one transaction
    assert len(lots.plain(reload(task).points_lots)) == lots.MAX_LOTS_PER_DEBIT
    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="x")

    before = snapshot()
    with pytest.raises(Conflict):
        debit(cost=lots.MAX_LOTS_PER_DEBIT + 1)
    assert snapshot() == before


# --- points from before lots --------------------------------------------------------------------------


def test_points_held_before_lots_are_adopted_into_one_paid_lot_once(clock):
    PointsItem("old", lots.BALANCE, balance=30, ledger_count=1).save()
    lots.ledger_entry("old", "GRANT-legacy", LedgerKind.GRANT, 30, "before lots", "admin").save()
    legacy_task = new_task("old", cost=10)  # debited before lots: no points_lots
    legacy_task.save()

    task = debit("old", cost=10)
    assert remaining("old") == {lots.OPENING: 20}
    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="x")
    assert remaining("old") == {lots.OPENING: 30}

    PointsItem("old", lots.BALANCE).update(actions=[PointsItem.balance.add(-10), PointsItem.ledger_count.add(1)])
    lots.ledger_entry("old", legacy_task.task_no, LedgerKind.DEBIT, -10, "before lots", "old").save()
    LotItem("old", lots.lot_entry(lots.OPENING)).update(actions=[LotItem.remaining.add(-10)])
    assert points.refund_task(reload(legacy_task), status=TaskStatus.FAILED, error_code="X", error_message="x")
    assert remaining("old") == {lots.OPENING: 30} and points.get_balance("old") == 30


def test_a_grant_to_a_user_with_points_from_before_lots_adopts_them_first(clock):
    PointsItem("old", lots.BALANCE, balance=12, ledger_count=1).save()
    lots.ledger_entry("old", "GRANT-legacy", LedgerKind.GRANT, 12, "before lots", "admin").save()

    grant("old", 5, grant_id="G-new")

    assert remaining("old") == {lots.OPENING: 12, "G-new": 5}


# --- concurrency --------------------------------------------------------------------------------------


def test_thirty_concurrent_debits_across_three_lots_leave_every_lot_exact(clock):
    undo = moto_dynamodb.install()
    try:
        a = grant("alice", 100, category=LotCategory.PROMOTIONAL, days=10)
        b = grant("alice", 100, category=LotCategory.PAID, days=20)
        c = grant("alice", 95, category=LotCategory.PAID)
        barrier = threading.Barrier(30)

        def one(_):
            barrier.wait()
            try:
                return debit(cost=10)
            except (InsufficientPoints, Conflict) as error:
                return error

        with ThreadPoolExecutor(30) as pool:
            results = list(pool.map(one, range(30)))
    finally:
        undo()
    charged = [r for r in results if not isinstance(r, Exception)]
    assert len(charged) == 29  # 295 points: 29 tasks of 10
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception))
    assert remaining() == {a: 0, b: 0, c: 5}
