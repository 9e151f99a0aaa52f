"""The admins' read routes on the deployed template: tasks made through the API and run by the real
workflow, their stream records pumped to StatsFunction as Lambda's event source mappings would, and
GET /admin/stats exact against them (counts and rates to the unit); the task search and a user's
overview agree; users are refused."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from local.queues import EventSourceMappings

WANX = "wanx-v1"


@pytest.fixture
def fed(app):
    """The app with its event source mappings running (the streams feed StatsFunction)."""
    mappings = EventSourceMappings(app.deployment, poll_seconds=0.05).start()
    yield app
    mappings.stop()


def _stats(app, bucket: str, span: timedelta) -> dict:
    now = datetime.now(timezone.utc)
    status, body = app.api("GET", "/admin/stats", user="root", admin=True, query={
        "from": (now - span).strftime("%Y-%m-%dT%H:%M:%SZ"), "to": (now + span).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bucket": bucket})
    assert status == 200, body
    return body["data"]


def _settled(app, expected_ended: int, granted: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        numbers = _stats(app, "hour", timedelta(hours=1))
        tasks, points = numbers["totals"]["tasks"], numbers["totals"]["points"]
        if tasks["completed"] + tasks["failed"] + tasks["cancelled"] >= expected_ended and points["granted"] >= granted:
            return numbers
        assert time.monotonic() < deadline, numbers["totals"]
        time.sleep(0.2)


def test_admin_stats_are_exact_against_the_tasks_made(fed):
    app = fed
    app.grant("alice", 100)
    app.grant("bob", 100)
    made = {}
    for name, user, prompt in (("ok1", "alice", "a kite"), ("ok2", "alice", "a boat"),
                               ("bad", "alice", "a cat [sim:fail=InternalError.Algo]"),
                               ("slow", "bob", "a slow dawn [sim:seconds=60]")):
        status, body = app.submit(user, modelName=WANX, prompt=prompt)
        assert status == 200, body
        made[name] = body["data"]
    status, body = app.api("POST", f"/user/ai/tasks/{made['slow']['taskNo']}/cancel", user="bob")
    assert status == 200, body
    for name in ("ok1", "ok2", "bad", "slow"):
        app.wait_execution(made[name]["taskNo"])
    assert [app.task(made[n]["taskNo"], user)["status"] for n, user in (("ok1", "alice"), ("ok2", "alice"),
                                                                       ("bad", "alice"), ("slow", "bob"))] == [
        "completed", "completed", "failed", "cancelled"]

    numbers = _settled(app, expected_ended=4, granted=200)
    tasks, points = numbers["totals"]["tasks"], numbers["totals"]["points"]
    cost = made["ok1"]["pointsCost"]
    assert (tasks["created"], tasks["completed"], tasks["failed"], tasks["cancelled"], tasks["refunded"]) == (
        4, 2, 1, 1, 2)
    assert tasks["successRate"] == round(2 / 3, 4) and tasks["refundRate"] == 0.5
    assert tasks["topErrors"] == [{"code": "InternalError.Algo", "count": 1}]
    assert tasks["totalSeconds"]["count"] == 2 and tasks["totalSeconds"]["p95"] > 0
    assert tasks["jobSeconds"]["count"] == 2
    assert (tasks["pointsDebited"], tasks["pointsRefunded"]) == (4 * cost, 2 * cost)
    assert points == {"debited": 4 * cost, "refunded": 2 * cost, "granted": 200, "bought": 0, "expired": 0}
    assert [m["modelName"] for m in numbers["totals"]["models"]] == [WANX]
    ledger_sum = sum(amount for user in ("alice", "bob") for _kind, amount in app.ledger(user))
    assert points["granted"] - points["debited"] + points["refunded"] == ledger_sum
    days = _stats(app, "day", timedelta(days=1))["buckets"]
    assert max(bucket["tasks"]["activeUsers"] or 0 for bucket in days) == 2

    # the search finds them, newest first; a user's overview agrees with the ledger
    status, body = app.api("GET", "/admin/tasks", user="root", admin=True, query={"status": "failed"})
    assert status == 200, body
    assert [t["taskNo"] for t in body["data"]["records"]] == [made["bad"]["taskNo"]]
    assert body["data"]["records"][0]["userId"] == "alice" and body["data"]["nextToken"] is None
    seen, token = [], None
    while True:
        status, body = app.api("GET", "/admin/tasks", user="root", admin=True,
                               query={"size": "1", **({"nextToken": token} if token else {})})
        assert status == 200, body
        seen += [t["taskNo"] for t in body["data"]["records"]]
        token = body["data"]["nextToken"]
        if token is None:
            break
    assert seen == [made[n]["taskNo"] for n in ("slow", "bad", "ok2", "ok1")]
    status, body = app.api("GET", "/admin/users/alice", user="root", admin=True)
    assert status == 200, body
    alice = body["data"]
    assert alice["balance"] == app.balance("alice") == 100 - 2 * cost
    assert alice["taskCount"] == 3 and len(alice["recentTasks"]) == 3 and alice["known"] is True
    assert [e["type"] for e in alice["recentLedger"]].count("debit") == 3
    assert sum(lot["remaining"] for lot in alice["lots"]) == alice["balance"] and alice["orders"] == []


def test_the_admin_read_routes_refuse_users_and_bad_ranges(app):
    for path in ("/admin/stats", "/admin/tasks", "/admin/users/alice"):
        status, body = app.api("GET", path, user="alice")
        assert status == 403, (path, body)
    status, body = app.api("GET", "/admin/stats", user="root", admin=True,
                           query={"from": "2031-01-01T00:00:00Z", "to": "2031-02-01T00:00:00Z"})
    assert status == 400 and "168 hour buckets" in body["message"], body
    status, body = app.api("GET", "/admin/stats", user="root", admin=True, query={"bucket": "week"})
    assert status == 400, body
    status, body = app.api("GET", "/admin/tasks", user="root", admin=True, query={"nextToken": "bm9wZQ"})
    assert status == 400 and "nextToken" in body["message"], body


@pytest.mark.parametrize("path", ["/admin/tasks", "/admin/stats"])
@pytest.mark.parametrize("name, value", [
    ("to", "0664-06-07T07:30:36.8569-11:40"),  # schemathesis' find: a 3-digit year (keys would not sort)
    ("to", "9999-12-31T23:59:59-11:40"),  # past datetime's range once in UTC
    ("from", "1999-12-31T23:59:59Z"),
])
def test_a_time_outside_what_the_stores_hold_is_a_400_naming_the_parameter(app, path, name, value):
    status, body = app.api("GET", path, user="root", admin=True, query={name: value})
    assert status == 400 and name in body["message"] and "2000" in body["message"], body


def test_a_dead_lettered_stream_range_replayed_counts_once(app):
    """The stats mapping's on-failure record names a range of the stream; `ops.dlq replay stats` sends it
    back to StatsFunction, which reads the range again: counted once however often it is replayed."""
    import boto3
    from moto.dynamodb.models import dynamodb_backends

    app.grant("alice", 100)
    status, body = app.submit("alice", modelName=WANX, prompt="a kite")
    assert status == 200, body
    assert app.wait_execution(body["data"]["taskNo"])["status"] == "SUCCEEDED"
    name = app.deployment.name("TasksTable")
    table = dynamodb_backends["123456789012"]["us-east-1"].get_table(name)
    numbers = [int(r.to_json()["dynamodb"]["SequenceNumber"]) for r in table.stream_shard.items]
    info = {"shardId": table.stream_shard.id, "startSequenceNumber": str(min(numbers)),
            "endSequenceNumber": str(max(numbers)), "batchSize": len(numbers),
            "streamArn": boto3.client("dynamodb").describe_table(TableName=name)["Table"]["LatestStreamArn"]}
    for _ in range(2):
        answer = app.invoke("StatsFunction", {"requestContext": {"condition": "RetryAttemptsExhausted"},
                                              "DDBStreamBatchInfo": info})
    assert answer == {"counted": 0}  # the second time: every record already counted
    tasks = _stats(app, "hour", timedelta(hours=1))["totals"]["tasks"]
    assert (tasks["created"], tasks["completed"], tasks["successRate"]) == (1, 1, 1.0)
