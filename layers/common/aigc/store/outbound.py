"""Safe outbound HTTP to addresses users give us (webhooks, reference images): no SSRF.

Every new connection resolves its host once, refuses the connection unless every address is
public (not loopback, private, link-local - which includes the instance metadata address -,
unique-local, CGNAT, multicast or reserved), and then connects to exactly the address it
checked. Name resolution and connect are one step inside the urllib3 connection, so a DNS
answer that changes between a check and the request (DNS rebinding) cannot redirect us: there
is no second lookup. TLS still uses the URL's host name for SNI and certificate checks.
Redirects are re-checked the same way because every hop opens its own connection.

The local stack allows private addresses with its one local-only setting, ALLOW_PRIVATE_HOSTS.
"""
from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection

from aigc.core.config import get_settings
from aigc.core.netcheck import is_public_address

Resolver = Callable[..., list]


class BlockedAddress(ValueError):
    """The destination is not a public address. Not an OSError, so nothing retries it."""


def is_public(address: str) -> bool:
    """A resolved address (IPv6 zone ids dropped), by the same rule as submit's URL checks."""
    return is_public_address(ipaddress.ip_address(address.split("%", 1)[0]))


class AddressPolicy:
    """Which addresses we may connect to, and how names are resolved (a seam for tests)."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver | None = None):
        self.allow_private = allow_private
        self.resolver = resolver or socket.getaddrinfo

    def checked_address(self, host: str, port: int, timeout: float | None = None) -> str:
        """Resolve once (within `timeout` seconds when given); the one address to connect to, or BlockedAddress."""
        infos = self._resolve(host.strip("[]"), port, timeout)
        addresses = [info[4][0] for info in infos]
        if not addresses:
            raise BlockedAddress(f"{host} does not resolve")
        if not self.allow_private:
            for address in addresses:
                if not is_public(address):
                    raise BlockedAddress(f"{host} resolves to a non-public address")
        return addresses[0]


    def _resolve(self, host: str, port: int, timeout: float | None) -> list:
        """getaddrinfo has no timeout of its own: with one, it runs in a daemon thread we stop waiting
        for (the connect timeout then bounds name resolution too, e.g. a resolver that never answers)."""
        if timeout is None:
            return self.resolver(host, port, 0, socket.SOCK_STREAM)
        outcome: dict = {}

        def resolve():
            try:
                outcome["infos"] = self.resolver(host, port, 0, socket.SOCK_STREAM)
            except BaseException as error:  # handed to the caller below
                outcome["error"] = error

        worker = threading.Thread(target=resolve, name="outbound-resolve", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise TimeoutError(f"resolving {host} took longer than {timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["infos"]


class _CheckedConnection:
    """urllib3's _new_conn, connecting to the address the policy checked (not a second lookup)."""

    policy: AddressPolicy

    def _new_conn(self) -> socket.socket:
        try:
            timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
            address = self.policy.checked_address(self._dns_host, self.port, timeout)
            sock = connection.create_connection(
                (address, self.port), self.timeout, source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only where `policy` allows."""

    def __init__(self, policy: AddressPolicy, **kwargs):
        http = type("CheckedHTTPConnection", (_CheckedConnection, HTTPConnection), {"policy": policy})
        https = type("CheckedHTTPSConnection", (_CheckedConnection, HTTPSConnection), {"policy": policy})
        self._pool_classes = {
            "http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # a proxy would connect for us, unchecked
        raise BlockedAddress("outbound requests to user-given URLs never use a proxy")


def session(*, allow_private: bool | None = None, resolver: Resolver | None = None, max_retries=0) -> requests.Session:
    """A Session for user-given URLs. `allow_private` defaults to the ALLOW_PRIVATE_HOSTS setting."""
    if allow_private is None:
        allow_private = get_settings().allow_private_hosts
    adapter = CheckedAdapter(AddressPolicy(allow_private=allow_private, resolver=resolver), max_retries=max_retries)
    result = requests.Session()
    result.trust_env = False  # no proxies or .netrc from the environment
    result.mount("http://", adapter)
    result.mount("https://", adapter)
    return result
