"""moto without its instance tracker, so the local stack's memory follows its data, not its history.

moto's `BaseModel.__new__` appends every model object it ever creates to a class-level list
(`instances_tracked`), for its server dashboard (`/moto-api/`). Nothing else reads those lists, and
they hold every object forever: each DynamoDB item version, the copies moto makes while updating,
every S3 object version, every Step Functions execution even after it is pruned. On the local
stack that was about 70 DynamoDB `Item` objects per task, growing without end. `install()` creates
model objects exactly as moto does, without keeping them; the dashboard then lists nothing.

local/seams.py registers the seam; tests/workflow/test_moto_seams.py fails if a moto upgrade changes how
models are created.
"""
from __future__ import annotations

from typing import Any, Callable

from moto.core.common_models import BaseModel

from local import seams


def _untracked_new(cls, *args: Any, **kwargs: Any) -> BaseModel:
    return super(BaseModel, cls).__new__(cls)


def install() -> Callable[[], None]:
    """Stop tracking new model instances (and drop those tracked so far); returns the undo."""
    from moto.core.model_instances import reset_model_data

    uninstall = seams.patch("moto.core.common_models:BaseModel.__new__", _untracked_new)
    reset_model_data()
    return uninstall
