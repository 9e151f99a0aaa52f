"""What the API shows of points lots, point packs and orders (issue 15)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aigc.api.schemas import Balance, CheckoutView, LotView, OrderView, PackView
from aigc.core.packs import Pack
from aigc.core.vocab import OrderStatus
from aigc.domain.lots import Statement
from aigc.store.db import LotItem, OrderItem

# An order still pending this long after it was made, without a checkout to pay, was never going to be
# paid (the checkout could not be created and the process stopped before saying so): it shows as expired.
SESSIONLESS_GRACE = timedelta(minutes=10)


def _api_time(iso: str | None) -> str | None:
    return iso[:19] + "Z" if iso else None


def lot_view(lot: LotItem) -> LotView:
    return LotView.model_validate({
        "lotId": lot.lot_id, "category": lot.category, "source": lot.source, "granted": int(lot.granted or 0),
        "remaining": int(lot.remaining or 0), "expireTime": _api_time(lot.expire_time)})


def statement_view(user_id: str, statement: Statement) -> Balance:
    return Balance.model_validate({"userId": user_id, "balance": statement.balance,
                                   "expireTime": _api_time(statement.expire_time),
                                   "lots": [lot_view(lot) for lot in statement.lots]})


def pack_view(pack: Pack) -> PackView:
    return PackView.model_validate({
        "packId": pack.pack_id, "name": pack.name, "description": pack.description, "points": pack.points,
        "validDays": pack.valid_days, "bonusPoints": pack.bonus_points,
        "bonusValidDays": pack.bonus_valid_days if pack.bonus_points else None,
        "price": {"amount": pack.price.amount, "currency": pack.price.currency}})


def shown_status(order: OrderItem, now: datetime | None = None) -> str:
    """The order's status; a pending order whose checkout has passed its end (or that never got one) shows
    as expired, whether or not the provider's event has come yet. A late payment event is still honoured."""
    now = now or datetime.now(timezone.utc)
    if order.status != OrderStatus.PENDING:
        return order.status
    ends = order.checkout_expires_at
    if ends is None and not order.provider_session_id and order.created_at:
        started = datetime.fromisoformat(order.created_at.replace("Z", "+00:00"))
        return OrderStatus.EXPIRED if now - started > SESSIONLESS_GRACE else OrderStatus.PENDING
    if ends and datetime.fromisoformat(ends.replace("Z", "+00:00")) <= now:
        return OrderStatus.EXPIRED
    return OrderStatus.PENDING


def order_view(order: OrderItem) -> OrderView:
    status = shown_status(order)
    return OrderView.model_validate({
        "orderNo": order.order_no, "packId": order.pack_id, "points": int(order.points or 0),
        "bonusPoints": int(order.bonus_points or 0), "amount": int(order.amount or 0), "currency": order.currency,
        "status": status, "provider": order.provider, "providerSessionId": order.provider_session_id,
        "checkoutUrl": order.checkout_url if status == OrderStatus.PENDING else None,
        "createTime": _api_time(order.created_at), "paidTime": _api_time(order.paid_at), "problem": order.problem})


def checkout_view(order: OrderItem) -> CheckoutView:
    view = order_view(order)
    return CheckoutView.model_validate({"orderNo": view.order_no, "status": view.status,
                                        "checkoutUrl": view.checkout_url,
                                        "providerSessionId": view.provider_session_id})
