"""PynamoDB models of the tables (the items each holds: docs/ARCHITECTURE.md, "Tables").

Table names come from the environment at cold start (template.yaml gives them). Domain rules use these
models' attributes to write their conditions; aigc.store.dynamo runs the writes.
"""
from __future__ import annotations

import os

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection, LocalSecondaryIndex
from pynamodb.models import Model

_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class _FromEnvironment:
    """A Meta.table_name read from the environment when first used, not when imported."""

    def __init__(self, variable: str):
        self.variable = variable

    def __get__(self, instance, owner) -> str:
        return os.environ[self.variable]


class LedgerByTime(LocalSecondaryIndex):
    class Meta:
        index_name = "LedgerByTime"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    ledger_time = UnicodeAttribute(range_key=True)


class PointsItem(Model):
    """One table, these kinds of item per user: BALANCE, TXN#<ref>#<KIND> (ledger), RATE#<minute>; and, with
    their own models below, LOT#<lotId> (LotItem) and ORDER#<orderNo> (OrderItem)."""

    class Meta:
        table_name = _FromEnvironment("POINTS_TABLE")
        region = _REGION

    user_id = UnicodeAttribute(hash_key=True)
    entry = UnicodeAttribute(range_key=True)
    balance = NumberAttribute(null=True)
    # list totals on the BALANCE item, changed only in the transactions that create what they count:
    # all tasks, tasks per task type (catalog.TaskType), ledger entries
    task_count = NumberAttribute(null=True)
    outpainting_count = NumberAttribute(null=True)
    text_to_image_count = NumberAttribute(null=True)
    image_to_image_count = NumberAttribute(null=True)
    ledger_count = NumberAttribute(null=True)
    order_count = NumberAttribute(null=True)  # the user's orders (aigc.domain.orders)
    # the lots that hold points, as spend keys "<rank>#<expiry>#<lotId>" (aigc.domain.lots): sorted, they are
    # the spending order; changed in the same transactions as the lots themselves
    active_lots = UnicodeSetAttribute(null=True)
    lotted = BooleanAttribute(null=True)  # every point of this balance is in a lot (points from before lots were adopted)
    # ledger entries
    ledger_time = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    amount = NumberAttribute(null=True)
    ref = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    lots = MapAttribute(null=True)  # {spend key: points} the entry took from or gave to each lot
    # rate-limit counters
    submits = NumberAttribute(null=True)  # not `count`: that would hide Model.count()
    expires_at = NumberAttribute(null=True)

    ledger_by_time = LedgerByTime()


class LotsByExpiry(GlobalSecondaryIndex):
    """Sparse: lots with an expiry the scheduled expiry has not handled yet, sharded (`expiry_shard` "00".."15")
    so no one partition takes every lot; the expiry queries each shard for `expire_time <= now`."""

    class Meta:
        index_name = "LotsByExpiry"
        projection = KeysOnlyProjection()

    expiry_shard = UnicodeAttribute(hash_key=True)
    expire_time = UnicodeAttribute(range_key=True)


class LotItem(Model):
    """POINTS_TABLE `LOT#<lotId>`: one grant, purchase or bonus, spent in a fixed order (aigc.domain.lots)."""

    class Meta:
        table_name = _FromEnvironment("POINTS_TABLE")
        region = _REGION

    user_id = UnicodeAttribute(hash_key=True)
    entry = UnicodeAttribute(range_key=True)
    lot_id = UnicodeAttribute(null=True)
    category = UnicodeAttribute(null=True)  # vocab.LotCategory
    source = UnicodeAttribute(null=True)  # grant | purchase | bonus | opening
    ref = UnicodeAttribute(null=True)  # the grant or order it came from
    granted = NumberAttribute(null=True)
    remaining = NumberAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    expire_time = UnicodeAttribute(null=True)  # ISO-8601 UTC with ms; absent: never expires
    expiry_shard = UnicodeAttribute(null=True)  # present until the expiry handled the lot (LotsByExpiry)
    expired_at = UnicodeAttribute(null=True)  # set when the expiry handled it: nothing returns to it after

    lots_by_expiry = LotsByExpiry()


class OrderItem(Model):
    """POINTS_TABLE `ORDER#<orderNo>`: a pack bought through Stripe Checkout (aigc.domain.orders)."""

    class Meta:
        table_name = _FromEnvironment("POINTS_TABLE")
        region = _REGION

    user_id = UnicodeAttribute(hash_key=True)
    entry = UnicodeAttribute(range_key=True)
    order_no = UnicodeAttribute(null=True)
    pack_id = UnicodeAttribute(null=True)
    points = NumberAttribute(null=True)
    bonus_points = NumberAttribute(null=True)
    valid_days = NumberAttribute(null=True)
    bonus_valid_days = NumberAttribute(null=True)
    amount = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)  # vocab.OrderStatus
    provider = UnicodeAttribute(null=True)
    provider_session_id = UnicodeAttribute(null=True)
    checkout_url = UnicodeAttribute(null=True)
    checkout_expires_at = UnicodeAttribute(null=True)  # not `expires_at`: that is the table's TTL
    created_at = UnicodeAttribute(null=True)
    paid_at = UnicodeAttribute(null=True)
    payment_intent = UnicodeAttribute(null=True)
    problem = UnicodeAttribute(null=True)  # why a payment event granted nothing (amount mismatch ...)
    reversed_points = NumberAttribute(null=True)  # points a refund or dispute reversed (clawed back or already spent)
    request_hash = UnicodeAttribute(null=True)  # the Idempotency-Key's request (another pack: 409)


class UserTasks(GlobalSecondaryIndex):
    class Meta:
        index_name = "UserTasks"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Unsettled(GlobalSecondaryIndex):
    """Sparse index of tasks not yet settled, by when the reconciler's sweep should look at them."""

    class Meta:
        index_name = "Unsettled"
        projection = AllProjection()

    unsettled = UnicodeAttribute(hash_key=True)
    attention_at = UnicodeAttribute(range_key=True)


class TaskItem(Model):
    class Meta:
        table_name = _FromEnvironment("TASKS_TABLE")
        region = _REGION

    task_no = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute()  # ISO-8601 UTC with milliseconds, sortable
    model_name = UnicodeAttribute()
    task_type = UnicodeAttribute()
    provider = UnicodeAttribute()
    provider_model = UnicodeAttribute()
    status = UnicodeAttribute()
    source = UnicodeAttribute(default="api")
    prompt = UnicodeAttribute(null=True)
    negative_prompt = UnicodeAttribute(null=True)
    image_urls = ListAttribute(of=UnicodeAttribute, default=list)
    parameters = MapAttribute(default=dict)
    effect = UnicodeAttribute(null=True)
    points_cost = NumberAttribute()
    expected_seconds = NumberAttribute()
    deadline_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)
    provider_task_id = UnicodeAttribute(null=True)
    provider_status = UnicodeAttribute(null=True)
    provider_outputs = ListAttribute(of=UnicodeAttribute, null=True)
    result_keys = ListAttribute(of=UnicodeAttribute, null=True)
    thumbnail_key = UnicodeAttribute(null=True)
    error_code = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    refunded = BooleanAttribute(default=False)
    execution_name = UnicodeAttribute(null=True)
    # present only while the task is unsettled (the Unsettled index is sparse)
    unsettled = UnicodeAttribute(null=True)
    attention_at = UnicodeAttribute(null=True)
    hold_until = UTCDateTimeAttribute(null=True)
    # webhooks (aigc.domain.webhooks): where to POST the task's events, and which ones (None: all)
    webhook_url = UnicodeAttribute(null=True)
    webhook_events = ListAttribute(of=UnicodeAttribute, null=True)
    priority = NumberAttribute(null=True)  # queue tier (aigc.domain.capacity): 0 members, 1 (or absent) everyone else
    points_lots = MapAttribute(null=True)  # {lot spend key: points} the debit took (a refund returns them there)

    user_tasks = UserTasks()
    unsettled_tasks = Unsettled()


class WebhookSecretItem(Model):
    """A user's webhook signing secret (a credential: only aigc.domain.webhooks reads it, never logged)."""

    class Meta:
        table_name = _FromEnvironment("WEBHOOK_SECRETS_TABLE")
        region = _REGION

    user_id = UnicodeAttribute(hash_key=True)
    secret = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


# --- the scheduler's table (issue 7: aigc.domain.durations, aigc.domain.capacity) -----------------------------


class SchedulerItem(Model):
    """SCHEDULER_TABLE: learned provider durations (`DUR#<model>`), capacity pools and their queues.

    Only `aigc.domain.durations` and `aigc.domain.capacity` use it; the key layout is in docs/ARCHITECTURE.md.
    """

    class Meta:
        table_name = _FromEnvironment("SCHEDULER_TABLE")
        region = _REGION

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    seconds = NumberAttribute(null=True)  # DUR#: one observed provider duration
    expires_at = NumberAttribute(null=True)  # TTL
    holders = MapAttribute(null=True)  # POOL# / SLOTS: {taskNo: lease expiry, epoch seconds}
    submits = NumberAttribute(null=True)  # POOL# / RATE#<window>: submits sent in that window
    task_no = UnicodeAttribute(null=True)  # QUEUE#: the waiting task
    token = UnicodeAttribute(null=True)  # QUEUE#: its execution's task token (set once it waits)
    enqueued_at = NumberAttribute(null=True)  # QUEUE#: epoch seconds


# Every table model, for code that must treat them alike (aigc.core.snapstart drops their connections).
MODELS = (PointsItem, LotItem, OrderItem, TaskItem, WebhookSecretItem, SchedulerItem)
