"""The HTTP side shared by API handlers: the body parser, every error as the envelope (mapped once)
and the caller."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)

from aigc.api.schemas import MAX_USER_ID_CHARS, SAFE_USER_ID, describe_validation_error, envelope
from aigc.core.errors import AppError, Forbidden, Unauthorized
from aigc.core.observability import logger

MAX_BODY_CHARS = 64 * 1024
MAX_JSON_DEPTH = 32
# Strings (skipped whole, escapes included) or brackets: the brackets outside strings give the depth.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _refuse(message: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(message, "", 0)


def _no_constant(name: str):
    raise _refuse(f"{name} is not a JSON number")


def parse_json_body(text: str | bytes):
    """json.loads for request bodies, bounded in size and nesting depth; NaN/Infinity are not JSON.

    Raises JSONDecodeError (a 400 naming the body) for everything it refuses, never RecursionError.
    Numbers are left to the models, whose bounds name the field (`parameters.leftOffset: ... <= 10000`).
    """
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_BODY_CHARS:
        raise _refuse(f"the body is larger than {MAX_BODY_CHARS} characters")
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _refuse(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _refuse(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # an integer of thousands of digits
        raise _refuse("a number is too long") from None


def error_response(status: int, message: str, error_code: str | None = None,
                   retry_after: int | None = None) -> Response:
    body = envelope(None, code=status, message=message)
    if error_code:
        body["errorCode"] = error_code
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = str(max(1, retry_after or 1))
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers or None)


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(AppError)
    def _app_error(error: AppError):
        if error.status >= 500:
            logger.error("request failed", extra={"status": error.status, "error": error.message})
        return error_response(error.status, error.message, error.error_code, error.retry_after)

    @app.exception_handler(RequestValidationError)
    def _validation(error: RequestValidationError):
        return error_response(400, describe_validation_error(list(error.errors())))

    @app.exception_handler(UnicodeDecodeError)
    def _not_text(_error: UnicodeDecodeError):  # the body's bytes (base64 in the event) are not UTF-8
        return error_response(400, "body: not valid JSON (not UTF-8 text)")

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_error: RequestUnsupportedContentType):
        return error_response(400, "body: send JSON (Content-Type: application/json)")

    @app.exception_handler(ResponseValidationError)
    def _bad_response(error: ResponseValidationError):
        logger.error("response does not match its model", extra={"errors": str(error.errors())[:2000]})
        return error_response(500, "internal error; please retry or contact support")

    @app.not_found
    def _not_found(_error):
        return error_response(404, "no such route")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception):
        logger.exception("unhandled error")
        return error_response(500, "internal error; please retry or contact support")


@dataclass(frozen=True)
class Caller:
    user_id: str
    groups: frozenset[str]


def _groups(claim) -> frozenset[str]:
    """HTTP API JWT authorizers pass an array claim as one string, "[admins editors]" (Cognito group
    names hold no spaces). Only that bracketed form is split: a plain string claim is one group, so
    a group named "foo admins" is not the admins group."""
    if isinstance(claim, list):
        return frozenset(str(g) for g in claim)
    if isinstance(claim, str):
        text = claim.strip()
        if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text[1:-1].split()
            return frozenset(str(part) for part in parsed if str(part))
        return frozenset({text}) if text else frozenset()
    return frozenset()


def caller(app: APIGatewayHttpResolver) -> Caller:
    """The user of the token; a `sub` that is not safe in an S3 or DynamoDB key is refused before anything runs."""
    authorizer = app.current_event.request_context.authorizer
    claims = (authorizer.jwt_claim if authorizer else None) or {}
    user_id = claims.get("sub")
    if not user_id:
        raise Unauthorized("not logged in or token expired")
    user_id = str(user_id)
    if len(user_id) > MAX_USER_ID_CHARS or not re.fullmatch(SAFE_USER_ID, user_id):
        raise Forbidden(f"the token's subject (sub) is not a valid user id: 1 to {MAX_USER_ID_CHARS} letters, "
                        "digits or _@:+=- with single dots between them")
    return Caller(user_id, _groups(claims.get("cognito:groups") or claims.get("groups")))


def require_group(who: Caller, group: str) -> None:
    if group not in who.groups:
        raise Forbidden(f"only members of '{group}' may do this")


def refuse_multipart(event: dict) -> dict | None:
    """Every body this API takes is JSON. A multipart/* request is answered 400 before routing: powertools'
    validation would parse the form, and one without a boundary raised (a 500)."""
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type") or "").strip().lower()
    if not content_type.startswith("multipart/"):
        return None
    body = envelope(None, code=400, message="body: send JSON (Content-Type: application/json); "
                                            "forms (multipart) are not accepted")
    return {"statusCode": 400, "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps(body), "isBase64Encoded": False}
