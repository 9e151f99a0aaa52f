"""DashScopeProvider against the documented wire contract, faked with `responses`."""
from __future__ import annotations

import json

import pytest
import requests
import responses
from aigc.core.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from aigc.providers.base import ProviderRequest
from aigc.providers.dashscope import DashScopeProvider
from aigc.providers.error_messages import user_message

BASE = "https://dashscope.example.com"
KEY = "sk-secret-dashscope-0123456789"
TASK = "0385dc79-5ff8-4d82-bcb6-000000000001"
OUTPAINT_URL = BASE + "/api/v1/services/aigc/image2image/out-painting"
T2I_URL = BASE + "/api/v1/services/aigc/text2image/image-synthesis"
I2I_URL = BASE + "/api/v1/services/aigc/image2image/image-synthesis"
TASK_URL = f"{BASE}/api/v1/tasks/{TASK}"
CREATED = {"output": {"task_status": "PENDING", "task_id": TASK}, "request_id": "4909100c-7b5a-9f92-bfe5-1"}


@pytest.fixture()
def provider():
    return DashScopeProvider(BASE + "/", KEY)


def _sent(call):
    return json.loads(call.request.body)


@responses.activate
def test_outpainting_submit_exact_request(provider):
    responses.post(OUTPAINT_URL, json=CREATED)
    job = provider.submit(ProviderRequest(
        model="image-out-painting", task_type="outpainting", image_urls=["http://x/image.jpg"],
        parameters={"angle": 45, "x_scale": 1.5, "y_scale": 1.5}))
    assert (job.provider_task_id, job.status) == (TASK, "PENDING")
    call = responses.calls[0]
    assert call.request.headers["X-DashScope-Async"] == "enable"
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert call.request.headers["Content-Type"] == "application/json"
    assert _sent(call) == {"model": "image-out-painting", "input": {"image_url": "http://x/image.jpg"},
                           "parameters": {"angle": 45, "x_scale": 1.5, "y_scale": 1.5}}


@responses.activate
def test_text_to_image_submit_body(provider):
    responses.post(T2I_URL, json=CREATED)
    provider.submit(ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image", prompt="a cat",
                                    negative_prompt="blurry", parameters={"n": 2, "seed": 42}))
    assert _sent(responses.calls[0]) == {
        "model": "wanx2.1-t2i-turbo", "input": {"prompt": "a cat", "negative_prompt": "blurry"},
        "parameters": {"size": "1024*1024", "n": 2, "seed": 42}}
    assert responses.calls[0].request.headers["X-DashScope-Async"] == "enable"


@responses.activate
def test_image_to_image_submit_body(provider):
    responses.post(I2I_URL, json=CREATED)
    provider.submit(ProviderRequest(model="wanx2.1-imageedit", task_type="image_to_image",
                                    prompt="French picture-book style", image_urls=["https://x/b.jpeg"],
                                    parameters={"strength": 0.7}))
    assert _sent(responses.calls[0]) == {
        "model": "wanx2.1-imageedit",
        "input": {"function": "stylization_all", "prompt": "French picture-book style",
                  "base_image_url": "https://x/b.jpeg"},
        "parameters": {"strength": 0.7, "n": 1}}


@responses.activate
def test_poll_outpainting_succeeded(provider):
    responses.get(TASK_URL, json={
        "request_id": "r", "output": {
            "task_id": TASK, "task_status": "SUCCEEDED", "submit_time": "2024-05-16 13:50:01.247",
            "scheduled_time": "2024-05-16 13:50:01.354", "end_time": "2024-05-16 13:50:17.385",
            "output_image_url": "https://oss.example.com/out.png"},
        "usage": {"image_count": 1}})
    job = provider.poll(TASK)
    assert job.status == "SUCCEEDED" and job.output_urls == ["https://oss.example.com/out.png"]
    assert job.error_code is None
    assert "X-DashScope-Async" not in responses.calls[0].request.headers
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"


@responses.activate
def test_poll_wanx_results_and_statuses(provider):
    responses.get(TASK_URL, json={"request_id": "r", "output": {"task_id": TASK, "task_status": "RUNNING",
                                                                 "task_metrics": {"TOTAL": 2, "SUCCEEDED": 0, "FAILED": 0}}})
    responses.get(TASK_URL, json={"request_id": "r", "output": {
        "task_id": TASK, "task_status": "SUCCEEDED",
        "results": [{"url": "https://oss/a.png"}, {"code": "DataInspectionFailed", "message": "bad"},
                    {"url": "https://oss/b.png"}],
        "task_metrics": {"TOTAL": 3, "SUCCEEDED": 2, "FAILED": 1}}, "usage": {"image_count": 2}})
    assert provider.poll(TASK).status == "RUNNING"
    job = provider.poll(TASK)
    assert job.status == "SUCCEEDED" and job.output_urls == ["https://oss/a.png", "https://oss/b.png"]


@responses.activate
def test_poll_failed_unknown_and_all_subtasks_failed(provider):
    responses.get(TASK_URL, json={"request_id": "r", "output": {
        "task_id": TASK, "task_status": "FAILED", "code": "InvalidParameter.FileDownload",
        "message": "oss download error"}})
    responses.get(TASK_URL, json={"request_id": "r", "output": {"task_id": TASK, "task_status": "UNKNOWN"}})
    responses.get(TASK_URL, json={"request_id": "r", "output": {
        "task_id": TASK, "task_status": "SUCCEEDED", "results": [{"code": "InternalError.Algo", "message": "x"}]}})
    job = provider.poll(TASK)
    assert (job.status, job.error_code, job.error_message) == (
        "FAILED", "InvalidParameter.FileDownload", "oss download error")
    assert "downloaded" in user_message(job.error_code)
    assert provider.poll(TASK).status == "UNKNOWN"
    job = provider.poll(TASK)
    assert (job.status, job.error_code) == ("FAILED", "InternalError.Algo")


@responses.activate
def test_cancel(provider):
    responses.post(TASK_URL + "/cancel", json={"request_id": "45ac7f13"})
    responses.post(TASK_URL + "/cancel", status=400, json={
        "request_id": "r", "code": "UnsupportedOperation",
        "message": "Failed to cancel the task, please confirm if the task is in PENDING status."})
    responses.post(TASK_URL + "/cancel", status=503, json={"code": "ServiceUnavailable", "message": "x"})
    assert provider.cancel(TASK) is True
    assert provider.cancel(TASK) is False
    with pytest.raises(ProviderUnavailable):
        provider.cancel(TASK)


@pytest.mark.parametrize("status,code,exc", [
    (429, "Throttling.RateQuota", ProviderThrottled),
    (500, "InternalError", ProviderUnavailable),
    (502, None, ProviderUnavailable),
    (400, "InvalidParameter", ProviderRejected),
    (401, "InvalidApiKey", ProviderRejected),
    (403, "AccessDenied", ProviderRejected),
])
@responses.activate
def test_error_mapping(provider, status, code, exc):
    body = {"code": code, "message": f"Invalid API-key provided: {KEY}", "request_id": "rid-1"} if code else None
    if body:
        responses.post(OUTPAINT_URL, status=status, json=body)
    else:
        responses.post(OUTPAINT_URL, status=status, body="<html>bad gateway</html>")
    with pytest.raises(exc) as e:
        provider.submit(ProviderRequest(model="image-out-painting", task_type="outpainting", image_urls=["http://x"]))
    assert e.value.http_status == status
    if code:
        assert e.value.code == code
        assert "rid-1" in str(e.value)
    assert KEY not in str(e.value) and KEY not in repr(e.value) and KEY not in repr(provider)


@responses.activate
def test_network_errors_are_unavailable(provider):
    responses.get(TASK_URL, body=requests.ConnectionError("boom"))
    responses.get(TASK_URL, body=requests.ReadTimeout("slow"))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable) as e:
            provider.poll(TASK)
        assert KEY not in str(e.value)


def test_post_is_not_retried_but_get_is(monkeypatch):
    """Real sockets: connection refused is retried for GET only."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    from urllib3.connectionpool import HTTPConnectionPool

    calls = {"n": 0}
    real = HTTPConnectionPool._make_request

    def counting(self, *a, **kw):
        calls["n"] += 1
        return real(self, *a, **kw)

    monkeypatch.setattr(HTTPConnectionPool, "_make_request", counting)
    p = DashScopeProvider(f"http://127.0.0.1:{port}", KEY, timeout=1)
    with pytest.raises(ProviderUnavailable):
        p.submit(ProviderRequest(model="image-out-painting", task_type="outpainting", image_urls=["http://x"]))
    assert calls["n"] == 1
    calls["n"] = 0
    monkeypatch.setattr("urllib3.util.retry.Retry.DEFAULT_BACKOFF_MAX", 0)
    monkeypatch.setattr("time.sleep", lambda s: None)
    with pytest.raises(ProviderUnavailable):
        p.poll(TASK)
    assert calls["n"] == 4  # 1 + 3 retries


def test_unsupported_task_type_and_missing_inputs(provider):
    with pytest.raises(ProviderRejected):
        provider.submit(ProviderRequest(model="m", task_type="video"))
    with pytest.raises(ProviderRejected):
        provider.submit(ProviderRequest(model="image-out-painting", task_type="outpainting"))
    with pytest.raises(ProviderRejected):
        provider.submit(ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image"))


def test_user_messages_cover_seed_003_codes():
    for code in ["InvalidParameter.JsonPhrase", "InvalidParameter.FileDownload", "InvalidParameter.ImageFormat",
                 "InvalidParameter.ImageContent", "InvalidParameter", "InvalidParameter.DataInspection",
                 "InternalError.Algo", "InternalError.FileUpload", "Throttling.RateQuota", "UNKNOWN",
                 "EXPIRED", "TIMEOUT"]:
        msg = user_message(code)
        assert msg and msg != user_message(None), code
    assert user_message("InvalidParameter.NewThing") == user_message("InvalidParameter")
    assert user_message("Weird") == user_message(None)  # never the provider's own text
    assert user_message(None)
