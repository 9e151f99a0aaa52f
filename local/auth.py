"""The local stack's token issuer and the JWT check API Gateway's JWT authorizer does.

One RSA key, generated on first use into `.local/jwt-signing-key.pem` (gitignored), signs the
tokens (`python -m local.token`) and verifies them in the HTTP front. Issuer and audience are
fixed strings, independent of the port, so a token minted before `make dev` started (or for
another port) is accepted too:

    issuer   http://127.0.0.1/local-issuer   (template parameter JwtIssuer)
    audience aigc-local                       (template parameter JwtAudience)

`verify` does what the HTTP API JWT authorizer documents: the token may carry a `Bearer ` prefix;
RS256 only; the `kid` must be one of the issuer's keys; `exp` required and in the future; `nbf`
and `iat` not in the future (all three numbers, never strings); `iss` equal to the issuer; `aud` (or `client_id`, as Cognito access
tokens carry) one of the audiences. Anything else is a 401 `{"message":"Unauthorized"}`.

Only PyJWT and cryptography: importing this module must stay fast (`make token`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
KEY_FILE = Path(os.environ.get("AIGC_LOCAL_KEY_FILE") or ROOT / ".local" / "jwt-signing-key.pem")
ISSUER = "http://127.0.0.1/local-issuer"
AUDIENCE = "aigc-local"
ADMIN_GROUP = "admins"


class Unauthorized(Exception):
    """The request would be refused by the authorizer (401); the reason is for logs only."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def load_or_create_key(path: Path = KEY_FILE) -> rsa.RSAPrivateKey:
    """The local signing key; created (2048-bit RSA, mode 0600) when the file does not exist."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)  # atomic and never overwrites: two first runs agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_jwk(key: rsa.RSAPrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    jwk = {"e": _b64url(_int_bytes(numbers.e)), "kty": "RSA", "n": _b64url(_int_bytes(numbers.n))}
    # RFC 7638 thumbprint as the key id.
    kid = _b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def jwks(key: rsa.RSAPrivateKey) -> dict:
    return {"keys": [public_jwk(key)]}


def mint(user: str, *, admin: bool = False, ttl: int = 86400, key: rsa.RSAPrivateKey | None = None,
         issuer: str = ISSUER, audience: str = AUDIENCE, extra: dict | None = None) -> str:
    """A Cognito-like ID token for `user` (`sub`), in `admins` when `admin`."""
    key = key or load_or_create_key()
    now = int(time.time())
    claims = {
        "sub": user,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
        "token_use": "id",
        "cognito:username": user,
    }
    if admin:
        claims["cognito:groups"] = [ADMIN_GROUP]
    claims.update(extra or {})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": public_jwk(key)["kid"]})


class Verifier:
    """Checks bearer tokens the way the deployed HTTP API JWT authorizer does: the checks are the API's own
    (aigc.domain.auth.JwtVerifier, imported when a Verifier is made so that `make token` stays fast), with the
    local key as the issuer's one key."""

    def __init__(self, key: rsa.RSAPrivateKey | None = None, *, issuer: str = ISSUER,
                 audiences: list[str] | tuple[str, ...] = (AUDIENCE,)):
        from aigc.domain.auth import JwtVerifier, Unauthenticated
        from aigc.store.jwks import KeysUnavailable

        key = key or load_or_create_key()
        keys = {public_jwk(key)["kid"]: key.public_key()}

        def key_for(token: str):
            public = keys.get(jwt.get_unverified_header(token).get("kid"))
            if public is None:
                raise KeysUnavailable("unknown kid")
            return public

        self._checks = JwtVerifier(issuer, list(audiences), key_for=key_for)
        self._refused = Unauthenticated
        self.issuer = issuer
        self.audiences = self._checks.audiences

    def verify(self, authorization: str | None) -> dict:
        """The token's claims, or Unauthorized."""
        if not authorization:
            raise Unauthorized("no Authorization header")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            return self._checks.verify(token)
        except self._refused as error:
            raise Unauthorized(str(error)) from None
