"""Every task type through the local stack over HTTP: submit, poll to completion, download the result
from the local S3 (presigned URL) and check its pixels; provider failure and deadline refunds;
Idempotency-Key; one user cannot see another's task. Each test checks balance and ledger."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.e2e.conftest import DEADLINE_SECONDS, new_user


def _submit_ok(stack, user, **request) -> dict:
    response = stack.submit(user, **request)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "queued"
    return data


def _completed(stack, user, task_no) -> dict:
    task = stack.wait_task(user, task_no)
    assert task["status"] == "completed", task
    assert task["progress"] == 100 and task["errorCode"] is None and task["refunded"] is False
    return task


def test_outpainting_scale_2_keeps_the_original_in_the_centre(stack):
    user = new_user()
    stack.grant(user, 100)
    source = stack.sample_url(512, 512, name="centre")
    data = _submit_ok(stack, user, modelName="image-out-painting", imageUrl=source,
                      parameters={"xScale": 2, "yScale": 2})
    assert stack.balance(user) == 90
    task = _completed(stack, user, data["taskNo"])

    # The presigned URL points at the local S3 (moto) and downloads on this machine.
    assert urlsplit(task["resultUrl"]).netloc == f"127.0.0.1:{stack.moto_port}"
    assert f"results/{user}/{data['taskNo']}/1.png" in task["resultUrl"]
    result = stack.download(task["resultUrl"])
    assert result.format == "PNG" and result.size == (1024, 1024)
    original = np.asarray(stack.download(source).convert("RGB"))
    centre = np.asarray(result.convert("RGB"))[256:768, 256:768]
    assert np.array_equal(centre, original)
    assert max(stack.download(task["thumbnailUrl"]).size) <= 256

    assert stack.records(user, data["taskNo"]) == [("debit", -10)]
    assert stack.records(user) == [("grant", 100), ("debit", -10)]
    assert stack.balance(user) == 90


def test_outpainting_output_ratio_16_9(stack):
    user = new_user()
    stack.grant(user, 10)
    data = _submit_ok(stack, user, modelName="image-out-painting", imageUrl=stack.sample_url(512, 512),
                      parameters={"outputRatio": "16:9"})
    task = _completed(stack, user, data["taskNo"])
    width, height = stack.download(task["resultUrl"]).size
    assert height >= 512 and width > height
    assert abs(width / height - 16 / 9) < 0.005, (width, height)
    assert stack.records(user, data["taskNo"]) == [("debit", -10)]
    assert stack.balance(user) == 0


@pytest.mark.parametrize("request_body, cost, sizes", [
    pytest.param({"modelName": "wanx-v1", "prompt": "an orange cat on a window sill",
                  "parameters": {"size": "720*1280", "n": 2, "seed": 7}},
                 40, [(720, 1280), (720, 1280)], id="wanx-text-to-image"),
    pytest.param({"modelName": "wanx2.1-imageedit", "prompt": "watercolour style",
                  "imageUrl": "SAMPLE:640x480", "parameters": {"function": "stylization_all", "seed": 3}},
                 25, [(640, 480)], id="wanx-imageedit-image-to-image"),
    pytest.param({"modelName": "sc_soraimg_text_2x3", "prompt": "a waterfall, portrait"},
                 30, [(1024, 1536)], id="sora-text-to-image"),
    pytest.param({"modelName": "sc_soraimg_img2img_3x2", "prompt": "merge the references",
                  "imageUrl": ["SAMPLE:512x512", "SAMPLE:640x480"]},
                 35, [(1536, 1024)], id="sora-img2img"),
])
def test_each_task_type_completes_with_pictures_of_the_right_size(stack, request_body, cost, sizes):
    def sample(value):
        if isinstance(value, list):
            return [sample(v) for v in value]
        if isinstance(value, str) and value.startswith("SAMPLE:"):
            w, h = value[7:].split("x")
            return stack.sample_url(int(w), int(h))
        return value

    request_body = {k: sample(v) for k, v in request_body.items()}
    user = new_user()
    stack.grant(user, 100)
    data = _submit_ok(stack, user, **request_body)
    assert data["pointsCost"] == cost
    task = _completed(stack, user, data["taskNo"])
    assert len(task["resultUrls"]) == len(sizes)
    assert [stack.download(url).size for url in task["resultUrls"]] == sizes
    assert stack.records(user, data["taskNo"]) == [("debit", -cost)]
    assert stack.balance(user) == 100 - cost


def test_provider_failure_refunds_once_with_code_and_message(stack):
    user = new_user()
    stack.grant(user, 100)
    data = _submit_ok(stack, user, modelName="image-out-painting",
                      imageUrl=stack.sample_url(sim_fail="InternalError.Algo"), parameters={"xScale": 2})
    task = stack.wait_task(user, data["taskNo"])
    assert task["status"] == "failed", task
    assert task["errorCode"] == "InternalError.Algo"
    assert task["errorMessage"] and task["refunded"] is True
    assert task["resultUrl"] is None
    assert stack.records(user, data["taskNo"]) == [("debit", -10), ("refund", 10)]
    assert stack.balance(user) == 100


def test_same_idempotency_key_returns_the_same_task_with_one_debit(stack):
    user = new_user()
    stack.grant(user, 100)
    request = dict(modelName="sc_soraimg_text_1x1", prompt="a cat")
    headers = {"Idempotency-Key": f"order-{user}"}
    first = stack.submit(user, headers=headers, **request)
    second = stack.submit(user, headers=headers, **request)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    task_no = first.json()["data"]["taskNo"]
    assert second.json()["data"]["taskNo"] == task_no
    assert stack.task_count(user) == 1
    _completed(stack, user, task_no)
    assert stack.records(user) == [("grant", 100), ("debit", -30)]
    assert stack.balance(user) == 70


def test_another_users_task_is_404(stack):
    owner, other = new_user("owner"), new_user("other")
    stack.grant(owner, 30)
    task_no = _submit_ok(stack, owner, modelName="sc_soraimg_text_1x1", prompt="mine")["taskNo"]
    response = stack.call("GET", f"/user/ai/tasks/{task_no}", user=other)
    assert response.status_code == 404 and response.json()["code"] == 404
    assert stack.task_count(other) == 0
    assert stack.task(owner, task_no)["taskNo"] == task_no
    assert stack.balance(other) == 0 and stack.records(other) == []


def test_deadline_passed_cancels_and_refunds_as_timed_out(deadline_job):
    """A stack with TaskDeadlineSeconds=30 and a job that would take an hour (started in the
    background when the session began; the deadline is wall clock)."""
    late_stack, user, task_no = deadline_job["stack"], deadline_job["user"], deadline_job["task_no"]
    remaining = DEADLINE_SECONDS - (time.monotonic() - deadline_job["submitted_at"])
    task = late_stack.wait_task(user, task_no, timeout=max(remaining, 0) + 20)
    assert task["status"] == "failed", task
    assert task["errorCode"] == "Timeout"
    assert "timed out" in task["errorMessage"]
    assert task["refunded"] is True
    assert late_stack.records(user, task_no) == [("debit", -10), ("refund", 10)]
    assert late_stack.balance(user) == 100
