"""Buying points (issue 15) through the real API handler, the official stripe library and the simulator's Stripe:
checkout, the signed webhook (5 concurrent deliveries, one out of order, forged and stale signatures), refunds
that claw back only the unspent part, Stripe down, and lots that expire under the reconciler's schedule.

The simulator's events are not sent by it here (no webhook URL in this tier): each control call answers the
signed body and header, and the test delivers them to the handler, as Stripe would, as often as it likes.
After every test the lot books of every user are checked (tests/lot_books.py).
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local.simulator.stripe import sign
from tests import lot_books

WEBHOOK = "/payments/stripe/webhook"


@pytest.fixture(autouse=True)
def books(app):
    yield
    lot_books.check_all()


def checkout(app, user: str, pack: str = "standard", **extra) -> dict:
    status, body = app.api("POST", "/user/points/checkout", user=user, body={"packId": pack, **extra})
    assert status == 200, body
    return body["data"]


def stripe(app, path: str, **body) -> dict:
    response = requests.post(f"{app.sim.url}/_sim/stripe/{path}", json={"deliver": False, **body}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def deliver(app, signed: dict, signature: str | None = None) -> tuple[int, dict]:
    headers = {"content-type": "application/json; charset=utf-8",
               "stripe-signature": signature if signature is not None else signed["signature"]}
    return app.api("POST", WEBHOOK, user=None, body=signed["payload"], headers=headers)


def records(app, user: str) -> list[tuple[str, int]]:
    status, body = app.api("GET", "/user/points/consumption/records", user=user, query={"size": 100})
    assert status == 200, body
    return sorted((entry["type"], entry["amount"]) for entry in body["data"]["records"])


def order(app, user: str, order_no: str) -> dict:
    status, body = app.api("GET", f"/user/points/orders/{order_no}", user=user)
    assert status == 200, body
    return body["data"]


def test_packs_are_listed_without_a_token(app):
    status, body = app.api("GET", "/points/packs", user=None)

    assert status == 200
    standard = {p["packId"]: p for p in body["data"]}["standard"]
    assert standard == {"packId": "standard", "name": "Standard", "description": standard["description"],
                        "points": 500, "validDays": 365, "bonusPoints": 50, "bonusValidDays": 30,
                        "price": {"amount": 1999, "currency": "usd"}}


def test_a_pack_paid_once_and_delivered_five_times_at_once_and_once_out_of_order_grants_once(app):
    bought = checkout(app, "buyer")
    assert bought["status"] == "pending" and bought["checkoutUrl"].startswith(app.sim.url)
    session = requests.get(f"{app.sim.url}/v1/checkout/sessions/{bought['providerSessionId']}", timeout=10,
                           headers={"Authorization": f"Bearer {app.sim.config.stripe_api_key}"}).json()
    assert (session["client_reference_id"], session["amount_total"], session["currency"]) == (
        bought["orderNo"], 1999, "usd")

    paid = stripe(app, f"sessions/{bought['providerSessionId']}/pay")
    barrier = threading.Barrier(5)

    def once(_):
        barrier.wait()
        return deliver(app, paid)

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(once, range(5)))
    assert [status for status, _ in answers] == [200] * 5
    assert sorted(body["data"]["outcome"] for _, body in answers) == ["already-paid"] * 4 + ["paid"]
    expired_late = stripe(app, f"sessions/{bought['providerSessionId']}/expire")
    assert deliver(app, expired_late)[1]["data"]["outcome"] == "already-paid"
    resent = stripe(app, f"events/{paid['event']['id']}/resend")  # Stripe's retry: same event, new signature
    assert deliver(app, resent)[1]["data"]["outcome"] == "already-paid"

    assert records(app, "buyer") == [("grant", 50), ("purchase", 500)]
    assert app.balance("buyer") == 550
    shown = order(app, "buyer", bought["orderNo"])
    assert (shown["status"], shown["points"], shown["bonusPoints"], shown["amount"]) == ("paid", 500, 50, 1999)
    assert shown["paidTime"] and shown["checkoutUrl"] is None
    status, body = app.api("GET", "/user/points/consumption/balance", user="buyer")
    lots_shown = body["data"]["lots"]
    assert [(lot["category"], lot["source"], lot["remaining"]) for lot in lots_shown] == [
        ("promotional", "bonus", 50), ("paid", "purchase", 500)]
    assert body["data"]["expireTime"] == lots_shown[0]["expireTime"]


def test_a_forged_or_stale_signature_or_a_bad_body_grants_nothing(app, operator_view):
    bought = checkout(app, "forger")
    paid = stripe(app, f"sessions/{bought['providerSessionId']}/pay")
    forged = sign(paid["payload"], "whsec_not_the_secret")
    stale = sign(paid["payload"], app.sim.config.stripe_webhook_secret, timestamp=int(time.time()) - 301)
    altered = dict(paid, payload=paid["payload"].replace('"amount_total":1999', '"amount_total":1'))

    for signed, signature in ((paid, forged), (paid, stale), (paid, ""), (altered, None)):
        status, body = deliver(app, signed, signature)
        assert status == 400 and body["message"].startswith("Stripe-Signature"), body
    status, _ = deliver(app, {"payload": "not json", "signature": sign("not json",
                                                                       app.sim.config.stripe_webhook_secret)})
    assert status == 400

    assert records(app, "forger") == [] and app.balance("forger") == 0
    assert order(app, "forger", bought["orderNo"])["status"] == "pending"
    _, metrics = operator_view
    assert metrics.count("StripeWebhooksRejected") == 5


def test_unknown_events_are_acknowledged_and_change_nothing(app):
    event = {"id": "evt_x", "object": "event", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    payload = json.dumps(event)
    status, body = deliver(app, {"payload": payload, "signature": sign(payload, app.sim.config.stripe_webhook_secret)})
    assert (status, body["data"]["outcome"]) == (200, "ignored")


def test_a_payment_that_does_not_match_the_pack_is_recorded_and_grants_nothing(app):
    bought = checkout(app, "cheap")
    paid = stripe(app, f"sessions/{bought['providerSessionId']}/pay", amount_total=1)

    status, body = deliver(app, paid)

    assert (status, body["data"]["outcome"]) == (200, "amount-mismatch")
    shown = order(app, "cheap", bought["orderNo"])
    assert shown["status"] == "pending" and "paid 1 usd" in shown["problem"]
    assert app.balance("cheap") == 0


def test_an_event_for_another_users_order_grants_nothing_to_anyone(app):
    bought = checkout(app, "victim")
    paid = stripe(app, f"sessions/{bought['providerSessionId']}/pay")
    event = json.loads(paid["payload"])
    event["data"]["object"]["metadata"]["userId"] = "thief"
    payload = json.dumps(event)

    status, body = deliver(app, {"payload": payload, "signature": sign(payload, app.sim.config.stripe_webhook_secret)})

    assert (status, body["data"]["outcome"]) == (200, "unknown-order")
    assert app.balance("thief") == 0 and app.balance("victim") == 0


def test_a_refund_claws_back_only_what_is_unspent_and_the_order_shows_refunded(app):
    bought = checkout(app, "refunded", "starter")  # 100 paid points
    deliver(app, stripe(app, f"sessions/{bought['providerSessionId']}/pay"))
    status, task = app.submit("refunded", modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                              parameters={"xScale": 1.5})
    assert status == 200, task  # 10 points spent: the task runs on

    status, body = deliver(app, stripe(app, f"payments/{bought['providerSessionId']}/refund"))

    assert (status, body["data"]["outcome"]) == (200, "refunded")
    assert app.balance("refunded") == 0
    assert records(app, "refunded") == [("clawback", -90), ("debit", -10), ("purchase", 100)]
    assert order(app, "refunded", bought["orderNo"])["status"] == "refunded"
    again = stripe(app, f"payments/{bought['providerSessionId']}/dispute")
    assert deliver(app, again)[1]["data"]["outcome"] == "marked"
    assert app.balance("refunded") == 0 and order(app, "refunded", bought["orderNo"])["status"] == "disputed"
    # the task is cancelled: its 10 points go back to a lot whose order was refunded, so they expire at once
    status, cancelled = app.api("POST", f"/user/ai/tasks/{task['data']['taskNo']}/cancel", user="refunded")
    assert status == 200, cancelled
    assert app.balance("refunded") == 0
    assert records(app, "refunded") == [("clawback", -90), ("debit", -10), ("expire", -10), ("purchase", 100),
                                        ("refund", 10)]


def test_checkout_while_stripe_is_down_is_a_503_and_leaves_no_pending_order(app):
    app.sim.configure(stripe_api_key="sk_test_rotated")  # the app's key no longer works: Stripe refuses
    try:
        status, headers, body = app.api_with_headers("POST", "/user/points/checkout", user="early",
                                                     body={"packId": "starter"}, headers={"Idempotency-Key": "k-1"})
    finally:
        app.sim.configure(stripe_api_key="sk_test_aigc_local_simulator")
    assert status == 503 and int(headers["Retry-After"]) >= 1, body
    status, listed = app.api("GET", "/user/points/orders", user="early")
    assert [o["status"] for o in listed["data"]["records"]] == ["expired"]

    again = app.api("POST", "/user/points/checkout", user="early", body={"packId": "starter"},
                    headers={"Idempotency-Key": "k-1"})[1]["data"]
    assert again["orderNo"] == listed["data"]["records"][0]["orderNo"] and again["status"] == "pending"
    assert again["checkoutUrl"]


def test_bad_checkouts_are_clear_4xx(app):
    assert app.api("POST", "/user/points/checkout", user="x", body={"packId": "nope"})[0] == 404
    status, body = app.api("POST", "/user/points/checkout", user="x", body={"packId": "cny-100", "currency": "usd"})
    assert status == 400 and "priced in cny" in body["message"]
    key = {"Idempotency-Key": "same"}
    one = app.api("POST", "/user/points/checkout", user="x", body={"packId": "starter"}, headers=key)[1]["data"]
    two = app.api("POST", "/user/points/checkout", user="x", body={"packId": "starter"}, headers=key)[1]["data"]
    assert one == two
    assert app.api("POST", "/user/points/checkout", user="x", body={"packId": "pro"}, headers=key)[0] == 409
    assert app.api("GET", f"/user/points/orders/{one['orderNo']}", user="someone-else")[0] == 404


def test_a_lot_that_expires_is_expired_once_by_the_schedule_and_a_later_refund_is_handled(app, monkeypatch):
    """A promotional lot of 1 day pays a task; two days later the reconciler's schedule expires what is left of
    it, once however often it runs; the task is then cancelled: the points that came from that lot are given
    back and expired at once (REFUND + EXPIRE, keyed by the task), the rest of the books unchanged."""
    from datetime import timedelta

    from aigc.core.timeutil import utcnow

    status, body = app.api("POST", "/admin/points/grant", user="root", admin=True, body={
        "userId": "expiring", "amount": 15, "reason": "trial", "validDays": 1, "category": "promotional"})
    assert status == 200 and body["data"]["expireTime"] and body["data"]["category"] == "promotional", body
    app.grant("expiring", 10)  # promotional, never expires: spent after the trial lot
    status, task = app.submit("expiring", modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                              parameters={"xScale": 1.5})
    assert status == 200, task

    def in_two_days():
        return utcnow() + timedelta(days=2)

    for module in ("aigc.domain.lots", "aigc.domain.points"):
        monkeypatch.setattr(f"{module}.utcnow", in_two_days)
    assert app.sweep()["lotsExpired"] == {"lots": 1, "points": 5}
    assert app.sweep()["lotsExpired"] == {"lots": 0, "points": 0}
    status, cancelled = app.api("POST", f"/user/ai/tasks/{task['data']['taskNo']}/cancel", user="expiring")
    assert status == 200 and cancelled["data"]["refunded"], cancelled

    assert records(app, "expiring") == [("debit", -10), ("expire", -10), ("expire", -5), ("grant", 10),
                                        ("grant", 15), ("refund", 10)]
    status, body = app.api("GET", "/user/points/consumption/balance", user="expiring")
    assert body["data"]["balance"] == 10 and [lot["remaining"] for lot in body["data"]["lots"]] == [10]
    assert body["data"]["expireTime"] is None
