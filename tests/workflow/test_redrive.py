"""The operators' retry path: RedriveExecution (local/sfn_redrive.py) on the real workflow, with the
local fault switch (local/faults.py) making our own step fail, and the local EventBridge stand-in
(local/events.py) delivering every status change to the real reconciler."""
from __future__ import annotations

import datetime
import json
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from aigc.store.db import TaskItem
from aigc.core.timeutil import utcnow
from local import faults
from local.events import EventSources, execution_event
from tests.workflow.test_operations import _wait_processing


@pytest.fixture
def sfn():
    return boto3.client("stepfunctions")


@pytest.fixture
def events(app):
    return EventSources(app.deployment)


def _fault(app, **spec) -> dict:
    response = requests.post(f"{app.sim.url}/_local/faults", json=spec, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["fault"]


def _clear_faults(app) -> int:
    return requests.delete(f"{app.sim.url}/_local/faults", timeout=10).json()["cleared"]


def _history(sfn, arn) -> list[dict]:
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def _entered(history) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def _held_by_fault(app, events, user="alice") -> str:
    """A task whose StoreResults fails because results storage answers 503, held by the reconciler."""
    _fault(app, preset="results-storage")
    app.grant(user, 100)
    task_no = app.submit(user, modelName="image-out-painting", imageUrl=app.sample_url(),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    execution = app.wait_execution(task_no)
    assert execution["status"] == "FAILED", execution
    assert "ServiceUnavailable" in execution["cause"]
    assert events.deliver_execution_events() == 1  # FAILED -> reconciler
    task = app.task(task_no, user)
    assert task["status"] == "failed" and task["errorCode"] == "InternalError.Retryable", task
    assert task["retryableUntil"] and "retry" in task["errorMessage"]
    assert app.execution_ended(task_no) == {"outcome": "already-settled"}  # EventBridge: at least once
    assert app.balance(user) == 90  # held: still debited
    return task_no


def test_held_failure_cleared_and_redriven_completes_charged_once(app, sfn, events):
    task_no = _held_by_fault(app, events)
    arn = app.execution_arn(task_no)
    stale_failed_event = sfn.describe_execution(executionArn=arn)
    assert stale_failed_event["redriveCount"] == 0 and stale_failed_event["redriveStatus"] == "REDRIVABLE"
    before = _history(sfn, arn)
    assert _clear_faults(app) == 1

    redriven = sfn.redrive_execution(executionArn=arn)
    assert redriven["redriveDate"]
    execution = app.wait_execution(task_no)
    assert execution["executionArn"] == arn and execution["status"] == "SUCCEEDED"
    assert execution["redriveCount"] == 1 and execution["redriveDate"] == redriven["redriveDate"]
    assert execution["input"] == stale_failed_event["input"]
    assert execution["redriveStatus"] == "NOT_REDRIVABLE"
    assert execution["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"

    # The history goes on: the first run's events unchanged, ExecutionRedriven, then only the failed
    # state and what follows it (the provider was not asked again).
    history = _history(sfn, arn)
    assert history[:len(before)] == before
    redrive_event = history[len(before)]
    assert redrive_event["type"] == "ExecutionRedriven"
    assert redrive_event["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert _entered(history[len(before):]) == ["StoreResults", "AfterStore", "Completed"]
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert _entered(history).count("SubmitToProvider") == 1

    task = app.task(task_no)
    assert task["status"] == "completed" and task["resultUrl"] and task["retryableUntil"] is None
    assert requests.get(task["resultUrl"], timeout=10).status_code == 200
    assert app.ledger("alice", task_no) == [("DEBIT", -10)]
    # The earlier run's FAILED event, delivered late, changes nothing; nor does the sweep.
    assert app.invoke("ReconcileFunction", execution_event(stale_failed_event)) == {"outcome": "superseded"}
    assert events.deliver_execution_events() == 0
    assert app.sweep()["refunded"] == 0
    assert app.task(task_no)["status"] == "completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -10)] and app.balance("alice") == 90

    listed = {e["executionArn"]: e for e in sfn.list_executions(
        stateMachineArn=app.deployment.state_machine_arn, redriveFilter="REDRIVEN")["executions"]}
    assert listed[arn]["redriveCount"] == 1 and listed[arn]["redriveDate"] == redriven["redriveDate"]
    not_redriven = sfn.list_executions(stateMachineArn=app.deployment.state_machine_arn,
                                       redriveFilter="NOT_REDRIVEN")["executions"]
    assert arn not in [e["executionArn"] for e in not_redriven]


def test_a_redrive_that_fails_again_is_held_again_and_the_next_one_completes(app, sfn, events):
    """FAILED -> RUNNING -> FAILED -> RUNNING -> SUCCEEDED: held twice, charged once."""
    task_no = _held_by_fault(app, events)
    arn = app.execution_arn(task_no)
    sfn.redrive_execution(executionArn=arn)  # the fault is still on
    again = app.wait_execution(task_no)
    assert again["status"] == "FAILED" and again["redriveCount"] == 1
    assert events.deliver_execution_events() == 1  # the second run's FAILED is a new event
    assert app.task(task_no)["errorCode"] == "InternalError.Retryable"
    _clear_faults(app)
    sfn.redrive_execution(executionArn=arn)
    done = app.wait_execution(task_no)
    assert done["status"] == "SUCCEEDED" and done["redriveCount"] == 2
    redriven = [e for e in _history(sfn, arn) if e["type"] == "ExecutionRedriven"]
    assert [e["executionRedrivenEventDetails"]["redriveCount"] for e in redriven] == [1, 2]
    assert app.task(task_no)["status"] == "completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -10)] and app.balance("alice") == 90


def test_redrive_after_the_hold_window_ends_in_already_settled_and_changes_nothing(app, sfn, events):
    task_no = _held_by_fault(app, events)
    TaskItem.get(task_no).update(actions=[
        TaskItem.hold_until.set(utcnow() - datetime.timedelta(seconds=1)),
        TaskItem.attention_at.set("2000-01-01T00:00:00.000Z"),
    ])
    assert app.sweep()["refunded"] == 1
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]
    _clear_faults(app)

    sfn.redrive_execution(executionArn=app.execution_arn(task_no))
    execution = app.wait_execution(task_no)
    assert execution["status"] == "SUCCEEDED" and execution["redriveCount"] == 1
    assert json.loads(execution["output"])["job"]["status"] == "SETTLED"
    assert app.states_visited(task_no)[-1] == "AlreadySettled"
    task = app.task(task_no)
    assert task["status"] == "failed" and task["refunded"] is True and task["resultUrl"] is None
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)] and app.balance("alice") == 100


def test_aborted_execution_refunded_by_the_reconciler_then_redriven_changes_nothing(app, sfn, events):
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    arn = app.execution_arn(task_no)
    sfn.stop_execution(executionArn=arn, cause="operator")
    assert app.wait_execution(task_no)["status"] == "ABORTED"
    assert events.deliver_execution_events() == 1
    assert app.task(task_no)["errorCode"] == "ExecutionAborted"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)]

    sfn.redrive_execution(executionArn=arn)
    execution = app.wait_execution(task_no)
    assert execution["status"] == "SUCCEEDED" and execution["redriveCount"] == 1
    assert app.states_visited(task_no)[-1] == "AlreadySettled"
    assert events.deliver_execution_events() == 0
    task = app.task(task_no)
    assert task["status"] == "failed" and task["errorCode"] == "ExecutionAborted"
    assert app.ledger("alice", task_no) == [("DEBIT", -10), ("REFUND", 10)] and app.balance("alice") == 100


def test_succeeded_and_running_executions_are_not_redrivable(app, sfn):
    app.grant("alice", 100)
    done = app.submit(modelName="sc_soraimg_text_1x1", prompt="cat")[1]["data"]["taskNo"]
    assert app.wait_execution(done)["status"] == "SUCCEEDED"
    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=app.execution_arn(done))
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert refused.value.response["Error"]["Message"] == "Execution is SUCCEEDED and cannot be redriven"

    running = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=60),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, running)
    described = sfn.describe_execution(executionArn=app.execution_arn(running))
    assert (described["redriveStatus"], described["redriveStatusReason"]) == (
        "NOT_REDRIVABLE", "Execution is RUNNING and cannot be redriven")
    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=app.execution_arn(running))
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    with pytest.raises(ClientError) as missing:
        sfn.redrive_execution(executionArn=app.execution_arn("TASK-nope"))
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    assert app.ledger("alice", done) == [("DEBIT", -30)]


def test_redrive_is_refused_14_days_after_the_stop_and_a_client_token_redrives_once(app, sfn, events):
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    first = _held_by_fault(app, events)
    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    execution = backend.describe_execution(app.execution_arn(first))
    execution.stop_date -= datetime.timedelta(days=14, minutes=1)
    described = sfn.describe_execution(executionArn=app.execution_arn(first))
    assert described["redriveStatusReason"] == "Execution redrivable period exceeded"
    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=app.execution_arn(first))
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    execution.stop_date += datetime.timedelta(days=14, minutes=1)

    _clear_faults(app)
    one = sfn.redrive_execution(executionArn=app.execution_arn(first), clientToken="retry-1")
    two = sfn.redrive_execution(executionArn=app.execution_arn(first), clientToken="retry-1")
    assert one["redriveDate"] == two["redriveDate"]
    assert app.wait_execution(first)["redriveCount"] == 1
    assert app.task(first)["status"] == "completed"


def test_fault_switch_endpoint_beside_the_simulator_controls(app):
    url = f"{app.sim.url}/_local/faults"
    assert requests.get(url, timeout=10).json()["faults"] == []
    bad = requests.post(url, json={"preset": "results-storage", "colour": "red"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"].startswith("colour")
    assert requests.post(url, json={"service": "s3"}, timeout=10).status_code == 400
    fault = _fault(app, service="s3", operations=["PutObject"], key_prefix="results/x/", times=1)
    assert [f["id"] for f in requests.get(url, timeout=10).json()["faults"]] == [fault["id"]]
    s3 = boto3.client("s3")
    bucket = app.deployment.environment["RESULTS_BUCKET"]
    s3.put_object(Bucket=bucket, Key="results/y/1.png", Body=b"fine")  # another prefix is untouched
    with pytest.raises(ClientError) as failed:
        s3.put_object(Bucket=bucket, Key="results/x/1.png", Body=b"boom")
    assert failed.value.response["Error"]["Code"] == "InternalError"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    s3.put_object(Bucket=bucket, Key="results/x/1.png", Body=b"fine")  # times=1: it cleared itself
    assert requests.get(url, timeout=10).json()["faults"] == []
    assert requests.delete(f"{url}/fault-999", timeout=10).status_code == 404
    assert faults.SWITCH.list() == []


def test_a_redriven_execution_takes_a_provider_slot_again_and_releases_it_once(app, sfn, events, monkeypatch):
    """Issue 7's semaphore under FAILED -> RUNNING -> SUCCEEDED: the failed run's slot is given back when
    the task is held, the redriven poll takes one again, and it is released exactly once at the end."""
    from aigc.domain import capacity

    releases: list[tuple[str, bool]] = []
    original_release = capacity._release

    def counting_release(pool, task):
        released = original_release(pool, task)
        releases.append((task.task_no, released))
        return released

    monkeypatch.setattr(capacity, "_release", counting_release)
    pool = capacity.pool_of("image-out-painting")
    app.grant("alice", 100)
    task_no = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=3),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    _wait_processing(app, task_no)
    assert task_no in capacity.holders(pool)
    # The next write to the tasks table (PollProvider recording the provider's status) answers 500 once.
    _fault(app, service="dynamodb", operations=["UpdateItem"], table="TasksTable", times=1,
           code="InternalServerError", status=500)
    failed = app.wait_execution(task_no)
    assert failed["status"] == "FAILED" and "local fault switch" in failed["cause"], failed
    assert app.states_visited(task_no)[-1] == "PollProvider"
    assert events.deliver_execution_events() == 1
    assert app.task(task_no)["errorCode"] == "InternalError.Retryable"
    assert task_no not in capacity.holders(pool)  # held: its slot went back to the pool
    assert [ok for no, ok in releases if no == task_no] == [True]

    releases.clear()
    sfn.redrive_execution(executionArn=app.execution_arn(task_no))
    seen_holding = False
    while sfn.describe_execution(executionArn=app.execution_arn(task_no))["status"] == "RUNNING":
        seen_holding = seen_holding or task_no in capacity.holders(pool)
        time.sleep(0.02)
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    assert seen_holding, "the redriven run polled the provider without a slot"
    assert task_no not in capacity.holders(pool)
    assert [ok for no, ok in releases if no == task_no].count(True) == 1
    assert app.task(task_no)["status"] == "completed"
    assert app.ledger("alice", task_no) == [("DEBIT", -10)]
