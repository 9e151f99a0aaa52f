"""Orders: a pack bought through the payment provider, fulfilled once from its signed webhook.

The policy (fulfilment keyed by the order, amount checks, expiry, what a refund or dispute takes back)
is told once, in docs/ARCHITECTURE.md, "Points lots and purchases". An order is the item
`ORDER#<orderNo>` in the user's partition of the points table, so paying it, granting its lots and
writing its ledger entries are one transaction.
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from aigc.core.errors import Conflict, NotFound
from aigc.core.i18n import _
from aigc.core.observability import count, logger
from aigc.core.packs import Pack
from aigc.core.timeutil import iso_ms, utcnow
from aigc.core.vocab import LedgerKind, LotCategory, OrderStatus
from aigc.domain import lots, points
from aigc.domain.lots import BALANCE
from aigc.store.db import LotItem, OrderItem, PointsItem
from aigc.store.dynamo import ConditionFailed, TransactWrite, conditional, get_or_none, transact
from aigc.store.paging import Cursor, Page, read_page

ORDER_PREFIX = "ORDER#"
KEY_PREFIX = "ORDERKEY#"
PROVIDER = "stripe"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
BONUS_SUFFIX = "-BONUS"
REVERSE_ATTEMPTS = 4


def new_order_no(now: datetime | None = None) -> str:
    """ORD-<yyyyMMddHHmmssSSS>-<64 random bits>: readable, sortable (the list is newest first), unguessable."""
    now = now or utcnow()
    return f"ORD-{now.strftime('%Y%m%d%H%M%S')}{now.microsecond // 1000:03d}-{secrets.token_hex(8)}"


def order_of_ref(ref: str | None) -> str | None:
    """The order a ledger entry's reference names: ORD-... (purchase), ORD-...-BONUS (its bonus),
    ORD-...@<event> (a clawback)."""
    if not ref or not ref.startswith("ORD-"):
        return None
    return ref.split("@", 1)[0].removesuffix(BONUS_SUFFIX)


def _entry(order_no: str) -> str:
    return f"{ORDER_PREFIX}{order_no}"


def _key_entry(idempotency_key: str) -> str:
    return KEY_PREFIX + hashlib.sha256(idempotency_key.encode()).hexdigest()


def get_order(user_id: str, order_no: str) -> OrderItem | None:
    if not order_no.startswith("ORD-"):
        return None
    return get_or_none(OrderItem, user_id, _entry(order_no))


def get_user_order(user_id: str, order_no: str) -> OrderItem:
    """The caller's order; another user's (or no) order is the same 404."""
    order = get_order(user_id, order_no)
    if order is None:
        raise NotFound(_("order {order_no} not found", order_no=order_no))
    return order


# --- creating an order --------------------------------------------------------------------------------------


def create_order(user_id: str, pack: Pack, idempotency_key: str | None) -> OrderItem:
    """A pending order for `pack`, with the pack's terms as they are now. With an Idempotency-Key, a repeat
    answers the order the key made (24 h); the same key for another pack is a 409."""
    now = utcnow()
    order_no = new_order_no(now)
    order = OrderItem(
        user_id, _entry(order_no), order_no=order_no, pack_id=pack.pack_id, points=pack.points,
        bonus_points=pack.bonus_points, valid_days=pack.valid_days,
        bonus_valid_days=pack.bonus_valid_days if pack.bonus_points else None,
        amount=pack.price.amount, currency=pack.price.currency, status=OrderStatus.PENDING, provider=PROVIDER,
        created_at=iso_ms(now), request_hash=pack.pack_id,
    )

    def write(tx: TransactWrite) -> None:
        tx.save(order, condition=OrderItem.entry.does_not_exist())
        if idempotency_key is not None:
            tx.save(PointsItem(user_id, _key_entry(idempotency_key), ref=order.order_no, reason=pack.pack_id,
                               expires_at=int(time.time()) + IDEMPOTENCY_TTL_SECONDS),
                    condition=PointsItem.entry.does_not_exist())
        tx.update(PointsItem(user_id, BALANCE), actions=[PointsItem.order_count.add(1)])

    try:
        transact(write)
        return order
    except ConditionFailed:
        if idempotency_key is None:
            raise Conflict(_("this order number already exists; please retry")) from None
    mapped = get_or_none(PointsItem, user_id, _key_entry(idempotency_key))
    earlier = get_order(user_id, mapped.ref) if mapped is not None and mapped.ref else None
    if earlier is None:
        raise Conflict(_("a request with this Idempotency-Key is still in progress; retry in a moment"))
    if earlier.pack_id != pack.pack_id:
        raise Conflict(_("Idempotency-Key was already used for pack {pack_id}", pack_id=earlier.pack_id))
    return earlier


def attach_session(order: OrderItem, session_id: str, url: str, expires_at: int) -> OrderItem:
    """The Checkout Session the order is paid through (once: a repeat carries the same session)."""
    conditional(lambda: order.update(
        actions=[OrderItem.provider_session_id.set(session_id), OrderItem.checkout_url.set(url),
                 OrderItem.checkout_expires_at.set(iso_ms(datetime.fromtimestamp(expires_at, tz=timezone.utc)))],
        condition=OrderItem.provider_session_id.does_not_exist() | (OrderItem.provider_session_id == session_id)))
    order.refresh(consistent_read=True)
    return order


def reopen(order: OrderItem) -> None:
    """An order whose checkout could not be created (the provider was down) is tried again under its key."""
    conditional(lambda: order.update(
        actions=[OrderItem.status.set(OrderStatus.PENDING), OrderItem.problem.remove()],
        condition=OrderItem.provider_session_id.does_not_exist() & OrderItem.paid_at.does_not_exist()))


def abandon(order: OrderItem, reason: str) -> None:
    """No checkout could be created: the order expires at once rather than stay pending with nothing to pay."""
    conditional(lambda: order.update(
        actions=[OrderItem.status.set(OrderStatus.EXPIRED), OrderItem.problem.set(reason)],
        condition=(OrderItem.status == OrderStatus.PENDING) & OrderItem.provider_session_id.does_not_exist()))


# --- the provider's events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    """What a paid Checkout Session says (from the signed event)."""

    order_no: str
    user_id: str
    session_id: str
    amount: int | None
    currency: str | None
    payment_intent: str | None


def _payable(order: OrderItem):
    return (OrderItem.status.is_in(OrderStatus.PENDING, OrderStatus.EXPIRED) & OrderItem.paid_at.does_not_exist())


def _record_problem(order: OrderItem, problem: str) -> None:
    conditional(lambda: order.update(actions=[OrderItem.problem.set(problem)], condition=_payable(order)))
    count("PaymentsMismatched")
    logger.error("payment does not match its order: nothing granted",
                 extra={"order_no": order.order_no, "user_id": order.user_id, "problem": problem})


def fulfil(payment: Payment) -> str:
    """The order is paid: its points (and bonus) become lots, once however often and in whatever order the
    event comes (the ledger entries are keyed by the order). Returns what happened."""
    order = get_order(payment.user_id, payment.order_no)
    if order is None:
        return "unknown-order"
    if order.provider_session_id and order.provider_session_id != payment.session_id:
        _record_problem(order, f"paid through session {payment.session_id}, not the order's own")
        return "session-mismatch"
    if payment.amount != int(order.amount) or (payment.currency or "").lower() != order.currency:
        _record_problem(order, f"paid {payment.amount} {payment.currency}, the pack costs {int(order.amount)} "
                               f"{order.currency}")
        return "amount-mismatch"
    if order.status not in (OrderStatus.PENDING, OrderStatus.EXPIRED) or order.paid_at:
        return f"already-{order.status}"
    now = utcnow()
    new_lots = [lots.new_lot(order.user_id, order.order_no, category=LotCategory.PAID, source="purchase",
                             ref=order.order_no, points=int(order.points),
                             expire_time=lots.expiry_after(now, _days(order.valid_days)), now=now)]
    entries = [(order.order_no, LedgerKind.PURCHASE, int(order.points), f"pack {order.pack_id}", PROVIDER)]
    if int(order.bonus_points or 0) > 0:
        bonus_id = order.order_no + BONUS_SUFFIX
        new_lots.append(lots.new_lot(order.user_id, bonus_id, category=LotCategory.PROMOTIONAL, source="bonus",
                                     ref=order.order_no, points=int(order.bonus_points),
                                     expire_time=lots.expiry_after(now, _days(order.bonus_valid_days)), now=now))
        entries.append((bonus_id, LedgerKind.GRANT, int(order.bonus_points), f"bonus of pack {order.pack_id}",
                        PROVIDER))

    def paid(tx: TransactWrite) -> None:
        tx.update(order, actions=[OrderItem.status.set(OrderStatus.PAID), OrderItem.paid_at.set(iso_ms(now)),
                                  OrderItem.payment_intent.set(payment.payment_intent), OrderItem.problem.remove()],
                  condition=_payable(order))

    if not points.add_points(order.user_id, new_lots, entries, extra=paid):
        order.refresh(consistent_read=True)
        return f"already-{order.status}"
    total = sum(points_ for _, _, points_, _, _ in entries)
    count("OrdersPaid")
    count("PointsPurchased", total)
    logger.info("order paid", extra={"order_no": order.order_no, "user_id": order.user_id, "points": total})
    return "paid"


def _days(value) -> int | None:
    return int(value) if value else None


def expire(user_id: str, order_no: str, session_id: str) -> str:
    """The Checkout Session expired unpaid: so does the order (a paid or reversed order stays as it is)."""
    order = get_order(user_id, order_no)
    if order is None:
        return "unknown-order"
    if order.provider_session_id and order.provider_session_id != session_id:
        return "session-mismatch"
    if conditional(lambda: order.update(actions=[OrderItem.status.set(OrderStatus.EXPIRED)],
                                        condition=OrderItem.status == OrderStatus.PENDING)):
        return "expired"
    return f"already-{order.status}"


def reverse(user_id: str, order_no: str, *, status: str, share: float, ref: str) -> str:
    """A refund (`share` of the price, cumulative) or a dispute (share 1) of a paid order: what is still
    unspent of the order's lots, up to that share of its points, is clawed back (a CLAWBACK entry keyed by
    `ref`, so the same event twice claws once). Points already spent stay spent. An order not paid yet is
    marked and will never be granted."""
    for _attempt in range(REVERSE_ATTEMPTS):
        order = get_order(user_id, order_no)
        if order is None:
            return "unknown-order"
        if order.paid_at is None:
            if conditional(lambda order=order: order.update(actions=[OrderItem.status.set(status)],
                                                            condition=_payable(order))):
                logger.warning("order reversed before it was paid: it will never grant", extra={"order_no": order_no})
                return f"{status}-before-payment"
            continue
        outcome = _claw_back(order, status=status, share=share, ref=ref)
        if outcome is not None:
            return outcome
    raise ConflictingOrder(order_no)


class ConflictingOrder(Conflict):
    def __init__(self, order_no: str):
        super().__init__(_("order {order_no} kept changing while it was reversed; the provider will deliver again",
                           order_no=order_no))


def _claw_back(order: OrderItem, *, status: str, share: float, ref: str) -> str | None:
    total = int(order.points) + int(order.bonus_points or 0)
    target = min(total, math.ceil(total * min(1.0, max(0.0, share)) - 1e-9))
    already = int(order.reversed_points or 0)
    if target <= already:
        if order.status != status and conditional(lambda: order.update(
                actions=[OrderItem.status.set(status)], condition=OrderItem.reversed_points == already)):
            return "marked"
        return "nothing-more"
    now = iso_ms(utcnow())
    wanted = target - already
    whole = target == total  # refunded or disputed in full: the order's lots close (a task refund later
    takes: list[lots.Take] = []  # to them is expired at once, aigc.domain.points.refund_task)
    order_lots = _order_lots(order)
    for lot in order_lots:  # the bonus (promotional) first, then the paid lot
        left = int(lot.remaining or 0)
        if wanted <= 0 or left <= 0 or lot.expired_at or lots.key_of(lot).expired(now):
            continue
        take = min(left, wanted)
        takes.append(lots.Take(lots.key_of(lot), take, left))
        wanted -= take
    clawed = sum(take.points for take in takes)
    spent = target - already - clawed
    user_id = order.user_id
    taken = {take.key.lot_id: take for take in takes}

    def write(tx: TransactWrite) -> None:
        tx.save(lots.ledger_entry(user_id, f"{order.order_no}@{ref}", LedgerKind.CLAWBACK, -clawed,
                                  _("order {order_no} {status}: {clawed} unspent points taken back, "
                                    "{spent} already spent or expired", order_no=order.order_no, status=status,
                                    clawed=clawed, spent=spent), PROVIDER, lots=lots.allocation(takes)),
                condition=PointsItem.entry.does_not_exist())
        tx.update(PointsItem(user_id, BALANCE), actions=[
            PointsItem.balance.add(-clawed), PointsItem.ledger_count.add(1), *lots.emptied(takes)])
        tx.update(order, actions=[OrderItem.status.set(status), OrderItem.reversed_points.set(target)],
                  condition=(OrderItem.reversed_points == already) if already else
                  OrderItem.reversed_points.does_not_exist())
        for lot in order_lots:
            take = taken.get(lot.lot_id)
            actions = [LotItem.remaining.add(-take.points)] if take else []
            if whole:
                actions.append(LotItem.closed_at.set(now))
            if actions:  # each lot only if it still holds what was read
                tx.update(lot, actions=actions, condition=LotItem.remaining == int(lot.remaining or 0))

    try:
        transact(write)
    except ConditionFailed as failure:
        if failure.checks and failure.checks[0]:
            return "already-reversed"  # this very event was handled
        return None  # the order or a lot moved: read again
    count("PointsClawedBack", clawed)
    if spent:
        count("ReversedPointsAlreadySpent", spent)
    logger.warning("order reversed", extra={"order_no": order.order_no, "user_id": user_id, "status": status,
                                            "clawed_back": clawed, "already_spent": spent})
    return status


def _order_lots(order: OrderItem) -> list[LotItem]:
    found = {lot.lot_id: lot for lot in LotItem.batch_get(
        [(order.user_id, lots.lot_entry(order.order_no + BONUS_SUFFIX)), (order.user_id, lots.lot_entry(order.order_no))],
        consistent_read=True)}
    return [found[lot_id] for lot_id in (order.order_no + BONUS_SUFFIX, order.order_no) if lot_id in found]


# --- reading -----------------------------------------------------------------------------------------------

ORDER_CURSOR = Cursor("orders", "user_id", {"entry": re.compile(r"ORDER#ORD-\d{17}-[0-9a-f]{16}")})


def order_page(user_id: str, page: int, size: int, token: str | None = None) -> Page[OrderItem]:
    """One page of the user's orders, newest first; `total` from the order counter."""
    def query(start: dict | None, limit: int):
        return OrderItem.query(user_id, OrderItem.entry.startswith(ORDER_PREFIX), scan_index_forward=False,
                               last_evaluated_key=start, limit=limit)

    counted = get_or_none(PointsItem, user_id, BALANCE)
    return read_page(query, ORDER_CURSOR, owner=user_id, page=page, size=size, token=token,
                     total=int(counted.order_count or 0) if counted else 0)
