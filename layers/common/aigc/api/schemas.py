"""Request and response shapes of the HTTP API (seed 001's contract, extended).

The route signatures in functions/api/app.py name these models, so powertools validates every
request body against them and the OpenAPI document (GET /openapi.json) is generated from them.
Every answer is the envelope `{code, message, data}`; errors carry `data: null` (and sometimes
`errorCode`).
"""
from __future__ import annotations

import json
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

from aigc.core.errors import BadRequest
from aigc.core.netcheck import UnsafeUrl, check_public_url

# A user id is safe in an S3 key and a DynamoDB key (uploads/<userId>/..., results/<userId>/...).
# Dots only between other characters: no "..", no "." alone.
SAFE_USER_ID = r"^[A-Za-z0-9_@:+=-]+(\.[A-Za-z0-9_@:+=-]+)*$"
MAX_USER_ID_CHARS = 128
MAX_IMAGE_URLS = 4
MAX_URL_CHARS = 2048
SNIPPET_CHARS = 30


def _plain_text(value: str) -> str:
    """No control characters (newlines and tabs allowed) and no lone surrogates: safe to store."""
    if any((ord(ch) < 32 and ch not in "\n\r\t") or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[StrictStr, AfterValidator(_plain_text)]
ImageUrlText = Annotated[StrictStr, Field(max_length=(MAX_URL_CHARS + 3) * MAX_IMAGE_URLS + 2)]


def describe_validation_error(error: ValidationError | list, prefix: str = "") -> str:
    """'parameters.xScale: Input should be less than or equal to 3' (first few problems)."""
    problems = error.errors() if isinstance(error, ValidationError) else error
    parts = []
    for problem in problems[:3]:
        location = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(([prefix] if prefix else []) + location) or "body"
        message = problem.get("msg", "invalid")
        kind = problem.get("type")
        if kind == "extra_forbidden":
            message = "not a parameter of this model" if prefix else "not a field of this request"
        elif kind == "json_invalid":
            field = "body"
            message = f"not valid JSON ({(problem.get('ctx') or {}).get('error', 'decode error')})"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


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
                raise BadRequest("imageUrl: not a valid JSON array of URLs") from None
        else:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest("imageUrl: must be a URL, a JSON array of URLs, or a JSON-array string of URLs")
    if len(value) > MAX_IMAGE_URLS:
        raise BadRequest(f"imageUrl: at most {MAX_IMAGE_URLS} images")
    for url in value:
        try:
            check_public_url(url, allow_private_hosts=allow_private_hosts, max_chars=MAX_URL_CHARS)
        except UnsafeUrl as problem:
            raise BadRequest(f"imageUrl: {problem}") from None
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class SubmitTaskRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"modelName": "image-out-painting", "imageUrl": "https://example.com/photo.jpg",
         "parameters": {"angle": 90, "outputRatio": "4:3"}},
        {"modelName": "wanx-v1", "prompt": "a red kite over the sea", "parameters": {"n": 2}},
    ]})

    model_name: Text = Field(alias="modelName", min_length=1, max_length=100,
                             description="a model of GET /models", examples=["image-out-painting"])
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


class UploadRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"fileName": "photo.png", "contentType": "image/png", "parameters": {"outputRatio": "16:9"}}]})

    file_name: Text = Field(alias="fileName", min_length=1, max_length=200)
    content_type: Text = Field(alias="contentType", min_length=1, max_length=100,
                               examples=["image/png", "image/jpeg", "image/webp"])
    parameters: dict[str, Any] | None = Field(None, description="outpainting parameters for the task")


class OperatorRefundRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "provider outage on 2025-10-26"}]})

    reason: Text = Field(min_length=3, max_length=200)


# ----------------------------------------------------------------------------------- responses

T = TypeVar("T")
# The values of aigc.core.vocab.TaskStatus (tests/unit/test_vocab.py keeps the two equal).
TaskStatusValue = Literal["queued", "processing", "completed", "failed", "cancelled"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


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


class LedgerEntry(_Out):
    id: str
    type: Literal["debit", "refund", "grant", ""]
    amount: int = Field(description="signed: debits are negative")
    ref: str | None
    task_no: str | None = Field(alias="taskNo")
    reason: str | None
    create_time: str = Field(alias="createTime")


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


class Balance(_Out):
    user_id: str = Field(alias="userId")
    balance: int
    expire_time: str | None = Field(None, alias="expireTime")


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


class GrantResult(_Out):
    user_id: str = Field(alias="userId")
    amount: int
    balance: int
    grant_id: str = Field(alias="grantId")
    applied: bool = Field(description="false when this Idempotency-Key was already granted")


class UploadTicket(_Out):
    url: str
    fields: dict[str, str]
    key: str
    expires_in: int = Field(alias="expiresIn")
    max_bytes: int = Field(alias="maxBytes")


class WebhookSecret(_Out):
    secret: str = Field(description="the signing secret of your webhook deliveries", examples=["whsec_..."])


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


class ModelsResponse(Envelope[list[ModelInfo]]):
    pass


class GrantResponse(Envelope[GrantResult]):
    pass


class UploadResponse(Envelope[UploadTicket]):
    pass


class AdminTaskResponse(Envelope[AdminTaskView]):
    pass


class WebhookSecretResponse(Envelope[WebhookSecret]):
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
