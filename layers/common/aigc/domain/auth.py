"""Who is calling: a JWT of the users' issuer or an API key, as one `Principal`.

`authenticate(token)` is the one entry point: the HttpApi's Lambda authorizer (functions/authorizer,
which the local front runs too) and a WebSocket's `?token=` both call it. A JWT is checked as API
Gateway's JWT authorizer does (RS256 against the issuer's JWKS, `iss`, `aud` or `client_id`, `exp`,
`nbf`, `iat` as numbers); a key by its hash (aigc.domain.api_keys). Every refusal is the same
`Unauthenticated`: the caller never learns whether a key exists. The principal travels to the API
function in the authorizer's context (`Principal.context`, read back by `from_context`).
Policy: docs/ARCHITECTURE.md, "API keys".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt

from aigc.core.config import get_settings
from aigc.core.observability import logger
from aigc.domain import api_keys
from aigc.domain.api_keys import SCOPES, KeyLimits
from aigc.store import jwks

ALL_SCOPES = frozenset(SCOPES)
LEEWAY_SECONDS = 0


class Unauthenticated(Exception):
    """No valid credential (401). The reason is for logs only, never for the caller."""


class AuthUnavailable(Exception):
    """The credential could not be checked (the key table unreachable): 503, not 401."""


@dataclass(frozen=True)
class Principal:
    """The caller: a user (a JWT: every scope) or a user's API key (its scopes, models and daily limit)."""

    user_id: str
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = ALL_SCOPES
    key: KeyLimits | None = None

    @property
    def key_id(self) -> str | None:
        return self.key.key_id if self.key else None

    @property
    def auth(self) -> str:
        """How it authenticated: `jwt` or `apikey`."""
        return "apikey" if self.key else "jwt"

    def context(self) -> dict[str, str]:
        """The Lambda authorizer's context (strings only): what the API function reads back."""
        key = self.key
        return {
            "userId": self.user_id,
            "auth": self.auth,
            "groups": json.dumps(sorted(self.groups)),
            "scopes": " ".join(scope for scope in SCOPES if scope in self.scopes),
            "keyId": key.key_id if key else "",
            "dailyPointsLimit": "" if key is None or key.daily_points_limit is None else str(key.daily_points_limit),
            "models": "" if key is None or key.models is None else json.dumps(list(key.models)),
        }


def from_context(context: dict[str, Any]) -> Principal:
    """The principal an authorizer's context carries. Unauthenticated when it carries none,
    AuthUnavailable when the authorizer could not check the credential."""
    if context.get("authError") == "unavailable":
        raise AuthUnavailable("the authorizer could not check the credential")
    user_id = str(context.get("userId") or "")
    if not user_id:
        raise Unauthenticated(str(context.get("authError") or "no principal in the authorizer's context"))
    groups = frozenset(str(g) for g in _json_list(context.get("groups")))
    scopes = frozenset(str(context.get("scopes") or "").split()) & ALL_SCOPES
    key = None
    if context.get("auth") == "apikey" or context.get("keyId"):
        limit = str(context.get("dailyPointsLimit") or "")
        models = context.get("models")
        key = KeyLimits(str(context.get("keyId") or ""), int(limit) if limit.isdigit() else None,
                        tuple(str(m) for m in _json_list(models)) if models not in (None, "") else None)
    return Principal(user_id, groups, scopes, key)


def _json_list(value) -> list:
    if isinstance(value, list):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else []
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


class JwtVerifier:
    """What API Gateway's JWT authorizer checks, against the issuer's JWKS (aigc.store.jwks)."""

    def __init__(self, issuer: str, audiences: list[str] | tuple[str, ...] | str, jwks_url: str = "",
                 key_for=None):
        if isinstance(audiences, str):
            audiences = audiences.split(",")
        self.issuer = issuer
        self.audiences = [a.strip() for a in audiences if a and a.strip()]
        self.jwks_url = jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json"
        self._key_for = key_for or (lambda token: jwks.signing_key(self.jwks_url, token))

    def verify(self, token: str) -> dict:
        """The token's claims; Unauthenticated, or AuthUnavailable when the issuer's keys cannot be fetched."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"malformed token: {error}") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated(f"algorithm {header.get('alg')!r} is not RS256")
        try:
            key = self._key_for(token)
        except jwks.KeysUnreachable as error:  # the issuer's JWKS is down: 503, not the token's fault
            raise AuthUnavailable(f"the issuer's keys could not be fetched: {error}") from None
        except jwks.KeysUnavailable as error:
            raise Unauthenticated(f"no key of the issuer for this token: {error}") from None
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iss"], "verify_aud": False})
        except jwt.PyJWTError as error:
            raise Unauthenticated(str(error)) from None
        for name in ("exp", "nbf", "iat"):  # NumericDate (RFC 7519); PyJWT would take "1700000000" too
            if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], (int, float))):
                raise Unauthenticated(f"{name} is not a number")
        aud = claims.get("aud", claims.get("client_id"))
        if not any(a in self.audiences for a in (aud if isinstance(aud, list) else [aud]) if a is not None):
            raise Unauthenticated("audience not allowed")
        return claims


@lru_cache(maxsize=1)
def default_verifier() -> JwtVerifier:
    """The users' issuer from the environment (JWT_ISSUER, JWT_AUDIENCE, JWKS_URL)."""
    settings = get_settings()
    if not settings.jwt_issuer:
        raise AuthUnavailable("JWT_ISSUER is not set: no JWT can be checked")
    return JwtVerifier(settings.jwt_issuer, settings.jwt_audience, settings.jwks_url)


def _groups(claims: dict) -> frozenset[str]:
    claim = claims.get("cognito:groups") or claims.get("groups")
    if isinstance(claim, list):
        return frozenset(str(group) for group in claim)
    return frozenset({str(claim)}) if claim else frozenset()


def authenticate(token: str | None, *, verifier: JwtVerifier | None = None) -> Principal:
    """The principal of a credential: a JWT (with or without `Bearer `) or an API key (`aigc_...`).

    Raises Unauthenticated for anything not valid (malformed, unknown, revoked, expired: one answer),
    AuthUnavailable when a key could not be looked up. A key's use is recorded (lastUsedTime, at most
    once a minute); a revoked key is refused from the next request on (no cache).
    """
    token = (token or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthenticated("no credential")
    if api_keys.is_key(token):
        try:
            item = api_keys.find_active(token)
        except Exception as error:  # DynamoDB unreachable or throttled: not the caller's fault
            logger.warning("could not look an API key up", exc_info=True)
            raise AuthUnavailable(str(error)) from None
        if item is None:
            raise Unauthenticated("malformed, unknown, revoked or expired API key")
        api_keys.note_use(item)
        models = tuple(item.models) if item.models is not None else None
        limit = int(item.daily_points_limit) if item.daily_points_limit is not None else None
        return Principal(item.user_id, frozenset(item.groups or ()), frozenset(item.scopes or ()) & ALL_SCOPES,
                         KeyLimits(item.key_id, limit, models))
    claims = (verifier or default_verifier()).verify(token)
    if not claims.get("sub"):
        raise Unauthenticated("the token has no subject (sub)")
    return Principal(str(claims["sub"]), _groups(claims))


def credential(headers: dict[str, str] | None) -> str | None:
    """The request's credential: `X-API-Key` if present, else `Authorization` (a JWT or a key)."""
    lowered = {str(name).lower(): value for name, value in (headers or {}).items()}
    return lowered.get("x-api-key") or lowered.get("authorization")


def authorizer_response(event: dict, verifier: JwtVerifier | None = None) -> dict:
    """The HttpApi Lambda authorizer's simple response (payload 2.0).

    It never denies: API Gateway would answer a denial with 403 `{"message":"Forbidden"}`, and a
    bad credential is a 401 with the envelope. So it passes `authError` in the context and the API
    function answers 401 (or 503) before routing (aigc.api.http.refuse_unauthenticated).
    """
    try:
        principal = authenticate(credential(event.get("headers")), verifier=verifier)
    except Unauthenticated as error:
        logger.info("unauthenticated request", extra={"route": event.get("routeKey"), "reason": str(error)[:200]})
        return {"isAuthorized": True, "context": {"authError": "unauthenticated"}}
    except AuthUnavailable:
        return {"isAuthorized": True, "context": {"authError": "unavailable"}}
    return {"isAuthorized": True, "context": principal.context()}
