"""Counter items in the stats table (STATS_TABLE): adds that happen once, and range reads.

A counter item's numbers are named by the data (an error code, a histogram bucket), so they are
written as plain attribute paths and read back whole (`StatsItem.counters`). Which items and which
numbers is aigc.domain.stats' business; this module only makes each add happen once:

- `add_once`: one transaction puts a marker (the stream record's id, "must not exist", with a TTL)
  and ADDs the counters; a redelivered record finds its marker and the transaction changes nothing.
- `add_new_tokens`: a marker item holding a set of tokens (a user's hours and days already counted);
  only the tokens not yet in it are added, in one transaction with their counters, conditioned on
  their still being absent (a concurrent writer makes it read and try again).
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterator

from pynamodb.expressions.operand import Path

from aigc.store.db import StatsItem
from aigc.store.dynamo import ConditionFailed, TransactWrite, get_or_none, transact

TOKEN_ATTEMPTS = 4


def _adds(counters: Counter | dict) -> list:
    return [Path([name]).add({"N": str(int(value))}) for name, value in sorted(counters.items()) if value]


def add_once(marker: str, updates: dict[tuple[str, str], Counter], *, keep_seconds: int) -> bool:
    """ADD `updates` ({(pk, sk): {name: n}}) unless `marker` was already written; True when applied."""
    updates = {key: counters for key, counters in updates.items() if any(counters.values())}
    if not updates:
        return False

    def write(tx: TransactWrite) -> None:
        tx.save(StatsItem(marker, "REC", expires_at=int(time.time()) + keep_seconds),
                condition=StatsItem.pk.does_not_exist())
        for (pk, sk), counters in updates.items():
            tx.update(StatsItem(pk, sk), actions=_adds(counters))

    try:
        transact(write)
    except ConditionFailed:
        return False
    return True


def add_new_tokens(pk: str, sk: str, tokens: set[str],
                   updates_for: Callable[[set[str]], dict[tuple[str, str], Counter]], *, expires_at: int) -> int:
    """Record the `tokens` not yet in marker (pk, sk) and ADD `updates_for(missing)` with them; returns how
    many were new (0: all were already there, nothing written)."""
    for _attempt in range(TOKEN_ATTEMPTS):
        marker = get_or_none(StatsItem, pk, sk)
        missing = set(tokens) - set(marker.seen or ()) if marker else set(tokens)
        if not missing:
            return 0
        absent = None
        for token in sorted(missing):
            condition = ~StatsItem.seen.contains(token)
            absent = condition if absent is None else absent & condition
        guard = StatsItem.seen.does_not_exist() | absent

        def write(tx: TransactWrite, missing=missing, guard=guard) -> None:
            tx.update(StatsItem(pk, sk), actions=[StatsItem.seen.add(missing), StatsItem.expires_at.set(expires_at)],
                      condition=guard)
            for (item_pk, item_sk), counters in updates_for(missing).items():
                tx.update(StatsItem(item_pk, item_sk), actions=_adds(counters))

        try:
            transact(write)
            return len(missing)
        except ConditionFailed:
            continue  # another record of the same user added some of them meanwhile: read again
    raise RuntimeError(f"{pk}/{sk}: tokens kept changing under {TOKEN_ATTEMPTS} attempts")


def read_range(pk: str, first: str, last: str) -> Iterator[tuple[str, dict[str, int]]]:
    """(sort key, counters) of partition `pk`'s items with first <= sort key <= last."""
    for item in StatsItem.query(pk, StatsItem.sk.between(first, last)):
        yield item.sk, item.counters
