"""The one place that runs DynamoDB writes with conditions and transactions.

Domain rules are written as pynamodb conditions on the models of aigc.store.db (the condition *is*
the rule: "only while the balance covers the cost"); this module runs them and turns a failed
condition into a value, so no other module catches pynamodb's exceptions. A write that met a
transaction on the same item (TransactionConflict: two requests of one user at once) is retried
with jittered backoff, then answered 429 with Retry-After (`Busy`: the caller's own requests met,
nothing was written), never a 5xx.
"""
from __future__ import annotations

import functools
import random
import time
from typing import Callable, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from aigc.core.errors import Busy
from aigc.store.db import PointsItem

__all__ = ["ConditionFailed", "Model", "TransactWrite", "conditional", "get_or_none", "size", "transact",
           "transaction_applied"]

CONFLICT_ATTEMPTS = 6
CONFLICT_BASE_SECONDS = 0.025
CONFLICT_CAP_SECONDS = 0.8
M = TypeVar("M", bound=Model)


class ConditionFailed(Exception):
    """A transaction was cancelled because one of its conditions failed: nothing was written.
    `checks[i]` tells whether the i-th operation's condition failed, in the order DynamoDB ran them
    (pynamodb sends condition checks, then deletes, puts, updates)."""

    def __init__(self, checks: list[bool]):
        super().__init__("a condition of the transaction failed")
        self.checks = checks


@functools.cache
def _connection() -> Connection:
    """One per process: a new Connection builds a new botocore session (tens of ms of model loading)."""
    return Connection(region=PointsItem.Meta.region)


def _reasons(error: TransactWriteError) -> list[str | None]:
    return [reason.code if reason else None for reason in (error.cancellation_reasons or [])]


def backoff(attempt: int) -> float:
    """Full jitter (AWS's "Exponential Backoff And Jitter"): spreads the requests that met over the window."""
    return random.uniform(0, min(CONFLICT_CAP_SECONDS, CONFLICT_BASE_SECONDS * 2 ** attempt))


def _conflicted(attempt: int) -> None:
    """After a TransactionConflict: wait, or give up with Busy (429) after the last attempt."""
    if attempt == CONFLICT_ATTEMPTS:
        raise Busy() from None
    time.sleep(backoff(attempt))


def transact(write: Callable[[TransactWrite], None]) -> None:
    """Run `write`'s operations as one transaction. Raises ConditionFailed when a condition failed,
    Busy when it kept meeting other writes of the same items."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            with TransactWrite(connection=_connection()) as tx:
                write(tx)
            return
        except TransactWriteError as error:
            reasons = _reasons(error)
            if "ConditionalCheckFailed" in reasons:
                raise ConditionFailed([code == "ConditionalCheckFailed" for code in reasons]) from None
            if "TransactionConflict" not in reasons and error.cause_response_code != "TransactionConflictException":
                raise
            _conflicted(attempt)


def transaction_applied(write: Callable[[TransactWrite], None]) -> bool:
    """`transact`, answering False (nothing written) when a condition failed."""
    try:
        transact(write)
    except ConditionFailed:
        return False
    return True


def conditional(call: Callable[[], object], *, on_failure: Callable[[], object] | None = None) -> bool:
    """Run one conditional put/update/delete; False when its condition failed (then `on_failure` runs).
    A single write that meets a transaction on its item is refused with TransactionConflictException:
    retried as `transact` retries, then Busy."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            call()
            return True
        except (UpdateError, PutError, DeleteError) as error:
            if error.cause_response_code == "TransactionConflictException":
                _conflicted(attempt)
                continue
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            if on_failure is not None:
                on_failure()
            return False
    raise AssertionError("unreachable: the last attempt returns or raises")


def get_or_none(model: type[M], hash_key, range_key=None, *, consistent_read: bool = True) -> M | None:
    try:
        return model.get(hash_key, range_key, consistent_read=consistent_read)
    except model.DoesNotExist:
        return None
