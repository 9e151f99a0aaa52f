"""The DashScope adapter's video synthesis (Wan text-to-video, image-to-video) at the documented wire
contract, faked with `responses`."""
from __future__ import annotations

import json

import pytest
import responses
from aigc.core.errors import ProviderRejected, ProviderThrottled
from aigc.providers.base import ProviderRequest
from aigc.providers.dashscope import DashScopeProvider

BASE = "https://dashscope.example.com"
KEY = "sk-secret-dashscope-0123456789"
TASK = "7bd0d0a1-2222-4d82-bcb6-000000000009"
VIDEO_URL = BASE + "/api/v1/services/aigc/video-generation/video-synthesis"
TASK_URL = f"{BASE}/api/v1/tasks/{TASK}"
CREATED = {"output": {"task_status": "PENDING", "task_id": TASK}, "request_id": "c4f2e1aa-0000-0000-0000-1"}
RESULT = "https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/1d/21/20251011/9b1c82b0/clip.mp4?Expires=1"


@pytest.fixture()
def provider():
    return DashScopeProvider(BASE, KEY)


@responses.activate
def test_text_to_video_sends_prompt_size_duration_and_prompt_extension(provider):
    responses.post(VIDEO_URL, json=CREATED)
    job = provider.submit(ProviderRequest(
        model="wanx2.1-t2v-turbo", task_type="text_to_video", prompt="a kitten running in the moonlight",
        negative_prompt="blurry", parameters={"size": "832*480", "duration": 5, "prompt_extend": False,
                                              "watermark": False, "seed": 42}))
    assert (job.provider_task_id, job.status) == (TASK, "PENDING")
    call = responses.calls[0]
    assert call.request.headers["X-DashScope-Async"] == "enable"
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(call.request.body) == {
        "model": "wanx2.1-t2v-turbo",
        "input": {"prompt": "a kitten running in the moonlight", "negative_prompt": "blurry"},
        "parameters": {"size": "832*480", "duration": 5, "prompt_extend": False, "watermark": False, "seed": 42},
    }


@responses.activate
def test_image_to_video_sends_the_first_frame_as_img_url_and_the_prompt_is_optional(provider):
    responses.post(VIDEO_URL, json=CREATED)
    provider.submit(ProviderRequest(model="wanx2.1-i2v-turbo", task_type="image_to_video",
                                    image_urls=["https://cdn.example.com/cat.png"],
                                    parameters={"resolution": "480P", "duration": 3, "prompt_extend": True,
                                                "watermark": False}))
    assert json.loads(responses.calls[0].request.body) == {
        "model": "wanx2.1-i2v-turbo", "input": {"img_url": "https://cdn.example.com/cat.png"},
        "parameters": {"resolution": "480P", "duration": 3, "prompt_extend": True, "watermark": False},
    }


def test_a_video_request_missing_its_input_is_refused_before_any_call(provider):
    with pytest.raises(ProviderRejected, match="prompt"):
        provider.build_submit(ProviderRequest(model="wanx2.1-t2v-turbo", task_type="text_to_video"))
    with pytest.raises(ProviderRejected, match="image url"):
        provider.build_submit(ProviderRequest(model="wanx2.1-i2v-turbo", task_type="image_to_video", prompt="go"))


@responses.activate
def test_a_finished_job_gives_its_video_url(provider):
    responses.get(TASK_URL, json={
        "request_id": "e5d9c5d5-0000", "output": {
            "task_id": TASK, "task_status": "SUCCEEDED", "submit_time": "2025-02-12 11:03:30.701",
            "scheduled_time": "2025-02-12 11:06:05.378", "end_time": "2025-02-12 11:12:18.853",
            "video_url": RESULT, "orig_prompt": "a cat", "actual_prompt": "a white cat running on grass"},
        "usage": {"video_duration": 5, "video_ratio": "1280*720", "video_count": 1}})
    job = provider.poll(TASK)
    assert (job.status, job.output_urls, job.error_code) == ("SUCCEEDED", [RESULT], None)


@responses.activate
def test_a_failed_video_job_keeps_the_providers_code(provider):
    responses.get(TASK_URL, json={"request_id": "1", "output": {
        "task_id": TASK, "task_status": "FAILED", "code": "InvalidParameter.DataInspection",
        "message": "Download the media resource timed out during the data inspection process."}})
    job = provider.poll(TASK)
    assert (job.status, job.error_code) == ("FAILED", "InvalidParameter.DataInspection")


@responses.activate
def test_a_succeeded_answer_without_a_video_is_a_failure(provider):
    responses.get(TASK_URL, json={"request_id": "1", "output": {"task_id": TASK, "task_status": "SUCCEEDED"}})
    job = provider.poll(TASK)
    assert (job.status, job.error_code) == ("FAILED", "InternalError")


@responses.activate
@pytest.mark.parametrize("code, message", [
    ("InvalidParameter.DataInspection", "The media format is not supported or incorrect for the data inspection."),
    ("DataInspectionFailed", "Input data may contain inappropriate content."),
    ("InvalidParameter", "The image resolution is invalid, each side must be within [360, 2000]"),
])
def test_an_image_to_video_input_refused_at_create_is_final_with_its_code(provider, code, message):
    responses.post(VIDEO_URL, status=400, json={"code": code, "message": message, "request_id": "r-1"})
    with pytest.raises(ProviderRejected) as refused:
        provider.submit(ProviderRequest(model="wanx2.1-i2v-turbo", task_type="image_to_video",
                                        image_urls=["https://cdn.example.com/tiny.png"]))
    assert refused.value.code == code
    assert KEY not in str(refused.value)


@responses.activate
def test_the_video_quota_is_a_throttle_the_workflow_retries(provider):
    responses.post(VIDEO_URL, status=429, json={"code": "Throttling.RateQuota", "message": "Requests rate limit"})
    with pytest.raises(ProviderThrottled):
        provider.submit(ProviderRequest(model="wanx2.1-t2v-turbo", task_type="text_to_video", prompt="x"))
