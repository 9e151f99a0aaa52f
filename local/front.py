"""The local API Gateway: an HTTP server that does what the deployed HttpApi does in front of ApiFunction.

- Routes: exactly those the template maps to the function (`cfn.http_routes`), matched like API
  Gateway (static paths before `{param}` paths, `{proxy+}` greedy); the event carries the routeKey
  (`GET /user/ai/tasks/{taskNo}`) and the `pathParameters`. No route -> 404 `{"message":"Not Found"}`.
- Auth: routes with the JWT authorizer need a valid bearer token (local/auth.py), else 401
  `{"message":"Unauthorized"}`; the claims go to requestContext.authorizer.jwt.claims. Routes with a
  Lambda authorizer (REQUEST, payload 2.0, simple responses, no cache) invoke its function as API
  Gateway does (`lambda_authorizers`): `isAuthorized: false` is 403 `{"message":"Forbidden"}`, an error
  500; otherwise its context goes to requestContext.authorizer.lambda.
- The function is invoked as API Gateway's Lambda integration does, straight into its pool of
  environments (local/lambda_runtime.py), without an HTTP round trip through moto's Invoke API; a
  function error answers 500 `{"message":"Internal Server Error"}`; no answer within the integration's
  timeout (HTTP API's 30 s) answers 503 `{"message":"Service Unavailable"}` while the invocation runs on.
- The stage's throttle (the HttpApi's DefaultRouteSettings: ThrottlingRateLimit, ThrottlingBurstLimit),
  a token bucket as API Gateway keeps one: a request to a route past it answers 429
  `{"message":"Too Many Requests"}` before any authorizer or function runs, without Retry-After (HTTP
  APIs cannot add one: docs/runbook.md).
- CORS from the template's CorsConfiguration: preflight OPTIONS answered here, Allow-Origin added
  to responses when the Origin is allowed.
- `GET /health` (200 once the stack is up, 503 before) and `GET /.well-known/jwks.json` (the
  local issuer's public key) unless the template maps those paths; the web app at `/app/` and its dev
  sign-in (`webapp`, local/webapp.py).
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from email.errors import FirstHeaderLineIsContinuationDefect
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.datastructures import EnvironHeaders
from werkzeug.serving import WSGIRequestHandler, make_server

from local import auth

log = logging.getLogger("local.front")

# Headers API Gateway does not pass on / sets itself.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"}
INTEGRATION_TIMEOUT_SECONDS = 30.0  # an HttpApi Lambda integration's default and maximum (TimeoutInMillis)


@dataclass
class Route:
    method: str  # GET, POST, ... or ANY
    path: str  # template path, e.g. /user/ai/tasks/{taskNo}
    authorized: bool
    pattern: re.Pattern
    static: bool
    authorizer: str | None = None  # the template's authorizer name (None: the API's JWT authorizer, or none)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def compile_route(method: str, path: str, authorized: bool, authorizer: str | None = None) -> Route:
    parts = []
    static = True
    for segment in path.strip("/").split("/"):
        match = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
        if match:
            static = False
            name, greedy = match.groups()
            parts.append(f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return Route(method.upper(), path, authorized, re.compile("^/" + "/".join(parts) + "$"), static, authorizer)


class StageThrottle:
    """API Gateway's token bucket: `burst` tokens, refilled at `rate` a second; a request takes one."""

    def __init__(self, rate: float, burst: int, clock=None):
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock or time.monotonic
        self._tokens = float(self.burst)
        self._at = self._clock()
        self._lock = threading.Lock()
        self.refused = 0

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.refused += 1
            return False


@dataclass
class Cors:
    allow_origins: list[str]
    allow_methods: list[str]
    allow_headers: list[str]
    expose_headers: list[str]
    max_age: int | None
    allow_credentials: bool

    @classmethod
    def from_config(cls, config: dict | None) -> "Cors | None":
        if not config:
            return None
        if config is True:
            config = {"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]}

        def as_list(value) -> list[str]:
            if value is None:
                return []
            return [str(v) for v in (value if isinstance(value, list) else str(value).split(","))]

        max_age = config.get("MaxAge")
        return cls(
            allow_origins=as_list(config.get("AllowOrigins")),
            allow_methods=[m.upper() for m in as_list(config.get("AllowMethods"))],
            allow_headers=[h.lower() for h in as_list(config.get("AllowHeaders"))],
            expose_headers=as_list(config.get("ExposeHeaders")),
            max_age=int(max_age) if max_age is not None else None,
            allow_credentials=str(config.get("AllowCredentials", "false")).lower() == "true",
        )

    def origin_allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this Origin, or None."""
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*" if not self.allow_credentials else origin
        return origin if origin in self.allow_origins else None

    def preflight(self, origin: str | None, method: str | None, headers: str | None) -> dict | None:
        allowed_origin = self.origin_allowed(origin)
        if allowed_origin is None or not method:
            return None
        if "*" not in self.allow_methods and method.upper() not in self.allow_methods:
            return None
        requested = [h.strip().lower() for h in (headers or "").split(",") if h.strip()]
        if "*" not in self.allow_headers and any(h not in self.allow_headers for h in requested):
            return None
        out = {
            "Access-Control-Allow-Origin": allowed_origin,
            "Access-Control-Allow-Methods": ",".join(self.allow_methods) or method.upper(),
            "Access-Control-Allow-Headers": ",".join(self.allow_headers) if "*" not in self.allow_headers
            else ",".join(requested),
        }
        if self.max_age is not None:
            out["Access-Control-Max-Age"] = str(self.max_age)
        if self.allow_credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        if allowed_origin != "*":
            out["Vary"] = "Origin"
        return out

    def response_headers(self, origin: str | None) -> dict:
        allowed_origin = self.origin_allowed(origin)
        if allowed_origin is None:
            return {}
        out = {"Access-Control-Allow-Origin": allowed_origin}
        if self.expose_headers:
            out["Access-Control-Expose-Headers"] = ",".join(self.expose_headers)
        if self.allow_credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        if allowed_origin != "*":
            out["Vary"] = "Origin"
        return out


class ApiFront:
    """Routes, authorizer and invoker; `serve(host, port)` binds the HTTP server."""

    def __init__(self, routes: list[Route], function_name: str, *, verifier: auth.Verifier,
                 cors: Cors | None = None, jwks: dict | None = None, invoke=None):
        # API Gateway picks the most specific route: static paths before parameterised ones.
        self.routes = sorted(routes, key=lambda r: (not r.static, r.path.count("+"), -r.path.count("/")))
        self.function_name = function_name
        self.verifier = verifier
        self.cors = cors
        self.jwks = jwks
        self.invoke = invoke  # (event) -> (payload, errored): the function's Lambda integration
        self.integration_timeout = INTEGRATION_TIMEOUT_SECONDS
        self.throttle: StageThrottle | None = None  # the stage's (throttle_from_template); None: unthrottled
        # authorizer name -> (event) -> (payload, errored): the Lambda authorizers' functions
        self.lambda_authorizers: dict[str, object] = {}
        self.webapp = None  # local/webapp.py: the web app at /app/ and the dev sign-in (no template route)
        self.ready = threading.Event()
        self.server = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ routing
    def match(self, method: str, path: str) -> tuple[Route, dict] | None:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def path_known(self, path: str) -> bool:
        return any(route.pattern.match(path) for route in self.routes)

    # ------------------------------------------------------------------ handling
    def handle(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
               source_ip: str) -> tuple[int, list[tuple[str, str]], bytes]:
        url = urlsplit(raw_path)
        path = url.path or "/"
        header_map: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            if name in _HOP_BY_HOP:
                continue
            header_map[name] = f"{header_map[name]},{value}" if name in header_map else value
        origin = header_map.get("origin")

        if method == "OPTIONS" and self.cors and "access-control-request-method" in header_map:
            preflight = self.cors.preflight(origin, header_map.get("access-control-request-method"),
                                            header_map.get("access-control-request-headers"))
            return 204, list((preflight or {}).items()), b""

        status, out_headers, out_body = self._dispatch(method, path, url.query, header_map, body, source_ip)
        if self.cors:
            present = {name.lower() for name, _ in out_headers}
            out_headers += [(k, v) for k, v in self.cors.response_headers(origin).items() if k.lower() not in present]
        return status, out_headers, out_body

    def _dispatch(self, method, path, query, header_map, body, source_ip):
        matched = self.match(method, path)
        if matched is None:
            if method == "GET" and path == "/health":
                if self.ready.is_set():
                    return _json(200, {"status": "ok"})
                return _json(503, {"status": "starting"})
            if method == "GET" and path == "/.well-known/jwks.json" and self.jwks:
                return _json(200, self.jwks)
            answer = self.webapp.answer(method, path, body) if self.webapp is not None else None
            return answer or _json(404, {"message": "Not Found"})
        if not self.ready.is_set():
            return _json(503, {"message": "Service Unavailable"})
        if self.throttle is not None and not self.throttle.take():
            return _json(429, {"message": "Too Many Requests"})
        route, path_parameters = matched

        claims = None
        lambda_authorizer = self.lambda_authorizers.get(route.authorizer or "") if route.authorized else None
        if route.authorized and lambda_authorizer is None:
            try:
                claims = self.verifier.verify(header_map.get("authorization"))
            except auth.Unauthorized as error:
                log.info("401 %s %s: %s", method, path, error)
                status, hdrs, payload = _json(401, {"message": "Unauthorized"})
                return status, hdrs + [("www-authenticate", "Bearer")], payload

        event = self._event(method, path, query, header_map, body, source_ip, route, path_parameters, claims)
        if lambda_authorizer is not None:
            context = self._lambda_authorize(lambda_authorizer, event)
            if isinstance(context, tuple):  # API Gateway's own answer: denied, or the authorizer failed
                return context
            event["requestContext"]["authorizer"] = {"lambda": context}
        return self._invoke(event)

    def _within_integration_timeout(self, event: dict) -> tuple[str, bool] | None:
        """The function's (payload, errored), or None when it did not answer in time; as on AWS, an
        invocation API Gateway stopped waiting for runs to its end (a charge it makes stays made)."""
        answer: list = []
        worker = threading.Thread(target=lambda: answer.append(self.invoke(event)), daemon=True,
                                  name="front-integration")
        worker.start()
        worker.join(self.integration_timeout)
        return answer[0] if answer else None

    def _lambda_authorize(self, invoke, event: dict):
        """The Lambda authorizer's context, or API Gateway's answer when it denies (403) or fails (500).
        Its event is the request's, without the body, with `type: REQUEST` and the route's ARN."""
        context = event["requestContext"]
        request = {key: value for key, value in event.items() if key not in ("body", "isBase64Encoded")}
        request.update(type="REQUEST", identitySource=[],
                       routeArn=f"arn:aws:execute-api:us-east-1:{context['accountId']}:{context['apiId']}/"
                                f"{context['stage']}/{context['http']['method']}{context['http']['path']}")
        payload, errored = invoke(request)
        try:
            decision = json.loads(payload or b"null")
        except json.JSONDecodeError:
            decision = None
        if errored or not isinstance(decision, dict) or not isinstance(decision.get("isAuthorized"), bool):
            log.error("the authorizer failed: %s", str(payload)[:2000])
            return _json(500, {"message": "Internal Server Error"})
        if not decision["isAuthorized"]:
            return _json(403, {"message": "Forbidden"})
        return decision.get("context") or {}

    def _event(self, method, path, query, header_map, body, source_ip, route, path_parameters, claims) -> dict:
        from local.apigw import http_event

        # API Gateway joins repeated query parameters with commas.
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        cookies = header_map.pop("cookie", None)
        event = http_event(
            method, path, route_key=route.route_key, path_parameters=path_parameters or None,
            query=params or None, headers=header_map, body=body if body else None,
            claims=claims, source_ip=source_ip,
        )
        event["rawQueryString"] = query
        if cookies:
            event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
        return event

    def _invoke(self, event: dict):
        answered = self._within_integration_timeout(event)
        if answered is None:
            log.warning("%s gave no answer within the integration timeout (%.0f s): 503", self.function_name,
                        self.integration_timeout)
            return _json(503, {"message": "Service Unavailable"})
        payload, errored = answered
        if errored:
            log.error("%s failed: %s", self.function_name, payload[:2000])
            return _json(500, {"message": "Internal Server Error"})
        try:
            result = json.loads(payload or b"null")
        except json.JSONDecodeError:
            return _json(500, {"message": "Internal Server Error"})
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload 2.0 without statusCode: API Gateway answers 200 with the result as JSON.
            return 200, [("content-type", "application/json")], json.dumps(result).encode()
        status = int(result["statusCode"])
        out_headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers += [(name, str(v)) for v in values]
        for cookie in result.get("cookies") or []:
            out_headers.append(("set-cookie", cookie))
        raw = result.get("body")
        if raw is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(raw)
        else:
            data = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode()
        if not any(k.lower() == "content-type" for k, _ in out_headers) and data:
            out_headers.append(("content-type", "application/json"))
        return status, out_headers, data

    # ------------------------------------------------------------------ serving
    def wsgi(self, environ, start_response):
        """The WSGI application werkzeug's server calls (one thread per connection)."""
        status, headers, data = self._wsgi_answer(environ)
        headers = [(name, value) for name, value in headers if name.lower() not in ("content-length", *_HOP_BY_HOP)]
        headers += [("Content-Length", str(len(data))), ("apigw-requestid", "local")]
        start_response(f"{status} {HTTPStatus(status).phrase if status in _PHRASES else ''}".rstrip(), headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else data]

    def _wsgi_answer(self, environ) -> tuple[int, list[tuple[str, str]], bytes]:
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared and not declared.isdigit():
            return _json(400, {"message": "Bad Request"})
        if int(declared or 0) > MAX_PAYLOAD:
            return _json(413, {"message": "Request Entity Too Large"})
        stream = environ["wsgi.input"]
        if declared:
            body = stream.read(int(declared))
        elif environ.get("wsgi.input_terminated"):  # chunked
            body = stream.read(MAX_PAYLOAD + 1)
            if len(body) > MAX_PAYLOAD:
                return _json(413, {"message": "Request Entity Too Large"})
        else:
            body = b""
        raw_path = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
        try:
            return self.handle(environ["REQUEST_METHOD"], raw_path, list(EnvironHeaders(environ).items()),
                               body, environ.get("REMOTE_ADDR", "127.0.0.1"))
        except Exception:  # the front itself failed: API Gateway's 500
            log.exception("front error on %s %s", environ["REQUEST_METHOD"], raw_path)
            return _json(500, {"message": "Internal Server Error"})

    def bind(self, host: str, port: int):
        self.server = make_server(host, port, self.wsgi, threaded=True, request_handler=_RequestHandler)
        self.server.daemon_threads = True
        return self.server

    def start(self) -> None:
        assert self.server is not None, "bind() first"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="api-front", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server is not None:
            if self._thread is not None:
                self.server.shutdown()
                self._thread.join(timeout=5)
            self.server.server_close()


MAX_PAYLOAD = 10 * 1024 * 1024  # HTTP API's payload quota
_PHRASES = {s.value for s in HTTPStatus}


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler with API Gateway's JSON answers where the HTTP layer itself refuses a
    request (malformed request line or headers, header too large, a folded header), and our access log."""

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if _folded(self.headers):
            self.send_error(400, "obsolete line folding (obs-fold) in a header field")
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unparsable request line left "HTTP/0.9": no status line
        body = json.dumps({"message": HTTPStatus(code).phrase if code in _PHRASES else "Bad Request"}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def log_request(self, code="-", size="-"):
        if getattr(self, "path", "") != "/health":
            log.info('%s "%s" %s', self.address_string(), getattr(self, "requestline", ""), code)

    def log_error(self, format, *args):  # BaseHTTPRequestHandler's signature
        log.info("%s %s", self.address_string(), format % args)


def _folded(headers) -> bool:
    """A header line that starts with a space or tab (obs-fold, RFC 9112 section 5.2), also before the
    first field (section 2.2). http.client joins a fold into the value before it ("one\\r\\n two"), and
    reports a leading one as a defect of the message."""
    return any("\r" in value or "\n" in value for value in headers.values()) or any(
        isinstance(defect, FirstHeaderLineIsContinuationDefect) for defect in getattr(headers, "defects", ()))


def _json(status: int, body: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps(body).encode()


def routes_from_template(template: dict, function_logical_id: str = "ApiFunction") -> list[Route]:
    from local import cfn

    authorizers = cfn.http_route_authorizers(template, function_logical_id)
    return [compile_route(m, p, a, authorizers.get((m, p)))
            for m, p, a in cfn.http_routes(template, function_logical_id)]


def cors_from_template(template: dict, resolver, function_logical_id: str = "ApiFunction") -> Cors | None:
    """The CorsConfiguration of the HttpApi the function's events attach to (resolved)."""
    resources = template.get("Resources") or {}
    events = ((resources[function_logical_id].get("Properties") or {}).get("Events")) or {}
    api_ids = {
        (e.get("Properties") or {}).get("ApiId", {}).get("Ref")
        for e in events.values() if e.get("Type") == "HttpApi" and isinstance((e.get("Properties") or {}).get("ApiId"), dict)
    }
    config = None
    for api_id in api_ids:
        if api_id and api_id in resources:
            config = (resources[api_id].get("Properties") or {}).get("CorsConfiguration")
    if config is None:
        config = ((template.get("Globals") or {}).get("HttpApi") or {}).get("CorsConfiguration")
    return Cors.from_config(resolver.resolve(config) if config else None)


def throttle_from_template(template: dict, resolver) -> StageThrottle | None:
    """The HttpApi's DefaultRouteSettings throttle (resolved with the deployment's parameters), or None."""
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        settings = resolver.resolve((resource.get("Properties") or {}).get("DefaultRouteSettings") or {})
        if "ThrottlingRateLimit" in settings and "ThrottlingBurstLimit" in settings:
            return StageThrottle(float(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"]))
    return None


def authorizer_config(template: dict, resolver) -> tuple[str, list[str]]:
    """(issuer, audiences) of the HttpApi's JWT authorizer, resolved with the deployment's parameters."""
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        authorizers = (((resource.get("Properties") or {}).get("Auth") or {}).get("Authorizers")) or {}
        for spec in authorizers.values():
            jwt_config = spec.get("JwtConfiguration")
            if jwt_config:
                resolved = resolver.resolve(jwt_config)
                audience = resolved.get("audience") or []
                return resolved.get("issuer"), audience if isinstance(audience, list) else [audience]
    raise ValueError("the template's HttpApi has no JWT authorizer")
