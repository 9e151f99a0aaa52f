"""Typed errors. API errors carry the envelope's `code` and `message` (and the HTTP status)."""
from __future__ import annotations

from typing import Any


class AigcError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ApiError(AigcError):
    """The API answered with an error envelope `{"code", "message", "data"}`."""

    def __init__(self, status: int, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class BadRequest(ApiError):
    """400 (and any other 4xx without a class of its own): the message names the field and the rule."""


class AuthError(ApiError):
    """401 not logged in / token expired, 403 not allowed."""


class InsufficientPoints(ApiError):
    """402: the message gives the cost and the balance."""


class NotFound(ApiError):
    """404: unknown task or model (another user's task is a 404 too)."""


class Conflict(ApiError):
    """409: e.g. cancelling a task that already finished."""


class RateLimited(ApiError):
    """429: too many submits, a queue too long to start in time, or this account's own requests writing it at
    the same moment (nothing changed); `retry_after` is the Retry-After header in seconds, when sent."""

    retry_after: float | None = None


class ServerError(ApiError):
    """5xx: the service's fault; retry later."""


class NetworkError(AigcError):
    """The API could not be reached or did not answer in time."""


class WaitTimeout(AigcError):
    """`Client.wait` gave up before the task finished; `task` is the last state seen."""

    def __init__(self, message: str, task):
        super().__init__(message)
        self.task = task


_BY_STATUS = {400: BadRequest, 401: AuthError, 402: InsufficientPoints, 403: AuthError, 404: NotFound,
              409: Conflict, 429: RateLimited}


def error_for(status: int, code: int | None, message: str, data: Any = None) -> ApiError:
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    return cls(status, code if code is not None else status, message, data)
