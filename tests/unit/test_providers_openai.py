"""OpenAIImagesProvider against the OpenAI Images API wire contract, faked with `responses`."""
from __future__ import annotations

import json

import pytest
import responses
from aigc.core.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from aigc.providers.base import ProviderRequest
from aigc.providers.openai_images import OpenAIImagesProvider

BASE = "https://images.example.com"
KEY = "sk-secret-openai-abcdef0123456789"
GEN = BASE + "/v1/images/generations"
EDIT = BASE + "/v1/images/edits"
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


@pytest.fixture()
def provider():
    return OpenAIImagesProvider(BASE, KEY)


@responses.activate
def test_generation_request_and_url_result(provider):
    responses.post(GEN, json={"created": 1713833628, "data": [{"url": "https://cdn/x.png"}]})
    job = provider.submit(ProviderRequest(model="sora-image", task_type="text_to_image", prompt="a fox",
                                          parameters={"size": "1024x1536", "response_format": "url"}))
    assert job.status == "SUCCEEDED" and job.output_urls == ["https://cdn/x.png"] and job.b64_outputs == []
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(call.request.body) == {"model": "sora-image", "prompt": "a fox", "n": 1,
                                             "size": "1024x1536", "response_format": "url"}
    assert provider.is_async is False


@responses.activate
def test_generation_b64_result_and_defaults(provider):
    responses.post(GEN, json={"created": 1, "data": [{"b64_json": "aGVsbG8="}, {"b64_json": "d29ybGQ="}]})
    job = provider.submit(ProviderRequest(model="gpt-image-1", task_type="text_to_image", prompt="p",
                                          parameters={"n": 2}))
    assert job.b64_outputs == ["aGVsbG8=", "d29ybGQ="] and job.output_urls == []
    assert json.loads(responses.calls[0].request.body) == {"model": "gpt-image-1", "prompt": "p", "n": 2,
                                                           "size": "1024x1024"}


@responses.activate
def test_edit_downloads_references_and_sends_multipart(provider):
    responses.get("https://files/a.png", body=PNG, content_type="image/png")
    responses.get("https://files/b.jpg", body=b"\xff\xd8jpeg", content_type="image/jpeg")
    responses.post(EDIT, json={"created": 1, "data": [{"url": "https://cdn/e.png"}]})
    job = provider.submit(ProviderRequest(model="sora-image", task_type="image_to_image", prompt="blend",
                                          image_urls=["https://files/a.png", "https://files/b.jpg"],
                                          parameters={"size": "1536x1024"}))
    assert job.output_urls == ["https://cdn/e.png"]
    req = responses.calls[2].request
    assert req.headers["Content-Type"].startswith("multipart/form-data")
    body = req.body
    assert body.count(b'name="image[]"') == 2 and PNG in body and b"\xff\xd8jpeg" in body
    for field, value in [("prompt", b"blend"), ("model", b"sora-image"), ("n", b"1"), ("size", b"1536x1024")]:
        assert f'name="{field}"'.encode() in body and value in body
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    # the key is never sent to the image host
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_edit_reference_limits():
    p = OpenAIImagesProvider(BASE, KEY, max_reference_bytes=50)
    responses.get("https://files/big.png", body=PNG, content_type="image/png")
    responses.get("https://files/gone.png", status=404)
    responses.get("https://files/flaky.png", status=503)
    for url, exc in [("https://files/big.png", ProviderRejected), ("https://files/gone.png", ProviderRejected),
                     ("https://files/flaky.png", ProviderRejected), ("file:///etc/passwd", ProviderRejected),
                     ("ftp://files/x.png", ProviderRejected)]:
        with pytest.raises(exc) as e:
            p.submit(ProviderRequest(model="m", task_type="image_to_image", prompt="x", image_urls=[url]))
        if exc is ProviderRejected:
            assert e.value.code == "InvalidParameter.FileDownload"
    assert not any(c.request.url == EDIT for c in responses.calls)


@pytest.mark.parametrize("status,code,exc", [
    (429, "rate_limit_exceeded", ProviderThrottled),
    (500, "server_error", ProviderUnavailable),
    (503, None, ProviderUnavailable),
    (400, "content_policy_violation", ProviderRejected),
    (401, "invalid_api_key", ProviderRejected),
])
@responses.activate
def test_error_mapping(provider, status, code, exc):
    if code:
        responses.post(GEN, status=status, json={"error": {
            "message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error", "code": code}})
    else:
        responses.post(GEN, status=status, body="upstream down")
    with pytest.raises(exc) as e:
        provider.submit(ProviderRequest(model="m", task_type="text_to_image", prompt="x"))
    assert e.value.http_status == status
    if code:
        assert e.value.code == code
    assert KEY not in str(e.value) and KEY not in repr(provider)


@responses.activate
def test_empty_result_and_sync_semantics(provider):
    responses.post(GEN, json={"created": 1, "data": []})
    with pytest.raises(ProviderUnavailable):
        provider.submit(ProviderRequest(model="m", task_type="text_to_image", prompt="x"))
    with pytest.raises(NotImplementedError):
        provider.poll("anything")
    assert provider.cancel("anything") is False
    with pytest.raises(ProviderRejected):
        provider.submit(ProviderRequest(model="m", task_type="outpainting", prompt="x", image_urls=["https://a"]))


def test_reference_images_on_private_hosts_are_refused_outside_the_local_stack():
    from aigc.core.errors import ProviderRejected
    from aigc.providers.base import ProviderRequest
    from aigc.providers.openai_images import OpenAIImagesProvider

    provider = OpenAIImagesProvider("https://api.openai.test", "sk-test")
    for url in ("http://127.0.0.1:8090/x.png", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/a.png"):
        request = ProviderRequest(model="sora-image", task_type="image_to_image", prompt="p", image_urls=[url],
                                  parameters={"size": "1024x1024", "n": 1})
        with pytest.raises(ProviderRejected, match="not on a public host"):
            provider.submit(request)


@responses.activate
def test_insufficient_quota_is_our_outage_not_throttling():
    from aigc.core.errors import ProviderThrottled, ProviderUnavailable
    from aigc.providers.base import ProviderRequest
    from aigc.providers.openai_images import OpenAIImagesProvider

    responses.add(responses.POST, "https://api.openai.test/v1/images/generations", status=429,
                  json={"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                  "code": "insufficient_quota"}})
    provider = OpenAIImagesProvider("https://api.openai.test", "sk-test")
    request = ProviderRequest(model="sora-image", task_type="text_to_image", prompt="p",
                              parameters={"size": "1024x1024", "n": 1})
    with pytest.raises(ProviderUnavailable) as raised:
        provider.submit(request)
    assert not isinstance(raised.value, ProviderThrottled)
