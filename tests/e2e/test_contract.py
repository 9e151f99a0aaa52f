"""The contract served by the running API: GET /openapi.json and GET /docs without a token."""
from __future__ import annotations

import json

import requests
from openapi_spec_validator import validate

from local.openapi import COMMITTED


def test_openapi_json_is_served_without_auth_and_is_the_committed_contract(stack):
    response = requests.get(f"{stack.url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    validate(served)
    assert served == json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_swagger_ui_is_served_without_auth(stack):
    response = requests.get(f"{stack.url}/docs", timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.text and "/user/ai/tasks/submit" in response.text
