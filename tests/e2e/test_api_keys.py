"""API keys over real HTTP on the local stack (the front runs the Lambda authorizer, as API Gateway does): a key
submits and reads tasks; a revoked key is refused within 60 s; 20 submits at once never take a key past its
daily points limit by a single point, and the books balance afterwards."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.conftest import new_user

REVOKED_WITHIN_SECONDS = 60


def create_key(stack, user: str, **body) -> dict:
    response = stack.call("POST", "/user/api-keys", user=user, json={"name": "e2e", **body})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def with_key(stack, method: str, path: str, key: str, *, header: str = "X-API-Key", **kwargs) -> requests.Response:
    value = key if header == "X-API-Key" else f"Bearer {key}"
    return requests.request(method, stack.url + path, headers={header: value}, timeout=30, **kwargs)


def test_a_key_submits_and_reads_tasks_within_its_scopes(stack):
    user = new_user("key")
    stack.grant(user, 100)
    key = create_key(stack, user, scopes=["tasks:write", "tasks:read"])["key"]
    submitted = with_key(stack, "POST", "/user/ai/tasks/submit", key, header="Authorization",
                         json={"modelName": "image-out-painting", "imageUrl": stack.sample_url(),
                               "parameters": {"xScale": 1.5}})
    assert submitted.status_code == 200, submitted.text
    task_no = submitted.json()["data"]["taskNo"]
    deadline = time.monotonic() + 30
    while (task := with_key(stack, "GET", f"/user/ai/tasks/{task_no}", key).json()["data"])["status"] not in (
            "completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    assert task["status"] == "completed", (task["errorCode"], task["errorMessage"])
    listed = with_key(stack, "GET", "/user/ai/tasks/list", key).json()["data"]
    assert [t["taskNo"] for t in listed["records"]] == [task_no]
    # outside its scopes, and on routes that need a signed-in user: 403 naming why
    balance = with_key(stack, "GET", "/user/points/consumption/balance", key)
    assert balance.status_code == 403 and "points:read" in balance.json()["message"]
    assert balance.json()["errorCode"] == "ApiKey.Scope"
    assert with_key(stack, "GET", "/user/api-keys", key, header="Authorization").status_code == 401
    # the key's owner sees its use
    keys = stack.call("GET", "/user/api-keys", user=user).json()["data"]
    assert keys[0]["lastUsedTime"] is not None and "key" not in keys[0]


def test_bad_keys_are_401_with_the_envelope_and_say_nothing_about_existence(stack):
    user = new_user("key")
    real = create_key(stack, user)["key"]
    typo = real[:-1] + ("a" if real[-1] != "a" else "b")
    answers = []
    for token in (typo, "aigc_" + "0" * 49, "aigc_nonsense", real.replace("aigc_", "aigc-")):
        response = with_key(stack, "GET", "/user/ai/tasks/list", token)
        assert response.status_code == 401, response.text
        answers.append(response.json())
    assert all(a == answers[0] for a in answers) and answers[0]["code"] == 401 and answers[0]["data"] is None


def test_a_revoked_key_is_refused_within_60_seconds(stack):
    user = new_user("key")
    created = create_key(stack, user)
    assert with_key(stack, "GET", "/user/ai/tasks/list", created["key"]).status_code == 200
    revoked = stack.call("DELETE", f"/user/api-keys/{created['keyId']}", user=user)
    assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    while with_key(stack, "GET", "/user/ai/tasks/list", created["key"]).status_code != 401:
        assert time.monotonic() - started < REVOKED_WITHIN_SECONDS, "a revoked key still works"
        time.sleep(1)
    assert stack.call("GET", "/user/api-keys", user=user).json()["data"] == []


def test_the_daily_limit_holds_under_20_concurrent_submits(stack):
    user = new_user("key")
    stack.grant(user, 1000)
    body = {"modelName": "image-out-painting", "imageUrl": stack.sample_url(), "parameters": {"xScale": 1.5}}
    probe = stack.submit(user, **body)  # the owner's own JWT: not held to the key's limit
    assert probe.status_code == 200, probe.text
    cost = probe.json()["data"]["pointsCost"]
    limit = 4 * cost + cost - 1  # room for 4 tasks, never a 5th
    key = create_key(stack, user, dailyPointsLimit=limit)["key"]

    def submit(_):
        while True:  # a 503 (the account changed under a concurrent request) is retried, as a client does
            response = with_key(stack, "POST", "/user/ai/tasks/submit", key, json=body)
            if response.status_code != 503:
                return response

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))
    accepted = [a.json()["data"]["taskNo"] for a in answers if a.status_code == 200]
    refused = [a.json() for a in answers if a.status_code != 200]
    assert len(accepted) == 4, [a.text for a in answers if a.status_code != 200][:3]
    assert all(r["code"] == 402 and r["errorCode"] == "ApiKey.DailyLimit" for r in refused), refused[:3]
    # the books: every accepted task debited once, nothing for the refused ones
    for task_no in [probe.json()["data"]["taskNo"], *accepted]:
        stack.wait_task(user, task_no)
    ledger = stack.records(user)
    debits = [amount for kind, amount in ledger if kind == "debit"]
    refunds = [amount for kind, amount in ledger if kind == "refund"]
    assert len(debits) == 5 and sum(debits) == -5 * cost
    assert stack.balance(user) == 1000 + sum(debits) + sum(refunds)
    assert stack.task_count(user) == 5
