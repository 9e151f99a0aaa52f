"""Business numbers, kept as the data changes: which change of a task or of the ledger counts as what,
the sharded counter items they go to, the duration histograms, and reading them back per bucket.

The tables' streams feed these rules (aigc.flows.stats_feed); every stream record is counted at most
once (aigc.store.aggregates writes a marker keyed by the record's eventID in the same transaction as
its counters). Nothing here reads the tasks or the ledger: a stats query reads counter items only, so
its cost depends on the range, the models and SHARDS, never on how many tasks there are. The policy
(what counts when, shards, the histogram's resolution) is told in docs/ARCHITECTURE.md ("Business
numbers").
"""
from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Literal

from aigc.core.errors import BadRequest
from aigc.core.i18n import _
from aigc.core.vocab import TaskStatus
from aigc.store import aggregates
from aigc.store.db import TaskItem

Bucket = Literal["hour", "day"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day")
# Counter items are written by every task of a model in a bucket: each (bucket, model) is spread over
# SHARDS items (chosen by a hash of the task number, the ledger reference or the user) and summed when
# read. 8 keeps two concurrent stream batches off the same item most of the time (a transaction that
# meets another on one item is retried) and gives each (hour, model) 8 items' write throughput; a
# stats query reads at most SHARDS items per (bucket, model). Only ever raise it (reads cover 0..SHARDS-1).
SHARDS = 8
ALL_MODELS = "*"  # the row that is not one model's: the ledger's flows and the distinct users of all models
# Bounds on one query: hour buckets over at most 7 days, day buckets over at most 366 days.
MAX_BUCKETS: dict[str, int] = {"hour": 7 * 24, "day": 366}
TOP_ERRORS = 5

# --- the histogram of durations -------------------------------------------------------------------
# Log-spaced buckets, STEPS_PER_DOUBLING per doubling: bucket i holds durations in (2^((i-1)/4), 2^(i/4)]
# seconds, so each bucket's upper edge is 2^(1/4) = 1.19 times its lower one. A percentile is answered
# as the upper edge of the bucket it falls in: never below the true value, at most 19 % above it.
STEPS_PER_DOUBLING = 4
LOWEST = -8  # (.., 0.25 s]
HIGHEST = 56  # (.., 16384 s]: anything longer counts here (a task's whole life is bounded far below)
RESOLUTION = 2 ** (1 / STEPS_PER_DOUBLING)


def histogram_index(seconds: float) -> int:
    if seconds <= 0:
        return LOWEST
    return max(LOWEST, min(HIGHEST, math.ceil(STEPS_PER_DOUBLING * math.log2(seconds) - 1e-9)))


def upper_edge(index: int) -> float:
    return 2 ** (index / STEPS_PER_DOUBLING)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) of a histogram {index: count}, as its bucket's upper edge."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(upper_edge(index), 3)
    return round(upper_edge(max(histogram)), 3)  # pragma: no cover - the loop always reaches rank


# --- counter names ----------------------------------------------------------------------------------
CREATED, COMPLETED, FAILED, CANCELLED, REFUNDED = ("tasks:created", "tasks:completed", "tasks:failed",
                                                    "tasks:cancelled", "tasks:refunded")
POINTS_DEBITED, POINTS_REFUNDED = "points:debited", "points:refunded"  # per model, from the task records
USERS = "users"
ERROR = "err:"  # + error code
TOTAL_TIME = "total:"  # + histogram index: from submit to completion
JOB_TIME = "job:"  # + histogram index: the provider's job, from its acceptance to its success
LEDGER = "ledger:"  # + the ledger kind's counter name (LEDGER_COUNTERS), on the ALL_MODELS row

# Ledger kinds -> the name of their counter (a kind not listed counts under its own name, lower-cased).
LEDGER_COUNTERS: dict[str, str] = {
    "DEBIT": "debited",
    "REFUND": "refunded",
    "GRANT": "granted",
    "PURCHASE": "bought",
    "EXPIRE": "expired",
}
MARKER_DAYS = 3  # a record marker outlives the stream's 24 h retention (and a replay of a dead-lettered range)


def _safe(name: str, limit: int = 64) -> str:
    """An error code or ledger kind as part of an attribute name: printable, bounded."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(name))[:limit]
    return cleaned or "unknown"


def ledger_counter(kind: str) -> str:
    return LEDGER + LEDGER_COUNTERS.get(str(kind), _safe(str(kind).lower()))


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


# --- keys -------------------------------------------------------------------------------------------

def _hour(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H")


def _day(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d")


def counter_keys(moment: datetime, model: str, shard: int) -> list[tuple[str, str]]:
    """The two items a count at `moment` goes to: the hour's (partition per month and shard) and the
    day's (partition per year and shard); sort key "<bucket>#<model>"."""
    utc = moment.astimezone(timezone.utc)
    return [(f"H#{utc:%Y-%m}#{shard}", f"{_hour(utc)}#{model}"),
            (f"D#{utc:%Y}#{shard}", f"{_day(utc)}#{model}")]


# --- which change counts as what -----------------------------------------------------------------

@dataclass(frozen=True)
class Count:
    """Counters to add for one model (or ALL_MODELS) at one moment, on the shard of `key`."""

    moment: datetime
    model: str
    key: str
    counters: dict[str, int]


def _ending(task: TaskItem | None) -> str | None:
    """The outcome a task has reached, if any: completed, cancelled, or failed for good (a task held for
    a redrive shows failed but may still complete, so it has not ended)."""
    if task is None:
        return None
    if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
        return str(task.status)
    if task.status == TaskStatus.FAILED and task.hold_until is None:
        return str(task.status)
    return None


ENDING_COUNTERS = {TaskStatus.COMPLETED: COMPLETED, TaskStatus.FAILED: FAILED, TaskStatus.CANCELLED: CANCELLED}


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def created_moment(task: TaskItem, recorded: datetime) -> datetime:
    return _parse_iso(task.created_at) or recorded


def task_counts(old: TaskItem | None, new: TaskItem, recorded: datetime) -> list[Count]:
    """What one change of a task record counts (a stream record's old and new images).

    - created: the record's first image (at its created_at), with the points it was charged;
    - completed / failed / cancelled: the change that reaches that ending (at completed_at); failed
      counts its errorCode, completed the time from submit to completion;
    - refunded: the change that sets `refunded` (at completed_at), with the points given back;
    - the provider's job time: the change that records the provider's success (at updated_at), for a
      job that was accepted before it (a synchronous provider's answer has no separate job time).
    """
    created = created_moment(new, recorded)
    ended_at = new.completed_at or recorded
    counts: list[Count] = []
    if old is None:
        counts.append(Count(created, new.model_name, new.task_no,
                            {CREATED: 1, POINTS_DEBITED: int(new.points_cost or 0)}))
    ending = _ending(new)
    at_end: Counter = Counter()
    if ending is not None and ending != _ending(old):
        at_end[ENDING_COUNTERS[ending]] += 1
        if ending == TaskStatus.FAILED and new.error_code:
            at_end[ERROR + _safe(new.error_code)] += 1
        if ending == TaskStatus.COMPLETED:
            took = _seconds(new.completed_at, created)
            if took is not None:
                at_end[f"{TOTAL_TIME}{histogram_index(took)}"] += 1
    if new.refunded and not (old is not None and old.refunded):
        at_end[REFUNDED] += 1
        at_end[POINTS_REFUNDED] += int(new.points_cost or 0)
    if at_end:
        counts.append(Count(ended_at, new.model_name, new.task_no, dict(at_end)))
    if (old is not None and old.started_at is not None and new.provider_status == "SUCCEEDED"
            and old.provider_status != "SUCCEEDED"):
        job = _seconds(new.updated_at or recorded, new.started_at)
        if job is not None:
            counts.append(Count(new.updated_at or recorded, new.model_name, new.task_no,
                                {f"{JOB_TIME}{histogram_index(job)}": 1}))
    return [count for count in counts if any(count.counters.values())]


def ledger_counts(kind: str | None, amount, ref: str | None, ledger_time: str | None, entry: str,
                  recorded: datetime) -> list[Count]:
    """A new ledger entry: its points (absolute) under its kind's counter, on the ALL_MODELS row."""
    if not kind:
        return []
    moment = _parse_iso((ledger_time or "")[:24]) or recorded
    return [Count(moment, ALL_MODELS, ref or entry, {ledger_counter(kind): abs(int(amount or 0))})]


# --- writing ---------------------------------------------------------------------------------------

def _updates(counts: Iterable[Count]) -> dict[tuple[str, str], Counter]:
    merged: dict[tuple[str, str], Counter] = {}
    for count in counts:
        for key in counter_keys(count.moment, count.model, shard_of(count.key)):
            merged.setdefault(key, Counter()).update(count.counters)
    return merged


def record(event_id: str, counts: list[Count]) -> bool:
    """Add one stream record's counts, once: False when this record was already counted (a redelivered
    batch) or counts nothing."""
    if not counts:
        return False
    return aggregates.add_once(f"REC#{event_id}", _updates(counts), keep_seconds=MARKER_DAYS * 86400)


def active_user(user_id: str, model: str, moment: datetime) -> int:
    """Count `user_id` once per hour and per day, for `model` and for all models (a task they created).

    A marker item per (user, day) holds the tokens already counted; only the missing ones are added,
    in the same transaction as their counters, so a repeated record (or a second task) adds nothing."""
    utc = moment.astimezone(timezone.utc)
    hour = f"{utc:%H}"
    tokens = {f"H{hour}#{model}": (0, model), f"H{hour}#{ALL_MODELS}": (0, ALL_MODELS),
              f"D#{model}": (1, model), f"D#{ALL_MODELS}": (1, ALL_MODELS)}
    shard = shard_of(user_id)

    def updates_for(missing: set[str]) -> dict[tuple[str, str], Counter]:
        out: dict[tuple[str, str], Counter] = {}
        for token in missing:
            which, row = tokens[token]
            out[counter_keys(utc, row, shard)[which]] = Counter({USERS: 1})
        return out

    return aggregates.add_new_tokens(f"USER#{user_id}", _day(utc), set(tokens), updates_for,
                                     expires_at=int((utc + timedelta(days=MARKER_DAYS)).timestamp()))


# --- reading -----------------------------------------------------------------------------------------

@dataclass
class Row:
    """A model's (or ALL_MODELS') counters in one bucket, summed over shards."""

    counters: Counter = field(default_factory=Counter)

    def get(self, name: str) -> int:
        return int(self.counters.get(name, 0))

    def histogram(self, prefix: str) -> dict[int, int]:
        return {int(name[len(prefix):]): int(value) for name, value in self.counters.items()
                if name.startswith(prefix) and value}

    def errors(self) -> Counter:
        return Counter({name[len(ERROR):]: int(value) for name, value in self.counters.items()
                        if name.startswith(ERROR) and value})

    def ledger(self) -> dict[str, int]:
        flows = {name: 0 for name in LEDGER_COUNTERS.values()}
        for name, value in self.counters.items():
            if name.startswith(LEDGER):
                flows[name[len(LEDGER):]] = flows.get(name[len(LEDGER):], 0) + int(value)
        return flows


@dataclass
class BucketStats:
    start: datetime
    end: datetime
    models: dict[str, Row]  # per model (ALL_MODELS excluded)
    everyone: Row  # the ALL_MODELS row: ledger flows and distinct users of all models


@dataclass
class StatsReport:
    start: datetime
    end: datetime
    bucket: Bucket
    buckets: list[BucketStats]
    items_read: int
    queries: int


def _floor(moment: datetime, bucket: Bucket) -> datetime:
    utc = moment.astimezone(timezone.utc)
    return utc.replace(minute=0, second=0, microsecond=0) if bucket == "hour" else utc.replace(
        hour=0, minute=0, second=0, microsecond=0)


def _step(bucket: Bucket) -> timedelta:
    return timedelta(hours=1) if bucket == "hour" else timedelta(days=1)


def bucket_range(start: datetime, end: datetime, bucket: Bucket) -> list[datetime]:
    """The starts of the buckets that cover [start, end): start floored, end rounded up."""
    if bucket not in BUCKETS:
        raise BadRequest(_("bucket: hour or day"))
    if end <= start:
        raise BadRequest(_("to: must be after from"))
    first, step = _floor(start, bucket), _step(bucket)
    count = math.ceil((end - first) / step)
    if count > MAX_BUCKETS[bucket]:
        raise BadRequest(_("from, to: at most {limit} {bucket} buckets in one query (asked for {count}): narrow the range",
                           limit=MAX_BUCKETS[bucket], bucket=bucket, count=count))
    return [first + i * step for i in range(count)]


def _partitions(starts: list[datetime], bucket: Bucket) -> list[tuple[str, str, str]]:
    """(partition, first sort key, last sort key) of every shard the buckets live in."""
    spans: dict[str, list[str]] = {}
    for start in starts:
        label = f"{start:%Y-%m}" if bucket == "hour" else f"{start:%Y}"
        sort = _hour(start) if bucket == "hour" else _day(start)
        spans.setdefault(label, []).append(sort)
    prefix = "H" if bucket == "hour" else "D"
    return [(f"{prefix}#{label}#{shard}", sorts[0], sorts[-1] + "#~")
            for label, sorts in spans.items() for shard in range(SHARDS)]


DEFAULT_SPAN: dict[str, timedelta] = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


def window(start: datetime | None, end: datetime | None, bucket: Bucket,
           now: datetime | None = None) -> tuple[datetime, datetime]:
    """The range asked for (naive times are UTC): `to` defaults to now, `from` to DEFAULT_SPAN before it."""
    def utc(moment: datetime) -> datetime:
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)

    end = utc(end) if end else (now or datetime.now(timezone.utc))
    return (utc(start) if start else end - DEFAULT_SPAN[bucket]), end


def read(start: datetime, end: datetime, bucket: Bucket) -> StatsReport:
    """The buckets covering [start, end), every model's counters summed over their shards."""
    starts = bucket_range(start, end, bucket)
    by_label = {(_hour(s) if bucket == "hour" else _day(s)): s for s in starts}
    step = _step(bucket)
    rows: dict[str, dict[str, Row]] = {label: {} for label in by_label}
    items = queries = 0
    for partition, first, last in _partitions(starts, bucket):
        queries += 1
        for sort, counters in aggregates.read_range(partition, first, last):
            items += 1
            label, _sep, model = sort.partition("#")
            if label in rows:
                rows[label].setdefault(model, Row()).counters.update(counters)
    buckets = [BucketStats(by_label[label], by_label[label] + step,
                           {m: row for m, row in sorted(models.items()) if m != ALL_MODELS},
                           models.get(ALL_MODELS, Row()))
               for label, models in rows.items()]
    return StatsReport(starts[0], starts[-1] + step, bucket, buckets, items, queries)


# --- what a row says -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Durations:
    count: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class Summary:
    created: int
    completed: int
    failed: int
    cancelled: int
    refunded: int
    success_rate: float | None  # completed / (completed + failed)
    refund_rate: float | None  # refunded / (completed + failed + cancelled)
    total_seconds: Durations
    job_seconds: Durations
    top_errors: list[tuple[str, int]]
    points_debited: int
    points_refunded: int
    active_users: int | None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _durations(histogram: dict[int, int]) -> Durations:
    return Durations(sum(histogram.values()), percentile(histogram, 0.5), percentile(histogram, 0.95))


def merged(rows: Iterable[Row]) -> Row:
    total = Row()
    for row in rows:
        total.counters.update(row.counters)
    return total


def summarize(row: Row, active_users: int | None) -> Summary:
    completed, failed, cancelled = row.get(COMPLETED), row.get(FAILED), row.get(CANCELLED)
    refunded = row.get(REFUNDED)
    return Summary(
        created=row.get(CREATED), completed=completed, failed=failed, cancelled=cancelled, refunded=refunded,
        success_rate=_rate(completed, completed + failed),
        refund_rate=_rate(refunded, completed + failed + cancelled),
        total_seconds=_durations(row.histogram(TOTAL_TIME)), job_seconds=_durations(row.histogram(JOB_TIME)),
        top_errors=sorted(row.errors().items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_ERRORS],
        points_debited=row.get(POINTS_DEBITED), points_refunded=row.get(POINTS_REFUNDED),
        active_users=active_users,
    )
