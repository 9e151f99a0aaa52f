"""What the local API Gateway does before and around the function: JWT authorizer (401s), routes
(404), CORS, /health, the token CLI, bad input (400, nothing charged) and admin grants."""
from __future__ import annotations

import subprocess
import sys
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local import auth
from tests.e2e.conftest import ROOT, free_port, new_user

UNAUTHORIZED = {"message": "Unauthorized"}


def _other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _bad_tokens() -> dict[str, str | None]:
    key = auth.load_or_create_key()
    kid = auth.public_jwk(key)["kid"]
    now = int(time.time())
    good = {"sub": "eve", "iss": auth.ISSUER, "aud": auth.AUDIENCE, "iat": now, "exp": now + 600}
    return {
        "missing": None,
        "not a jwt": "Bearer not-a-jwt",
        "empty bearer": "Bearer ",
        "expired": f"Bearer {auth.mint('eve', ttl=-60)}",
        "wrong issuer": f"Bearer {auth.mint('eve', issuer='https://evil.example/issuer')}",
        "wrong audience": f"Bearer {auth.mint('eve', audience='someone-else')}",
        "not yet valid": f"Bearer {auth.mint('eve', extra={'nbf': now + 3600})}",
        "no exp": "Bearer " + jwt.encode({k: v for k, v in good.items() if k != "exp"}, key, "RS256",
                                         headers={"kid": kid}),
        "other key, same kid": "Bearer " + jwt.encode(good, _other_key(), "RS256", headers={"kid": kid}),
        "other key": f"Bearer {auth.mint('eve', key=_other_key())}",
        "HS256": "Bearer " + jwt.encode(good, "secret-of-at-least-32-bytes-length!!", "HS256", headers={"kid": kid}),
        "tampered": f"Bearer {auth.mint('eve')[:-4]}AAAA",
        **{f"{claim} as a string": "Bearer " + jwt.encode({**good, claim: str(good[claim])}, key, "RS256",
                                                         headers={"kid": kid}) for claim in ("exp", "iat")},
        "nbf as a string": "Bearer " + jwt.encode({**good, "nbf": str(now - 10)}, key, "RS256", headers={"kid": kid}),
    }


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_401_like_api_gateway(stack, case):
    """A JWT-only route (API Gateway's JWT authorizer answers itself), and a route of the Lambda authorizer
    (JWT or API key: the function answers 401 with the envelope, tests/e2e/test_api_keys.py)."""
    headers = {"Authorization": BAD_TOKENS[case]} if BAD_TOKENS[case] is not None else {}
    response = requests.get(f"{stack.url}/user/webhooks/secret", headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json() == UNAUTHORIZED
    response = requests.get(f"{stack.url}/user/points/consumption/balance", headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == 401 and response.json()["data"] is None


def test_valid_token_with_or_without_the_bearer_prefix(stack):
    token = auth.mint("bearer-check")
    for value in (f"Bearer {token}", token):
        response = requests.get(f"{stack.url}/user/points/consumption/balance",
                                headers={"Authorization": value}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"userId": "bearer-check", "balance": 0, "expireTime": None, "lots": []}


def test_routes_without_auth_unknown_routes_health_and_jwks(stack):
    models = requests.get(f"{stack.url}/models", timeout=10)
    assert models.status_code == 200
    assert {"image-out-painting", "wanx-v1", "sc_soraimg_text_1x1"} <= {m["modelName"] for m in models.json()["data"]}
    for method, path in [("GET", "/nope"), ("DELETE", "/user/ai/tasks/submit"), ("GET", "/user/ai/tasks"),
                         ("GET", "/user/ai/tasks/a/b")]:
        response = requests.request(method, f"{stack.url}{path}", timeout=10)
        assert response.status_code == 404 and response.json() == {"message": "Not Found"}, (method, path)
    assert requests.get(f"{stack.url}/health", timeout=10).json() == {"status": "ok"}
    keys = requests.get(f"{stack.url}/.well-known/jwks.json", timeout=10).json()["keys"]
    assert keys[0]["kid"] == jwt.get_unverified_header(auth.mint("x"))["kid"]


def test_static_route_wins_over_the_path_parameter(stack):
    user = new_user()
    listing = stack.call("GET", "/user/ai/tasks/list", user=user)
    assert listing.status_code == 200 and listing.json()["data"]["total"] == 0
    missing = stack.call("GET", "/user/ai/tasks/TASK-does-not-exist", user=user)
    assert missing.status_code == 404 and missing.json()["code"] == 404


def test_cors_preflight_and_allow_origin(stack):
    preflight = requests.options(f"{stack.url}/user/ai/tasks/submit", timeout=10, headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "idempotency-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    models = requests.get(f"{stack.url}/models", headers={"Origin": "http://localhost:3000"}, timeout=10)
    assert models.headers["Access-Control-Allow-Origin"] == "*"


def test_token_cli_prints_only_a_token_the_stack_accepts(stack):
    out = subprocess.run([sys.executable, "-m", "local.token", "--user", "cli-admin", "--admin"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.count("\n") == 1 and out.count(".") == 2
    token = out.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "cli-admin" and claims["cognito:groups"] == ["admins"]
    assert claims["iss"] == auth.ISSUER and claims["aud"] == auth.AUDIENCE
    user = new_user()
    granted = stack.call("POST", "/admin/points/grant", token=token,
                         json={"userId": user, "amount": 50, "reason": "cli"})
    assert granted.status_code == 200, granted.text
    assert stack.balance(user) == 50


def test_admin_grant_needs_the_admins_group(stack):
    user = new_user()
    refused = stack.call("POST", "/admin/points/grant", user=user, json={"userId": user, "amount": 100, "reason": "me"})
    assert refused.status_code == 403
    assert stack.balance(user) == 0 and stack.records(user) == []


@pytest.mark.parametrize("request_body, field", [
    ({"modelName": "image-out-painting", "imageUrl": "SAMPLE", "parameters": {"xScale": 3.5}}, "parameters.xScale"),
    ({"modelName": "image-out-painting", "imageUrl": "SAMPLE", "parameters": {"outputRatio": "2:1"}},
     "parameters.outputRatio"),
    ({"modelName": "image-out-painting", "parameters": {"xScale": 2}}, "imageUrl"),
    ({"modelName": "sc_soraimg_text_1x1"}, "prompt"),
    ({"modelName": "wanx-v1", "prompt": "cat", "parameters": {"n": 5}}, "parameters.n"),
    ({"prompt": "cat"}, "modelName"),
])
def test_bad_parameters_are_400_and_charge_nothing(stack, request_body, field):
    user = new_user()
    stack.grant(user, 100)
    if request_body.get("imageUrl") == "SAMPLE":
        request_body = {**request_body, "imageUrl": stack.sample_url()}
    response = stack.submit(user, **request_body)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["message"].startswith(field), body
    assert stack.balance(user) == 100
    assert stack.records(user) == [("grant", 100)]
    assert stack.task_count(user) == 0


def test_malformed_json_is_400(stack):
    user = new_user()
    response = stack.call("POST", "/user/ai/tasks/submit", user=user, data=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["message"]


def test_a_port_in_use_is_one_clear_line_and_exit_code_1():
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "local", "--port", str(port), "--moto-port", str(free_port()),
             "--sim-port", str(free_port())],
            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} (API) on 127.0.0.1 is already in use; stop what uses it or pick another with --port (or PORT=)"
    ]
    assert result.stdout == ""
    assert time.monotonic() - started < 10
