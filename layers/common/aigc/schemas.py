"""Request and response shapes of the HTTP API (seed 001's contract, extended)."""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aigc.errors import BadRequest

MAX_IMAGE_URLS = 4
SNIPPET_CHARS = 30


def describe_validation_error(error: ValidationError | list, prefix: str = "") -> str:
    """'parameters.xScale: Input should be less than or equal to 3' (first few problems)."""
    problems = error.errors() if isinstance(error, ValidationError) else error
    parts = []
    for problem in problems[:3]:
        location = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query")]
        field = ".".join(([prefix] if prefix else []) + location) or "body"
        message = problem.get("msg", "invalid")
        if problem.get("type") == "extra_forbidden":
            message = "not a parameter of this model"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def parse_image_urls(value: Any) -> list[str]:
    """imageUrl is a URL, a JSON-array string of URLs (seed 001), or a JSON array."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise BadRequest("imageUrl: not a valid JSON array of URLs") from None
        else:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest("imageUrl: must be a URL, a JSON array of URLs, or a JSON-array string of URLs")
    if len(value) > MAX_IMAGE_URLS:
        raise BadRequest(f"imageUrl: at most {MAX_IMAGE_URLS} images")
    for url in value:
        if not url.lower().startswith(("http://", "https://")) or len(url) > 2048 or " " in url:
            raise BadRequest(f"imageUrl: '{url[:80]}' is not an http(s) URL")
    return value


class SubmitTaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model_name: str = Field(alias="modelName", min_length=1, max_length=100)
    prompt: str | None = Field(None, max_length=2000)
    image_url: str | list[str] | None = Field(None, alias="imageUrl")
    parameters: dict[str, Any] | None = None
    webhook: str | None = Field(None, max_length=2048)
    webhook_events_filter: list[Literal["start", "completed"]] | None = Field(
        None, alias="webhookEventsFilter", min_length=1, max_length=2)

    @field_validator("prompt")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    user_id: str = Field(alias="userId", min_length=1, max_length=128)
    amount: int = Field(gt=0, le=1_000_000)
    reason: str = Field(min_length=1, max_length=200)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    file_name: str = Field(alias="fileName", min_length=1, max_length=200)
    content_type: str = Field(alias="contentType", min_length=1, max_length=100)
    parameters: dict[str, Any] | None = None


class OperatorRefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=200)


def envelope(data: Any = None, *, code: int = 200, message: str = "success") -> dict:
    return {"code": code, "message": message, "data": data}


def prompt_snippet(prompt: str | None) -> str | None:
    if not prompt:
        return None
    return prompt if len(prompt) <= SNIPPET_CHARS else prompt[:SNIPPET_CHARS] + "..."
