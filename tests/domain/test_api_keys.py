"""API keys (aigc.domain.api_keys, aigc.domain.auth): the key's form, what is stored, who may revoke, what a
key may spend. The daily limit is part of the debit's transaction: 20 submits at once never take a key past
it by a single point (moto's DynamoDB made atomic, as the local stack does: tests/domain/test_concurrency.py)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from aigc.core.errors import AppError, BadRequest, Conflict, Forbidden, InsufficientPoints, LimitReached, NotFound
from aigc.core.timeutil import utcnow
from aigc.domain import api_keys, auth, points
from aigc.domain.api_keys import KeyLimits
from aigc.flows import submission
from aigc.store.db import ApiKeyItem, PointsItem, TaskItem
from local import moto_dynamodb
from tests.domain.support import dynamodb, grant, new_task, snapshot

COST = 10  # image-out-painting with no parameters


@pytest.fixture
def key_clock(monkeypatch):
    """Moves aigc.domain.api_keys' clock (expiry, lastUsedTime, the spend's UTC day)."""
    state = {"offset": timedelta(0)}
    monkeypatch.setattr(api_keys, "utcnow", lambda: utcnow() + state["offset"])
    return state


def charge(user: str, limits: KeyLimits | None, model: str = "image-out-painting"):
    task = new_task(user, model)
    assert int(task.points_cost) == COST or model != "image-out-painting"
    return submission.charge_and_start(task, rate_limit_per_minute=0, api_key=limits)


# --- the key's form ---------------------------------------------------------------------------------


def test_a_key_is_prefixed_long_and_checksummed():
    secret = api_keys.new_secret()
    assert secret.startswith("aigc_") and len(secret) == api_keys.KEY_CHARS == 54
    assert api_keys.well_formed(secret) and api_keys.is_key(secret)
    assert len({api_keys.new_secret() for _ in range(200)}) == 200
    # any one character changed breaks the checksum: a typo is refused without a lookup
    for index in range(5, len(secret)):
        changed = secret[:index] + ("A" if secret[index] != "A" else "B") + secret[index + 1:]
        assert not api_keys.well_formed(changed), index
    for bad in ("", "aigc_", secret[:-1], secret + "x", secret.replace("aigc_", "aigx_"), secret[:20] + "-" + secret[21:]):
        assert not api_keys.well_formed(bad)


def test_only_the_hash_is_stored_and_the_key_is_shown_once():
    created = api_keys.create_key("alice", name="shop", groups={"members"})
    secret, item = created.secret, created.item
    raw = dynamodb().scan(TableName=ApiKeyItem.Meta.table_name)["Items"]
    assert len(raw) == 1 and secret not in str(raw)
    assert raw[0]["key_hash"]["S"] == api_keys.key_hash(secret) and len(raw[0]["key_hash"]["S"]) == 64
    assert item.prefix == secret[:12] and item.key_id.startswith("key_")
    assert item.scopes == list(api_keys.SCOPES) and item.models is None and item.daily_points_limit is None
    assert item.groups == ["members"] and item.expire_at is None and item.expires_at is None
    listed = api_keys.list_keys("alice")
    assert [k.key_id for k in listed] == [item.key_id] and api_keys.list_keys("bob") == []


def test_create_checks_models_and_keeps_scopes_in_order():
    with pytest.raises(BadRequest) as refused:
        api_keys.create_key("alice", name="x", models=["wanx-v1", "no-such-model"])
    assert str(refused.value).startswith("models[1]: unknown model 'no-such-model'")
    item = api_keys.create_key("alice", name="x", scopes=["points:read", "tasks:read"],
                               models=["wanx-v1", "wanx-v1"], expires_in_days=30, daily_points_limit=50).item
    assert item.scopes == ["tasks:read", "points:read"] and item.models == ["wanx-v1"]
    assert item.daily_points_limit == 50 and item.expire_at > utcnow() + timedelta(days=29)
    assert item.expires_at == int((item.expire_at + api_keys.KEPT_AFTER_EXPIRY).timestamp())


def test_at_most_twenty_live_keys_per_user():
    for number in range(api_keys.MAX_KEYS_PER_USER):
        api_keys.create_key("alice", name=f"k{number}")
    with pytest.raises(Conflict):
        api_keys.create_key("alice", name="one too many")
    api_keys.create_key("bob", name="others are not counted")
    api_keys.revoke_key("alice", api_keys.list_keys("alice")[0].key_id)
    api_keys.create_key("alice", name="room again")


def test_only_the_owner_revokes_and_a_revoked_key_is_refused_at_once():
    created = api_keys.create_key("alice", name="ci")
    assert auth.authenticate(created.secret).user_id == "alice"
    with pytest.raises(NotFound):
        api_keys.revoke_key("bob", created.item.key_id)
    assert auth.authenticate(f"Bearer {created.secret}").key_id == created.item.key_id
    assert api_keys.revoke_key("alice", created.item.key_id).key_id == created.item.key_id
    with pytest.raises(auth.Unauthenticated):
        auth.authenticate(created.secret)
    with pytest.raises(NotFound):
        api_keys.revoke_key("alice", created.item.key_id)
    assert api_keys.list_keys("alice") == []


def test_malformed_unknown_and_expired_keys_get_the_same_refusal(key_clock):
    expiring = api_keys.create_key("alice", name="short", expires_in_days=1).secret
    unknown = api_keys.new_secret()
    typo = expiring[:-1] + ("a" if expiring[-1] != "a" else "b")
    principal = auth.authenticate(expiring)
    assert principal.auth == "apikey" and principal.scopes == auth.ALL_SCOPES
    key_clock["offset"] = timedelta(days=1, seconds=1)
    for token in (expiring, unknown, typo, "aigc_short", ""):
        with pytest.raises(auth.Unauthenticated) as refused:
            auth.authenticate(token)
        assert "alice" not in str(refused.value)
    listed = api_keys.list_keys("alice")
    assert listed[0].expire_at <= api_keys.utcnow()  # still listed (as expired) until its TTL


def test_last_used_is_written_at_most_once_a_minute(key_clock):
    secret = api_keys.create_key("alice", name="busy").secret
    item = api_keys.find_active(secret)
    assert item.last_used_at is None
    auth.authenticate(secret)
    first = api_keys.find_active(secret).last_used_at
    assert first is not None
    for _ in range(3):
        auth.authenticate(secret)
    assert api_keys.find_active(secret).last_used_at == first
    stale = api_keys.find_active(secret)
    key_clock["offset"] = timedelta(seconds=61)
    assert api_keys.note_use(stale) is True
    assert api_keys.note_use(stale) is False  # another request with the same stale read: the condition refuses
    assert api_keys.find_active(secret).last_used_at > first


def test_a_revoked_key_is_never_brought_back_by_its_last_use():
    created = api_keys.create_key("alice", name="gone")
    item = api_keys.find_active(created.secret)
    api_keys.revoke_key("alice", created.item.key_id)
    assert api_keys.note_use(item) is False
    assert dynamodb().scan(TableName=ApiKeyItem.Meta.table_name)["Items"] == []


def test_the_authorizer_context_round_trips():
    limits = KeyLimits("key_abc", 300, ("wanx-v1",))
    principal = auth.Principal("alice", frozenset({"members"}), frozenset({"tasks:read"}), limits)
    assert auth.from_context(principal.context()) == principal
    jwt_user = auth.Principal("bob", frozenset({"admins"}))
    assert auth.from_context(jwt_user.context()) == jwt_user and jwt_user.auth == "jwt"
    with pytest.raises(auth.Unauthenticated):
        auth.from_context({"authError": "unauthenticated"})
    with pytest.raises(auth.AuthUnavailable):
        auth.from_context({"authError": "unavailable"})


# --- what a key may spend ------------------------------------------------------------------------------


def test_a_key_outside_its_models_changes_nothing():
    grant("alice", 100)
    before = snapshot()
    with pytest.raises(Forbidden) as refused:
        charge("alice", KeyLimits("key_m", None, ("wanx-v1",)))
    assert refused.value.error_code == "ApiKey.Models" and "wanx-v1" in str(refused.value)
    assert snapshot() == before


def test_the_daily_limit_is_checked_before_the_debit_and_counted_with_it(key_clock):
    grant("alice", 1000)
    limits = KeyLimits("key_d", 25)
    charge("alice", limits)
    charge("alice", limits)
    before = snapshot()
    with pytest.raises(LimitReached) as refused:
        charge("alice", limits)
    assert refused.value.status == 402 and refused.value.error_code == "ApiKey.DailyLimit"
    assert "daily points limit (25)" in str(refused.value) and "20 spent today" in str(refused.value)
    assert snapshot() == before
    assert api_keys.spent_today("alice", "key_d") == 20 and points.get_balance("alice") == 980
    with pytest.raises(LimitReached):
        charge("alice", KeyLimits("key_small", 5))  # dearer than the whole limit: refused without a write
    charge("alice", None)  # the owner's own token is not held to the key's limit
    charge("alice", KeyLimits("key_other", 25))  # nor is another key
    key_clock["offset"] = timedelta(days=1)
    charge("alice", limits)  # a new UTC day
    tasks_by_key = [t.api_key_id for t in TaskItem.scan()]
    assert sorted(filter(None, tasks_by_key)) == ["key_d", "key_d", "key_d", "key_other"]


def test_insufficient_points_with_a_key_is_still_insufficient_points():
    grant("alice", 5)
    with pytest.raises(InsufficientPoints):
        charge("alice", KeyLimits("key_p", 100))
    assert api_keys.spent_today("alice", "key_p") == 0


def test_uploads_are_refused_to_keys_with_limits():
    api_keys.check_upload(KeyLimits("key_free"))
    for limits in (KeyLimits("key_a", 10), KeyLimits("key_b", None, ("image-out-painting",))):
        with pytest.raises(Forbidden) as refused:
            api_keys.check_upload(limits)
        assert refused.value.error_code == "ApiKey.Uploads"


@pytest.fixture
def atomic_dynamodb():
    undo = moto_dynamodb.install()
    yield
    undo()


def test_twenty_concurrent_submits_never_pass_the_daily_limit_by_one_point(atomic_dynamodb):
    grant("alice", 1000)
    limit = 45  # room for 4 tasks of 10, never a 5th
    limits = KeyLimits("key_race", limit)
    barrier = threading.Barrier(20)

    def submit(_):
        barrier.wait()
        while True:  # as a client does: a 503 (the account changed meanwhile) is retried
            try:
                return submission.charge_and_start(new_task("alice"), rate_limit_per_minute=0, api_key=limits)
            except AppError as error:
                if error.status != 503:
                    return error

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(submit, range(20)))
    accepted = [r for r in results if not isinstance(r, AppError)]
    refused = [r for r in results if isinstance(r, AppError)]
    assert len(accepted) == 4, [str(r) for r in refused]
    assert len(refused) == 16 and all(isinstance(r, LimitReached) for r in refused)
    assert api_keys.spent_today("alice", "key_race") == 40 <= limit
    assert points.get_balance("alice") == 1000 - 40
    spend = PointsItem.get("alice", f"KEYSPEND#key_race#{utcnow().strftime('%Y%m%d')}")
    assert spend.expires_at is not None


def test_an_unreachable_jwks_is_503_not_the_tokens_fault():
    from local import auth as local_auth

    token = local_auth.mint("alice")
    down = auth.JwtVerifier(local_auth.ISSUER, local_auth.AUDIENCE, "http://127.0.0.1:9/.well-known/jwks.json")
    with pytest.raises(auth.AuthUnavailable):
        auth.authenticate(token, verifier=down)
    key = local_auth.load_or_create_key()
    up = auth.JwtVerifier(local_auth.ISSUER, [local_auth.AUDIENCE], key_for=lambda _token: key.public_key())
    assert auth.authenticate(f"Bearer {token}", verifier=up) == auth.Principal("alice")
    response = auth.authorizer_response({"headers": {"Authorization": f"Bearer {token}"}}, down)
    assert response == {"isAuthorized": True, "context": {"authError": "unavailable"}}
