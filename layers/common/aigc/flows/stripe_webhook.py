"""Stripe's webhook: verify the signature, then let the event move its order (aigc.domain.orders).

Stripe retries a delivery that is not answered 2xx, for days, and may deliver an event twice, late, or
before another it followed. So every outcome that must not be retried (unknown order, a mismatch, an
event already handled, a type we do not use) is answered 200 and recorded (log line, metric); only a
bad signature is a 400 (Stripe then shows the failure in its dashboard), and our own failures are a 5xx
so Stripe tries again. The effect of each event is keyed by its order, not by the event.
"""
from __future__ import annotations

from typing import Callable

from aigc.core.errors import BadRequest, ServiceUnavailable
from aigc.core.i18n import _
from aigc.core.observability import count, logger
from aigc.core.vocab import OrderStatus
from aigc.domain import orders
from aigc.store import payments


def _session_payment(session: dict) -> orders.Payment | None:
    metadata = session.get("metadata") or {}
    order_no, user_id = session.get("client_reference_id"), metadata.get("userId")
    if not order_no or not user_id:
        return None
    return orders.Payment(order_no=str(order_no), user_id=str(user_id), session_id=str(session.get("id")),
                          amount=session.get("amount_total"), currency=session.get("currency"),
                          payment_intent=session.get("payment_intent"))


def _paid(session: dict) -> str:
    if session.get("payment_status") != "paid":
        return "not-paid-yet"  # a delayed payment method: async_payment_succeeded follows
    payment = _session_payment(session)
    return orders.fulfil(payment) if payment else "not-ours"


def _expired(session: dict) -> str:
    payment = _session_payment(session)
    return orders.expire(payment.user_id, payment.order_no, payment.session_id) if payment else "not-ours"


def _order_of_intent(payment_intent: str | None) -> tuple[str, str] | None:
    if not payment_intent:
        return None
    try:
        metadata = payments.payment_intent_metadata(str(payment_intent))
    except payments.PaymentsUnavailable:
        raise ServiceUnavailable(_("the payment provider cannot be reached; deliver again"), retry_after=60) from None
    if not metadata.get("orderNo") or not metadata.get("userId"):
        return None
    return metadata["orderNo"], metadata["userId"]


def _refunded(charge: dict) -> str:
    found = _order_of_intent(charge.get("payment_intent"))
    if found is None:
        return "not-ours"
    order_no, user_id = found
    amount = int(charge.get("amount") or 0)
    share = (int(charge.get("amount_refunded") or 0) / amount) if amount else 1.0
    if charge.get("refunded"):
        share = 1.0
    return orders.reverse(user_id, order_no, status=OrderStatus.REFUNDED, share=share,
                          ref=f"refund-{int(charge.get('amount_refunded') or 0)}")


def _disputed(dispute: dict) -> str:
    found = _order_of_intent(dispute.get("payment_intent"))
    if found is None:
        return "not-ours"
    order_no, user_id = found
    return orders.reverse(user_id, order_no, status=OrderStatus.DISPUTED, share=1.0, ref="dispute")


HANDLERS: dict[str, Callable[[dict], str]] = {
    "checkout.session.completed": _paid,
    "checkout.session.async_payment_succeeded": _paid,
    "checkout.session.expired": _expired,
    "checkout.session.async_payment_failed": _expired,
    "charge.refunded": _refunded,
    "charge.dispute.created": _disputed,
}
NOT_APPLIED = {"unknown-order", "not-ours", "session-mismatch", "amount-mismatch"}


def handle(body: str | bytes, signature: str | None) -> dict:
    """One delivery: {received, outcome}. BadRequest for a signature that does not verify."""
    try:
        event = payments.verify_event(body, signature)
    except payments.BadSignature as error:
        count("StripeWebhooksRejected")
        logger.warning("stripe webhook refused: bad signature", extra={"reason": str(error)})
        raise BadRequest(_("Stripe-Signature: {reason}", reason=str(error))) from None
    except payments.PaymentsUnavailable as error:
        logger.error("stripe webhook cannot be verified", extra={"reason": str(error)})
        raise ServiceUnavailable(_("the webhook cannot be verified right now"), retry_after=60) from None
    kind = str(event.get("type") or "")
    handler = HANDLERS.get(kind)
    context = {"event_id": event.get("id"), "event_type": kind}
    if handler is None:
        count("StripeWebhooksIgnored")
        logger.info("stripe event ignored", extra=context)
        return {"received": True, "outcome": "ignored"}
    outcome = handler(((event.get("data") or {}).get("object")) or {})
    if outcome in NOT_APPLIED:
        count("StripeWebhooksUnmatched")
        logger.warning("stripe event changed nothing", extra={**context, "outcome": outcome})
    else:
        count("StripeWebhooksHandled")
        logger.info("stripe event handled", extra={**context, "outcome": outcome})
    return {"received": True, "outcome": outcome}
