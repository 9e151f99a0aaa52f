"""Accepting a task: validate, price, debit and create it atomically, then start its workflow."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import ValidationError

from aigc.api.parameters import SCHEMAS
from aigc.api.schemas import SubmitTaskRequest, TaskView, describe_validation_error, parse_image_urls
from aigc.api.validation_messages import problem_message
from aigc.api.views import task_view
from aigc.core import templates as template_catalog
from aigc.core.catalog import ModelSpec, Pricing, get_model, result_type
from aigc.core.templates import TemplateSpec
from aigc.core.config import get_settings
from aigc.core import i18n
from aigc.core.errors import BadRequest, Conflict, ServiceUnavailable
from aigc.core.i18n import Message, _
from aigc.core.observability import count, logger
from aigc.core.vocab import TaskStatus
from aigc.domain import api_keys, capacity, points, settlement, tasks, webhooks
from aigc.domain.api_keys import KeyLimits
from aigc.domain import pricing, templates
from aigc.store import executions

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def _check_inputs(model: ModelSpec, prompt: str | None, image_urls: list[str]) -> None:
    if model.inputs.prompt == "required" and not prompt:
        raise BadRequest(_("prompt: required for model {model}", model=model.name))
    if model.inputs.prompt == "none" and prompt:
        raise BadRequest(_("prompt: model {model} takes no prompt", model=model.name))
    if len(image_urls) < model.inputs.min_images:
        raise BadRequest(_("imageUrl: model {model} needs {count} image URL(s)", model=model.name,
                           count=model.inputs.min_images))
    if len(image_urls) > model.inputs.max_images:
        if model.inputs.max_images == 0:
            raise BadRequest(_("imageUrl: model {model} takes no image", model=model.name))
        raise BadRequest(_("imageUrl: model {model} takes at most {count} image URL(s)", model=model.name,
                           count=model.inputs.max_images))


@dataclass(frozen=True)
class _Chosen:
    """What a request asks for: a model with its prompt and parameters, or a template rendered into them."""

    model: ModelSpec
    prompt: str | None
    parameters: dict
    pricing: Pricing
    template: TemplateSpec | None = None
    inputs: dict | None = None


def _choose(request: SubmitTaskRequest) -> _Chosen:
    if (request.model_name is None) == (request.template_code is None):
        raise BadRequest(_("modelName or templateCode: give exactly one of the two"))
    if request.template_code is None:
        for name, value in (("templateVersion", request.template_version), ("inputs", request.inputs)):
            if value is not None:
                raise BadRequest(_("{field}: only with templateCode", field=name))
        model = get_model(request.model_name)
        return _Chosen(model, request.prompt, request.parameters or {}, model.pricing)
    for name, value in (("prompt", request.prompt), ("parameters", request.parameters)):
        if value is not None:
            raise BadRequest(_("{field}: not with templateCode (the template sets it; give its inputs)", field=name))
    template = template_catalog.get_template(request.template_code, request.template_version)
    resolved = templates.resolve(template, request.inputs)
    return _Chosen(get_model(template.model_name), resolved.prompt, resolved.parameters, template.pricing,
                   template, resolved.inputs)


def _check_template_images(template: TemplateSpec, model: ModelSpec, image_urls: list[str]) -> None:
    if len(image_urls) < model.inputs.min_images:
        raise BadRequest(_("imageUrl: template {template} needs {count} image URL(s)", template=template.code,
                           count=model.inputs.min_images))
    if len(image_urls) > model.inputs.max_images:
        if not model.inputs.max_images:
            raise BadRequest(_("imageUrl: template {template} takes no image", template=template.code))
        raise BadRequest(_("imageUrl: template {template} takes at most {count} image URL(s)", template=template.code,
                           count=model.inputs.max_images))


def _validate_parameters(model: ModelSpec, chosen: _Chosen):
    """The model's parameter rules; for a template, a problem is named by the input that set the parameter."""
    try:
        parameters = SCHEMAS[model.parameter_schema].model_validate(chosen.parameters)
        parameters.provider_parameters(model)
        return parameters
    except ValidationError as error:
        if chosen.template is None:
            raise BadRequest(describe_validation_error(error, "parameters")) from None
        problem = error.errors()[0]
        field = str(problem.get("loc", ("?",))[0])
        source = templates.parameter_input(chosen.template, field)
        where = f"inputs.{source}" if source else _("template {template} (parameter {field})",
                                                     template=chosen.template.code, field=field)
        raise BadRequest(_("{field}: {problem}", field=where, problem=problem_message(problem))) from None
    except BadRequest as error:
        if chosen.template is None:
            raise
        field = str(error.message).split(":", 1)[0].removeprefix("parameters.")
        source = templates.parameter_input(chosen.template, field)
        if source is None:
            raise
        raise BadRequest(_relabeled(error.text, field, f"inputs.{source}")) from None


def _relabeled(text: Message | str, field: str, new_field: str) -> Message | str:
    """A parameter's error named by the template input that set it (in every language)."""
    for old in (f"parameters.{field}", field):
        if str(text).startswith(old + ":"):
            return text.relabel(old, new_field) if isinstance(text, Message) else new_field + str(text)[len(old):]
    return text


def quote(request: SubmitTaskRequest) -> dict:
    """POST /user/ai/tasks/quote: the price a submit of this body would charge, and why; nothing is written.
    The same validation and the same rules as a submit (prepare_task), so a quote is what a submit charges."""
    task = prepare_task("quote", request)
    return {"modelName": task.model_name, "taskType": task.task_type, "resultType": result_type(task.task_type),
            "templateCode": task.template_code, "templateVersion": task.template_version,
            "parameters": tasks.plain_map(task.parameters), "pricing": tasks.plain_map(task.pricing)}


def prepare_task(user_id: str, request: SubmitTaskRequest, *, source: str = "api",
                 image_urls: list[str] | None = None, task_no: str | None = None):
    """Validate and price a request; returns the unsaved task record. Raises on any bad input.

    `image_urls` replaces the request's imageUrl for our own objects (uploads: s3:// references).
    """
    settings = get_settings()
    chosen = _choose(request)
    model = chosen.model
    if image_urls is None:
        image_urls = parse_image_urls(request.image_url, allow_private_hosts=settings.allow_private_hosts)
    if chosen.template is not None:
        _check_template_images(chosen.template, model, image_urls)
    _check_inputs(model, chosen.prompt, image_urls)
    parameters = _validate_parameters(model, chosen)
    webhook_url, webhook_events = webhooks.subscription(request.webhook, request.webhook_events_filter,
                                                       allow_private=settings.allow_private_hosts)
    provider_parameters = parameters.provider_parameters(model)
    price = pricing.quote(chosen.pricing, provider_parameters)
    return tasks.new_task(
        user_id=user_id,
        model=model,
        prompt=chosen.prompt,
        negative_prompt=getattr(parameters, "negative_prompt", None),
        image_urls=image_urls,
        provider_parameters=provider_parameters,
        effect=parameters.effect(),
        points_cost=price.total,
        source=source,
        task_no=task_no,
        webhook_url=webhook_url,
        webhook_events=webhook_events,
        template_code=chosen.template.code if chosen.template else None,
        template_version=chosen.template.version if chosen.template else None,
        template_inputs=chosen.inputs,
        pricing=price.as_dict(),
        task_deadline_seconds=tasks.deadline_cap(model),
        queue_timeout_seconds=settings.queue_timeout_seconds,
        language=i18n.current_language() if source == "api" else None,
    )


def charge_and_start(task, *, rate_limit_per_minute: int | None = None, api_key: KeyLimits | None = None) -> TaskView:
    """Debit + create (one transaction), then start the workflow; refund at once if it cannot start. Refused
    first (429, nothing charged) when the model's provider queue is too long to start it in time (admission).
    With `api_key`, the key's models and daily points limit are checked before, and its spend counted in,
    that transaction (aigc.domain.api_keys)."""
    if rate_limit_per_minute is None:
        rate_limit_per_minute = get_settings().submit_rate_limit_per_minute
    if task.source != "upload":  # admission control (a 429 before any charge); an upload has nobody to answer
        capacity.admit(task.model_name, capacity.tier_of(task), get_settings().queue_timeout_seconds)
    spend = api_keys.spend_writes(api_key, task.user_id, task.model_name, int(task.points_cost))
    task.api_key_id = api_key.key_id if api_key else None
    points.debit_for_new_task(task, rate_limit_per_minute=rate_limit_per_minute, extra_writes=spend)
    logger.append_keys(task_no=task.task_no)
    count("TasksSubmitted", model=task.model_name)
    count("PointsDebited", int(task.points_cost))
    try:
        executions.start_task_execution(task.task_no)
    except Exception:
        logger.exception("could not start the workflow; refunding")
        settlement.refund(task, status=TaskStatus.FAILED, code="StartFailed",
                          message=_("the task could not be started; your points were refunded"))
        raise ServiceUnavailable(_("the task could not be started; your points were refunded, please retry")) from None
    logger.info("task accepted", extra={"cost": int(task.points_cost), "model": task.model_name})
    return task_view(task, presign=False, queue=False)


def _submit(user_id: str, request: SubmitTaskRequest, tier: int | None = None,
            api_key: KeyLimits | None = None) -> TaskView:
    task = prepare_task(user_id, request)
    task.priority = tier  # the provider queue's tier (aigc.domain.capacity): members first
    return charge_and_start(task, api_key=api_key)


def _retry(user_id: str, task_no: str, api_key: KeyLimits | None = None) -> TaskView:
    """A new task with the same inputs as a failed or cancelled task of the user, charged at today's price."""
    old = tasks.get_user_task(user_id, task_no)
    if old.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise Conflict(_("task {task_no} is {status}; only failed or cancelled tasks can be retried",
                         task_no=task_no, status=old.status))
    if (old.error_code or "").startswith("Rejected."):
        # An upload refused before any charge never passed the upload checks: a retry would skip them.
        raise Conflict(_("task {task_no} was rejected when it was uploaded ({error_code}: {reason}) "
                         "and was never charged; it cannot be retried: upload the image again", task_no=task_no,
                         error_code=old.error_code, reason=i18n.restore(old.error_message, old.error_text) or ""))
    if tasks.is_held(old):
        raise Conflict(_("task {task_no} is held for an operator's retry (its points are still debited); "
                         "retry it once it is refunded", task_no=task_no))
    model = get_model(old.model_name)
    parameters = old.parameters.as_dict() if hasattr(old.parameters, "as_dict") else dict(old.parameters or {})
    # The same inputs, priced by today's rules: the template version the task was made with (404 when that
    # version is disabled now), else the model's.
    template = (template_catalog.get_template(old.template_code, int(old.template_version))
                if old.template_code else None)
    price = pricing.quote(template.pricing if template else model.pricing, parameters)
    task = tasks.new_task(
        user_id=user_id, model=model, prompt=old.prompt, negative_prompt=old.negative_prompt,
        image_urls=list(old.image_urls or []), provider_parameters=parameters,
        effect=i18n.restore(old.effect, old.effect_text),
        points_cost=price.total, source=old.source,
        webhook_url=old.webhook_url, webhook_events=list(old.webhook_events) if old.webhook_events else None,
        template_code=old.template_code, template_version=template.version if template else None,
        template_inputs=tasks.plain_map(old.template_inputs),
        pricing=price.as_dict(),
        task_deadline_seconds=tasks.deadline_cap(model),
        queue_timeout_seconds=get_settings().queue_timeout_seconds,
        language=i18n.current_language(),
    )
    task.priority = old.priority  # the same queue tier as the first try
    logger.info("retrying a task", extra={"retry_of": task_no})
    return charge_and_start(task, api_key=api_key)


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
        api_key = _key_limits(call.get("apiKey"))
        if "retryOf" in call["request"]:
            return _retry(call["userId"], call["request"]["retryOf"], api_key)
        return _submit(call["userId"], SubmitTaskRequest.model_validate(call["request"]), call.get("tier"), api_key)

    return config, submit_once


def register_lambda_context(context) -> None:
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        _idempotency()[0].register_lambda_context(context)


def submit_task(user_id: str, request: SubmitTaskRequest, idempotency_key: str | None, *, groups=(),
                member_group: str, api_key: KeyLimits | None = None) -> TaskView:
    """Accept a task. With an Idempotency-Key, a repeat returns the same task and charges nothing.
    `api_key`: the caller's key when it came with one (its models and daily limit apply)."""
    tier = capacity.tier_for(groups, member_group)
    if idempotency_key is None:
        return _submit(user_id, request, tier, api_key)
    return _once(user_id, idempotency_key, request.model_dump(by_alias=True, exclude_none=True), tier=tier,
                 api_key=api_key)


def retry_task(user_id: str, task_no: str, idempotency_key: str | None, *,
               api_key: KeyLimits | None = None) -> TaskView:
    """Submit a failed or cancelled task again (seed 000); with an Idempotency-Key, once."""
    if idempotency_key is None:
        return _retry(user_id, task_no, api_key)
    return _once(user_id, idempotency_key, {"retryOf": task_no}, api_key=api_key)


def _key_limits(data: dict | None) -> KeyLimits | None:
    if not data:
        return None
    models = data.get("models")
    return KeyLimits(data["keyId"], data.get("dailyPointsLimit"), tuple(models) if models is not None else None)


def _once(user_id: str, idempotency_key: str, request: dict, tier: int | None = None,
          api_key: KeyLimits | None = None) -> TaskView:
    if not (1 <= len(idempotency_key) <= 128) or not idempotency_key.isprintable():
        raise BadRequest(_("Idempotency-Key: 1 to 128 printable characters"))
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    _config, submit_once = _idempotency()
    try:
        key = None if api_key is None else {"keyId": api_key.key_id, "dailyPointsLimit": api_key.daily_points_limit,
                                            "models": list(api_key.models) if api_key.models is not None else None}
        return submit_once(call={"userId": user_id, "key": idempotency_key, "tier": tier, "request": request,
                                 "apiKey": key})
    except IdempotencyValidationError:
        raise Conflict(_("Idempotency-Key was already used for a different request")) from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(_("a request with this Idempotency-Key is still in progress; retry in a moment")) from None
