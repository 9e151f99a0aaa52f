"""Push rules on moto's DynamoDB (the connections table from template.yaml): who is connected, which
change is which event, who receives it, and what a connect or a gone connection does to the table.
The Management API is faked at aigc.store.sockets.post; tokens are the local stack's JWTs."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from aigc.core.vocab import PushEvent
from aigc.domain import api_keys, push
from aigc.domain import auth as auth_module
from aigc.domain.push import POINTS_READ, TASKS_READ, SocketIdentity
from aigc.flows import push as push_flow
from aigc.store import jwks, sockets
from aigc.store.db import ConnectionItem, PointsItem, TaskItem
from local import auth

ISSUER, AUDIENCE = "http://127.0.0.1/local-issuer", "aigc-local"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _task(task_no: str, user: str, status: str, **extra) -> TaskItem:
    return TaskItem(task_no, user_id=user, created_at="2026-01-02T03:04:05.000Z", model_name="wanx-v1",
                    task_type="text_to_image", provider="dashscope", provider_model="wanx-v1", status=status,
                    points_cost=20, expected_seconds=10, deadline_at=NOW + timedelta(minutes=10), **extra)


def _balance(user: str, balance: int | None, **extra) -> PointsItem:
    return PointsItem(user, "BALANCE", balance=balance, **extra)


def _record(old, new, sequence: int = 1) -> dict:
    """A stream record (NEW_AND_OLD_IMAGES) of a change from `old` to `new` (either may be None)."""
    item = new or old
    keys = {name: value for name, value in item.serialize().items()
            if name in ("task_no", "user_id", "entry") and (name != "user_id" or isinstance(item, PointsItem))}
    images = {"Keys": keys, "SequenceNumber": str(sequence)}
    if new is not None:
        images["NewImage"] = new.serialize()
    if old is not None:
        images["OldImage"] = old.serialize()
    return {"eventID": f"e{sequence}", "eventName": "MODIFY" if old and new else ("INSERT" if new else "REMOVE"),
            "eventSource": "aws:dynamodb", "dynamodb": images}


@pytest.fixture
def sent(monkeypatch):
    """What the Management API was asked to post, per connection; connections in `gone` answer 410."""
    posts: dict[str, list[dict]] = {}
    gone: set[str] = set()

    def post(endpoint, connection_id, data):
        if connection_id in gone:
            return False
        posts.setdefault(connection_id, []).append(json.loads(data))
        return True

    monkeypatch.setattr(sockets, "post", post)
    monkeypatch.setattr(sockets, "close", lambda endpoint, connection_id: gone.add(connection_id))
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", "https://api.example/live")
    return posts, gone


def _connect(connection_id: str, user: str, scopes=push.READ_SCOPES) -> None:
    push.open_connection(connection_id, SocketIdentity(user, frozenset(scopes)))


# --- which change is which event --------------------------------------------------------------------------

def test_a_task_event_is_a_new_task_a_status_change_or_a_refund() -> None:
    queued = _task("T1", "alice", "queued")
    assert push.task_updated(None, queued)
    assert push.task_updated(queued, _task("T1", "alice", "processing"))
    assert not push.task_updated(queued, _task("T1", "alice", "queued", provider_status="PENDING"))
    failed = _task("T1", "alice", "failed")
    assert push.task_updated(failed, _task("T1", "alice", "failed", refunded=True))  # a held task's refund
    assert not push.task_updated(failed, None)  # removed


def test_a_points_event_is_a_balance_change_only() -> None:
    assert push.points_changed(None, _balance("alice", 100))
    assert push.points_changed(_balance("alice", 100), _balance("alice", 80))
    assert not push.points_changed(_balance("alice", 80), _balance("alice", 80, task_count=3))  # counters only
    assert not push.points_changed(None, _balance("alice", None, task_count=1))  # a rejected upload's counts
    assert not push.points_changed(None, PointsItem("alice", "TXN#T1#DEBIT", amount=-20))  # the ledger entry
    assert not push.points_changed(None, PointsItem("alice", "RATE#202601020304", submits=1))


def test_messages_are_type_and_data() -> None:
    assert json.loads(push.message(PushEvent.POINTS_CHANGED, {"balance": 1})) == {
        "type": "points.changed", "data": {"balance": 1}}
    assert json.loads(push.reply('{"action": "ping"}')) == {"type": "pong"}
    assert json.loads(push.reply("not json"))["type"] == "error"


# --- who receives it -----------------------------------------------------------------------------------

def test_each_user_receives_only_their_own_events(sent) -> None:
    posts, _ = sent
    _connect("a1", "alice")
    _connect("a2", "alice")
    _connect("b1", "bob")
    records = [_record(None, _task("TA", "alice", "queued"), 1),
               _record(_balance("bob", 100), _balance("bob", 80), 2),
               _record(_task("TB", "bob", "queued"), _task("TB", "bob", "processing"), 3)]
    assert push_flow.handle_stream({"Records": records}) == {"batchItemFailures": []}
    for connection in ("a1", "a2"):
        assert [(m["type"], m["data"].get("taskNo")) for m in posts[connection]] == [("task.updated", "TA")]
    assert [(m["type"], m["data"].get("taskNo") or m["data"]["userId"]) for m in posts["b1"]] == [
        ("points.changed", "bob"), ("task.updated", "TB")]  # in stream order
    assert {k: posts["b1"][0]["data"][k] for k in ("userId", "balance")} == {"userId": "bob", "balance": 80}
    assert posts["a1"][0]["data"]["status"] == "queued" and posts["a1"][0]["data"]["pointsCost"] == 20


def test_a_connection_receives_only_what_its_token_may_read(sent) -> None:
    posts, _ = sent
    _connect("tasks-only", "alice", {TASKS_READ})
    _connect("points-only", "alice", {POINTS_READ})
    _connect("nothing", "alice", set())
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"), 1),
                                         _record(None, _balance("alice", 5), 2)]})
    assert [m["type"] for m in posts["tasks-only"]] == ["task.updated"]
    assert [m["type"] for m in posts["points-only"]] == ["points.changed"]
    assert "nothing" not in posts


def test_a_gone_connection_is_forgotten_and_the_others_still_served(sent) -> None:
    posts, gone = sent
    _connect("old", "alice")
    _connect("new", "alice")
    gone.add("old")
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"))]})
    assert [c.connection_id for c in push.connections_of("alice")] == ["new"]
    assert len(posts["new"]) == 1


def test_expired_connections_receive_nothing(sent) -> None:
    posts, _ = sent
    push.open_connection("stale", SocketIdentity("alice"), now=datetime.now(timezone.utc) - timedelta(hours=3))
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"))]})
    assert posts == {}


def test_a_record_that_cannot_be_handled_is_reported_with_the_rest_and_earlier_ones_sent(sent, monkeypatch) -> None:
    posts, _ = sent
    _connect("a1", "alice")
    real = push.connections_of

    def flaky(user_id, now=None):
        if user_id == "bob":
            raise RuntimeError("DynamoDB unavailable")
        return real(user_id, now)

    monkeypatch.setattr(push, "connections_of", flaky)
    records = [_record(None, _task("TA", "alice", "queued"), 1), _record(None, _balance("bob", 1), 2),
               _record(None, _task("TA2", "alice", "queued"), 3)]
    assert push_flow.handle_stream({"Records": records}) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert [m["data"]["taskNo"] for m in posts["a1"]] == ["TA"]  # the third comes again with the retry


def test_a_failing_send_does_not_stop_the_others(sent, monkeypatch) -> None:
    posts, _ = sent
    _connect("a1", "alice")
    _connect("b1", "bob")
    real = sockets.post

    def throttled(endpoint, connection_id, data):
        if connection_id == "a1":
            raise sockets.SendFailed("LimitExceededException")
        return real(endpoint, connection_id, data)

    monkeypatch.setattr(sockets, "post", throttled)
    result = push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"), 1),
                                                  _record(None, _task("TB", "bob", "queued"), 2)]})
    assert result == {"batchItemFailures": []}  # a push is not retried: the browser re-reads on reconnect
    assert [m["data"]["taskNo"] for m in posts["b1"]] == ["TB"]
    assert {c.connection_id for c in push.connections_of("alice")} == {"a1"}  # not gone: kept


def test_the_fan_out_reads_the_users_partition_only(sent, monkeypatch) -> None:
    """One query per user in a batch, on the UserConnections index (never a scan)."""
    for n in range(5):
        _connect(f"c{n}", f"user{n}")
    queries = []
    real = ConnectionItem.by_user.query
    monkeypatch.setattr(ConnectionItem.by_user, "query", lambda user, *a, **k: queries.append(user) or real(user))
    monkeypatch.setattr(ConnectionItem, "scan", lambda *a, **k: pytest.fail("the push must not scan"))
    push_flow.handle_stream({"Records": [_record(None, _task(f"T{n}", "user1", "queued"), n) for n in range(3)]})
    assert queries == ["user1"]


# --- the socket's routes ---------------------------------------------------------------------------------

@pytest.fixture
def issuer(monkeypatch):
    key = auth.load_or_create_key()
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    from aigc.core.config import get_settings

    get_settings.cache_clear()
    auth_module.default_verifier.cache_clear()
    monkeypatch.setattr(jwks, "signing_key", lambda url, token: key.public_key())
    yield key
    get_settings.cache_clear()
    auth_module.default_verifier.cache_clear()


def _event(route: str, connection_id: str = "c1", token: str | None = None, body: str | None = None) -> dict:
    event = {"requestContext": {"routeKey": route, "connectionId": connection_id,
                                "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")}}
    if token is not None:
        event["queryStringParameters"] = {"token": token}
    if body is not None:
        event["body"] = body
    return event


def test_connect_records_the_tokens_user_and_disconnect_forgets_it(issuer) -> None:
    token = auth.mint("alice", key=issuer)
    assert push_flow.handle_socket(_event("$connect", token=token)) == {"statusCode": 200}
    (item,) = push.connections_of("alice")
    assert item.connection_id == "c1" and set(item.scopes) == {TASKS_READ, POINTS_READ} and item.auth == "jwt"
    assert item.expires_at > time.time() + 7000  # TTL past API Gateway's 2-hour limit
    assert push_flow.handle_socket(_event("$default", body='{"action":"ping"}'))["body"] == '{"type": "pong"}'
    assert push_flow.handle_socket(_event("$disconnect")) == {"statusCode": 200}
    assert push.connections_of("alice") == []
    assert push_flow.handle_socket(_event("$disconnect")) == {"statusCode": 200}  # twice: a no-op


@pytest.mark.parametrize("token", [
    None, "", "garbage", "aigc_notakey",
    "expired", "wrong-audience", "wrong-issuer", "bad-sub", "hs256", "string-exp",
])
def test_connect_without_a_valid_token_is_refused_and_records_nothing(issuer, token) -> None:
    import jwt as pyjwt

    made = {
        "expired": lambda: auth.mint("alice", key=issuer, ttl=-10),
        "wrong-audience": lambda: auth.mint("alice", key=issuer, audience="someone-else"),
        "wrong-issuer": lambda: auth.mint("alice", key=issuer, issuer="https://evil.example"),
        "bad-sub": lambda: auth.mint("../bob", key=issuer),
        "hs256": lambda: pyjwt.encode({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60},
                                      "s" * 32, algorithm="HS256"),
        "string-exp": lambda: auth.mint("alice", key=issuer, extra={"exp": str(int(time.time()) + 60)}),
    }
    value = made[token]() if token in made else token
    assert push_flow.handle_socket(_event("$connect", token=value))["statusCode"] == 401
    assert list(ConnectionItem.scan()) == []


def test_a_socket_opened_with_an_api_key_receives_what_its_scopes_read(issuer, sent) -> None:
    posts, _ = sent
    key = api_keys.create_key("alice", name="dashboard", scopes=["tasks:read"])
    assert push_flow.handle_socket(_event("$connect", "k1", token=key.secret)) == {"statusCode": 200}
    (item,) = push.connections_of("alice")
    assert (item.auth, item.key_id, item.scopes) == ("apikey", key.item.key_id, [TASKS_READ])
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"), 1),
                                         _record(None, _balance("alice", 5), 2)]})
    assert [m["type"] for m in posts["k1"]] == ["task.updated"]  # no points:read, no balance


def test_a_key_that_reads_nothing_is_forbidden_and_a_revoked_one_refused(issuer) -> None:
    writer = api_keys.create_key("alice", name="ci", scopes=["tasks:write"])
    assert push_flow.handle_socket(_event("$connect", token=writer.secret))["statusCode"] == 403
    reader = api_keys.create_key("alice", name="tab", scopes=["points:read"])
    api_keys.revoke_key("alice", reader.item.key_id)
    assert push_flow.handle_socket(_event("$connect", token=reader.secret))["statusCode"] == 401
    assert list(ConnectionItem.scan()) == []


def test_the_socket_of_a_revoked_or_expired_key_is_closed_at_the_next_event(issuer, sent) -> None:
    posts, gone = sent
    kept = api_keys.create_key("alice", name="kept", scopes=["tasks:read"])
    revoked = api_keys.create_key("alice", name="revoked", scopes=["tasks:read"])
    expiring = api_keys.create_key("alice", name="expiring", scopes=["tasks:read"], expires_in_days=1)
    for connection_id, key in (("kept", kept), ("revoked", revoked), ("expiring", expiring)):
        assert push_flow.handle_socket(_event("$connect", connection_id, token=key.secret))["statusCode"] == 200
    _connect("jwt", "alice")
    api_keys.revoke_key("alice", revoked.item.key_id)
    later = datetime.now(timezone.utc) + timedelta(days=2)
    assert {c.connection_id for c in push.revoked(push.connections_of("alice"), now=later)} == {"revoked", "expiring"}
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"))]})
    assert gone == {"revoked"}  # closed through the Management API
    assert set(posts) == {"kept", "expiring", "jwt"}
    assert {c.connection_id for c in push.connections_of("alice")} == {"kept", "expiring", "jwt"}


def test_a_balance_change_carries_the_balance_view_with_its_lots(sent) -> None:
    """points.changed's data is GET /user/points/consumption/balance's view of the changed BALANCE item."""
    from aigc.api.points_views import statement_view
    from aigc.domain import lots, points

    posts, _ = sent
    _connect("a1", "alice")
    points.grant("alice", 100, "welcome", grant_id="G1", actor="admin", valid_days=30)
    balance = PointsItem.get("alice", "BALANCE", consistent_read=True)
    push_flow.handle_stream({"Records": [_record(None, balance)]})
    (message,) = posts["a1"]
    expected = statement_view("alice", lots.statement("alice")).model_dump(mode="json", by_alias=True)
    assert message == {"type": "points.changed", "data": expected}
    assert message["data"]["lots"][0]["remaining"] == 100 and message["data"]["expireTime"]


def test_nothing_is_rendered_for_a_user_without_a_socket(sent, monkeypatch) -> None:
    """Most changes have nobody listening: no task view (no presigning), no lots read."""
    posts, _ = sent
    monkeypatch.setattr(push_flow, "task_view", lambda *a, **k: pytest.fail("rendered for nobody"))
    monkeypatch.setattr(push_flow.lots, "statement_of", lambda *a, **k: pytest.fail("rendered for nobody"))
    push_flow.handle_stream({"Records": [_record(None, _task("TA", "alice", "queued"), 1),
                                         _record(None, _balance("alice", 5), 2)]})
    assert posts == {}
