"""API Gateway HTTP API (payload format 2.0) events, as the deployed API builds them."""
from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import urlencode


def _claims_for_authorizer(claims: dict) -> dict:
    # HTTP API JWT authorizers hand claims to Lambda as strings; arrays become "[a b]".
    out = {}
    for key, value in claims.items():
        if isinstance(value, list):
            out[key] = "[" + " ".join(str(v) for v in value) + "]"
        else:
            out[key] = str(value)
    return out


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict | None = None,
    query: dict | None = None,
    headers: dict | None = None,
    body: bytes | str | dict | None = None,
    claims: dict | None = None,
    source_ip: str = "127.0.0.1",
) -> dict:
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, dict):
        body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    is_base64 = False
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if query:
        event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": _claims_for_authorizer(claims), "scopes": None}}
    return event
