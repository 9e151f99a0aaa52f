"""The published contract: docs/openapi.json is what the code generates, a valid OpenAPI 3 document,
with every route of the template, request bodies, the bearer scheme and our error envelopes."""
from __future__ import annotations

import json

import pytest
from aigc.api import contract
from openapi_spec_validator import validate

from local.cfn import http_routes, load_template
from local.openapi import COMMITTED, ROOT, api_document

SERVED_OUTSIDE_THE_DOCUMENT = {("GET", "/openapi.json"), ("GET", "/docs")}


@pytest.fixture(scope="module")
def document() -> dict:
    return api_document()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def test_committed_copy_matches_the_code(document):
    assert COMMITTED.read_text(encoding="utf-8") == contract.dumps(document), (
        "docs/openapi.json is stale: run `make openapi` and commit it")


def test_is_a_valid_openapi_3_document(document):
    validate(document)
    assert document["openapi"].startswith("3.")


def test_every_template_route_is_documented_with_its_auth(document):
    template = load_template(ROOT / "template.yaml")
    routes = {(method, path): authorized for method, path, authorized in http_routes(template, "ApiFunction")}
    documented = {(method, path): operation for method, path, operation in _operations(document)}
    assert set(routes) == set(documented) | SERVED_OUTSIDE_THE_DOCUMENT
    assert all(not routes[route] for route in SERVED_OUTSIDE_THE_DOCUMENT), "the contract must be readable without a token"
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"]}
    for route, operation in documented.items():
        public = operation.get("security") == []
        assert public == (not routes[route]), route


def test_api_key_routes_name_their_scope_and_both_schemes(document):
    """Routes an API key may call say which scope it needs (`x-api-key-scope`) and take the bearer or the
    X-API-Key scheme; the others take the bearer (a JWT) only, or nothing (public)."""
    assert document["components"]["securitySchemes"]["apiKeyAuth"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["apiKeyAuth"]["description"]}
    scopes = {}
    for method, path, operation in _operations(document):
        scope = operation.get("x-api-key-scope")
        if scope is None:
            assert operation.get("security") in (None, []), (method, path)
            continue
        scopes[(method, path)] = scope
        assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], (method, path)
    assert scopes[("POST", "/user/ai/tasks/submit")] == "tasks:write"
    assert scopes[("GET", "/user/ai/tasks/list")] == "tasks:read"
    assert scopes[("GET", "/user/points/consumption/records")] == "points:read"
    assert set(scopes.values()) == {"tasks:write", "tasks:read", "points:read"}
    assert not [route for route in scopes if "api-keys" in route[1] or route[1].startswith(("/admin", "/user/web"))]


def test_answers_are_the_envelope_never_422(document):
    schemas = document["components"]["schemas"]
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        assert {"200", "500"} <= set(responses), (method, path)
        ok = responses["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert {"code", "message", "data"} <= set(schemas[ok]["properties"]), (method, path)
        for status, answer in responses.items():
            if status == "200":
                continue
            media = answer["content"]["application/json"]
            assert media["example"]["code"] == int(status) and media["example"]["message"], (method, path, status)
            assert "ErrorResponse" in json.dumps(media["schema"]), (method, path, status)
        if operation.get("security") != []:
            assert {"401", "403"} <= set(responses), (method, path)


def test_request_bodies_are_typed_and_strict(document):
    schemas = document["components"]["schemas"]
    bodies = {(m, p): op["requestBody"] for m, p, op in _operations(document) if "requestBody" in op}
    assert set(bodies) == {("POST", "/user/ai/tasks/submit"), ("POST", "/user/uploads"), ("POST", "/admin/points/grant"),
                           ("POST", "/admin/tasks/{taskNo}/refund"), ("POST", "/user/api-keys"),
                           ("POST", "/user/points/checkout"), ("POST", "/user/ai/tasks/quote")}
    assert bodies[("POST", "/user/ai/tasks/quote")] == bodies[("POST", "/user/ai/tasks/submit")]  # the same body
    submit = schemas[bodies[("POST", "/user/ai/tasks/submit")]["content"]["application/json"]["schema"]["$ref"]
                     .rsplit("/", 1)[-1]]
    # exactly one of modelName and templateCode: a rule of the code (400), so neither is required here
    assert "required" not in submit and submit["additionalProperties"] is False
    assert {"modelName", "templateCode", "templateVersion", "inputs"} <= set(submit["properties"])
    assert submit["examples"], "the submit body has examples"
    header = [p for p in document["paths"]["/user/ai/tasks/submit"]["post"]["parameters"] if p["in"] == "header"]
    assert [p["name"].lower() for p in header] == ["idempotency-key", "accept-language"]


def test_only_a_bracketed_groups_claim_is_a_list_of_groups() -> None:
    """HTTP API passes array claims as "[a b]"; any other string is one group, never split into several."""
    from aigc.api.http import _groups

    assert _groups("[admins editors]") == {"admins", "editors"}
    assert _groups('["admins","editors"]') == {"admins", "editors"}
    assert _groups(["admins"]) == {"admins"}
    assert _groups("foo admins") == {"foo admins"}
    assert "admins" not in _groups("foo admins") and _groups("") == frozenset()
