"""Operations: our own failures held for a redrive, the reconciler, the sweep, cancel, uploads.
Redrives themselves (the real RedriveExecution) are in test_redrive.py."""
from __future__ import annotations

import threading
from datetime import timedelta

import boto3
import pytest
import requests

import aigc.store.storage
from aigc.store.db import TaskItem
from aigc.core.timeutil import utcnow


def _wait_processing(app, task_no):
    import time

    for _ in range(400):
        status = app.task(task_no)["status"]
        if status == "processing":
            return
        time.sleep(0.05)
    raise AssertionError(f"waited 20 s for task {task_no} to be processing; it is {status}")


def _fail_thumbnails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("S3 is having a bad day")

    monkeypatch.setattr(aigc.store.storage, "write_thumbnail", broken)


def _held_task(app, monkeypatch) -> str:
    _fail_thumbnails(monkeypatch)
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    execution = app.wait_execution(task_no)
    assert execution["status"] == "FAILED" and execution["error"] == "RuntimeError"
    assert app.balance("alice") == 90  # nothing refunded by the workflow itself
    assert app.execution_ended(task_no) == {"outcome": "held"}
    monkeypatch.undo()
    return task_no


def test_a_held_task_left_alone_is_refunded_once_when_the_window_ends(app, monkeypatch):
    task_no = _held_task(app, monkeypatch)
    assert app.sweep()["refunded"] == 0  # still inside the window
    TaskItem.get(task_no).update(actions=[
        TaskItem.hold_until.set(utcnow() - timedelta(seconds=1)),
        TaskItem.attention_at.set("2000-01-01T00:00:00.000Z"),
    ])
    assert app.sweep()["refunded"] == 1
    assert app.sweep()["refunded"] == 0
    task = app.task(task_no)
    assert task["status"] == "failed" and task["refunded"] is True
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_execution_aborted_from_outside_is_refunded_by_the_reconciler(app):
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    boto3.client("stepfunctions").stop_execution(executionArn=app.execution_arn(task_no), cause="operator")
    assert app.wait_execution(task_no)["status"] == "ABORTED"
    assert app.execution_ended(task_no) == {"outcome": "refunded"}
    assert app.execution_ended(task_no) == {"outcome": "already-settled"}
    task = app.task(task_no)
    assert task["status"] == "failed" and task["errorCode"] == "ExecutionAborted"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_sweep_refunds_a_task_whose_execution_never_started(app):
    """The API debited, then died before starting the workflow: the sweep settles it."""
    from aigc.flows import submission
    from aigc.domain.points import debit_for_new_task
    from aigc.api.schemas import SubmitTaskRequest

    app.grant("alice", 100)
    task = submission.prepare_task("alice", SubmitTaskRequest(modelName="wanx-v1", prompt="x"))
    debit_for_new_task(task, rate_limit_per_minute=0)
    assert app.balance("alice") == 80
    TaskItem.get(task.task_no).update(actions=[TaskItem.attention_at.set("2000-01-01T00:00:00.000Z")])
    assert app.sweep()["refunded"] == 1
    assert app.balance("alice") == 100
    assert app.task(task.task_no)["errorCode"] == "Timeout"


# ------------------------------------------------------------------------------------ cancel
def _cancel(app, task_no, user="alice"):
    return app.api("POST", f"/user/ai/tasks/{task_no}/cancel", user=user)


def test_cancel_while_queued_at_the_provider(app):
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_pending=30),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    status, body = _cancel(app, task_no)
    assert status == 200, body
    assert body["data"]["status"] == "cancelled"
    app.wait_execution(task_no)  # stopped by the cancel, or ended by a poll that saw the task cancelled
    assert "StoreResults" not in app.states_visited(task_no)
    assert app.task(task_no)["status"] == "cancelled"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100


def test_cancel_while_processing_then_again_is_409(app):
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    assert _cancel(app, task_no)[0] == 200
    status, body = _cancel(app, task_no)
    assert status == 409 and "already cancelled" in body["message"]
    assert app.task(task_no)["status"] == "cancelled"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    assert _cancel(app, task_no, user="mallory")[0] == 404


def test_cancel_after_completion_is_409_and_refunds_nothing(app):
    app.grant("alice", 100)
    task_no = app.submit(modelName="sc_soraimg_text_1x1", prompt="cat")[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    status, body = _cancel(app, task_no)
    assert status == 409 and "completed" in body["message"]
    assert app.ledger("alice", task_no) == [("DEBIT", -30)]
    assert app.balance("alice") == 70


def test_cancel_racing_completion_ends_in_exactly_one_outcome(app):
    """The store step and a cancel at the same moment: one wins and the ledger agrees. Each order is
    forced once (so both outcomes are checked), then they race from a barrier."""
    from aigc.domain import tasks
    from aigc.flows.workflow import store_step

    app.grant("alice", 1000)
    outcomes = []
    orders = ["cancel first", "store first"] + ["race"] * 4
    for order in orders:
        task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=600),
                             parameters={"xScale": 2})[1]["data"]["taskNo"]
        _wait_processing(app, task_no)
        boto3.client("stepfunctions").stop_execution(executionArn=app.execution_arn(task_no))
        app.wait_execution(task_no, timeout=150)  # it ends when its poll invocation (a polling loop) returns
        # put the task right before StoreResults: the provider finished and gave its outputs
        item = tasks.get_task(task_no)
        tasks.record_provider_job(item, "sim-job", "SUCCEEDED")
        tasks.record_provider_outputs(item, "SUCCEEDED", [app.sample_url(48, 48)])
        results = {}

        def store(task_no=task_no, results=results):
            results["store"] = store_step({"taskNo": task_no})["job"]["status"]

        def cancel(task_no=task_no, results=results):
            results["cancel"] = _cancel(app, task_no)[0]

        if order == "race":
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=lambda work=work, barrier=barrier: (barrier.wait(), work())) for work in (store, cancel)]
            [t.start() for t in threads]
            [t.join() for t in threads]
        else:
            for work in ((cancel, store) if order == "cancel first" else (store, cancel)):
                work()
        final = app.task(task_no)["status"]
        if final == "completed":
            assert results == {"store": "COMPLETED", "cancel": 409}, order
            assert app.ledger("alice", task_no) == [("DEBIT", -10)]
        else:
            assert final == "cancelled" and results == {"store": "SETTLED", "cancel": 200}, (order, final, results)
            assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
        outcomes.append(final)
    assert outcomes[:2] == ["cancelled", "completed"]
    assert set(outcomes[2:]) <= {"cancelled", "completed"}
    assert app.balance("alice") == 1000 - len(orders) * 10 + 10 * outcomes.count("cancelled")


# ----------------------------------------------------------------------------------- uploads
def _png(width=64, height=48) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _bucket(app) -> str:
    import os

    return os.environ["RESULTS_BUCKET"]


def _user_tasks(app, user):
    return app.api("GET", "/user/ai/tasks/list", user=user)[1]["data"]["records"]


def _wait_for_tasks(app, user, count, completed=True):
    import time

    for _ in range(400):
        records = _user_tasks(app, user)
        if len(records) >= count and (not completed or all(r["status"] in ("completed", "failed") for r in records)):
            return records
        time.sleep(0.05)
    raise AssertionError(f"waited 20 s for {count} {'settled ' if completed else ''}tasks of {user}; "
                         f"they are {[(r['taskNo'], r['status']) for r in records]}")


def test_uploaded_image_becomes_a_charged_outpainting_task(app):
    app.grant("alice", 100)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=_bucket(app), Key="uploads/alice/holiday photo.png", Body=_png(),
                  Metadata={"output-ratio": "16:9"})
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["source"] == "upload" and task["taskType"] == "outpainting"
    assert task["status"] == "completed", task
    assert task["parameters"].get("output_ratio") == "16:9", (task["parameters"], task["effect"])
    assert f"results/alice/{task['taskNo']}/" in task["resultUrl"]
    from PIL import Image
    import io
    picture = Image.open(io.BytesIO(requests.get(task["resultUrl"], timeout=10).content))
    assert abs(picture.size[0] / picture.size[1] - 16 / 9) < 0.02
    assert app.balance("alice") == 90


def test_duplicate_s3_events_give_one_task_and_one_debit(app):
    app.grant("alice", 100)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=_bucket(app), Key="uploads/alice/cat.png", Body=_png())
    _wait_for_tasks(app, "alice", 1)
    # S3 delivers the same event again (at least once): same object, same event time, same sequencer
    records = app.deployment.router.invocations
    upload_events = [event for name, event, _ in records if name.endswith("UploadFunction")]
    assert len(upload_events) == 1
    replay = app.invoke("UploadFunction", upload_events[0])
    assert replay == {"outcomes": ["duplicate"]}
    assert len(_user_tasks(app, "alice")) == 1
    assert app.balance("alice") == 90


@pytest.mark.parametrize("user, body, grant, code", [
    ("alice", _png(), 5, "Rejected.InsufficientPoints"),
    ("nobody", _png(), 0, "Rejected.UnknownUser"),
    ("alice", b"this is not an image", 100, "Rejected.ImageFormat"),
])
def test_uploads_that_cannot_become_tasks_charge_nothing_and_say_why(app, user, body, grant, code):
    if grant:
        app.grant(user, grant)
    boto3.client("s3").put_object(Bucket=_bucket(app), Key=f"uploads/{user}/x.png", Body=body)
    [task] = _wait_for_tasks(app, user, 1, completed=False)
    assert task["status"] == "failed" and task["errorCode"] == code and task["pointsCost"] == 0
    assert task["errorMessage"]
    assert app.balance(user) == grant
    assert app.ledger(user) == ([("GRANT", grant)] if grant else [])
    assert boto3.client("stepfunctions").list_executions(
        stateMachineArn=app.deployment.state_machine_arn)["executions"] == []


def test_presigned_upload_url_under_the_callers_prefix(app):
    app.grant("alice", 100)
    status, body = app.api("POST", "/user/uploads", body={"fileName": "../../etc/Cat.PNG", "contentType": "image/png",
                                                          "parameters": {"xScale": 1.5}})
    assert status == 200, body
    upload = body["data"]
    assert upload["key"].startswith("uploads/alice/") and upload["key"].endswith(".png")
    response = requests.post(upload["url"], data=upload["fields"], files={"file": ("cat.png", _png())}, timeout=10)
    assert response.status_code in (200, 204), response.text
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["status"] == "completed" and task["parameters"]["x_scale"] == 1.5, (task["errorCode"], task["errorMessage"])
    bad = app.api("POST", "/user/uploads", body={"fileName": "a.gif", "contentType": "image/gif"})
    assert bad[0] == 400 and bad[1]["message"].startswith("contentType")
    bad = app.api("POST", "/user/uploads", body={"fileName": "a.png", "contentType": "image/png",
                                                 "parameters": {"xScale": 9}})
    assert bad[0] == 400 and bad[1]["message"].startswith("parameters.xScale")


def test_operator_endpoints(app, monkeypatch):
    task_no = _held_task(app, monkeypatch)
    assert app.api("GET", f"/admin/tasks/{task_no}", user="alice")[0] == 403
    status, body = app.api("GET", f"/admin/tasks/{task_no}", user="root", admin=True)
    assert status == 200 and body["data"]["executionStatus"] == "FAILED"
    assert body["data"]["task"]["userId"] == "alice"
    status, body = app.api("POST", f"/admin/tasks/{task_no}/refund", user="root", admin=True,
                           body={"reason": "customer request"})
    assert status == 200 and body["data"]["refunded"] is True
    again = app.api("POST", f"/admin/tasks/{task_no}/refund", user="root", admin=True, body={"reason": "again"})
    assert again[0] == 409
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]


def test_local_event_sources_deliver_execution_endings_from_the_template(app):
    """The local stack's stand-in for EventBridge: an aborted execution reaches the reconciler."""
    from local.events import EventSources

    sources = EventSources(app.deployment)
    assert sources.status_targets and sources.schedule_targets
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    boto3.client("stepfunctions").stop_execution(executionArn=app.execution_arn(task_no))
    app.wait_execution(task_no)
    assert sources.deliver_execution_events() == 1
    assert sources.deliver_execution_events() == 0
    assert app.task(task_no)["errorCode"] == "ExecutionAborted"
    assert app.balance("alice") == 100
    sources.run_schedules()  # the sweep runs and finds nothing more to do
    assert app.balance("alice") == 100
