"""aigc.store.outbound against real sockets: a local HTTP server, and fake DNS answers for rebinding."""
from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from aigc.store import outbound

PUBLIC = "93.184.216.34"  # a global address; nothing here can reach it


class _Server:
    def __init__(self):
        self.requests: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.command, self.path, self.headers.get("Host")))
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://internal.test:{self.server.server_port}/secret")
                    self.end_headers()
                    return
                body = b"hello"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


def _answers(*addresses):
    """A fake resolver: each lookup of a name returns the next address (the last one repeats);
    an address literal resolves to itself, as with the real getaddrinfo."""
    calls = []

    def resolve(host, port, family=0, type=0, *args):
        try:
            ipaddress.ip_address(host)
            address = host
        except ValueError:
            address = addresses[min(len(calls), len(addresses) - 1)]
            calls.append(host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "::1", "fd00:ec2::254", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1",
    "64:ff9b::7f00:1", "2002:7f00:1::1",  # NAT64 and 6to4 wrappings of 127.0.0.1
])
def test_non_public_addresses_are_refused(address):
    assert not outbound.is_public(address)
    with pytest.raises(outbound.BlockedAddress):
        outbound.AddressPolicy(resolver=_answers(address)).checked_address("example.test", 443)


def test_public_addresses_pass():
    for address in (PUBLIC, "8.8.8.8", "2606:4700:4700::1111"):
        assert outbound.is_public(address)


def test_a_name_with_any_private_answer_is_refused():
    def resolve(host, port, *args):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with pytest.raises(outbound.BlockedAddress):
        outbound.AddressPolicy(resolver=resolve).checked_address("mixed.test", 80)


def test_loopback_server_is_not_contacted_without_the_local_setting(server):
    session = outbound.session(allow_private=False)
    with pytest.raises(outbound.BlockedAddress):
        session.get(f"http://127.0.0.1:{server.port}/x", timeout=2)
    with pytest.raises(outbound.BlockedAddress):
        session.get(f"http://localhost:{server.port}/x", timeout=2)
    assert server.requests == []


def test_the_local_setting_allows_loopback_and_keeps_the_host_header(server):
    session = outbound.session(allow_private=True, resolver=_answers("127.0.0.1"))
    response = session.get(f"http://hooks.example.test:{server.port}/ok", timeout=2)
    assert response.status_code == 200 and response.text == "hello"
    assert server.requests == [("GET", "/ok", f"hooks.example.test:{server.port}")]


def test_dns_rebinding_cannot_reach_the_checked_out_address(server, monkeypatch):
    """The first answer is public, every later one is 127.0.0.1 (a rebinding attacker), for our
    policy and for any other lookup in the process. A check followed by a normal request would
    resolve twice and land on the local server; we resolve once per connection and connect to the
    address that was checked."""
    resolver = _answers(PUBLIC, "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    session = outbound.session(allow_private=False)
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://rebind.test:{server.port}/secret", timeout=(0.5, 0.5))
    assert resolver.calls == ["rebind.test"]
    assert server.requests == []


def test_every_redirect_hop_is_checked(server):
    """A public first hop that redirects to an internal name is stopped at the second connection."""
    resolver = {"public.test": "127.0.0.1", "internal.test": "127.0.0.1"}
    allowed = {"public.test"}

    class Policy(outbound.AddressPolicy):  # public.test counts as public for this test, internal.test not
        def checked_address(self, host, port, timeout=None):
            if host not in allowed:
                raise outbound.BlockedAddress(f"{host} resolves to a non-public address")
            return resolver[host]

    session = requests.Session()
    session.trust_env = False
    adapter = outbound.CheckedAdapter(Policy())
    session.mount("http://", adapter)
    with pytest.raises(outbound.BlockedAddress):
        session.get(f"http://public.test:{server.port}/redirect", timeout=2)
    assert [path for _, path, _ in server.requests] == ["/redirect"]


def test_proxies_from_the_environment_are_ignored(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    session = outbound.session(allow_private=False)
    with pytest.raises(outbound.BlockedAddress):
        session.get(f"http://127.0.0.1:{server.port}/via-proxy", timeout=2)
    assert server.requests == []
