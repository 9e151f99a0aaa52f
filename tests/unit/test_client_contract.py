"""The Python client (clients/python) against the API's published contract, docs/openapi.json.

Schemas are found through the routes the client calls (not by component name), so a renamed
component does not matter but a changed answer does. Fails when:
- a route the client calls is not in the document;
- a property the document requires is missing from the client's model, or its type is one the
  client's model would not accept (e.g. the document allows null where the client does not);
- the client's model requires a field the document does not promise;
- the client sends a body field or query parameter the document does not define.
"""
from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from pathlib import Path

import pytest
from aigc_client.models import ApiKey, Balance, LedgerEntry, ModelInfo, Order, Pack, Task, Upload
from pydantic import BaseModel, Field

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
ALL_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})

# (method, path, the client's model of `data`; a list means `data` is an array of it)
ANSWERS = [
    ("post", "/user/ai/tasks/submit", Task),
    ("get", "/user/ai/tasks/{taskNo}", Task),
    ("post", "/user/ai/tasks/{taskNo}/cancel", Task),
    ("post", "/user/ai/tasks/{taskNo}/retry", Task),
    ("get", "/user/points/consumption/balance", Balance),
    ("get", "/models", [ModelInfo]),
    ("post", "/user/uploads", Upload),
    ("post", "/user/api-keys", ApiKey),
    ("get", "/user/api-keys", [ApiKey]),
    ("delete", "/user/api-keys/{keyId}", ApiKey),
    ("get", "/points/packs", [Pack]),
    ("post", "/user/points/checkout", Order),
    ("get", "/user/points/orders/{orderNo}", Order),
]
PAGES = [("get", "/user/ai/tasks/list", Task), ("get", "/user/points/consumption/records", LedgerEntry),
         ("get", "/user/points/orders", Order)]
# What the client sends (client.py): body fields and query parameters.
BODIES = [("post", "/user/ai/tasks/submit", {"modelName", "prompt", "imageUrl", "parameters", "webhook",
                                             "webhookEventsFilter"}),
          ("post", "/user/uploads", {"fileName", "contentType", "parameters"}),
          ("post", "/user/api-keys", {"name", "scopes", "expiresInDays", "dailyPointsLimit", "models"}),
          ("post", "/user/points/checkout", {"packId", "successUrl", "cancelUrl"})]
QUERIES = [("get", "/user/ai/tasks/list", {"page", "size", "status", "taskType", "nextToken"}),
           ("get", "/user/points/consumption/records", {"page", "size", "nextToken"}),
           ("get", "/user/points/orders", {"page", "size", "nextToken"})]


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DOCUMENT.read_text())


def resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def json_types(schema: dict, document: dict) -> set[str]:
    """The JSON types a schema allows."""
    schema = resolve(schema, document)
    if "anyOf" in schema or "oneOf" in schema:
        return set().union(*(json_types(s, document) for s in schema.get("anyOf", schema.get("oneOf"))))
    if "type" in schema:
        return set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    if "enum" in schema:
        return {{str: "string", int: "integer", bool: "boolean", type(None): "null"}[type(v)] for v in schema["enum"]}
    return set(ALL_TYPES)


def accepted(annotation) -> set[str]:
    """The JSON types a field annotation of the client accepts."""
    if annotation is typing.Any:
        return set(ALL_TYPES)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(accepted(a) for a in typing.get_args(annotation)))
    if origin is typing.Literal:
        return {{str: "string", int: "integer", bool: "boolean"}[type(v)] for v in typing.get_args(annotation)}
    base = origin or annotation
    if base is type(None):
        return {"null"}
    if isinstance(base, type) and issubclass(base, BaseModel) or base is dict:
        return {"object"}
    return {str: {"string"}, datetime: {"string"}, int: {"integer"}, float: {"integer", "number"},
            bool: {"boolean"}, list: {"array"}}[base]


def data_schema(document: dict, method: str, path: str) -> dict:
    assert path in document["paths"] and method in document["paths"][path], f"{method.upper()} {path} not documented"
    response = document["paths"][path][method]["responses"]["200"]
    envelope = resolve(response["content"]["application/json"]["schema"], document)
    return resolve(envelope["properties"]["data"], document)


def check_model(model: type[BaseModel], schema: dict, document: dict) -> list[str]:
    problems = []
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    for name in required - fields.keys():
        problems.append(f"{model.__name__}: the document requires '{name}', the client has no such field")
    for name, field in fields.items():
        if name not in properties:
            if field.is_required():
                problems.append(f"{model.__name__}.{name}: required by the client, not in the document")
            continue
        if name not in required and field.is_required():
            problems.append(f"{model.__name__}.{name}: required by the client, optional in the document")
        allowed = json_types(properties[name], document)
        missing = allowed - accepted(field.annotation)
        if missing:
            problems.append(f"{model.__name__}.{name}: the document allows {sorted(allowed)}, "
                            f"the client accepts {sorted(accepted(field.annotation))}")
    return problems


@pytest.mark.parametrize("method,path,model", ANSWERS, ids=[f"{m} {p}" for m, p, _ in ANSWERS])
def test_answers_fit_the_client_models(document, method, path, model):
    schema = data_schema(document, method, path)
    if isinstance(model, list):
        assert schema.get("type") == "array", f"{path}: data is not an array"
        schema, model = resolve(schema["items"], document), model[0]
    assert check_model(model, schema, document) == []


@pytest.mark.parametrize("method,path,model", PAGES, ids=[p for _, p, _ in PAGES])
def test_pages_fit_the_client_page(document, method, path, model):
    from aigc_client.models import Page

    schema = data_schema(document, method, path)
    assert check_model(Page[model], schema, document) == []
    assert check_model(model, resolve(schema["properties"]["records"]["items"], document), document) == []


@pytest.mark.parametrize("method,path,sent", BODIES, ids=[p for _, p, _ in BODIES])
def test_request_bodies_the_client_sends_are_documented(document, method, path, sent):
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    assert sent <= set(resolve(body, document)["properties"])


@pytest.mark.parametrize("method,path,sent", QUERIES, ids=[p for _, p, _ in QUERIES])
def test_query_parameters_the_client_sends_are_documented(document, method, path, sent):
    documented = {p["name"] for p in document["paths"][path][method].get("parameters", []) if p.get("in") == "query"}
    assert sent <= documented


@pytest.mark.parametrize("method,path", [("get", "/user/webhooks/secret"), ("post", "/user/webhooks/secret/rotate")])
def test_webhook_secret_answers_hold_the_secret(document, method, path):
    schema = data_schema(document, method, path)
    assert "secret" in schema.get("required", []) and json_types(schema["properties"]["secret"], document) == {
        "string"}


def test_the_checker_catches_drift(document):
    """The check itself can fail: a model missing a required field, or refusing null, is reported."""

    class Narrow(BaseModel):
        task_no: int = Field(alias="taskNo")

    schema = {"properties": {"taskNo": {"type": "string"}, "status": {"anyOf": [{"type": "string"},
                                                                             {"type": "null"}]}},
              "required": ["taskNo", "status"]}
    problems = check_model(Narrow, schema, document)
    assert len(problems) == 2
    assert "requires 'status'" in problems[0] or "requires 'status'" in problems[1]
    assert any(p.startswith("Narrow.taskNo: the document allows ['string']") for p in problems)
