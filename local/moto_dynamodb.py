"""DynamoDB in moto, atomic and isolated as DynamoDB is: one request at a time.

moto 5.2.5 applies a TransactWriteItems item by item without a lock: it deep-copies each table
it touches, writes, and on a failed condition puts the copies back, erasing whatever other
requests wrote in between (and a deepcopy racing a write raises "dictionary changed size during
iteration"). Single-item conditional writes race the same way: the condition is read, then the
item written, with nothing in between held. DynamoDB itself makes each request atomic and
serialisable, so the emulator must too.

The seam is `DynamoHandler.call_action`, the one method every DynamoDB API request goes through
(parse, backend, serialise): `install()` holds one lock around it. Reads take the lock as well, so
a query never sees half a transaction nor iterates a table while it changes. The cost is that
DynamoDB requests run one at a time, which at moto's speed is not what limits the local stack.

tests/workflow/test_moto_seams.py fails if a moto upgrade moves this seam, and shows moto's own
behaviour without it (drop this module once that test starts passing upstream).
"""
from __future__ import annotations

import functools
import threading
from typing import Callable

from moto.dynamodb.responses import DynamoHandler

LOCK = threading.RLock()  # also held by in-process readers of moto's tables (local/queues.py)
_ORIGINAL = DynamoHandler.call_action


def install() -> Callable[[], None]:
    """Serialise moto's DynamoDB requests; returns the function that undoes it (idempotent)."""
    if getattr(DynamoHandler.call_action, "_serialised", False):
        return lambda: None

    @functools.wraps(_ORIGINAL)
    def call_action(self):
        with LOCK:
            return _ORIGINAL(self)

    call_action._serialised = True
    DynamoHandler.call_action = call_action

    def uninstall() -> None:
        DynamoHandler.call_action = _ORIGINAL

    return uninstall
