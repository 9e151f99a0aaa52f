"""The template tier's one fixture: template.yaml as CloudFormation reads it (short tags in long form)."""
from __future__ import annotations

from pathlib import Path

import pytest

from local.cfn import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template(TEMPLATE)
