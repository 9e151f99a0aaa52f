"""Dead-letter queues end to end: an upload the function fails on lands in the upload DLQ (as the
template says), `python -m ops.dlq` shows it, and replaying it once AWS works again makes the task
and charges it once."""
from __future__ import annotations

import io
import json
import os
import time

import boto3
import pytest

from local import faults
from ops import dlq


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _run(capsys, *argv: str) -> tuple[int, object]:
    code, result = dlq.run(["--local", *argv])
    return code, json.loads(json.dumps(result))  # what `python -m ops.dlq` prints


def _wait_depth(queue_name: str, wanted: int, capsys) -> dict:
    deadline = time.monotonic() + 20
    while True:
        _, listed = _run(capsys, "list")
        entry = next(q for q in listed if q["queue"] == queue_name)
        if entry["visible"] >= wanted or time.monotonic() > deadline:
            return entry
        time.sleep(0.1)


@pytest.fixture
def break_dynamodb():
    """Every DynamoDB call answers 500 from when the returned function is called (local fault switch)."""
    def down():
        faults.SWITCH.add(faults.Fault(service="dynamodb", operations=["*"], code="InternalServerError",
                                       message="DynamoDB is having a bad day (test)"))

    yield down
    faults.SWITCH.clear()


def test_list_names_every_queue_and_what_it_replays_to(app, capsys):
    code, listed = _run(capsys, "list")
    assert code == 0
    by_name = {q["queue"]: q for q in listed}
    assert set(by_name) == {"upload", "reconcile", "events", "webhook", "stats"}
    # a dead-lettered stream range goes back to StatsFunction, which reads it again
    assert by_name["stats"]["replaysTo"] == f"{app.deployment.name('StatsFunction')}:live"
    assert by_name["upload"]["replaysTo"] == f"{app.deployment.name('UploadFunction')}:live"
    assert by_name["upload"]["holds"] == "lambda" and by_name["events"]["holds"] == "events"
    assert by_name["events"]["replaysTo"] == by_name["reconcile"]["replaysTo"]
    assert all(q["visible"] == 0 for q in listed)


def test_failed_upload_is_dead_lettered_then_replayed_into_one_charged_task(app, capsys, break_dynamodb):
    app.grant("alice", 100)
    break_dynamodb()
    bucket = os.environ["RESULTS_BUCKET"]
    boto3.client("s3").put_object(Bucket=bucket, Key="uploads/alice/beach.png", Body=_png())

    entry = _wait_depth("upload", 1, capsys)
    assert entry["visible"] == 1
    faults.SWITCH.clear()  # DynamoDB is back
    assert app.balance("alice") == 100  # nothing charged for the failed attempt

    code, shown = _run(capsys, "show", "upload")
    assert code == 0 and len(shown) == 1
    [message] = shown
    assert "InternalServerError" in message["error"]["ErrorMessage"]
    assert message["event"]["Records"][0]["s3"]["object"]["key"].endswith("beach.png")

    code, dry = _run(capsys, "replay", "upload", "--dry-run")
    assert code == 0 and dry["would_replay"] == [message["messageId"]] and dry["replayed"] == []
    assert _wait_depth("upload", 1, capsys)["visible"] == 1  # a dry run changes nothing

    code, replayed = _run(capsys, "replay", "upload")
    assert code == 0 and replayed == {"replayed": [message["messageId"]], "failed": []}
    deadline = time.monotonic() + 30
    while True:
        records = app.api("GET", "/user/ai/tasks/list", user="alice")[1]["data"]["records"]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [task] = records
    assert task["source"] == "upload" and task["taskType"] == "outpainting"
    assert app.balance("alice") == 100 - task["pointsCost"] and task["pointsCost"] > 0
    _, listed = _run(capsys, "list")
    assert next(q for q in listed if q["queue"] == "upload")["visible"] == 0

    # Replaying the same event again (an operator's second run) changes nothing.
    [event] = [m["event"] for m in shown]
    assert app.invoke("UploadFunction", event) == {"outcomes": ["duplicate"]}
    assert app.balance("alice") == 100 - task["pointsCost"]


def test_unknown_queue_is_refused_with_the_known_names(app, capsys):
    with pytest.raises(SystemExit) as refused:
        dlq.run(["--local", "show", "nope"])
    assert "upload" in str(refused.value) and "events" in str(refused.value)


def test_webhook_dead_letters_and_stream_batch_records_go_back_to_their_queue(app, capsys):
    sqs = boto3.client("sqs")
    dead = sqs.get_queue_url(QueueName=app.deployment.name("WebhookDeadLetterQueue"))["QueueUrl"]
    source = sqs.get_queue_url(QueueName=app.deployment.name("WebhookQueue"))["QueueUrl"]
    delivery = {"taskNo": "T-1", "event": "task.completed", "lastError": "HTTP 503", "failedAttempts": 12}
    batch = {"requestContext": {"condition": "RetryAttemptsExhausted"},
             "DDBStreamBatchInfo": {"shardId": "shard-1", "startSequenceNumber": "1", "endSequenceNumber": "9"}}
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(delivery))
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(batch))

    code, listed = _run(capsys, "list")
    webhooks = next(q for q in listed if q["queue"] == "webhook")
    assert webhooks["holds"] == "queue" and webhooks["replaysTo"] == source and webhooks["visible"] == 2

    code, result = _run(capsys, "replay", "webhook")
    assert code == 0 and len(result["replayed"]) == 2 and not result["failed"]
    resent = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10)["Messages"]
    assert sorted((json.loads(m["Body"]) for m in resent), key=len) == sorted([delivery, batch], key=len)
