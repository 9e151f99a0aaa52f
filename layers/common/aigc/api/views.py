"""What the API shows of tasks and ledger entries."""
from __future__ import annotations

from typing import Callable

from aigc.api.schemas import ApiKeyView, LedgerEntry, NewApiKey, TaskView, prompt_snippet
from aigc.core import i18n
from aigc.api.parameters import SCHEMAS
from aigc.api.schemas import TemplateInfo
from aigc.core.catalog import get_model, result_type
from aigc.core.templates import TemplateSpec
from aigc.domain import pricing, templates
from aigc.core.config import get_settings
from aigc.core.timeutil import api_time, utcnow
from aigc.core.vocab import TaskStatus
from aigc.domain import capacity, lots, orders, tasks
from aigc.domain.webhooks import EVENTS as WEBHOOK_EVENTS
from aigc.store import storage
from aigc.store.db import ApiKeyItem, PointsItem, TaskItem
from aigc.store.paging import Page


def _presign(key: str | None, version_id: str | None = None) -> str | None:
    if not key:
        return None
    settings = get_settings()
    return storage.presigned_get(settings.results_bucket, key, settings.presign_expiry_seconds, version_id)


def template_view(spec: TemplateSpec) -> TemplateInfo:
    """A template as GET /templates shows it, with the price of its example inputs."""
    model = get_model(spec.model_name)
    resolved = templates.resolve(spec, spec.example)
    provider_parameters = SCHEMAS[model.parameter_schema].model_validate(resolved.parameters).provider_parameters(model)
    return TemplateInfo.model_validate({
        "code": spec.code, "name": spec.name, "version": spec.version, "category": spec.category,
        "description": spec.description, "modelName": spec.model_name, "taskType": model.task_type,
        "resultType": model.result_type, "presetParameters": spec.preset_parameters,
        "promptTemplate": spec.prompt_template, "inputs": spec.inputs, "inputParameters": spec.input_parameters,
        "images": {"min": model.inputs.min_images, "max": model.inputs.max_images}, "example": spec.example,
        "pricing": spec.pricing.model_dump(by_alias=True, exclude_none=True),
        "priceRules": pricing.describe(spec.pricing),
        "examplePrice": pricing.quote(spec.pricing, provider_parameters).total,
    })


def _result_view(task: TaskItem, parameters: dict) -> dict:
    """What kind of result, how long and how large (the stored file's own figures once completed), and what
    the task was made with and charged."""
    media = tasks.plain_map(task.media) or {}
    kind = result_type(task.task_type)
    duration = media.get("durationSeconds")
    if duration is None and kind == "video" and isinstance(parameters.get("duration"), (int, float)):
        duration = parameters["duration"]
    if media.get("width") and media.get("height"):
        resolution = f"{int(media['width'])}x{int(media['height'])}"
    elif isinstance(parameters.get("size"), str):
        resolution = parameters["size"].replace("*", "x")
    else:
        resolution = parameters.get("resolution") if isinstance(parameters.get("resolution"), str) else None
    return {
        "resultType": kind,
        "durationSeconds": float(duration) if duration is not None else None,
        "resolution": resolution,
        "templateCode": task.template_code,
        "templateVersion": int(task.template_version) if task.template_version is not None else None,
        "pricing": tasks.plain_map(task.pricing),
    }


def _queue_view(task: TaskItem, queue: bool) -> dict:
    """A task waiting for a provider slot: its place in the queue and when it should start."""
    waiting = None
    if queue and task.status == TaskStatus.QUEUED and task.started_at is None and not task.refunded:
        waiting = capacity.queue_position(task)
    return {"queuePosition": waiting[0] if waiting else None,
            "estimatedStartTime": api_time(waiting[1]) if waiting else None}


def task_view(task: TaskItem, *, presign: bool = True, queue: bool = True, language: str | None = None) -> TaskView:
    """`queue=False`: skip the provider queue lookup (a task just created, or a webhook body).

    Messages (errorMessage, effect) are in `language`, by default the request's (aigc.api.http). A body
    pushed without a request (webhooks, the socket) passes `language=pushed_language(task)`."""
    result_urls = [_presign(key) for key in (task.result_keys or [])] if presign and task.status == TaskStatus.COMPLETED else []
    image_urls = [_presign(*storage.ref_parts(u)[1:]) if presign and u.startswith("s3://") else u
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
        "effect": i18n.render_stored(task.effect, task.effect_text, language),
        "source": task.source,
        "createTime": task.created_at[:19] + "Z",
        "completeTime": api_time(task.completed_at),
        "errorCode": task.error_code,
        "errorMessage": i18n.render_stored(task.error_message, task.error_text, language),
        "retryableUntil": api_time(task.hold_until) if task.hold_until and not task.refunded else None,
        "webhook": task.webhook_url,
        "webhookEventsFilter": list(task.webhook_events or WEBHOOK_EVENTS) if task.webhook_url else None,
        **_result_view(task, parameters),
        **_queue_view(task, queue),
    })


def pushed_language(task: TaskItem) -> str:
    """The language of what is sent about a task without a request (webhook bodies, socket messages): the
    one its submit negotiated (Accept-Language), recorded on the task; English for uploads and older tasks."""
    return i18n.supported(task.language)


def ledger_view(item: PointsItem) -> LedgerEntry:
    shares = [{"lotId": lots.SpendKey.parse(key).lot_id, "points": points}
              for key, points in sorted(lots.plain(item.lots).items())]
    return LedgerEntry.model_validate({
        "id": item.entry,
        "type": (item.kind or "").lower(),
        "amount": int(item.amount or 0),
        "ref": item.ref,
        "taskNo": item.ref if item.ref and item.ref.startswith("TASK-") else None,
        "orderNo": orders.order_of_ref(item.ref),
        "reason": i18n.render_stored(item.reason, item.reason_text),
        "createTime": (item.ledger_time or "")[:19] + "Z",
        "lotId": shares[0]["lotId"] if len(shares) == 1 else None,
        "lots": shares,
    })


def page_view(page: Page, render: Callable, key: str = "records") -> dict:
    """Seed 001's page (records, total, page, size, pages) plus nextToken (null on the last page).

    total and pages are null where no counter is kept (filtered task lists)."""
    total = page.total
    with capacity.shared_reads():  # queued rows of one pool share one read of its queue's counters
        records = [render(item) for item in page.items]
    return {key: records, "total": total, "page": page.page, "size": page.size,
            "pages": None if total is None else (total + page.size - 1) // page.size,
            "nextToken": page.next_token}


def api_key_view(item: ApiKeyItem, secret: str | None = None) -> ApiKeyView:
    """A key as its owner sees it: never the secret, except `secret` in the answer that created it."""
    fields = {
        "keyId": item.key_id, "name": item.name, "prefix": item.prefix, "scopes": list(item.scopes or []),
        "expireTime": api_time(item.expire_at),
        "dailyPointsLimit": int(item.daily_points_limit) if item.daily_points_limit is not None else None,
        "models": list(item.models) if item.models is not None else None,
        "createTime": api_time(item.created_at), "lastUsedTime": api_time(item.last_used_at),
        "expired": item.expire_at is not None and item.expire_at <= utcnow(),
    }
    return NewApiKey(**fields, key=secret) if secret else ApiKeyView(**fields)
