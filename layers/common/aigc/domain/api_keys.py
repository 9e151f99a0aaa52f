"""API keys: a server acts as the key's owner, within the key's scopes, models and daily points.

The key is shown once: `aigc_` + 43 base62 characters (32 random bytes) + 6 base62 characters of
their CRC32, so secret scanners can tell a real key from a random string (GitHub's token format).
Only its SHA-256 is stored (the table's key: a lookup is one GetItem); the checksum is checked
before any lookup, so a mistyped or made-up key costs no read. Policy: docs/ARCHITECTURE.md, "API keys".
"""
from __future__ import annotations

import hashlib
import secrets
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from aigc.core.catalog import load_catalog
from aigc.core.errors import BadRequest, Conflict, Forbidden, LimitReached, NotFound
from aigc.core.i18n import _
from aigc.core.observability import logger
from aigc.core.timeutil import utcnow
from aigc.store.db import ApiKeyItem, PointsItem
from aigc.store.dynamo import TransactWrite, conditional, get_or_none

PREFIX = "aigc_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)
SECRET_BYTES = 32
BODY_CHARS = 43  # 62**43 > 2**256
CHECK_CHARS = 6  # 62**6 > 2**32
KEY_CHARS = len(PREFIX) + BODY_CHARS + CHECK_CHARS
SHOWN_CHARS = 12  # the prefix lists show
SCOPES = ("tasks:write", "tasks:read", "points:read")
MAX_KEYS_PER_USER = 20
LAST_USED_EVERY_SECONDS = 60
KEPT_AFTER_EXPIRY = timedelta(days=7)  # an expired key stays listed (and refused) this long, then TTL deletes it
SPEND_KEPT_SECONDS = 2 * 86400


# --- the key's form ------------------------------------------------------------------------------


def _base62(number: int, width: int) -> str:
    digits = []
    for _position in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECK_CHARS)


def new_secret() -> str:
    body = _base62(int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big"), BODY_CHARS)
    return f"{PREFIX}{body}{_checksum(body)}"


def is_key(token: str) -> bool:
    """Whether a credential claims to be an API key (rather than a JWT)."""
    return token.startswith(PREFIX)


def well_formed(token: str) -> bool:
    """The key's length, alphabet and checksum: checked before any lookup."""
    if len(token) != KEY_CHARS or not token.startswith(PREFIX):
        return False
    body, check = token[len(PREFIX):-CHECK_CHARS], token[-CHECK_CHARS:]
    return _ALPHABET_SET.issuperset(body) and _ALPHABET_SET.issuperset(check) and _checksum(body) == check


def key_hash(token: str) -> str:
    """SHA-256 (hex) of the whole key: keys are 32 random bytes, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


# --- managing keys (a signed-in user, never a key) -----------------------------------------------


@dataclass(frozen=True)
class NewKey:
    secret: str  # shown once, never stored
    item: ApiKeyItem


def _check_models(models: list[str] | None) -> list[str] | None:
    if models is None:
        return None
    catalog = load_catalog()
    for index, name in enumerate(models):
        if name not in catalog:
            raise BadRequest(_("models[{index}]: unknown model '{name}' (GET /models lists them)", index=index,
                                   name=name))
    return list(dict.fromkeys(models))


def _is_active(item: ApiKeyItem, now: datetime) -> bool:
    return item.expire_at is None or item.expire_at > now


def create_key(user_id: str, *, name: str, scopes: list[str] | None = None, expires_in_days: int | None = None,
               daily_points_limit: int | None = None, models: list[str] | None = None,
               groups: frozenset[str] | set[str] = frozenset()) -> NewKey:
    """A new key of the user. The request's shape (name, ranges, scopes) is the API schema's; this
    checks what needs data: the models exist, and the user has fewer than MAX_KEYS_PER_USER live keys."""
    models = _check_models(models)
    scopes = [scope for scope in SCOPES if scope in set(scopes or SCOPES)]
    now = utcnow()
    if sum(_is_active(item, now) for item in list_keys(user_id)) >= MAX_KEYS_PER_USER:
        raise Conflict(_("at most {limit} API keys per user: revoke one first", limit=MAX_KEYS_PER_USER))
    secret = new_secret()
    expire_at = now + timedelta(days=expires_in_days) if expires_in_days else None
    item = ApiKeyItem(
        key_hash(secret),
        key_id=f"key_{_base62(int.from_bytes(secrets.token_bytes(12), 'big'), 17)}",
        user_id=user_id,
        name=name,
        prefix=secret[:SHOWN_CHARS],
        scopes=scopes,
        models=models,
        daily_points_limit=daily_points_limit,
        groups=sorted(groups),
        created_at=now,
        expire_at=expire_at,
        expires_at=int((expire_at + KEPT_AFTER_EXPIRY).timestamp()) if expire_at else None,
    )
    item.save(condition=ApiKeyItem.key_hash.does_not_exist())  # 2**256 secrets: a clash is a bug
    logger.info("api key created", extra={"user_id": user_id, "key_id": item.key_id, "scopes": scopes})
    return NewKey(secret, item)


def list_keys(user_id: str) -> list[ApiKeyItem]:
    """The user's keys, newest first (live ones, and expired ones for a week after their expiry)."""
    items = list(ApiKeyItem.by_user.query(user_id))
    return sorted(items, key=lambda item: item.created_at, reverse=True)


def revoke_key(user_id: str, key_id: str) -> ApiKeyItem:
    """Delete the user's key: from the next request on, it is refused (no cache holds it)."""
    found = [item for item in ApiKeyItem.by_user.query(user_id, ApiKeyItem.key_id == key_id)
             if item.user_id == user_id]
    if not found or not conditional(lambda: found[0].delete(condition=ApiKeyItem.user_id == user_id)):
        raise NotFound(_("API key {key_id} not found", key_id=key_id))
    logger.info("api key revoked", extra={"user_id": user_id, "key_id": key_id})
    return found[0]


# --- using a key ---------------------------------------------------------------------------------


def find_active(token: str, now: datetime | None = None) -> ApiKeyItem | None:
    """The live key `token` is, or None (malformed, unknown, revoked or expired: the caller cannot
    tell which). A strongly consistent read: a revoked key is refused from the next request on."""
    if not well_formed(token):
        return None
    item = get_or_none(ApiKeyItem, key_hash(token))
    if item is None or not _is_active(item, now or utcnow()):
        return None
    return item


def note_use(item: ApiKeyItem, now: datetime | None = None) -> bool:
    """Record `lastUsedTime`, at most once a minute per key: the read item says whether it is due,
    and a conditional write lets one of many concurrent requests win. Never fails the request."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=LAST_USED_EVERY_SECONDS)
    if item.last_used_at is not None and item.last_used_at > cutoff:
        return False
    try:
        return conditional(lambda: item.update(
            actions=[ApiKeyItem.last_used_at.set(now)],
            condition=ApiKeyItem.key_hash.exists()  # never recreate a key revoked meanwhile
            & (ApiKeyItem.last_used_at.does_not_exist() | (ApiKeyItem.last_used_at <= cutoff))))
    except Exception:  # lastUsedTime is informational: a failed write must not refuse the caller
        logger.warning("could not record an API key's last use", extra={"key_id": item.key_id}, exc_info=True)
        return False


@dataclass(frozen=True)
class KeyLimits:
    """What a key allows at submit, beyond its scopes (carried in the authorizer's context)."""

    key_id: str
    daily_points_limit: int | None = None
    models: tuple[str, ...] | None = None

    @property
    def limited(self) -> bool:
        return self.daily_points_limit is not None or self.models is not None


def check_model(limits: KeyLimits, model_name: str) -> None:
    if limits.models is not None and model_name not in limits.models:
        raise Forbidden(_("modelName: this API key may use only the models {models}",
                          models=", ".join(limits.models)), error_code="ApiKey.Models")


def _spend_item(user_id: str, key_id: str, now: datetime) -> PointsItem:
    return PointsItem(user_id, f"KEYSPEND#{key_id}#{now.strftime('%Y%m%d')}")


def spent_today(user_id: str, key_id: str, now: datetime | None = None) -> int:
    item = get_or_none(PointsItem, user_id, _spend_item(user_id, key_id, now or utcnow()).entry)
    return int(item.key_spent or 0) if item else 0


def _over_limit(limits: KeyLimits, user_id: str, cost: int, now: datetime) -> LimitReached:
    return LimitReached(
        _("this API key's daily points limit ({limit}) would be exceeded: {spent} spent today (UTC), "
          "this task costs {cost}", limit=limits.daily_points_limit,
          spent=spent_today(user_id, limits.key_id, now), cost=cost),
        error_code="ApiKey.DailyLimit")


@dataclass(frozen=True)
class DailySpend:
    """The key's spend counter of the day, as one more guarded update of the debit's transaction
    (aigc.domain.points.debit_for_new_task `extra_writes`): the debit and the spend are all or nothing,
    so concurrent submits never take the key past its limit by a single point."""

    limits: KeyLimits
    user_id: str
    cost: int
    now: datetime

    def write(self, tx: TransactWrite) -> None:
        limit = int(self.limits.daily_points_limit or 0)
        tx.update(
            _spend_item(self.user_id, self.limits.key_id, self.now),
            actions=[PointsItem.key_spent.add(self.cost), PointsItem.expires_at.set(int(time.time()) + SPEND_KEPT_SECONDS)],
            condition=PointsItem.key_spent.does_not_exist() | (PointsItem.key_spent <= limit - self.cost),
        )

    def refusal(self) -> LimitReached:
        return _over_limit(self.limits, self.user_id, self.cost, self.now)


def spend_writes(limits: KeyLimits | None, user_id: str, model_name: str, cost: int) -> list[DailySpend]:
    """Checks a submit against the key before anything is written (model allowlist: 403; a task
    dearer than the whole daily limit: 402) and returns the guarded spend update for the debit."""
    if limits is None:
        return []
    check_model(limits, model_name)
    if limits.daily_points_limit is None:
        return []
    now = utcnow()
    if cost > limits.daily_points_limit:
        raise _over_limit(limits, user_id, cost, now)
    return [DailySpend(limits, user_id, cost, now)]


def check_upload(limits: KeyLimits) -> None:
    """An upload URL becomes a task when the file arrives, charged by the upload trigger, which knows no key:
    a key with a daily limit or a model allowlist could not be held to them, so it may not ask for one."""
    if limits.limited:
        raise Forbidden(_("an API key with a dailyPointsLimit or models may not request upload URLs (the upload "
                          "is charged when the file arrives, outside the key's limits): use a key without them"),
                        error_code="ApiKey.Uploads")
