"""The template catalog, as data (`templates.json`, beside the model catalog).

A template (seed 002) is a ready-made task: the model it runs, preset parameters, a prompt with named
placeholders (`"{subject}, watercolour, soft light"`), the inputs a user fills in (a JSON schema), its
own price (pricing rules, as a model's) and whether it is enabled. Templates are versioned: each
version is its own entry with the same `code`; a task records the code and version it was made with,
so a later version never changes it. Validating a user's inputs and rendering the prompt is
`aigc.domain.templates`.
"""
from __future__ import annotations

import json
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigc.core.catalog import Pricing, load_catalog, result_type
from aigc.core.errors import NotFound
from aigc.core.i18n import _

CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"


def placeholders(prompt_template: str | None) -> list[str]:
    """The `{name}` fields of a prompt template; only plain names (no attributes, indexes or formats)."""
    names = []
    for _text, field, spec, conversion in string.Formatter().parse(prompt_template or ""):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{field}}} must be a plain name")
        names.append(field)
    return names


class TemplateSpec(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    category: str = Field(min_length=1)
    description: str
    model_name: str = Field(alias="modelName")
    preset_parameters: dict[str, Any] = Field(default_factory=dict, alias="presetParameters")
    prompt_template: str | None = Field(None, alias="promptTemplate")
    inputs: dict[str, Any] = Field(description="JSON schema of the inputs (an object)")
    # an input whose value becomes a model parameter (camelCase or snake_case, as a user would send it)
    input_parameters: dict[str, str] = Field(default_factory=dict, alias="inputParameters")
    example: dict[str, Any] = Field(default_factory=dict, description="inputs that make a good first try")
    pricing: Pricing
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self):
        if self.model_name not in load_catalog():
            raise ValueError(f"template {self.code} v{self.version}: unknown model {self.model_name!r}")
        if self.inputs.get("type") != "object" or self.inputs.get("additionalProperties", True) is not False:
            raise ValueError(f"template {self.code}: inputs must be an object schema without additional properties")
        properties = self.inputs.get("properties", {})
        required = set(self.inputs.get("required", []))
        for name in placeholders(self.prompt_template):
            if name not in properties:
                raise ValueError(f"template {self.code}: placeholder {{{name}}} is not an input")
            if name not in required and "default" not in properties[name]:
                raise ValueError(f"template {self.code}: optional input {name} needs a default")
        unknown = set(self.input_parameters) - set(properties)
        if unknown:
            raise ValueError(f"template {self.code}: inputParameters names no input {sorted(unknown)}")
        return self

    @property
    def task_type(self) -> str:
        return load_catalog()[self.model_name].task_type

    @property
    def result_type(self) -> str:
        return result_type(self.task_type)


@lru_cache(maxsize=1)
def load_templates() -> tuple[TemplateSpec, ...]:
    raw = json.loads(Path(__file__).with_name("templates.json").read_text(encoding="utf-8"))
    specs = tuple(TemplateSpec.model_validate(entry) for entry in raw["templates"])
    seen = set()
    for spec in specs:
        if (spec.code, spec.version) in seen:
            raise ValueError(f"template {spec.code} v{spec.version} is listed twice")
        seen.add((spec.code, spec.version))
    return specs


def latest_templates(category: str | None = None) -> list[TemplateSpec]:
    """The newest enabled version of every template (GET /templates), optionally of one category."""
    latest: dict[str, TemplateSpec] = {}
    for spec in load_templates():
        if spec.enabled and (spec.code not in latest or spec.version > latest[spec.code].version):
            latest[spec.code] = spec
    return [spec for spec in latest.values() if category is None or spec.category == category]


def get_template(code: str, version: int | None = None) -> TemplateSpec:
    """The newest enabled version of `code`, or exactly `version`; unknown or disabled: 404 naming it."""
    versions = [spec for spec in load_templates() if spec.code == code]
    if version is not None:
        for spec in versions:
            if spec.version == version and spec.enabled:
                return spec
        raise NotFound(_("template '{code}' version {version} is unknown or disabled; "
                         "GET /templates lists the available templates", code=code, version=version))
    enabled = [spec for spec in versions if spec.enabled]
    if not enabled:
        raise NotFound(_("template '{code}' is unknown or disabled; GET /templates lists the available templates",
                         code=code))
    return max(enabled, key=lambda spec: spec.version)
