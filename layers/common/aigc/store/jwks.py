"""The JWT issuer's public keys (its JWKS document), fetched over HTTPS and cached for 5 minutes.

A token naming a key id the cached set lacks makes one fresh fetch (the issuer rotated its keys), at
most one every 30 s (PyJWT's cooldown: made-up key ids cannot make us hammer the issuer).
"""
from __future__ import annotations

from functools import lru_cache

import jwt

FETCH_TIMEOUT_SECONDS = 3
CACHE_SECONDS = 300


class KeysUnavailable(Exception):
    """The issuer's key set could not be fetched or does not hold the token's key."""


class KeysUnreachable(KeysUnavailable):
    """The issuer's key set could not be fetched (network, timeout, an error answer): not the token's fault."""


@lru_cache(maxsize=4)
def _client(jwks_url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=CACHE_SECONDS, timeout=FETCH_TIMEOUT_SECONDS)


def signing_key(jwks_url: str, token: str):
    """The public key that signed `token` (by its `kid`), from the issuer's JWKS."""
    try:
        return _client(jwks_url).get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError as error:
        raise KeysUnreachable(str(error)) from None
    except jwt.PyJWKClientError as error:
        raise KeysUnavailable(str(error)) from None
