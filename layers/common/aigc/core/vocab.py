"""The named vocabularies: every status, outcome and event name the system writes, as StrEnums.

Members are str, so they compare equal to (and serialise as) their values in DynamoDB items, JSON
answers and the state machine's input; the names say which vocabulary a value belongs to, so the
task's `failed` and the workflow's `FAILED` can no longer be confused.
"""
from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """A task as the API shows it. Seed 001 also names `created`; here the debit and the task record are
    one transaction and the workflow is started before the submit answers, so a task is `queued` from
    its first moment (one that cannot be started is refunded at once)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (TaskStatus.QUEUED, TaskStatus.PROCESSING)


class JobStatus(StrEnum):
    """A job at the provider (DashScope's task_status; the OpenAI adapter maps onto these)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"


class Outcome(StrEnum):
    """What a workflow step answers in `job.status`; the state machine's Choice states branch on these
    (tests/template checks that they use exactly this set)."""

    QUEUED = "QUEUED"  # the pool is full: wait for a slot
    ADMITTED = "ADMITTED"  # a slot was handed to the waiting execution (the token's answer)
    QUEUE_TIMEOUT = "QUEUE_TIMEOUT"  # waited past the queue's limit (refund)
    RUNNING = "RUNNING"  # wait job.waitSeconds, then poll
    POLLING = "POLLING"  # poll again at once
    SUCCEEDED = "SUCCEEDED"  # store the outputs
    FAILED = "FAILED"  # the provider failed it (refund)
    TIMED_OUT = "TIMED_OUT"  # past its deadline (refund)
    COMPLETED = "COMPLETED"  # done
    REFUNDED = "REFUNDED"  # done, refunded
    SETTLED = "SETTLED"  # someone else settled the task first: done, nothing to do


class WebhookEvent(StrEnum):
    START = "start"
    COMPLETED = "completed"


class LedgerKind(StrEnum):
    """A ledger entry's kind (the records list shows it lower-cased). Amounts are signed: DEBIT, EXPIRE and
    CLAWBACK take points, the others give them."""

    DEBIT = "DEBIT"
    REFUND = "REFUND"
    GRANT = "GRANT"
    PURCHASE = "PURCHASE"  # a paid order's points (aigc.domain.orders)
    EXPIRE = "EXPIRE"  # what was left of a lot when it expired, or a refund's part of a lot that had expired
    CLAWBACK = "CLAWBACK"  # the unspent points of an order the buyer was refunded or disputed


class LotCategory(StrEnum):
    """Promotional lots are spent before paid ones (aigc.domain.lots)."""

    PROMOTIONAL = "promotional"
    PAID = "paid"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class PushEvent(StrEnum):
    """What the WebSocket push sends (aigc.domain.push): a message's `type`."""

    TASK_UPDATED = "task.updated"
    POINTS_CHANGED = "points.changed"
