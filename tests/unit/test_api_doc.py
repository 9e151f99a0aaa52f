"""docs/api.md is what local/apidoc.py makes of the committed docs/openapi.json, so the reference
cannot drift from the contract (`make openapi` rewrites both), and it names every operation."""
from __future__ import annotations

import json

import pytest

from local import apidoc


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(apidoc.OPENAPI.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def api_md() -> str:
    return apidoc.API_MD.read_text(encoding="utf-8")


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method in apidoc.METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def test_committed_reference_is_the_generators_output(document, api_md):
    assert api_md == apidoc.render(document), "docs/api.md is stale: run `make openapi` and commit it"


def test_every_operation_appears_with_its_fields_and_answers(document, api_md):
    operations = list(_operations(document))
    assert len(operations) >= 10
    for method, path, operation in operations:
        heading = f"### `{method} {path}`"
        assert api_md.count(heading) == 1, heading
        section = api_md.split(heading, 1)[1].split("\n### ", 1)[0]
        assert f"(#{apidoc.github_anchor(heading.lstrip('# '))})" in api_md, f"{heading} is not in the index"
        if operation.get("summary"):
            assert operation["summary"] in section, heading
        for parameter in operation.get("parameters") or []:
            assert f"| `{parameter['name']}` | {parameter['in']} |" in section, (heading, parameter["name"])
        body = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
        if body:
            schema = document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[-1]]
            for field in schema["properties"]:
                assert f"| `{field}` |" in section, (heading, field)
        for status in operation["responses"]:
            assert f"\n| {status} | " in section, (heading, status)
        public = operation.get("security") == []
        assert ("Auth: none (public)." in section) == public, heading


def test_every_schema_appears(document, api_md):
    for name in document["components"]["schemas"]:
        assert api_md.count(f"### `{name}`") == 1, name


def test_types_and_constraints_are_told():
    document = {
        "openapi": "3.1.0", "info": {"title": "T", "version": "1"},
        "security": [{"bearerAuth": []}],
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Body": {
                "type": "object", "additionalProperties": False, "required": ["kind"],
                "properties": {
                    "kind": {"type": "string", "enum": ["a", "b"], "description": "which | one"},
                    "tags": {"anyOf": [{"type": "array", "items": {"type": "string", "maxLength": 5},
                                        "maxItems": 3}, {"type": "null"}]},
                    "n": {"type": "integer", "minimum": 1.0, "maximum": 4.0, "default": 1},
                    "code": {"type": "string", "pattern": "^(x|y)$"},
                }}}},
        "paths": {"/things/{id}": {
            "post": {"summary": "Make a thing", "tags": ["things"], "operationId": "make",
                     "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Body"}}}},
                     "responses": {"200": {"description": "ok"}, "429": {
                         "description": "slow down", "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                         "404": {"description": "no", "content": {
                         "application/json": {"example": {"code": 404, "message": "no such thing"}}}}}},
            "get": {"summary": "Read a thing", "security": [], "responses": {"200": {"description": "ok"}}}}},
    }
    text = apidoc.render(document)
    assert apidoc.render(document) == text  # deterministic
    assert text.index("### `GET /things/{id}`") < text.index("### `POST /things/{id}`")
    assert "| `kind` | string | yes | one of `a`, `b` | which \\| one |" in text
    assert "| `tags` | array of string or null | no | items <= 3, each length <= 5 |" in text
    assert "| `n` | integer | no | 1..4, default `1` |" in text
    assert "pattern `^(x\\|y)$`" in text
    assert "Other fields are refused." in text
    assert "**Request body** (`application/json`, required): [`Body`](#body)" in text
    assert "| 404 | no | `application/json` | `no such thing` |" in text
    assert "| 200 | ok | none |  |" in text
    assert "| 429 | slow down (headers: `Retry-After`) | none |  |" in text
    assert "Auth: none (public)." in text and "Auth: bearer JWT." in text
    assert "[`/things/{id}`](#post-thingsid)" in text


@pytest.mark.parametrize("heading, anchor", [
    ("Failures, retries and redrive", "failures-retries-and-redrive"),
    ("Outpainting parameters (seed 003)", "outpainting-parameters-seed-003"),
    ("`GET /user/ai/tasks/{taskNo}`", "get-useraitaskstaskno"),
    ("[The API](x.md) `TaskView`", "the-api-taskview"),
])
def test_github_anchor(heading, anchor):
    assert apidoc.github_anchor(heading) == anchor
