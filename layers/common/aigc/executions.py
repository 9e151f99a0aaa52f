"""Step Functions: start (and later stop) task executions. The only module calling Step Functions."""
from __future__ import annotations

import json
from functools import lru_cache

import boto3

from aigc.config import get_settings


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
