"""Buying a point pack: an order and its Stripe Checkout Session (the policy: docs/ARCHITECTURE.md,
"Points lots and purchases"). Nothing here grants points: only the signed webhook does
(aigc.flows.stripe_webhook), because the buyer may never come back to the success page.
"""
from __future__ import annotations

import time

from aigc.api.points_views import checkout_view
from aigc.api.schemas import CheckoutRequest, CheckoutView
from aigc.core.errors import BadRequest, ServiceUnavailable
from aigc.core.i18n import _
from aigc.core.observability import count, logger
from aigc.core.packs import get_pack
from aigc.core.vocab import OrderStatus
from aigc.domain import orders
from aigc.store import payments

# How long the payment page stays open (Stripe takes 30 minutes to 24 hours); then the order expires.
CHECKOUT_WINDOW_SECONDS = 3600
RETRY_AFTER_SECONDS = 30


def checkout(user_id: str, request: CheckoutRequest, idempotency_key: str | None, *, success_url: str,
             cancel_url: str) -> CheckoutView:
    """A pending order for the pack and the page to pay it on. With an Idempotency-Key a repeat answers the
    same order and page. If Stripe cannot be reached: 503 and the order expires at once (nothing pending)."""
    if idempotency_key is not None and (not 1 <= len(idempotency_key) <= 128 or not idempotency_key.isprintable()):
        raise BadRequest(_("Idempotency-Key: 1 to 128 printable characters"))
    pack = get_pack(request.pack_id)
    if request.currency and request.currency.lower() != pack.price.currency:
        raise BadRequest(_("currency: pack {pack_id} is priced in {currency}, not {asked}", pack_id=pack.pack_id,
                           currency=pack.price.currency, asked=request.currency.lower()))
    order = orders.create_order(user_id, pack, idempotency_key)
    if order.provider_session_id:
        return checkout_view(order)  # a repeat of the same Idempotency-Key
    if order.status != OrderStatus.PENDING:
        orders.reopen(order)  # the key's earlier try met Stripe down: try again
    try:
        session = payments.create_checkout_session(
            order_no=order.order_no, user_id=user_id, pack_id=pack.pack_id, name=pack.name,
            description=pack.description, amount=pack.price.amount, currency=pack.price.currency,
            success_url=request.success_url or success_url, cancel_url=request.cancel_url or cancel_url,
            expires_at=int(time.time()) + CHECKOUT_WINDOW_SECONDS)
    except payments.PaymentsUnavailable as error:
        orders.abandon(order, f"the payment provider could not be reached: {error}")
        count("CheckoutsFailed")
        logger.warning("checkout failed: the order expired at once", extra={"order_no": order.order_no})
        raise ServiceUnavailable(_("the payment provider cannot be reached right now; nothing was charged, "
                                   "please retry"), retry_after=RETRY_AFTER_SECONDS) from None
    order = orders.attach_session(order, session.id, session.url, session.expires_at)
    count("CheckoutsCreated")
    logger.info("checkout created", extra={"order_no": order.order_no, "pack_id": pack.pack_id})
    return checkout_view(order)
