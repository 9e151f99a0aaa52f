"""The API reference in Markdown from the OpenAPI document: `python -m local.apidoc [OPENAPI [OUT]]`.

`make openapi` runs it after `local.openapi`, so docs/api.md is always docs/openapi.json told in
Markdown: every operation (method, path, summary, description, auth, parameters, request body fields
with their types and constraints, answers with their error examples), then every schema. Pure: it reads
JSON and writes text (no imports from the app), and the same document always gives the same bytes;
tests/unit/test_api_doc.py fails when the committed docs/api.md is not this output. Prose the document
does not carry lives in the hand-written docs/api-guide.md, which the output links to.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "docs" / "openapi.json"
API_MD = ROOT / "docs" / "api.md"
GUIDE = "api-guide.md"  # relative to docs/api.md

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Sections in the order a client meets them; tags not listed follow, alphabetically.
TAG_ORDER = ("tasks", "uploads", "points", "models", "webhooks", "admin")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication): inline Markdown dropped, lower case,
    only letters, digits, spaces, '-' and '_' kept, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _cell(text) -> str:
    """Text that is safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _num(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else json.dumps(value)


def _code(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_link(name: str) -> str:
    return f"[`{name}`](#{github_anchor(name)})"


def _variants(schema: dict) -> tuple[list[dict], bool]:
    """The non-null alternatives of a schema and whether null is allowed."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return [schema], schema.get("type") == "null"
    real = [option for option in options if option.get("type") != "null"]
    return real, len(real) < len(options)


def type_of(schema: dict) -> str:
    """A short type: a schema link, `array of X`, `object`, `string`, ... (`or null` when nullable)."""
    variants, nullable = _variants(schema)
    names = [_single_type(variant) for variant in variants]
    if nullable:
        names.append("null")
    return " or ".join(dict.fromkeys(names)) or "any"


def _single_type(schema: dict) -> str:
    if "$ref" in schema:
        return _schema_link(_ref_name(schema["$ref"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object of {type_of(extra)}"
        return "object"
    if kind:
        return kind + (f" ({schema['format']})" if "format" in schema else "")
    if "const" in schema:
        return f"const {_code(schema['const'])}"
    return "any"


_BOUNDS = (  # (low, high, what): both given read "low..high"
    ("minimum", "maximum", ""), ("minLength", "maxLength", "length "), ("minItems", "maxItems", "items "),
)
_SINGLE = (("exclusiveMinimum", "> {}"), ("exclusiveMaximum", "< {}"), ("multipleOf", "multiple of {}"))


def _bounds(schema: dict) -> list[str]:
    found = []
    for low, high, what in _BOUNDS:
        if low in schema and high in schema:
            found.append(f"{what}{_num(schema[low])}..{_num(schema[high])}")
        elif low in schema:
            found.append(f"{what}>= {_num(schema[low])}")
        elif high in schema:
            found.append(f"{what}<= {_num(schema[high])}")
    return found + [form.format(_num(schema[key])) for key, form in _SINGLE if key in schema]


def constraints_of(schema: dict, *, item: bool = False) -> list[str]:
    """Bounds, patterns, enums and defaults of a schema, its alternatives and its array items."""
    found: list[str] = []
    variants, _ = _variants(schema)
    for variant in ([schema] + variants if variants != [schema] else [schema]):
        prefix = "each " if item else ""
        found.extend(prefix + bound for bound in _bounds(variant))
        if "pattern" in variant:
            found.append(f"{prefix}pattern {_code(variant['pattern'])}")
        if "enum" in variant:
            found.append(f"{prefix}one of " + ", ".join(_code(value) for value in variant["enum"]))
        if variant.get("additionalProperties") is False:
            found.append("no other fields")
        if variant.get("type") == "array" and isinstance(variant.get("items"), dict):
            found.extend(constraints_of(variant["items"], item=True))
    if "default" in schema and not item:
        found.append(f"default {_code(schema['default'])}")
    return list(dict.fromkeys(found))


def _describe(schema: dict) -> str:
    parts = []
    if schema.get("description"):
        parts.append(schema["description"])
    examples = schema.get("examples")
    if isinstance(examples, list) and examples and not any(isinstance(e, (dict, list)) for e in examples):
        parts.append("e.g. " + ", ".join(_code(example) for example in examples))
    if schema.get("deprecated"):
        parts.append("deprecated")
    return "; ".join(parts)


def _fields_table(schema: dict) -> list[str]:
    properties = schema.get("properties") or {}
    if not properties:
        return []
    required = set(schema.get("required") or [])
    lines = ["| Field | Type | Required | Constraints | Description |", "|---|---|---|---|---|"]
    for name, prop in properties.items():
        lines.append("| " + " | ".join([
            _code(name), _cell(type_of(prop)), "yes" if name in required else "no",
            _cell(", ".join(constraints_of(prop))), _cell(_describe(prop))]) + " |")
    return lines


def _json_block(value) -> list[str]:
    return ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


class _Doc:
    def __init__(self, document: dict):
        self.document = document
        self.schemas = (document.get("components") or {}).get("schemas") or {}
        self.schemes = (document.get("components") or {}).get("securitySchemes") or {}

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.schemas.get(_ref_name(schema["$ref"]), {})
        return schema

    def operations(self) -> list[tuple[str, str, str, dict]]:
        """(tag, METHOD, path, operation) in section order, then document order."""
        found = []
        for path, item in (self.document.get("paths") or {}).items():
            for method in METHODS:
                if method in item:
                    operation = item[method]
                    tag = (operation.get("tags") or ["other"])[0]
                    found.append((tag, method.upper(), path, operation))

        def section(tag: str) -> tuple[int, str]:
            return (TAG_ORDER.index(tag), "") if tag in TAG_ORDER else (len(TAG_ORDER), tag)

        return sorted(found, key=lambda op: section(op[0]))  # stable: document order within a tag

    def auth(self, operation: dict) -> str:
        requirements = operation.get("security", self.document.get("security") or [])
        if not requirements:
            return "none (public)"
        names = []
        for requirement in requirements:
            names.append(" and ".join(self._scheme(name, scopes) for name, scopes in requirement.items()) or "none")
        return " or ".join(names)

    def _scheme(self, name: str, scopes: list) -> str:
        scheme = self.schemes.get(name, {})
        if scheme.get("type") == "http" and scheme.get("scheme") == "bearer":
            text = f"bearer {scheme.get('bearerFormat', 'token')}"
        elif scheme.get("type") == "apiKey":
            text = f"API key in {scheme.get('in')} `{scheme.get('name')}` (`{name}`)"
        else:
            text = f"`{name}`"
        return text + (f", scopes {', '.join(scopes)}" if scopes else "")


def _operation(doc: _Doc, method: str, path: str, operation: dict) -> list[str]:
    lines = [f"### `{method} {path}`", ""]
    if operation.get("summary"):
        lines += [operation["summary"] + ("." if not operation["summary"].endswith(".") else ""), ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    if operation.get("deprecated"):
        lines += ["**Deprecated.**", ""]
    lines += [f"Auth: {doc.auth(operation)}. Operation id: `{operation.get('operationId', '')}`.", ""]
    lines += _parameters(operation.get("parameters") or [])
    lines += _request_body(doc, operation.get("requestBody"))
    lines += _responses(doc, operation.get("responses") or {})
    return lines


def _parameters(parameters: list[dict]) -> list[str]:
    if not parameters:
        return []
    lines = ["**Parameters**", "", "| Name | In | Type | Required | Constraints | Description |",
             "|---|---|---|---|---|---|"]
    for parameter in parameters:
        schema = parameter.get("schema") or {}
        description = parameter.get("description") or schema.get("description") or ""
        lines.append("| " + " | ".join([
            _code(parameter["name"]), parameter.get("in", ""), _cell(type_of(schema)),
            "yes" if parameter.get("required") else "no", _cell(", ".join(constraints_of(schema))),
            _cell(description)]) + " |")
    return lines + [""]


def _request_body(doc: _Doc, body: dict | None) -> list[str]:
    if not body:
        return []
    lines = []
    for media, content in (body.get("content") or {}).items():
        schema = content.get("schema") or {}
        required = "required" if body.get("required") else "optional"
        lines += [f"**Request body** (`{media}`, {required}): {type_of(schema)}", ""]
        if body.get("description"):
            lines += [body["description"], ""]
        resolved = doc.resolve(schema)
        if resolved.get("description") and "$ref" in schema:
            lines += [resolved["description"], ""]
        table = _fields_table(resolved)
        if table:
            lines += table + [""]
        if resolved.get("additionalProperties") is False:
            lines += ["Other fields are refused.", ""]
        examples = content.get("examples") or {}
        samples = [e.get("value") for e in examples.values()] if examples else []
        if "example" in content:
            samples.append(content["example"])
        samples += resolved.get("examples") or []
        for sample in samples:
            lines += ["Example:", ""] + _json_block(sample) + [""]
    return lines


def _responses(doc: _Doc, responses: dict) -> list[str]:
    lines = ["**Responses**", "", "| Status | Meaning | Body | Example |", "|---|---|---|---|"]
    for status, response in responses.items():
        bodies, samples = [], []
        for media, content in (response.get("content") or {}).items():
            schema = content.get("schema")
            bodies.append(type_of(schema) if schema else _code(media))
            example = content.get("example")
            if isinstance(example, dict) and "message" in example:
                samples.append(_code(example["message"]))
            elif example is not None:
                samples.append(_code(example))
        meaning = response.get("description", "")
        if response.get("headers"):
            meaning += " (headers: " + ", ".join(_code(name) for name in response["headers"]) + ")"
        lines.append("| " + " | ".join([
            status, _cell(meaning), _cell(", ".join(bodies) or "none"),
            _cell(", ".join(samples))]) + " |")
    return lines + [""]


def _schema_section(name: str, schema: dict) -> list[str]:
    lines = [f"### `{name}`", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    table = _fields_table(schema)
    if table:
        lines += table + [""]
    elif schema:
        lines += [f"Type: {type_of(schema)}" + (f" ({', '.join(constraints_of(schema))})"
                                                 if constraints_of(schema) else ""), ""]
    return lines


def render(document: dict) -> str:
    """docs/api.md for an OpenAPI 3 document."""
    doc = _Doc(document)
    info = document.get("info") or {}
    operations = doc.operations()
    lines = [
        "# API reference",
        "",
        "<!-- Generated from docs/openapi.json by `python -m local.apidoc` (`make openapi`); do not edit by hand:",
        "     tests/unit/test_api_doc.py fails when this file and the document drift apart. -->",
        "",
        f"**{info.get('title', 'API')}** {info.get('version', '')}, OpenAPI {document.get('openapi', '')}: "
        f"generated from [openapi.json](openapi.json), the contract the code serves. How to use it (base URL, "
        f"input rules, lists and paging, model parameters, receiving webhooks, uploads): [the API guide]({GUIDE}).",
        "",
    ]
    if info.get("description"):
        lines += [info["description"].strip(), ""]
    servers = document.get("servers") or []
    if servers:
        lines += ["Servers: " + ", ".join(_code(server.get("url", "")) for server in servers)
                  + " (relative to the deployed API's URL).", ""]
    for name, scheme in doc.schemes.items():
        lines += [f"Security scheme `{name}`: {doc._scheme(name, [])}"
                  + (f": {scheme['description']}" if scheme.get("description") else "") + ".", ""]
    lines += ["## Operations", "", "| Method | Path | Summary | Auth |", "|---|---|---|---|"]
    for _tag, method, path, operation in operations:
        anchor = github_anchor(f"`{method} {path}`")
        lines.append(f"| {method} | [`{_cell(path)}`](#{anchor}) | {_cell(operation.get('summary', ''))} | "
                     f"{_cell(doc.auth(operation))} |")
    lines.append("")
    current = None
    for tag, method, path, operation in operations:
        if tag != current:
            lines += [f"## Operations: {tag}", ""]
            current = tag
        lines += _operation(doc, method, path, operation)
    lines += ["## Schemas", ""]
    for name in sorted(doc.schemas):
        lines += _schema_section(name, doc.schemas[name])
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else OPENAPI
    text = render(json.loads(source.read_text(encoding="utf-8")))
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
