"""The fast tier's fixtures (tests/domain/support.py has the fakes and the books): every test gets a
fresh moto DynamoDB with template.yaml's tables, fake Step Functions executions, a fake provider and
fake S3 copies; after every test the books are checked."""
from __future__ import annotations

import pytest
from moto import mock_aws

import aigc.flows.workflow
import aigc.providers
from aigc.store import executions, storage
from tests.domain.support import (
    ENVIRONMENT,
    Clock,
    FakeExecutions,
    FakeProvider,
    FakeStorage,
    check_books,
    clear_caches,
    create_tables,
)


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    """A fresh moto DynamoDB with the template's tables, and the functions' environment."""
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    clear_caches()
    with mock_aws():
        create_tables()
        yield
    clear_caches()


@pytest.fixture(autouse=True)
def sfn(monkeypatch) -> FakeExecutions:
    """Step Functions: aigc.store.executions' functions replaced; a real client call fails the test."""
    fake = FakeExecutions()
    for name in FakeExecutions.REPLACES:
        monkeypatch.setattr(executions, name, getattr(fake, name))

    def no_real_step_functions():
        raise AssertionError("the domain tier must not call Step Functions")

    monkeypatch.setattr(executions, "_sfn", no_real_step_functions)
    return fake


@pytest.fixture(autouse=True)
def provider(monkeypatch) -> FakeProvider:
    """Every provider name answers with this one fake (the workflow imported get_provider by name)."""
    fake = FakeProvider()

    def get_provider(name, account=None):
        fake.accounts_used.append(account)  # which account each call spoke with
        return fake

    monkeypatch.setattr(aigc.providers, "get_provider", get_provider)
    monkeypatch.setattr(aigc.flows.workflow, "get_provider", get_provider)
    monkeypatch.setattr(aigc.flows.workflow, "SLEEP", lambda seconds: None)  # polls come back to back
    return fake


@pytest.fixture(autouse=True)
def fake_storage(monkeypatch) -> FakeStorage:
    fake = FakeStorage()
    monkeypatch.setattr(storage, "copy_url_to_s3", fake.copy_url_to_s3)
    monkeypatch.setattr(storage, "write_thumbnail", fake.write_thumbnail)
    return fake


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture(autouse=True)
def books(aws):
    """After every test: balance == grants - debits + refunds, per user, and the per-task rules."""
    yield
    check_books()
