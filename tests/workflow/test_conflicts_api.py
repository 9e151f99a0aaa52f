"""A user's own requests meeting on one item, through the real API handler on the deployed stack: DynamoDB's
TransactionConflict (injected at the botocore edge by the local fault switch, as moto never overlaps two
requests) is retried; when it keeps happening the answer is 429 with Retry-After, in the reader's language,
and nothing is charged or refunded."""
from __future__ import annotations

import pytest

from local import faults

SUBMIT = {"modelName": "sc_soraimg_text_1x1", "prompt": "a cat"}


@pytest.fixture
def conflicts():
    added = []

    def add(preset: str, times: int | None = None):
        added.append(faults.SWITCH.add(faults.parse_fault({"preset": preset, "table": "PointsTable", "times": times})))
        return added[-1]

    yield add
    faults.SWITCH.clear()


def test_a_submit_that_met_a_transaction_twice_is_charged_once(app, conflicts):
    app.grant("alice", 100)
    fault = conflicts("transaction-conflict", times=2)

    status, body = app.api("POST", "/user/ai/tasks/submit", body=SUBMIT)

    assert status == 200, body
    assert fault.hits == 2
    assert app.balance("alice") == 100 - body["data"]["pointsCost"]


def test_a_submit_that_keeps_meeting_transactions_is_429_with_retry_after_and_charges_nothing(app, conflicts):
    app.grant("alice", 100)
    conflicts("transaction-conflict")

    status, headers, body = app.api_with_headers("POST", "/user/ai/tasks/submit", body=SUBMIT)
    chinese = app.api_with_headers("POST", "/user/ai/tasks/submit", body=SUBMIT, headers={"Accept-Language": "zh-CN"})

    assert (status, body["code"], headers["Retry-After"]) == (429, 429, "1")
    assert "another request of this account" in body["message"] and "nothing was changed" in body["message"]
    assert chinese[0] == 429 and "本账户的另一个请求" in chinese[2]["message"]
    faults.SWITCH.clear()
    assert app.balance("alice") == 100
    status, listed = app.api("GET", "/user/ai/tasks/list")
    assert status == 200 and listed["data"]["total"] == 0  # no task was created either


def test_a_cancel_that_keeps_meeting_transactions_is_429_and_a_retry_refunds_once(app, conflicts):
    app.grant("alice", 100)
    status, body = app.api("POST", "/user/ai/tasks/submit", body={**SUBMIT, "parameters": {}})
    assert status == 200
    task_no, cost = body["data"]["taskNo"], body["data"]["pointsCost"]
    conflicts("transaction-conflict")

    status, headers, body = app.api_with_headers("POST", f"/user/ai/tasks/{task_no}/cancel")
    assert (status, headers["Retry-After"]) == (429, "1"), body
    faults.SWITCH.clear()
    assert app.balance("alice") == 100 - cost

    status, body = app.api("POST", f"/user/ai/tasks/{task_no}/cancel")
    if status == 409:  # it finished in between: then it was never refunded, and must not be
        assert app.balance("alice") == 100 - cost
    else:
        assert status == 200 and app.balance("alice") == 100
