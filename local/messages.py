"""`make messages`: the message catalogs of what users read (aigc.core.i18n), made with Babel.

1. extract every `_("...")` msgid of the library and the handlers (babel.cfg's mapping);
2. merge them into each language's `.po` (layers/common/aigc/core/locale/<ll_CC>/LC_MESSAGES/aigc.po):
   a new msgid arrives untranslated (never a fuzzy guess), one gone from the code is dropped;
3. compile each `.po` to the `.mo` the layer ships (the library reads it with the standard gettext).

Translate the new entries' msgstr in the .po, then run it again to compile. tests/unit/test_i18n.py
uses `extract` and `compile_mo` to fail on a msgid without a translation or a stale .mo.
`python -m local.messages --check` says what is missing without writing anything.
"""
from __future__ import annotations

import argparse
import io
import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "babel.cfg"
LOCALE_DIR = ROOT / "layers/common/aigc/core/locale"
DOMAIN = "aigc"
LANGUAGES = ("zh_CN",)
KEYWORDS = {"_": None}  # only aigc.core.i18n's marker, its first argument
# Headers stay put, so the .po and .mo change only with the messages.
FIXED_DATE = datetime(2025, 11, 1, tzinfo=timezone.utc)


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    return po_path(language).with_suffix(".mo")


def extract() -> Catalog:
    """The msgids in the code now, each with the files that use it."""
    with MAPPING.open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    catalog = Catalog(project="aigc", domain=DOMAIN, creation_date=FIXED_DATE, fuzzy=False)
    for filename, _line, message, comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",),
            strip_comment_tags=True):
        if isinstance(message, tuple):  # plural forms are not used
            message = message[0]
        location = filename.replace("\\", "/")
        existing = catalog.get(message)
        if existing is not None:
            existing.locations = sorted({*existing.locations, (location, None)})
        else:
            catalog.add(message, locations=[(location, None)], auto_comments=comments)
    return catalog


def read_catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


def compile_mo(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def missing(catalog: Catalog) -> list[str]:
    """msgids without a usable translation (empty or fuzzy)."""
    return [message.id for message in catalog if message.id and (not message.string or message.fuzzy)]


def update(language: str, template: Catalog) -> Catalog:
    path = po_path(language)
    if path.exists():
        catalog = read_catalog(language)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, domain=DOMAIN, project="aigc", version="1.0", creation_date=FIXED_DATE,
                          revision_date=FIXED_DATE, fuzzy=False, last_translator="aigc maintainers",
                          language_team=language, msgid_bugs_address="the repository's issues",
                          header_comment=f"# {language} messages of aigc: `make messages` keeps the msgids in step "
                                         "with the code;\n# translate every msgstr (tests/unit/test_i18n.py).\n#")
    catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
    catalog.obsolete.clear()
    catalog.revision_date = FIXED_DATE
    catalog.fuzzy = False
    with path.open("wb") as po:
        write_po(po, catalog, width=100, ignore_obsolete=True, include_previous=False, include_lineno=False)
    return read_catalog(language)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.messages", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report msgids without a translation")
    args = parser.parse_args(argv)
    template = extract()
    status = 0
    for language in LANGUAGES:
        catalog = read_catalog(language) if args.check else update(language, template)
        known = {message.id for message in catalog if message.id}
        absent = [message.id for message in template if message.id and message.id not in known]
        untranslated = missing(catalog) + absent
        if not args.check:
            mo_path(language).write_bytes(compile_mo(catalog))
        print(f"{language}: {len(known)} messages, {len(untranslated)} without a translation")
        for msgid in untranslated:
            print(f"  {msgid!r}")
        status = status or (1 if untranslated else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
