"""aigc.webhooks without AWS: which changes are events, the retry schedule, the subscription rules."""
from __future__ import annotations

from datetime import timedelta

import pytest

from aigc import webhooks
from aigc.db import TaskItem
from aigc.errors import BadRequest
from aigc.timeutil import utcnow


@pytest.fixture
def settings(monkeypatch):
    from aigc.config import get_settings

    def configure(**env):
        for name in ("POINTS_TABLE", "TASKS_TABLE", "RESULTS_BUCKET"):
            monkeypatch.setenv(name, "x")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def _task(**fields) -> TaskItem:
    base = dict(user_id="u", created_at="2026-01-01T00:00:00.000Z", model_name="m", task_type="text_to_image",
                provider="dashscope", provider_model="m", status="queued", points_cost=10, expected_seconds=5,
                deadline_at=utcnow() + timedelta(minutes=10), webhook_url="https://example.com/h")
    return TaskItem("TASK-1", **{**base, **fields})


def test_start_is_the_first_write_with_a_start_time_and_completed_the_settling_one():
    queued = _task()
    started = _task(status="processing", started_at=utcnow())
    assert webhooks.events_of_change(queued, started) == ["start"]
    assert webhooks.events_of_change(started, _task(status="processing", started_at=utcnow())) == []
    done = _task(status="completed", started_at=utcnow())
    assert webhooks.events_of_change(started, done) == ["completed"]
    assert webhooks.events_of_change(done, done) == []
    held = _task(status="failed", started_at=utcnow(), hold_until=utcnow())
    assert webhooks.events_of_change(started, held) == []  # held for a redrive: not final yet
    refunded = _task(status="failed", started_at=utcnow(), refunded=True)
    assert webhooks.events_of_change(held, refunded) == ["completed"]
    cancelled = _task(status="cancelled", refunded=True)
    assert webhooks.events_of_change(queued, cancelled) == ["completed"]
    assert webhooks.events_of_change(queued, _task(status="cancelled", refunded=True, webhook_url=None)) == []
    assert webhooks.events_of_change(queued, _task(status="processing", started_at=utcnow(),
                                                   webhook_events=["completed"])) == []


def test_retries_follow_the_schedule_for_24_hours_then_stop():
    start, delays, attempts = 0.0, [], 1
    now = start
    while (delay := webhooks.next_delay(attempts, start, now)) is not None:
        delays.append(delay)
        now += delay
        attempts += 1
    assert delays[:3] == [5, 300, 1800]
    assert now == start + 24 * 3600  # the last retry is at 24 h, then the message is dead-lettered


def test_a_webhook_must_be_https_outside_the_local_stack(settings):
    settings()
    assert webhooks.subscription("https://example.com/h", None) == ("https://example.com/h", ["start", "completed"])
    assert webhooks.subscription("https://example.com/h", ["completed", "completed"])[1] == ["completed"]
    for url in ("http://example.com/h", "https://127.0.0.1/h", "https://169.254.169.254/latest", "https://localhost/h",
                "https://[::1]/h"):
        with pytest.raises(BadRequest, match="^webhook:"):
            webhooks.subscription(url, None)
    settings(ALLOW_PRIVATE_HOSTS="true")
    assert webhooks.subscription("http://127.0.0.1:9/h", ["start"]) == ("http://127.0.0.1:9/h", ["start"])
