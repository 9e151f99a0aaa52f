"""Orders (aigc.domain.orders): fulfilment keyed by the order, mismatches, expiry, refunds and disputes that claw
back only the unspent points. The payment provider is out of this tier: its events are the domain's inputs.

Every test ends with the lot books checked for every user (tests/lot_books.py).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aigc.core.errors import Conflict, NotFound
from aigc.core.packs import get_pack
from aigc.core.vocab import LedgerKind, LotCategory, OrderStatus, TaskStatus
from aigc.domain import lots, orders, points
from local import moto_dynamodb
from tests import lot_books
from tests.domain.support import new_task, reload, snapshot

STANDARD = get_pack("standard")  # 500 paid points + 50 bonus, 19.99 usd


@pytest.fixture(autouse=True)
def lot_books_checked(aws):
    yield
    lot_books.check_all()


def ordered(user: str = "alice", pack=STANDARD, key: str | None = None, session: str = "cs_1"):
    order = orders.create_order(user, pack, key)
    return orders.attach_session(order, session, f"https://pay.example/{session}", 2_000_000_000)


def paid_event(order, **changes) -> orders.Payment:
    fields = dict(order_no=order.order_no, user_id=order.user_id, session_id=order.provider_session_id,
                  amount=int(order.amount), currency=order.currency, payment_intent="pi_1")
    return orders.Payment(**(fields | changes))


def kinds(user: str = "alice") -> list[tuple[str, int]]:
    return sorted((entry.kind, int(entry.amount)) for entry in points.ledger_entries(user))


def spend(user: str, cost: int):
    task = new_task(user, cost=cost)
    points.debit_for_new_task(task, rate_limit_per_minute=0)
    return task


# --- creating orders ------------------------------------------------------------------------------------


def test_an_order_keeps_the_packs_terms_and_is_counted():
    order = ordered()

    assert (order.status, int(order.points), int(order.bonus_points), int(order.amount), order.currency) == (
        OrderStatus.PENDING, 500, 50, 1999, "usd")
    assert order.order_no.startswith("ORD-") and order.provider_session_id == "cs_1"
    page = orders.order_page("alice", 1, 10)
    assert page.total == 1 and [o.order_no for o in page.items] == [order.order_no]
    assert points.get_balance("alice") == 0


def test_an_idempotency_key_makes_one_order_and_another_pack_under_it_is_a_conflict():
    first = orders.create_order("alice", STANDARD, "k-1")
    again = orders.create_order("alice", STANDARD, "k-1")
    other_user = orders.create_order("bob", STANDARD, "k-1")

    assert again.order_no == first.order_no != other_user.order_no
    with pytest.raises(Conflict):
        orders.create_order("alice", get_pack("starter"), "k-1")
    assert orders.order_page("alice", 1, 10).total == 1


def test_another_users_order_is_not_found():
    order = ordered("alice")
    with pytest.raises(NotFound):
        orders.get_user_order("bob", order.order_no)


# --- fulfilment ---------------------------------------------------------------------------------------------


def test_a_paid_order_grants_its_points_and_bonus_as_two_lots():
    order = ordered()

    assert orders.fulfil(paid_event(order)) == "paid"

    order = orders.get_user_order("alice", order.order_no)
    assert order.status == OrderStatus.PAID and order.paid_at and order.payment_intent == "pi_1"
    assert kinds() == [(LedgerKind.GRANT, 50), (LedgerKind.PURCHASE, 500)]
    held = {lot.lot_id: lot for lot in lot_books.user_lots("alice")}
    paid, bonus = held[order.order_no], held[order.order_no + orders.BONUS_SUFFIX]
    assert (paid.category, paid.source, int(paid.remaining)) == (LotCategory.PAID, "purchase", 500)
    assert (bonus.category, bonus.source, int(bonus.remaining)) == (LotCategory.PROMOTIONAL, "bonus", 50)
    assert paid.expire_time > bonus.expire_time  # 365 days against the bonus's 30
    assert points.get_balance("alice") == 550


def test_the_same_payment_delivered_five_times_at_once_and_again_later_grants_once():
    order = ordered()
    undo = moto_dynamodb.install()
    try:
        barrier = threading.Barrier(5)

        def deliver(_):
            barrier.wait()
            return orders.fulfil(paid_event(order))

        with ThreadPoolExecutor(5) as pool:
            outcomes = list(pool.map(deliver, range(5)))
    finally:
        undo()
    orders.expire("alice", order.order_no, "cs_1")  # an expiry arriving late changes nothing

    assert sorted(outcomes) == ["already-paid"] * 4 + ["paid"]
    assert orders.fulfil(paid_event(order)) == "already-paid"
    assert kinds() == [(LedgerKind.GRANT, 50), (LedgerKind.PURCHASE, 500)]
    assert orders.get_user_order("alice", order.order_no).status == OrderStatus.PAID


@pytest.mark.parametrize("change", [{"amount": 999}, {"currency": "eur"}, {"amount": None}])
def test_a_payment_that_does_not_match_the_pack_is_recorded_and_grants_nothing(change):
    order = ordered()

    assert orders.fulfil(paid_event(order, **change)) == "amount-mismatch"

    order = orders.get_user_order("alice", order.order_no)
    assert order.status == OrderStatus.PENDING and "the pack costs 1999 usd" in order.problem
    assert kinds() == [] and points.get_balance("alice") == 0


def test_a_payment_through_another_session_or_for_an_unknown_order_grants_nothing():
    order = ordered()
    assert orders.fulfil(paid_event(order, session_id="cs_other")) == "session-mismatch"
    assert orders.fulfil(paid_event(order, user_id="mallory")) == "unknown-order"
    assert orders.fulfil(paid_event(order, order_no="ORD-20300101000000000-0000000000000000")) == "unknown-order"
    assert kinds() == [] and kinds("mallory") == []


def test_an_expired_checkout_expires_its_order():
    order = ordered()
    assert orders.expire("alice", order.order_no, "cs_1") == "expired"
    assert orders.expire("alice", order.order_no, "cs_1") == "already-expired"
    assert orders.get_user_order("alice", order.order_no).status == OrderStatus.EXPIRED


def test_an_order_whose_checkout_could_not_be_made_expires_at_once_and_its_key_can_try_again():
    order = orders.create_order("alice", STANDARD, "k-down")
    orders.abandon(order, "the payment provider could not be reached")
    assert orders.get_user_order("alice", order.order_no).status == OrderStatus.EXPIRED

    again = orders.create_order("alice", STANDARD, "k-down")
    orders.reopen(again)
    assert orders.get_user_order("alice", order.order_no).status == OrderStatus.PENDING


# --- refunds and disputes -----------------------------------------------------------------------------------


def test_a_refund_claws_back_only_the_unspent_points_of_the_order():
    order = ordered()
    orders.fulfil(paid_event(order))
    spend("alice", 80)  # 50 bonus first, then 30 of the paid lot

    outcome = orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=1.0, ref="refund-1999")

    assert outcome == OrderStatus.REFUNDED
    assert points.get_balance("alice") == 0
    clawback = [e for e in points.ledger_entries("alice") if e.kind == LedgerKind.CLAWBACK][0]
    assert int(clawback.amount) == -470 and "80 already spent" in clawback.reason
    order = orders.get_user_order("alice", order.order_no)
    assert order.status == OrderStatus.REFUNDED and int(order.reversed_points) == 550


def test_the_same_refund_twice_and_a_dispute_after_it_claw_back_nothing_more():
    order = ordered()
    orders.fulfil(paid_event(order))
    grant_id = "G-other"
    points.grant("alice", 40, "other points", grant_id=grant_id, actor="admin")
    orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=1.0, ref="refund-1999")
    before = snapshot()

    assert orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=1.0,
                          ref="refund-1999") == "nothing-more"
    assert snapshot() == before
    assert orders.reverse("alice", order.order_no, status=OrderStatus.DISPUTED, share=1.0, ref="dispute") == "marked"
    assert points.get_balance("alice") == 40  # points from elsewhere are never clawed back


def test_partial_refunds_claw_back_their_share_and_a_larger_one_later_the_rest():
    order = ordered()
    orders.fulfil(paid_event(order))

    orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=0.5, ref="refund-1000")
    assert points.get_balance("alice") == 550 - 275
    orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=0.2, ref="refund-400")  # late, smaller
    assert points.get_balance("alice") == 550 - 275
    orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=1.0, ref="refund-1999")
    assert points.get_balance("alice") == 0


def test_a_refund_before_the_payment_event_means_the_payment_never_grants():
    order = ordered()

    assert orders.reverse("alice", order.order_no, status=OrderStatus.REFUNDED, share=1.0,
                          ref="refund-1999") == "refunded-before-payment"
    assert orders.fulfil(paid_event(order)) == "already-refunded"
    assert kinds() == [] and points.get_balance("alice") == 0


def test_a_dispute_after_the_points_were_spent_and_refunded_back_claws_what_is_left():
    order = ordered(pack=get_pack("starter"))
    orders.fulfil(paid_event(order))
    task = spend("alice", 60)
    assert points.refund_task(reload(task), status=TaskStatus.FAILED, error_code="X", error_message="x")

    orders.reverse("alice", order.order_no, status=OrderStatus.DISPUTED, share=1.0, ref="dispute")

    assert points.get_balance("alice") == 0 and lots.plain(reload(task).points_lots)
