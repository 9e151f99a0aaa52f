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
from aigc.core import i18n
from aigc.core.errors import AppError, Forbidden, ServiceUnavailable, Unauthorized
from aigc.core.i18n import Message, _
from aigc.core.observability import logger
from aigc.domain import auth
from aigc.domain.api_keys import KeyLimits

MAX_BODY_CHARS = 64 * 1024
MAX_JSON_DEPTH = 32
# Strings (skipped whole, escapes included) or brackets: the brackets outside strings give the depth.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _refuse(message: Message) -> json.JSONDecodeError:
    # JSONDecodeError keeps the Message as `msg` (powertools passes it on as the error's ctx).
    return json.JSONDecodeError(message, "", 0)  # type: ignore[arg-type]


def _no_constant(name: str):
    raise _refuse(_("{name} is not a JSON number", name=name))


def parse_json_body(text: str | bytes):
    """json.loads for request bodies, bounded in size and nesting depth; NaN/Infinity are not JSON.

    Raises JSONDecodeError (a 400 naming the body) for everything it refuses, never RecursionError.
    Numbers are left to the models, whose bounds name the field (`parameters.leftOffset: ... <= 10000`).
    """
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_BODY_CHARS:
        raise _refuse(_("the body is larger than {limit} characters", limit=MAX_BODY_CHARS))
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _refuse(_("JSON nested deeper than {limit} levels", limit=MAX_JSON_DEPTH))
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _refuse(_("JSON nested deeper than {limit} levels", limit=MAX_JSON_DEPTH)) from None
    except ValueError:  # an integer of thousands of digits
        raise _refuse(_("a number is too long")) from None


# --- the reader's language (Accept-Language) ---------------------------------------------------------

# Each language the API writes, with the language ranges that choose it (RFC 4647 basic filtering: a range
# chooses a tag it equals or is a prefix of). Only Simplified Chinese has a catalog: zh-TW, zh-HK and
# zh-Hant are not it, and fall through to the reader's next choice (else English).
_SERVED = {"en": ("en",), "zh-CN": ("zh-cn", "zh-hans", "zh-hans-cn", "zh-sg", "zh-hans-sg")}
_LANGUAGE_RANGE = re.compile(r"^(\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)$")
_QVALUE = re.compile(r"^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$", re.IGNORECASE)


def _chooses(language_range: str, language: str) -> bool:
    return any(tag == language_range or tag.startswith(language_range + "-") for tag in _SERVED[language])


def negotiate_language(accept_language: str | None) -> str:
    """The language to write in for an Accept-Language header (RFC 9110 12.5.4): the reader's ranges by
    q-value (highest first, then in their order; q=0 means "not this"), the first that chooses a language
    we write wins; `*` is any language not refused. No header, or nothing acceptable: English."""
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "")[:1024].split(",")):
        name, *params = [part.strip() for part in item.split(";")]
        if not _LANGUAGE_RANGE.match(name):
            continue
        quality = 1.0
        for param in params:
            match = _QVALUE.match(param.replace(" ", ""))
            if match:
                quality = float(match.group(1))
            elif param.lower().startswith("q="):
                quality = -1.0  # a malformed weight: ignore the range
        if quality >= 0:
            ranges.append((quality, position, name.lower()))
    refused = {language for quality, _pos, name in ranges if quality == 0 and name != "*"
               for language in _SERVED if _chooses(name, language)}
    for quality, _pos, name in sorted(ranges, key=lambda item: (-item[0], item[1])):
        if quality == 0:
            break
        if name == "*":
            for language in i18n.LANGUAGES:
                if language not in refused:
                    return language
            continue
        for language in i18n.LANGUAGES:
            if language not in refused and _chooses(name, language):
                return language
    return i18n.DEFAULT_LANGUAGE


def request_language(app: APIGatewayHttpResolver) -> str:
    return negotiate_language(app.current_event.get_header_value("accept-language", case_sensitive=False))


def _event_language(event: dict) -> str:
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    return negotiate_language(headers.get("accept-language"))


def error_response(status: int, message: Message | str, error_code: str | None = None,
                   retry_after: int | None = None, *, language: str | None = None) -> Response:
    language = i18n.supported(language or i18n.current_language())
    body = envelope(None, code=status, message=i18n.render(message, language))
    if error_code:
        body["errorCode"] = error_code
    headers = {"Content-Language": language}
    if status in (429, 503):
        headers["Retry-After"] = str(max(1, retry_after or 1))
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(body, ensure_ascii=False), headers=headers)


def _in_language(app: APIGatewayHttpResolver, next_middleware):
    """Every route runs in the reader's language: the views render stored messages in it."""
    with i18n.use_language(request_language(app)) as language:
        response = next_middleware(app)
    if isinstance(response, Response):
        response.headers.setdefault("Content-Language", language)
    return response


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Every error as the envelope, in the reader's language (errors are mapped outside the routes'
    middleware, so each handler negotiates the language itself); and the routes' language."""
    app.use(middlewares=[_in_language])

    def answer(status: int, message: Message | str, error_code: str | None = None,
               retry_after: int | None = None) -> Response:
        return error_response(status, message, error_code, retry_after, language=request_language(app))

    @app.exception_handler(AppError)
    def _app_error(error: AppError):
        if error.status >= 500:
            logger.error("request failed", extra={"status": error.status, "error": error.message})
        return answer(error.status, error.text, error.error_code, error.retry_after)

    @app.exception_handler(RequestValidationError)
    def _validation(error: RequestValidationError):
        return answer(400, describe_validation_error(list(error.errors())))

    @app.exception_handler(UnicodeDecodeError)
    def _not_text(_error: UnicodeDecodeError):  # the body's bytes (base64 in the event) are not UTF-8
        return answer(400, _("body: not valid JSON (not UTF-8 text)"))

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_error: RequestUnsupportedContentType):
        return answer(400, _("body: send JSON (Content-Type: application/json)"))

    @app.exception_handler(ResponseValidationError)
    def _bad_response(error: ResponseValidationError):
        logger.error("response does not match its model", extra={"errors": str(error.errors())[:2000]})
        return answer(500, _("internal error; please retry or contact support"))

    @app.not_found
    def _not_found(_error):
        return answer(404, _("no such route"))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception):
        logger.exception("unhandled error")
        return answer(500, _("internal error; please retry or contact support"))


@dataclass(frozen=True)
class Caller:
    user_id: str
    groups: frozenset[str]
    scopes: frozenset[str] = auth.ALL_SCOPES
    key: KeyLimits | None = None  # an API key's limits (aigc.domain.api_keys); None for a signed-in user


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


def caller(app: APIGatewayHttpResolver, scope: str | None = None) -> Caller:
    """The user of the token or API key; a `sub` that is not safe in an S3 or DynamoDB key is refused before
    anything runs. `scope`: the API key scope the route needs (`tasks:write`, `tasks:read`, `points:read`);
    None for the routes only a signed-in user may use (managing keys, webhook secrets, admin): a key is refused.

    The user comes from the JWT authorizer's claims, or from the Lambda authorizer's context (a JWT or a key,
    aigc.domain.auth)."""
    authorizer = app.current_event.request_context.authorizer
    context = authorizer.get_lambda if authorizer else None
    if context:
        who = _from_authorizer(context)
        user_id = who.user_id
    else:
        claims = (authorizer.jwt_claim if authorizer else None) or {}
        user_id = claims.get("sub")
        if not user_id:
            raise Unauthorized(_("not logged in or token expired"))
        user_id = str(user_id)
        who = Caller(user_id, _groups(claims.get("cognito:groups") or claims.get("groups")))
    if len(user_id) > MAX_USER_ID_CHARS or not re.fullmatch(SAFE_USER_ID, user_id):
        raise Forbidden(_("the token's subject (sub) is not a valid user id: 1 to {limit} letters, "
                          "digits or _@:+=- with single dots between them", limit=MAX_USER_ID_CHARS))
    if who.key is not None:
        if scope is None:
            raise Forbidden(_("this route needs a signed-in user's token (JWT), not an API key"),
                            error_code="ApiKey.JwtOnly")
        if scope not in who.scopes:
            raise Forbidden(_("this API key lacks the scope '{scope}'", scope=scope), error_code="ApiKey.Scope")
    return who


def _from_authorizer(context: dict) -> Caller:
    try:
        principal = auth.from_context(context)
    except auth.AuthUnavailable:
        raise ServiceUnavailable(_("your credentials could not be checked just now; please retry"),
                                 retry_after=1) from None
    except auth.Unauthenticated:
        raise Unauthorized(UNAUTHENTICATED) from None
    return Caller(principal.user_id, principal.groups, principal.scopes, principal.key)


UNAUTHENTICATED = _("not logged in, or the token or API key is not valid (or expired, or revoked)")


def refuse_unauthenticated(event: dict) -> dict | None:
    """A request the Lambda authorizer found no valid credential on (it passes `authError` rather than deny:
    API Gateway would answer 403 without our envelope) is answered here, before routing or validation:
    401, or 503 with Retry-After when the credential could not be checked."""
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
    if not isinstance(context, dict) or context.get("userId"):
        return None
    unavailable = context.get("authError") == "unavailable"
    status = 503 if unavailable else 401
    message = _("your credentials could not be checked just now; please retry") if unavailable else UNAUTHENTICATED
    language = _event_language(event)
    headers = {"Content-Type": content_types.APPLICATION_JSON, "Content-Language": language}
    if unavailable:
        headers["Retry-After"] = "1"
    body = envelope(None, code=status, message=message.render(language))
    return {"statusCode": status, "headers": headers, "body": json.dumps(body, ensure_ascii=False),
            "isBase64Encoded": False}


def require_group(who: Caller, group: str) -> None:
    if group not in who.groups:
        raise Forbidden(_("only members of '{group}' may do this", group=group))


def refuse_multipart(event: dict) -> dict | None:
    """Every body this API takes is JSON. A multipart/* request is answered 400 before routing: powertools'
    validation would parse the form, and one without a boundary raised (a 500)."""
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type") or "").strip().lower()
    if not content_type.startswith("multipart/"):
        return None
    language = _event_language(event)
    message = _("body: send JSON (Content-Type: application/json); forms (multipart) are not accepted")
    body = envelope(None, code=400, message=message.render(language))
    return {"statusCode": 400, "headers": {"Content-Type": content_types.APPLICATION_JSON, "Content-Language": language},
            "body": json.dumps(body, ensure_ascii=False), "isBase64Encoded": False}
