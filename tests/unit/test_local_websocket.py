"""local/websocket.py: the local WebSocket API and its Management API, driven by real clients (the
websockets library, boto3's apigatewaymanagementapi, a raw socket that stops reading), with a fake
function behind the routes."""
from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local import websocket
from local.websocket import WebSocketFront, WebSocketRoutes


class FakeFunction:
    """$connect: 200 for ?token=good, else 401; $default: echoes the body in a route response."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.disconnected = threading.Event()

    def __call__(self, route: str, event: dict) -> tuple[str, bool]:
        self.events.append((route, event))
        if route == "$connect":
            good = (event.get("queryStringParameters") or {}).get("token") == "good"
            return json.dumps({"statusCode": 200 if good else 401}), False
        if route == "$disconnect":
            self.disconnected.set()
            return json.dumps({"statusCode": 200}), False
        return json.dumps({"statusCode": 200, "body": json.dumps({"echo": event["body"]})}), False


@pytest.fixture
def front():
    function = FakeFunction()
    routes = WebSocketRoutes({"$connect": "F", "$disconnect": "F", "$default": "F"}, {"$default"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = WebSocketFront("127.0.0.1", port, routes, function).start()
    server.function = function
    yield server
    server.stop()


def _management(front):
    return boto3.client("apigatewaymanagementapi", endpoint_url=front.management_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"max_attempts": 1}))


def _connection_id(front, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while not front.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return next(iter(front.connections))


def test_connect_is_refused_unless_the_function_answers_2xx(front) -> None:
    for url in (front.url, front.url + "?token=bad"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=5).close()
        assert refused.value.response.status_code == 401
    assert front.connections == {}
    route, event = front.function.events[-1]
    assert route == "$connect" and event["requestContext"]["eventType"] == "CONNECT"
    assert event["queryStringParameters"] == {"token": "bad"}


def test_messages_routes_and_the_management_api(front) -> None:
    management = _management(front)
    with connect(front.url + "?token=good", open_timeout=5) as client:
        connection_id = _connection_id(front)
        client.send('{"action":"ping"}')
        assert json.loads(client.recv(timeout=5)) == {"echo": '{"action":"ping"}'}  # the route response
        management.post_to_connection(ConnectionId=connection_id, Data=b'{"type":"task.updated"}')
        assert client.recv(timeout=5) == '{"type":"task.updated"}'  # a text frame, as API Gateway sends
        info = management.get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        management.delete_connection(ConnectionId=connection_id)
        assert front.function.disconnected.wait(5)
    (_, disconnect), = [e for e in front.function.events if e[0] == "$disconnect"]
    assert disconnect["requestContext"]["connectionId"] == connection_id
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="never-existed=", Data=b"x")


def _stalled_client(front) -> socket.socket:
    """A browser tab that opened the socket and then stopped reading (a tiny receive buffer)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", front.port))
    raw.sendall(b"GET /?token=good HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return raw


def test_a_socket_that_stops_reading_holds_up_nobody_and_is_closed_as_gone(front, monkeypatch) -> None:
    monkeypatch.setattr(websocket, "MAX_PENDING", 20)
    management = _management(front)
    stalled = _stalled_client(front)
    stalled_id = _connection_id(front)
    try:
        with connect(front.url + "?token=good", open_timeout=5) as reader:
            deadline = time.monotonic() + 5
            while len(front.connections) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            (reader_id,) = set(front.connections) - {stalled_id}
            big = b"x" * (120 * 1024)
            gone_after = None
            for n in range(400):  # 48 MB at most: far more than the two sockets' buffers hold
                started = time.monotonic()
                try:
                    management.post_to_connection(ConnectionId=stalled_id, Data=big)
                except management.exceptions.GoneException:
                    gone_after = n
                    break
                assert time.monotonic() - started < 1.0, "a post waited for the stalled socket"
                if n % 10 == 0:  # the other socket is served all along
                    management.post_to_connection(ConnectionId=reader_id, Data=f'{{"n":{n}}}'.encode())
                    assert json.loads(reader.recv(timeout=2)) == {"n": n}
            assert gone_after is not None, "the stalled socket was never reported gone"
            management.post_to_connection(ConnectionId=reader_id, Data=b'{"after":true}')
            assert json.loads(reader.recv(timeout=2)) == {"after": True}
    finally:
        stalled.close()
