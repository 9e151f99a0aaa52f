"""Stripe, the payment provider, through its official library: Checkout Sessions, webhook signatures and the
PaymentIntent behind a charge.

The keys live in the provider keys' secret (PROVIDER_SECRET_ARN) as `stripe_api_key` and
`stripe_webhook_secret`, read through powertools Parameters (cached 5 minutes) and never logged.
STRIPE_API_BASE is the API's address (the local stack points it at the simulator). `stripe` is
imported on first use: about 0.5 s of import and setup that every other route of the API skips.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from aigc.core.config import get_settings
from aigc.core.observability import logger

SECRET_MAX_AGE_SECONDS = 300
SIGNATURE_TOLERANCE_SECONDS = 300  # Stripe's own default: an older signed timestamp is a replay
TIMEOUT_SECONDS = 10
API_VERSION = None  # the account's default version; the fields read here are the same in all recent ones


class PaymentsUnavailable(Exception):
    """Stripe could not be reached or refused the call: nothing was bought."""


class BadSignature(Exception):
    """The webhook's Stripe-Signature does not verify (forged, altered, another secret, or older than 300 s)."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    expires_at: int  # epoch seconds


def _keys() -> dict:
    from aws_lambda_powertools.utilities import parameters

    arn = get_settings().provider_secret_arn
    if not arn:
        raise PaymentsUnavailable("PROVIDER_SECRET_ARN is not set")
    keys = parameters.get_secret(arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    return keys if isinstance(keys, dict) else {}


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str):
    import stripe

    return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=2,
                               http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS))


def _stripe():
    key = _keys().get("stripe_api_key")
    if not key:
        raise PaymentsUnavailable("the secret holds no stripe_api_key")
    return _client(key, get_settings().stripe_api_base.rstrip("/"))


def create_checkout_session(*, order_no: str, user_id: str, pack_id: str, name: str, description: str,
                            amount: int, currency: str, success_url: str, cancel_url: str,
                            expires_at: int) -> CheckoutSession:
    """One Checkout Session for one order; Stripe's idempotency key is the order, so a repeat (a retried
    request, two requests of one Idempotency-Key) answers the same session."""
    import stripe

    params = {
        "mode": "payment",
        "client_reference_id": order_no,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": expires_at,
        "line_items": [{"quantity": 1, "price_data": {
            "currency": currency, "unit_amount": amount,
            "product_data": {"name": name, **({"description": description} if description else {})}}}],
        "metadata": {"orderNo": order_no, "userId": user_id, "packId": pack_id},
        # refunds and disputes name the PaymentIntent: its metadata leads back to the order
        "payment_intent_data": {"metadata": {"orderNo": order_no, "userId": user_id}},
    }
    try:
        session = _stripe().v1.checkout.sessions.create(params=params,
                                                        options={"idempotency_key": f"checkout-{order_no}"})
    except stripe.StripeError as error:
        logger.warning("stripe refused or failed a checkout session",
                       extra={"order_no": order_no, "error": type(error).__name__,
                              "http_status": getattr(error, "http_status", None)})
        raise PaymentsUnavailable(str(error.user_message or type(error).__name__)) from None
    return CheckoutSession(session.id, session.url, int(session.expires_at))


def payment_intent_metadata(payment_intent_id: str) -> dict[str, str]:
    """The metadata of a PaymentIntent (our orderNo and userId), for events that name only the charge."""
    import stripe

    try:
        intent = _stripe().v1.payment_intents.retrieve(payment_intent_id)
    except stripe.InvalidRequestError:
        return {}  # not a PaymentIntent of this account
    except stripe.StripeError as error:
        raise PaymentsUnavailable(type(error).__name__) from None
    metadata = intent.to_dict().get("metadata") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def verify_event(payload: str | bytes, signature: str | None) -> dict:
    """The event a webhook delivery carries, once its Stripe-Signature verified against the signing secret
    (stripe.Webhook.construct_event, tolerance 300 s). BadSignature otherwise."""
    import stripe

    secret = _keys().get("stripe_webhook_secret")
    if not secret:
        raise PaymentsUnavailable("the secret holds no stripe_webhook_secret")
    if not signature:
        raise BadSignature("no Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise BadSignature(str(error.user_message or error)) from None
    except ValueError:
        raise BadSignature("the body is not a JSON event") from None
    return event.to_dict()
