"""The operator's retry path over real HTTP on `python -m local`: the fault switch holds a task, the
operator lists it and redrives it with the AWS CLI against the moto endpoint (boto3 where the CLI is
not installed), and the task completes charged once."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import boto3
import pytest

from tests.e2e.conftest import ROOT, new_user


def _aws_env(stack) -> dict:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def _ops(stack, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "local.ops", "--endpoint-url", f"http://127.0.0.1:{stack.moto_port}",
         "--sim-url", stack.sim_url, *args],
        cwd=ROOT, env=_aws_env(stack), capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def sfn(stack):
    return boto3.client("stepfunctions", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def test_held_by_the_fault_switch_then_redriven_with_the_aws_cli(stack, sfn):
    user = new_user("redrive")
    stack.grant(user, 100)
    # Only this user's results fail: the stack is shared with other tests.
    assert "answer 503 ServiceUnavailable until cleared" in _ops(
        stack, "fault", "on", "--key-prefix", f"results/{user}/")
    try:
        response = stack.submit(user, modelName="image-out-painting", imageUrl=stack.sample_url(),
                                parameters={"xScale": 2})
        assert response.status_code == 200, response.text
        task_no = response.json()["data"]["taskNo"]
        task = stack.wait_task(user, task_no)  # the execution fails; local EventBridge -> reconciler holds it
        assert task["status"] == "failed" and task["errorCode"] == "InternalError.Retryable", task
        assert task["retryableUntil"] and stack.balance(user) == 90
        held = _ops(stack, "held")
        assert task_no in held and "FAILED redriven 0x" in held
    finally:
        assert "cleared" in _ops(stack, "fault", "off")

    machine = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"].endswith("-TaskStateMachine")][0]
    arn = machine["stateMachineArn"].replace(":stateMachine:", ":execution:") + f":{task_no}"
    if shutil.which("aws"):
        done = subprocess.run(["aws", "--endpoint-url", f"http://127.0.0.1:{stack.moto_port}", "stepfunctions",
                               "redrive-execution", "--execution-arn", arn],
                              env=_aws_env(stack), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "redriveDate" in done.stdout, done.stdout + done.stderr
    else:
        assert sfn.redrive_execution(executionArn=arn)["redriveDate"]

    task = stack.wait_task(user, task_no)
    assert task["status"] == "completed" and task["refunded"] is False, task
    assert stack.download(task["resultUrl"]).size == (1024, 512)
    described = sfn.describe_execution(executionArn=arn)
    assert described["executionArn"] == arn and described["status"] == "SUCCEEDED"
    assert described["redriveCount"] == 1
    assert stack.records(user, task_no) == [("debit", -10)]
    assert stack.balance(user) == 90
    assert task_no not in _ops(stack, "held")
    refused = _ops(stack, "redrive", task_no, code=1).strip()
    assert refused.endswith("not redriven: ExecutionNotRedrivable: Execution is SUCCEEDED and cannot be redriven")
