"""Concurrent clients over real HTTP against the local stack as shipped (no patches here): the ledger
stays exact, each task is settled once, idempotency holds, and no user sees another's data."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.conftest import new_user

OUTPAINT_COST = 10


def _parallel(count: int, work) -> list:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def _outpaint(stack, **directives) -> dict:
    return dict(modelName="image-out-painting", imageUrl=stack.sample_url(64, 64, **directives),
                parameters={"xScale": 1.5})


def _ledger_sum(records) -> int:
    return sum(amount for _, amount in records)


def test_50_parallel_submits_with_points_for_10_accept_exactly_10(stack):
    user = new_user("burst")
    stack.grant(user, 10 * OUTPAINT_COST)
    request = _outpaint(stack)
    responses = _parallel(50, lambda i: stack.submit(user, **request))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10, [(r.status_code, r.text[:200]) for r in responses]
    assert all(400 <= s < 500 for s in statuses if s != 200), statuses
    for task_no in {r.json()["data"]["taskNo"] for r in responses if r.status_code == 200}:
        assert stack.wait_task(user, task_no, timeout=120)["status"] == "completed"
    records = stack.records(user)
    assert sorted(records) == sorted([("grant", 100)] + [("debit", -OUTPAINT_COST)] * 10)
    assert stack.balance(user) == 0 == _ledger_sum(records)


def test_concurrent_cancels_and_operator_refunds_settle_each_task_once(stack):
    user = new_user("race")
    stack.grant(user, 8 * OUTPAINT_COST)
    task_nos = []
    for _ in range(8):
        response = stack.submit(user, **_outpaint(stack, sim_seconds=60))
        assert response.status_code == 200, response.text
        task_nos.append(response.json()["data"]["taskNo"])

    def settle(i: int) -> requests.Response:
        task_no = task_nos[i // 3]
        if i % 3 == 2:
            return stack.call("POST", f"/admin/tasks/{task_no}/refund", user="ops", admin=True,
                              json={"reason": "race test"})
        return stack.call("POST", f"/user/ai/tasks/{task_no}/cancel", user=user)

    responses = _parallel(len(task_nos) * 3, settle)
    for index, task_no in enumerate(task_nos):
        mine = responses[index * 3:index * 3 + 3]
        assert sorted(r.status_code for r in mine) == [200, 409, 409], [r.text for r in mine]
        task = stack.task(user, task_no)
        assert task["status"] in ("cancelled", "failed") and task["refunded"] is True, task
        assert stack.records(user, task_no) == [("debit", -OUTPAINT_COST), ("refund", OUTPAINT_COST)]
    assert stack.balance(user) == 8 * OUTPAINT_COST == _ledger_sum(stack.records(user))


def test_20_submits_with_one_idempotency_key_make_one_task(stack):
    user = new_user("idem")
    stack.grant(user, 100)
    headers = {"Idempotency-Key": f"order-{user}"}
    request = _outpaint(stack)
    responses = _parallel(20, lambda i: stack.submit(user, headers=headers, **request))
    accepted = [r for r in responses if r.status_code == 200]
    assert accepted, [r.text for r in responses]
    # A duplicate that arrives while the first is still in flight may be told so (409); none is a new task.
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    assert len({r.json()["data"]["taskNo"] for r in accepted}) == 1
    assert stack.task_count(user) == 1
    task_no = accepted[0].json()["data"]["taskNo"]
    assert stack.wait_task(user, task_no, timeout=60)["status"] == "completed"
    assert stack.records(user) == [("grant", 100), ("debit", -OUTPAINT_COST)]
    assert stack.balance(user) == 100 - OUTPAINT_COST


def test_20_grants_with_one_idempotency_key_apply_once(stack):
    user = new_user("grant")
    headers = {"Idempotency-Key": f"grant-{user}"}

    def grant(i: int) -> requests.Response:
        return stack.call("POST", "/admin/points/grant", user="ops", admin=True, headers=headers,
                          json={"userId": user, "amount": 100, "reason": "once"})

    responses = _parallel(20, grant)
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    assert any(r.status_code == 200 for r in responses)
    assert stack.records(user) == [("grant", 100)]
    assert stack.balance(user) == 100


def test_many_users_in_parallel_only_ever_see_their_own_data(stack):
    users = [new_user(f"iso{i}") for i in range(12)]
    for i, user in enumerate(users):
        stack.grant(user, 100 + i)

    def look(i: int) -> list[str]:
        user, wrong = users[i % len(users)], []
        expected = 100 + i % len(users)
        with requests.Session() as session:
            token = stack.token(user)
            for _ in range(8):
                response = session.get(f"{stack.url}/user/points/consumption/balance", timeout=60,
                                       headers={"Authorization": f"Bearer {token}"})
                if response.status_code != 200 or response.json()["data"]["balance"] != expected:
                    wrong.append(f"{user}: {response.status_code} {response.text[:200]}")
                response = session.get(f"{stack.url}/user/points/consumption/records", timeout=60,
                                       headers={"Authorization": f"Bearer {token}"})
                if response.status_code != 200 or [r["amount"] for r in response.json()["data"]["records"]] != [expected]:
                    wrong.append(f"{user}: {response.status_code} {response.text[:200]}")
        return wrong

    wrong = [line for lines in _parallel(36, look) for line in lines]
    assert wrong == []
