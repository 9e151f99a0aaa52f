"""Lists: nextToken walks a list once, newest first; page/size (seed 001) still work; `total` comes
from counters kept in the transactions that create tasks and ledger entries, never from counting."""
from __future__ import annotations

import base64
import json

import pytest

TASKS = "/user/ai/tasks/list"
LEDGER = "/user/points/consumption/records"


def _walk(app, path, user="alice", **query) -> tuple[list[dict], list[dict]]:
    """Every record of a list by following nextToken; also each page's envelope data."""
    records, pages, token = [], [], None
    for _ in range(100):
        status, body = app.api("GET", path, user=user, query={**query, **({"nextToken": token} if token else {})})
        assert status == 200, body
        pages.append(body["data"])
        records += body["data"]["records"]
        token = body["data"]["nextToken"]
        if token is None:
            return records, pages
    raise AssertionError("nextToken never ran out")


def _submit(app, **request) -> str:
    status, body = app.submit(**request)
    assert status == 200, body
    return body["data"]["taskNo"]


@pytest.fixture
def no_counting(monkeypatch):
    """Lists must not count the partition: make every Query(Select=COUNT) fail."""
    from aigc.store.db import PointsItem, TaskItem

    def refuse(*args, **kwargs):
        raise AssertionError("a list counted the partition")

    monkeypatch.setattr(TaskItem, "count", classmethod(refuse))
    monkeypatch.setattr(PointsItem, "count", classmethod(refuse))


def test_next_token_walks_every_task_once_newest_first_and_total_is_kept(app, no_counting):
    app.grant("alice", 1000)
    made = [_submit(app, modelName="sc_soraimg_text_1x1", prompt=f"cat {i}") for i in range(4)]
    made += [_submit(app, modelName="wanx-v1", prompt=f"dog {i}") for i in range(3)]
    records, pages = _walk(app, TASKS, size=3)
    assert [r["taskNo"] for r in records] == made[::-1]
    assert [len(p["records"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 and p["pages"] == 3 for p in pages)
    assert pages[0]["page"] == 1 and pages[1]["page"] is None  # a token page has no page number
    # seed 001's page/size give the same pages
    page2 = app.api("GET", TASKS, query={"page": 2, "size": 3})[1]["data"]
    assert [r["taskNo"] for r in page2["records"]] == made[::-1][3:6] and page2["nextToken"]
    beyond = app.api("GET", TASKS, query={"page": 4, "size": 3})[1]["data"]
    assert beyond["records"] == [] and beyond["nextToken"] is None and beyond["total"] == 7
    # by type: its own counter
    typed, typed_pages = _walk(app, TASKS, size=2, taskType="text_to_image")
    assert [r["taskNo"] for r in typed] == made[::-1]  # both models are text_to_image
    assert {p["total"] for p in typed_pages} == {7}
    assert app.api("GET", TASKS, query={"taskType": "outpainting"})[1]["data"]["total"] == 0
    # another user sees none of them, even with alice's token
    token = pages[0]["nextToken"]
    other = app.api("GET", TASKS, user="bob", query={"nextToken": token})
    assert other[0] == 200 and other[1]["data"]["records"] == [] and other[1]["data"]["total"] == 0


def test_status_filter_pages_by_token_with_no_total(app, no_counting):
    app.grant("alice", 1000)
    made = [_submit(app, modelName="sc_soraimg_text_1x1", prompt=f"cat {i}") for i in range(3)]
    for task_no in made:
        app.wait_execution(task_no)
    records, pages = _walk(app, TASKS, size=2, status="completed")
    assert [r["taskNo"] for r in records] == made[::-1]
    assert all(p["total"] is None and p["pages"] is None for p in pages)
    assert [len(p["records"]) for p in pages] == [2, 1]


def test_totals_stay_right_through_refunds_cancels_and_repeated_requests(app, no_counting):
    grant = {"userId": "alice", "amount": 500, "reason": "welcome"}
    for _ in range(2):  # the same Idempotency-Key twice: one grant, one ledger entry
        status, _ = app.api("POST", "/admin/points/grant", user="root", admin=True, body=grant,
                            headers={"Idempotency-Key": "welcome-alice"})
        assert status == 200
    ok = _submit(app, modelName="sc_soraimg_text_1x1", prompt="cat")
    failing = _submit(app, modelName="wanx-v1", prompt="cat [sim:fail=InternalError.Algo]")
    slow = _submit(app, modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                   parameters={"xScale": 2})
    once = {"Idempotency-Key": "order-1"}
    repeated = {_submit(app, headers=once, modelName="wanx-v1", prompt="p") for _ in range(2)}
    assert len(repeated) == 1
    assert app.wait_execution(ok)["status"] == "SUCCEEDED"
    app.wait_execution(failing)
    assert app.api("POST", f"/user/ai/tasks/{slow}/cancel")[0] == 200
    assert app.api("POST", f"/user/ai/tasks/{slow}/cancel")[0] == 409  # a second cancel refunds nothing
    app.wait_execution(repeated.pop())

    tasks, task_pages = _walk(app, TASKS, size=2)
    assert len(tasks) == 4 and {p["total"] for p in task_pages} == {4}
    ledger, ledger_pages = _walk(app, LEDGER, size=2)
    kinds = sorted(r["type"] for r in ledger)
    assert kinds == ["debit"] * 4 + ["grant"] + ["refund"] * 2, kinds
    assert {p["total"] for p in ledger_pages} == {7}
    assert [r["createTime"] for r in ledger] == sorted((r["createTime"] for r in ledger), reverse=True)
    assert sum(r["amount"] for r in ledger) == app.balance("alice")


def _forged(fields) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path, token", [
    (TASKS, "not-a-token"),
    (TASKS, _forged({"k": "tasks", "created_at": "2026-01-01", "task_no": "x"})),
    (LEDGER, _forged({"k": "tasks", "created_at": "2026-01-01T00:00:00.000Z", "task_no": "TASK-1"})),
    (LEDGER, "%%%"),
    (TASKS, "x" * 1500),
])
def test_a_token_we_did_not_issue_is_a_400_naming_next_token(app, path, token):
    app.grant("alice", 100)
    status, body = app.api("GET", path, query={"nextToken": token})
    assert status == 400 and body["message"].startswith("nextToken"), body
    assert app.balance("alice") == 100


@pytest.mark.parametrize("path", [TASKS, LEDGER])
def test_page_numbers_stop_at_50_and_name_the_way_on(app, path):
    """Page N reads and skips (N-1)*size items: past page 50 a list goes on by nextToken only."""
    assert app.api("GET", path, query={"page": 50, "size": 100})[0] == 200
    status, body = app.api("GET", path, query={"page": 51, "size": 100})
    assert status == 400 and body["message"].startswith("page"), body
