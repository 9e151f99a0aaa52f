"""The books of points lots, read straight from the points table (domain and workflow tiers).

For every user with a BALANCE item:
  balance == sum(lots.remaining)
          == purchases + grants - debits + refunds - expiries - clawbacks   (the ledger's signed amounts)
  0 <= remaining <= granted for every lot
  the BALANCE item's spending order (`active_lots`) names exactly the lots that hold points
  every entry's lots add up to its amount (a lot each for grants, purchases, expiries of a lot)
"""
from __future__ import annotations

from collections import Counter

from aigc.core.vocab import LedgerKind
from aigc.domain import lots, points
from aigc.store.db import LotItem, PointsItem

KINDS = {kind.value for kind in LedgerKind}


def user_lots(user_id: str) -> list[LotItem]:
    return list(LotItem.query(user_id, LotItem.entry.startswith(lots.LOT_PREFIX), consistent_read=True))


def check_user(user_id: str) -> dict:
    """Assert the books of one user; returns {kind: signed total} for further checks."""
    item = PointsItem.get(user_id, lots.BALANCE, consistent_read=True)
    held = user_lots(user_id)
    entries = points.ledger_entries(user_id)
    by_kind: Counter = Counter()
    for entry in entries:
        assert entry.kind in KINDS, entry.kind
        by_kind[entry.kind] += int(entry.amount)
        if entry.lots:
            assert sum(lots.plain(entry.lots).values()) == abs(int(entry.amount)), (entry.entry, entry.lots)
    balance = int(item.balance or 0)
    remaining = sum(int(lot.remaining or 0) for lot in held)
    assert balance == remaining, f"{user_id}: balance {balance} != lots {remaining}"
    assert balance == sum(by_kind.values()), f"{user_id}: balance {balance} != ledger {dict(by_kind)}"
    assert by_kind[LedgerKind.DEBIT] <= 0 and by_kind[LedgerKind.EXPIRE] <= 0 and by_kind[LedgerKind.CLAWBACK] <= 0
    for lot in held:
        assert 0 <= int(lot.remaining) <= int(lot.granted), (lot.lot_id, lot.remaining, lot.granted)
    active = set(item.active_lots or ())
    assert active == {lots.key_of(lot).text for lot in held if int(lot.remaining) > 0}, (active, held)
    return dict(by_kind)


def check_all() -> None:
    for item in PointsItem.scan(PointsItem.entry == lots.BALANCE):  # tests only: the table is small
        if item.balance is not None:
            check_user(item.user_id)
