"""What a function restored from a SnapStart snapshot must not reuse (ApiFunction, AuthorizerFunction).

Lambda initialises the handler once per published version, snapshots it, and resumes many
execution environments from that one snapshot. After a restore:

- ``random`` would draw the same numbers in every environment: reseed it (uuid4 and ``secrets``
  read os.urandom and need nothing);
- cached boto3 clients and PynamoDB connections hold the snapshot's sockets and credentials:
  drop them, they are rebuilt on first use;
- the provider-keys secret, the settings and the catalog may have changed since the snapshot:
  drop those caches too.

:func:`forget_cached_state` is also what the local stack calls when it "deploys" (a new cold
start). The Lambda runtime ships ``snapshot_restore_py`` (also on PyPI); where it is absent,
:func:`register` does nothing and imports nothing.
"""
from __future__ import annotations

import random
import sys

_CACHED_CALLABLES = (
    ("aigc.core.config", "get_settings"),
    ("aigc.domain.auth", "default_verifier"),  # the issuer's settings, read once
    ("aigc.store.jwks", "_client"),  # the issuer's keys, cached by the clock of the snapshot
    ("aigc.core.catalog", "load_catalog"),
    ("aigc.core.packs", "load_packs"),
    ("aigc.store.payments", "_client"),
    ("aigc.flows.submission", "_idempotency"),
    ("aigc.store.storage", "_s3"),
    ("aigc.store.executions", "_sfn"),
    ("aigc.store.dynamo", "_connection"),
    ("aigc.store.queues", "_sqs"),
    ("aigc.flows.webhook_delivery", "_session"),
)


def forget_cached_state() -> None:
    """Drop every client, connection and cached value the library keeps (only modules already loaded)."""
    for module_name, attr in _CACHED_CALLABLES:
        module = sys.modules.get(module_name)
        if module is not None:
            getattr(module, attr).cache_clear()  # an AttributeError here: a cache was renamed
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()
    db = sys.modules.get("aigc.store.db")
    if db is not None:
        for model in db.MODELS:  # every table's model keeps its own connection
            model._connection = None


def after_restore() -> None:
    random.seed()
    forget_cached_state()


def register() -> bool:
    """Run :func:`after_restore` after each SnapStart restore; False when not on a SnapStart runtime."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(after_restore)
    return True
