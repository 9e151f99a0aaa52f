"""Accepting a task: validate, price, debit and create it atomically, then start its workflow."""
from __future__ import annotations

from functools import lru_cache

from pydantic import ValidationError

from aigc.api.parameters import SCHEMAS
from aigc.api.schemas import SubmitTaskRequest, TaskView, describe_validation_error, parse_image_urls
from aigc.api.views import task_view
from aigc.core.catalog import ModelSpec, get_model
from aigc.core.config import get_settings
from aigc.core.errors import BadRequest, Conflict, ServiceUnavailable
from aigc.core.observability import count, logger
from aigc.core.vocab import TaskStatus
from aigc.domain import capacity, points, settlement, tasks, webhooks
from aigc.store import executions

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def _check_inputs(model: ModelSpec, prompt: str | None, image_urls: list[str]) -> None:
    if model.inputs.prompt == "required" and not prompt:
        raise BadRequest(f"prompt: required for model {model.name}")
    if model.inputs.prompt == "none" and prompt:
        raise BadRequest(f"prompt: model {model.name} takes no prompt")
    if len(image_urls) < model.inputs.min_images:
        raise BadRequest(f"imageUrl: model {model.name} needs {model.inputs.min_images} image URL(s)")
    if len(image_urls) > model.inputs.max_images:
        if model.inputs.max_images == 0:
            raise BadRequest(f"imageUrl: model {model.name} takes no image")
        raise BadRequest(f"imageUrl: model {model.name} takes at most {model.inputs.max_images} image URL(s)")


def prepare_task(user_id: str, request: SubmitTaskRequest, *, source: str = "api",
                 image_urls: list[str] | None = None, task_no: str | None = None):
    """Validate and price a request; returns the unsaved task record. Raises on any bad input.

    `image_urls` replaces the request's imageUrl for our own objects (uploads: s3:// references).
    """
    settings = get_settings()
    model = get_model(request.model_name)
    if image_urls is None:
        image_urls = parse_image_urls(request.image_url, allow_private_hosts=settings.allow_private_hosts)
    _check_inputs(model, request.prompt, image_urls)
    try:
        parameters = SCHEMAS[model.parameter_schema].model_validate(request.parameters or {})
    except ValidationError as error:
        raise BadRequest(describe_validation_error(error, "parameters")) from None
    webhook_url, webhook_events = webhooks.subscription(request.webhook, request.webhook_events_filter,
                                                       allow_private=settings.allow_private_hosts)
    provider_parameters = parameters.provider_parameters(model)
    cost = model.price(provider_parameters, parameters.image_count)
    return tasks.new_task(
        user_id=user_id,
        model=model,
        prompt=request.prompt,
        negative_prompt=getattr(parameters, "negative_prompt", None),
        image_urls=image_urls,
        provider_parameters=provider_parameters,
        effect=parameters.effect(),
        points_cost=cost,
        source=source,
        task_no=task_no,
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        task_deadline_seconds=settings.task_deadline_seconds,
        queue_timeout_seconds=settings.queue_timeout_seconds,
    )


def charge_and_start(task, *, rate_limit_per_minute: int | None = None) -> TaskView:
    """Debit + create (one transaction), then start the workflow; refund at once if it cannot start."""
    if rate_limit_per_minute is None:
        rate_limit_per_minute = get_settings().submit_rate_limit_per_minute
    points.debit_for_new_task(task, rate_limit_per_minute=rate_limit_per_minute)
    logger.append_keys(task_no=task.task_no)
    count("TasksSubmitted", model=task.model_name)
    count("PointsDebited", int(task.points_cost))
    try:
        executions.start_task_execution(task.task_no)
    except Exception:
        logger.exception("could not start the workflow; refunding")
        settlement.refund(task, status=TaskStatus.FAILED, code="StartFailed",
                          message="the task could not be started; your points were refunded")
        raise ServiceUnavailable("the task could not be started; your points were refunded, please retry") from None
    logger.info("task accepted", extra={"cost": int(task.points_cost), "model": task.model_name})
    return task_view(task, presign=False, queue=False)


def _submit(user_id: str, request: SubmitTaskRequest, tier: int | None = None) -> TaskView:
    task = prepare_task(user_id, request)
    task.priority = tier  # the provider queue's tier (aigc.domain.capacity): members first
    return charge_and_start(task)


def _retry(user_id: str, task_no: str) -> TaskView:
    """A new task with the same inputs as a failed or cancelled task of the user, charged at today's price."""
    old = tasks.get_user_task(user_id, task_no)
    if old.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise Conflict(f"task {task_no} is {old.status}; only failed or cancelled tasks can be retried")
    if (old.error_code or "").startswith("Rejected."):
        # An upload refused before any charge never passed the upload checks: a retry would skip them.
        raise Conflict(f"task {task_no} was rejected when it was uploaded ({old.error_code}: {old.error_message}) "
                       "and was never charged; it cannot be retried: upload the image again")
    if tasks.is_held(old):
        raise Conflict(f"task {task_no} is held for an operator's retry (its points are still debited); "
                       "retry it once it is refunded")
    model = get_model(old.model_name)
    parameters = old.parameters.as_dict() if hasattr(old.parameters, "as_dict") else dict(old.parameters or {})
    task = tasks.new_task(
        user_id=user_id, model=model, prompt=old.prompt, negative_prompt=old.negative_prompt,
        image_urls=list(old.image_urls or []), provider_parameters=parameters, effect=old.effect,
        points_cost=model.price(parameters, int(parameters.get("n", 1))), source=old.source,
        webhook_url=old.webhook_url, webhook_events=list(old.webhook_events) if old.webhook_events else None,
        task_deadline_seconds=get_settings().task_deadline_seconds,
        queue_timeout_seconds=get_settings().queue_timeout_seconds,
    )
    task.priority = old.priority  # the same queue tier as the first try
    logger.info("retrying a task", extra={"retry_of": task_no})
    return charge_and_start(task)


@lru_cache(maxsize=1)
def _idempotency():
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

    config = IdempotencyConfig(
        event_key_jmespath="[userId, key]",
        payload_validation_jmespath="request",
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        raise_on_no_idempotency_key=True,
    )
    store = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)

    @idempotent_function(data_keyword_argument="call", config=config, persistence_store=store,
                         output_serializer=PydanticSerializer(TaskView))
    def submit_once(call: dict) -> TaskView:
        if "retryOf" in call["request"]:
            return _retry(call["userId"], call["request"]["retryOf"])
        return _submit(call["userId"], SubmitTaskRequest.model_validate(call["request"]), call.get("tier"))

    return config, submit_once


def register_lambda_context(context) -> None:
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        _idempotency()[0].register_lambda_context(context)


def submit_task(user_id: str, request: SubmitTaskRequest, idempotency_key: str | None, *, groups=(),
                member_group: str) -> TaskView:
    """Accept a task. With an Idempotency-Key, a repeat returns the same task and charges nothing."""
    tier = capacity.tier_for(groups, member_group)
    if idempotency_key is None:
        return _submit(user_id, request, tier)
    return _once(user_id, idempotency_key, request.model_dump(by_alias=True, exclude_none=True), tier=tier)


def retry_task(user_id: str, task_no: str, idempotency_key: str | None) -> TaskView:
    """Submit a failed or cancelled task again (seed 000); with an Idempotency-Key, once."""
    if idempotency_key is None:
        return _retry(user_id, task_no)
    return _once(user_id, idempotency_key, {"retryOf": task_no})


def _once(user_id: str, idempotency_key: str, request: dict, tier: int | None = None) -> TaskView:
    if not (1 <= len(idempotency_key) <= 128) or not idempotency_key.isprintable():
        raise BadRequest("Idempotency-Key: 1 to 128 printable characters")
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    _, submit_once = _idempotency()
    try:
        return submit_once(call={"userId": user_id, "key": idempotency_key, "tier": tier, "request": request})
    except IdempotencyValidationError:
        raise Conflict("Idempotency-Key was already used for a different request") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("a request with this Idempotency-Key is still in progress; retry in a moment") from None
