"""Webhooks end to end on the deployed template: the TasksTable stream and WebhookQueue pumped to
WebhookFunction as Lambda's event source mappings would, a real HTTP receiver, and deliveries
verified with the `standardwebhooks` reference library and the user's secret."""
from __future__ import annotations

import json
import time

import boto3
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from local.queues import EventSourceMappings
from local.webhook_receiver import Receiver


@pytest.fixture
def hooks(app):
    """The app with its event source mappings running, and a receiver factory."""
    mappings = EventSourceMappings(app.deployment, poll_seconds=0.05).start()
    receivers = []

    def receiver(statuses=()):
        receivers.append(Receiver(statuses))
        return receivers[-1]

    yield receiver
    mappings.stop()
    for r in receivers:
        r.stop()


def _secret(app, user="alice") -> str:
    status, body = app.api("GET", "/user/webhooks/secret", user=user)
    assert status == 200, body
    return body["data"]["secret"]


def _stable(view: dict) -> dict:
    """A task view without what differs between two renderings (presigned URLs carry their signing time)."""
    return {k: v for k, v in view.items() if k not in ("resultUrl", "resultUrls", "thumbnailUrl", "imageUrl")}


def test_completed_delivery_verifies_with_the_users_secret_and_a_tampered_body_does_not(app, hooks):
    receiver = hooks()
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite", webhook=receiver.url,
                              webhookEventsFilter=["completed"])
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"

    (headers, raw), = receiver.wait_for(1)
    time.sleep(1.0)  # nothing else arrives: no start (filtered out), no second completed
    assert len(receiver.deliveries) == 1
    payload = Webhook(_secret(app)).verify(raw, headers)
    assert payload["event"] == "completed"
    task = app.task(task_no)
    assert _stable(payload["data"]) == _stable(task) and payload["data"]["status"] == "completed"
    assert set(payload["data"]) == set(task) and len(payload["data"]["resultUrls"]) == 1
    assert headers["webhook-id"] == f"msg_{task_no}_completed"
    assert headers["webhook-signature"].startswith("v1,")

    tampered = raw.replace(b'"completed"', b'"failed"', 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret(app)).verify(tampered, headers)
    status, body = app.api("POST", "/user/webhooks/secret/rotate")
    assert status == 200 and body["data"]["secret"] != _secret(app, "bob")
    with pytest.raises(WebhookVerificationError):  # the old signature no longer matches the new secret
        Webhook(body["data"]["secret"]).verify(raw, headers)
    assert _secret(app) == body["data"]["secret"]


def test_start_and_completed_are_both_delivered_by_default(app, hooks):
    receiver = hooks()
    app.grant("alice", 100)
    status, body = app.submit(modelName="sc_soraimg_text_3x2", prompt="mountain sunrise", webhook=receiver.url)
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    deliveries = receiver.wait_for(2)
    time.sleep(1.0)
    assert sorted(receiver.events()) == ["completed", "start"]
    secret = _secret(app)
    for headers, raw in deliveries:
        Webhook(secret).verify(raw, headers)
    assert {h["webhook-id"] for h, _ in deliveries} == {f"msg_{task_no}_start", f"msg_{task_no}_completed"}


def test_a_failing_receiver_gets_the_same_id_again_and_never_touches_the_ledger(app, hooks):
    receiver = hooks(statuses=[500])
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite", webhook=receiver.url,
                              webhookEventsFilter=["completed"])
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    first, second = receiver.wait_for(2, timeout=30)  # the first retry comes 5 s after the failure
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == f"msg_{task_no}_completed"
    Webhook(_secret(app)).verify(second[1], second[0])
    time.sleep(1.0)
    assert len(receiver.deliveries) == 2
    assert app.task(task_no)["status"] == "completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -20)]
    assert app.balance("alice") == 80


def test_failed_and_cancelled_tasks_are_completed_events(app, hooks):
    receiver = hooks()
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a kite [sim:fail=DataInspectionFailed]",
                              webhook=receiver.url, webhookEventsFilter=["completed"])
    failed = body["data"]["taskNo"]
    status, body = app.submit(modelName="wanx-v1", prompt="a kite [sim:pending=30]", webhook=receiver.url,
                              webhookEventsFilter=["completed"])
    cancelled = body["data"]["taskNo"]
    assert app.wait_execution(failed)["status"] == "SUCCEEDED"
    status, _ = app.api("POST", f"/user/ai/tasks/{cancelled}/cancel")
    assert status == 200
    receiver.wait_for(2)
    by_task = {json.loads(raw)["data"]["taskNo"]: json.loads(raw)["data"] for _, raw in receiver.deliveries}
    assert by_task[failed]["status"] == "failed" and by_task[failed]["refunded"] is True
    assert by_task[cancelled]["status"] == "cancelled" and by_task[cancelled]["refunded"] is True
    assert app.balance("alice") == 100


@pytest.mark.parametrize("fields, named", [
    ({"webhook": "ftp://example.com/hook"}, "webhook"),
    ({"webhook": "not a url"}, "webhook"),
    ({"webhook": "https://example.com/hook", "webhookEventsFilter": ["finished"]}, "webhookEventsFilter"),
    ({"webhook": "https://example.com/hook", "webhookEventsFilter": []}, "webhookEventsFilter"),
    ({"webhook": "https://example.com/hook", "webhookEventsFilter": "completed"}, "webhookEventsFilter"),
    ({"webhookEventsFilter": ["start"]}, "webhookEventsFilter"),
    ({"webhook": 42}, "webhook"),
])
def test_invalid_webhook_fields_are_400_naming_the_field_and_charge_nothing(app, fields, named):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite", **fields)
    assert status == 400, body
    assert body["message"].split(":")[0].split(".")[0] == named, body
    assert app.balance("alice") == 100


def test_a_delivery_failing_for_24_hours_is_dead_lettered_ready_for_replay(app, hooks):
    from aigc.store.db import TaskItem

    receiver = hooks(statuses=[503] * 10)
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite")
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = TaskItem.get(task_no)
    task.webhook_url = receiver.url
    sqs = boto3.client("sqs")
    queue, dead = (app.deployment.resolver.physical[q]["Ref"] for q in ("WebhookQueue", "WebhookDeadLetterQueue"))
    message = {"webhookId": f"msg_{task_no}_completed", "event": "completed", "taskNo": task_no,
               "task": task.serialize(), "attempts": 7, "firstAttemptAt": time.time() - 24 * 3600 - 1}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(message))
    receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=0).get("Messages", [])
        if got:
            break
        time.sleep(0.1)
    dead_letter = json.loads(got[0]["Body"])
    assert dead_letter["webhookId"] == f"msg_{task_no}_completed" and dead_letter["lastError"] == "HTTP 503"
    assert "firstAttemptAt" not in dead_letter  # a replay (send it back to WebhookQueue) starts a fresh 24 h
    assert len(receiver.deliveries) == 1
    receiver.statuses.clear()
    sqs.send_message(QueueUrl=queue, MessageBody=got[0]["Body"])
    receiver.wait_for(2)
    assert receiver.deliveries[1][0]["webhook-id"] == f"msg_{task_no}_completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -20)]


def test_first_reads_of_a_secret_at_once_agree_on_one(app):
    from concurrent.futures import ThreadPoolExecutor

    from aigc.domain import webhooks

    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: webhooks.get_secret("carol"), range(16)))
    assert len(secrets) == 1
    secret = secrets.pop()
    assert secret.startswith("whsec_") and _secret(app, "carol") == secret


def test_a_stream_batch_that_could_not_be_queued_is_replayed_from_the_stream(app, hooks):
    """Lambda's on-failure record for a stream batch names a range; sent back to WebhookQueue (as an
    operator replays the dead-letter queue), the function reads that range again and delivers."""
    from moto.dynamodb.models import dynamodb_backends

    receiver = hooks()
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite", webhook=receiver.url,
                              webhookEventsFilter=["completed"])
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    receiver.wait_for(1)
    table = dynamodb_backends["123456789012"]["us-east-1"].get_table(app.deployment.name("TasksTable"))
    records = [r.to_json() for r in table.stream_shard.items]
    mine = [int(r["dynamodb"]["SequenceNumber"]) for r in records if r["dynamodb"]["Keys"]["task_no"]["S"] == task_no]
    arn = boto3.client("dynamodb").describe_table(TableName=app.deployment.name("TasksTable"))["Table"]["LatestStreamArn"]
    info = {"shardId": table.stream_shard.id, "startSequenceNumber": str(min(mine)),
            "endSequenceNumber": str(max(mine)), "streamArn": arn, "batchSize": len(mine)}
    queue = app.deployment.resolver.physical["WebhookQueue"]["Ref"]
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": info}))
    deliveries = receiver.wait_for(2)
    assert deliveries[1][0]["webhook-id"] == deliveries[0][0]["webhook-id"] == f"msg_{task_no}_completed"
    Webhook(_secret(app)).verify(deliveries[1][1], deliveries[1][0])


def test_deliveries_go_on_after_old_stream_records_are_trimmed(app, hooks, caplog):
    """The stack trims stream records older than its retention window (local/retention.py), as
    DynamoDB Streams does after 24 h; the reader keeps its place and numbering goes on."""
    import datetime

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from local import retention

    receiver = hooks()
    app.grant("alice", 100)
    first = app.submit(modelName="sc_soraimg_text_3x2", prompt="one", webhook=receiver.url)[1]["data"]["taskNo"]
    assert app.wait_execution(first)["status"] == "SUCCEEDED"
    receiver.wait_for(2)
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(app.deployment.name("TasksTable")).stream_shard
    written, last = len(shard.items), shard.starting_sequence_number + len(shard.items) - 1
    for record in shard.items:
        record.record["dynamodb"]["ApproximateCreationDateTime"] -= datetime.timedelta(hours=1)
    assert retention.trim_streams(600) == written > 0
    assert shard.items == [] and shard.starting_sequence_number == last + 1

    second = app.submit(modelName="sc_soraimg_text_3x2", prompt="two", webhook=receiver.url)[1]["data"]["taskNo"]
    assert app.wait_execution(second)["status"] == "SUCCEEDED"
    receiver.wait_for(4)
    assert int(shard.items[0].record["dynamodb"]["SequenceNumber"]) == last + 1
    assert retention.trim_streams(600) == 0  # the new records are inside the window
    time.sleep(0.5)
    ids = sorted(h["webhook-id"] for h, _ in receiver.wait_for(4))
    assert ids == sorted(f"msg_{t}_{e}" for t in (first, second) for e in ("start", "completed"))
    assert [r.getMessage() for r in caplog.records if r.name == "local.queues" and r.levelname == "ERROR"] == []


def test_a_task_shows_where_and_which_events_it_delivers(app):
    app.grant("alice", 100)
    plain = app.submit(modelName="sc_soraimg_text_3x2", prompt="no hooks")[1]["data"]
    assert (plain["webhook"], plain["webhookEventsFilter"]) == (None, None)
    hooked = app.submit(modelName="sc_soraimg_text_3x2", prompt="hooks", webhook="https://example.com/h",
                        webhookEventsFilter=["completed"])[1]["data"]["taskNo"]
    default = app.submit(modelName="sc_soraimg_text_3x2", prompt="hooks", webhook="https://example.com/h")[1]["data"]
    assert default["webhookEventsFilter"] == ["start", "completed"]
    status, body = app.api("GET", f"/user/ai/tasks/{hooked}", user="alice")
    assert status == 200 and (body["data"]["webhook"], body["data"]["webhookEventsFilter"]) == (
        "https://example.com/h", ["completed"])
