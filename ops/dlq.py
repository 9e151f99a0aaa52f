"""Inspect and replay the stack's dead-letter queues (docs/runbook.md).

    python -m ops.dlq --stack aigc-prod list              # every DLQ, its depth and what it replays to
    python -m ops.dlq --stack aigc-prod show upload       # peek at messages (nothing is removed)
    python -m ops.dlq --stack aigc-prod replay upload     # re-invoke the function, delete what it accepted
    python -m ops.dlq --local list                        # the local stack (make dev): its dummy credentials,
                                                          # endpoint $AWS_ENDPOINT_URL or 127.0.0.1:8091

What each queue holds and where it replays to comes from template.yaml:
- a function's `DeadLetterQueue` holds the events Lambda could not process after its retries (the
  message body is the event), and an event rule's `DeadLetterConfig` the events EventBridge could
  not deliver to its target function: replay invokes that function's published alias
  asynchronously with the event, as S3 or EventBridge would have (if it fails again, Lambda puts
  it back in the queue);
- a queue named by another queue's `RedrivePolicy` (webhook deliveries) holds that queue's
  messages: replay sends them back to it. Stream batch records (the stream mapping's `OnFailure`,
  which only describe a batch) go back the same way: WebhookFunction reads that range of the
  stream again (it keeps 24 h) and queues its events.
The handlers are idempotent (a replayed upload or execution-ended event settles a task at most
once), so replaying twice is safe.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from local import cfn
from local.devserver import DEFAULT_MOTO_PORT, HOST, LOCAL_CREDENTIALS

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
PEEK_VISIBILITY_SECONDS = 0
REPLAY_VISIBILITY_SECONDS = 60
LOCAL_ENDPOINT = f"http://{HOST}:{DEFAULT_MOTO_PORT}"
_CLIENT_SETTINGS: dict = {}  # how every client of a run is made (run() sets it: --local, --endpoint-url)


def _client(service: str):
    return boto3.client(service, **_CLIENT_SETTINGS)


def _configure(args: argparse.Namespace) -> None:
    """--local: the local stack's dummy credentials (whatever the environment holds) and its region."""
    settings: dict = {}
    if args.endpoint_url:
        settings["endpoint_url"] = args.endpoint_url
    if args.local:
        settings.update(LOCAL_CREDENTIALS, region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    _CLIENT_SETTINGS.clear()
    _CLIENT_SETTINGS.update(settings)


@dataclass(frozen=True)
class DeadLetterQueue:
    logical_id: str
    url: str
    target_logical_id: str  # the function whose events it holds, or the queue it drains
    target: str  # function name or queue URL
    qualifier: str | None  # the AutoPublishAlias the events were sent to
    source: str  # "lambda" (async invoke failures), "events" (undeliverable rule events), "queue" (redrive)

    @property
    def short_name(self) -> str:
        return self.logical_id.removesuffix("DeadLetterQueue").lower()


def _getatt_target(value) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return None


def replay_targets(template: dict) -> dict[str, tuple[str, str]]:
    """Queue logical id -> (function or queue logical id, "lambda" | "events" | "queue"), from the template."""
    targets: dict[str, tuple[str, str]] = {}
    resources = template["Resources"]
    for logical, queue in cfn.resources_of_type(template, "AWS::SQS::Queue").items():
        redrive = (queue.get("Properties") or {}).get("RedrivePolicy") or {}
        dead_letter = _getatt_target(redrive.get("deadLetterTargetArn"))
        if dead_letter:
            targets[dead_letter] = (logical, "queue")
    for logical, spec in cfn.functions(template).items():
        dlq = resources[logical]["Properties"].get("DeadLetterQueue") or {}
        queue = _getatt_target(dlq.get("TargetArn"))
        if queue:
            targets[queue] = (logical, "lambda")
        for event in spec["events"].values():
            queue = _getatt_target(((event.get("Properties") or {}).get("DeadLetterConfig") or {}).get("Arn"))
            if queue:
                previous = targets.setdefault(queue, (logical, "events"))
                if previous[0] != logical:
                    raise ValueError(f"{queue} holds events of {previous[0]} and {logical}: replay would be ambiguous")
    return targets


def _stack_physical_ids(stack: str) -> dict[str, str]:
    paginator = _client("cloudformation").get_paginator("list_stack_resources")
    return {r["LogicalResourceId"]: r["PhysicalResourceId"]
            for page in paginator.paginate(StackName=stack) for r in page["StackResourceSummaries"]}


def _local_physical_ids(template: dict, prefix: str) -> dict[str, str]:
    from local.stack import _physical

    names, _ = _physical(template, prefix)
    sqs = _client("sqs")
    out = dict(names)
    for logical in cfn.resources_of_type(template, "AWS::SQS::Queue"):
        out[logical] = sqs.get_queue_url(QueueName=names[logical])["QueueUrl"]
    return out


def dead_letter_queues(template: dict, physical_ids: dict[str, str]) -> list[DeadLetterQueue]:
    specs = cfn.functions(template)
    queues = []
    for queue, (target, source) in sorted(replay_targets(template).items()):
        alias = specs[target]["alias"] if target in specs else None
        queues.append(DeadLetterQueue(queue, physical_ids[queue], target, physical_ids[target], alias, source))
    return queues


def _find(queues: list[DeadLetterQueue], name: str) -> DeadLetterQueue:
    for queue in queues:
        if name in (queue.logical_id, queue.short_name):
            return queue
    raise SystemExit(f"no dead-letter queue {name!r}; known: {', '.join(q.short_name for q in queues)}")


def depth(queue: DeadLetterQueue) -> dict[str, int]:
    attrs = _client("sqs").get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {"visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"])}


def _receive(queue: DeadLetterQueue, visibility: int, limit: int) -> list[dict]:
    return _client("sqs").receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=max(1, min(10, limit)), VisibilityTimeout=visibility,
        WaitTimeSeconds=0, MessageAttributeNames=["All"], AttributeNames=["All"],
    ).get("Messages", [])


def _describe(message: dict) -> dict:
    attributes = {k: v.get("StringValue") for k, v in (message.get("MessageAttributes") or {}).items()}
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = message["Body"]
    return {"messageId": message["MessageId"], "receiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount"),
            "sentAt": message.get("Attributes", {}).get("SentTimestamp"), "error": attributes, "event": body}


def peek(queue: DeadLetterQueue, limit: int = 10) -> list[dict]:
    """Up to `limit` messages, left in the queue (received with a zero visibility timeout)."""
    seen: dict[str, dict] = {}
    for _ in range(max(3, limit)):  # SQS samples servers: a few receives find most messages
        batch = [m for m in _receive(queue, PEEK_VISIBILITY_SECONDS, limit) if m["MessageId"] not in seen]
        if not batch and seen:
            break
        for message in batch:
            seen[message["MessageId"]] = _describe(message)
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


def replay(queue: DeadLetterQueue, limit: int = 100, dry_run: bool = False) -> dict[str, list[str]]:
    """Re-invoke the function with each message's event; delete the messages Lambda accepted."""
    if dry_run:
        return {"would_replay": [m["messageId"] for m in peek(queue, limit)], "replayed": [], "failed": []}
    sqs = _client("sqs")
    replayed: list[str] = []
    failed: dict[str, str] = {}  # message id -> its latest receipt handle
    seen: set[str] = set()
    while len(seen) < limit:
        received = _receive(queue, REPLAY_VISIBILITY_SECONDS, limit - len(seen))
        failed.update({m["MessageId"]: m["ReceiptHandle"] for m in received if m["MessageId"] in failed})
        batch = [m for m in received if m["MessageId"] not in seen]
        if not batch:
            break
        for message in batch:
            seen.add(message["MessageId"])
            try:
                accepted = _send_back(queue, message["Body"])
            except Exception as error:  # leave it in the queue
                print(f"{message['MessageId']}: not replayed: {error}", file=sys.stderr)
                accepted = False
            if accepted:
                sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
                replayed.append(message["MessageId"])
            else:
                failed[message["MessageId"]] = message["ReceiptHandle"]
    for handle in failed.values():  # back in view at once for `show`
        sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=handle, VisibilityTimeout=0)
    return {"replayed": replayed, "failed": list(failed)}


def _send_back(queue: DeadLetterQueue, body: str) -> bool:
    """Hand one message's event back to where it failed; False when it cannot be replayed."""
    if queue.source == "queue":
        _client("sqs").send_message(QueueUrl=queue.target, MessageBody=body)
        return True
    kwargs = {"Qualifier": queue.qualifier} if queue.qualifier else {}
    response = _client("lambda").invoke(FunctionName=queue.target, InvocationType="Event",
                                             Payload=body.encode(), **kwargs)
    return response["StatusCode"] == 202


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="CloudFormation stack name (e.g. aigc-dev, aigc-prod)")
    where.add_argument("--local", action="store_true",
                       help="the local stack (make dev), with its dummy credentials; endpoint: --endpoint-url, "
                            f"$AWS_ENDPOINT_URL or {LOCAL_ENDPOINT}")
    parser.add_argument("--endpoint-url", default=None, help="the AWS endpoint (default: $AWS_ENDPOINT_URL, or "
                        f"{LOCAL_ENDPOINT} with --local)")
    parser.add_argument("--prefix", default="aigc-local", help="the local stack's resource name prefix")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every dead-letter queue, its depth and replay target")
    show = commands.add_parser("show", help="print messages without removing them")
    show.add_argument("queue", help="short name (upload, reconcile, events) or logical id")
    show.add_argument("--max", type=int, default=10)
    again = commands.add_parser("replay", help="re-invoke the function with each message, then delete it")
    again.add_argument("queue")
    again.add_argument("--max", type=int, default=100)
    again.add_argument("--dry-run", action="store_true", help="list what would be replayed, change nothing")
    return parser


def run(argv: list[str] | None = None) -> tuple[int, object]:
    """(exit code, result) of a command line: 1 when some message could not be replayed."""
    args = _parser().parse_args(argv)
    _configure(args)
    template = cfn.load_template(TEMPLATE)
    physical = _local_physical_ids(template, args.prefix) if args.local else _stack_physical_ids(args.stack)
    queues = dead_letter_queues(template, physical)
    if args.command == "list":
        result = [{"queue": q.short_name, "logicalId": q.logical_id, "holds": q.source, "replaysTo":
                   f"{q.target}:{q.qualifier}" if q.qualifier else q.target, **depth(q)}
                  for q in queues]
    elif args.command == "show":
        result = peek(_find(queues, args.queue), args.max)
    else:
        result = replay(_find(queues, args.queue), args.max, args.dry_run)
    return (1 if isinstance(result, dict) and result.get("failed") else 0), result


def main(argv: list[str] | None = None) -> int:
    """The command line: JSON on stdout; a failure to reach AWS is one line on stderr and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--local" in argv and not any(a.startswith("--endpoint-url") for a in argv) \
            and not os.environ.get("AWS_ENDPOINT_URL"):
        argv = ["--endpoint-url", LOCAL_ENDPOINT, *argv]  # make dev's default moto port
    try:
        code, result = run(argv)
    except NoCredentialsError:
        print("error: no AWS credentials: configure a profile (AWS_PROFILE) or set AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY; for the local stack use --local", file=sys.stderr)
        return 2
    except EndpointConnectionError as error:
        hint = "; is the local stack running (make dev)?" if "--local" in argv else ""
        print(f"error: cannot reach the AWS endpoint {error.kwargs.get('endpoint_url', '')}{hint}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
