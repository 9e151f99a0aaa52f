"""Issue 20: one upload, one task, one charge.

- Every event for one object (S3 delivers at least once; the local S3 sends two for a multipart
  upload, Put and CompleteMultipartUpload) makes one task and one debit, whatever the event times.
- An upload URL takes one file: a second object under the same key is a Rejected.UrlReused record
  (charged nothing), and only one such record is made however often the URL is reused.
- Upload URLs take turns in the same per-user per-minute window as submits (429 + Retry-After).
- A Rejected.* task cannot be retried (409): it never passed the upload checks.
"""
from __future__ import annotations

import copy
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from PIL import Image

from local.apigw import http_event
from tests.workflow.test_operations import _png, _user_tasks, _wait_for_tasks


def _bucket() -> str:
    return os.environ["RESULTS_BUCKET"]


def _upload_events(app) -> list[dict]:
    return [event for name, event, _ in app.deployment.router.invocations if name.endswith("UploadFunction")]


def _retimed(event: dict, when: str, **object_fields) -> dict:
    """The same S3 record delivered again at another time (optionally naming another object version)."""
    again = copy.deepcopy(event)
    record = again["Records"][0]
    record["eventTime"] = when
    record["s3"]["object"].update(object_fields)
    return again


def _invoke_all(app, events: list[dict]) -> list[str]:
    """Deliver the events at once (Lambda runs them in separate environments), in order of the list."""
    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        answers = list(pool.map(lambda event: app.invoke("UploadFunction", event), events))
    return [outcome for answer in answers for outcome in answer["outcomes"]]


def _big_png(min_bytes: int) -> bytes:
    """A valid PNG of noise (stored uncompressed) of at least `min_bytes`."""
    side = int((min_bytes / 3) ** 0.5) + 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def _api_raw(app, method: str, path: str, *, user: str = "alice", body=None) -> tuple[int, dict, dict]:
    """status, headers, body of one API call (app.api drops the headers)."""
    event = http_event(method, path, body=body, claims={"sub": user, "token_use": "id"})
    name = app.deployment.name("ApiFunction")
    payload, errored, _ = app.deployment.router.invoke(name, name, event)
    assert not errored, payload
    response = json.loads(payload)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], headers, json.loads(response["body"])


# --- 1. one object, one task ------------------------------------------------------------------------


def test_a_multipart_upload_is_one_task_and_one_debit(app):
    """`aws s3 cp` of a file over 8 MB is a multipart upload; the local S3 notifies Put and
    CompleteMultipartUpload for it (AWS at least once): one object, one task, one debit."""
    app.grant("alice", 100)
    data = _big_png(5 * 1024 * 1024 + 64 * 1024)
    s3, key = boto3.client("s3"), "uploads/alice/big.png"
    upload_id = s3.create_multipart_upload(Bucket=_bucket(), Key=key, ContentType="image/png")["UploadId"]
    cut = 5 * 1024 * 1024
    parts = []
    for number, chunk in ((1, data[:cut]), (2, data[cut:])):
        etag = s3.upload_part(Bucket=_bucket(), Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=_bucket(), Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    [task] = _wait_for_tasks(app, "alice", 1)
    assert len(_upload_events(app)) >= 2, "the local S3 should notify the multipart upload twice"
    assert task["pointsCost"] == 10 and task["status"] == "completed", (task["errorCode"], task["errorMessage"])
    assert len(_user_tasks(app, "alice")) == 1
    assert app.ledger("alice") == [("DEBIT", -10), ("GRANT", 100)] and app.balance("alice") == 90


def test_the_same_object_delivered_again_at_other_times_and_at_once_is_one_task(app):
    app.grant("alice", 100)
    boto3.client("s3").put_object(Bucket=_bucket(), Key="uploads/alice/cat.png", Body=_png())
    [task] = _wait_for_tasks(app, "alice", 1)
    [event] = _upload_events(app)
    # at-least-once delivery: the same object, later and several at once, each with its own event time
    again = [_retimed(event, f"2031-0{month}-01T00:00:0{month}.{month}00Z") for month in range(1, 6)]
    assert _invoke_all(app, again) == ["duplicate"] * 5
    assert [t["taskNo"] for t in _user_tasks(app, "alice")] == [task["taskNo"]]
    assert app.ledger("alice") == [("DEBIT", -10), ("GRANT", 100)] and app.balance("alice") == 90


def test_concurrent_first_deliveries_of_one_object_make_one_task(app):
    """Nobody has seen the object yet: its events race through the checks to the charge."""
    app.grant("alice", 100)
    s3 = boto3.client("s3")  # the events are delivered by hand here, so the bucket notifies nobody
    s3.put_bucket_notification_configuration(Bucket=_bucket(), NotificationConfiguration={})
    version = s3.put_object(Bucket=_bucket(), Key="uploads/alice/race.png", Body=_png())["VersionId"]
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
        "eventTime": "2030-01-01T00:00:00.000Z",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": _bucket(), "arn": f"arn:aws:s3:::{_bucket()}"},
               "object": {"key": "uploads/alice/race.png", "size": 1, "versionId": version, "sequencer": "0A1"}}}]}
    events = [_retimed(event, f"2030-01-01T00:00:0{n}.000Z") for n in range(4)]
    outcomes = _invoke_all(app, events)
    assert sorted(outcomes) == ["accepted", "duplicate", "duplicate", "duplicate"], outcomes
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["status"] == "completed"
    assert app.ledger("alice") == [("DEBIT", -10), ("GRANT", 100)] and app.balance("alice") == 90


# --- 2. one upload per upload URL -----------------------------------------------------------------------


def _post(upload: dict, body: bytes) -> None:
    response = requests.post(upload["url"], data=upload["fields"], files={"file": ("cat.png", body)}, timeout=10)
    assert response.status_code in (200, 204), response.text


def test_an_upload_url_takes_one_file(app, operator_view):
    lines, emitted = operator_view
    app.grant("alice", 100)
    status, body = app.api("POST", "/user/uploads", body={"fileName": "cat.png", "contentType": "image/png"})
    assert status == 200, body
    upload = body["data"]
    _post(upload, _png())
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["status"] == "completed" and task["pointsCost"] == 10
    # the same URL again, within its 15 minutes: a new object version, not a new task
    _post(upload, _png(80, 60))
    records = _wait_for_tasks(app, "alice", 2, completed=False)
    [reused] = [r for r in records if r["taskNo"] != task["taskNo"]]
    assert reused["status"] == "failed" and reused["errorCode"] == "Rejected.UrlReused" and reused["pointsCost"] == 0
    assert task["taskNo"] in reused["errorMessage"] and "POST /user/uploads" in reused["errorMessage"]
    [line] = [entry for entry in lines if entry["message"] == "upload rejected"]
    assert line["error_code"] == "Rejected.UrlReused" and line["s3_key"] == upload["key"]
    assert "UploadsRejected" in emitted
    # and again, twice: no more records (a URL makes at most two: its task and one reuse record)
    _post(upload, _png(96, 64))
    _post(upload, b"not an image at all")
    for _ in range(200):
        if len(_upload_events(app)) == 4:
            break
        time.sleep(0.05)
    assert len(_upload_events(app)) == 4
    assert len(_user_tasks(app, "alice")) == 2
    assert app.ledger("alice") == [("DEBIT", -10), ("GRANT", 100)] and app.balance("alice") == 90


def test_two_objects_under_one_key_at_once_make_one_task_and_one_reuse_record(app):
    app.grant("alice", 100)
    s3 = boto3.client("s3")
    s3.put_bucket_notification_configuration(Bucket=_bucket(), NotificationConfiguration={})
    versions = [s3.put_object(Bucket=_bucket(), Key="uploads/alice/twice.png", Body=_png(64 + n, 48))["VersionId"]
                for n in range(2)]
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Post",
        "eventTime": "2030-01-01T00:00:00.000Z",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": _bucket(), "arn": f"arn:aws:s3:::{_bucket()}"},
               "object": {"key": "uploads/alice/twice.png", "size": 1, "versionId": versions[0], "sequencer": "0A1"}}}]}
    # two versions, each delivered twice, all at once
    events = [_retimed(event, f"2030-01-01T00:00:0{n}.000Z", versionId=versions[n % 2], sequencer=f"0A{n % 2}")
              for n in range(4)]
    outcomes = _invoke_all(app, events)
    assert outcomes.count("accepted") == 1 and outcomes.count("rejected") == 1, outcomes
    records = _wait_for_tasks(app, "alice", 2, completed=False)
    assert sorted(r["errorCode"] or "" for r in records) == ["", "Rejected.UrlReused"]
    assert sorted(r["pointsCost"] for r in records) == [0, 10]
    assert app.ledger("alice") == [("DEBIT", -10), ("GRANT", 100)]


# --- 3. upload URLs are rate-limited like submits ------------------------------------------------------------


def test_upload_urls_share_the_submit_rate_limit(app, monkeypatch):
    from datetime import datetime, timezone

    import aigc.domain.points
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "submit_rate_limit_per_minute", 3)
    minute = datetime(2026, 1, 1, 12, 0, 45, tzinfo=timezone.utc)
    monkeypatch.setattr(aigc.domain.points, "utcnow", lambda: minute)
    app.grant("alice", 1000)
    ask = {"fileName": "cat.png", "contentType": "image/png"}
    # a bad request is refused before it takes a turn
    assert _api_raw(app, "POST", "/user/uploads", body={"fileName": "a.gif", "contentType": "image/gif"})[0] == 400
    assert _api_raw(app, "POST", "/user/uploads", body=ask)[0] == 200
    assert _api_raw(app, "POST", "/user/uploads", body=ask)[0] == 200
    assert app.submit(modelName="sc_soraimg_text_1x1", prompt="a cat")[0] == 200  # submits share the window
    status, headers, body = _api_raw(app, "POST", "/user/uploads", body=ask)
    assert status == 429 and body["code"] == 429 and "3 " in body["message"], body
    assert headers["retry-after"] == "15"
    assert app.submit(modelName="sc_soraimg_text_1x1", prompt="another cat")[0] == 429
    assert _api_raw(app, "POST", "/user/uploads", user="bob", body=ask)[0] == 200  # per user
    monkeypatch.setattr(aigc.domain.points, "utcnow", lambda: minute.replace(minute=1))
    assert _api_raw(app, "POST", "/user/uploads", body=ask)[0] == 200  # the next minute has room again


# --- 4. a rejected upload cannot be retried ------------------------------------------------------------------


@pytest.mark.parametrize("grant, body, code", [
    (100, b"this is not an image", "Rejected.ImageFormat"),
    (5, None, "Rejected.InsufficientPoints"),
])
def test_a_rejected_upload_cannot_be_retried(app, grant, body, code):
    app.grant("alice", grant)
    boto3.client("s3").put_object(Bucket=_bucket(), Key="uploads/alice/x.png", Body=body or _png())
    [task] = _wait_for_tasks(app, "alice", 1, completed=False)
    assert task["errorCode"] == code
    if grant < 100:
        app.grant("alice", 100 - grant)  # enough points now: still no retry, the user uploads again
    status, answer = app.api("POST", f"/user/ai/tasks/{task['taskNo']}/retry")
    assert status == 409, answer
    assert code in answer["message"] and "upload" in answer["message"]
    assert len(_user_tasks(app, "alice")) == 1
    assert app.balance("alice") == 100 and all(kind == "GRANT" for kind, _ in app.ledger("alice"))
    assert boto3.client("stepfunctions").list_executions(
        stateMachineArn=app.deployment.state_machine_arn)["executions"] == []


def test_a_task_reads_the_version_of_its_upload_that_was_checked_not_a_later_object_under_the_key(app):
    """S3 names the object's version in its event; the task is pinned to it, so a file written to the same key
    afterwards (a reused URL) is never what the provider or the user's task view reads."""
    from aigc.domain import tasks
    from aigc.flows.workflow import _provider_image_urls

    app.grant("alice", 100)
    status, body = app.api("POST", "/user/uploads", body={"fileName": "cat.png", "contentType": "image/png"})
    assert status == 200, body
    upload = body["data"]
    checked, later = _png(64, 48), _png(96, 64)
    _post(upload, checked)
    [task] = _wait_for_tasks(app, "alice", 1, completed=False)
    _post(upload, later)
    _wait_for_tasks(app, "alice", 2, completed=False)  # the later object: its Rejected.UrlReused record

    versions = boto3.client("s3").list_object_versions(Bucket=_bucket(), Prefix=upload["key"])["Versions"]
    [first] = [v["VersionId"] for v in versions if not v["IsLatest"]]  # the later object is the key's latest
    record = tasks.get_task(task["taskNo"])
    assert record.image_urls == [f"s3://{_bucket()}/{upload['key']}?versionId={first}"]
    [for_provider] = _provider_image_urls(record)
    assert requests.get(for_provider, timeout=10).content == checked
    status, shown = app.api("GET", f"/user/ai/tasks/{task['taskNo']}")
    assert status == 200 and requests.get(shown["data"]["imageUrl"], timeout=10).content == checked
