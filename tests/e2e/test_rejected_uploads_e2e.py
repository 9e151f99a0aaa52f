"""On the local stack, over real HTTP and the real S3 notification: an empty file, a decompression
bomb header and a truncated JPEG each leave a Rejected.* task, charge nothing, and the list pages
through them by nextToken."""
from __future__ import annotations

import time

import boto3

from tests.e2e.conftest import new_user
from tests.workflow.test_upload_rejections import _noise, bomb_png, truncated


def _s3(stack):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def _all_tasks(stack, user) -> list[dict]:
    records, token = [], None
    for _ in range(20):
        response = stack.call("GET", "/user/ai/tasks/list", user=user,
                              params={"size": 1, **({"nextToken": token} if token else {})})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        records += data["records"]
        token = data["nextToken"]
        if token is None:
            return records
    raise AssertionError("nextToken never ran out")


def test_empty_bomb_and_truncated_uploads_are_rejected_tasks_with_no_charge(stack):
    user = new_user()
    stack.grant(user, 50)
    s3 = _s3(stack)
    [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("aigc-results-")]
    uploads = {"empty.png": b"", "bomb.png": bomb_png(), "cut.jpg": truncated(_noise("JPEG"))}
    for name, body in uploads.items():
        s3.put_object(Bucket=bucket, Key=f"uploads/{user}/{name}", Body=body)
    deadline = time.monotonic() + 30
    while stack.task_count(user) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    tasks = _all_tasks(stack, user)
    assert len(tasks) == 3 and stack.task_count(user) == 3, (tasks, stack.log())
    codes = sorted(t["errorCode"] for t in tasks)
    assert codes == ["Rejected.CorruptImage", "Rejected.EmptyFile", "Rejected.ImageSize"], codes
    assert all(t["status"] == "failed" and t["pointsCost"] == 0 and t["errorMessage"] for t in tasks)
    assert [t["createTime"] for t in tasks] == sorted((t["createTime"] for t in tasks), reverse=True)
    assert stack.balance(user) == 50 and stack.records(user) == [("grant", 50)]
    log = stack.log_path.read_text(errors="replace")
    for name in uploads:
        assert f"uploads/{user}/{name}" in log  # the operator's log line names the key
