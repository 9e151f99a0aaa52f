"""SnapStart restore hooks (aigc/snapstart.py): a restored ApiFunction gets fresh clients,
connections, secrets and random seed, and nothing breaks where the runtime hook is absent."""
from __future__ import annotations

import random
import sys

import pytest
from aigc.core import snapstart


@pytest.fixture
def fresh_registry(monkeypatch):
    import snapshot_restore_py

    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    return snapshot_restore_py


def test_register_adds_the_after_restore_hook(fresh_registry) -> None:
    assert snapstart.register() is True
    registered = [entry[0] if isinstance(entry, tuple) else entry for entry in fresh_registry._after_restore_registry]
    assert snapstart.after_restore in registered


def test_register_is_a_no_op_without_the_runtime_module(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails as on a plain Python
    assert snapstart.register() is False


@pytest.fixture
def environment(monkeypatch):
    for name, value in {"POINTS_TABLE": "p", "TASKS_TABLE": "t", "WEBHOOK_SECRETS_TABLE": "w", "SCHEDULER_TABLE": "s",
                        "CONNECTIONS_TABLE": "c", "API_KEYS_TABLE": "k", "STATS_TABLE": "st",
                        "RESULTS_BUCKET": "b"}.items():
        monkeypatch.setenv(name, value)
    yield
    snapstart.forget_cached_state()  # leave no client or settings built from this test's environment


def test_after_restore_drops_clients_connections_and_caches(environment) -> None:
    from aigc.core import config
    from aigc.store import executions, storage
    from aigc.store import dynamo, queues
    from aigc.store.db import MODELS

    s3, sfn, settings = storage._s3(), executions._sfn(), config.get_settings()
    sqs, connection = queues._sqs(), dynamo._connection()
    for model in MODELS:
        model._get_connection()
    assert storage._s3() is s3 and config.get_settings() is settings  # cached until a restore

    random.seed(1)
    snapshot_draw = random.random()
    random.seed(1)
    snapstart.after_restore()

    assert random.random() != snapshot_draw  # reseeded: restored copies do not share a sequence
    assert all(model._connection is None for model in MODELS)  # every table, not two of them
    assert queues._sqs() is not sqs and dynamo._connection() is not connection
    assert storage._s3() is not s3
    assert executions._sfn() is not sfn
    assert config.get_settings() is not settings
