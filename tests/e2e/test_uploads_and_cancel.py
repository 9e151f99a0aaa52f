"""Operations over the local stack: an image dropped into the bucket's upload prefix (with boto3
pointed at the local endpoint, and through POST /user/uploads) becomes a completed outpainting
task in that user's list; a user cancels a running task and gets the points back."""
from __future__ import annotations

import io
import time

import boto3
import requests
from PIL import Image

from tests.e2e.conftest import new_user


def _png(width=320, height=240) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _s3(stack):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def _bucket(stack) -> str:
    names = [b["Name"] for b in _s3(stack).list_buckets()["Buckets"]]
    [bucket] = [n for n in names if n.startswith("aigc-results-")]
    return bucket


def _wait_for_completed_list(stack, user, timeout=30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = stack.call("GET", "/user/ai/tasks/list", user=user).json()["data"]["records"]
        if records and all(r["status"] in ("completed", "failed") for r in records):
            return records
        time.sleep(0.2)
    raise AssertionError(f"no settled upload task for {user}")


def test_copying_a_png_to_the_upload_prefix_makes_a_completed_task(stack):
    user = new_user()
    stack.grant(user, 50)
    _s3(stack).put_object(Bucket=_bucket(stack), Key=f"uploads/{user}/beach.png", Body=_png(),
                          Metadata={"output-ratio": "16:9"})
    [task] = _wait_for_completed_list(stack, user)
    assert task["status"] == "completed" and task["source"] == "upload", task
    picture = stack.download(task["resultUrl"])
    width, height = picture.size
    assert abs(width / height - 16 / 9) < 0.02
    assert stack.balance(user) == 40
    assert stack.records(user) == [("grant", 50), ("debit", -10)]


def test_presigned_upload_from_the_api_makes_a_completed_task(stack):
    user = new_user()
    stack.grant(user, 50)
    response = stack.call("POST", "/user/uploads", user=user,
                          json={"fileName": "me.png", "contentType": "image/png", "parameters": {"xScale": 1.5}})
    assert response.status_code == 200, response.text
    upload = response.json()["data"]
    assert upload["key"].startswith(f"uploads/{user}/")
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("me.png", _png())}, timeout=10)
    assert posted.status_code in (200, 204), posted.text
    [task] = _wait_for_completed_list(stack, user)
    assert task["status"] == "completed" and task["parameters"]["x_scale"] == 1.5
    assert stack.download(task["resultUrl"]).size == (480, 480)  # xScale 1.5 from the upload, yScale 2 by default
    assert stack.balance(user) == 40


def test_upload_without_enough_points_charges_nothing_and_says_why(stack):
    user = new_user()
    stack.grant(user, 5)
    _s3(stack).put_object(Bucket=_bucket(stack), Key=f"uploads/{user}/big.png", Body=_png())
    [task] = _wait_for_completed_list(stack, user)
    assert task["status"] == "failed" and task["errorCode"] == "Rejected.InsufficientPoints"
    assert "10" in task["errorMessage"] and "5" in task["errorMessage"]
    assert stack.balance(user) == 5
    assert stack.records(user) == [("grant", 5)]


def test_cancel_a_running_task_refunds_it(stack):
    user = new_user()
    stack.grant(user, 50)
    response = stack.submit(user, modelName="image-out-painting",
                            imageUrl=stack.sample_url(128, 128, sim_seconds=120), parameters={"xScale": 2})
    task_no = response.json()["data"]["taskNo"]
    cancelled = stack.call("POST", f"/user/ai/tasks/{task_no}/cancel", user=user)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"
    again = stack.call("POST", f"/user/ai/tasks/{task_no}/cancel", user=user)
    assert again.status_code == 409 and again.json()["code"] == 409
    assert stack.balance(user) == 50
    assert stack.records(user, task_no) == [("debit", -10), ("refund", 10)]
