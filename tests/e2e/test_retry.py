"""POST /user/ai/tasks/{taskNo}/retry over real HTTP: a new task with the same inputs for a failed or
cancelled task of the caller, charged anew, once per Idempotency-Key; 409 for other statuses, 404 for
another user's task."""
from __future__ import annotations

import time

from tests.e2e.conftest import new_user

PRICE = 20  # wanx-v1, one image


def _retry(stack, user: str, task_no: str, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else None
    return stack.call("POST", f"/user/ai/tasks/{task_no}/retry", user=user, headers=headers)


def _cancelled_task(stack, user: str, prompt: str) -> dict:
    submitted = stack.submit(user, modelName="wanx-v1", prompt=prompt, parameters={"size": "720*1280"})
    assert submitted.status_code == 200, submitted.text
    task_no = submitted.json()["data"]["taskNo"]
    cancelled = stack.call("POST", f"/user/ai/tasks/{task_no}/cancel", user=user)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"
    return cancelled.json()["data"]


def test_a_cancelled_task_is_retried_with_the_same_inputs_charged_anew_and_completes(stack):
    user = new_user("retry")
    stack.grant(user, 100)
    old = _cancelled_task(stack, user, "a red kite [sim:seconds=2]")
    assert stack.balance(user) == 100  # the cancel refunded it

    response = _retry(stack, user, old["taskNo"])
    assert response.status_code == 200, response.text
    new = response.json()["data"]
    assert new["taskNo"] != old["taskNo"] and new["status"] == "queued" and new["pointsCost"] == PRICE
    for field in ("modelName", "promptSnippet", "imageUrl", "parameters", "taskType", "effect"):
        assert new[field] == old[field], field
    assert stack.balance(user) == 100 - PRICE
    assert stack.records(user, new["taskNo"]) == [("debit", -PRICE)]

    done = stack.wait_task(user, new["taskNo"])
    assert done["status"] == "completed" and done["resultUrl"], done
    assert stack.task(user, old["taskNo"])["status"] == "cancelled"  # the old task is left as it was
    assert stack.balance(user) == 100 - PRICE


def test_a_failed_task_is_retried_and_settled_on_its_own(stack):
    user = new_user("retry")
    stack.grant(user, 100)
    submitted = stack.submit(user, modelName="wanx-v1", prompt="a kite [sim:fail=InternalError.Algo]")
    assert submitted.status_code == 200, submitted.text
    old = stack.wait_task(user, submitted.json()["data"]["taskNo"])
    assert old["status"] == "failed" and old["refunded"] is True

    new = _retry(stack, user, old["taskNo"]).json()["data"]
    assert new["taskNo"] != old["taskNo"]
    failed_again = stack.wait_task(user, new["taskNo"])
    assert failed_again["status"] == "failed" and failed_again["refunded"] is True
    assert stack.records(user, new["taskNo"]) == [("debit", -PRICE), ("refund", PRICE)]
    assert stack.records(user, old["taskNo"]) == [("debit", -PRICE), ("refund", PRICE)]
    assert stack.balance(user) == 100


def test_the_same_idempotency_key_gives_the_same_new_task_and_one_debit(stack):
    user = new_user("retry")
    stack.grant(user, 100)
    old = _cancelled_task(stack, user, "a blue kite [sim:seconds=1]")
    first = _retry(stack, user, old["taskNo"], key="retry-1")
    second = _retry(stack, user, old["taskNo"], key="retry-1")
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["data"]["taskNo"] == second.json()["data"]["taskNo"]
    assert stack.balance(user) == 100 - PRICE
    assert stack.task_count(user) == 2
    other = _retry(stack, user, old["taskNo"], key="retry-2")  # another key is another retry
    assert other.status_code == 200 and other.json()["data"]["taskNo"] != first.json()["data"]["taskNo"]
    assert stack.balance(user) == 100 - 2 * PRICE


def test_only_failed_or_cancelled_tasks_of_the_caller_can_be_retried(stack):
    user, other = new_user("retry"), new_user("other")
    stack.grant(user, 100)
    stack.grant(other, 100)
    running = stack.submit(user, modelName="wanx-v1", prompt="slow [sim:seconds=5]").json()["data"]
    conflict = _retry(stack, user, running["taskNo"])
    assert conflict.status_code == 409 and "only failed or cancelled" in conflict.json()["message"]
    done = stack.wait_task(user, running["taskNo"])
    assert done["status"] == "completed"
    assert _retry(stack, user, running["taskNo"]).status_code == 409

    cancelled = _cancelled_task(stack, user, "mine [sim:seconds=1]")
    stolen = _retry(stack, other, cancelled["taskNo"])
    assert stolen.status_code == 404 and stolen.json()["code"] == 404
    assert _retry(stack, user, "TASK-20200101000000000-0000000000000000").status_code == 404
    time.sleep(0.2)
    assert stack.balance(other) == 100 and stack.task_count(other) == 0
    assert stack.balance(user) == 100 - PRICE  # only the completed task is paid for


def test_retry_needs_points_like_a_submit(stack):
    user = new_user("retry")
    stack.grant(user, PRICE)
    old = _cancelled_task(stack, user, "kite [sim:seconds=1]")
    stack.submit(user, modelName="wanx-v1", prompt="spends the points [sim:seconds=1]")
    poor = _retry(stack, user, old["taskNo"])
    assert poor.status_code == 402 and str(PRICE) in poor.json()["message"]
    assert stack.task_count(user) == 2 and stack.balance(user) == 0
