"""Request and response shapes of the HTTP API (seed 001's contract, extended).

The route signatures in functions/api/app.py name these models, so powertools validates every
request body against them and the OpenAPI document (GET /openapi.json) is generated from them.
Every answer is the envelope `{code, message, data}`; errors carry `data: null` (and sometimes
`errorCode`).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from aigc.api.validation_messages import problem_message
from aigc.core.errors import BadRequest
from aigc.core.i18n import Message, _
from aigc.core.netcheck import UnsafeUrl, check_public_url

# A user id is safe in an S3 key and a DynamoDB key (uploads/<userId>/..., results/<userId>/...).
# Dots only between other characters: no "..", no "." alone.
SAFE_USER_ID = r"^[A-Za-z0-9_@:+=-]+(\.[A-Za-z0-9_@:+=-]+)*$"
MAX_USER_ID_CHARS = 128
EARLIEST_MOMENT, LATEST_MOMENT = datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(9000, 1, 1, tzinfo=timezone.utc)


def _plausible_moment(value: datetime) -> datetime:
    """A time our keys can hold: ISO strings sort as times only with 4-digit years, and far years overflow."""
    utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    if not EARLIEST_MOMENT <= utc <= LATEST_MOMENT:
        raise ValueError("must be a time between 2000-01-01 and 9000-01-01")
    return value


# A query time (ISO-8601; UTC when no offset is given) inside the range the stores can hold.
Moment = Annotated[datetime, AfterValidator(_plausible_moment)]
MAX_IMAGE_URLS = 4
MAX_URL_CHARS = 2048
SNIPPET_CHARS = 30


def _plain_text(value: str) -> str:
    """No control characters (newlines and tabs allowed) and no lone surrogates: safe to store."""
    if any((ord(ch) < 32 and ch not in "\n\r\t") or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ValueError(_("must not contain control characters"))
    return value


Text = Annotated[StrictStr, AfterValidator(_plain_text)]
ImageUrlText = Annotated[StrictStr, Field(max_length=(MAX_URL_CHARS + 3) * MAX_IMAGE_URLS + 2)]


def describe_validation_error(error: ValidationError | list, prefix: str = "") -> Message:
    """'parameters.xScale: Input should be less than or equal to 3' (first few problems), in every language:
    the field as the request names it, the rule from the catalog (aigc.api.validation_messages)."""
    problems = error.errors() if isinstance(error, ValidationError) else error
    parts = []
    for problem in problems[:3]:
        location = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(([prefix] if prefix else []) + location) or "body"
        message = problem_message(problem)
        kind = problem.get("type")
        if kind == "extra_forbidden":
            message = _("not a parameter of this model") if prefix else _("not a field of this request")
        elif kind == "json_invalid":
            field = "body"
            detail = (problem.get("ctx") or {}).get("error", "decode error")
            message = _("not valid JSON ({detail})", detail=detail if isinstance(detail, Message) else str(detail))
        parts.append(_("{field}: {problem}", field=field, problem=message))
    return Message.join(parts)


def parse_image_urls(value: Any, *, allow_private_hosts: bool = False) -> list[str]:
    """imageUrl is a URL, a JSON-array string of URLs (seed 001), or a JSON array; each must be a public http(s) URL."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                raise BadRequest(_("imageUrl: not a valid JSON array of URLs")) from None
        else:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(_("imageUrl: must be a URL, a JSON array of URLs, or a JSON-array string of URLs"))
    if len(value) > MAX_IMAGE_URLS:
        raise BadRequest(_("imageUrl: at most {limit} images", limit=MAX_IMAGE_URLS))
    for url in value:
        try:
            check_public_url(url, allow_private_hosts=allow_private_hosts, max_chars=MAX_URL_CHARS)
        except UnsafeUrl as problem:
            raise BadRequest(_("imageUrl: {problem}", problem=problem.text)) from None
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


TEMPLATE_CODE = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"


class SubmitTaskRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"modelName": "image-out-painting", "imageUrl": "https://example.com/photo.jpg",
         "parameters": {"angle": 90, "outputRatio": "4:3"}},
        {"modelName": "wanx-v1", "prompt": "a red kite over the sea", "parameters": {"n": 2}},
        {"modelName": "wanx2.1-t2v-turbo", "prompt": "a paper boat drifting down a rainy street",
         "parameters": {"size": "832*480"}},
        {"templateCode": "watercolour-portrait", "inputs": {"subject": "an old fisherman with a grey beard"}},
        {"templateCode": "photo-to-clip", "templateVersion": 1, "inputs": {"seconds": 3},
         "imageUrl": "https://example.com/photo.jpg"},
    ]})

    model_name: Text | None = Field(None, alias="modelName", min_length=1, max_length=100,
                                    description="a model of GET /models (or templateCode: exactly one of the two)",
                                    examples=["image-out-painting"])
    template_code: Annotated[StrictStr, Field(pattern=TEMPLATE_CODE, max_length=64)] | None = Field(
        None, alias="templateCode", description="a template of GET /templates instead of modelName: the template "
        "sets the model, its parameters, the prompt and the price", examples=["watercolour-portrait"])
    template_version: StrictInt | None = Field(None, alias="templateVersion", ge=1, le=100_000,
                                               description="with templateCode: this version (default: the latest)")
    inputs: dict[str, Any] | None = Field(None, description="with templateCode: the template's inputs "
                                                            "(GET /templates shows their JSON schema)")
    prompt: Text | None = Field(None, max_length=2000, description="what to draw (text models need it)")
    image_url: ImageUrlText | list[ImageUrlText] | None = Field(
        None, alias="imageUrl",
        description="a public http(s) URL, a JSON array of them, or a JSON-array string of them (seed 001)",
    )
    parameters: dict[str, Any] | None = Field(
        None, description="the model's parameters (GET /models shows each model's schema); camelCase or snake_case",
    )
    webhook: Annotated[StrictStr, Field(max_length=MAX_URL_CHARS)] | None = Field(
        None, description="an https URL to POST signed task events to (Standard Webhooks)")
    webhook_events_filter: list[Literal["start", "completed"]] | None = Field(
        None, alias="webhookEventsFilter", min_length=1, max_length=2,
        description="which events to deliver; default both (completed covers every final status)")

    @field_validator("prompt")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class GrantRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"userId": "alice", "amount": 100,
                                                                "reason": "welcome"}]})

    user_id: StrictStr = Field(alias="userId", max_length=MAX_USER_ID_CHARS, pattern=SAFE_USER_ID)
    amount: StrictInt = Field(gt=0, le=1_000_000)
    reason: Text = Field(min_length=1, max_length=200)
    valid_days: StrictInt | None = Field(None, alias="validDays", ge=1, le=3650,
                                         description="the points expire this many days after the grant; "
                                                     "default: never")
    category: Literal["paid", "promotional"] = Field(
        "promotional", description="promotional points are spent before paid ones")


class CheckoutRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"packId": "standard"}]})

    pack_id: StrictStr = Field(alias="packId", min_length=1, max_length=40, description="a pack of GET /points/packs")
    currency: StrictStr | None = Field(None, pattern=r"^[A-Za-z]{3}$",
                                       description="the currency you expect to pay in; another pack's is a 400")
    success_url: Annotated[StrictStr, Field(max_length=MAX_URL_CHARS, pattern=r"^https?://")] | None = Field(
        None, alias="successUrl", description="where the payment page returns after paying (default: the "
                                              "stack's CheckoutSuccessUrl); {CHECKOUT_SESSION_ID} is filled in")
    cancel_url: Annotated[StrictStr, Field(max_length=MAX_URL_CHARS, pattern=r"^https?://")] | None = Field(
        None, alias="cancelUrl", description="where it returns when the buyer gives up")


class UploadRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"fileName": "photo.png", "contentType": "image/png", "parameters": {"outputRatio": "16:9"}}]})

    file_name: Text = Field(alias="fileName", min_length=1, max_length=200)
    content_type: Text = Field(alias="contentType", min_length=1, max_length=100,
                               examples=["image/png", "image/jpeg", "image/webp"])
    parameters: dict[str, Any] | None = Field(None, description="outpainting parameters for the task")


ApiKeyScope = Literal["tasks:write", "tasks:read", "points:read"]


class CreateApiKeyRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "shop backend", "scopes": ["tasks:write", "tasks:read"], "expiresInDays": 90,
         "dailyPointsLimit": 500, "models": ["image-out-painting"]}]})

    name: Text = Field(min_length=1, max_length=64, description="your label for the key")
    scopes: list[ApiKeyScope] | None = Field(
        None, min_length=1, max_length=3, description="what the key may do; default all three")
    expires_in_days: StrictInt | None = Field(None, alias="expiresInDays", ge=1, le=3650,
                                              description="days until the key stops working; default never")
    daily_points_limit: StrictInt | None = Field(
        None, alias="dailyPointsLimit", ge=1, le=10_000_000,
        description="points the key may spend per UTC day (a submit beyond it is a 402); default no limit")
    models: list[Annotated[Text, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=1, max_length=50, description="the models the key may use; default every model")


class OperatorRefundRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "provider outage on 2025-10-26"}]})

    reason: Text = Field(min_length=3, max_length=200)


# ----------------------------------------------------------------------------------- responses

T = TypeVar("T")
# The values of aigc.core.vocab.TaskStatus (tests/unit/test_vocab.py keeps the two equal).
TaskStatusValue = Literal["queued", "processing", "completed", "failed", "cancelled"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PriceFactor(_Out):
    kind: Literal["perImage", "perSecond", "multiplier", "surcharge"]
    label: str = Field(examples=["HD mode (bestQuality)"])
    factor: float | None = Field(None, description="the amount was multiplied by this")
    points: float | None = Field(None, description="this was added")


class PricingView(_Out):
    """A price and why: the base, times each factor, plus each surcharge, rounded up to `total`."""

    base: int = Field(examples=[10])
    factors: list[PriceFactor]
    total: int = Field(examples=[20])


class TaskView(_Out):
    """A task as its owner sees it (seed 001's fields plus ours)."""

    task_no: str = Field(alias="taskNo", examples=["TASK-20251026153045123-4f1c2a9b"])
    model_name: str = Field(alias="modelName")
    status: TaskStatusValue
    task_type: str = Field(alias="taskType", examples=["outpainting"])
    progress: int = Field(ge=0, le=100)
    prompt_snippet: str | None = Field(alias="promptSnippet")
    image_url: str | list[str] | None = Field(alias="imageUrl")
    result_url: str | None = Field(alias="resultUrl", description="presigned, on read")
    result_urls: list[str] = Field(alias="resultUrls")
    thumbnail_url: str | None = Field(alias="thumbnailUrl")
    points_cost: int = Field(alias="pointsCost")
    refunded: bool
    parameters: dict[str, Any] = Field(description="the parameters sent to the provider (snake_case)")
    effect: str | None = Field(description="which settings took effect and which were ignored")
    source: str | None = Field(description="api or upload")
    create_time: str = Field(alias="createTime", examples=["2025-10-26T15:30:45Z"])
    complete_time: str | None = Field(alias="completeTime")
    error_code: str | None = Field(alias="errorCode")
    error_message: str | None = Field(alias="errorMessage")
    retryable_until: str | None = Field(alias="retryableUntil")
    queue_position: int | None = Field(None, alias="queuePosition", ge=1,
                                       description="while queued for a provider slot: 1 = next to start")
    estimated_start_time: str | None = Field(None, alias="estimatedStartTime",
                                             description="while queued: when it should reach the provider (UTC)")
    webhook: str | None = Field(None, description="where this task's events are delivered, as given on submit")
    webhook_events_filter: list[Literal["start", "completed"]] | None = Field(
        None, alias="webhookEventsFilter", description="which events are delivered; null without a webhook")
    result_type: Literal["image", "video"] = Field("image", alias="resultType")
    duration_seconds: float | None = Field(
        None, alias="durationSeconds", description="video: the stored clip's length once completed, before: the "
        "length asked for; null for images")
    resolution: str | None = Field(
        None, description="the first result's WIDTHxHEIGHT once completed; before: what was asked for (a video "
        "size as WIDTHxHEIGHT, or a tier such as 720P), when known", examples=["1280x720"])
    template_code: str | None = Field(None, alias="templateCode", description="the template it was made with")
    template_version: int | None = Field(None, alias="templateVersion")
    pricing: PricingView | None = Field(None, description="what it was charged and why (tasks made before pricing "
                                                          "rules: null)")


class LotShare(_Out):
    lot_id: str = Field(alias="lotId")
    points: int = Field(ge=0)


class LedgerEntry(_Out):
    id: str
    type: Literal["debit", "refund", "grant", "purchase", "expire", "clawback", ""]
    amount: int = Field(description="signed: debits, expiries and clawbacks are negative")
    ref: str | None
    task_no: str | None = Field(alias="taskNo")
    order_no: str | None = Field(None, alias="orderNo", description="the order of a purchase, its bonus or a "
                                                                     "clawback")
    reason: str | None
    create_time: str = Field(alias="createTime")
    lot_id: str | None = Field(None, alias="lotId", description="the lot, when the entry concerns one")
    lots: list[LotShare] = Field(default_factory=list, description="the points taken from or given to each lot")


class Page(_Out, Generic[T]):
    records: list[T]
    total: int | None = Field(description="from the counters kept with the data; null for a list filtered by status")
    page: int | None = Field(description="the page number asked for; null when paging by nextToken")
    size: int
    pages: int | None = Field(description="null when total is null")
    next_token: str | None = Field(alias="nextToken",
                                   description="pass it back for the next page; null on the last page")


class TaskPage(Page[TaskView]):
    pass


class LedgerPage(Page[LedgerEntry]):
    pass


class LotView(_Out):
    lot_id: str = Field(alias="lotId")
    category: Literal["paid", "promotional"]
    source: str = Field(description="grant, purchase, bonus, or opening (points held before lots existed)")
    granted: int
    remaining: int
    expire_time: str | None = Field(alias="expireTime", description="null: never expires")


class Balance(_Out):
    user_id: str = Field(alias="userId")
    balance: int
    expire_time: str | None = Field(None, alias="expireTime",
                                    description="the earliest expiry among the lots that hold points")
    lots: list[LotView] = Field(default_factory=list, description="the lots that hold points, in spending order")


class PackPrice(_Out):
    amount: int = Field(description="in the currency's minor unit (cents, fen)", examples=[1999])
    currency: str = Field(examples=["usd"])


class PackView(_Out):
    pack_id: str = Field(alias="packId", examples=["standard"])
    name: str
    description: str
    points: int
    valid_days: int | None = Field(alias="validDays", description="the points last this long; null: never expire")
    bonus_points: int = Field(alias="bonusPoints", description="promotional points that come with the pack")
    bonus_valid_days: int | None = Field(alias="bonusValidDays")
    price: PackPrice


OrderStatusValue = Literal["pending", "paid", "expired", "refunded", "disputed"]


class CheckoutView(_Out):
    order_no: str = Field(alias="orderNo", examples=["ORD-20251026153045123-4f1c2a9b0d3e5f71"])
    status: OrderStatusValue
    checkout_url: str | None = Field(alias="checkoutUrl", description="open it to pay")
    provider_session_id: str | None = Field(alias="providerSessionId")


class OrderView(_Out):
    order_no: str = Field(alias="orderNo")
    pack_id: str = Field(alias="packId")
    points: int
    bonus_points: int = Field(alias="bonusPoints")
    amount: int
    currency: str
    status: OrderStatusValue
    provider: str
    provider_session_id: str | None = Field(alias="providerSessionId")
    checkout_url: str | None = Field(None, alias="checkoutUrl", description="while pending")
    create_time: str = Field(alias="createTime")
    paid_time: str | None = Field(alias="paidTime")
    problem: str | None = Field(None, description="why a payment event granted nothing (an amount mismatch ...)")


class WebhookReceipt(_Out):
    received: bool
    outcome: str = Field(description="what the event did: paid, expired, refunded, ignored, unknown-order ...")


class OrderPage(Page[OrderView]):
    pass


class ModelInfo(_Out):
    model_name: str = Field(alias="modelName")
    description: str
    task_type: str = Field(alias="taskType")
    provider: str
    points_cost: int = Field(alias="pointsCost")
    pricing: dict[str, Any]
    aspect_ratio: str | None = Field(alias="aspectRatio")
    inputs: dict[str, Any]
    expected_seconds: int = Field(alias="expectedSeconds")
    deadline_seconds: int = Field(alias="deadlineSeconds")
    parameters: dict[str, Any] = Field(description="JSON schema of the model's parameters")
    result_type: Literal["image", "video"] = Field("image", alias="resultType")
    price_rules: list[str] = Field(default_factory=list, alias="priceRules",
                                   description="the pricing rules in words (pricing has them as data)")
    video: dict[str, Any] | None = Field(None, description="video models: the durations, sizes or resolutions "
                                                          "they take")


class TemplateInfo(_Out):
    code: str = Field(examples=["watercolour-portrait"])
    name: str
    version: int
    category: str = Field(examples=["portrait"])
    description: str
    model_name: str = Field(alias="modelName")
    task_type: str = Field(alias="taskType")
    result_type: Literal["image", "video"] = Field(alias="resultType")
    preset_parameters: dict[str, Any] = Field(alias="presetParameters")
    prompt_template: str | None = Field(alias="promptTemplate")
    inputs: dict[str, Any] = Field(description="JSON schema of the inputs")
    input_parameters: dict[str, str] = Field(alias="inputParameters",
                                             description="inputs that set a model parameter: input -> parameter")
    images: dict[str, int] = Field(description="how many imageUrl the template takes: {min, max}")
    example: dict[str, Any]
    pricing: dict[str, Any]
    price_rules: list[str] = Field(alias="priceRules")
    example_price: int = Field(alias="examplePrice", description="the price with the example inputs")


class Quote(_Out):
    model_name: str = Field(alias="modelName")
    task_type: str = Field(alias="taskType")
    result_type: Literal["image", "video"] = Field(alias="resultType")
    template_code: str | None = Field(None, alias="templateCode")
    template_version: int | None = Field(None, alias="templateVersion")
    parameters: dict[str, Any] = Field(description="the parameters the provider would get (snake_case)")
    pricing: PricingView


class GrantResult(_Out):
    user_id: str = Field(alias="userId")
    amount: int
    balance: int
    grant_id: str = Field(alias="grantId")
    applied: bool = Field(description="false when this Idempotency-Key was already granted")
    lot_id: str | None = Field(None, alias="lotId", description="the lot the points are in (the grant's id)")
    category: Literal["paid", "promotional"] | None = None
    expire_time: str | None = Field(None, alias="expireTime", description="null: never expires")


class UploadTicket(_Out):
    url: str
    fields: dict[str, str]
    key: str
    expires_in: int = Field(alias="expiresIn")
    max_bytes: int = Field(alias="maxBytes")


class WebhookSecret(_Out):
    secret: str = Field(description="the signing secret of your webhook deliveries", examples=["whsec_..."])


class ApiKeyView(_Out):
    key_id: str = Field(alias="keyId", examples=["key_3fJ9kQ2mZx81LwPa0"])
    name: str
    prefix: str = Field(description="the key's first 12 characters", examples=["aigc_4Zx9QmT"])
    scopes: list[str]
    expire_time: str | None = Field(None, alias="expireTime", description="null: never expires")
    daily_points_limit: int | None = Field(None, alias="dailyPointsLimit", description="null: no limit")
    models: list[str] | None = Field(None, description="null: every model")
    create_time: str = Field(alias="createTime")
    last_used_time: str | None = Field(None, alias="lastUsedTime", description="to the minute")
    expired: bool = False


class NewApiKey(ApiKeyView):
    key: str = Field(description="the key itself: shown only in this answer, store it now",
                     examples=["aigc_4Zx9QmT...(54 characters)"])


class AdminTaskDetail(TaskView):
    user_id: str = Field(alias="userId")
    provider_task_id: str | None = Field(alias="providerTaskId")


class AdminTaskView(_Out):
    task: AdminTaskDetail
    ledger: list[LedgerEntry]
    execution_status: str | None = Field(alias="executionStatus")


class Envelope(_Out, Generic[T]):
    code: int = Field(200, examples=[200])
    message: str = Field("success", examples=["success"])
    data: T


class TaskResponse(Envelope[TaskView]):
    pass


class TaskPageResponse(Envelope[TaskPage]):
    pass


class LedgerPageResponse(Envelope[LedgerPage]):
    pass


class BalanceResponse(Envelope[Balance]):
    pass


class PacksResponse(Envelope[list[PackView]]):
    pass


class CheckoutResponse(Envelope[CheckoutView]):
    pass


class OrderResponse(Envelope[OrderView]):
    pass


class OrderPageResponse(Envelope[OrderPage]):
    pass


class WebhookReceiptResponse(Envelope[WebhookReceipt]):
    pass


class ModelsResponse(Envelope[list[ModelInfo]]):
    pass


class TemplatesResponse(Envelope[list[TemplateInfo]]):
    pass


class QuoteResponse(Envelope[Quote]):
    pass


class GrantResponse(Envelope[GrantResult]):
    pass


class UploadResponse(Envelope[UploadTicket]):
    pass


class AdminTaskResponse(Envelope[AdminTaskView]):
    pass


class WebhookSecretResponse(Envelope[WebhookSecret]):
    pass


class ApiKeyResponse(Envelope[ApiKeyView]):
    pass


class NewApiKeyResponse(Envelope[NewApiKey]):
    pass


class ApiKeyListResponse(Envelope[list[ApiKeyView]]):
    pass


class ErrorResponse(_Out):
    """Every error: `code` equals the HTTP status; `message` names the field and the rule for 400s."""

    code: int = Field(examples=[400])
    message: str = Field(examples=["parameters.xScale: Input should be less than or equal to 3"])
    data: None = None
    error_code: str | None = Field(None, alias="errorCode")


def envelope(data: Any = None, *, code: int = 200, message: str = "success") -> dict:
    return {"code": code, "message": message, "data": data}


def prompt_snippet(prompt: str | None) -> str | None:
    if not prompt:
        return None
    return prompt if len(prompt) <= SNIPPET_CHARS else prompt[:SNIPPET_CHARS] + "..."
