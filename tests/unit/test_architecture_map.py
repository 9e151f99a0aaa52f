"""docs/ARCHITECTURE.md's module map names every module of the shared library, and nothing else."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common"


def _modules() -> set[str]:
    found = set()
    for path in (LIBRARY / "aigc").rglob("*.py"):
        parts = path.relative_to(LIBRARY).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.add(".".join(parts))
    return found - {"aigc", "aigc.core", "aigc.store", "aigc.domain", "aigc.api", "aigc.flows"}


def _mapped() -> set[str]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text[text.index("### Module map"):]
    section = section[:section.index("\n## ")]
    return set(re.findall(r"^\| `(aigc(?:\.\w+)*)` \|", section, re.M))


def test_every_module_is_in_the_architecture_map_and_every_entry_exists() -> None:
    modules, mapped = _modules(), _mapped()
    assert modules - mapped == set(), "modules missing from docs/ARCHITECTURE.md's module map"
    assert mapped - modules == set(), "the module map names modules that do not exist"
