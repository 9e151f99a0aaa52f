"""The steps of the task workflow (statemachine/task_workflow.asl.json), one function per state.

Every step takes and returns the small state `{"taskNo": ..., "job": {...}}` (ids only, never
image bytes) and is safe to run twice: it re-reads the task record and does nothing for a task
that is already settled. `job.status` drives the state machine's Choice states:

Outcome.QUEUED (the provider pool is full: wait for a slot, aigc.domain.capacity; `job.queueSeconds` is what is
left of the queue's time limit), Outcome.RUNNING (a Wait state of `job.waitSeconds`, then poll), Outcome.POLLING (poll again at once),
Outcome.SUCCEEDED (store outputs), Outcome.FAILED / Outcome.TIMED_OUT (refund), Outcome.COMPLETED (done), Outcome.REFUNDED (done,
refunded), Outcome.SETTLED (someone else settled it: done).

Polling: the workflow waits (one transition, no Lambda time) until the job could plausibly have
ended (aigc.domain.durations), then one poll invocation asks the provider about every second for up to
its Lambda time budget, so the end is seen within about a second (docs/ARCHITECTURE.md, "Seeing the end within a second").
"""
from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta, timezone

from aigc.core.catalog import get_model, result_type
from aigc.core.config import get_settings
from aigc.core.errors import ProviderRejected
from aigc.core.i18n import Message, _
from aigc.core.observability import MetricUnit, count, logger, metrics
from aigc.core.timeutil import utcnow
from aigc.core.vocab import JobStatus, Outcome, TaskStatus
from aigc.domain import capacity, durations, settlement, tasks
from aigc.providers import base, cancel_quietly, get_provider
from aigc.providers.error_messages import task_message
from aigc.store import executions, storage
from aigc.store.db import TaskItem

# A poll invocation stops this long before its Lambda timeout, and never polls longer than this.
POLL_TIME_RESERVE_SECONDS = 10.0
MAX_POLL_INVOCATION_SECONDS = 110.0
# The pause between polls; the local stack scales it with the Wait states (local.lambda_runtime).
SLEEP = time.sleep


def _state(task: TaskItem, status: str, **job) -> dict:
    return {"taskNo": task.task_no, "job": {"status": status, **{k: v for k, v in job.items() if v is not None}}}


def _load(event: dict) -> TaskItem:
    """The task, picked up again if an earlier run failed and held it (a redrive)."""
    task = tasks.get_task(event["taskNo"])
    logger.append_keys(task_no=task.task_no, user_id=task.user_id, model=task.model_name)
    if tasks.is_held(task) and tasks.resume_if_held(task):
        logger.info("resuming a held task (redrive or a new execution)")
    return task


def _provider_image_urls(task: TaskItem) -> list[str]:
    """Our own objects (uploads) go to the provider as short-lived presigned URLs."""
    settings = get_settings()
    urls = []
    for url in task.image_urls or []:
        if url.startswith(f"s3://{settings.results_bucket}/"):
            _, key, version_id = storage.ref_parts(url)
            url = storage.presigned_get(settings.results_bucket, key, 3600, version_id)  # the version checked
        urls.append(url)
    return urls


def _seconds_to_deadline(task: TaskItem) -> float:
    """The deadline runs from when the job reached the provider (queued time does not count)."""
    deadline = task.deadline_at
    if task.started_at is not None:
        deadline = min(deadline, task.started_at + timedelta(seconds=tasks.deadline_seconds(task)))
    return (deadline - utcnow()).total_seconds()


def _queue_seconds_left(task: TaskItem) -> int:
    created = datetime.strptime(task.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return max(1, int(get_settings().queue_timeout_seconds - (utcnow() - created).total_seconds()))


def _failed(task: TaskItem, code: str | None, detail: str | None) -> dict:
    """The job failed for good: refund. The user sees our message for the code (providers.error_messages);
    the provider's own text (request ids, endpoints) goes to the log only."""
    code = code or "ProviderFailed"
    logger.warning("task failed", extra={"error_code": code, "provider_detail": detail})
    return _state(task, Outcome.FAILED, errorCode=code)


def _timed(call, *args):
    started = time.perf_counter()
    try:
        return call(*args)
    finally:
        metrics.add_metric(name="ProviderLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)


def submit_step(event: dict) -> dict:
    """Send the job to the provider once, within its pool's capacity. Sync providers answer with the images."""
    if event.get("taskToken"):
        return wait_for_slot_step(event)
    task = _load(event)
    if tasks.is_settled(task):
        capacity.finish(task)
        return _state(task, Outcome.SETTLED)
    model = get_model(task.model_name)
    if task.provider_task_id:  # a retry or redrive after the provider already accepted the job
        capacity.renew(task, durations.window(model).start)
        return _until_window(task, model)
    if task.provider_outputs:  # sync provider already answered
        return _state(task, Outcome.SUCCEEDED)
    provider = get_provider(task.provider)
    request = base.ProviderRequest(
        model=task.provider_model,
        task_type=task.task_type,
        prompt=task.prompt,
        negative_prompt=task.negative_prompt,
        image_urls=_provider_image_urls(task),
        parameters=task.parameters.as_dict() if hasattr(task.parameters, "as_dict") else dict(task.parameters),
    )
    try:
        # The user's inputs that the adapter sends itself are fetched before a slot is taken: an
        # unreachable or slow URL is the user's failure (refunded at once) and never holds a slot.
        request = base.prepare(provider, request)
    except ProviderRejected as error:
        capacity.finish(task)  # a task woken from the queue was handed a slot: give it back now
        return _failed(task, error.code, error.message)
    if not capacity.try_start(task):
        logger.info("provider pool is full: queued")
        return _state(task, Outcome.QUEUED, queueSeconds=_queue_seconds_left(task))
    provider = get_provider(task.provider, task.provider_account)  # the account its slot is on
    capacity.take_submit_turn(task)
    try:
        job = _timed(provider.submit, request)
    except ProviderRejected as error:
        logger.warning("provider rejected the task", extra={"error_code": error.code})
        capacity.finish(task)
        return _failed(task, error.code, error.message)
    if not provider.is_async:
        capacity.finish(task)  # the provider's work is over: free the slot before storing
        return _store_sync_outputs(task, job)
    if not tasks.record_provider_job(task, job.provider_task_id, job.status):
        cancel_quietly(provider, job.provider_task_id)
        capacity.finish(task)
        return _state(task, Outcome.SETTLED)
    logger.info("submitted to provider", extra={"provider_task_id": job.provider_task_id})
    return _until_window(task, model)


def _until_window(task: TaskItem, model) -> dict:
    """Wait (a Wait state) until the job could have ended, or poll at once when that is near."""
    elapsed = (utcnow() - task.started_at).total_seconds() if task.started_at else 0.0
    wait = min(durations.window(model).start - elapsed, _seconds_to_deadline(task) + 1)
    if wait < 1:
        return _state(task, Outcome.POLLING)
    capacity.renew(task, wait)
    return _state(task, Outcome.RUNNING, waitSeconds=int(wait))


def wait_for_slot_step(event: dict) -> dict:
    """WaitForSlot (waitForTaskToken): register the execution in its pool's queue; it is woken when a
    slot is handed to it (`{"job": {"status": "ADMITTED"}}`), or at once when the task was settled."""
    task = tasks.get_task(event["taskNo"])
    logger.append_keys(task_no=task.task_no, user_id=task.user_id, model=task.model_name)
    if tasks.is_settled(task):
        capacity.finish(task)
        executions.send_task_success(event["taskToken"], _state(task, Outcome.SETTLED))
        return {"waiting": False}
    capacity.wait_for_slot(task, event["taskToken"])
    return {"waiting": True}


def _store_sync_outputs(task: TaskItem, job: base.ProviderJob) -> dict:
    if job.status != JobStatus.SUCCEEDED:
        return _failed(task, job.error_code, job.error_message)
    settings = get_settings()
    prefix = storage.result_prefix(task.user_id, task.task_no)
    refs = list(job.output_urls)
    for index, b64 in enumerate(job.b64_outputs, start=len(refs) + 1):
        key = storage.put_base64_image(b64, settings.results_bucket, f"{prefix}{index}")
        refs.append(f"s3://{settings.results_bucket}/{key}")
    if not refs:
        return _failed(task, "NoOutput", "the provider returned no image")
    if not tasks.record_provider_job(task, None, JobStatus.SUCCEEDED) or not tasks.record_provider_outputs(
        task, JobStatus.SUCCEEDED, refs
    ):
        return _state(task, Outcome.SETTLED)
    return _state(task, Outcome.SUCCEEDED)


def _poll_budget(remaining_ms: int | None) -> float:
    if remaining_ms is None:
        return MAX_POLL_INVOCATION_SECONDS
    return max(0.0, min(MAX_POLL_INVOCATION_SECONDS, remaining_ms / 1000 - POLL_TIME_RESERVE_SECONDS))


def poll_step(event: dict, remaining_ms: int | None = None) -> dict:
    """Ask the provider about every second for this invocation's budget; decide: store, refund, or poll on.

    Between polls the task is re-read, so a cancel ends the loop at once.
    """
    task = _load(event)
    if tasks.is_settled(task):
        return _state(task, Outcome.SETTLED)
    if task.status == TaskStatus.COMPLETED:
        return _state(task, Outcome.COMPLETED)
    model = get_model(task.model_name)
    provider = get_provider(task.provider, task.provider_account)  # its job lives at that account
    interval = model.poll.interval_seconds
    budget = _poll_budget(remaining_ms)
    polls_left = max(1, int(budget // interval))
    capacity.renew(task, budget)  # also takes a slot back after a redrive
    last_status = task.provider_status
    next_poll = time.monotonic()
    while True:
        next_poll += interval  # a fixed cadence: the time a poll takes does not stretch the interval
        # Poll even past the deadline: a job that finished meanwhile (or during a hold) is delivered.
        job = _timed(provider.poll, task.provider_task_id)
        if job.status == JobStatus.SUCCEEDED:
            stored = tasks.record_provider_outputs(task, job.status, job.output_urls)
            capacity.finish(task)  # the provider's work is over: the next queued task may start
            if task.started_at is not None:
                durations.record(task.model_name, task.task_no, (utcnow() - task.started_at).total_seconds())
            return _state(task, Outcome.SUCCEEDED if stored else Outcome.SETTLED)
        if job.status in base.FINAL_FAILURE_STATUSES or job.status not in base.IN_PROGRESS_STATUSES:
            capacity.finish(task)
            code = job.error_code or (f"Task{job.status.title()}" if job.status != JobStatus.FAILED else None)
            return _failed(task, code, job.error_message)
        if _seconds_to_deadline(task) <= 0:
            return _state(task, Outcome.TIMED_OUT)
        if job.status != last_status:
            if not tasks.record_provider_job(task, task.provider_task_id, job.status):
                return _state(task, Outcome.SETTLED)
            last_status = job.status
        polls_left -= 1
        if polls_left <= 0:
            return _state(task, Outcome.POLLING)
        task.refresh(consistent_read=True)
        if tasks.is_settled(task):
            return _state(task, Outcome.SETTLED)
        SLEEP(max(0.0, next_poll - time.monotonic()))


def store_step(event: dict) -> dict:
    """Copy the provider's outputs into results/<userId>/<taskNo>/, make a thumbnail, complete."""
    task = _load(event)
    if task.status == TaskStatus.COMPLETED:
        return _state(task, Outcome.COMPLETED)
    if tasks.is_settled(task):
        return _state(task, Outcome.SETTLED)
    settings = get_settings()
    prefix = storage.result_prefix(task.user_id, task.task_no)
    if result_type(task.task_type) == "video":
        return _store_video(task, settings, prefix)
    keys: list[str] = []
    thumbnail_key = None
    media = None
    try:
        for index, ref in enumerate(task.provider_outputs or [], start=1):
            with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as spool:
                if ref.startswith("s3://"):
                    # Only what this task wrote (a sync provider's images) in our bucket under its own
                    # results/<user>/<task>/: an s3:// output naming anything else is refused.
                    key = storage.result_location_allowed(ref, settings.results_bucket, prefix)
                    if key is None:
                        raise ProviderRejected(f"an output outside the task's results: {ref}",
                                               code="ResultLocationNotAllowed")
                    if index == 1:
                        storage.download_to(settings.results_bucket, key, spool)
                else:
                    key = storage.copy_url_to_s3(
                        ref, settings.results_bucket, f"{prefix}{index}",
                        allowed_hosts=settings.result_hosts, max_bytes=settings.max_result_bytes, spool=spool,
                    )
                keys.append(key)
                if index == 1:
                    thumbnail_key = storage.write_thumbnail(spool, settings.results_bucket, f"{prefix}thumbnail.jpg")
                    size = storage.image_size(spool)
                    media = {"width": size[0], "height": size[1]} if size else None
    except ProviderRejected as error:
        logger.warning("could not store results", extra={"error_code": error.code})
        return _failed(task, error.code, error.message)
    if not keys:
        return _failed(task, "NoOutput", "the provider returned no image")
    return _complete(task, keys, thumbnail_key, media)


def _store_video(task: TaskItem, settings, prefix: str) -> dict:
    """A video job's one MP4: streamed to /tmp (refused before the copy when larger than MAX_VIDEO_BYTES),
    checked and its first frame written as the poster (thumbnail.jpg) with PyAV, then copied to
    results/<user>/<task>/1.mp4 in parts. A file that is not a playable video fails the task (refunded)."""
    outputs = list(task.provider_outputs or [])
    if not outputs:
        return _failed(task, "NoOutput", "the provider returned no video")
    ref = outputs[0]
    thumbnail_key = f"{prefix}thumbnail.jpg"
    try:
        with tempfile.NamedTemporaryFile(suffix=".mp4") as spool:
            if ref.startswith("s3://"):
                key = storage.result_location_allowed(ref, settings.results_bucket, prefix)
                if key is None:
                    raise ProviderRejected(f"an output outside the task's results: {ref}", code="ResultLocationNotAllowed")
                storage.download_to(settings.results_bucket, key, spool)
                spool.flush()
                media = storage.video_poster(spool.name, settings.results_bucket, thumbnail_key)
            else:
                content_type = storage.download_video(ref, spool, allowed_hosts=settings.result_hosts,
                                                      max_bytes=settings.max_video_bytes)
                media = storage.video_poster(spool.name, settings.results_bucket, thumbnail_key)
                key = storage.upload_video(spool.name, settings.results_bucket, f"{prefix}1.mp4", content_type)
    except ProviderRejected as error:
        logger.warning("could not store the video", extra={"error_code": error.code})
        capacity.finish(task)
        return _failed(task, error.code, error.message)
    return _complete(task, [key], thumbnail_key, dict(media))


def _complete(task: TaskItem, keys: list[str], thumbnail_key: str | None, media: dict | None) -> dict:
    completed = tasks.complete(task, keys, thumbnail_key, media)
    capacity.finish(task)  # normally already free (the poll that saw the end released it)
    if not completed:
        logger.warning("task was settled before it could complete; results left unused", extra={"keys": keys})
        return _state(task, Outcome.SETTLED)
    count("TasksCompleted", model=task.model_name)
    logger.info("task completed", extra={"results": len(keys)})
    return _state(task, Outcome.COMPLETED)


def refund_step(event: dict) -> dict:
    """Refund a task the provider failed or that passed its deadline; at most once, never a completed one."""
    task = _load(event)
    job = event.get("job") or {}
    if job.get("status") == Outcome.TIMED_OUT:
        code = "Timeout"
        message = _("timed out: no result within {span}; your points were refunded",
                    span=_span(tasks.deadline_seconds(task)))
        cancel_quietly(task.provider, task.provider_task_id, task.provider_account)
    elif job.get("status") == Outcome.QUEUE_TIMEOUT:
        code = "QueueTimeout"
        message = _("the provider was busy: the task waited {span} in the queue without a free slot and was not "
                    "started; your points were refunded", span=_span(get_settings().queue_timeout_seconds))
    else:  # always our own message for the code, whatever text the state carries (older runs had the provider's)
        code = job.get("errorCode") or "ProviderFailed"
        message = task_message(code, task.task_type)
    refunded = settlement.refund(task, status=TaskStatus.FAILED, code=code, message=message)
    capacity.finish(task)  # settlement.refund already did when it refunded: this covers a repeat
    if not refunded:
        return _state(task, Outcome.SETTLED)
    count("TasksFailed", model=task.model_name)
    return _state(task, Outcome.REFUNDED, errorCode=code)


def _span(seconds: int) -> Message:
    return _("{minutes} minutes", minutes=seconds // 60) if seconds % 60 == 0 else _("{seconds} seconds", seconds=seconds)
