"""Issue 20, through the real ASL: what the user gave us failing is the user's (refunded at once, no
retry, no function error, no held task, no provider slot); a provider's s3:// output outside the
task's own results/<user>/<task>/ is refused; the user never sees the provider's raw error text."""
from __future__ import annotations

import os

import boto3
import pytest

import aigc.domain.capacity
import aigc.flows.workflow
import aigc.providers.openai_images
from aigc.core.vocab import JobStatus
from aigc.providers.base import ProviderJob
from aigc.providers.error_messages import GENERIC_MESSAGE, user_message
from tests.hostile_http import HostileServer, closed_port

IMG2IMG = "sc_soraimg_img2img_1x1"  # the OpenAI-compatible adapter downloads the user's image itself


@pytest.fixture
def host():
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture
def slots_taken(monkeypatch) -> list[str]:
    """Every task that took (or asked for) a provider slot."""
    taken = []
    grant = aigc.domain.capacity._grant

    def spy(pool, account, task_no, seconds):
        taken.append(task_no)
        return grant(pool, account, task_no, seconds)

    monkeypatch.setattr(aigc.domain.capacity, "_grant", spy)
    return taken


def _submit_invocations(app, task_no: str) -> list[bool]:
    """Whether each invocation of the submit function for this task errored (a retry follows an error)."""
    return [errored for name, event, errored in list(app.deployment.router.invocations)
            if name.endswith("ProviderSubmitFunction") and event.get("taskNo") == task_no]


def _refunded_at_once(app, task_no: str, code: str, cost: int) -> dict:
    assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
    visited = app.states_visited(task_no)
    assert visited[-1] == "Refunded", visited
    task = app.task(task_no)
    assert task["status"] == "failed" and task["refunded"] is True, task
    assert task["errorCode"] == code
    assert task["errorMessage"] == user_message(code)
    assert task["retryableUntil"] is None  # not held for an operator: nothing of ours failed
    assert app.ledger("alice", task_no) == [("DEBIT", -cost), ("REFUND", cost)]
    return task


@pytest.mark.parametrize("where", ["unreachable", "status/503", "status/502", "hang", "drip"])
def test_a_reference_image_that_cannot_be_fetched_fails_the_task_as_the_users(app, host, slots_taken, monkeypatch,
                                                                              where):
    monkeypatch.setattr(aigc.providers.openai_images, "INPUT_DEADLINE_SECONDS", 1.0)
    url = {"unreachable": f"http://127.0.0.1:{closed_port()}/a.png",
           "drip": f"{host.url}/drip?n=30&every=0.2"}.get(where, f"{host.url}/{where}")
    app.grant("alice", 100)
    status, body = app.submit(modelName=IMG2IMG, prompt="a toy robot", imageUrl=url)
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    task = _refunded_at_once(app, task_no, "InvalidParameter.FileDownload", 35)
    assert "downloaded" in task["errorMessage"]
    assert app.balance("alice") == 100
    assert _submit_invocations(app, task_no) == [False]  # one invocation, no function error, no retry
    assert task_no not in slots_taken  # the fetch comes before the slot: a bad URL never holds one
    assert app.states_visited(task_no).count("SubmitToProvider") == 1


def test_a_reference_image_that_can_be_fetched_still_completes(app, host):
    app.grant("alice", 100)
    status, body = app.submit(modelName=IMG2IMG, prompt="a toy robot", imageUrl=f"{host.url}/ref.png")
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
    assert app.task(task_no)["status"] == "completed"
    assert host.requests == ["/ref.png"]


class _Provider:
    """An async provider whose job ends as told (a forged or buggy answer)."""

    is_async = True

    def __init__(self, final: ProviderJob):
        self.final = final

    def submit(self, req):
        return ProviderJob(provider_task_id="job-1", status=JobStatus.PENDING)

    def poll(self, provider_task_id):
        return self.final.model_copy(update={"provider_task_id": provider_task_id})

    def cancel(self, provider_task_id):
        return False


@pytest.mark.parametrize("where", ["another users result", "an upload", "another bucket"])
def test_s3_outputs_outside_the_tasks_results_are_refused(app, monkeypatch, where):
    bucket = os.environ["RESULTS_BUCKET"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="results/bob/TASK-SECRET/1.png", Body=b"bob's picture")
    s3.put_object(Bucket=bucket, Key="uploads/bob/private.png", Body=b"bob's upload")
    ref = {"another users result": f"s3://{bucket}/results/bob/TASK-SECRET/1.png",
           "an upload": f"s3://{bucket}/uploads/bob/private.png",
           "another bucket": "s3://somebody-elses-bucket/results/alice/x.png"}[where]
    provider = _Provider(ProviderJob(status=JobStatus.SUCCEEDED, output_urls=[ref]))
    monkeypatch.setattr(aigc.flows.workflow, "get_provider", lambda name, account=None: provider)
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    task = _refunded_at_once(app, task_no, "ResultLocationNotAllowed", 10)
    assert task["resultUrl"] is None and task["resultUrls"] == []
    assert app.balance("alice") == 100


def test_the_user_sees_our_message_and_the_operator_the_providers(app, monkeypatch, operator_view):
    lines, _ = operator_view
    raw = "backend 10.3.2.1 failed at /api/v1/internal/render (request_id 7f3a9c2e-11aa)"
    provider = _Provider(ProviderJob(status=JobStatus.FAILED, error_code="SomethingNew", error_message=raw))
    monkeypatch.setattr(aigc.flows.workflow, "get_provider", lambda name, account=None: provider)
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    task = _refunded_at_once(app, task_no, "SomethingNew", 10)
    assert task["errorMessage"] == GENERIC_MESSAGE
    listed = app.api("GET", "/user/ai/tasks/list")[1]["data"]["records"]
    assert all("request_id" not in (record["errorMessage"] or "") for record in listed)
    admin = app.api("GET", f"/admin/tasks/{task_no}", user="root", admin=True)[1]["data"]
    assert all("request_id" not in (entry["reason"] or "") for entry in admin["ledger"])
    [line] = [line for line in lines if line["message"] == "task failed" and line.get("task_no") == task_no]
    assert line["error_code"] == "SomethingNew" and line["provider_detail"] == raw


def test_a_provider_rejection_at_submit_shows_our_message(app, monkeypatch):
    from aigc.core.errors import ProviderRejected

    class Rejecting(_Provider):
        def submit(self, req):
            raise ProviderRejected("DashScope POST /api/v1/services/aigc/image2image/out-painting -> HTTP 400 "
                                   "(request_id 42)", code="HTTP400")

    monkeypatch.setattr(aigc.flows.workflow, "get_provider", lambda name, account=None: Rejecting(None))
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    task = _refunded_at_once(app, task_no, "HTTP400", 10)
    assert task["errorMessage"] == GENERIC_MESSAGE
    assert "/api/v1" not in task["errorMessage"] and "request_id" not in task["errorMessage"]
