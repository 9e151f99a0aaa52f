"""The HTTP side shared by API handlers: the envelope for every error (mapped once) and the caller."""
from __future__ import annotations

import json
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from aigc.errors import AppError, BadRequest, Forbidden, Unauthorized
from aigc.observability import logger
from aigc.schemas import describe_validation_error, envelope


def error_response(status: int, message: str, error_code: str | None = None) -> Response:
    body = envelope(None, code=status, message=message)
    if error_code:
        body["errorCode"] = error_code
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(AppError)
    def _app_error(error: AppError):
        if error.status >= 500:
            logger.error("request failed", extra={"status": error.status, "error": error.message})
        return error_response(error.status, error.message, error.error_code)

    @app.exception_handler(RequestValidationError)
    def _validation(error: RequestValidationError):
        return error_response(400, describe_validation_error(list(error.errors())))

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
    # HTTP API JWT authorizers pass array claims as a string like "[admins editors]".
    if isinstance(claim, list):
        return frozenset(str(g) for g in claim)
    if isinstance(claim, str):
        return frozenset(part for part in claim.strip("[]").replace(",", " ").split() if part)
    return frozenset()


def caller(app: APIGatewayHttpResolver) -> Caller:
    authorizer = app.current_event.request_context.authorizer
    claims = (authorizer.jwt_claim if authorizer else None) or {}
    user_id = claims.get("sub")
    if not user_id:
        raise Unauthorized("not logged in or token expired")
    return Caller(str(user_id), _groups(claims.get("cognito:groups") or claims.get("groups")))


def require_group(who: Caller, group: str) -> None:
    if group not in who.groups:
        raise Forbidden(f"only members of '{group}' may do this")


def json_body(app: APIGatewayHttpResolver) -> dict:
    try:
        body = app.current_event.json_body
    except (json.JSONDecodeError, TypeError, ValueError):
        raise BadRequest("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    return body
