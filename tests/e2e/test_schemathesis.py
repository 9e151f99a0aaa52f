"""Schemathesis over the served contract (GET /openapi.json) against the running local stack.

Every operation gets a bounded number of generated requests (valid and invalid, from the
document's schemas and examples), sent with a valid bearer token of a user who has points. Each
answer must be documented (status, content type, schema) and never a 5xx; and after each operation's
run the user's new debits and tasks are exactly those of the accepted requests (rejected ones wrote
nothing) and the balance is the sum of the ledger.
"""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.openapi import COMMITTED
from tests.e2e.conftest import new_user

EXAMPLES_PER_OPERATION = 20  # x 14 operations: about 280 requests
CREATES_TASKS = {"/user/ai/tasks/submit", "/user/ai/tasks/{taskNo}/retry"}
# Not negative_data_rejection: like API Gateway, the API ignores query parameters it does not know.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
POINTS = 100_000  # the most one grant may give (MaxGrantPoints)


@pytest.fixture(scope="module")
def fuzz_user(stack) -> dict:
    user = new_user("fuzz")
    stack.grant(user, POINTS)
    # Admin too, so the admin routes are exercised past the group check.
    return {"user": user, "headers": {"Authorization": f"Bearer {stack.token(user, admin=True)}"}}


@pytest.fixture(scope="module")
def api_schema(stack):
    return schemathesis.openapi.from_url(f"{stack.url}/openapi.json", timeout=30)


def _ledger(stack, user: str) -> list[dict]:
    entries, page, pages = [], 1, 1
    while page <= pages:
        data = stack.call("GET", "/user/points/consumption/records", user=user,
                          params={"size": 100, "page": page}).json()["data"]
        entries += data["records"]
        page, pages = page + 1, data["pages"]
    return entries


def _state(stack, user: str) -> tuple[int, int]:
    """(debits, tasks) of the user, once the balance is the ledger's sum (refunds may land meanwhile)."""
    for _ in range(20):
        first, balance, second = _ledger(stack, user), stack.balance(user), _ledger(stack, user)
        if first == second and balance == sum(e["amount"] for e in first):
            return sum(e["type"] == "debit" for e in first), stack.task_count(user)
    raise AssertionError(f"balance {balance} is not the ledger's sum {sum(e['amount'] for e in second)}")


OPERATIONS = [(method.upper(), path) for path, methods in json.loads(COMMITTED.read_text())["paths"].items()
              for method in methods]


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_the_api_keeps_its_contract(stack, api_schema, fuzz_user, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    accepted = []  # the answers that created a task

    @given(case=cases)
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def keeps_its_contract(case):
        response = case.call(base_url=stack.url, headers=fuzz_user["headers"], timeout=30)
        case.validate_response(response, checks=CHECKS)
        if response.status_code == 200 and path in CREATES_TASKS:
            accepted.append(response.json()["data"]["taskNo"])

    before = _state(stack, fuzz_user["user"])
    try:
        keeps_its_contract()
    except BaseException:
        print(stack.log())  # the stack's side of a failure
        raise
    debits, task_count = _state(stack, fuzz_user["user"])
    # Rejected requests wrote nothing: every debit and task is one an accepted request made.
    assert (debits - before[0], task_count - before[1]) == (len(set(accepted)), len(set(accepted)))
