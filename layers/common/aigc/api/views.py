"""What the API shows of tasks and ledger entries."""
from __future__ import annotations

from typing import Callable

from aigc.api.schemas import LedgerEntry, TaskView, prompt_snippet
from aigc.core.config import get_settings
from aigc.core.timeutil import api_time
from aigc.core.vocab import TaskStatus
from aigc.domain import capacity, tasks
from aigc.domain.webhooks import EVENTS as WEBHOOK_EVENTS
from aigc.store import storage
from aigc.store.db import PointsItem, TaskItem
from aigc.store.paging import Page


def _presign(key: str | None) -> str | None:
    if not key:
        return None
    settings = get_settings()
    return storage.presigned_get(settings.results_bucket, key, settings.presign_expiry_seconds)


def _queue_view(task: TaskItem, queue: bool) -> dict:
    """A task waiting for a provider slot: its place in the queue and when it should start."""
    waiting = None
    if queue and task.status == TaskStatus.QUEUED and task.started_at is None and not task.refunded:
        waiting = capacity.queue_position(task)
    return {"queuePosition": waiting[0] if waiting else None,
            "estimatedStartTime": api_time(waiting[1]) if waiting else None}


def task_view(task: TaskItem, *, presign: bool = True, queue: bool = True) -> TaskView:
    """`queue=False`: skip the provider queue lookup (a task just created, or a webhook body)."""
    result_urls = [_presign(key) for key in (task.result_keys or [])] if presign and task.status == TaskStatus.COMPLETED else []
    image_urls = [_presign(u.split("/", 3)[3]) if presign and u.startswith("s3://") else u
                  for u in (task.image_urls or [])]
    parameters = task.parameters.as_dict() if hasattr(task.parameters, "as_dict") else dict(task.parameters or {})
    return TaskView.model_validate({
        "taskNo": task.task_no,
        "modelName": task.model_name,
        "status": task.status,
        "taskType": task.task_type,
        "progress": tasks.progress(task),
        "promptSnippet": prompt_snippet(task.prompt),
        "imageUrl": image_urls[0] if len(image_urls) == 1 else (image_urls or None),
        "resultUrl": result_urls[0] if result_urls else None,
        "resultUrls": result_urls,
        "thumbnailUrl": _presign(task.thumbnail_key) if presign and task.status == TaskStatus.COMPLETED else None,
        "pointsCost": int(task.points_cost),
        "refunded": bool(task.refunded),
        "parameters": parameters,
        "effect": task.effect,
        "source": task.source,
        "createTime": task.created_at[:19] + "Z",
        "completeTime": api_time(task.completed_at),
        "errorCode": task.error_code,
        "errorMessage": task.error_message,
        "retryableUntil": api_time(task.hold_until) if task.hold_until and not task.refunded else None,
        "webhook": task.webhook_url,
        "webhookEventsFilter": list(task.webhook_events or WEBHOOK_EVENTS) if task.webhook_url else None,
        **_queue_view(task, queue),
    })


def ledger_view(item: PointsItem) -> LedgerEntry:
    return LedgerEntry.model_validate({
        "id": item.entry,
        "type": (item.kind or "").lower(),
        "amount": int(item.amount or 0),
        "ref": item.ref,
        "taskNo": item.ref if item.ref and item.ref.startswith("TASK-") else None,
        "reason": item.reason,
        "createTime": (item.ledger_time or "")[:19] + "Z",
    })


def page_view(page: Page, render: Callable, key: str = "records") -> dict:
    """Seed 001's page (records, total, page, size, pages) plus nextToken (null on the last page).

    total and pages are null where no counter is kept (filtered task lists)."""
    total = page.total
    return {key: [render(item) for item in page.items], "total": total, "page": page.page, "size": page.size,
            "pages": None if total is None else (total + page.size - 1) // page.size,
            "nextToken": page.next_token}
