"""HTTP API (API Gateway HTTP API, payload 2.0): typed routes that call one logic function each.

Request bodies are pydantic models in the signatures (validated by powertools), answers are
typed envelopes; the OpenAPI document at GET /openapi.json is generated from these routes.
"""
from __future__ import annotations

from typing import Annotated, Optional

from aigc.api import contract
from aigc.api.http import caller, parse_json_body, refuse_multipart, register_error_handlers, require_group
from aigc.api.parameters import describe_schema
from aigc.api.schemas import (
    AdminTaskResponse,
    BalanceResponse,
    GrantRequest,
    GrantResponse,
    LedgerPageResponse,
    ModelsResponse,
    OperatorRefundRequest,
    SubmitTaskRequest,
    TaskStatusValue,
    TaskPageResponse,
    TaskResponse,
    UploadRequest,
    UploadResponse,
    WebhookSecretResponse,
    envelope,
)
from aigc.api.views import ledger_view, page_view, task_view
from aigc.core import snapstart
from aigc.core.catalog import load_catalog
from aigc.core.config import ApiEnv
from aigc.core.observability import logger, metrics
from aigc.domain import points, settlement, tasks, webhooks
from aigc.flows import uploads
from aigc.flows.submission import register_lambda_context, retry_task, submit_task
from aigc.store import executions
from aigc.store.paging import MAX_PAGE
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths

ENV = ApiEnv.load()  # a missing or malformed variable stops the cold start, naming it
app = APIGatewayHttpResolver(enable_validation=True, response_validation_error_http_code=500,
                             json_body_deserializer=parse_json_body)
register_error_handlers(app)
snapstart.register()  # SnapStart (template.yaml): fresh clients, seeds and secrets after each restore
answers = contract.answers

Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description=(
    f"1-based page number, at most {MAX_PAGE}: follow nextToken to go further"))]
Size = Annotated[int, Query(ge=1, le=100, description="records per page")]
TaskTypeFilter = Annotated[Optional[str], Query(pattern="^(outpainting|text_to_image|image_to_image)$")]
NextToken = Annotated[Optional[str], Query(max_length=1024, description=(
    "the previous page's nextToken (then page is ignored); a token this list did not issue is a 400"))]
StatusFilter = Annotated[Optional[TaskStatusValue], Query()]
TaskNo = Annotated[str, Path(min_length=1, max_length=64, description="the task number (TASK-...)")]
IdempotencyKey = Annotated[Optional[str], Header(
    alias="Idempotency-Key", min_length=1, max_length=128,
    description="a repeat with the same key returns the same task and charges once (24 h)")]


@app.post("/user/ai/tasks/submit", summary="Submit a task", tags=["tasks"],
          responses=answers("the accepted task (status queued)", 400, 402, 404, 409, 429, 503))
def submit(request: Annotated[SubmitTaskRequest, Body()],
           idempotency_key: IdempotencyKey = None) -> TaskResponse:
    who = caller(app)
    return envelope(submit_task(who.user_id, request, idempotency_key, groups=who.groups,
                                    member_group=ENV.member_group))


@app.get("/user/ai/tasks/list", summary="List your tasks, newest first", tags=["tasks"],
         responses=answers("a page of tasks", 400))
def list_tasks(page: Page = 1, size: Size = 10, taskType: TaskTypeFilter = None,
               status: StatusFilter = None, nextToken: NextToken = None) -> TaskPageResponse:
    who = caller(app)
    found = tasks.list_user_tasks(who.user_id, page=page, size=size, task_type=taskType, status=status,
                                  token=nextToken, total=None if status else points.task_total(who.user_id, taskType))
    return envelope(page_view(found, task_view))


@app.get("/user/ai/tasks/<taskNo>", summary="One of your tasks", tags=["tasks"],
         responses=answers("the task (result URLs presigned)", 400, 404))
def get_task(taskNo: TaskNo) -> TaskResponse:
    who = caller(app)
    return envelope(task_view(tasks.get_user_task(who.user_id, taskNo)))


@app.post("/user/ai/tasks/<taskNo>/cancel", summary="Cancel a queued or processing task (refunded)",
          tags=["tasks"], responses=answers("the cancelled task", 400, 404, 409))
def cancel_task(taskNo: TaskNo) -> TaskResponse:
    who = caller(app)
    return envelope(task_view(settlement.cancel_task(who.user_id, taskNo)))


@app.post("/user/ai/tasks/<taskNo>/retry", summary="Retry a failed or cancelled task (a new task, charged anew)",
          tags=["tasks"], responses=answers("the new task (status queued)", 400, 402, 404, 409, 429, 503))
def retry(taskNo: TaskNo, idempotency_key: IdempotencyKey = None) -> TaskResponse:
    who = caller(app)
    return envelope(retry_task(who.user_id, taskNo, idempotency_key))


@app.get("/user/points/consumption/balance", summary="Your points balance", tags=["points"],
         responses=answers("the balance"))
def balance() -> BalanceResponse:
    who = caller(app)
    return envelope({"userId": who.user_id, "balance": points.get_balance(who.user_id), "expireTime": None})


@app.get("/user/points/consumption/records", summary="Your points ledger, newest first", tags=["points"],
         responses=answers("a page of ledger entries", 400))
def records(page: Page = 1, size: Size = 10, nextToken: NextToken = None) -> LedgerPageResponse:
    who = caller(app)
    return envelope(page_view(points.ledger_page(who.user_id, page, size, nextToken), ledger_view))


@app.get("/models", summary="The model catalog with prices and parameter schemas", tags=["models"],
         responses=answers("the models", public=True), **contract.PUBLIC)
def models() -> ModelsResponse:
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


@app.post("/user/uploads", summary="A presigned POST for an image that becomes an outpainting task",
          tags=["uploads"], responses=answers("where and how to POST the file", 400, 429))
def create_upload(request: Annotated[UploadRequest, Body()]) -> UploadResponse:
    who = caller(app)
    return envelope(uploads.create_upload_url(who.user_id, request.file_name, request.content_type, request.parameters))


@app.post("/admin/points/grant", summary="Grant points (admins)", tags=["admin"],
          responses=answers("the grant and the new balance", 400))
def grant(request: Annotated[GrantRequest, Body()],
          idempotency_key: Annotated[Optional[str], Header(alias="Idempotency-Key", min_length=1, max_length=128,
                                                           description="a repeat grants once")] = None,
          ) -> GrantResponse:
    who = caller(app)
    require_group(who, ENV.admin_group)
    grant_id = f"GRANT-{idempotency_key}" if idempotency_key else f"GRANT-{app.current_event.request_context.request_id}"
    result = points.grant(request.user_id, request.amount, request.reason, grant_id=grant_id, actor=who.user_id,
                          max_amount=ENV.max_grant_points)
    return envelope({"userId": request.user_id, "amount": request.amount, "balance": result.balance,
                     "grantId": result.grant_id, "applied": result.applied})


@app.get("/admin/tasks/<taskNo>", summary="Any task with its ledger and execution (admins)", tags=["admin"],
         responses=answers("the task, its ledger entries and its execution status", 400, 404))
def admin_get_task(taskNo: TaskNo) -> AdminTaskResponse:
    require_group(caller(app), ENV.admin_group)
    task = tasks.get_task(taskNo)
    return envelope({
        "task": {**task_view(task).model_dump(), "user_id": task.user_id, "provider_task_id": task.provider_task_id},
        "ledger": [ledger_view(e) for e in points.ledger_entries(task.user_id, task.task_no)],
        "executionStatus": executions.execution_status(task.execution_name or task.task_no),
    })


@app.post("/admin/tasks/<taskNo>/refund", summary="Refund an unsettled or held task (admins)", tags=["admin"],
          responses=answers("the refunded task", 400, 404, 409))
def admin_refund_task(taskNo: TaskNo, request: Annotated[OperatorRefundRequest, Body()]) -> TaskResponse:
    require_group(caller(app), ENV.admin_group)
    return envelope(task_view(settlement.operator_refund(taskNo, request.reason)))


@app.get("/user/webhooks/secret", summary="Your webhook signing secret (created on first read)", tags=["webhooks"],
         responses=answers("the secret"))
def webhook_secret() -> WebhookSecretResponse:
    who = caller(app)
    return envelope({"secret": webhooks.get_secret(who.user_id)})


@app.post("/user/webhooks/secret/rotate", summary="Replace your webhook signing secret", tags=["webhooks"],
          responses=answers("the new secret"))
def rotate_webhook_secret() -> WebhookSecretResponse:
    who = caller(app)
    return envelope({"secret": webhooks.rotate_secret(who.user_id)})


contract.serve_document(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def handler(event, context):
    register_lambda_context(context)
    return refuse_multipart(event) or app.resolve(event, context)
