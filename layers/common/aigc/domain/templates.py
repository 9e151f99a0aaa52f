"""Turning a template (`aigc.core.templates`) and a user's inputs into a model's request.

The inputs are validated against the template's JSON schema (a 400 naming the input), defaults
filled in, the prompt rendered from its placeholders, and inputs named in `inputParameters` become
model parameters on top of the presets. What comes out is validated again by the model's own
parameter rules, exactly like a request naming the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from aigc.core.errors import BadRequest
from aigc.core.i18n import Message, _, verbatim
from aigc.core.templates import TemplateSpec


@dataclass(frozen=True)
class Resolved:
    prompt: str | None
    parameters: dict  # user-level names (camelCase or snake_case), presets plus mapped inputs
    inputs: dict = field(default_factory=dict)  # the inputs with their defaults, as the task records them


@lru_cache(maxsize=64)
def _validator(code: str, version: int, schema_text: str):
    import json

    from jsonschema import Draft202012Validator  # only a template submit pays for jsonschema

    schema = json.loads(schema_text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validator(template: TemplateSpec):
    import json

    return _validator(template.code, template.version, json.dumps(template.inputs, sort_keys=True))


# JSON schema keywords whose failures have a catalog text (English stays jsonschema's own message); the
# others are shown in jsonschema's English in every language.
_RULES = {
    "type": lambda rule: _("should be of type {type}", type=rule if isinstance(rule, str) else ", ".join(rule)),
    "enum": lambda rule: _("should be one of {values}", values=", ".join(map(repr, rule))),
    "const": lambda rule: _("should be {value}", value=repr(rule)),
    "minimum": lambda rule: _("should be at least {limit}", limit=rule),
    "maximum": lambda rule: _("should be at most {limit}", limit=rule),
    "exclusiveMinimum": lambda rule: _("should be more than {limit}", limit=rule),
    "exclusiveMaximum": lambda rule: _("should be less than {limit}", limit=rule),
    "minLength": lambda rule: _("should have at least {limit} characters", limit=rule),
    "maxLength": lambda rule: _("should have at most {limit} characters", limit=rule),
    "pattern": lambda rule: _("should match the pattern '{pattern}'", pattern=rule),
    "minItems": lambda rule: _("should have at least {limit} items", limit=rule),
    "maxItems": lambda rule: _("should have at most {limit} items", limit=rule),
}


def _describe(error) -> Message:
    """'inputs.subject: required', 'inputs.seconds: 7 is greater than the maximum of 5'."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return _("{field}: {problem}", field=f"inputs.{(path + '.') if path else ''}{missing}", problem=_("required"))
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return _("{field}: {problem}", field=f"inputs.{extra[0] if extra else path}",
                 problem=_("not an input of this template"))
    rule = _RULES.get(str(error.validator))
    problem = rule(error.validator_value).with_english(error.message) if rule else verbatim(error.message)
    return _("{field}: {problem}", field=f"inputs{'.' + path if path else ''}", problem=problem)


def check_inputs(template: TemplateSpec, inputs: dict) -> None:
    if not isinstance(inputs, dict):
        raise BadRequest(_("inputs: must be an object"))
    errors = sorted(validator(template).iter_errors(inputs), key=lambda error: list(error.absolute_path))
    if errors:
        raise BadRequest(Message.join(_describe(error) for error in errors[:3]))


def with_defaults(template: TemplateSpec, inputs: dict) -> dict:
    defaults = {name: spec["default"] for name, spec in template.inputs.get("properties", {}).items()
                if isinstance(spec, dict) and "default" in spec}
    return {**defaults, **inputs}


def resolve(template: TemplateSpec, inputs: dict | None) -> Resolved:
    """The model request a template and these inputs make; raises BadRequest naming a bad input."""
    inputs = inputs or {}
    check_inputs(template, inputs)
    filled = with_defaults(template, inputs)
    prompt = None
    if template.prompt_template:
        prompt = template.prompt_template.format_map({name: str(value) for name, value in filled.items()}).strip()
    parameters = dict(template.preset_parameters)
    for name, parameter in template.input_parameters.items():
        if name in filled:
            parameters[parameter] = filled[name]
    return Resolved(prompt=prompt or None, parameters=parameters, inputs=filled)


def parameter_input(template: TemplateSpec, parameter: str) -> str | None:
    """The input that feeds a model parameter (either spelling), to name it in an error."""
    from pydantic.alias_generators import to_camel, to_snake

    for name, target in template.input_parameters.items():
        if target in (parameter, to_camel(parameter), to_snake(parameter)):
            return name
    return None
