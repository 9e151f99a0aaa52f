"""Step Functions: start (and later stop) task executions. The only module calling Step Functions."""
from __future__ import annotations

import json
from functools import lru_cache

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from aigc.core.config import get_settings

# What a failed Step Functions call raises; callers that tolerate it catch this, not botocore's names.
StepFunctionsError = (BotoCoreError, ClientError)


@lru_cache(maxsize=1)
def _sfn():
    return boto3.client("stepfunctions")


def start_task_execution(task_no: str) -> str:
    """Start the workflow for a task; the execution is named after the task (one per task)."""
    response = _sfn().start_execution(
        stateMachineArn=get_settings().state_machine_arn,
        name=task_no,
        input=json.dumps({"taskNo": task_no}),
    )
    return response["executionArn"]


def execution_arn(name: str) -> str:
    return get_settings().state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def execution_status(name: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, or None when there is no such execution."""
    try:
        return _sfn().describe_execution(executionArn=execution_arn(name))["status"]
    except _sfn().exceptions.ExecutionDoesNotExist:
        return None


def current_run(name: str) -> tuple[str, int] | None:
    """(status, redriveCount) of the execution now, or None when there is no such execution."""
    try:
        described = _sfn().describe_execution(executionArn=execution_arn(name))
    except _sfn().exceptions.ExecutionDoesNotExist:
        return None
    return described["status"], described.get("redriveCount", 0)


def stop_if_running(name: str, cause: str) -> bool:
    """Stop a task's execution if it runs; False when it does not (finished, or never started).

    Only those cases are expected. Anything else (throttling, no permission, Step Functions down)
    raises: the caller decides what it means for its own work.
    """
    if execution_status(name) != "RUNNING":
        return False
    try:
        _sfn().stop_execution(executionArn=execution_arn(name), cause=cause[:256])
    except _sfn().exceptions.ExecutionDoesNotExist:
        return False
    return True


def send_task_success(token: str, output: dict) -> bool:
    """Wake an execution waiting on a task token; False when it no longer waits (stopped, timed out)."""
    client = _sfn()
    try:
        client.send_task_success(taskToken=token, output=json.dumps(output))
    except (client.exceptions.TaskTimedOut, client.exceptions.InvalidToken, client.exceptions.TaskDoesNotExist):
        return False
    return True
