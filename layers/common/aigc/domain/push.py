"""Push rules: who is connected, which change is which event, and who receives it.

A browser's WebSocket is one item of the connections table (keyed by API Gateway's connectionId,
indexed by user), written at $connect from an authenticated token and deleted at $disconnect or
when API Gateway says the connection is gone. A change of a user's task or balance goes to that
user's connections only, and only to those whose token may read it (an API key's scopes, while the
key lives). The
delivery path (streams -> render -> Management API) is aigc.flows.push; the policy is told once, in
docs/ARCHITECTURE.md, "Push".
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from aigc.core.timeutil import utcnow
from aigc.core.vocab import PushEvent
from aigc.domain import api_keys
from aigc.domain.points import BALANCE
from aigc.store.db import ConnectionItem, PointsItem, TaskItem

TASKS_READ, POINTS_READ = "tasks:read", "points:read"
READ_SCOPES = frozenset({TASKS_READ, POINTS_READ})
# What a connection must be allowed to read to receive each event.
EVENT_SCOPE = {PushEvent.TASK_UPDATED: TASKS_READ, PushEvent.POINTS_CHANGED: POINTS_READ}
# API Gateway closes a WebSocket after 2 hours; an item whose $disconnect never came expires by TTL.
CONNECTION_TTL_SECONDS = 2 * 3600 + 600
PING, PONG = "ping", "pong"


@dataclass(frozen=True)
class SocketIdentity:
    """Who opened a socket (from its token) and which events it may receive."""

    user_id: str
    scopes: frozenset[str] = field(default=READ_SCOPES)
    auth: str = "jwt"  # jwt | apikey
    key_id: str | None = None


# --- connections ---------------------------------------------------------------------------------

def open_connection(connection_id: str, identity: SocketIdentity, now: datetime | None = None) -> ConnectionItem:
    now = now or utcnow()
    item = ConnectionItem(connection_id, user_id=identity.user_id, scopes=sorted(identity.scopes & READ_SCOPES),
                          auth=identity.auth, key_id=identity.key_id, connected_at=now,
                          expires_at=int(now.timestamp()) + CONNECTION_TTL_SECONDS)
    item.save()
    return item


def close_connection(connection_id: str) -> None:
    """Forget a connection ($disconnect, or gone): deleting one already gone is a no-op."""
    ConnectionItem(connection_id).delete()


def connections_of(user_id: str, now: float | None = None) -> list[ConnectionItem]:
    """The user's open connections (one query on the user's partition of the index)."""
    now = time.time() if now is None else now
    return [c for c in ConnectionItem.by_user.query(user_id) if int(c.expires_at or 0) > now]


def revoked(connections: list[ConnectionItem], now: datetime | None = None) -> list[ConnectionItem]:
    """The connections (of one user) opened with an API key that has since been revoked or has expired:
    a revoked key is refused everywhere, an open socket included. One query of the user's keys (at most
    MAX_KEYS_PER_USER), only when one of the connections came with a key."""
    keyed = [c for c in connections if c.auth == "apikey"]
    if not keyed:
        return []
    now = now or utcnow()
    live = {k.key_id for k in api_keys.list_keys(keyed[0].user_id) if k.expire_at is None or k.expire_at > now}
    return [c for c in keyed if c.key_id not in live]


def recipients(connections: list[ConnectionItem], event: PushEvent) -> list[str]:
    """The connections (of the event's user) allowed to receive it."""
    scope = EVENT_SCOPE[event]
    return [c.connection_id for c in connections if scope in (c.scopes or ())]


# --- which change is which event -------------------------------------------------------------------

def task_updated(old: TaskItem | None, new: TaskItem | None) -> bool:
    """A task was created, changed status, or was refunded (a held task's refund keeps `failed`)."""
    if new is None:
        return False
    if old is None:
        return True
    return old.status != new.status or bool(old.refunded) != bool(new.refunded)


def points_changed(old: PointsItem | None, new: PointsItem | None) -> bool:
    """The user's balance changed (every ledger entry is written with its balance change)."""
    if new is None or new.entry != BALANCE or new.balance is None:
        return False
    return old is None or old.balance is None or int(old.balance) != int(new.balance)


def message(event: PushEvent, data: dict) -> bytes:
    """One WebSocket message: `{"type": <event>, "data": <the view>}`."""
    return json.dumps({"type": str(event), "data": data}, separators=(",", ":"), ensure_ascii=False).encode()


def reply(body: str | None) -> str:
    """The answer to a message the browser sent: `{"action": "ping"}` -> `{"type": "pong"}`."""
    try:
        action = json.loads(body or "").get("action")
    except (ValueError, AttributeError):
        action = None
    if action == PING:
        return json.dumps({"type": PONG})
    return json.dumps({"type": "error", "data": {"message": 'unknown action: send {"action": "ping"}, or nothing'}})
