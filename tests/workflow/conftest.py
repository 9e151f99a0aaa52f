"""The application deployed from template.yaml onto moto, with Step Functions executing the real
ASL, every Lambda routed to its real handler in process, and the provider simulator at the edge."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from local import faults, moto_dynamodb, moto_dynamodb_results, s3_events, sfn_redrive, sfn_reuse, sfn_stop
from local.apigw import http_event
from local.lambda_runtime import install_router, scaled_waits
from local.simulator import start_simulator
from local.stack import deploy

WAIT_SCALE = 0.02  # 10 s of Wait/Retry in the ASL take 0.2 s


@pytest.fixture(scope="session")
def simulator():
    sim = start_simulator(latency_min=0.3, latency_max=0.5, max_concurrency=50)
    yield sim
    sim.stop()


def local_parameters(sim) -> dict:
    return {
        "JwtIssuer": "http://127.0.0.1/local-issuer",
        "JwtAudience": "aigc-local",
        "DashScopeBaseUrl": sim.url,
        "OpenAIBaseUrl": sim.url,
        "StripeApiBase": sim.url,
        "ResultHostAllowlist": f"127.0.0.1:{sim.port}",
        "SubmitRateLimitPerMinute": "100",
    }


@dataclass
class App:
    deployment: object
    sim: object

    # --- HTTP API, through the real handler -----------------------------------------------
    def api(self, method: str, path: str, *, user: str | None = "alice", admin: bool = False,
            body=None, query=None, headers=None) -> tuple[int, dict]:
        status, _, answer = self.api_with_headers(method, path, user=user, admin=admin, body=body, query=query,
                                                  headers=headers)
        return status, answer

    def api_with_headers(self, method: str, path: str, *, user: str | None = "alice", admin: bool = False,
                         body=None, query=None, headers=None) -> tuple[int, dict, dict]:
        claims = None
        if user is not None:
            claims = {"sub": user, "token_use": "id"}
            if admin:
                claims["cognito:groups"] = ["admins"]
        event = http_event(method, path, query=query, headers=headers, body=body, claims=claims)
        name = self.deployment.name("ApiFunction")
        payload, errored, _ = self.deployment.router.invoke(name, name, event)
        assert not errored, payload
        response = json.loads(payload)
        return response["statusCode"], response.get("headers") or {}, json.loads(response["body"])

    def grant(self, user: str, amount: int) -> None:
        status, body = self.api("POST", "/admin/points/grant", user="root", admin=True,
                                body={"userId": user, "amount": amount, "reason": "test"})
        assert status == 200, body

    def submit(self, user: str = "alice", headers=None, **request) -> tuple[int, dict]:
        return self.api("POST", "/user/ai/tasks/submit", user=user, body=request, headers=headers)

    def balance(self, user: str) -> int:
        status, body = self.api("GET", "/user/points/consumption/balance", user=user)
        assert status == 200, body
        return body["data"]["balance"]

    def task(self, task_no: str, user: str = "alice") -> dict:
        status, body = self.api("GET", f"/user/ai/tasks/{task_no}", user=user)
        assert status == 200, body
        return body["data"]

    def ledger(self, user: str, task_no: str | None = None) -> list[tuple[str, int]]:
        from aigc.domain.points import ledger_entries

        return sorted((e.kind, int(e.amount)) for e in ledger_entries(user, task_no))

    # --- Step Functions -------------------------------------------------------------------
    def execution_arn(self, task_no: str) -> str:
        return self.deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{task_no}"

    def wait_execution(self, task_no: str, timeout: float = 120) -> dict:
        sfn = boto3.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=self.execution_arn(task_no))
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.05)
        raise AssertionError(f"execution {task_no} still running after {timeout} s")

    def states_visited(self, task_no: str) -> list[str]:
        sfn = boto3.client("stepfunctions")
        events = sfn.get_execution_history(executionArn=self.execution_arn(task_no), maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]

    def invoke(self, logical_id: str, event: dict) -> dict:
        name = self.deployment.name(logical_id)
        payload, errored, _ = self.deployment.router.invoke(name, name, event)
        assert not errored, payload
        return json.loads(payload)

    def execution_ended(self, task_no: str) -> dict:
        """What EventBridge delivers to the reconciler when the task's execution ends badly."""
        from local.events import execution_event

        described = boto3.client("stepfunctions").describe_execution(executionArn=self.execution_arn(task_no))
        return self.invoke("ReconcileFunction", execution_event(described))

    def sweep(self) -> dict:
        return self.invoke("ReconcileFunction", {"source": "aws.events", "detail-type": "Scheduled Event",
                                                 "detail": {}})

    def sample_url(self, w: int = 64, h: int = 64, **query) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"{self.sim.url}/samples/test.png?w={w}&h={h}{extra}"


def _stop_running_executions(deployment) -> None:
    """Executions run in moto's threads: stop what a test left running so it cannot touch the next."""
    sfn = boto3.client("stepfunctions")
    running = sfn.list_executions(stateMachineArn=deployment.state_machine_arn, statusFilter="RUNNING")
    for execution in running["executions"]:
        try:
            sfn.stop_execution(executionArn=execution["executionArn"])
        except Exception:
            pass


def _restore_environment(saved: dict) -> None:
    """The process environment as it was before the deployment: no function setting leaks into later tests."""
    os.environ.clear()
    os.environ.update(saved)


def _deployed_app(simulator, wait_scale):
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), contextlib.ExitStack() as cleanup:
        cleanup.callback(moto_dynamodb.install())  # as the local stack does: DynamoDB's atomicity
        # as the local stack does, and here every answer is also serialised moto's way and compared
        cleanup.callback(moto_dynamodb_results.install())
        moto_dynamodb_results.CHECK = True
        cleanup.callback(_restore_environment, dict(os.environ))  # deploy() gives the handlers their env
        deployment = deploy(
            parameters=local_parameters(simulator),
            secret={"dashscope_api_key": "sim-dashscope-key", "openai_api_key": "sim-openai-key",
                    "stripe_api_key": simulator.config.stripe_api_key,
                    "stripe_webhook_secret": simulator.config.stripe_webhook_secret},
        )
        cleanup.callback(install_router(deployment.router))
        cleanup.callback(sfn_redrive.install())  # RedriveExecution, as the local stack has it
        cleanup.callback(sfn_stop.install())  # StopExecution is final
        cleanup.callback(sfn_reuse.install())  # executions share the parsed definition and Lambda client
        cleanup.callback(s3_events.install())  # S3 notifications name the object's version
        cleanup.callback(faults.install(simulator.sim.app))  # the local fault switch
        cleanup.callback(_stop_running_executions, deployment)
        if wait_scale is not None:
            cleanup.enter_context(scaled_waits(wait_scale))
        yield App(deployment, simulator)


@pytest.fixture
def app(simulator):
    yield from _deployed_app(simulator, WAIT_SCALE)


@pytest.fixture
def app_real_waits(simulator):
    yield from _deployed_app(simulator, None)


@pytest.fixture
def operator_view():
    """The functions' log lines (JSON, as CloudWatch gets them) and the names of the metrics they add."""
    import logging

    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    from aigc.core.observability import logger

    lines, emitted = [], []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(logger.registered_formatter.format(record)))

    handler = Collect()
    logger.addHandler(handler)
    # Each emulated environment (thread) has its own metrics provider: watch the class they share.
    add_metric = AmazonCloudWatchEMFProvider.add_metric

    def record(self, *args, **kwargs):
        emitted.append(kwargs["name"] if "name" in kwargs else args[0])
        return add_metric(self, *args, **kwargs)

    AmazonCloudWatchEMFProvider.add_metric = record
    try:
        yield lines, emitted
    finally:
        AmazonCloudWatchEMFProvider.add_metric = add_metric
        logger._logger.removeHandler(handler)
