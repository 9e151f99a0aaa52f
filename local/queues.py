"""SQS queues and the Lambda event source mappings moto does not drive, read from the template.

- `create_queues`: every `AWS::SQS::Queue` (dead-letter targets first, so a RedrivePolicy can
  name them); `Ref` is the queue URL and `Arn` its ARN, as CloudFormation gives them.
- `EventSourceMappings`: functions' `Type: SQS` and `Type: DynamoDB` (stream) events. moto would
  invoke an SQS-mapped function inside SendMessage itself (the sender would wait for the
  delivery) and has no stream poller, so background threads poll like Lambda does: receive a
  batch, invoke the function, delete what succeeded (`batchItemFailures` are kept and come back
  after their visibility timeout); stream records are delivered in order, a failed batch again.
  The stream is read from moto's backend in this process (`Table.stream_shard`; a test in
  tests/workflow/test_moto_seams.py fails if moto moves it).
"""
from __future__ import annotations

import copy
import json
import logging
import threading

import boto3
from moto.dynamodb.models import dynamodb_backends

from local import cfn, moto_dynamodb

log = logging.getLogger("local.queues")


def create_queues(template: dict, resolver: cfn.Resolver, names: dict, physical: dict, region: str,
                  account: str) -> None:
    sqs = boto3.client("sqs", region_name=region)
    queues = cfn.resources_of_type(template, "AWS::SQS::Queue")
    for logical in sorted(queues, key=lambda q: "RedrivePolicy" in (queues[q].get("Properties") or {})):
        props = resolver.resolve(queues[logical].get("Properties") or {})
        attributes = {key: str(props[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                                                       "ReceiveMessageWaitTimeSeconds") if key in props}
        if props.get("RedrivePolicy"):
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = sqs.create_queue(QueueName=names[logical], Attributes=attributes)["QueueUrl"]
        physical[logical].update(Ref=url, Arn=f"arn:aws:sqs:{region}:{account}:{names[logical]}",
                                 QueueName=names[logical])
        resolver.physical[logical] = physical[logical]


def _get_att_logical(value) -> str:
    """`!GetAtt Logical.Attr` as the template loader gives it -> Logical."""
    target = value["Fn::GetAtt"] if isinstance(value, dict) else value
    return (target if isinstance(target, list) else str(target).split("."))[0]


class EventSourceMappings:
    """Threads that feed SQS messages and DynamoDB stream records to the routed functions."""

    def __init__(self, deployment, *, poll_seconds: float = 0.2):
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: dict[tuple[str, str], dict] = {}
        self.sources: list = []
        for logical, spec in cfn.functions(deployment.template).items():
            if not deployment.resolver.resource_enabled(logical):
                continue
            function = deployment.name(logical)
            for event in spec["events"].values():
                props = event.get("Properties") or {}
                if event.get("Type") == "SQS":
                    queue = deployment.resolver.physical[_get_att_logical(props["Queue"])]
                    self.sources.append((self._pump_queue, (function, queue["Ref"], queue["Arn"],
                                                            int(props.get("BatchSize", 10)))))
                elif event.get("Type") == "DynamoDB":
                    table = deployment.name(_get_att_logical(props["Stream"]))
                    self.sources.append((self._pump_stream, (function, table, int(props.get("BatchSize", 100)))))

    def _invoke(self, function: str, records: list) -> set[str] | None:
        """Failed item ids (empty: all done), or None when the whole invocation failed."""
        payload, errored, _ = self.deployment.router.invoke(function, function, {"Records": records})
        if errored:
            return None
        result = json.loads(payload or "null") or {}
        return {f["itemIdentifier"] for f in (result.get("batchItemFailures") or [])}

    def _pump_queue(self, function: str, url: str, arn: str, batch: int) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.is_set():
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(batch, 10),
                                           AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                self._stop.wait(self.poll_seconds)
                continue
            records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": arn.split(":")[3]}
                       for m in messages]
            failed = self._invoke(function, records)
            for message in messages:
                if failed is not None and message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _pump_stream(self, function: str, table: str, batch: int) -> None:
        """In order, from the stream's start, read from moto's table in this process (its stream API
        would leave a shard iterator behind on every poll). A failed transaction's records are cut from
        the stream (local/moto_dynamodb.py), so a sequence number may be reused: records are
        recognised by (sequence number, event id), and the last few positions are read again."""
        account, region = (self.deployment.resolver.pseudo[k] for k in ("AWS::AccountId", "AWS::Region"))

        def current():  # looked up each pass: a table may be deleted and created again
            found = dynamodb_backends[account][region].get_table(table)
            return found, found.stream_shard

        found, shard = current()
        arn = f"{found.table_arn}/stream/{found.latest_stream_label}"
        # Per mapping: two functions reading one stream (webhooks, push) each see every record.
        state = self._streams.setdefault((function, table), {"position": shard.starting_sequence_number, "done": {}})
        done = state["done"]  # the state survives a restart of this pump
        while not self._stop.is_set():
            with moto_dynamodb.LOCK:  # moto's tables change only under this lock: read them under it too
                shard = current()[1]
                first = shard.starting_sequence_number  # moves up as old records are trimmed (local/retention.py)
                if state["position"] < first:
                    log.warning("stream of %s: records %d to %d were trimmed before they were read",
                                table, state["position"], first - 1)
                    state["position"] = first
                position = state["position"]
                records = shard.get(max(first, position - 20), batch + 20)
                fresh = [copy.deepcopy(r) for r in records
                         if done.get(int(r["dynamodb"]["SequenceNumber"])) != r["eventID"]][:batch]
            if not fresh:
                self._stop.wait(self.poll_seconds)
                continue
            for record in fresh:
                created = record["dynamodb"].get("ApproximateCreationDateTime")
                if created is not None:  # a datetime in moto, epoch seconds on the wire
                    record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
                record["eventSourceARN"] = arn
            failed = self._invoke(function, fresh)
            if failed is None:
                self._stop.wait(1.0)  # the whole batch again, as Lambda retries a stream batch
                continue
            for record in fresh:
                sequence = record["dynamodb"]["SequenceNumber"]
                if sequence in failed:
                    self._stop.wait(1.0)
                    break
                done[int(sequence)] = record["eventID"]
                state["position"] = position = max(position, int(sequence) + 1)
            for old in [s for s in done if s < position - 40]:
                del done[old]

    def _run(self, pump, args) -> None:
        while not self._stop.is_set():
            try:
                pump(*args)
            except Exception:  # keep the local stack alive; the next pass retries
                log.exception("local event source mapping failed")
                self._stop.wait(1.0)

    def start(self) -> "EventSourceMappings":
        for pump, args in self.sources:
            thread = threading.Thread(target=self._run, args=(pump, args), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
