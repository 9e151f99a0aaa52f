"""Push to browsers: the WebSocket API's routes (SocketFunction) and the streams' consumer (PushFunction).

- `authenticate_socket(token)`: the one place a socket's token becomes a user: a JWT or an API key,
  through the shared authenticator (aigc.domain.auth.authenticate); an API key's scopes decide what
  the socket receives.
- `handle_socket(event)`: $connect (refused with 401 without a valid `?token=`), $disconnect,
  $default (`{"action": "ping"}` answers `{"type": "pong"}` through the route response).
- `handle_stream(event, context)`: TasksTable and PointsTable stream records -> `task.updated` (the
  task view, as GET /user/ai/tasks/{taskNo}) and `points.changed` (the balance view) -> each of the
  user's connections allowed to read it, concurrently, each connection's messages in stream order.
  A connection API Gateway reports gone (410) is forgotten.

The rules (who receives what, message shapes) are aigc.domain.push; the policy is told once, in
docs/ARCHITECTURE.md, "Push".
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aigc.api.schemas import MAX_USER_ID_CHARS, SAFE_USER_ID
from aigc.api.points_views import statement_view
from aigc.api.views import pushed_language, task_view
from aigc.core.config import get_settings
from aigc.core.errors import AppError, Forbidden, ServiceUnavailable, Unauthorized
from aigc.core.i18n import _
from aigc.core.observability import count, logger
from aigc.core.vocab import PushEvent
from aigc.domain import auth, lots, push
from aigc.domain.push import SocketIdentity
from aigc.store import sockets
from aigc.store.db import PointsItem, TaskItem

SEND_WORKERS = 16  # connections served at once; one slow connection holds one worker, not the batch


# --- who opened the socket ------------------------------------------------------------------------------

def authenticate_socket(token: str | None) -> SocketIdentity:
    """The socket's user, and what it may receive, from its `?token=`: a JWT or an API key, checked by the
    shared authenticator (aigc.domain.auth, as the HTTP API's authorizer does). Unauthorized (401)
    without a valid one, Forbidden (403) for a key that may read neither tasks nor points,
    ServiceUnavailable (503) when a key could not be looked up."""
    if not (token or "").strip():
        raise Unauthorized(_("no token: open the socket with ?token=<JWT or API key>"))
    try:
        principal = auth.authenticate(token)
    except auth.Unauthenticated as error:
        raise Unauthorized(_("invalid token: {problem}", problem=type(error).__name__)) from None
    except auth.AuthUnavailable:
        raise ServiceUnavailable() from None
    user_id = principal.user_id
    if len(user_id) > MAX_USER_ID_CHARS or not re.fullmatch(SAFE_USER_ID, user_id):
        raise Unauthorized(_("the token's subject (sub) is not a valid user id"))
    identity = SocketIdentity(user_id, frozenset(principal.scopes) & push.READ_SCOPES, principal.auth,
                              principal.key_id)
    if not identity.scopes:  # a key for submitting only: the socket would never receive anything
        raise Forbidden(_("this API key lacks the scope '{scope}'", scope=push.TASKS_READ))
    return identity


# --- SocketFunction: the WebSocket API's routes ---------------------------------------------------------

def handle_socket(event: dict) -> dict:
    context = event.get("requestContext") or {}
    route, connection_id = context.get("routeKey"), context.get("connectionId")
    if route == "$connect":
        try:
            identity = authenticate_socket((event.get("queryStringParameters") or {}).get("token"))
        except AppError as refused:  # the handshake is answered with the status alone
            count("PushConnectsRefused")
            logger.info("socket refused", extra={"status": refused.status, "reason": str(refused)[:200]})
            return {"statusCode": refused.status, "body": type(refused).__name__}
        push.open_connection(connection_id, identity)
        logger.info("socket connected", extra={"user_id": identity.user_id, "connection_id": connection_id})
        return {"statusCode": 200}
    if route == "$disconnect":
        push.close_connection(connection_id)
        return {"statusCode": 200}
    return {"statusCode": 200, "body": push.reply(event.get("body"))}


# --- PushFunction: stream records -> messages ----------------------------------------------------------

def _images(record: dict, model):
    images = record.get("dynamodb") or {}
    old, new = images.get("OldImage"), images.get("NewImage")
    return (model.from_raw_data(old) if old else None), (model.from_raw_data(new) if new else None)


def events_of_record(record: dict) -> list[tuple[str, PushEvent, Callable[[], dict]]]:
    """(user, event, the view's renderer) for one stream record of the tasks or the points table. The view
    is rendered only for a user with a socket that may receive it (most changes have nobody listening)."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    if "task_no" in keys:
        old, new = _images(record, TaskItem)
        if push.task_updated(old, new):
            # no request here: messages in the language the task was submitted in
            return [(new.user_id, PushEvent.TASK_UPDATED, lambda: task_view(
                new, queue=False, language=pushed_language(new)).model_dump(mode="json", by_alias=True))]
    elif "entry" in keys:
        old, new = _images(record, PointsItem)
        if push.points_changed(old, new):
            # GET /user/points/consumption/balance's view, of this change's BALANCE item (its lots read as they are)
            return [(new.user_id, PushEvent.POINTS_CHANGED, lambda: statement_view(
                new.user_id, lots.statement_of(new.user_id, new)).model_dump(mode="json", by_alias=True))]
    return []


def _send_all(endpoint: str, connection_id: str, messages: list[bytes]) -> str:
    """One connection's messages, in order: "sent", "gone" (forgotten) or "failed"."""
    try:
        for data in messages:
            if not sockets.post(endpoint, connection_id, data):
                push.close_connection(connection_id)
                return "gone"
    except sockets.SendFailed as error:
        logger.warning("push failed", extra={"connection_id": connection_id, "error": str(error)})
        return "failed"
    return "sent"


def _live(connections: list) -> list:
    """The connections still allowed to receive: one whose API key was revoked (or expired) is closed."""
    revoked = push.revoked(connections)
    for connection in revoked:
        try:
            sockets.close(get_settings().websocket_management_url, connection.connection_id)
        except sockets.SendFailed as error:  # $disconnect or the TTL will forget it
            logger.warning("could not close a revoked key's socket", extra={"error": str(error)})
        push.close_connection(connection.connection_id)
        count("PushRevokedKeysClosed")
        logger.info("socket of a revoked API key closed", extra={"key_id": connection.key_id})
    gone = {c.connection_id for c in revoked}
    return [c for c in connections if c.connection_id not in gone]


def handle_stream(event: dict, context=None) -> dict:
    """A batch of stream records. Messages are gathered in stream order until a record cannot be read
    (its connections lookup failed): that record and the ones after it are reported failed, so the
    stream hands them again, and what was gathered before it is sent."""
    outbox: OrderedDict[str, list[bytes]] = OrderedDict()
    connections: dict[str, list] = {}  # user -> their connections, looked up once per batch
    failed: list[dict] = []
    for record in event.get("Records") or []:
        try:
            for user_id, kind, render in events_of_record(record):
                if user_id not in connections:
                    connections[user_id] = _live(push.connections_of(user_id))
                recipients = push.recipients(connections[user_id], kind)
                if recipients:
                    data = push.message(kind, render())
                    for connection_id in recipients:
                        outbox.setdefault(connection_id, []).append(data)
        except Exception:
            logger.exception("push: stream record not handled", extra={"event_id": record.get("eventID")})
            failed = [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
            break
    if outbox:
        endpoint = get_settings().websocket_management_url
        with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(outbox))) as pool:
            outcomes = list(pool.map(lambda item: _send_all(endpoint, *item), outbox.items()))
        for outcome in ("sent", "gone", "failed"):
            if outcomes.count(outcome):
                count({"sent": "PushDelivered", "gone": "PushConnectionsGone", "failed": "PushFailed"}[outcome],
                      outcomes.count(outcome))
    return {"batchItemFailures": failed}
