"""Task records: creation, reads scoped to their owner, and the workflow's status updates."""
from __future__ import annotations

import re
import secrets
import zlib
from datetime import datetime, timedelta
from typing import Iterator

from aigc.core.catalog import ModelSpec, get_model
from aigc.core.config import get_settings
from aigc.core import i18n
from aigc.core.errors import NotFound
from aigc.core.i18n import Message, _
from aigc.core.timeutil import iso_ms, utcnow
from aigc.core.vocab import ACTIVE_STATUSES, TaskStatus
from aigc.store.db import TaskItem
from aigc.store.dynamo import conditional, get_or_none
from aigc.store.paging import Cursor, Page, read_page

# The sweep's index (Attention) spreads unsettled tasks over this many partitions by task number, so no
# partition key is written by every task (a task from before the shards has "1", one of them).
ATTENTION_SHARDS = 16
# The admins' search index (TasksByTime, aigc.domain.task_search) spreads each day's tasks over this many
# partitions, so no partition key is written by every task.
SEARCH_SHARDS = 4
# The workflow settles a task by its deadline; the sweep looks only this long after it.
SWEEP_SLACK = timedelta(minutes=15)


def new_task_no(now: datetime | None = None) -> str:
    """Seed 001's readable form, TASK-<yyyyMMddHHmmssSSS>-..., with 64 random bits so it never collides."""
    now = now or utcnow()
    return f"TASK-{now.strftime('%Y%m%d%H%M%S')}{now.microsecond // 1000:03d}-{secrets.token_hex(8)}"


def attention_shard(task_no: str) -> str:
    """The task's partition in the sweep's Attention index."""
    return str(zlib.crc32(task_no.encode()) % ATTENTION_SHARDS)


def search_keys(task_no: str, created_at: str) -> dict[str, str]:
    """A task's keys in TasksByTime: its day and shard, and a sort key unique to it."""
    return {"day_shard": f"{created_at[:10]}#{zlib.crc32(task_no.encode()) % SEARCH_SHARDS}",
            "created_key": f"{created_at}#{task_no}"}


def new_task(
    *,
    user_id: str,
    model: ModelSpec,
    prompt: str | None,
    negative_prompt: str | None,
    image_urls: list[str],
    provider_parameters: dict,
    effect: Message | str | None,
    points_cost: int,
    source: str = "api",
    task_no: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    template_code: str | None = None,
    template_version: int | None = None,
    template_inputs: dict | None = None,
    pricing: dict | None = None,
    task_deadline_seconds: int,
    queue_timeout_seconds: int,
    language: str | None = None,
) -> TaskItem:
    now = utcnow()
    task_no = task_no or new_task_no(now)
    # The deadline runs from when the job reaches the provider (aigc.flows.workflow); a task may first wait in
    # the provider queue (aigc.domain.capacity) for up to QUEUE_TIMEOUT_SECONDS: this bounds both.
    deadline_at = now + timedelta(
        seconds=min(model.deadline_seconds, task_deadline_seconds) + queue_timeout_seconds)
    return TaskItem(
        task_no,
        user_id=user_id,
        created_at=iso_ms(now),
        model_name=model.name,
        task_type=model.task_type,
        provider=model.provider,
        provider_model=model.provider_model,
        status=TaskStatus.QUEUED,
        status_key=status_key(TaskStatus.QUEUED, iso_ms(now)),
        source=source,
        prompt=prompt,
        negative_prompt=negative_prompt,
        image_urls=image_urls,
        parameters=provider_parameters,
        effect=str(effect) if effect is not None else None,
        effect_text=i18n.stored(effect),
        language=language,
        points_cost=points_cost,
        expected_seconds=model.expected_seconds,
        deadline_at=deadline_at,
        updated_at=now,
        refunded=False,
        execution_name=task_no,
        unsettled=attention_shard(task_no),
        attention_at=iso_ms(deadline_at + SWEEP_SLACK),
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        template_code=template_code,
        template_version=template_version,
        template_inputs=template_inputs,
        pricing=pricing,
        **search_keys(task_no, iso_ms(now)),
    )


def status_key(status: str, created_at: str) -> str:
    """The task's sort key in the UserStatus index."""
    return f"{status}#{created_at}"


def status_actions(task: TaskItem, status: str) -> list:
    """Set a task's status: always with its UserStatus key, so a status-filtered list finds it."""
    return [TaskItem.status.set(status), TaskItem.status_key.set(status_key(status, task.created_at))]


def error_actions(message: Message | str) -> list:
    """Set a task's errorMessage: the English text, and the Message to render in each reader's language."""
    text = i18n.stored(message)
    return [TaskItem.error_message.set(str(message)),
            TaskItem.error_text.set(text) if text else TaskItem.error_text.remove()]


def rejected_task(*, task_no: str, user_id: str, model: ModelSpec, source: str, image_urls: list[str],
                  error_code: str, error_message: Message | str) -> TaskItem:
    """A task refused before any charge (uploads): visible to the user, never billed."""
    now = utcnow()
    return TaskItem(
        task_no, user_id=user_id, created_at=iso_ms(now), model_name=model.name, task_type=model.task_type,
        provider=model.provider, provider_model=model.provider_model, status=TaskStatus.FAILED, source=source,
        status_key=status_key(TaskStatus.FAILED, iso_ms(now)), image_urls=image_urls, parameters={}, points_cost=0,
        expected_seconds=model.expected_seconds,
        deadline_at=now, completed_at=now, updated_at=now, error_code=error_code, error_message=str(error_message),
        error_text=i18n.stored(error_message), refunded=False, **search_keys(task_no, iso_ms(now)),
    )


def exists(task_no: str) -> bool:
    return TaskItem.count(task_no, limit=1) > 0


def get_task(task_no: str) -> TaskItem:
    task = get_or_none(TaskItem, task_no)
    if task is None:
        raise NotFound(_("task '{task_no}' not found", task_no=task_no))
    return task


def get_user_task(user_id: str, task_no: str) -> TaskItem:
    """A task of this user; another user's task is indistinguishable from a missing one."""
    task = get_task(task_no)
    if task.user_id != user_id:
        raise NotFound(_("task '{task_no}' not found", task_no=task_no))
    return task


TASK_CURSOR = Cursor("tasks", "user_id", {
    "created_at": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    "task_no": re.compile(r"TASK-[A-Za-z0-9-]{1,80}"),
})


STATUS_CURSOR = Cursor("tasks-by-status", "user_id", {
    "status_key": re.compile(r"[a-z_]{1,20}#\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
    "task_no": re.compile(r"TASK-[A-Za-z0-9-]{1,80}"),
})


def list_user_tasks(user_id: str, *, page: int, size: int, task_type: str | None, status: str | None,
                    token: str | None = None, total: int | None = None) -> Page[TaskItem]:
    """A page of the user's tasks, newest first. `total` is the caller's count (the ledger keeps the
    user's task counters, points.task_total); a list filtered by status has none."""
    condition = TaskItem.task_type == task_type if task_type else None
    if status:
        return _list_by_status(user_id, status, condition, page=page, size=size, token=token)

    def query(start: dict | None, limit: int):
        return TaskItem.user_tasks.query(user_id, scan_index_forward=False, filter_condition=condition,
                                         last_evaluated_key=start, limit=limit)

    return read_page(query, TASK_CURSOR, owner=user_id, page=page, size=size, token=token, total=total)


def _list_by_status(user_id: str, status: str, condition, *, page: int, size: int,
                    token: str | None) -> Page[TaskItem]:
    """Through the UserStatus index: only the tasks with that status are read (then the page's own, by key)."""

    def query(start: dict | None, limit: int):
        return TaskItem.user_status.query(user_id, TaskItem.status_key.startswith(f"{status}#"),
                                          scan_index_forward=False, filter_condition=condition,
                                          last_evaluated_key=start, limit=limit)

    found = read_page(query, STATUS_CURSOR, owner=user_id, page=page, size=size, token=token, total=None)
    numbers = [key.task_no for key in found.items]
    items = {item.task_no: item for item in TaskItem.batch_get(numbers)} if numbers else {}
    rows = [items[key.task_no] for key in found.items if key.task_no in items]
    return Page(rows, found.next_token, None, found.page, found.size)


def settled_actions() -> list:
    """What every settling update does: leave the sweep's Unsettled index, drop any hold."""
    return [TaskItem.unsettled.remove(), TaskItem.attention_at.remove(), TaskItem.hold_until.remove()]


def is_settled(task: TaskItem) -> bool:
    return task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED) or bool(task.refunded) or (
        task.status == TaskStatus.FAILED and task.hold_until is None
    )


def is_held(task: TaskItem) -> bool:
    return task.status == TaskStatus.FAILED and task.hold_until is not None and not task.refunded


def _conditional(task: TaskItem, actions: list, condition) -> bool:
    """Update while `condition` holds; when it does not, `task` is reloaded to show why."""
    return conditional(lambda: task.update(actions=actions + [TaskItem.updated_at.set(utcnow())], condition=condition),
                       on_failure=lambda: task.refresh(consistent_read=True))


def hold(task: TaskItem, reason: str, grace_seconds: int) -> bool:
    """One of our own failures: show it as failed and retryable, keep the points for a redrive."""
    until = utcnow() + timedelta(seconds=grace_seconds)
    minutes = max(1, grace_seconds // 60)
    return _conditional(task, [
        *status_actions(task, TaskStatus.FAILED),
        TaskItem.hold_until.set(until),
        TaskItem.attention_at.set(iso_ms(until)),
        TaskItem.error_code.set("InternalError.Retryable"),
        *error_actions(_(
            "the task stopped because of an internal error ({reason}); operators may retry it within "
            "{minutes} minutes, otherwise your points are refunded automatically", reason=reason[:120], minutes=minutes,
        )),
    ], TaskItem.status.is_in(*ACTIVE_STATUSES) & (TaskItem.refunded == False))


def resume_if_held(task: TaskItem) -> bool:
    """A redrive (or a fresh execution) of a held task picks it up again."""
    if not is_held(task):
        return False
    return _conditional(task, [
        *status_actions(task, TaskStatus.PROCESSING if task.started_at else TaskStatus.QUEUED),
        TaskItem.hold_until.remove(),
        TaskItem.attention_at.set(iso_ms(task.deadline_at + SWEEP_SLACK)),
        TaskItem.error_code.remove(),
        TaskItem.error_message.remove(),
        TaskItem.error_text.remove(),
    ], (TaskItem.status == TaskStatus.FAILED) & TaskItem.hold_until.exists() & (TaskItem.refunded == False))


def due_for_attention(page_size: int = 100) -> Iterator[TaskItem]:
    """Unsettled tasks whose deadline (plus slack) or hold window has passed: a page from each shard in turn,
    oldest first within a shard, until all are read. The index holds keys only: each page's tasks are read
    from the table (consistent, one batch)."""
    now = iso_ms(utcnow())
    starts: dict[int, dict | None] = dict.fromkeys(range(ATTENTION_SHARDS))
    while starts:
        for shard, start in list(starts.items()):
            found = TaskItem.unsettled_tasks.query(str(shard), TaskItem.attention_at <= now, limit=page_size,
                                                   last_evaluated_key=start)
            numbers = [item.task_no for item in found]
            if len(numbers) == page_size and found.last_evaluated_key:
                starts[shard] = found.last_evaluated_key
            else:
                del starts[shard]
            if numbers:
                yield from (task for task in TaskItem.batch_get(numbers, consistent_read=True) if task.unsettled)


def postpone_attention(task: TaskItem) -> None:
    task.update(actions=[TaskItem.attention_at.set(iso_ms(utcnow() + SWEEP_SLACK))])


def _update_active(task: TaskItem, actions: list) -> bool:
    """Apply updates only while the task is still active; False if it was settled meanwhile."""
    return _conditional(
        task, actions, TaskItem.status.is_in(*ACTIVE_STATUSES) & (TaskItem.refunded == False)
    )


def record_provider_job(task: TaskItem, provider_task_id: str | None, provider_status: str) -> bool:
    actions = [*status_actions(task, TaskStatus.PROCESSING), TaskItem.provider_status.set(provider_status)]
    if provider_task_id:
        actions.append(TaskItem.provider_task_id.set(provider_task_id))
    if task.started_at is None:
        actions.append(TaskItem.started_at.set(utcnow()))
    if task.provider_account:  # the account it was given a slot on (aigc.domain.capacity): polls and cancels use it
        actions.append(TaskItem.provider_account.set(task.provider_account))
    return _update_active(task, actions)


def record_provider_outputs(task: TaskItem, provider_status: str, outputs: list[str]) -> bool:
    return _update_active(
        task, [TaskItem.provider_status.set(provider_status), TaskItem.provider_outputs.set(outputs)]
    )


def complete(task: TaskItem, result_keys: list[str], thumbnail_key: str | None, media: dict | None = None) -> bool:
    """Mark completed (`media`: the first result's size, and a video's length). False when the task was
    cancelled or refunded first (it then stays so)."""
    if task.status == TaskStatus.COMPLETED:
        return True
    now = utcnow()
    return _update_active(
        task,
        [
            *status_actions(task, TaskStatus.COMPLETED),
            TaskItem.result_keys.set(result_keys),
            TaskItem.thumbnail_key.set(thumbnail_key),
            TaskItem.media.set(media) if media else TaskItem.media.remove(),
            TaskItem.completed_at.set(now),
            TaskItem.error_code.remove(),
            TaskItem.error_message.remove(),
            TaskItem.error_text.remove(),
            *settled_actions(),
        ],
    )


def plain_map(value) -> dict | None:
    """A MapAttribute as read back (or a dict as written) as a plain dict; None stays None."""
    if value is None:
        return None
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


def deadline_cap(model: ModelSpec) -> int:
    """How long a task of this model may run once at the provider: the model's deadline, at most
    TaskDeadlineSeconds for images and VideoTaskDeadlineSeconds for videos (minutes-long jobs)."""
    settings = get_settings()
    cap = settings.video_task_deadline_seconds if model.result_type == "video" else settings.task_deadline_seconds
    return min(model.deadline_seconds, cap)


def deadline_seconds(task: TaskItem) -> int:
    """How long the task may run once at the provider."""
    return deadline_cap(get_model(task.model_name))


def progress(task: TaskItem, now: datetime | None = None) -> int:
    """0..100; estimated from elapsed versus expected time, 100 only when completed."""
    if task.status == TaskStatus.COMPLETED:
        return 100
    if task.status != TaskStatus.PROCESSING or task.started_at is None:
        return 0
    elapsed = ((now or utcnow()) - task.started_at).total_seconds()
    return max(1, min(95, int(elapsed * 100 / max(1, int(task.expected_seconds)))))
