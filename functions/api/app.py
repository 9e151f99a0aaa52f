"""HTTP API (API Gateway HTTP API, payload 2.0): parse, call one logic function, return the envelope."""
from __future__ import annotations

from typing import Annotated, Optional

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from pydantic import ValidationError

from aigc import executions, points, settlement, snapstart, tasks, uploads, webhooks
from aigc.catalog import load_catalog
from aigc.config import get_settings
from aigc.errors import BadRequest
from aigc.http import caller, json_body, register_error_handlers, require_group
from aigc.observability import logger, metrics
from aigc.parameters import describe_schema
from aigc.schemas import (
    GrantRequest,
    OperatorRefundRequest,
    SubmitTaskRequest,
    UploadRequest,
    describe_validation_error,
    envelope,
)
from aigc.submission import register_lambda_context, submit_task
from aigc.views import ledger_view, page_view, task_view

app = APIGatewayHttpResolver(enable_validation=True)
register_error_handlers(app)
snapstart.register()  # SnapStart (template.yaml): fresh clients, seeds and secrets after each restore

Page = Annotated[int, Query(ge=1, le=100000)]
Size = Annotated[int, Query(ge=1, le=100)]
TaskTypeFilter = Annotated[Optional[str], Query(pattern="^(outpainting|text_to_image|image_to_image)$")]
StatusFilter = Annotated[Optional[str], Query(pattern="^(created|queued|processing|completed|failed|cancelled)$")]


def _model(cls, body: dict):
    try:
        return cls.model_validate(body)
    except ValidationError as error:
        raise BadRequest(describe_validation_error(error)) from None


@app.post("/user/ai/tasks/submit")
def submit():
    who = caller(app)
    request = _model(SubmitTaskRequest, json_body(app))
    key = app.current_event.headers.get("idempotency-key") or app.current_event.headers.get("Idempotency-Key")
    return envelope(submit_task(who.user_id, request, key, groups=who.groups))


@app.get("/user/ai/tasks/list")
def list_tasks(page: Page = 1, size: Size = 10, taskType: TaskTypeFilter = None, status: StatusFilter = None):
    who = caller(app)
    items, total = tasks.list_user_tasks(who.user_id, page=page, size=size, task_type=taskType, status=status)
    return envelope(page_view([task_view(t) for t in items], total, page, size, "records"))


@app.get("/user/ai/tasks/<taskNo>")
def get_task(taskNo: str):
    who = caller(app)
    return envelope(task_view(tasks.get_user_task(who.user_id, taskNo)))


@app.get("/user/points/consumption/balance")
def balance():
    who = caller(app)
    return envelope({"userId": who.user_id, "balance": points.get_balance(who.user_id), "expireTime": None})


@app.get("/user/points/consumption/records")
def records(page: Page = 1, size: Size = 10):
    who = caller(app)
    items, total = points.ledger_page(who.user_id, page, size)
    return envelope(page_view([ledger_view(i) for i in items], total, page, size, "records"))


@app.get("/models")
def models():
    return envelope([
        {
            "modelName": m.name,
            "description": m.description,
            "taskType": m.task_type,
            "provider": m.provider,
            "pointsCost": m.pricing.points,
            "pricing": m.pricing.model_dump(by_alias=True),
            "aspectRatio": m.aspect_ratio,
            "inputs": m.inputs.model_dump(by_alias=True),
            "expectedSeconds": m.expected_seconds,
            "deadlineSeconds": m.deadline_seconds,
            "parameters": describe_schema(m.parameter_schema),
        }
        for m in load_catalog().values()
    ])


@app.post("/admin/points/grant")
def grant():
    who = caller(app)
    require_group(who, get_settings().admin_group)
    request = _model(GrantRequest, json_body(app))
    key = app.current_event.headers.get("idempotency-key")
    grant_id = f"GRANT-{key}" if key else f"GRANT-{app.current_event.request_context.request_id}"
    result = points.grant(request.user_id, request.amount, request.reason, grant_id=grant_id, actor=who.user_id)
    return envelope({"userId": request.user_id, "amount": request.amount, "balance": result.balance,
                     "grantId": result.grant_id, "applied": result.applied})


@app.post("/user/ai/tasks/<taskNo>/cancel")
def cancel_task(taskNo: str):
    who = caller(app)
    return envelope(task_view(settlement.cancel_task(who.user_id, taskNo)))


@app.post("/user/uploads")
def create_upload():
    who = caller(app)
    request = _model(UploadRequest, json_body(app))
    return envelope(uploads.create_upload_url(who.user_id, request.file_name, request.content_type, request.parameters))


@app.get("/admin/tasks/<taskNo>")
def admin_get_task(taskNo: str):
    require_group(caller(app), get_settings().admin_group)
    task = tasks.get_task(taskNo)
    return envelope({
        "task": {**task_view(task), "userId": task.user_id, "providerTaskId": task.provider_task_id},
        "ledger": [ledger_view(e) for e in points.ledger_entries(task.user_id, task.task_no)],
        "executionStatus": executions.execution_status(task.execution_name or task.task_no),
    })


@app.post("/admin/tasks/<taskNo>/refund")
def admin_refund_task(taskNo: str):
    require_group(caller(app), get_settings().admin_group)
    request = _model(OperatorRefundRequest, json_body(app))
    return envelope(task_view(settlement.operator_refund(taskNo, request.reason)))


@app.get("/user/webhooks/secret")
def webhook_secret():
    who = caller(app)
    return envelope({"secret": webhooks.get_secret(who.user_id)})


@app.post("/user/webhooks/secret/rotate")
def rotate_webhook_secret():
    who = caller(app)
    return envelope({"secret": webhooks.rotate_secret(who.user_id)})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event, context):
    register_lambda_context(context)
    return app.resolve(event, context)
