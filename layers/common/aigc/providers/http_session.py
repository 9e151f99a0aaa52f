"""The HTTP session both adapters use: retries connection errors of idempotent GETs only."""
from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class _IdempotentConnectRetry(Retry):
    """Retry connection failures, but only for methods in ``allowed_methods`` (GET).

    urllib3 retries connect errors for every method; a POST that creates a paid task must not be
    replayed blindly, so for other methods we behave like requests' default (no retry).
    """

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if method is not None and self.allowed_methods and method.upper() not in self.allowed_methods:
            return Retry(0, read=False).increment(method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def connect_retry(retries: int = 3, redirects: int = 0) -> Retry:
    """Retry only connection errors of idempotent GETs, with backoff."""
    return _IdempotentConnectRetry(
        total=retries,
        connect=retries,
        read=0,
        status=0,
        other=0,
        redirect=redirects,
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.3,
        raise_on_status=False,
    )


def build_session(retries: int = 3, redirects: int = 0) -> requests.Session:
    """A Session that retries only connection errors of idempotent GETs, with backoff."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=connect_retry(retries, redirects))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
