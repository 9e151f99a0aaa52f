"""Points lots: every grant, purchase and bonus is a lot with its own category and expiry.

The policy (spending order, the bound on the lots one debit touches, what a refund to an expired lot
does, how expiry finds its lots) is told once, in docs/ARCHITECTURE.md, "Points lots and purchases".
This module holds the lot items and the pieces every ledger transaction shares: the ledger entry, the
spend keys kept on the BALANCE item, reading lots in spending order, and expiry.

The BALANCE item's `active_lots` is the set of spend keys `<rank>#<expiry>#<lotId>` of the lots that
hold points: sorted, it is the spending order (rank 0 promotional, 1 paid; then the earliest expiry,
`~` for never). Every transaction that empties or refills a lot changes the set in the same write,
so a debit reads only the lots it may spend, never the user's history of lots.
"""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from aigc.core.errors import Conflict, InsufficientPoints, ServiceUnavailable
from aigc.core import i18n
from aigc.core.i18n import Message, _
from aigc.core.observability import count, logger
from aigc.core.timeutil import iso_ms, utcnow
from aigc.core.vocab import LedgerKind, LotCategory
from aigc.store.db import LotItem, PointsItem
from aigc.store.dynamo import ConditionFailed, TransactWrite, get_or_none, transact

BALANCE = "BALANCE"
LOT_PREFIX = "LOT#"
NEVER = "~"  # sorts after every ISO time: lots that never expire are spent last in their category
OPENING = "OPENING"  # the lot of points a user held before lots existed (adopted once)
EXPIRY_SHARDS = 16
# A DynamoDB transaction holds at most 100 items; a debit also writes the rate counter, the balance,
# its ledger entry and the task: it may touch at most this many lots.
MAX_LOTS_PER_DEBIT = 90
FIRST_READ = 1  # lots read first (in spending order): most debits are covered by the first lot; then x4
PLAN_ATTEMPTS = 6  # a lot changed between the read and the write: read again (after a jittered pause), this often
EXPIRY_BATCH = 500  # lots one scheduled run expires at most; the next run takes the rest


def pause(attempt: int) -> None:
    """Between two tries of a transaction whose lots moved: a short jittered wait, longer each time, so
    requests of one user that met on the same lot do not meet again."""
    time.sleep(random.uniform(0, 0.01 * 2 ** attempt))


def ledger_key(ref: str, kind: str) -> str:
    return f"TXN#{ref}#{kind}"


def lot_entry(lot_id: str) -> str:
    return f"{LOT_PREFIX}{lot_id}"


def ledger_entry(user_id: str, ref: str, kind: str, amount: int, reason: Message | str | None, actor: str | None, *,
                 lots: dict[str, int] | None = None) -> PointsItem:
    """An append-only ledger entry; its key (ref, kind) makes the change it records happen once. A reason we
    write is a Message (shown in the reader's language); an admin's own words are a plain string."""
    return PointsItem(
        user_id,
        ledger_key(ref, kind),
        ledger_time=f"{iso_ms(utcnow())}#{ref}#{kind}",
        kind=kind,
        amount=amount,
        ref=ref,
        reason=str(reason)[:200] if isinstance(reason, Message) else reason,
        reason_text=i18n.stored(reason),
        actor=actor,
        lots=plain(lots) or None,
    )


def plain(mapping) -> dict[str, int]:
    """{spend key: points} from a dict or a stored map attribute."""
    raw = mapping.as_dict() if hasattr(mapping, "as_dict") else dict(mapping or {})
    return {str(key): int(value) for key, value in raw.items()}


# --- spend keys -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendKey:
    category: str
    expire_time: str | None
    lot_id: str

    @property
    def text(self) -> str:
        rank = "0" if self.category == LotCategory.PROMOTIONAL else "1"
        return f"{rank}#{self.expire_time or NEVER}#{self.lot_id}"

    @classmethod
    def parse(cls, text: str) -> SpendKey:
        rank, expiry, lot_id = text.split("#", 2)
        return cls(LotCategory.PROMOTIONAL if rank == "0" else LotCategory.PAID,
                   None if expiry == NEVER else expiry, lot_id)

    def expired(self, now: str) -> bool:
        """`now`: iso_ms form. A lot expires at its expire_time: from then on nothing is spent from or returned to it."""
        return self.expire_time is not None and self.expire_time <= now


def key_of(lot: LotItem) -> SpendKey:
    return SpendKey(lot.category, lot.expire_time, lot.lot_id)


def expiry_after(now: datetime, valid_days: int | None) -> str | None:
    return iso_ms(now + timedelta(days=valid_days)) if valid_days else None


def _shard(user_id: str, lot_id: str) -> str:
    digest = hashlib.sha256(f"{user_id}\x00{lot_id}".encode()).digest()
    return f"{int.from_bytes(digest[:4], 'big') % EXPIRY_SHARDS:02d}"


def new_lot(user_id: str, lot_id: str, *, category: str, source: str, ref: str, points: int,
            expire_time: str | None, now: datetime) -> LotItem:
    return LotItem(
        user_id, lot_entry(lot_id), lot_id=lot_id, category=category, source=source, ref=ref, granted=points,
        remaining=points, created_at=iso_ms(now), expire_time=expire_time,
        expiry_shard=_shard(user_id, lot_id) if expire_time else None,
    )


# --- what every lot-creating transaction adds ---------------------------------------------------------------


def lotted_condition():
    """On the BALANCE update of a transaction that adds a lot: the user's points are all in lots already (or
    there are none). A user with points from before lots fails it once; `adopt_opening` then puts those
    points in the OPENING lot and the caller tries again."""
    return PointsItem.lotted.exists() | PointsItem.balance.does_not_exist() | (PointsItem.balance == 0)


def add_lots(tx: TransactWrite, lots: list[LotItem]) -> list:
    """Put the new lots (each once: a repeat fails the transaction) and return the BALANCE actions that
    go with them."""
    for lot in lots:
        tx.save(lot, condition=LotItem.entry.does_not_exist())
    return [PointsItem.active_lots.add({key_of(lot).text for lot in lots}), PointsItem.lotted.set(True)]


def is_legacy(item: PointsItem | None) -> bool:
    return item is not None and not item.lotted and int(item.balance or 0) > 0


def adopt_opening(user_id: str) -> None:
    """Points a user held before lots existed become one paid lot that never expires (OPENING). Once per
    user; the ledger already has their grants, so no entry is written."""
    item = get_or_none(PointsItem, user_id, BALANCE)
    if not is_legacy(item):
        return
    held = int(item.balance)
    lot = new_lot(user_id, OPENING, category=LotCategory.PAID, source="opening", ref=OPENING, points=held,
                  expire_time=None, now=utcnow())

    def write(tx: TransactWrite) -> None:
        tx.save(lot, condition=LotItem.entry.does_not_exist())
        tx.update(PointsItem(user_id, BALANCE),
                  actions=[PointsItem.lotted.set(True), PointsItem.active_lots.add({key_of(lot).text})],
                  condition=(PointsItem.balance == held) & PointsItem.lotted.does_not_exist())

    try:
        transact(write)
        logger.info("points from before lots adopted into the OPENING lot", extra={"user_id": user_id,
                                                                                   "points": held})
    except ConditionFailed:
        pass  # adopted by a concurrent request, or the balance moved: the caller reads again


# --- reading lots in spending order --------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    key: SpendKey
    remaining: int


def read_balance(user_id: str) -> PointsItem | None:
    item = get_or_none(PointsItem, user_id, BALANCE)
    if is_legacy(item):
        adopt_opening(user_id)
        item = get_or_none(PointsItem, user_id, BALANCE)
    return item


def live_keys(item: PointsItem | None, now: str) -> list[SpendKey]:
    """The spend keys of the lots that may be spent now, in spending order."""
    keys = sorted(item.active_lots or ()) if item is not None else []
    return [key for key in map(SpendKey.parse, keys) if not key.expired(now)]


def _read(user_id: str, keys: list[SpendKey]) -> list[Held]:
    found = {lot.lot_id: lot for lot in LotItem.batch_get([(user_id, lot_entry(k.lot_id)) for k in keys],
                                                          consistent_read=True)}
    return [Held(k, int(found[k.lot_id].remaining or 0)) for k in keys if k.lot_id in found]


@dataclass(frozen=True)
class Statement:
    balance: int
    lots: list[LotItem]  # the lots that hold points, in spending order

    @property
    def expire_time(self) -> str | None:
        """The earliest expiry among the lots that hold points."""
        return min((lot.expire_time for lot in self.lots if lot.expire_time), default=None)


def statement(user_id: str, *, now: str | None = None) -> Statement:
    """The balance and the lots that hold it. Lots past their expiry that the schedule has not reached yet
    are expired first (the same keyed EXPIRE entry the schedule would write), so what is shown adds up."""
    now = now or iso_ms(utcnow())
    item = read_balance(user_id)
    if expire_user_due(user_id, item, now=now):
        item = get_or_none(PointsItem, user_id, BALANCE)
    return statement_of(user_id, item)


def statement_of(user_id: str, item: PointsItem | None) -> Statement:
    """The statement of a BALANCE item as it is (read only: the lots it names, none expired here). The
    push renders a balance change with it, from the stream's image (aigc.flows.push)."""
    keys = sorted(map(SpendKey.parse, (item.active_lots or ()) if item else ()), key=lambda key: key.text)
    found = {lot.lot_id: lot for lot in LotItem.batch_get([(user_id, lot_entry(k.lot_id)) for k in keys],
                                                          consistent_read=True)} if keys else {}
    held = [found[k.lot_id] for k in keys if k.lot_id in found and int(found[k.lot_id].remaining or 0) > 0]
    return Statement(int(item.balance or 0) if item else 0, held)


@dataclass(frozen=True)
class Take:
    key: SpendKey
    points: int
    remaining: int  # as read

    @property
    def empties(self) -> bool:
        return self.points == self.remaining


def plan_debit(user_id: str, cost: int, now: str) -> list[Take]:
    """Which lots pay `cost`, in spending order, reading them a few at a time. InsufficientPoints names the
    points that can be spent now (lots past their expiry are not counted)."""
    keys = live_keys(read_balance(user_id), now)
    takes: list[Take] = []
    need, spendable, start, chunk = cost, 0, 0, FIRST_READ
    while start < len(keys) and need > 0:
        for held in _read(user_id, keys[start:start + chunk]):
            spendable += max(0, held.remaining)
            if held.remaining > 0 and need > 0:
                take = min(held.remaining, need)
                takes.append(Take(held.key, take, held.remaining))
                need -= take
        start, chunk = start + chunk, chunk * 4
    if need > 0:
        raise InsufficientPoints(cost=cost, balance=spendable)
    if len(takes) > MAX_LOTS_PER_DEBIT:
        raise Conflict(_("this task would be paid from {count} lots; one debit may use at most {limit} (contact "
                         "support to merge your lots)", count=len(takes), limit=MAX_LOTS_PER_DEBIT))
    return takes


def take_actions(tx: TransactWrite, user_id: str, takes: list[Take]) -> None:
    """The lot updates of a debit: each lot loses its points only if it still holds exactly what was read (the
    take empties it, and its spend key leaves the BALANCE item in the same transaction) or more than the take
    (it does not empty: a lot reaching 0 always leaves the spending order), and only if the expiry has not
    handled it."""
    for take in takes:
        enough = (LotItem.remaining == take.remaining) if take.empties else (LotItem.remaining > take.points)
        tx.update(LotItem(user_id, lot_entry(take.key.lot_id)), actions=[LotItem.remaining.add(-take.points)],
                  condition=enough & LotItem.expired_at.does_not_exist())


def emptied(takes: list[Take]) -> list:
    """The BALANCE action that drops the lots a debit empties from the spending order."""
    gone = {take.key.text for take in takes if take.empties}
    return [PointsItem.active_lots.delete(gone)] if gone else []


def allocation(takes: list[Take]) -> dict[str, int]:
    return {take.key.text: take.points for take in takes}


def give_back_actions(tx: TransactWrite, user_id: str, returned: dict[str, int]) -> None:
    """A refund's lot updates: the points go back to the lots they came from, unless the expiry handled one
    meanwhile or its order was refunded in full (the condition fails and the caller counts that part as
    expired)."""
    for text, points in returned.items():
        key = SpendKey.parse(text)
        if key.lot_id == OPENING:  # a debit from before lots: the OPENING lot takes it back
            tx.update(LotItem(user_id, lot_entry(OPENING)), actions=[
                LotItem.remaining.add(points), LotItem.granted.add(points),
                LotItem.lot_id.set(OPENING), LotItem.category.set(LotCategory.PAID),
                LotItem.source.set("opening"), LotItem.ref.set(OPENING)])
            continue
        tx.update(LotItem(user_id, lot_entry(key.lot_id)), actions=[LotItem.remaining.add(points)],
                  condition=LotItem.entry.exists() & LotItem.expired_at.does_not_exist()
                  & LotItem.closed_at.does_not_exist())


def opening_key() -> str:
    return SpendKey(LotCategory.PAID, None, OPENING).text


# --- expiry ------------------------------------------------------------------------------------------------


def expire_lot(user_id: str, lot_id: str, *, now: str | None = None) -> int:
    """Handle one lot whose expiry has come: what is left moves to an EXPIRE entry (keyed by the lot, so twice
    is once) and the lot leaves the expiry index. Returns the points expired (0: nothing was left, or not due)."""
    now = now or iso_ms(utcnow())
    for _attempt in range(PLAN_ATTEMPTS):
        lot = get_or_none(LotItem, user_id, lot_entry(lot_id))
        if lot is None or lot.expiry_shard is None or lot.expire_time is None or lot.expire_time > now:
            return 0
        left = int(lot.remaining or 0)
        key = key_of(lot).text

        def write(tx: TransactWrite, lot=lot, left=left, key=key) -> None:
            tx.update(lot, actions=[LotItem.remaining.set(0), LotItem.expiry_shard.remove(),
                                    LotItem.expired_at.set(now)],
                      condition=(LotItem.remaining == left) & LotItem.expiry_shard.exists())
            if left:
                tx.save(ledger_entry(user_id, lot_id, LedgerKind.EXPIRE, -left, _("the lot expired"), "system",
                                     lots={key: left}), condition=PointsItem.entry.does_not_exist())
                tx.update(PointsItem(user_id, BALANCE), actions=[
                    PointsItem.balance.add(-left), PointsItem.ledger_count.add(1),
                    PointsItem.active_lots.delete({key})])

        try:
            transact(write)
        except ConditionFailed:
            continue  # spent, refilled or handled meanwhile: read it again
        if left:
            count("PointsExpired", left)
            logger.info("lot expired", extra={"user_id": user_id, "lot_id": lot_id, "points": left})
        return left
    raise ServiceUnavailable(_("the lot kept changing while it expired; the next run takes it"), retry_after=1)


def expire_due(*, now: str | None = None, limit: int = EXPIRY_BATCH) -> dict:
    """The scheduled expiry: every shard of LotsByExpiry, lots due by `now`; work in proportion to them."""
    now = now or iso_ms(utcnow())
    outcome = {"lots": 0, "points": 0}
    for shard in range(EXPIRY_SHARDS):
        for due in LotItem.lots_by_expiry.query(f"{shard:02d}", LotItem.expire_time <= now, limit=limit):
            if outcome["lots"] >= limit:
                return outcome
            outcome["points"] += expire_lot(due.user_id, due.entry.removeprefix(LOT_PREFIX), now=now)
            outcome["lots"] += 1
    return outcome


def expire_user_due(user_id: str, item: PointsItem | None, *, now: str) -> bool:
    """A user's lots past their expiry that the schedule has not reached yet (the balance shows them expired).
    True when any was handled."""
    due = [key for key in map(SpendKey.parse, (item.active_lots or ()) if item else ()) if key.expired(now)]
    for key in due:
        expire_lot(user_id, key.lot_id, now=now)
    return bool(due)
