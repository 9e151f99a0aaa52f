"""The web app on the local stack: `web/` served at http://127.0.0.1:<port>/app/, as CloudFront serves it on AWS.

- `GET /app/...`: the files of `web/` (no directory listing, nothing outside it), `index.html` for `/app/`;
  `/app` redirects to `/app/`. The same security headers as the template's CloudFront response headers
  policy, with the local ports allowed in the content security policy.
- `GET /app/config.json`: what the app needs to know about this deployment (on AWS `python -m ops.webapp`
  writes it from the stack's outputs): the API's base URL (same origin here), the WebSocket URL and the
  sign-in: `{"type": "local"}` here, Cognito's hosted UI (authorization code with PKCE) on AWS.
- `POST /_local/sign-in` `{"user": "alice", "admin": false, "ttl": 3600}`: the dev sign-in, a token of the
  local issuer for that user (what `make token` prints), `admin` adding the `admins` group. Local only:
  the deployed app signs in at Cognito.
"""
from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path

from local import auth

ROOT = Path(__file__).resolve().parents[1] / "web"
PREFIX = "/app"
SIGN_IN_PATH = "/_local/sign-in"
# The API's user id rule (aigc.api.schemas.SAFE_USER_ID): a token for another id would be refused anyway.
_USER_ID = re.compile(r"^[A-Za-z0-9_@:+=-]+(\.[A-Za-z0-9_@:+=-]+)*$")
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".json": "application/json; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".txt": "text/plain; charset=utf-8", ".webmanifest": "application/manifest+json"}
MAX_TTL = 7 * 24 * 3600


def security_headers(connect: list[str]) -> list[tuple[str, str]]:
    """The headers CloudFront adds on AWS (template.yaml, WebAppResponseHeadersPolicy), with these origins."""
    sources = " ".join(connect)
    policy = ("default-src 'self'; script-src 'self'; style-src 'self'; "
              f"img-src 'self' data: blob: {sources}; media-src 'self' blob: {sources}; "
              f"connect-src 'self' {sources}; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
              "form-action 'self'")
    return [("Content-Security-Policy", policy), ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"), ("Referrer-Policy", "strict-origin-when-cross-origin")]


class WebApp:
    """Answers the app's paths on the API port; `answer(...)` is None for any other path."""

    def __init__(self, *, ws_url: str, key, issuer: str = auth.ISSUER, audience: str = auth.AUDIENCE,
                 local_origins: list[str] | None = None, root: Path = ROOT):
        self.root = root.resolve()
        self.ws_url = ws_url
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.headers = security_headers([ws_url.rstrip("/"), *(local_origins or ["http://127.0.0.1:*"])])

    def config(self) -> dict:
        return {"apiBase": "", "wsUrl": self.ws_url, "auth": {"type": "local", "signInUrl": SIGN_IN_PATH},
                "adminAuth": None, "stage": "local"}

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if path == SIGN_IN_PATH:
            return self._sign_in(body) if method == "POST" else _json(405, {"message": "Method Not Allowed"})
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        if method not in ("GET", "HEAD"):
            return _json(405, {"message": "Method Not Allowed"})
        if path == PREFIX:
            return 301, [("Location", PREFIX + "/")], b""
        relative = path[len(PREFIX) + 1:] or "index.html"
        if relative == "config.json":
            return 200, [("Content-Type", _TYPES[".json"]), ("Cache-Control", "no-store")], \
                json.dumps(self.config()).encode()
        file = (self.root / relative).resolve()
        if self.root not in file.parents or not file.is_file() or \
                any(part.startswith(".") for part in file.relative_to(self.root).parts):
            return 404, [("Content-Type", "text/plain; charset=utf-8")], b"Not Found"
        kind = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        headers = [("Content-Type", kind), ("Cache-Control", "no-cache")]
        if file.suffix == ".html":
            headers += self.headers
        return 200, headers, file.read_bytes()

    def _sign_in(self, body: bytes):
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return _json(400, {"message": "the body must be a JSON object"})
        user = request.get("user")
        if not isinstance(user, str) or len(user) > 128 or not _USER_ID.fullmatch(user):
            return _json(400, {"message": "user: letters, digits and _@:+=-. only, at most 128 characters"})
        ttl = request.get("ttl", 3600)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL:
            return _json(400, {"message": f"ttl: whole seconds, 1 to {MAX_TTL}"})
        token = auth.mint(user, admin=request.get("admin") is True, ttl=ttl, key=self.key,
                          issuer=self.issuer, audience=self.audience)
        return _json(200, {"token": token, "expiresIn": ttl})


def _json(status: int, body: dict):
    return status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], json.dumps(body).encode()
