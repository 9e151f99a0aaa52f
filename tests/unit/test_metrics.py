"""The metrics the alarms and the dashboard read (template.yaml) are emitted where they happen."""
from __future__ import annotations

import json

import pytest
import responses
from aigc.core.errors import ProviderThrottled, ProviderUnavailable
from aigc.core.observability import count, metrics
from aigc.providers.base import ProviderRequest
from aigc.providers.dashscope import DashScopeProvider
from aigc.providers.openai_images import OpenAIImagesProvider

DASHSCOPE = "https://dashscope.test"
OPENAI = "https://api.openai.test"


@pytest.fixture(autouse=True)
def clean_metrics():
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _counted(name: str) -> float:
    values = metrics.metric_set.get(name, {}).get("Value", [])
    return sum(values)


def _dashscope_submit():
    provider = DashScopeProvider(DASHSCOPE, "sk-test")
    provider.submit(ProviderRequest(model="image-out-painting", task_type="outpainting", image_urls=["http://x"]))


def _openai_submit():
    provider = OpenAIImagesProvider(OPENAI, "sk-test")
    provider.submit(ProviderRequest(model="m", task_type="text_to_image", prompt="p"))


@responses.activate
@pytest.mark.parametrize("status, body, raised, throttled", [
    (429, {"code": "Throttling.RateQuota", "message": "slow down"}, ProviderThrottled, 1),
    (500, {"code": "InternalError", "message": "x"}, ProviderUnavailable, 0),
])
def test_dashscope_429_is_counted_for_the_provider_429_alarm(status, body, raised, throttled):
    responses.post(f"{DASHSCOPE}/api/v1/services/aigc/image2image/out-painting", status=status, json=body)
    with pytest.raises(raised):
        _dashscope_submit()
    assert _counted("ProviderThrottled") == throttled


@responses.activate
@pytest.mark.parametrize("code, raised, throttled", [
    ("rate_limit_exceeded", ProviderThrottled, 1),
    ("insufficient_quota", ProviderUnavailable, 0),  # our account, not throttling
])
def test_openai_429_is_counted_only_when_it_is_throttling(code, raised, throttled):
    responses.post(f"{OPENAI}/v1/images/generations", status=429,
                   json={"error": {"message": "m", "type": code, "code": code}})
    with pytest.raises(raised):
        _openai_submit()
    assert _counted("ProviderThrottled") == throttled


def test_task_outcomes_are_counted_by_service_and_by_model(capsys):
    count("TasksCompleted", model="image-out-painting")
    assert _counted("TasksCompleted") == 1  # the service-only series the alarms read (flushed per invocation)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [by_model] = [r for r in records if "TasksCompleted" in r]
    [directive] = by_model["_aws"]["CloudWatchMetrics"]
    assert sorted(directive["Dimensions"][0]) == ["model", "service"]
    assert by_model["model"] == "image-out-painting" and by_model["TasksCompleted"] == [1.0]
