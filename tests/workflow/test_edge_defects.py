"""Small defects at the edge: stale log keys between API requests, failures swallowed when stopping
an execution, and an upload during an S3 outage (raised for the retry, never recorded as the user's fault)."""
from __future__ import annotations

import os
import time

import boto3

from local import faults
from tests.workflow.test_operations import _png, _wait_for_tasks, _wait_processing


def test_an_api_log_line_never_carries_an_earlier_requests_task(app, operator_view, monkeypatch):
    import aigc.domain.lots
    import aigc.store.executions

    lines, _ = operator_view
    app.grant("alice", 100)

    def unavailable(task_no):
        raise RuntimeError("Step Functions is unavailable")

    monkeypatch.setattr(aigc.store.executions, "start_task_execution", unavailable)
    status, body = app.submit(modelName="sc_soraimg_text_1x1", prompt="a cat")  # logs with its task_no
    assert status == 503
    [started] = [line for line in lines if line["message"] == "could not start the workflow; refunding"]
    assert started["task_no"]

    def broken(user_id):
        raise RuntimeError("a bug")

    monkeypatch.setattr(aigc.domain.lots, "statement", broken)  # what the balance route reads
    assert app.api("GET", "/user/points/consumption/balance")[0] == 500
    [unhandled] = [line for line in lines if line["message"] == "unhandled error"]
    assert "task_no" not in unhandled, unhandled


def test_a_cancel_whose_execution_cannot_be_stopped_still_settles_and_says_so(app, operator_view):
    lines, emitted = operator_view
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    # Step Functions throttles the cancel's look at the execution and its stop (the execution may end by itself
    # between the two, then there is nothing to stop: both must fail for the stop to fail every time)
    faults.SWITCH.add(faults.Fault(service="stepfunctions", operations=["DescribeExecution", "StopExecution"],
                                   code="ThrottlingException", status=400, message="Rate exceeded"))
    status, body = app.api("POST", f"/user/ai/tasks/{task_no}/cancel")
    assert status == 200 and body["data"]["status"] == "cancelled" and body["data"]["refunded"] is True
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    [line] = [line for line in lines if line["message"] == "could not stop the execution of a settled task"]
    assert line["level"] == "ERROR" and "ThrottlingException" in line["exception"]
    assert "ExecutionStopFailed" in emitted
    faults.SWITCH.clear()
    # the execution, left running, finds the task settled and ends without a second refund
    app.wait_execution(task_no, timeout=60)
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)] and app.balance("alice") == 100


def test_an_upload_during_an_s3_outage_raises_for_the_retry_then_succeeds(app):
    app.grant("alice", 100)
    faults.SWITCH.add(faults.Fault(service="s3", operations=["HeadObject", "GetObject"], key_prefix="uploads/",
                                   code="ServiceUnavailable", status=503, times=1))
    boto3.client("s3").put_object(Bucket=os.environ["RESULTS_BUCKET"], Key="uploads/alice/cat.png", Body=_png())
    for _ in range(200):
        invocations = [(event, errored) for name, event, errored in app.deployment.router.invocations
                       if name.endswith("UploadFunction")]
        if invocations:
            break
        time.sleep(0.05)
    [(event, errored)] = invocations
    assert errored, "an S3 outage must fail the invocation (asynchronous retry, then the DLQ)"
    assert app.api("GET", "/user/ai/tasks/list")[1]["data"]["records"] == []
    assert app.balance("alice") == 100
    # Lambda's asynchronous retry delivers the same event again once S3 is back
    assert app.invoke("UploadFunction", event) == {"outcomes": ["accepted"]}
    [task] = _wait_for_tasks(app, "alice", 1)
    assert task["status"] == "completed" and app.balance("alice") == 90
