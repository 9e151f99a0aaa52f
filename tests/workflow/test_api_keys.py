"""The HttpApi's Lambda authorizer (functions/authorizer) and the API behind it, on the deployed stack: JWTs
checked against a real JWKS served over HTTP (PyJWKClient fetches it), API keys by their hash; the API
function reads the caller from the authorizer's context, holds a key to its scopes, and answers a request
the authorizer found no credential on with 401 (the envelope) before routing."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local import auth
from local.apigw import http_event


@pytest.fixture(scope="module")
def jwks_server():
    """The local issuer's JWKS at http://127.0.0.1:<port>/.well-known/jwks.json, counting its fetches."""
    key = auth.load_or_create_key()
    document = json.dumps(auth.jwks(key)).encode()
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def keyed(app, jwks_server, monkeypatch):
    monkeypatch.setenv("JWKS_URL", jwks_server[0])  # read by the authorizer at its cold start
    return app


def authorize(app, headers: dict) -> dict:
    decision = app.invoke("AuthorizerFunction", http_event("GET", "/user/points/consumption/balance",
                                                           headers=headers) | {"type": "REQUEST"})
    assert decision["isAuthorized"] is True  # it never denies: the API answers 401 with the envelope
    return decision["context"]


def call(app, method: str, path: str, context: dict, body=None) -> tuple[int, dict]:
    event = http_event(method, path, body=body)
    event["requestContext"]["authorizer"] = {"lambda": context}
    name = app.deployment.name("ApiFunction")
    payload, errored, _ = app.deployment.router.invoke(name, name, event)
    assert not errored, payload
    answer = json.loads(payload)
    return answer["statusCode"], json.loads(answer["body"])


def _other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_jwts_are_checked_against_the_issuers_jwks(keyed, jwks_server):
    url, hits = jwks_server
    hits.clear()
    good = authorize(keyed, {"Authorization": f"Bearer {auth.mint('alice', admin=True)}"})
    assert good["userId"] == "alice" and good["auth"] == "jwt" and json.loads(good["groups"]) == ["admins"]
    assert good["scopes"] == "tasks:write tasks:read points:read" and good["keyId"] == ""
    for _ in range(3):
        assert authorize(keyed, {"authorization": auth.mint("bob")})["userId"] == "bob"  # no Bearer: fine
    assert hits == ["/.well-known/jwks.json"]  # fetched once, then cached

    key, now = auth.load_or_create_key(), int(time.time())
    kid = auth.public_jwk(key)["kid"]
    claims = {"sub": "eve", "iss": auth.ISSUER, "aud": auth.AUDIENCE, "iat": now, "exp": now + 600}
    bad = {
        "expired": auth.mint("eve", ttl=-60),
        "wrong issuer": auth.mint("eve", issuer="https://evil.example/issuer"),
        "wrong audience": auth.mint("eve", audience="someone-else"),
        "not yet valid": auth.mint("eve", extra={"nbf": now + 3600}),
        "other key, same kid": jwt.encode(claims, _other_key(), "RS256", headers={"kid": kid}),
        "unknown kid": auth.mint("eve", key=_other_key()),
        "HS256": jwt.encode(claims, "secret-of-at-least-32-bytes-length!!", "HS256", headers={"kid": kid}),
        "exp as a string": jwt.encode({**claims, "exp": str(now + 600)}, key, "RS256", headers={"kid": kid}),
        "no sub": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, key, "RS256", headers={"kid": kid}),
        "garbage": "not-a-jwt",
        "empty": "",
    }
    for case, token in bad.items():
        assert authorize(keyed, {"Authorization": f"Bearer {token}"}) == {"authError": "unauthenticated"}, case
    assert authorize(keyed, {}) == {"authError": "unauthenticated"}


def test_a_key_acts_as_its_owner_within_its_scopes(keyed):
    keyed.grant("alice", 100)
    status, body = keyed.api("POST", "/user/api-keys", body={"name": "reader", "scopes": ["tasks:read"]})
    assert status == 200, body
    created = body["data"]
    assert created["key"].startswith("aigc_") and created["prefix"] == created["key"][:12]
    assert created["scopes"] == ["tasks:read"] and created["lastUsedTime"] is None

    context = authorize(keyed, {"X-API-Key": created["key"]})
    assert context["userId"] == "alice" and context["auth"] == "apikey" and context["keyId"] == created["keyId"]
    assert authorize(keyed, {"Authorization": f"Bearer {created['key']}"})["keyId"] == created["keyId"]
    # X-API-Key is the credential when both are sent
    assert authorize(keyed, {"X-API-Key": created["key"], "Authorization": auth.mint("bob")})["userId"] == "alice"

    assert call(keyed, "GET", "/user/ai/tasks/list", context)[0] == 200
    status, body = call(keyed, "GET", "/user/points/consumption/balance", context)
    assert status == 403 and body["errorCode"] == "ApiKey.Scope" and "points:read" in body["message"]
    status, body = call(keyed, "POST", "/user/ai/tasks/submit", context,
                        {"modelName": "wanx-v1", "prompt": "a kite"})
    assert status == 403 and "tasks:write" in body["message"]
    for method, path in [("GET", "/user/api-keys"), ("POST", "/user/webhooks/secret/rotate"),
                         ("GET", "/admin/tasks/TASK-x")]:
        status, body = call(keyed, method, path, context)
        assert status == 403 and body["errorCode"] == "ApiKey.JwtOnly", (method, path, body)
    assert keyed.balance("alice") == 100

    listed = keyed.api("GET", "/user/api-keys")[1]["data"]
    assert [k["keyId"] for k in listed] == [created["keyId"]] and "key" not in listed[0]
    assert listed[0]["lastUsedTime"] is not None  # the authorizer noted its use

    assert keyed.api("DELETE", f"/user/api-keys/{created['keyId']}", user="mallory")[0] == 404
    assert keyed.api("DELETE", f"/user/api-keys/{created['keyId']}")[0] == 200
    assert authorize(keyed, {"X-API-Key": created["key"]}) == {"authError": "unauthenticated"}


def test_a_request_without_a_valid_credential_is_401_with_the_envelope_before_routing(keyed):
    for body in (None, "{not json", {"modelName": "x"}):
        status, answer = call(keyed, "POST", "/user/ai/tasks/submit", {"authError": "unauthenticated"}, body)
        assert status == 401 and answer["code"] == 401 and answer["data"] is None, answer
    status, answer = call(keyed, "GET", "/user/ai/tasks/list", {"authError": "unavailable"})
    assert status == 503 and answer["code"] == 503


def test_a_keys_submit_is_held_to_its_models_and_daily_limit(keyed):
    keyed.grant("alice", 100)
    created = keyed.api("POST", "/user/api-keys", body={
        "name": "shop", "dailyPointsLimit": 40, "models": ["sc_soraimg_text_1x1"]})[1]["data"]
    assert created["dailyPointsLimit"] == 40 and created["models"] == ["sc_soraimg_text_1x1"]
    context = authorize(keyed, {"X-API-Key": created["key"]})
    status, body = call(keyed, "POST", "/user/ai/tasks/submit", context,
                        {"modelName": "wanx-v1", "prompt": "a kite"})
    assert status == 403 and body["errorCode"] == "ApiKey.Models"
    first = call(keyed, "POST", "/user/ai/tasks/submit", context, {"modelName": "sc_soraimg_text_1x1", "prompt": "a"})
    assert first[0] == 200, first
    status, body = call(keyed, "POST", "/user/ai/tasks/submit", context,
                        {"modelName": "sc_soraimg_text_1x1", "prompt": "b"})
    assert status == 402 and body["errorCode"] == "ApiKey.DailyLimit", body
    assert keyed.balance("alice") == 100 - first[1]["data"]["pointsCost"]
    status, body = call(keyed, "POST", "/user/uploads", context, {"fileName": "a.png", "contentType": "image/png"})
    assert status == 403 and body["errorCode"] == "ApiKey.Uploads"


BAD_KEY_REQUESTS = [
    ({"name": ""}, "name"), ({"name": "x", "scopes": ["tasks:delete"]}, "scopes"), ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "expiresInDays": 0}, "expiresInDays"), ({"name": "x", "dailyPointsLimit": -1}, "dailyPointsLimit"),
    ({"name": "x", "models": ["nope"]}, "models[0]"), ({"name": "x", "extra": 1}, "extra"), ({}, "name"),
    ({"name": "x", "dailyPointsLimit": "10"}, "dailyPointsLimit"),
]


def test_bad_key_requests_are_400_naming_the_field(app):
    for body, field in BAD_KEY_REQUESTS:
        status, answer = app.api("POST", "/user/api-keys", body=body)
        assert status == 400 and answer["message"].startswith(field), (body, answer)
    assert app.api("GET", "/user/api-keys")[1]["data"] == []
    assert app.api("DELETE", "/user/api-keys/not-a-key-id")[0] == 400
