"""Webhooks (Standard Webhooks, standardwebhooks.com): signing secrets, events, signed deliveries.

How an event travels (README, "Webhooks"):
1. Every status change is a write on the task's item. The TasksTable stream carries that write,
   recorded by DynamoDB atomically with it: it is the outbox. Nothing in the task or ledger code
   path sends anything, so a failing emission can neither break nor roll back a status change.
2. WebhookFunction reads the stream (`enqueue_changes`): a change that starts a task (`start`) or
   settles it (`completed`: completed, failed, cancelled, refunded by anyone) becomes one message
   on WebhookQueue, with the task as it was written and a webhook id derived from (task, event),
   so a repeated stream record or a retry always carries the same id.
3. WebhookFunction reads the queue (`deliver_message`): it renders the task exactly as
   GET /user/ai/tasks/{taskNo} does, signs it with the user's secret and POSTs it through
   aigc.outbound (public addresses only, short timeouts, no redirects). A failed attempt is sent
   back to the queue with a delay (Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h,
   10 h, ...) until 24 h after the first attempt; then the message goes to WebhookDeadLetterQueue,
   where an operator can read it and send it back to WebhookQueue (a fresh 24 h of retries).
"""
from __future__ import annotations

import base64
import json
import math
import secrets
import time
from datetime import datetime, timezone
from functools import lru_cache

from pynamodb.exceptions import DoesNotExist, PutError

from aigc.config import get_settings
from aigc.db import TaskItem, WebhookSecretItem
from aigc.observability import count, logger
from aigc.timeutil import utcnow

START, COMPLETED = "start", "completed"
EVENTS = (START, COMPLETED)
SECRET_PREFIX = "whsec_"
# Delays after the 1st, 2nd, ... failed attempt (Standard Webhooks' recommended schedule), cut at MAX_AGE.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_AGE_SECONDS = 24 * 3600
MAX_SQS_DELAY = 900  # SQS DelaySeconds limit; longer waits hop through the queue
CONNECT_TIMEOUT, READ_TIMEOUT = 3.0, 10.0
REFUSED = "refused"


# --- the subscription a task carries -------------------------------------------------------------

def subscription(url: str | None, events: list[str] | None) -> tuple[str | None, list[str] | None]:
    """Validate submit's `webhook` and `webhookEventsFilter`: (url, events) to store on the task."""
    from urllib.parse import urlsplit

    from aigc.errors import BadRequest

    if url is None:
        if events is not None:
            raise BadRequest("webhookEventsFilter: only with a webhook")
        return None, None
    allow_private = get_settings().allow_private_hosts
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise BadRequest("webhook: must be an https URL")
    problem = _unsafe(url, allow_private)
    if problem:
        raise BadRequest(f"webhook: {problem}")
    return url, sorted(set(events), key=EVENTS.index) if events else list(EVENTS)


def _unsafe(url: str, allow_private: bool) -> str | None:
    from aigc.netcheck import UnsafeUrl, check_public_url

    try:
        check_public_url(url, allow_private_hosts=allow_private)
    except UnsafeUrl as problem:
        return str(problem)
    return None  # a public name: the address is checked again when we connect (aigc.outbound)


# --- signing secrets (WebhookSecretsTable, one item per user) -------------------------------------

def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def get_secret(user_id: str) -> str:
    """The user's signing secret, created on first use (two first reads at once agree on one)."""
    try:
        return WebhookSecretItem.get(user_id, consistent_read=True).secret
    except DoesNotExist:
        pass
    item = WebhookSecretItem(user_id, secret=_new_secret(), updated_at=utcnow())
    try:
        item.save(condition=WebhookSecretItem.user_id.does_not_exist())
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        return WebhookSecretItem.get(user_id, consistent_read=True).secret
    return item.secret


def rotate_secret(user_id: str) -> str:
    """Replace the secret; deliveries signed from now on (retries included) use the new one."""
    item = WebhookSecretItem(user_id, secret=_new_secret(), updated_at=utcnow())
    item.save()
    logger.info("webhook secret rotated")
    return item.secret


def sign(secret: str, webhook_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, by the reference implementation."""
    from standardwebhooks import Webhook

    return Webhook(secret).sign(webhook_id, timestamp, body)


# --- events from task changes (the TasksTable stream) ---------------------------------------------

def _settled(task: TaskItem | None) -> bool:
    from aigc.tasks import is_settled

    return task is not None and is_settled(task)


def events_of_change(old: TaskItem | None, new: TaskItem) -> list[str]:
    """The webhook events one write of a task produces, honouring its events filter."""
    if not new.webhook_url:
        return []
    wanted = set(new.webhook_events or EVENTS)
    found = []
    if START in wanted and new.started_at is not None and (old is None or old.started_at is None):
        found.append(START)
    if COMPLETED in wanted and _settled(new) and not _settled(old):
        found.append(COMPLETED)
    return found


def webhook_id(task_no: str, event: str) -> str:
    return f"msg_{task_no}_{event}"


@lru_cache(maxsize=1)
def _sqs():
    import boto3

    return boto3.client("sqs")


def _send(queue_url: str, message: dict, delay: float = 0) -> None:
    _sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(message),
                        DelaySeconds=max(0, min(MAX_SQS_DELAY, math.ceil(delay))))


def enqueue_change(record: dict) -> list[str]:
    """One stream record -> its events on WebhookQueue. Raises when the queue cannot take them
    (the stream then retries the record, and dead-letters it after 24 h)."""
    images = record.get("dynamodb") or {}
    if "NewImage" not in images:
        return []
    new = TaskItem.from_raw_data(images["NewImage"])
    old = TaskItem.from_raw_data(images["OldImage"]) if images.get("OldImage") else None
    events = events_of_change(old, new)
    for event in events:
        _send(get_settings().webhook_queue_url, {
            "webhookId": webhook_id(new.task_no, event), "event": event, "taskNo": new.task_no,
            "task": images["NewImage"],
        })
        logger.info("webhook event queued", extra={"task_no": new.task_no, "event": event})
    return events


# --- deliveries (WebhookQueue) ---------------------------------------------------------------------

def render(event: str, task: TaskItem) -> str:
    """The body: the task exactly as GET /user/ai/tasks/{taskNo} shows it, plus the event name."""
    from aigc.views import task_view

    data = task_view(task, queue=False).model_dump(mode="json", by_alias=True)
    return json.dumps({"event": event, "data": data}, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=2)
def _session(allow_private: bool):
    from aigc import outbound

    return outbound.session(allow_private=allow_private)


def attempt(message: dict) -> str | None:
    """POST once. None when the receiver answered 2xx, else why not (never raises for the receiver)."""
    import requests

    from aigc import outbound

    task = TaskItem.from_raw_data(message["task"])
    body = render(message["event"], task)
    now = datetime.now(timezone.utc)
    headers = {
        "content-type": "application/json",
        "user-agent": "aigc-webhooks/1",
        "webhook-id": message["webhookId"],
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(get_secret(task.user_id), message["webhookId"], now, body),
    }
    session = _session(get_settings().allow_private_hosts)
    try:
        response = session.post(task.webhook_url, data=body.encode(), headers=headers, stream=True,
                                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False)
        response.close()  # the answer's body is never read
    except outbound.BlockedAddress as error:
        return f"{REFUSED}: {error}"
    except requests.RequestException as error:
        return f"{type(error).__name__}"
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def next_delay(attempts: int, first_attempt_at: float, now: float) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, or None: give up (dead-letter)."""
    left = first_attempt_at + MAX_AGE_SECONDS - now
    if attempts > len(RETRY_DELAYS) or left <= 0:
        return None
    return min(RETRY_DELAYS[attempts - 1], left)


def deliver_message(message: dict, now: float | None = None) -> str:
    """Handle one WebhookQueue message: wait more, deliver, schedule a retry, or dead-letter."""
    settings = get_settings()
    now = time.time() if now is None else now
    logger.append_keys(task_no=message.get("taskNo"), webhook_id=message.get("webhookId"))
    not_before = message.get("notBefore") or 0
    if not_before > now + 1:  # longer than SQS can delay one message: hop again
        _send(settings.webhook_queue_url, message, not_before - now)
        return "waiting"
    first = message.get("firstAttemptAt") or now
    attempts = int(message.get("attempts") or 0) + 1
    failure = attempt(message)
    if failure is None:
        count("WebhooksDelivered")
        logger.info("webhook delivered", extra={"event": message["event"], "attempts": attempts})
        return "delivered"
    # A refused (non-public) address will not become public by waiting: dead-letter at once.
    delay = None if failure.startswith(REFUSED) else next_delay(attempts, first, now)
    if delay is None:
        dead = {key: value for key, value in message.items() if key not in ("attempts", "firstAttemptAt", "notBefore")}
        dead.update(lastError=failure, failedAttempts=attempts, deadLetteredAt=int(now))
        _send(settings.webhook_dead_letter_queue_url, dead)
        count("WebhooksDeadLettered")
        logger.warning("webhook dead-lettered", extra={"error": failure, "attempts": attempts})
        return "dead-lettered"
    _send(settings.webhook_queue_url,
          {**message, "attempts": attempts, "firstAttemptAt": first, "notBefore": now + delay, "lastError": failure},
          delay)
    count("WebhookRetries")
    logger.info("webhook attempt failed; retrying", extra={"error": failure, "attempts": attempts, "delay": delay})
    return "retrying"


def _stream_record(record) -> list[str]:
    return enqueue_change(record.raw_event)


def replay_stream_batch(info: dict) -> int:
    """The stream mapping's on-failure record (a batch it could not queue), sent back to WebhookQueue
    by an operator: read that range of the stream again (it keeps records 24 h) and queue its events."""
    import boto3
    from botocore.config import Config

    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"], ShardId=info["shardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    end, queued = int(info["endSequenceNumber"]), 0
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=100)
        for record in page["Records"]:
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return queued
            queued += len(enqueue_change(record))
        if not page["Records"]:
            return queued
        iterator = page.get("NextShardIterator")
    return queued


def _queue_record(record) -> str:
    message = json.loads(record.body)
    if "DDBStreamBatchInfo" in message:
        return f"replayed {replay_stream_batch(message['DDBStreamBatchInfo'])} events"
    return deliver_message(message)


def handle_event(event: dict, context) -> dict:
    """WebhookFunction: stream records (enqueue) or queue messages (deliver), with partial failures."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    records = event.get("Records") or []
    from_stream = bool(records) and records[0].get("eventSource") == "aws:dynamodb"
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams if from_stream else EventType.SQS)
    return process_partial_response(event=event, record_handler=_stream_record if from_stream else _queue_record,
                                    processor=processor, context=context)
