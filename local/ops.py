"""`python -m local.ops`: the operator's redrive path from a terminal (in AWS: the Step Functions console).

    python -m local.ops held                     tasks held for a redrive (failed by our own error)
    python -m local.ops redrive TASK-... [--wait] redrive the tasks' executions (RedriveExecution)
    python -m local.ops redrive --all-held [--wait]
    python -m local.ops fault on [--preset results-storage] [--key-prefix results/alice/]
    python -m local.ops fault list | fault off   the local fault switch (/_local/faults, simulator port)

It talks only the AWS API (DynamoDB, Step Functions) and the fault switch's HTTP endpoint, so
`--endpoint-url` (default: $AWS_ENDPOINT_URL or the local stack's 127.0.0.1:8091) picks the stack. The
tasks table and state machine are found by their template names (`...-TasksTable`,
`...-TaskStateMachine`) unless given.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import boto3
import requests
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError, EndpointConnectionError

from aigc.domain.tasks import ATTENTION_SHARDS  # the sweep's index is spread over this many partitions

LOCAL_ENDPOINT = "http://127.0.0.1:8091"
LOCAL_SIMULATOR = "http://127.0.0.1:8090"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class OpsError(Exception):
    """A clear one-line reason the command cannot do what was asked."""


class Ops:
    def __init__(self, endpoint_url: str, table: str | None = None, state_machine_arn: str | None = None):
        if endpoint_url.startswith(("http://127.0.0.1", "http://localhost")):
            for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                                ("AWS_DEFAULT_REGION", "us-east-1")):
                os.environ.setdefault(name, value)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url)
        self.sfn = boto3.client("stepfunctions", endpoint_url=endpoint_url)
        self.table = table or self._one(self.dynamodb.list_tables()["TableNames"], "-TasksTable", "--table")
        if state_machine_arn is None:
            machines = {m["name"]: m["stateMachineArn"] for m in self.sfn.list_state_machines()["stateMachines"]}
            state_machine_arn = machines[self._one(list(machines), "-TaskStateMachine", "--state-machine-arn")]
        self.state_machine_arn = state_machine_arn

    @staticmethod
    def _one(names: list[str], suffix: str, flag: str) -> str:
        found = [n for n in names if n.endswith(suffix)]
        if len(found) != 1:
            raise OpsError(f"expected one *{suffix} at the endpoint, found {found or 'none'}; give {flag}")
        return found[0]

    def execution_arn(self, task_no: str) -> str:
        """The task's execution is named after it (`execution_name` on the task record)."""
        name = self.task(task_no).get("execution_name") or task_no
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def held(self) -> list[dict]:
        """Unsettled tasks whose execution failed on our side and whose points are held: the Attention index's
        shards (keys only) give the unsettled tasks, each then read from the table."""
        tasks = []
        for shard in range(ATTENTION_SHARDS):
            kwargs = {}
            while True:
                page = self.dynamodb.query(
                    TableName=self.table, IndexName="Attention", KeyConditionExpression="unsettled = :shard",
                    ExpressionAttributeValues={":shard": {"S": str(shard)}}, **kwargs)
                for key in page["Items"]:
                    task = self.task(key["task_no"]["S"])
                    if task.get("hold_until") and task.get("unsettled"):
                        tasks.append(task)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(tasks, key=lambda t: t["hold_until"])

    def describe(self, task_no: str) -> dict:
        return self.sfn.describe_execution(executionArn=self.execution_arn(task_no))

    def redrive(self, task_no: str) -> dict:
        self.sfn.redrive_execution(executionArn=self.execution_arn(task_no))
        return self.describe(task_no)

    def wait(self, task_no: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            described = self.describe(task_no)
            if described["status"] in ENDED or time.monotonic() > deadline:
                return described
            time.sleep(0.5)

    def task(self, task_no: str) -> dict:
        item = self.dynamodb.get_item(TableName=self.table, Key={"task_no": {"S": task_no}}, ConsistentRead=True)
        return {k: TypeDeserializer().deserialize(v) for k, v in (item.get("Item") or {}).items()}


def _when(value) -> str:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)[:19] + "Z" if value else "-"


def _print_held(ops: Ops) -> int:
    tasks = ops.held()
    if not tasks:
        print("no held tasks")
        return 0
    print(f"{'TASK':<40} {'USER':<12} {'POINTS':>6}  {'HELD UNTIL':<20}  {'EXECUTION':<22}  REASON")
    for task in tasks:
        described = ops.describe(task["task_no"])
        execution = f"{described['status']} redriven {described.get('redriveCount', 0)}x"
        reason = (task.get("error_message") or "").split("(", 1)[-1].split(")", 1)[0]
        print(f"{task['task_no']:<40} {task['user_id']:<12} {int(task['points_cost']):>6}  "
              f"{_when(task['hold_until']):<20}  {execution:<22}  {reason}")
    return 0


def _redrive(ops: Ops, task_nos: list[str], wait: bool, timeout: float) -> int:
    code = 0
    for task_no in task_nos:
        try:
            described = ops.redrive(task_no)
        except ClientError as error:
            print(f"{task_no}  not redriven: {error.response['Error']['Code']}: {error.response['Error']['Message']}")
            code = 1
            continue
        print(f"{task_no}  redriven at {_when(described['redriveDate'])} (redriveCount {described['redriveCount']}), "
              f"execution {described['status']}")
    if wait:
        for task_no in task_nos:
            described = ops.wait(task_no, timeout)
            task = ops.task(task_no)
            outcome = task.get("status", "?") + (" (refunded)" if task.get("refunded") else "")
            print(f"{task_no}  execution {described['status']}, task {outcome}")
            code = code or (0 if described["status"] == "SUCCEEDED" else 1)
    return code


def _fault(sim_url: str, action: str, args) -> int:
    url = f"{sim_url.rstrip('/')}/_local/faults"
    if action == "on":
        spec = {"preset": args.preset}
        if args.key_prefix:
            spec["key_prefix"] = args.key_prefix
        response = requests.post(url, json=spec, timeout=10)
    elif action == "off":
        response = requests.delete(url, timeout=10)
    else:
        response = requests.get(url, timeout=10)
    body = response.json()
    if response.status_code >= 400:
        raise OpsError(body.get("error", response.text))
    if action == "on":
        fault = body["fault"]
        print(f"{fault['id']} on: {fault['service']} {','.join(fault['operations'])}"
              f"{' under ' + fault['key_prefix'] if fault.get('key_prefix') else ''} answer {fault['status']} "
              f"{fault['code']} until cleared")
    elif action == "off":
        print(f"cleared {body['cleared']} fault(s)")
    else:
        print(json.dumps(body["faults"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL", LOCAL_ENDPOINT))
    parser.add_argument("--sim-url", default=LOCAL_SIMULATOR, help="the simulator (fault switch) base URL")
    parser.add_argument("--table", help="the tasks table (default: the one named *-TasksTable)")
    parser.add_argument("--state-machine-arn", help="default: the one named *-TaskStateMachine")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("held", help="list tasks held for a redrive")
    redrive = commands.add_parser("redrive", help="redrive the executions of these tasks")
    redrive.add_argument("task_nos", nargs="*", metavar="TASK")
    redrive.add_argument("--all-held", action="store_true", help="every held task")
    redrive.add_argument("--wait", action="store_true", help="wait for the outcome and print it")
    redrive.add_argument("--timeout", type=float, default=120)
    fault = commands.add_parser("fault", help="the local fault switch")
    fault.add_argument("action", choices=["on", "off", "list"])
    fault.add_argument("--preset", default="results-storage")
    fault.add_argument("--key-prefix", help="only S3 keys under this prefix (e.g. results/alice/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fault":
            return _fault(args.sim_url, args.action, args)
        ops = Ops(args.endpoint_url, args.table, args.state_machine_arn)
        if args.command == "held":
            return _print_held(ops)
        task_nos = list(args.task_nos) + ([t["task_no"] for t in ops.held()] if args.all_held else [])
        if not task_nos:
            print("nothing to redrive (name tasks or use --all-held)")
            return 0
        return _redrive(ops, task_nos, args.wait, args.timeout)
    except (OpsError, requests.RequestException, EndpointConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
