"""The real ASL executed on moto's Step Functions interpreter, real handlers in process, the
provider simulator at the edge. Each test asserts the final task, the ledger and the balance."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
import requests
from PIL import Image

from aigc.store.db import TaskItem
from aigc.core.timeutil import utcnow


@pytest.fixture
def sim_config(simulator):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)  # forget jobs other tests left running

    def configure(**values):
        response = requests.post(f"{simulator.url}/_sim/config", json=values, timeout=5)
        assert response.status_code == 200, response.text

    yield configure
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)
    requests.post(f"{simulator.url}/_sim/config", json={"latency_min": 0.3, "latency_max": 0.5,
                                                        "max_concurrency": 50}, timeout=5)


def _download(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def test_outpainting_succeeds_charges_once_and_stores_results(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(64, 48),
                              parameters={"xScale": 2, "yScale": 2})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert body["data"]["status"] == "queued"
    assert app.balance("alice") == 90

    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert task["progress"] == 100
    assert task["completeTime"] and task["errorMessage"] is None
    assert f"results/alice/{task_no}/1.png" in task["resultUrl"]
    assert _download(task["resultUrl"]).size == (128, 96)
    assert max(_download(task["thumbnailUrl"]).size) <= 256
    assert app.ledger("alice", task_no) == [("DEBIT", -10)]
    assert app.balance("alice") == 90
    assert "PollProvider" in app.states_visited(task_no)


def test_text_to_image_on_dashscope_bills_per_image(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="an orange cat on a window sill",
                              parameters={"size": "720*1280", "n": 2, "seed": 7})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert body["data"]["pointsCost"] == 40
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert len(task["resultUrls"]) == 2
    assert _download(task["resultUrls"][1]).size == (720, 1280)
    assert app.balance("alice") == 60


def test_sync_provider_skips_the_wait_loop(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="sc_soraimg_text_3x2", prompt="mountain sunrise")
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert _download(task["resultUrl"]).size == (1536, 1024)
    visited = app.states_visited(task_no)
    assert "WaitForProvider" not in visited and "PollProvider" not in visited
    assert app.balance("alice") == 70


def test_provider_failure_refunds_once_with_a_clear_message(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting",
                              imageUrl=app.sample_url(sim_fail="InternalError.Algo"),
                              parameters={"outputRatio": "16:9"})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "failed"
    assert task["errorCode"] == "InternalError.Algo"
    assert task["errorMessage"] == "The image service failed while processing your image. Please try again."
    assert task["refunded"] is True
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_deadline_passed_cancels_and_refunds_as_timed_out(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=3600),
                              parameters={"xScale": 1.5})
    task_no = body["data"]["taskNo"]
    # The model's deadline is 10 minutes; move it into the past instead of waiting for it.
    item = TaskItem.get(task_no)
    item.update(actions=[TaskItem.deadline_at.set(utcnow() - timedelta(seconds=1))])
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "failed"
    assert task["errorCode"] == "Timeout"
    assert "timed out" in task["errorMessage"]
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_throttled_submit_is_retried_then_succeeds(app, sim_config):
    sim_config(max_concurrency=1, latency_min=0.6, latency_max=0.6)
    app.grant("alice", 100)
    first = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(), parameters={"xScale": 2})[1]
    second = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(), parameters={"yScale": 2})[1]
    for body in (first, second):
        assert app.wait_execution(body["data"]["taskNo"], timeout=60)["status"] == "SUCCEEDED"
        assert app.task(body["data"]["taskNo"])["status"] == "completed"
    throttled = [event for name, event, errored in app.deployment.router.invocations
                 if errored and name.endswith("ProviderSubmitFunction")]
    assert throttled, "the simulator should have answered 429 at least once"
    assert app.balance("alice") == 80
    assert app.ledger("alice", second["data"]["taskNo"]) == [("DEBIT", -10)]


def test_copy_from_a_host_outside_the_allowlist_refunds(app, monkeypatch):
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "result_hosts", ["*.aliyuncs.com"])
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "failed"
    assert task["errorCode"] == "ResultHostNotAllowed"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_running_a_step_twice_changes_nothing(app):
    """Retries and redrives re-run states: a second store or refund of a settled task is a no-op."""
    from aigc.flows.workflow import refund_step, store_step

    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    assert store_step({"taskNo": task_no})["job"]["status"] == "COMPLETED"
    assert refund_step({"taskNo": task_no, "job": {"status": "FAILED"}})["job"]["status"] == "SETTLED"
    assert app.task(task_no)["status"] == "completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -10)]
    assert app.balance("alice") == 90


@pytest.mark.realwait
def test_outpainting_with_real_waits(app_real_waits):
    """No scaling: the ASL's own Wait (until the learned window starts) is slept for real."""
    app = app_real_waits
    app.grant("alice", 20)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"angle": 30, "xScale": 1.2})[1]["data"]["taskNo"]
    assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
    assert app.task(task_no)["status"] == "completed"
    assert app.balance("alice") == 10


def test_image_to_image_on_dashscope(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx2.1-imageedit", prompt="make it a watercolour",
                              imageUrl=app.sample_url(96, 64), parameters={"function": "stylization_all", "n": 1})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert body["data"]["parameters"]["function"] == "stylization_all"
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert _download(task["resultUrl"]).size == (96, 64)
    assert app.balance("alice") == 75
