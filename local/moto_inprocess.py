"""The stack's own DynamoDB and Step Functions calls go straight into the moto server's WSGI app.

Every handler in the stack reaches moto through `AWS_ENDPOINT_URL`, the moto server on localhost: each
call was an HTTP round trip inside one process (urllib3 and http.client on the caller's side, a server
thread and werkzeug's request parsing on the other). Measured with py-spy on 40 cancels, that transport
was about a quarter of the process's CPU. `install()` answers those requests from the same WSGI app
the server runs, in the calling thread: a botocore `before-send` handler (the hook moto's own mock
uses) turns the prepared request into a WSGI call and the app's answer into botocore's response, so
botocore still serialises, signs and parses as before, and moto sees the same request it would over
HTTP. Only DynamoDB and Step Functions requests to the stack's own endpoint go this way (small JSON
bodies); S3 keeps HTTP (streamed bodies, presigned URLs), and so does every other client.

local/seams.py registers what this reads (botocore's builtin handlers, the server's app).
"""
from __future__ import annotations

import functools
from typing import Callable
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
from moto.core.botocore_stubber import MockRawResponse
from werkzeug.test import EnvironBuilder, run_wsgi_app

SERVICES = ("dynamodb", "sfn")  # botocore service ids, as in the event name before-send.<id>.<operation>


_BACKEND_APPS: dict[str, object] = {}  # botocore service id -> moto's app for it (the dispatcher's choice, kept)


def _answer(app, endpoint: str, request, event_name: str = "", **_) -> AWSResponse | None:
    if not request.url.startswith(endpoint):
        return None
    url = urlsplit(request.url)
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    headers = [(name, value.decode() if isinstance(value, bytes) else value) for name, value in request.headers.items()]
    environ = EnvironBuilder(method=request.method, base_url=f"{url.scheme}://{url.netloc}", path=url.path or "/",
                             query_string=url.query, headers=headers, data=body or b"").get_environ()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    # The dispatcher finds the service's app from the request's signature on every call, under a global
    # lock; a service's app never changes, so it is found once.
    service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
    backend_app = _BACKEND_APPS.get(service)
    if backend_app is None:
        backend_app = app.get_application(environ)
        if service:
            _BACKEND_APPS[service] = backend_app
    app_iter, status, answer_headers = run_wsgi_app(backend_app, environ)
    try:
        content = b"".join(app_iter)
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()
    return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(answer_headers), MockRawResponse(content))


def install(app, endpoint: str) -> Callable[[], None]:
    """Answer the DynamoDB and Step Functions requests of botocore sessions created from now on (every
    handler's) from `app`; returns the undo (sessions created meanwhile keep the handler, which then
    answers nothing once `endpoint` is gone)."""
    handler = functools.partial(_answer, app, endpoint.rstrip("/"))
    entries = [(f"before-send.{service}", handler) for service in SERVICES]
    BUILTIN_HANDLERS.extend(entries)

    def uninstall() -> None:
        _BACKEND_APPS.clear()
        for entry in entries:
            if entry in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.remove(entry)

    return uninstall
