"""aigc.domain.webhooks without AWS: which changes are events, the retry schedule, the subscription rules."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from aigc.core.errors import BadRequest
from aigc.core.timeutil import utcnow
from aigc.domain import webhooks
from aigc.flows import webhook_delivery
from aigc.store.db import TaskItem


@pytest.fixture
def settings(monkeypatch):
    from aigc.core.config import get_settings

    def configure(**env):
        monkeypatch.delenv("ALLOW_PRIVATE_HOSTS", raising=False)  # the local stack's setting, not these tests'
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
    # The local stack (ALLOW_PRIVATE_HOSTS) passes allow_private: its receivers live on 127.0.0.1.
    assert webhooks.subscription("http://127.0.0.1:9/h", ["start"], allow_private=True) == (
        "http://127.0.0.1:9/h", ["start"])


@pytest.fixture
def receiver():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/slow":
                time.sleep(2)
            self.send_response(302 if self.path == "/redirect" else 204)
            if self.path == "/redirect":
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_slow_or_redirecting_receiver_is_a_failed_attempt_and_nothing_more(receiver, settings, monkeypatch):
    settings(ALLOW_PRIVATE_HOSTS="true")
    monkeypatch.setattr(webhook_delivery, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(webhook_delivery, "get_secret", lambda user_id: "whsec_" + "A" * 44)
    url, seen = receiver

    def message(path):
        return {"webhookId": "msg_1", "event": "start", "task": _task(webhook_url=url + path).serialize()}

    assert webhook_delivery.attempt(message("/ok")) is None
    started = time.monotonic()
    assert webhook_delivery.attempt(message("/slow")) == "ReadTimeout"
    assert time.monotonic() - started < 1.5
    assert webhook_delivery.attempt(message("/redirect")) == "HTTP 302"
    assert seen == ["/ok", "/slow", "/redirect"]  # the redirect is not followed


def test_a_receiver_on_a_private_address_is_refused_at_connect_time(receiver, settings, monkeypatch):
    settings()
    monkeypatch.setattr(webhook_delivery, "get_secret", lambda user_id: "whsec_" + "A" * 44)
    url, seen = receiver
    failure = webhook_delivery.attempt({"webhookId": "msg_1", "event": "start",
                                        "task": _task(webhook_url=url + "/ok").serialize()})
    assert failure.startswith("refused") and seen == []
