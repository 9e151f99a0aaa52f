"""The web app's files (web/) and the local stack's serving of them (local/webapp.py), without a browser:
the UI dictionaries agree with each other and with the code, the vendored library keeps its licence, the
local server serves web/ only and signs dev tokens the API accepts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aigc.core.vocab import LedgerKind, TaskStatus
from local import auth, webapp

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
LANGUAGES = ["en", "zh-CN"]


def dictionary(lang: str) -> dict:
    return json.loads((WEB / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def scripts() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((WEB / "js").rglob("*.js")))


def test_every_language_has_every_string_and_the_same_placeholders() -> None:
    english = dictionary("en")
    for lang in LANGUAGES[1:]:
        other = dictionary(lang)
        assert set(other) == set(english), set(other) ^ set(english)
        for key, text in english.items():
            assert other[key].strip(), (lang, key)
            assert set(re.findall(r"\{(\w+)\}", other[key])) == set(re.findall(r"\{(\w+)\}", text)), (lang, key)


def test_every_string_the_code_names_is_in_the_dictionary() -> None:
    english = dictionary("en")
    code = scripts()
    named = set(re.findall(r"""\bt\("([A-Za-z0-9_.]+)"[,)]""", code))
    named |= set(re.findall(r'data-i18n="([^"]+)"', (WEB / "index.html").read_text(encoding="utf-8")))
    assert named, "no strings found: the pattern is wrong"
    assert sorted(named - set(english)) == []
    # the strings named by a value: every status, ledger kind, task type and page
    for status in TaskStatus:
        assert f"status.{status.value}" in english
    for kind in LedgerKind:
        assert f"ledger.{kind.value.lower()}" in english
    for task_type in ("outpainting", "text_to_image", "image_to_image", "text_to_video", "image_to_video"):
        assert f"type.{task_type}" in english
    for page in re.findall(r'^\s+(\w+): \(\) => import\("\./pages/', code, re.M):
        assert f"nav.{page}" in english


def test_the_vendored_chart_library_keeps_its_licence() -> None:
    vendor = WEB / "vendor" / "uplot"
    assert (vendor / "LICENSE").read_text().startswith("The MIT License")
    assert (vendor / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot")


def test_no_inline_script_or_style_for_the_content_security_policy() -> None:
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
    assert not re.search(r"""\bon[a-z]+=["']""", html)
    assert "innerHTML" not in scripts()  # every text goes in as text (web/js/dom.js)


@pytest.fixture
def app(tmp_path) -> webapp.WebApp:
    key = auth.load_or_create_key(tmp_path / "key.pem")
    return webapp.WebApp(ws_url="ws://127.0.0.1:9999/", key=key)


def test_the_local_server_serves_web_only(app) -> None:
    status, headers, _ = app.answer("GET", "/app", b"")
    assert status == 301 and dict(headers)["Location"] == "/app/"
    status, headers, body = app.answer("GET", "/app/", b"")
    assert status == 200 and b'<script type="module" src="js/main.js">' in body
    assert "script-src 'self'" in dict(headers)["Content-Security-Policy"]
    assert app.answer("GET", "/app/js/main.js", b"")[1][0] == ("Content-Type", "text/javascript; charset=utf-8")
    for path in ("/app/../local/auth.py", "/app/%2e%2e/template.yaml", "/app/js/../../README.md", "/app/nothing.js",
                 "/app/js"):
        assert app.answer("GET", path, b"")[0] == 404, path
    assert app.answer("POST", "/app/index.html", b"")[0] == 405
    assert app.answer("GET", "/models", b"") is None  # not ours: the API's routes
    config = json.loads(app.answer("GET", "/app/config.json", b"")[2])
    assert config == {"apiBase": "", "wsUrl": "ws://127.0.0.1:9999/", "stage": "local", "adminAuth": None,
                      "auth": {"type": "local", "signInUrl": "/_local/sign-in"}}


def test_the_dev_sign_in_signs_tokens_the_api_accepts(app) -> None:
    status, _, body = app.answer("POST", "/_local/sign-in", json.dumps({"user": "alice", "admin": True}).encode())
    assert status == 200
    claims = auth.Verifier(app.key).verify(f"Bearer {json.loads(body)['token']}")
    assert claims["sub"] == "alice" and claims["cognito:groups"] == ["admins"]
    assert claims["exp"] - claims["iat"] == 3600
    plain = json.loads(app.answer("POST", "/_local/sign-in", b'{"user": "bob", "ttl": 5}')[2])
    assert "cognito:groups" not in auth.Verifier(app.key).verify(plain["token"]) and plain["expiresIn"] == 5
    for bad in (b"", b"[]", b'{"user": "a/b"}', b'{"user": ""}', b'{"user": "x", "ttl": 0}',
                b'{"user": "x", "ttl": true}', b"not json"):
        assert app.answer("POST", "/_local/sign-in", bad)[0] == 400, bad
    assert app.answer("GET", "/_local/sign-in", b"")[0] == 405


# ---------------------------------------------------------------- python -m ops.webapp (publishing on AWS)
OUTPUTS = {
    "ApiUrl": "https://abc.execute-api.us-east-1.amazonaws.com", "WebSocketUrl": "wss://ws.execute-api.us-east-1.amazonaws.com/live",
    "WebAppUrl": "https://d1.cloudfront.net/", "ResultsBucketName": "aigc-results-x",
    "UserPoolSignInUrl": "https://aigc-1.auth.us-east-1.amazoncognito.com", "UserPoolClientId": "users",
    "AdminSignInUrl": "https://aigc-admin-1.auth.us-east-1.amazoncognito.com", "AdminUserPoolClientId": "admins",
}


def test_the_published_config_signs_in_at_the_stacks_pools_or_a_given_issuer() -> None:
    from ops import webapp as publishing

    config = publishing.app_config(OUTPUTS)
    assert config["apiBase"] == OUTPUTS["ApiUrl"] and config["wsUrl"] == OUTPUTS["WebSocketUrl"]
    assert config["auth"] == {"type": "oidc", "clientId": "users", "scope": "openid email profile",
                              "authorizeUrl": "https://aigc-1.auth.us-east-1.amazoncognito.com/oauth2/authorize",
                              "tokenUrl": "https://aigc-1.auth.us-east-1.amazoncognito.com/oauth2/token",
                              "logoutUrl": "https://aigc-1.auth.us-east-1.amazoncognito.com/logout"}
    assert config["adminAuth"]["clientId"] == "admins" and "aigc-admin-1" in config["adminAuth"]["authorizeUrl"]
    discovery = {"authorization_endpoint": "https://id.example/auth", "token_endpoint": "https://id.example/token"}
    external = {k: v for k, v in OUTPUTS.items() if "SignIn" not in k}
    config = publishing.app_config(external, issuer="https://id.example", client_id="app", fetch=lambda url: discovery)
    assert config["auth"]["tokenUrl"] == "https://id.example/token" and config["adminAuth"] is None
    with pytest.raises(publishing.PublishError, match="--issuer"):
        publishing.app_config(external)
    with pytest.raises(publishing.PublishError, match="WebAppUrl"):
        publishing.app_config({k: v for k, v in OUTPUTS.items() if k != "WebAppUrl"})


def test_publishing_uploads_web_replaces_stale_files_and_invalidates() -> None:
    import boto3
    from moto import mock_aws

    from ops import webapp as publishing

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="aigc-results-x")
        s3.put_object(Bucket="aigc-results-x", Key="app/js/old.js", Body=b"gone")
        s3.put_object(Bucket="aigc-results-x", Key="results/u/t/1.png", Body=b"kept")
        cloudfront = boto3.client("cloudfront", region_name="us-east-1")
        distribution = cloudfront.create_distribution(DistributionConfig={
            "CallerReference": "t", "Comment": "", "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "aigc-results-x.s3.amazonaws.com",
                                                   "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "redirect-to-https"},
        })["Distribution"]["Id"]
        result = publishing.publish(publishing.app_config(OUTPUTS), "aigc-results-x", distribution, s3=s3,
                                    cloudfront=cloudfront)
        keys = {item["Key"] for item in s3.list_objects_v2(Bucket="aigc-results-x")["Contents"]}
        assert {"app/index.html", "app/js/main.js", "app/config.json", "app/vendor/uplot/LICENSE"} <= keys
        assert "app/js/old.js" not in keys and "results/u/t/1.png" in keys and result["deleted"] == ["app/js/old.js"]
        index = s3.get_object(Bucket="aigc-results-x", Key="app/index.html")
        assert index["ContentType"].startswith("text/html") and index["CacheControl"] == "no-cache"
        script = s3.get_object(Bucket="aigc-results-x", Key="app/js/main.js")
        assert script["ContentType"].startswith("text/javascript")  # a module script needs a JavaScript type
        config = json.loads(s3.get_object(Bucket="aigc-results-x", Key="app/config.json")["Body"].read())
        assert config["auth"]["clientId"] == "users"
        assert result["invalidation"]
