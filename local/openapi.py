"""The API's OpenAPI document from the code: `python -m local.openapi [FILE]` (make openapi writes docs/openapi.json)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "openapi.json"


def api_document() -> dict:
    from aigc.api import contract

    name = "_openapi_api_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "api" / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return contract.openapi_document(sys.modules[name].app)


def main(argv: list[str]) -> int:
    from aigc.api import contract

    text = contract.dumps(api_document())
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
