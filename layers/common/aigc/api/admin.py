"""What the admins' read routes answer: the business numbers (GET /admin/stats), the task search
(GET /admin/tasks) and a user's overview (GET /admin/users/{userId}: balance, lots, tasks, ledger, orders):
their response models and views.

Numbers are plain JSON for the console to chart: every bucket of the range is listed (empty ones
with zeros), models by name, rates as fractions (null when nothing ended), durations in seconds.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from aigc.api.points_views import order_view, statement_view
from aigc.api.schemas import AdminTaskDetail, Envelope, LedgerEntry, LotView, OrderView, Page, _Out
from aigc.api.views import ledger_view, task_view
from aigc.core.timeutil import api_time
from aigc.domain import stats
from aigc.domain.lots import Statement
from aigc.store.db import OrderItem, TaskItem

RESOLUTION = (f"p50 and p95 come from a histogram with {stats.STEPS_PER_DOUBLING} log-spaced buckets per doubling "
              f"(each {stats.RESOLUTION:.3f} x the last, {2 ** (stats.LOWEST / stats.STEPS_PER_DOUBLING):g} s to "
              f"{2 ** (stats.HIGHEST / stats.STEPS_PER_DOUBLING):g} s): a percentile is its bucket's upper edge, "
              f"never below the true value and at most {round((stats.RESOLUTION - 1) * 100)} % above it")


class Durations(_Out):
    count: int = Field(description="how many were measured")
    p50: float | None = Field(description="seconds (see `resolution`); null when none")
    p95: float | None = Field(description="seconds (see `resolution`); null when none")


class ErrorCount(_Out):
    code: str
    count: int


class TaskNumbers(_Out):
    created: int = Field(description="tasks submitted (and uploads recorded, rejected ones too)")
    completed: int
    failed: int = Field(description="failed for good (a task held for a redrive is not counted until it ends)")
    cancelled: int
    refunded: int
    success_rate: float | None = Field(alias="successRate", description="completed / (completed + failed)")
    refund_rate: float | None = Field(alias="refundRate", description="refunded / (completed + failed + cancelled)")
    total_seconds: Durations = Field(alias="totalSeconds", description="from submit to completion (completed tasks)")
    job_seconds: Durations = Field(alias="jobSeconds",
                                   description="the provider's job, from its acceptance to its success (async providers)")
    top_errors: list[ErrorCount] = Field(alias="topErrors", description=f"the {stats.TOP_ERRORS} most frequent "
                                         "errorCodes of the failed tasks")
    points_debited: int = Field(alias="pointsDebited", description="the points the created tasks were charged")
    points_refunded: int = Field(alias="pointsRefunded", description="the points the refunded tasks were given back")
    active_users: int | None = Field(alias="activeUsers", description=(
        "distinct users who created a task in the bucket; null for a whole range of several buckets "
        "(distinct users do not add up)"))


class ModelNumbers(TaskNumbers):
    model_name: str = Field(alias="modelName")


class Numbers(_Out):
    tasks: TaskNumbers = Field(description="all models together")
    models: list[ModelNumbers] = Field(description="per model, those with any number")
    points: dict[str, int] = Field(description=(
        "the ledger's flows in points: debited, refunded, granted, bought and expired always; any other "
        "ledger kind under its own lower-case name"))


class StatsBucket(Numbers):
    start: str
    end: str


class StatsCost(_Out):
    queries: int
    items_read: int = Field(alias="itemsRead", description="counter items read: bounded by the buckets, the models "
                            f"and the shards ({stats.SHARDS}), never by the number of tasks")


class Stats(_Out):
    start: str = Field(alias="from", description="the first bucket's start (UTC)")
    end: str = Field(alias="to", description="the last bucket's end (UTC)")
    bucket: Literal["hour", "day"]
    buckets: list[StatsBucket] = Field(description="every bucket of the range, oldest first, empty ones included")
    totals: Numbers = Field(description="the whole range (activeUsers null when it has several buckets)")
    resolution: str
    cost: StatsCost


class AdminTaskPage(Page[AdminTaskDetail]):
    pass


class AdminUser(_Out):
    user_id: str = Field(alias="userId")
    known: bool = Field(description="points were ever granted or bought")
    balance: int
    task_count: int = Field(alias="taskCount")
    ledger_count: int = Field(alias="ledgerCount")
    recent_tasks: list[AdminTaskDetail] = Field(alias="recentTasks", description="the newest 10")
    recent_ledger: list[LedgerEntry] = Field(alias="recentLedger", description="the newest 10 entries")
    expire_time: str | None = Field(alias="expireTime", description="when the first of the lots expires")
    lots: list[LotView] = Field(description="the lots that hold the balance, in spending order")
    orders: list[OrderView] = Field(description="the newest 10 orders")


class StatsResponse(Envelope[Stats]):
    pass


class AdminTaskPageResponse(Envelope[AdminTaskPage]):
    pass


class AdminUserResponse(Envelope[AdminUser]):
    pass


# --- views --------------------------------------------------------------------------------------------

def _numbers(summary: stats.Summary) -> dict:
    return {
        "created": summary.created, "completed": summary.completed, "failed": summary.failed,
        "cancelled": summary.cancelled, "refunded": summary.refunded,
        "successRate": summary.success_rate, "refundRate": summary.refund_rate,
        "totalSeconds": vars(summary.total_seconds), "jobSeconds": vars(summary.job_seconds),
        "topErrors": [{"code": code, "count": count} for code, count in summary.top_errors],
        "pointsDebited": summary.points_debited, "pointsRefunded": summary.points_refunded,
        "activeUsers": summary.active_users,
    }


def _block(models: dict[str, stats.Row], everyone: stats.Row, *, single: bool) -> dict:
    """A bucket's (or the range's) numbers: all models, each model, the ledger. Distinct users come from
    their own counters (USERS) and only within one bucket."""
    users = (lambda row: row.get(stats.USERS)) if single else (lambda row: None)
    return {
        "tasks": _numbers(stats.summarize(stats.merged(models.values()), users(everyone))),
        "models": [{"modelName": name, **_numbers(stats.summarize(row, users(row)))}
                   for name, row in sorted(models.items())],
        "points": everyone.ledger(),
    }


def stats_view(report: stats.StatsReport) -> dict:
    totals: dict[str, stats.Row] = {}
    for bucket in report.buckets:
        for name, row in bucket.models.items():
            totals.setdefault(name, stats.Row()).counters.update(row.counters)
    everyone = stats.merged(bucket.everyone for bucket in report.buckets)
    return {
        "from": api_time(report.start), "to": api_time(report.end), "bucket": report.bucket,
        "buckets": [{"start": api_time(b.start), "end": api_time(b.end), **_block(b.models, b.everyone, single=True)}
                    for b in report.buckets],
        "totals": _block(totals, everyone, single=len(report.buckets) == 1),
        "resolution": RESOLUTION,
        "cost": {"queries": report.queries, "itemsRead": report.items_read},
    }


def admin_task_view(task: TaskItem) -> dict:
    return {**task_view(task).model_dump(), "user_id": task.user_id, "provider_task_id": task.provider_task_id}


def user_view(user_id: str, *, known: bool, statement: Statement, task_count: int, ledger_count: int,
              recent_tasks: list[TaskItem], recent_ledger: list, recent_orders: list[OrderItem]) -> dict:
    balance = statement_view(user_id, statement)
    return {"userId": user_id, "known": known, "balance": balance.balance, "expireTime": balance.expire_time,
            "taskCount": task_count, "ledgerCount": ledger_count,
            "recentTasks": [admin_task_view(t) for t in recent_tasks],
            "recentLedger": [ledger_view(e) for e in recent_ledger], "lots": balance.lots,
            "orders": [order_view(o) for o in recent_orders]}
