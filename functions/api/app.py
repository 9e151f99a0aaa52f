"""HTTP API (API Gateway HTTP API, payload 2.0): typed routes that call one logic function each.

Request bodies are pydantic models in the signatures (validated by powertools), answers are
typed envelopes; the OpenAPI document at GET /openapi.json is generated from these routes.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from aigc.api import contract
from aigc.api.contract import POINTS_READ, TASKS_READ, TASKS_WRITE, key_route
from aigc.api.http import (
    caller,
    parse_json_body,
    refuse_multipart,
    refuse_unauthenticated,
    register_error_handlers,
    require_group,
)
from aigc.api.admin import (
    AdminTaskPageResponse,
    AdminUserResponse,
    StatsResponse,
    admin_task_view,
    stats_view,
    user_view,
)
from aigc.api.parameters import describe_schema
from aigc.api.schemas import MAX_USER_ID_CHARS, SAFE_USER_ID, Moment
from aigc.domain import stats, task_search
from aigc.api.schemas import (
    AdminTaskResponse,
    ApiKeyListResponse,
    ApiKeyResponse,
    BalanceResponse,
    CreateApiKeyRequest,
    GrantRequest,
    GrantResponse,
    LedgerPageResponse,
    ModelsResponse,
    NewApiKeyResponse,
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
from aigc.api.views import api_key_view, ledger_view, page_view, task_view
from aigc.api.points_views import order_view, pack_view, statement_view
from aigc.api.schemas import (
    CheckoutRequest,
    CheckoutResponse,
    OrderPageResponse,
    OrderResponse,
    PacksResponse,
    WebhookReceiptResponse,
)
from aigc.core.packs import load_packs
from aigc.domain import lots, orders
from aigc.flows import stripe_webhook as stripe_events
from aigc.flows.checkout import checkout as buy_pack
from aigc.core import snapstart
from aigc.core.catalog import load_catalog
from aigc.core.templates import latest_templates
from aigc.domain import pricing as price_rules
from aigc.flows.submission import quote as quote_task
from aigc.api.schemas import QuoteResponse, TemplatesResponse
from aigc.api.views import template_view
from aigc.core.config import ApiEnv
from aigc.core.observability import logger, metrics
from aigc.domain import api_keys, points, settlement, tasks, webhooks
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
TaskTypeFilter = Annotated[Optional[str], Query(
    pattern="^(outpainting|text_to_image|image_to_image|text_to_video|image_to_video)$")]
CategoryFilter = Annotated[Optional[str], Query(max_length=64, pattern="^[a-z0-9-]+$",
                                                description="only templates of this category")]
NextToken = Annotated[Optional[str], Query(max_length=1024, description=(
    "the previous page's nextToken (then page is ignored); a token this list did not issue is a 400"))]
StatusFilter = Annotated[Optional[TaskStatusValue], Query()]
TaskNo = Annotated[str, Path(min_length=1, max_length=64, description="the task number (TASK-...)")]
IdempotencyKey = Annotated[Optional[str], Header(
    alias="Idempotency-Key", min_length=1, max_length=128,
    description="a repeat with the same key returns the same task and charges once (24 h)")]


@app.post("/user/ai/tasks/submit", summary="Submit a task", tags=["tasks"],
          responses=answers("the accepted task (status queued)", 400, 402, 404, 409, 429, 503),
          **key_route(TASKS_WRITE))
def submit(request: Annotated[SubmitTaskRequest, Body()],
           idempotency_key: IdempotencyKey = None) -> TaskResponse:
    who = caller(app, TASKS_WRITE)
    return envelope(submit_task(who.user_id, request, idempotency_key, groups=who.groups,
                                    member_group=ENV.member_group, api_key=who.key))


@app.get("/user/ai/tasks/list", summary="List your tasks, newest first", tags=["tasks"],
         responses=answers("a page of tasks", 400), **key_route(TASKS_READ))
def list_tasks(page: Page = 1, size: Size = 10, taskType: TaskTypeFilter = None,
               status: StatusFilter = None, nextToken: NextToken = None) -> TaskPageResponse:
    who = caller(app, TASKS_READ)
    found = tasks.list_user_tasks(who.user_id, page=page, size=size, task_type=taskType, status=status,
                                  token=nextToken, total=None if status else points.task_total(who.user_id, taskType))
    return envelope(page_view(found, task_view))


@app.get("/user/ai/tasks/<taskNo>", summary="One of your tasks", tags=["tasks"],
         responses=answers("the task (result URLs presigned)", 400, 404), **key_route(TASKS_READ))
def get_task(taskNo: TaskNo) -> TaskResponse:
    who = caller(app, TASKS_READ)
    return envelope(task_view(tasks.get_user_task(who.user_id, taskNo)))


@app.post("/user/ai/tasks/<taskNo>/cancel", summary="Cancel a queued or processing task (refunded)",
          tags=["tasks"], responses=answers("the cancelled task", 400, 404, 409), **key_route(TASKS_WRITE))
def cancel_task(taskNo: TaskNo) -> TaskResponse:
    who = caller(app, TASKS_WRITE)
    return envelope(task_view(settlement.cancel_task(who.user_id, taskNo)))


@app.post("/user/ai/tasks/<taskNo>/retry", summary="Retry a failed or cancelled task (a new task, charged anew)",
          tags=["tasks"], responses=answers("the new task (status queued)", 400, 402, 404, 409, 429, 503),
          **key_route(TASKS_WRITE))
def retry(taskNo: TaskNo, idempotency_key: IdempotencyKey = None) -> TaskResponse:
    who = caller(app, TASKS_WRITE)
    return envelope(retry_task(who.user_id, taskNo, idempotency_key, api_key=who.key))


@app.get("/user/points/consumption/balance", summary="Your points balance", tags=["points"],
         responses=answers("the balance"), **key_route(POINTS_READ))
def balance() -> BalanceResponse:
    who = caller(app, POINTS_READ)
    return envelope(statement_view(who.user_id, lots.statement(who.user_id)))


@app.get("/user/points/consumption/records", summary="Your points ledger, newest first", tags=["points"],
         responses=answers("a page of ledger entries", 400), **key_route(POINTS_READ))
def records(page: Page = 1, size: Size = 10, nextToken: NextToken = None) -> LedgerPageResponse:
    who = caller(app, POINTS_READ)
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
            "pricing": m.pricing.model_dump(by_alias=True, exclude_none=True),
            "aspectRatio": m.aspect_ratio,
            "inputs": m.inputs.model_dump(by_alias=True),
            "expectedSeconds": m.expected_seconds,
            "deadlineSeconds": m.deadline_seconds,
            "parameters": describe_schema(m.parameter_schema),
            "resultType": m.result_type,
            "priceRules": price_rules.describe(m.pricing),
            "video": m.video.model_dump(by_alias=True, exclude_none=True) if m.video else None,
        }
        for m in load_catalog().values()
    ])


@app.post("/user/uploads", summary="A presigned POST for an image that becomes an outpainting task",
          tags=["uploads"], responses=answers("where and how to POST the file", 400, 429),
          **key_route(TASKS_WRITE))
def create_upload(request: Annotated[UploadRequest, Body()]) -> UploadResponse:
    who = caller(app, TASKS_WRITE)
    if who.key is not None:
        api_keys.check_upload(who.key)
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
                          max_amount=ENV.max_grant_points, category=request.category, valid_days=request.valid_days)
    return envelope({"userId": request.user_id, "amount": request.amount, "balance": result.balance,
                     "grantId": result.grant_id, "applied": result.applied, "lotId": result.lot_id,
                     "category": request.category, "expireTime": result.expire_time and result.expire_time[:19] + "Z"})


# --------------------------------------------------------------------- buying points (issue 15)

OrderNo = Annotated[str, Path(min_length=1, max_length=64, description="the order number (ORD-...)")]


@app.get("/points/packs", summary="The point packs you can buy", tags=["points"],
         responses=answers("the packs", public=True), **contract.PUBLIC)
def packs() -> PacksResponse:
    return envelope([pack_view(pack) for pack in load_packs().values()])


@app.post("/user/points/checkout", summary="Buy a point pack: an order and the page to pay it on", tags=["points"],
          responses=answers("the pending order and its checkoutUrl", 400, 404, 409, 503))
def checkout(request: Annotated[CheckoutRequest, Body()],
             idempotency_key: Annotated[Optional[str], Header(
                 alias="Idempotency-Key", min_length=1, max_length=128,
                 description="a repeat answers the same order and payment page (24 h)")] = None,
             ) -> CheckoutResponse:
    who = caller(app)
    return envelope(buy_pack(who.user_id, request, idempotency_key, success_url=ENV.checkout_success_url,
                             cancel_url=ENV.checkout_cancel_url))


@app.get("/user/points/orders", summary="Your orders, newest first", tags=["points"],
         responses=answers("a page of orders", 400), **key_route(POINTS_READ))
def list_orders(page: Page = 1, size: Size = 10, nextToken: NextToken = None) -> OrderPageResponse:
    who = caller(app, POINTS_READ)
    return envelope(page_view(orders.order_page(who.user_id, page, size, nextToken), order_view))


@app.get("/user/points/orders/<orderNo>", summary="One of your orders", tags=["points"],
         responses=answers("the order", 400, 404), **key_route(POINTS_READ))
def get_order(orderNo: OrderNo) -> OrderResponse:
    who = caller(app, POINTS_READ)
    return envelope(order_view(orders.get_user_order(who.user_id, orderNo)))


@app.post("/payments/stripe/webhook", summary="Stripe's events (signed with Stripe-Signature; no token)",
          tags=["payments"], responses=answers("the event was received (outcome says what it did)", 400, 503,
                                               public=True), **contract.PUBLIC)
def stripe_webhook() -> WebhookReceiptResponse:
    event = app.current_event
    return envelope(stripe_events.handle(event.decoded_body or "",
                                         event.get_header_value("Stripe-Signature", case_sensitive=False)))


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


# --- admins: the business numbers, the task search, a user (docs/ARCHITECTURE.md, "Business numbers") ---------
From = Annotated[Optional[Moment], Query(alias="from", description=(
    "ISO-8601 (UTC when no offset is given); default: one bucket range back from `to`"))]
To = Annotated[Optional[Moment], Query(alias="to", description="ISO-8601, exclusive; default: now")]


@app.get("/admin/stats", summary="Business numbers per hour or day and per model (admins)", tags=["admin"],
         responses=answers("tasks, rates, durations, error codes, points and active users per bucket", 400))
def admin_stats(start: From = None, end: To = None,
                bucket: Annotated[Literal["hour", "day"], Query(description=(
                    "hour: at most 7 days (default: the last 24 h); day: at most 366 days (default: 30)"))] = "hour",
                ) -> StatsResponse:
    require_group(caller(app), ENV.admin_group)
    first, last = stats.window(start, end, bucket)
    return envelope(stats_view(stats.read(first, last, bucket)))


@app.get("/admin/tasks", summary="Search every user's tasks, newest first (admins)", tags=["admin"],
         responses=answers("a page of tasks; a filtered page may be short, follow nextToken until it is null", 400))
def admin_search_tasks(start: From = None, end: To = None, status: StatusFilter = None,
                       model: Annotated[Optional[str], Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
                       userId: Annotated[Optional[str], Query(max_length=MAX_USER_ID_CHARS, pattern=SAFE_USER_ID)] = None,
                       errorCode: Annotated[Optional[str], Query(max_length=100, pattern=r"^[A-Za-z0-9._-]+$")] = None,
                       size: Size = 20, nextToken: NextToken = None) -> AdminTaskPageResponse:
    require_group(caller(app), ENV.admin_group)
    first, last = task_search.window(start, end)
    found = task_search.search(task_search.Filters(status, model, userId, errorCode), start=first, end=last,
                               size=size, token=nextToken)
    return envelope(page_view(found, admin_task_view))


@app.get("/admin/users/<userId>", summary="A user: balance and lots, recent tasks, ledger and orders (admins)",
         tags=["admin"], responses=answers("the user's balance, lots, counters, newest tasks, ledger entries and orders",
                                           400))
def admin_get_user(userId: Annotated[str, Path(min_length=1, max_length=MAX_USER_ID_CHARS,
                                               pattern=SAFE_USER_ID)]) -> AdminUserResponse:
    require_group(caller(app), ENV.admin_group)
    counted = points.totals(userId)
    return envelope(user_view(
        userId, known=points.has_account(userId), statement=lots.statement(userId), task_count=counted.tasks,
        ledger_count=counted.ledger,
        recent_tasks=tasks.list_user_tasks(userId, page=1, size=10, task_type=None, status=None).items,
        recent_ledger=points.ledger_page(userId, 1, 10).items, recent_orders=orders.order_page(userId, 1, 10).items))


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


@app.post("/user/api-keys", summary="Create an API key (shown once)", tags=["api-keys"],
          responses=answers("the key, with the secret `key` shown only here", 400, 409))
def create_api_key(request: Annotated[CreateApiKeyRequest, Body()]) -> NewApiKeyResponse:
    who = caller(app)  # a signed-in user only: a key never makes keys
    created = api_keys.create_key(who.user_id, name=request.name, scopes=request.scopes,
                                  expires_in_days=request.expires_in_days,
                                  daily_points_limit=request.daily_points_limit, models=request.models,
                                  groups=who.groups)
    return envelope(api_key_view(created.item, created.secret))


@app.get("/user/api-keys", summary="Your API keys (never the secret)", tags=["api-keys"],
         responses=answers("your keys, newest first"))
def list_api_keys() -> ApiKeyListResponse:
    who = caller(app)
    return envelope([api_key_view(item) for item in api_keys.list_keys(who.user_id)])


@app.delete("/user/api-keys/<keyId>", summary="Revoke an API key (refused from the next request on)",
            tags=["api-keys"], responses=answers("the revoked key", 400, 404))
def revoke_api_key(keyId: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^key_[0-9A-Za-z]+$",
                                              description="the key's keyId")]) -> ApiKeyResponse:
    who = caller(app)
    return envelope(api_key_view(api_keys.revoke_key(who.user_id, keyId)))


@app.get("/templates", summary="Ready-made tasks: the latest enabled version of each template", tags=["templates"],
         responses=answers("the templates, with their inputs' schema and price rules", 400, public=True),
         **contract.PUBLIC)
def templates(category: CategoryFilter = None) -> TemplatesResponse:
    return envelope([template_view(spec) for spec in latest_templates(category)])


@app.post("/user/ai/tasks/quote", summary="The price a submit of this body would charge (nothing is submitted)",
          tags=["tasks"], responses=answers("the price and why", 400, 404), **key_route(TASKS_WRITE))
def quote(request: Annotated[SubmitTaskRequest, Body()]) -> QuoteResponse:
    caller(app, TASKS_WRITE)
    return envelope(quote_task(request))


contract.serve_document(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def handler(event, context):
    register_lambda_context(context)
    return refuse_unauthenticated(event) or refuse_multipart(event) or app.resolve(event, context)
