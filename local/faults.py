"""The local fault switch: make our own AWS calls answer an error until the switch is cleared.

Local only. `install()` wraps botocore's `BaseClient._make_api_call`, the one method every boto3
and pynamodb call of this process goes through, and serves the switch beside the simulator's
controls (`/_local/faults` on the simulator port). Nothing in the deployed code knows about it.

A fault matches a botocore service name, operations and optionally an S3 key prefix or a table
name, and answers what that AWS service answers on a bad day: the error code, HTTP status and
message, raised as the client's own modeled exception (`ClientError` subclass), without retries.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from typing import Callable

from botocore.client import BaseClient

from local import seams

PRESETS = {
    # StoreResults: copying the provider's outputs and the thumbnail into results/ fails.
    "results-storage": {
        "service": "s3",
        "operations": ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"],
        "key_prefix": "results/",
        "code": "ServiceUnavailable",
        "status": 503,
        "message": "Please reduce your request rate. (local fault switch)",
    },
    # Another request's transaction holds an item of ours: DynamoDB cancels the transaction, the
    # reason of the item that met it being TransactionConflict (the others' "None").
    "transaction-conflict": {
        "service": "dynamodb",
        "operations": ["TransactWriteItems"],
        "code": "TransactionCanceledException",
        "status": 400,
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                   "[None, TransactionConflict] (local fault switch)",
        "cancellation_reasons": [{"Code": "None"},
                                 {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}],
    },
    # A single put/update/delete of an item that a transaction is writing at that moment.
    "write-conflict": {
        "service": "dynamodb",
        "operations": ["PutItem", "UpdateItem", "DeleteItem"],
        "code": "TransactionConflictException",
        "status": 400,
        "message": "Transaction is ongoing for the item (local fault switch)",
    },
}


@dataclasses.dataclass
class Fault:
    service: str
    operations: list[str]
    key_prefix: str | None = None
    table: str | None = None
    code: str = "InternalError"
    status: int = 500
    message: str = "We encountered an internal error. Please try again. (local fault switch)"
    times: int | None = None  # answer the error this many times, then clear; None: until cleared
    cancellation_reasons: list[dict] | None = None  # TransactionCanceledException's, one per item
    id: str = ""
    hits: int = 0

    def matches(self, service: str, operation: str, params: dict) -> bool:
        if service != self.service or ("*" not in self.operations and operation not in self.operations):
            return False
        if self.key_prefix is not None and not str(params.get("Key", "")).startswith(self.key_prefix):
            return False
        if self.table is not None and not any(self.table in name for name in _table_names(params)):
            return False
        return True


def _table_names(params: dict) -> list[str]:
    """The tables a call writes or reads: its TableName, or those of a transaction's items."""
    names = [str(params.get("TableName", ""))]
    for item in params.get("TransactItems") or []:
        names += [str(op.get("TableName", "")) for op in item.values() if isinstance(op, dict)]
    return names


def parse_fault(body) -> Fault:
    """A fault from a JSON object: a preset name, a full spec, or a preset with overrides."""
    if not isinstance(body, dict):
        raise ValueError("a JSON object is expected")
    body = dict(body)
    preset = body.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        body = {**PRESETS[preset], **body}
    fields = {f.name for f in dataclasses.fields(Fault)} - {"id", "hits"}
    for name in body:
        if name not in fields:
            raise ValueError(f"{name}: unknown field (fields: preset, {', '.join(sorted(fields))})")
    for name in ("service", "operations"):
        if not body.get(name):
            raise ValueError(f"{name}: required (or give a preset)")
    if isinstance(body["operations"], str):
        body["operations"] = [body["operations"]]
    if not isinstance(body.get("status", 500), int) or not 400 <= body.get("status", 500) <= 599:
        raise ValueError("status: an HTTP error status 400..599 is expected")
    reasons = body.get("cancellation_reasons")
    if reasons is not None and not (isinstance(reasons, list) and all(isinstance(r, dict) and "Code" in r
                                                                        for r in reasons)):
        raise ValueError('cancellation_reasons: a list of {"Code": ...} objects is expected')
    if body.get("times") is not None and (not isinstance(body["times"], int) or body["times"] < 1):
        raise ValueError("times: a positive integer (or null: until cleared) is expected")
    return Fault(**body)


class FaultSwitch:
    """The active faults (thread-safe); `check` is called before every AWS call of the process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = f"fault-{next(self._ids)}"
            self._faults[fault.id] = fault
        return fault

    def clear(self, fault_id: str | None = None) -> int:
        with self._lock:
            if fault_id is None:
                count = len(self._faults)
                self._faults.clear()
                return count
            return 1 if self._faults.pop(fault_id, None) else 0

    def list(self) -> list[dict]:
        with self._lock:
            return [dataclasses.asdict(f) for f in self._faults.values()]

    def check(self, service: str, operation: str, params: dict) -> Fault | None:
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults.values():
                if fault.matches(service, operation, params):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        del self._faults[fault.id]
                    return dataclasses.replace(fault)
        return None


SWITCH = FaultSwitch()
_ORIGINAL_CALL = BaseClient._make_api_call


def _make_api_call(self, operation_name, api_params):
    fault = SWITCH.check(self.meta.service_model.service_name, operation_name, api_params or {})
    if fault is not None:
        response = {"Error": {"Code": fault.code, "Message": fault.message},
                    "ResponseMetadata": {"HTTPStatusCode": fault.status, "RetryAttempts": 0}}
        if fault.cancellation_reasons is not None:
            response["CancellationReasons"] = fault.cancellation_reasons
        raise self.exceptions.from_code(fault.code)(response, operation_name)
    return _ORIGINAL_CALL(self, operation_name, api_params)


class FaultsEndpoint:
    """WSGI middleware serving /_local/faults in front of another app (the simulator)."""

    PATH = "/_local/faults"

    def __init__(self, app, switch: FaultSwitch = SWITCH):
        self.app = app
        self.switch = switch

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != self.PATH and not path.startswith(self.PATH + "/"):
            return self.app(environ, start_response)
        status, body = self._handle(environ["REQUEST_METHOD"], path[len(self.PATH):].strip("/"), environ)
        payload = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _handle(self, method: str, fault_id: str, environ) -> tuple[str, dict]:
        if method == "GET" and not fault_id:
            return "200 OK", {"faults": self.switch.list(), "presets": PRESETS}
        if method == "POST" and not fault_id:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                fault = parse_fault(json.loads(environ["wsgi.input"].read(length) or b"null"))
            except (ValueError, TypeError) as error:
                return "400 Bad Request", {"error": str(error)}
            return "201 Created", {"fault": dataclasses.asdict(self.switch.add(fault))}
        if method == "DELETE":
            cleared = self.switch.clear(fault_id or None)
            if fault_id and not cleared:
                return "404 Not Found", {"error": f"no fault {fault_id!r}"}
            return "200 OK", {"cleared": cleared}
        return "405 Method Not Allowed", {"error": "GET, POST or DELETE /_local/faults[/<id>]"}


def install(flask_app=None) -> Callable[[], None]:
    """Route every AWS call of this process through the switch and (if given) serve its endpoint on
    the simulator's Flask app. Returns the function that undoes both and clears the faults."""
    undo_call = seams.patch("botocore.client:BaseClient._make_api_call", _make_api_call)
    original_wsgi = None
    if flask_app is not None:
        original_wsgi = flask_app.wsgi_app
        flask_app.wsgi_app = FaultsEndpoint(original_wsgi)

    def uninstall() -> None:
        undo_call()
        if flask_app is not None:
            flask_app.wsgi_app = original_wsgi
        SWITCH.clear()

    return uninstall
