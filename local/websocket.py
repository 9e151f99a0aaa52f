"""The local API Gateway WebSocket API: `ws://127.0.0.1:8082/` (`--ws-port`) and its Management API.

What the template declares (`AWS::ApiGatewayV2::Api` with `ProtocolType: WEBSOCKET`, its routes and
their Lambda proxy integrations) is served as API Gateway serves it, with the websockets library:

- the opening handshake invokes the `$connect` route's function with API Gateway's event
  (`requestContext.routeKey/eventType/connectionId`, headers, `queryStringParameters`); an answer
  other than 2xx (or a function error) refuses the handshake with that status (500 for an error);
- each message from the browser invokes `$default` (its `body`); when the route has a route
  response, the function's `body` goes back to the socket;
- a closed socket invokes `$disconnect` (`disconnectStatusCode`, `disconnectReason`).

The Management API (`POST|GET|DELETE /@connections/{connectionId}`, the wire protocol boto3's
`apigatewaymanagementapi` client speaks) listens on its own port on 127.0.0.1 (`management_url`;
the stack gives it to the functions as WEBSOCKET_MANAGEMENT_URL). A POST only queues the message
on that connection: each connection has its own writer, so a browser that stops reading holds up
nobody else; when MAX_PENDING messages wait unsent, the connection is closed and reported gone
(410 `GoneException`), as for any closed or unknown connection.

Not emulated: the 10-minute idle timeout and the 2-hour connection limit, frames over 32 KB, and
API Gateway's own throttling.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from local import cfn

log = logging.getLogger("local.websocket")

MAX_PENDING = 100  # messages queued on one connection before it is closed as not reading
MAX_POST_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
STAGE = "live"

# (route key, event) -> (the function's answer, errored)
Invoke = Callable[[str, dict], tuple[str, bool]]


@dataclass
class WebSocketRoutes:
    """The template's WebSocket API: route key -> function logical id, and routes with a route response."""

    functions: dict[str, str] = field(default_factory=dict)
    responding: set[str] = field(default_factory=set)


def _names(value, found: set[str]) -> set[str]:
    """Logical ids named by Ref / GetAtt / Sub inside a template value (`X.Alias` -> X)."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg.split(".")[0])
            elif key == "Fn::GetAtt":
                found.add((arg[0] if isinstance(arg, list) else str(arg).split(".")[0]))
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if not isinstance(arg, str):
                    _names(arg[1], found)
            else:
                _names(arg, found)
    elif isinstance(value, list):
        for item in value:
            _names(item, found)
    return found


def routes_from_template(template: dict) -> WebSocketRoutes:
    apis = {logical for logical, r in cfn.resources_of_type(template, "AWS::ApiGatewayV2::Api").items()
            if (r.get("Properties") or {}).get("ProtocolType") == "WEBSOCKET"}
    functions = set(cfn.functions(template))
    integrations = {}
    for logical, resource in cfn.resources_of_type(template, "AWS::ApiGatewayV2::Integration").items():
        props = resource.get("Properties") or {}
        if _names(props.get("ApiId"), set()) & apis:
            targets = _names(props.get("IntegrationUri"), set()) & functions
            if targets:
                integrations[logical] = targets.pop()
    routes = WebSocketRoutes()
    route_keys = {}
    for logical, resource in cfn.resources_of_type(template, "AWS::ApiGatewayV2::Route").items():
        props = resource.get("Properties") or {}
        if not _names(props.get("ApiId"), set()) & apis:
            continue
        target = _names(props.get("Target"), set()) & set(integrations)
        if target:
            routes.functions[props["RouteKey"]] = integrations[target.pop()]
            route_keys[logical] = props["RouteKey"]
    for resource in cfn.resources_of_type(template, "AWS::ApiGatewayV2::RouteResponse").values():
        route = _names((resource.get("Properties") or {}).get("RouteId"), set()) & set(route_keys)
        if route:
            routes.responding.add(route_keys[route.pop()])
    return routes


def new_connection_id() -> str:
    """API Gateway's form: 12 characters of base64 ending in '=' (URL-safe here)."""
    return base64.urlsafe_b64encode(os.urandom(10)).decode()[:-2] + "Q="


@dataclass
class _Connection:
    connection_id: str
    socket: ServerConnection
    pending: asyncio.Queue
    connected_at: float
    source_ip: str
    user_agent: str
    last_active_at: float = 0.0
    closing: bool = False


class WebSocketFront:
    """The WebSocket API on `port` and its Management API on `management_url`, on one asyncio loop."""

    def __init__(self, host: str, port: int, routes: WebSocketRoutes, invoke: Invoke | None = None,
                 *, management_port: int = 0):
        self.host, self.port, self.routes, self.invoke = host, port, routes, invoke
        self.connections: dict[str, _Connection] = {}
        self._ids: dict[int, tuple[str, dict]] = {}  # handshake (id of its connection) -> (connectionId, event)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="ws-invoke")
        front = self
        self._management = ThreadingHTTPServer((host, management_port), _management_handler(front))
        self._management.daemon_threads = True
        self.management_url = f"http://{host}:{self._management.server_port}"

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "WebSocketFront":
        self._thread = threading.Thread(target=self._run, name="websocket-front", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the WebSocket API did not start on {self.host}:{self.port}")
        threading.Thread(target=self._management.serve_forever, name="websocket-management", daemon=True).start()
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.set_default_executor(self._executor)

        async def main():
            self._server = await serve(self._handle, self.host, self.port, process_request=self._connect,
                                       compression=None, ping_interval=None, close_timeout=2, max_size=MAX_POST_BYTES,
                                       server_header=None)
            self._ready.set()
            await self._server.wait_closed()

        try:
            loop.run_until_complete(main())
        except Exception:
            log.exception("the WebSocket API stopped")
        finally:
            self._ready.set()

    def stop(self) -> None:
        self._management.shutdown()
        self._management.server_close()
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(timeout=3)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ events
    def _context(self, route: str, event_type: str, connection_id: str, **extra) -> dict:
        now = time.time()
        return {
            "routeKey": route, "eventType": event_type, "connectionId": connection_id,
            "messageDirection": "IN", "stage": STAGE, "apiId": "local", "domainName": f"{self.host}:{self.port}",
            "requestId": str(uuid.uuid4()), "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), **extra,
        }

    async def _call(self, route: str, event: dict) -> tuple[dict | None, bool]:
        """Invoke the route's function (off the loop); (its proxy answer, errored)."""
        if self.invoke is None or route not in self.routes.functions:
            return None, route not in self.routes.functions
        payload, errored = await asyncio.get_running_loop().run_in_executor(None, self.invoke, route, event)
        if errored:
            log.warning("%s failed: %s", route, (payload or "")[:500])
            return None, True
        try:
            answer = json.loads(payload or "null")
        except ValueError:
            answer = None
        return (answer if isinstance(answer, dict) else {}), False

    async def _connect(self, connection: ServerConnection, request):
        """$connect: refuse the handshake unless the function answers 2xx."""
        connection_id = new_connection_id()
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {name: value for name, value in request.headers.raw_items()}
        source_ip = (connection.remote_address or ("127.0.0.1",))[0]
        identity = {"sourceIp": source_ip, "userAgent": request.headers.get("User-Agent", "")}
        event = {
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": self._context("$connect", "CONNECT", connection_id,
                                            connectedAt=int(time.time() * 1000), identity=identity),
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        answer, errored = await self._call("$connect", event)
        status = 500 if errored else int((answer or {}).get("statusCode") or 200)
        if not 200 <= status < 300:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            return connection.respond(status, json.dumps({"message": phrase}))
        self._ids[id(connection)] = (connection_id, identity)
        return None

    async def _handle(self, socket: ServerConnection) -> None:
        connection_id, identity = self._ids.pop(id(socket))
        connection = _Connection(connection_id, socket, asyncio.Queue(), time.time(), identity["sourceIp"],
                                 identity["userAgent"], time.time())
        self.connections[connection_id] = connection
        writer = asyncio.create_task(self._write(connection))
        try:
            async for frame in socket:
                connection.last_active_at = time.time()
                body = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                event = {"requestContext": self._context("$default", "MESSAGE", connection_id,
                                                         messageId=str(uuid.uuid4()), identity=identity),
                         "body": body, "isBase64Encoded": False}
                answer, errored = await self._call("$default", event)
                if errored:
                    self._queue(connection, json.dumps({"message": "Internal server error",
                                                        "connectionId": connection_id}))
                elif "$default" in self.routes.responding and (answer or {}).get("body") is not None:
                    self._queue(connection, answer["body"])
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(connection_id, None)
            writer.cancel()
            event = {"headers": {}, "requestContext": self._context(
                "$disconnect", "DISCONNECT", connection_id, identity=identity,
                disconnectStatusCode=socket.close_code or 1006, disconnectReason=socket.close_reason or ""),
                "isBase64Encoded": False}
            await self._call("$disconnect", event)

    async def _write(self, connection: _Connection) -> None:
        try:
            while True:
                data = await connection.pending.get()
                await connection.socket.send(data)
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def _queue(self, connection: _Connection, data: str | bytes) -> bool:
        """On the loop: queue one message; False (and the connection closed) when it is not reading."""
        if connection.closing:
            return False
        if connection.pending.qsize() >= MAX_PENDING:
            connection.closing = True
            self.connections.pop(connection.connection_id, None)
            log.warning("connection %s stopped reading (%d messages unsent): closed", connection.connection_id,
                        connection.pending.qsize())
            asyncio.ensure_future(connection.socket.close(1008, "not reading"))
            return False
        connection.pending.put_nowait(data)
        return True

    # ------------------------------------------------------------------ Management API (any thread)
    def _on_loop(self, function, *args):
        future = asyncio.run_coroutine_threadsafe(_call_soon(function, *args), self._loop)
        return future.result(timeout=5)

    def post(self, connection_id: str, data: bytes) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None or self._loop is None:
            return False
        try:
            text: str | bytes = data.decode("utf-8")  # API Gateway sends text frames
        except UnicodeDecodeError:
            text = data
        return self._on_loop(self._queue, connection, text)

    def close(self, connection_id: str) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None or self._loop is None:
            return False
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(connection.socket.close(1000, "")))
        return True


async def _call_soon(function, *args):
    return function(*args)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _management_handler(front: WebSocketFront):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: the function logs what matters
            pass

        def _answer(self, status: int, body: dict | None = None, error: str | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _connection_id(self) -> str | None:
            match = re.fullmatch(r"(?:/[^/]+)?/@connections/([^/?]+)", urlsplit(self.path).path)
            return unquote(match.group(1)) if match else None

        def _gone(self) -> None:
            self._answer(410, {"message": "Gone"}, "GoneException")

        def do_POST(self):  # PostToConnection
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            connection_id = self._connection_id()
            if connection_id is None:
                return self._answer(404, {"message": "Not Found"})
            if length > MAX_POST_BYTES:
                return self._answer(413, {"message": "Payload too large"}, "PayloadTooLargeException")
            return self._answer(200) if front.post(connection_id, data) else self._gone()

        def do_GET(self):  # GetConnection
            connection = front.connections.get(self._connection_id() or "")
            if connection is None:
                return self._gone()
            return self._answer(200, {"connectedAt": _iso(connection.connected_at),
                                      "identity": {"sourceIp": connection.source_ip,
                                                   "userAgent": connection.user_agent},
                                      "lastActiveAt": _iso(connection.last_active_at)})

        def do_DELETE(self):  # DeleteConnection
            return self._answer(204) if front.close(self._connection_id() or "") else self._gone()

    return Handler
