"""Webhook deliveries: task changes from the TasksTable stream become WebhookQueue messages, and
each message is rendered, signed and POSTed, retried on Standard Webhooks' schedule or dead-lettered.
The rules (events, secrets, signing, schedule) are aigc.domain.webhooks; the outbox story is told in
docs/ARCHITECTURE.md ("Webhook delivery")."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from functools import lru_cache

import requests
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from aigc.api.views import pushed_language, task_view
from aigc.core.config import get_settings
from aigc.core.observability import count, logger
from aigc.domain.webhooks import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    REFUSED,
    events_of_change,
    get_secret,
    next_delay,
    sign,
    webhook_id,
)
from aigc.store import outbound, streams
from aigc.store.db import TaskItem
from aigc.store.queues import send as _send


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
    """The body: the task exactly as GET /user/ai/tasks/{taskNo} shows it, plus the event name; its
    messages in the language the task was submitted in (`pushed_language`)."""
    data = task_view(task, queue=False, language=pushed_language(task)).model_dump(mode="json", by_alias=True)
    return json.dumps({"event": event, "data": data}, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=2)
def _session(allow_private: bool):
    return outbound.session(allow_private=allow_private)


def attempt(message: dict) -> str | None:
    """POST once. None when the receiver answered 2xx, else why not (never raises for the receiver)."""
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
    return sum(len(enqueue_change(record)) for record in streams.read_range(
        info["streamArn"], info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]))


def _queue_record(record) -> str:
    message = json.loads(record.body)
    if "DDBStreamBatchInfo" in message:
        return f"replayed {replay_stream_batch(message['DDBStreamBatchInfo'])} events"
    return deliver_message(message)


def handle_event(event: dict, context) -> dict:
    """WebhookFunction: stream records (enqueue) or queue messages (deliver), with partial failures."""
    records = event.get("Records") or []
    from_stream = bool(records) and records[0].get("eventSource") == "aws:dynamodb"
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams if from_stream else EventType.SQS)
    return process_partial_response(event=event, record_handler=_stream_record if from_stream else _queue_record,
                                    processor=processor, context=context)
