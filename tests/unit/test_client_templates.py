"""The client and CLI for templates and quotes (issue 19), against a faked transport: what they send,
what they show, and the usage errors that never reach the API."""
from __future__ import annotations

import json

import httpx
import pytest
from aigc_client import cli
from aigc_client.client import Client
from typer.testing import CliRunner

TEMPLATE = {
    "code": "photo-to-clip", "name": "Photo to short clip", "version": 1, "category": "video",
    "description": "Brings your photo to life", "modelName": "wanx2.1-i2v-turbo", "taskType": "image_to_video",
    "resultType": "video", "presetParameters": {"resolution": "720P"}, "promptTemplate": "{motion}",
    "inputs": {"type": "object", "properties": {"motion": {"type": "string", "default": "x"},
                                                "seconds": {"type": "integer"}}, "additionalProperties": False},
    "inputParameters": {"seconds": "duration"}, "images": {"min": 1, "max": 1}, "example": {"seconds": 3},
    "pricing": {"points": 12, "perSecond": "duration"}, "priceRules": ["12 points per second of video (duration)"],
    "examplePrice": 36,
}
QUOTE = {"modelName": "wanx2.1-i2v-turbo", "taskType": "image_to_video", "resultType": "video",
         "templateCode": "photo-to-clip", "templateVersion": 1, "parameters": {"duration": 4},
         "pricing": {"base": 12, "factors": [{"kind": "perSecond", "label": "4 seconds", "factor": 4}], "total": 48}}


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        if request.url.path == "/templates":
            return httpx.Response(200, json={"code": 200, "message": "success", "data": [TEMPLATE]})
        if request.url.path == "/user/ai/tasks/quote":
            return httpx.Response(200, json={"code": 200, "message": "success", "data": QUOTE})
        return httpx.Response(200, json={"code": 200, "message": "success", "data": {
            "taskNo": "TASK-1", "modelName": "wanx2.1-i2v-turbo", "status": "queued", "pointsCost": 48,
            "resultType": "video", "templateCode": "photo-to-clip", "templateVersion": 1, "pricing": QUOTE["pricing"]}})


@pytest.fixture
def recorder(monkeypatch):
    recorder = Recorder()
    real = httpx.Client.__init__

    def with_transport(self, *args, **kwargs):
        kwargs["transport"] = httpx.MockTransport(recorder)
        real(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", with_transport)
    return recorder


def test_the_client_submits_and_quotes_a_template_with_its_inputs(recorder):
    with Client("http://api.test", "token") as client:
        task = client.submit(template="photo-to-clip", inputs={"seconds": 4}, image_url="https://x.test/a.png")
        quote = client.quote(template="photo-to-clip", template_version=1, inputs={"seconds": 4},
                             image_url="https://x.test/a.png")
        listed = client.templates("video")
    assert recorder.calls[0] == ("POST", "/user/ai/tasks/submit", {
        "templateCode": "photo-to-clip", "inputs": {"seconds": 4}, "imageUrl": "https://x.test/a.png"})
    assert recorder.calls[1][2]["templateVersion"] == 1
    assert (task.template_code, task.result_type, task.pricing.total) == ("photo-to-clip", "video", 48)
    assert (quote.pricing.total, quote.pricing.factors[0].label) == (48, "4 seconds")
    assert listed[0].example_price == 36 and listed[0].input_parameters == {"seconds": "duration"}


def _run(args: list[str]):
    return CliRunner().invoke(cli.app, ["--base-url", "http://api.test", "--token", "t", *args],
                              env={"COLUMNS": "160", "NO_COLOR": "1"})


def test_the_cli_submits_a_template_with_typed_inputs(recorder):
    result = _run(["submit", "--template", "photo-to-clip", "--input", "seconds=4", "--input", "motion=leaves fall",
                   "--image", "https://x.test/a.png"])
    assert result.exit_code == 0, result.output
    assert recorder.calls[0][2] == {"templateCode": "photo-to-clip",
                                    "inputs": {"seconds": 4, "motion": "leaves fall"}, "imageUrl": "https://x.test/a.png"}
    assert "TASK-1 queued (48 points)" in result.output


def test_the_cli_quotes_and_lists_templates(recorder):
    quoted = _run(["quote", "--template", "photo-to-clip", "--input", "seconds=4", "--image", "https://x.test/a.png"])
    assert quoted.exit_code == 0, quoted.output
    assert "48 points (photo-to-clip v1 on wanx2.1-i2v-turbo, video)" in quoted.output
    assert "x4  4 seconds" in quoted.output
    listed = _run(["templates", "--category", "video"])
    assert listed.exit_code == 0, listed.output
    assert "photo-to-clip\t1\tvideo\tvideo\t36\tmotion?, seconds?\twanx2.1-i2v-turbo" in listed.output
    assert recorder.calls[-1][:2] == ("GET", "/templates")


@pytest.mark.parametrize("args", [
    ["submit"], ["submit", "wanx-v1", "--template", "photo-to-clip"], ["submit", "wanx-v1", "--input", "a=1"],
    ["quote"],
])
def test_a_model_and_a_template_together_or_neither_is_a_usage_error_before_any_call(recorder, args):
    result = _run(args)
    assert result.exit_code == 2, result.output
    assert recorder.calls == []
