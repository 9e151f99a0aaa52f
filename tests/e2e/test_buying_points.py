"""Buying points over real HTTP on the local stack (issue 15): the simulator's Stripe sends its signed events to the
stack's webhook route, as Stripe would. A pack paid once and its event delivered 5 times at once and again out of
order grants once; a forged signature grants nothing; a refund claws back only the unspent part; 30 parallel
clients spend across three lots with different expiries and leave every lot exact; `aigc packs|buy|balance`.

The books are checked through the API only: balance == sum of the lots shown == sum of the records.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.conftest import ROOT, new_user

CLIENT_SRC = ROOT / "clients" / "python" / "src"


def books(stack, user: str) -> dict:
    """The user's balance, lots and records as the API shows them; asserts they agree."""
    balance = stack.call("GET", "/user/points/consumption/balance", user=user).json()["data"]
    records = stack.call("GET", "/user/points/consumption/records", user=user, params={"size": 100}).json()["data"]
    assert balance["balance"] == sum(lot["remaining"] for lot in balance["lots"])
    assert balance["balance"] == sum(entry["amount"] for entry in records["records"]), (balance, records)
    assert all(lot["remaining"] > 0 for lot in balance["lots"])
    return {"balance": balance["balance"], "lots": {lot["lotId"]: lot["remaining"] for lot in balance["lots"]},
            "records": sorted((entry["type"], entry["amount"]) for entry in records["records"])}


def checkout(stack, user: str, pack: str) -> dict:
    response = stack.call("POST", "/user/points/checkout", user=user, json={"packId": pack})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def sim(stack, path: str, **body) -> dict:
    response = requests.post(f"{stack.sim_url}/_sim/stripe/{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def webhook(stack, payload: str, signature: str) -> requests.Response:
    return requests.post(f"{stack.url}/payments/stripe/webhook", data=payload.encode(), timeout=30,
                         headers={"Content-Type": "application/json", "Stripe-Signature": signature})


def test_a_pack_bought_through_the_local_stripe_grants_once_however_its_event_is_delivered(stack):
    user = new_user("buyer")
    assert stack.call("GET", "/points/packs").status_code == 200  # no token
    order = checkout(stack, user, "standard")
    page = requests.get(order["checkoutUrl"], timeout=10)
    assert page.status_code == 200 and "19.99 USD" in page.text

    paid = sim(stack, f"sessions/{order['providerSessionId']}/pay")  # Stripe delivers it at once
    assert paid["delivery"]["status"] == 200 and '"outcome":"paid"' in paid["delivery"]["body"].replace(" ", "")
    barrier = threading.Barrier(5)

    def again(_):
        barrier.wait()
        return webhook(stack, paid["payload"], paid["signature"])

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(again, range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert {a.json()["data"]["outcome"] for a in answers} == {"already-paid"}
    late = sim(stack, f"sessions/{order['providerSessionId']}/expire")  # out of order: an expiry after the payment
    assert late["delivery"]["status"] == 200
    assert sim(stack, f"events/{paid['event']['id']}/resend")["delivery"]["status"] == 200

    seen = books(stack, user)
    assert seen["records"] == [("grant", 50), ("purchase", 500)] and seen["balance"] == 550
    shown = stack.call("GET", f"/user/points/orders/{order['orderNo']}", user=user).json()["data"]
    assert shown["status"] == "paid" and shown["paidTime"]


def test_a_forged_signature_grants_nothing(stack):
    user = new_user("forger")
    order = checkout(stack, user, "starter")
    signed = sim(stack, f"sessions/{order['providerSessionId']}/pay", deliver=False)
    timestamp = signed["signature"].split(",")[0]

    forged = webhook(stack, signed["payload"], f"{timestamp},v1={'0' * 64}")
    unsigned = webhook(stack, signed["payload"], "")

    assert (forged.status_code, unsigned.status_code) == (400, 400)
    assert books(stack, user)["balance"] == 0
    assert stack.call("GET", f"/user/points/orders/{order['orderNo']}", user=user).json()["data"]["status"] == "pending"


def test_a_refund_claws_back_only_the_unspent_part(stack):
    user = new_user("refund")
    order = checkout(stack, user, "starter")  # 100 points
    assert sim(stack, f"sessions/{order['providerSessionId']}/pay")["delivery"]["status"] == 200
    task = stack.submit(user, modelName="image-out-painting", imageUrl=stack.sample_url(), parameters={"xScale": 1.5})
    assert task.status_code == 200, task.text
    assert stack.wait_task(user, task.json()["data"]["taskNo"])["status"] == "completed"

    refunded = sim(stack, f"payments/{order['providerSessionId']}/refund")

    assert refunded["delivery"]["status"] == 200
    seen = books(stack, user)
    assert seen["balance"] == 0 and seen["records"] == [("clawback", -90), ("debit", -10), ("purchase", 100)]
    assert stack.call("GET", f"/user/points/orders/{order['orderNo']}", user=user).json()["data"]["status"] == "refunded"


def test_thirty_parallel_submits_across_three_lots_leave_every_lot_exact(stack):
    user = new_user("lots")
    for amount, days, category in ((100, 7, "promotional"), (100, 30, "paid"), (100, None, "paid")):
        body = {"userId": user, "amount": amount, "reason": "e2e lots", "category": category,
                **({"validDays": days} if days else {})}
        response = stack.call("POST", "/admin/points/grant", user="e2e-admin", admin=True, json=body)
        assert response.status_code == 200, response.text
    before = stack.call("GET", "/user/points/consumption/balance", user=user).json()["data"]
    assert [lot["category"] for lot in before["lots"]] == ["promotional", "paid", "paid"]
    token = stack.token(user)

    def submit(n):
        key = f"{user}-{n}-{uuid.uuid4().hex[:6]}"
        for _ in range(5):  # a 503 (the user's lots moved under a burst) says when to come back
            response = requests.post(f"{stack.url}/user/ai/tasks/submit", timeout=60, json={
                "modelName": "image-out-painting", "imageUrl": stack.sample_url(), "parameters": {"xScale": 1.5}},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
            if response.status_code != 503:
                return response
            time.sleep(float(response.headers["Retry-After"]))
        return response

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(submit, range(30)))
    assert [a.status_code for a in answers] == [200] * 30, [a.text for a in answers if a.status_code != 200]
    seen = books(stack, user)
    assert seen["balance"] == 0 and seen["lots"] == {}
    assert sorted(seen["records"]) == sorted([("debit", -10)] * 30 + [("grant", 100)] * 3)
    records = stack.call("GET", "/user/points/consumption/records", user=user, params={"size": 100}).json()["data"]
    taken: dict[str, int] = {}
    for entry in records["records"]:
        if entry["type"] == "debit":
            for share in entry["lots"]:
                taken[share["lotId"]] = taken.get(share["lotId"], 0) + share["points"]
    assert sorted(taken.values()) == [100, 100, 100]


def test_the_cli_lists_packs_buys_one_and_shows_the_lots(stack):
    user = new_user("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env.update(PYTHONPATH=str(CLIENT_SRC), AIGC_BASE_URL=stack.url, NO_COLOR="1", AIGC_TOKEN=stack.token(user))
    command = [sys.executable, "-m", "aigc_client"]

    packs = subprocess.run([*command, "packs"], env=env, capture_output=True, text=True, timeout=60)
    assert packs.returncode == 0 and "standard" in packs.stdout and "19.99 USD" in packs.stdout, packs.stderr

    buying = subprocess.Popen([*command, "buy", "standard", "--timeout", "60"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    url = ""
    while not url:
        line = buying.stdout.readline()
        assert line, buying.stderr.read()
        url = line.strip() if line.startswith("http") else ""
    session_id = re.search(r"/checkout/(cs_\w+)", url).group(1)
    assert sim(stack, f"sessions/{session_id}/pay")["delivery"]["status"] == 200
    out, err = buying.communicate(timeout=60)
    assert buying.returncode == 0, err
    assert "paid: 500 + 50 bonus points added; balance 550" in out

    shown = subprocess.run([*command, "balance"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("550 points"), shown.stderr
    assert "promotional\tbonus\t50" in shown.stdout and "paid\tpurchase\t500" in shown.stdout
