"""The local API Gateway's HTTP layer: bursts of connections, and malformed requests answered
with API Gateway's JSON, never a dropped connection or an HTML page."""
from __future__ import annotations

import json
import socket
import threading

import pytest
import requests


def _raw(stack, request: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_a_burst_of_100_connections_is_accepted(stack):
    sockets = [socket.create_connection(("127.0.0.1", stack.port), timeout=30) for _ in range(100)]
    answers: list[bytes] = [b""] * len(sockets)

    def exchange(i: int, sock: socket.socket) -> None:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while chunk := sock.recv(65536):
            answers[i] += chunk

    threads = [threading.Thread(target=exchange, args=(i, s)) for i, s in enumerate(sockets)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for sock in sockets:
            sock.close()
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 100


@pytest.mark.parametrize("request_bytes, status, message", [
    (b"POST /user/ai/tasks/submit HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400, "Bad Request"),
    (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 404, "Not Found"),
    (b"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n", 404, "Not Found"),
    (b"GARBAGE\r\n\r\n", 400, "Bad Request"),
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505, "HTTP Version Not Supported"),
    # obs-fold (RFC 9112 section 5.2): a header line that starts with a space or tab continues the one
    # before it; a server must refuse it (or unfold it). Without the fold, /health would be a 200.
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: one\r\n two\r\n\r\n", 400, "Bad Request"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Note: one\r\n\ttwo\r\n\r\n", 400, "Bad Request"),
    (b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n", 400, "Bad Request"),  # whitespace before the first field
])
def test_malformed_requests_get_api_gateway_json(stack, request_bytes, status, message):
    code, headers, body = _raw(stack, request_bytes)
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": message}


def test_a_payload_over_10_mb_is_413(stack):
    response = requests.post(f"{stack.url}/user/ai/tasks/submit", data=b"x" * (10 * 1024 * 1024 + 1),
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


def test_the_stage_throttle_answers_429_as_api_gateway_does_past_its_burst(log_dir):
    """The template's stage throttle, with the deployment's parameters, over real HTTP: a burst passes, then
    API Gateway's own 429 (its body, no Retry-After: HTTP APIs cannot add one) before any function runs."""
    from tests.e2e.conftest import start_stack

    throttled = start_stack(log_dir, "--param", "ApiThrottleRateLimit=1", "--param", "ApiThrottleBurstLimit=3",
                            name="throttle")
    try:
        answers = [requests.get(f"{throttled.url}/models", timeout=10) for _ in range(6)]
    finally:
        throttled.stop()
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] and statuses.count(429) >= 2, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json() == {"message": "Too Many Requests"} and "Retry-After" not in refused.headers
