"""Domain errors. Each maps once to an HTTP status (API) or a workflow error name (Step Functions)."""
from __future__ import annotations

from aigc.core.i18n import Message, _


class AppError(Exception):
    """An error the user can cause or see; `status` is both the HTTP status and the envelope `code`."""

    status = 500
    default_message: Message = _("internal error")
    default_retry_after: int | None = None  # seconds; 429 and 503 answers always carry Retry-After

    def __init__(self, message: Message | str | None = None, *, error_code: str | None = None,
                 retry_after: int | None = None):
        text = message or self.default_message
        super().__init__(str(text))
        self.text = text  # what the user reads: a Message, rendered in their language where it is shown
        self.message = str(text)  # the English text (logs, tests)
        self.error_code = error_code
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after


class BadRequest(AppError):
    status = 400
    default_message = _("bad request")


class Unauthorized(AppError):
    status = 401
    default_message = _("not logged in or token expired")


class InsufficientPoints(AppError):
    status = 402
    default_message = _("not enough points")

    def __init__(self, cost: int, balance: int):
        super().__init__(_("not enough points: this task costs {cost}, your balance is {balance}; buy points: "
                           "GET /points/packs lists the packs, POST /user/points/checkout buys one",
                           cost=cost, balance=balance),
                         error_code="InsufficientPoints")
        self.cost = cost
        self.balance = balance


class LimitReached(AppError):
    """A spending limit the account set itself (an API key's daily points): 402, nothing charged."""

    status = 402
    default_message = _("spending limit reached")


class Forbidden(AppError):
    status = 403
    default_message = _("not allowed")


class NotFound(AppError):
    status = 404
    default_message = _("not found")


class Conflict(AppError):
    status = 409
    default_message = _("conflict")


class RateLimited(AppError):
    status = 429
    default_message = _("too many requests")
    default_retry_after = 60


class Busy(RateLimited):
    """The account's own requests met on the same item at the same moment and kept meeting after our retries
    (DynamoDB's TransactionConflict): the caller sent too much at once, so it is a 429 the caller can retry at
    once, never a 5xx of ours (as Stripe answers a lock timeout). Nothing was written."""

    default_message = _("another request of this account was being written at the same moment; nothing was "
                        "changed, please retry")
    default_retry_after = 1


class ServiceUnavailable(AppError):
    status = 503
    default_message = _("service temporarily unavailable, please retry")
    default_retry_after = 5


# --- provider errors (raised by adapters, seen by the workflow) -------------------------------


class ProviderError(Exception):
    """Base of provider failures. The class name is the Step Functions error name."""

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class ProviderThrottled(ProviderError):
    """HTTP 429 from the provider: retry with backoff."""


class ProviderUnavailable(ProviderError):
    """5xx, timeout or connection error: transient, retry with backoff."""


class ProviderRejected(ProviderError):
    """The provider refused the job for good (bad input, content, auth): refund, do not retry."""
