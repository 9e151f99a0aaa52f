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
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
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
    text_to_video_count = NumberAttribute(null=True)
    image_to_video_count = NumberAttribute(null=True)
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
    reason = UnicodeAttribute(null=True)  # English
    reason_text = UnicodeAttribute(null=True)  # a reason we wrote, as a Message (aigc.core.i18n, JSON)
    actor = UnicodeAttribute(null=True)
    lots = MapAttribute(null=True)  # {spend key: points} the entry took from or gave to each lot
    # rate-limit counters
    submits = NumberAttribute(null=True)  # not `count`: that would hide Model.count()
    expires_at = NumberAttribute(null=True)
    # KEYSPEND#<keyId>#<yyyymmdd>: points debited through one API key that UTC day (aigc.domain.api_keys)
    key_spent = NumberAttribute(null=True)

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
    closed_at = UnicodeAttribute(null=True)  # its order was refunded or disputed in full: nothing returns to it

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


class UserStatus(GlobalSecondaryIndex):
    """A user's tasks by status, newest first (`status_key` = "<status>#<created_at>"): a status-filtered list
    reads only the tasks with that status. Keys and the task type only, so only a status change writes it."""

    class Meta:
        index_name = "UserStatus"
        projection = IncludeProjection(["task_type"])

    user_id = UnicodeAttribute(hash_key=True)
    status_key = UnicodeAttribute(range_key=True)


class Attention(GlobalSecondaryIndex):
    """Sparse index of tasks not yet settled, by when the reconciler's sweep should look at them: `unsettled`
    is the task's shard ("0".."15", aigc.domain.tasks), so no partition takes every task; keys only, so a
    task's other updates never write the index."""

    class Meta:
        index_name = "Attention"
        projection = KeysOnlyProjection()

    unsettled = UnicodeAttribute(hash_key=True)
    attention_at = UnicodeAttribute(range_key=True)


class TasksByTime(GlobalSecondaryIndex):
    """Every task by creation time, for the admins' search (aigc.domain.task_search): a partition per
    day and shard ("<yyyy-mm-dd>#<shard>"), so no partition key takes every task; only what the search
    filters on is projected, so a task's other updates never write the index."""

    class Meta:
        index_name = "TasksByTime"
        projection = IncludeProjection(["user_id", "model_name", "status", "error_code"])

    day_shard = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


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
    effect = UnicodeAttribute(null=True)  # English
    effect_text = UnicodeAttribute(null=True)  # the same as a Message (aigc.core.i18n, JSON)
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
    error_message = UnicodeAttribute(null=True)  # English
    error_text = UnicodeAttribute(null=True)  # the same as a Message (aigc.core.i18n, JSON): shown in the reader's language
    language = UnicodeAttribute(null=True)  # the submit's language (Accept-Language): webhook and push bodies use it
    refunded = BooleanAttribute(default=False)
    execution_name = UnicodeAttribute(null=True)
    # present only while the task is unsettled (the Attention index is sparse): its shard, and when to look
    unsettled = UnicodeAttribute(null=True)
    attention_at = UnicodeAttribute(null=True)
    hold_until = UTCDateTimeAttribute(null=True)
    # webhooks (aigc.domain.webhooks): where to POST the task's events, and which ones (None: all)
    webhook_url = UnicodeAttribute(null=True)
    webhook_events = ListAttribute(of=UnicodeAttribute, null=True)
    priority = NumberAttribute(null=True)  # queue tier (aigc.domain.capacity): 0 members, 1 (or absent) everyone else
    status_key = UnicodeAttribute(null=True)  # "<status>#<created_at>", kept with `status` (the UserStatus index)
    provider_account = UnicodeAttribute(null=True)  # the provider account (key id) its job runs on (aigc.providers.accounts)
    queue_ticket = NumberAttribute(null=True)  # its number in its pool's queue, tier `priority` (aigc.domain.capacity)
    api_key_id = UnicodeAttribute(null=True)  # the API key that submitted it (aigc.domain.api_keys), if any
    points_lots = MapAttribute(null=True)  # {lot spend key: points} the debit took (a refund returns them there)
    # templates and prices (aigc.domain.templates, aigc.domain.pricing): what the task was made with and charged
    template_code = UnicodeAttribute(null=True)
    template_version = NumberAttribute(null=True)
    template_inputs = MapAttribute(null=True)  # the inputs with their defaults (a retry renders them again)
    pricing = MapAttribute(null=True)  # {base, factors: [...], total}, as the submit answer showed it
    media = MapAttribute(null=True)  # the stored first result: {width, height, durationSeconds?, codec?}

    # the admins' search (TasksByTime): "<yyyy-mm-dd>#<shard>" and "<created_at>#<task_no>", set at creation
    day_shard = UnicodeAttribute(null=True)
    created_key = UnicodeAttribute(null=True)

    user_tasks = UserTasks()
    user_status = UserStatus()
    unsettled_tasks = Attention()
    tasks_by_time = TasksByTime()


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
    samples = ListAttribute(of=NumberAttribute, null=True)  # DUR#<model> / RING: the last durations, oldest first
    sample_tasks = ListAttribute(of=UnicodeAttribute, null=True)  # DUR#<model> / RING: the jobs they are of
    expires_at = NumberAttribute(null=True)  # TTL
    holders = MapAttribute(null=True)  # POOL#<pool>#<account> / SLOTS: {taskNo: lease expiry, epoch seconds}
    submits = NumberAttribute(null=True)  # RATE#<pool>#<account> / <window>: submits sent in that window
    # QUEUE#<pool> / SEQ, per tier (0 members, 1 everyone else): the last number given out, and the last one
    # handed a slot or passed over
    issued_0 = NumberAttribute(null=True)
    served_0 = NumberAttribute(null=True)
    issued_1 = NumberAttribute(null=True)
    served_1 = NumberAttribute(null=True)
    task_no = UnicodeAttribute(null=True)  # TICKET#: the waiting task; DUR#: the job a sample is of
    token = UnicodeAttribute(null=True)  # TICKET#: its execution's task token
    enqueued_at = NumberAttribute(null=True)  # TICKET#: epoch seconds
    hole_at = NumberAttribute(null=True)  # TICKET#: when a waker found the number without its ticket
    skipped = BooleanAttribute(null=True)  # TICKET#: a number passed over (its ticket never came)
    left = BooleanAttribute(null=True)  # TICKET#: the task was settled while it waited


# --- the WebSocket push's connections (aigc.domain.push) ---------------------------------------------------


class UserConnections(GlobalSecondaryIndex):
    """A user's open sockets: the push's fan-out reads one user's partition, never the whole table."""

    class Meta:
        index_name = "UserConnections"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)


class ConnectionItem(Model):
    """CONNECTIONS_TABLE: one open WebSocket (API Gateway's connectionId), whose user, what it may receive."""

    class Meta:
        table_name = _FromEnvironment("CONNECTIONS_TABLE")
        region = _REGION

    connection_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    scopes = ListAttribute(of=UnicodeAttribute, default=list)  # the events' scopes it may receive
    auth = UnicodeAttribute(default="jwt")  # how it authenticated: jwt | apikey
    key_id = UnicodeAttribute(null=True)  # the API key's id, when it came with a key
    connected_at = UTCDateTimeAttribute()
    expires_at = NumberAttribute()  # TTL: API Gateway closes a connection after 2 hours at most

    by_user = UserConnections()


# --- API keys (aigc.domain.api_keys) ---------------------------------------------------------------------


class UserKeys(GlobalSecondaryIndex):
    """A user's keys (listing, revoking by keyId): one user's partition, at most MAX_KEYS_PER_USER items."""

    class Meta:
        index_name = "UserKeys"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute(range_key=True)


class ApiKeyItem(Model):
    """API_KEYS_TABLE: one API key, found by the SHA-256 of its secret (the secret itself is never stored).

    Immutable once created but for `last_used_at`; revoking deletes the item.
    """

    class Meta:
        table_name = _FromEnvironment("API_KEYS_TABLE")
        region = _REGION

    key_hash = UnicodeAttribute(hash_key=True)  # hex SHA-256 of the whole key
    key_id = UnicodeAttribute()  # public id (key_...)
    user_id = UnicodeAttribute()  # the owner: the key acts as this user
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()  # the key's first 12 characters, shown in lists
    scopes = ListAttribute(of=UnicodeAttribute)
    models = ListAttribute(of=UnicodeAttribute, null=True)  # allowlist; None: every model
    daily_points_limit = NumberAttribute(null=True)  # None: no limit of its own
    groups = ListAttribute(of=UnicodeAttribute, default=list)  # the creating token's groups (queue tier)
    created_at = UTCDateTimeAttribute()
    expire_at = UTCDateTimeAttribute(null=True)  # None: never expires
    last_used_at = UTCDateTimeAttribute(null=True)  # at most once a minute
    expires_at = NumberAttribute(null=True)  # TTL: an expired key is deleted a week after its expiry

    by_user = UserKeys()


class StatsItem(Model):
    """STATS_TABLE: the business numbers (aigc.domain.stats): sharded counter items, the markers of stream
    records already counted (`REC#<eventID>`) and of users already counted active (`USER#<userId>`).

    A counter item's numbers are named by the data (an error code, a histogram bucket): they are written
    as plain paths (aigc.store.aggregates) and every number of an item read is in `counters`.
    """

    class Meta:
        table_name = _FromEnvironment("STATS_TABLE")
        region = _REGION

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    seen = UnicodeSetAttribute(null=True)  # USER# markers: the hours and days already counted
    expires_at = NumberAttribute(null=True)  # TTL of the markers; counter items do not expire

    @classmethod
    def from_raw_data(cls, data):
        item = super().from_raw_data(data)
        item.counters = {name: int(value["N"]) for name, value in data.items()
                         if "N" in value and name != "expires_at"}
        return item


# Every table model, for code that must treat them alike (aigc.core.snapstart drops their connections).
MODELS = (PointsItem, LotItem, OrderItem, TaskItem, WebhookSecretItem, SchedulerItem, ConnectionItem,
          ApiKeyItem, StatsItem)
