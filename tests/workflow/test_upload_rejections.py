"""Uploads that cannot become tasks, through the real S3 notification: whatever the cause, the user
sees a Rejected.* task (charged nothing), the operator a log line with the key and UploadsRejected,
and the UploadFunction does not crash (a crash is an asynchronous retry, then a DLQ)."""
from __future__ import annotations

import io
import os
import random
import struct
import time
import zlib

import boto3
import pytest
from PIL import Image

from tests.workflow.test_operations import _wait_for_tasks


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20000) -> bytes:
    """A valid PNG whose header claims side x side pixels (400 M): Pillow's decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def _noise(fmt: str, width=256, height=192) -> bytes:
    rng = random.Random(7)
    image = Image.frombytes("RGB", (width, height), bytes(rng.getrandbits(8) for _ in range(width * height * 3)))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def png_with_bad_crc() -> bytes:
    data = bytearray(_noise("PNG"))
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the image data
    return bytes(data)


def _upload_invocations(app) -> list[bool]:
    return [errored for name, _, errored in app.deployment.router.invocations if name.endswith("UploadFunction")]


@pytest.mark.parametrize("name, body, code", [
    ("empty.png", b"", "Rejected.EmptyFile"),
    ("bomb.png", bomb_png(), "Rejected.ImageSize"),
    ("cut.jpg", truncated(_noise("JPEG")), "Rejected.CorruptImage"),
    ("cut.png", truncated(_noise("PNG")), "Rejected.CorruptImage"),
    ("flipped.png", png_with_bad_crc(), "Rejected.CorruptImage"),
    ("tiny.png", _noise("PNG", 8, 8), "Rejected.ImageSize"),
    ("text.webp", b"RIFF....WEBPnot really", "Rejected.ImageFormat"),
])
def test_every_rejected_upload_is_a_visible_uncharged_task(app, operator_view, name, body, code):
    lines, emitted = operator_view
    app.grant("alice", 100)
    key = f"uploads/alice/{name}"
    boto3.client("s3").put_object(Bucket=os.environ["RESULTS_BUCKET"], Key=key, Body=body)
    [task] = _wait_for_tasks(app, "alice", 1, completed=False)
    assert task["status"] == "failed" and task["errorCode"] == code, (task["errorCode"], task["errorMessage"])
    assert task["pointsCost"] == 0 and task["errorMessage"] and task["source"] == "upload"
    listed = app.api("GET", "/user/ai/tasks/list")[1]["data"]
    assert listed["total"] == 1 and listed["records"][0]["taskNo"] == task["taskNo"]
    assert app.balance("alice") == 100 and app.ledger("alice") == [("GRANT", 100)]
    assert boto3.client("stepfunctions").list_executions(
        stateMachineArn=app.deployment.state_machine_arn)["executions"] == []
    assert _upload_invocations(app) == [False]  # handled, not crashed
    [line] = [entry for entry in lines if entry["message"] == "upload rejected"]
    assert line["s3_key"] == key and line["error_code"] == code and line["reason"] == task["errorMessage"]
    assert "UploadsRejected" in emitted


def test_a_good_jpeg_still_becomes_a_task(app):
    app.grant("alice", 100)
    boto3.client("s3").put_object(Bucket=os.environ["RESULTS_BUCKET"], Key="uploads/alice/ok.jpg",
                                  Body=_noise("JPEG"))
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["status"] == "completed" and task["pointsCost"] == 10, (task["errorCode"], task["errorMessage"])


@pytest.mark.parametrize("key", ["uploads/x.png", "uploads/bad user!/x.png"])
def test_an_upload_naming_no_valid_user_is_logged_and_counted(app, operator_view, key):
    lines, emitted = operator_view
    boto3.client("s3").put_object(Bucket=os.environ["RESULTS_BUCKET"], Key=key, Body=_noise("PNG"))
    for _ in range(200):
        if _upload_invocations(app):
            break
        time.sleep(0.05)
    assert _upload_invocations(app) == [False]
    [line] = [entry for entry in lines if entry["message"].startswith("upload rejected")]
    assert line["s3_key"] == key and line["error_code"] == "Rejected.UnknownUser" and line["level"] == "ERROR"
    assert "UploadsRejected" in emitted


def test_a_repeated_event_for_a_rejected_upload_is_not_counted_twice(app):
    app.grant("alice", 100)
    boto3.client("s3").put_object(Bucket=os.environ["RESULTS_BUCKET"], Key="uploads/alice/empty.png", Body=b"")
    _wait_for_tasks(app, "alice", 1, completed=False)
    [event] = [event for name, event, _ in app.deployment.router.invocations if name.endswith("UploadFunction")]
    assert app.invoke("UploadFunction", event) == {"outcomes": ["duplicate"]}
    listed = app.api("GET", "/user/ai/tasks/list")[1]["data"]
    assert listed["total"] == 1 and len(listed["records"]) == 1
