"""Forget finished workflow executions and old stream records after a retention window, so the
local stack's memory and its per-request work stay flat however many tasks it runs.

moto keeps every execution (with its whole event history) in one list per state machine, and
scans that list on every StartExecution, DescribeExecution and ListExecutions. AWS keeps closed
executions for 90 days; locally, an execution that ended more than `retention_seconds` ago is
dropped (its task, ledger and results stay in DynamoDB and S3).

moto keeps every DynamoDB stream record forever; DynamoDB Streams trims them after 24 hours.
Locally, records older than `retention_seconds` are trimmed (the stream reader, local/queues.py,
has long read them: it is seconds behind).
"""
from __future__ import annotations

import datetime
import logging
import threading

log = logging.getLogger("local.retention")

# A StartExecution that read the old list just before it was swapped appends within microseconds.
_STRAGGLER_SECONDS = 0.5


def _state_machines() -> list:
    """Both of moto's Step Functions backends: the parser's executes the ASL (the stack's case)."""
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    from local.stack import ACCOUNT, REGION

    return [machine for backends in (stepfunctions_parser_backends, stepfunctions_backends)
            for machine in list(backends[ACCOUNT][REGION].state_machines)]


def _finished_before(execution, cutoff: datetime.datetime) -> bool:
    stopped = getattr(execution, "stop_date", None)
    status = getattr(execution, "exec_status", None) or getattr(execution, "status", None)
    return stopped is not None and stopped < cutoff and str(getattr(status, "value", status)) != "RUNNING"


def prune(retention_seconds: float, *, on_dropped=None) -> int:
    """Drop executions that ended more than `retention_seconds` ago; returns how many.

    The list is replaced, never changed in place, so a request iterating it meanwhile (moto takes
    no lock) sees the whole old list; executions appended to the old list while it is swapped are
    carried over.
    """
    cutoff = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(seconds=retention_seconds)
    dropped = 0
    for machine in _state_machines():
        old = machine.executions
        seen = len(old)
        gone = {id(e) for e in old[:seen] if _finished_before(e, cutoff)}
        if not gone:
            continue
        kept = [e for e in old[:seen] if id(e) not in gone]
        machine.executions = kept
        threading.Event().wait(_STRAGGLER_SECONDS)
        kept.extend(old[seen:])
        dropped += len(gone)
        if on_dropped is not None:
            on_dropped([e.execution_arn for e in old[:seen] if id(e) in gone])
    return dropped


def trim_streams(retention_seconds: float) -> int:
    """Drop stream records created more than `retention_seconds` ago; returns how many.

    Sequence numbers stay as they were: the shard's starting number moves up by the records
    dropped (moto numbers a record by its position plus that starting number).
    """
    from moto.core.utils import utcnow
    from moto.dynamodb.models import dynamodb_backends

    from local import moto_dynamodb
    from local.stack import ACCOUNT, REGION

    cutoff = utcnow() - datetime.timedelta(seconds=retention_seconds)
    trimmed = 0
    with moto_dynamodb.LOCK:  # moto's tables and streams change only under it
        for table in list(dynamodb_backends[ACCOUNT][REGION].tables.values()):
            shard = table.stream_shard
            if shard is None:
                continue
            old = 0
            while old < len(shard.items) and shard.items[old].record["dynamodb"]["ApproximateCreationDateTime"] < cutoff:
                old += 1
            if old:
                del shard.items[:old]
                shard.starting_sequence_number += old
                trimmed += old
    return trimmed


class Pruner:
    """A background thread that prunes every `interval` seconds."""

    def __init__(self, retention_seconds: float, *, interval: float = 5.0, on_dropped=None):
        self.retention_seconds = retention_seconds
        self.interval = interval
        self.on_dropped = on_dropped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="execution-pruner", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                dropped = prune(self.retention_seconds, on_dropped=self.on_dropped)
                if dropped:
                    log.info("forgot %d executions that ended over %s s ago", dropped, self.retention_seconds)
                trimmed = trim_streams(self.retention_seconds)
                if trimmed:
                    log.info("trimmed %d stream records older than %s s", trimmed, self.retention_seconds)
            except Exception:  # keep the stack alive; the next pass retries
                log.exception("pruning executions failed")

    def start(self) -> "Pruner":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
