"""The published contract: the OpenAPI 3 document generated from the API's typed routes.

Routes declare what they can answer with `answers(...)`; `openapi_document(app)` is powertools'
document with the bearer (JWT) scheme, our error envelope instead of powertools' 422 (the API
answers 400), and `security: []` on the routes that need no token. `serve_document(app)` adds
GET /openapi.json and GET /docs (Swagger UI), both outside the document and without auth.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi import swagger_ui
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer
from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

from aigc.api.schemas import ErrorResponse

TITLE = "AIGC points API"
VERSION = "1.0.0"
DESCRIPTION = (
    "AI image work (outpainting, text-to-image, image-to-image) sold for points. Every answer is the envelope "
    "`{code, message, data}`; `code` is 200 on success and equals the HTTP status on errors, and a 400's "
    "message names the field and the rule. A rejected request changes nothing. Send `Authorization: Bearer <JWT>`; "
    "the user is the token's `sub`. Routes marked with `x-api-key-scope` also take an API key (`Authorization: "
    "Bearer aigc_...` or `X-API-Key: aigc_...`, POST /user/api-keys) that has that scope; the others need a JWT. "
    "Messages are English; with `Accept-Language: zh-CN` (or `zh`, q-values honoured) every message is Chinese: "
    "errors, validation errors (naming the field), a task's `errorMessage` and `effect`. Answers carry "
    "`Content-Language`; webhook bodies use the language of the task's submit."
)
SECURITY_SCHEME = "bearerAuth"
ERROR_SCHEMA = "ErrorResponse"
GATEWAY_SCHEMA = "GatewayError"
# Marks a route that needs no token (route decorator: **PUBLIC).
PUBLIC = {"openapi_extensions": {"security": []}}
API_KEY_SCHEME = "apiKeyAuth"
TASKS_WRITE, TASKS_READ, POINTS_READ = "tasks:write", "tasks:read", "points:read"


def key_route(scope: str) -> dict:
    """Marks a route an API key with `scope` may call (route decorator: **key_route(scope)); the template
    puts these routes behind the Lambda authorizer, every other authorized route behind the JWT authorizer."""
    return {"openapi_extensions": {"security": [{SECURITY_SCHEME: []}, {API_KEY_SCHEME: []}],
                                   "x-api-key-scope": scope}}


# Every operation takes it (openapi_document adds it): the language of the answer's messages.
ACCEPT_LANGUAGE = {
    "name": "Accept-Language", "in": "header", "required": False,
    "description": "zh-CN or zh for Chinese messages, else English (RFC 9110 q-values: `zh;q=0.9, en;q=0.8`); "
                   "the answer's Content-Language says which",
    "schema": {"type": "string", "maxLength": 1024, "examples": ["zh-CN", "en", "zh-CN,zh;q=0.9,en;q=0.8"]},
}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad input: the message names the field and the rule; nothing was charged",
          "parameters.xScale: Input should be less than or equal to 3"),
    401: ("no valid token or API key (API Gateway's JWT authorizer answers {\"message\": \"Unauthorized\"}); "
          "whether a key exists is never told", "not logged in or token expired"),
    402: ("not enough points (errorCode InsufficientPoints: the message names the cost, the balance and where to "
          "buy), or beyond the API key's daily points limit (errorCode ApiKey.DailyLimit); nothing was charged",
          "not enough points: this task costs 30, your balance is 25; buy points: GET /points/packs lists the "
          "packs, POST /user/points/checkout buys one"),
    403: ("not allowed (admin routes, a token whose sub is not a valid user id, an API key without the route's "
          "scope, on a route that needs a JWT, or outside its models: errorCode ApiKey.*)",
          "only members of 'admins' may do this"),
    404: ("unknown task, model, pack or order (another user's task or order is a 404 too)",
          "task TASK-20251026153045123-4f1c2a9b not found"),
    409: ("conflict with the task's state or with an earlier request of the same Idempotency-Key",
          "task TASK-20251026153045123-4f1c2a9b is completed; only queued or processing tasks can be cancelled"),
    429: ("too many submits this minute; nothing was charged", "rate limited: at most 3 tasks a minute, retry later"),
    500: ("our fault; retry", "internal error; please retry or contact support"),
    503: ("the task could not be started and was refunded at once; retry",
          "the task could not be started; your points were refunded, please retry"),
}
# Answers API Gateway itself may give instead of the function's envelope.
_GATEWAY_TOO = {401, 500}


def answers(ok: str, *codes: int, public: bool = False) -> dict[int, dict]:
    """OpenAPI responses of a route: 200 (its return annotation) and the error envelopes it can give.

    Every route can answer 500; a route that needs a token also 401 and 403.
    """
    errors = sorted(set(codes) | {500} | (set() if public else {401, 403}))
    return {200: {"description": ok}} | {code: _error_answer(code) for code in errors}


def _error_answer(code: int) -> dict:
    description, example = _ERRORS[code]
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    if code in _GATEWAY_TOO:
        schema = {"anyOf": [schema, {"$ref": f"#/components/schemas/{GATEWAY_SCHEMA}"}]}
    return {"description": description, "content": {"application/json": {
        "schema": schema, "example": {"code": code, "message": example, "data": None}}}}


def _gateway_error_schema() -> dict:
    return {"type": "object", "title": GATEWAY_SCHEMA, "required": ["message"],
            "properties": {"message": {"type": "string", "examples": ["Unauthorized"]}},
            "description": "what API Gateway answers itself (no token, no route, the function failed)"}


def openapi_document(app) -> dict:
    schema = app.get_openapi_schema(
        title=TITLE, version=VERSION, description=DESCRIPTION,
        security_schemes={
            SECURITY_SCHEME: HTTPBearer(
                bearerFormat="JWT", description="an ID or access token of the stack's issuer (Cognito by default); "
                "on routes with `x-api-key-scope`, an API key (aigc_...) too"),
            API_KEY_SCHEME: APIKey(**{"in": APIKeyIn.header}, name="X-API-Key", description=(
                "an API key (aigc_..., POST /user/api-keys), on routes with `x-api-key-scope` when the key has "
                "that scope")),
        },
        security=[{SECURITY_SCHEME: []}],
    )
    document = json.loads(schema.model_dump_json(by_alias=True, exclude_none=True))
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.setdefault("parameters", [])
            if all(parameter.get("name") != ACCEPT_LANGUAGE["name"] for parameter in parameters):
                parameters.append(dict(ACCEPT_LANGUAGE))
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["500"] = _error_answer(500)  # not powertools' ResponseValidationError shape
    # powertools' own validation-error shapes are never answered (errors are the envelope).
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        components.pop(name, None)
    components[ERROR_SCHEMA] = ErrorResponse.model_json_schema(by_alias=True)
    components[GATEWAY_SCHEMA] = _gateway_error_schema()
    return document


def dumps(document: dict) -> str:
    """The committed form of the document (docs/openapi.json)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def serve_document(app) -> None:
    """GET /openapi.json and GET /docs (Swagger UI), both without auth and outside the document."""
    cache: dict[str, str] = {}

    def document_json() -> str:
        if "json" not in cache:
            cache["json"] = json.dumps(openapi_document(app))
        return cache["json"]

    @app.get("/openapi.json", include_in_schema=False)
    def _openapi_json():
        return Response(status_code=200, content_type="application/json", body=document_json())

    @app.get("/docs", include_in_schema=False, compress=True)
    def _docs():
        # powertools' own Swagger route answers ?format=json with the document: so does this one.
        if (app.current_event.get_query_string_value("format") or "").lower() == "json":
            return _openapi_json()
        folder = Path(swagger_ui.__file__).parent
        if "html" not in cache:
            cache["html"] = generate_swagger_html(
                document_json().replace("</", "<\\/"),
                (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
                (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
                None, None, False,
            )
        return Response(status_code=200, content_type="text/html", body=cache["html"])
