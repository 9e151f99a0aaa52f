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

moto's rollback is also what made the local stack slow down as it filled: the copy of every table
a transaction touches (its items and stream records) took half the stack's CPU, and grew with the
tables. Under the lock nothing else changes a table during a transaction, so `install()` also
replaces that copy with an undo log of just the items the transaction names (and the length of
their tables' streams): on failure those items are put back and the stream records cut, which is
what restoring the copies did.

local/seams.py registers both seams; tests/workflow/test_moto_seams.py fails if a moto upgrade moves
them, and shows moto's own behaviour without them (drop this module once that test starts passing
upstream).
"""
from __future__ import annotations

import copy
import functools
import threading
from typing import Any, Callable

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from local import seams

LOCK = threading.RLock()  # also held by in-process readers of moto's tables (local/queues.py)
_ORIGINAL = DynamoHandler.call_action
_ORIGINAL_TRANSACT = DynamoDBBackend.transact_write_items


class _TablesByReference:
    """moto's `copy` module in dynamodb.models, except that a Table "copy" is the table itself, so
    moto's rollback (putting the copies back) changes nothing and the undo log does the work."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _key_of(table: Table, operation: dict) -> tuple[DynamoType, DynamoType | None] | None:
    """The (hash, range) key an operation of a transaction names, or None if it names none validly
    (moto then refuses the transaction before writing that item)."""
    attributes = operation.get("Key") or operation.get("Item")
    if not isinstance(attributes, dict):
        return None
    try:
        hash_value = DynamoType(attributes[table.hash_key_attr])
        range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError, AttributeError):
        return None
    return hash_value, range_value


def _slot(table: Table, hash_value: DynamoType, range_value: DynamoType | None) -> tuple[dict, DynamoType]:
    """Where an item lives in moto's table, as (dict, key): `items[hash]`, or `items[hash][range]`."""
    return (table.items[hash_value], range_value) if range_value is not None else (table.items, hash_value)


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    undo: list[tuple[dict, DynamoType, Any]] = []  # (where, key, the item before or None)
    stream_lengths: dict[int, tuple[Table, int]] = {}
    for entry in transact_items[:100] if isinstance(transact_items, list) else []:
        operation = next(iter(entry.values()), None) if isinstance(entry, dict) else None
        table = self.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
        key = _key_of(table, operation) if table is not None else None
        if key is None:
            continue
        where, item_key = _slot(table, *key)
        undo.append((where, item_key, copy.deepcopy(where.get(item_key))))
        if table.stream_shard is not None:
            stream_lengths.setdefault(id(table), (table, len(table.stream_shard.items)))
    try:
        return _ORIGINAL_TRANSACT(self, transact_items)
    except Exception:
        for where, item_key, before in reversed(undo):
            if before is None:
                where.pop(item_key, None)
            else:
                where[item_key] = before
        for table, length in stream_lengths.values():
            del table.stream_shard.items[length:]
        raise


def install() -> Callable[[], None]:
    """Serialise moto's DynamoDB requests; returns the function that undoes it (idempotent)."""
    if getattr(DynamoHandler.call_action, "_serialised", False):
        return lambda: None

    @functools.wraps(_ORIGINAL)
    def call_action(self):
        with LOCK:
            return _ORIGINAL(self)

    call_action._serialised = True
    return seams.patch_all({
        "moto.dynamodb.responses:DynamoHandler.call_action": call_action,
        "moto.dynamodb.models:DynamoDBBackend.transact_write_items": _transact_write_items,
        "moto.dynamodb.models:copy": _TablesByReference(),
    })
