"""The part of Stripe's API the app calls, and Stripe's signed webhook events, for the local stack and tests.

API (as the official `stripe` library calls it: form-encoded bodies, `Authorization: Bearer <secret key>`,
`Idempotency-Key` honoured):
    POST /v1/checkout/sessions            create a Checkout Session (mode=payment, price_data line items)
    GET  /v1/checkout/sessions/<id>       read it
    GET  /v1/payment_intents/<id>         read a paid session's PaymentIntent (its metadata)

The payer and Stripe's side (what a browser and Stripe's servers would do):
    GET  /_sim/stripe/checkout/<id>                the checkout page (a Pay button)
    POST /_sim/stripe/sessions/<id>/pay            pay it: checkout.session.completed
    POST /_sim/stripe/sessions/<id>/expire         let it expire: checkout.session.expired
    POST /_sim/stripe/payments/<session id>/refund refund it ({"amount": n} for part): charge.refunded
    POST /_sim/stripe/payments/<session id>/dispute dispute it: charge.dispute.created
    POST /_sim/stripe/events/<event id>/resend     deliver an event again (same id, fresh signature)
    GET  /_sim/stripe/events                       every event sent, oldest first

Each of these signs the event as Stripe does (`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of
"<t>.<body>" keyed with the signing secret>`) and POSTs it to `stripe_webhook_url` when one is set (the
local stack sets its own webhook route); the answer holds the event, the exact signed body and header
and what the webhook answered, so a test can deliver the same bytes again. Bodies of the control routes
(JSON, all optional): `{"deliver": false}` signs without sending; `/pay` takes `amount_total` and
`currency` to report a payment that differs from the session (the app must refuse it).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from html import escape

import requests
from flask import Flask, Response, jsonify, request

# The local stack's signing secret (also written into its Secrets Manager as `stripe_webhook_secret`).
# A test value, documented in local/README.md: never a real Stripe secret.
LOCAL_WEBHOOK_SECRET = "whsec_aigcLocalStackTestSigningSecretNotForProduction"
LOCAL_API_KEY = "sk_test_aigc_local_simulator"
API_VERSION = "2025-09-30.clover"


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header of `payload` (what stripe.Webhook.construct_event verifies)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def unflatten(form: dict[str, str]) -> dict:
    """Stripe's form encoding (`line_items[0][price_data][currency]=usd`) as nested dicts and lists."""
    root: dict = {}
    for raw_key, value in form.items():
        parts = [raw_key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", raw_key)]
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if node and all(key.isdigit() for key in node):
            return [_lists(node[key]) for key in sorted(node, key=int)]
        return {key: _lists(value) for key, value in node.items()}
    return node


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class StripeSim:
    """Sessions, payment intents, charges and the events sent about them; thread-safe."""

    def __init__(self, sim):
        self._sim = sim
        self._lock = threading.RLock()
        self._http = requests.Session()
        self.reset()

    @property
    def config(self):
        return self._sim.config

    def reset(self) -> None:
        with self._lock:
            self.sessions: dict[str, dict] = {}
            self.intents: dict[str, dict] = {}
            self.charges: dict[str, dict] = {}
            self.events: dict[str, dict] = {}
            self.by_idempotency_key: dict[str, str] = {}

    # --- the API ------------------------------------------------------------------------------------
    def authorised(self) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:].strip() == self.config.stripe_api_key

    def create_session(self, params: dict, base_url: str, idempotency_key: str | None) -> tuple[dict, int]:
        with self._lock:
            if idempotency_key and idempotency_key in self.by_idempotency_key:
                return self.sessions[self.by_idempotency_key[idempotency_key]], 200
            problem = self._invalid(params)
            if problem:
                return _error(problem[0], problem[1]), 400
            items = params["line_items"]
            amount = sum(int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)) for item in items)
            session_id = _id("cs")
            session = {
                "id": session_id, "object": "checkout.session", "mode": "payment", "livemode": False,
                "amount_subtotal": amount, "amount_total": amount,
                "currency": items[0]["price_data"]["currency"].lower(),
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata") or {},
                "payment_intent_data": params.get("payment_intent_data") or {},
                "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
                "expires_at": int(params.get("expires_at") or time.time() + 24 * 3600),
                "created": int(time.time()), "status": "open", "payment_status": "unpaid",
                "payment_intent": None, "url": f"{base_url}/_sim/stripe/checkout/{session_id}",
            }
            self.sessions[session_id] = session
            if idempotency_key:
                self.by_idempotency_key[idempotency_key] = session_id
            return self._public(session), 200

    @staticmethod
    def _invalid(params: dict) -> tuple[str, str] | None:
        if params.get("mode") != "payment":
            return "mode", "only mode=payment is simulated"
        if not params.get("success_url"):
            return "success_url", "Missing required param: success_url."
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            return "line_items", "Missing required param: line_items."
        for item in items:
            price = (item or {}).get("price_data") or {}
            if not str(price.get("unit_amount", "")).isdigit() or not re.fullmatch(r"[a-z]{3}", price.get("currency", "")):
                return "line_items", "price_data needs unit_amount and currency"
        expires = params.get("expires_at")
        if expires is not None and not 1800 - 5 <= int(expires) - time.time() <= 24 * 3600 + 5:
            return "expires_at", "expires_at must be 30 minutes to 24 hours from now"
        return None

    @staticmethod
    def _public(session: dict) -> dict:
        return {k: v for k, v in session.items() if k != "payment_intent_data"}

    # --- what the payer and Stripe do --------------------------------------------------------------
    def pay(self, session_id: str, overrides: dict) -> dict:
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] == "open":
                intent_id, charge_id = _id("pi"), _id("ch")
                self.intents[intent_id] = {
                    "id": intent_id, "object": "payment_intent", "amount": session["amount_total"],
                    "currency": session["currency"], "status": "succeeded", "latest_charge": charge_id,
                    "metadata": (session["payment_intent_data"] or {}).get("metadata") or {}}
                self.charges[charge_id] = {
                    "id": charge_id, "object": "charge", "amount": session["amount_total"], "amount_refunded": 0,
                    "refunded": False, "currency": session["currency"], "payment_intent": intent_id,
                    "paid": True, "status": "succeeded", "disputed": False}
                session.update(status="complete", payment_status="paid", payment_intent=intent_id)
            reported = {**self._public(session), **{k: overrides[k] for k in ("amount_total", "currency")
                                                    if k in overrides}}
            return self._event("checkout.session.completed", reported)

    def expire(self, session_id: str) -> dict:
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] == "open":
                session.update(status="expired")
            return self._event("checkout.session.expired", self._public(session))

    def _charge_of(self, session_id: str) -> dict:
        intent = self.intents[self.sessions[session_id]["payment_intent"]]
        return self.charges[intent["latest_charge"]]

    def refund(self, session_id: str, amount: int | None) -> dict:
        with self._lock:
            charge = self._charge_of(session_id)
            left = charge["amount"] - charge["amount_refunded"]
            charge["amount_refunded"] += left if amount is None else min(int(amount), left)
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return self._event("charge.refunded", dict(charge))

    def dispute(self, session_id: str) -> dict:
        with self._lock:
            charge = self._charge_of(session_id)
            charge["disputed"] = True
            dispute = {"id": _id("dp"), "object": "dispute", "amount": charge["amount"], "charge": charge["id"],
                       "currency": charge["currency"], "payment_intent": charge["payment_intent"],
                       "reason": "fraudulent", "status": "needs_response"}
            return self._event("charge.dispute.created", dispute)

    def _event(self, kind: str, obj: dict) -> dict:
        event = {"id": _id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                 "type": kind, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "data": {"object": json.loads(json.dumps(obj))}}
        self.events[event["id"]] = event
        return event

    def deliver(self, event: dict, send: bool = True) -> dict:
        """Sign the event now and POST it to the webhook URL (when set and `send`)."""
        payload = json.dumps(event, separators=(",", ":"))
        signature = sign(payload, self.config.stripe_webhook_secret)
        answer = {"event": event, "payload": payload, "signature": signature, "delivery": None}
        url = self.config.stripe_webhook_url
        if send and url:
            try:
                response = self._http.post(url, data=payload.encode(), timeout=30, headers={
                    "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
                answer["delivery"] = {"status": response.status_code, "body": response.text[:2000]}
            except requests.RequestException as error:
                answer["delivery"] = {"status": None, "body": f"{type(error).__name__}: {error}"}
        return answer

    def close(self) -> None:
        self._http.close()


def _error(param: str, message: str, code: str = "parameter_invalid") -> dict:
    return {"error": {"type": "invalid_request_error", "code": code, "param": param, "message": message}}


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def register(app: Flask, sim) -> StripeSim:
    """Add the Stripe routes to the simulator's app; `sim.stripe` holds their state."""
    stripe = StripeSim(sim)
    _api_routes(app, sim, stripe)
    _control_routes(app, stripe)
    _pages(app, stripe)
    sim.stripe = stripe
    return stripe


def _api_routes(app: Flask, sim, stripe: StripeSim) -> None:
    def unauthorised():
        return jsonify(_error("", "Invalid API Key provided.", "api_key_invalid")), 401

    def missing(what: str, ident: str):
        return jsonify(_error("id", f"No such {what}: '{ident}'", "resource_missing")), 404

    @app.post("/v1/checkout/sessions")
    def stripe_create_session():
        if not stripe.authorised():
            return unauthorised()
        base = sim.config.public_url or request.host_url.rstrip("/")
        body, status = stripe.create_session(unflatten(request.form.to_dict()), base,
                                             request.headers.get("Idempotency-Key"))
        return jsonify(body), status

    @app.get("/v1/checkout/sessions/<session_id>")
    def stripe_get_session(session_id: str):
        if not stripe.authorised():
            return unauthorised()
        session = stripe.sessions.get(session_id)
        return jsonify(stripe._public(session)) if session else missing("checkout.session", session_id)

    @app.get("/v1/payment_intents/<intent_id>")
    def stripe_get_intent(intent_id: str):
        if not stripe.authorised():
            return unauthorised()
        intent = stripe.intents.get(intent_id)
        return jsonify(intent) if intent else missing("payment_intent", intent_id)


def _control_routes(app: Flask, stripe: StripeSim) -> None:
    def control(action):
        body = _body()
        try:
            event = action(body)
        except KeyError as error:
            return jsonify({"error": f"unknown or unpaid session: {error}"}), 404
        return jsonify(stripe.deliver(event, send=body.get("deliver", True) is not False))

    @app.post("/_sim/stripe/sessions/<session_id>/pay")
    def stripe_pay(session_id: str):
        return control(lambda body: stripe.pay(session_id, body))

    @app.post("/_sim/stripe/sessions/<session_id>/expire")
    def stripe_expire(session_id: str):
        return control(lambda body: stripe.expire(session_id))

    @app.post("/_sim/stripe/payments/<session_id>/refund")
    def stripe_refund(session_id: str):
        return control(lambda body: stripe.refund(session_id, body.get("amount")))

    @app.post("/_sim/stripe/payments/<session_id>/dispute")
    def stripe_dispute(session_id: str):
        return control(lambda body: stripe.dispute(session_id))

    @app.post("/_sim/stripe/events/<event_id>/resend")
    def stripe_resend(event_id: str):
        return control(lambda body: stripe.events[event_id])

    @app.get("/_sim/stripe/events")
    def stripe_events():
        with stripe._lock:
            return jsonify(sorted(stripe.events.values(), key=lambda e: e["created"]))


def _pages(app: Flask, stripe: StripeSim) -> None:
    @app.get("/_sim/stripe/checkout/<session_id>")
    def stripe_checkout_page(session_id: str):
        session = stripe.sessions.get(session_id)
        if session is None:
            return Response("no such checkout", status=404)
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        html = (f"<!doctype html><meta charset=utf-8><title>Pay {escape(amount)}</title>"
                f"<h1>Local Stripe checkout</h1><p>Order {escape(str(session['client_reference_id']))}: "
                f"<b>{escape(amount)}</b> ({escape(session['status'])})</p>"
                f"<button onclick=\"fetch('/_sim/stripe/sessions/{session_id}/pay',{{method:'POST'}})"
                f".then(()=>location.href={escape(json.dumps(session['success_url'].replace('{CHECKOUT_SESSION_ID}', session_id)))})\">"
                "Pay</button>")
        return Response(html, mimetype="text/html")

    @app.get("/_sim/stripe/success")
    def stripe_success():
        return Response("<!doctype html><meta charset=utf-8><p>Payment received. Your points arrive with "
                        "Stripe's event, in a moment.</p>", mimetype="text/html")
