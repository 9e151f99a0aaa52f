"""pydantic's validation errors in the reader's language: one catalog entry per pydantic error type.

The msgid is pydantic's own English template for the type (tests/unit/test_i18n.py checks them against
pydantic_core, so an upgrade that adds or rewords a type fails there); the error's `ctx` values are the
parameters. English is always pydantic's exact `msg`; other languages render the catalog's text.
"""
from __future__ import annotations

from typing import Any

from aigc.core.i18n import Message, _, verbatim

ERROR_TYPES: dict[str, Message] = {
    "no_such_attribute": _("Object has no attribute '{attribute}'"),
    "json_invalid": _('Invalid JSON: {error}'),
    "json_type": _('JSON input should be string, bytes or bytearray'),
    "needs_python_object": _('Cannot check `{method_name}` when validating from json, use a JsonOrPython validator instead'),
    "recursion_loop": _('Recursion error - cyclic reference detected'),
    "recursion_depth_exceeded": _('Recursion error - maximum validation depth exceeded'),
    "missing": _('Field required'),
    "frozen_field": _('Field is frozen'),
    "frozen_instance": _('Instance is frozen'),
    "extra_forbidden": _('Extra inputs are not permitted'),
    "invalid_key": _('Keys should be strings'),
    "get_attribute_error": _('Error extracting attribute: {error}'),
    "model_type": _('Input should be a valid dictionary or instance of {class_name}'),
    "model_attributes_type": _('Input should be a valid dictionary or object to extract fields from'),
    "dataclass_type": _('Input should be a dictionary or an instance of {class_name}'),
    "dataclass_exact_type": _('Input should be an instance of {class_name}'),
    "named_tuple_type": _('Input should be a tuple, list, dictionary or an instance of {class_name}'),
    "default_factory_not_called": _('The default factory uses validated data, but at least one validation error occurred'),
    "none_required": _('Input should be None'),
    "greater_than": _('Input should be greater than {gt}'),
    "greater_than_equal": _('Input should be greater than or equal to {ge}'),
    "less_than": _('Input should be less than {lt}'),
    "less_than_equal": _('Input should be less than or equal to {le}'),
    "multiple_of": _('Input should be a multiple of {multiple_of}'),
    "finite_number": _('Input should be a finite number'),
    "too_short": _('{field_type} should have at least {min_length} item{expected_plural} after validation, not {actual_length}'),
    "too_long": _('{field_type} should have at most {max_length} item{expected_plural} after validation, not {actual_length}'),
    "iterable_type": _('Input should be iterable'),
    "iteration_error": _('Error iterating over object, error: {error}'),
    "string_type": _('Input should be a valid string'),
    "string_unicode": _('Input should be a valid string, unable to parse raw data as a unicode string'),
    "string_too_short": _('String should have at least {min_length} character{expected_plural}'),
    "string_too_long": _('String should have at most {max_length} character{expected_plural}'),
    "string_pattern_mismatch": _("String should match pattern '{pattern}'"),
    "string_not_ascii": _('String should contain only ASCII characters'),
    "enum": _('Input should be {expected}'),
    "dict_type": _('Input should be a valid dictionary'),
    "frozen_dict_type": _('Input should be a valid frozendict'),
    "ordered_dict_type": _('Input should be a valid OrderedDict'),
    "counter_type": _('Input should be a valid Counter'),
    "mapping_type": _('Input should be a valid mapping, error: {error}'),
    "list_type": _('Input should be a valid list'),
    "deque_type": _('Input should be a valid deque'),
    "tuple_type": _('Input should be a valid tuple'),
    "set_type": _('Input should be a valid set'),
    "set_item_not_hashable": _('Set items should be hashable'),
    "bool_type": _('Input should be a valid boolean'),
    "bool_parsing": _('Input should be a valid boolean, unable to interpret input'),
    "int_type": _('Input should be a valid integer'),
    "int_parsing": _('Input should be a valid integer, unable to parse string as an integer'),
    "int_parsing_size": _('Unable to parse input string as an integer, exceeded maximum size'),
    "int_from_float": _('Input should be a valid integer, got a number with a fractional part'),
    "float_type": _('Input should be a valid number'),
    "float_parsing": _('Input should be a valid number, unable to parse string as a number'),
    "bytes_type": _('Input should be a valid bytes'),
    "bytes_too_short": _('Data should have at least {min_length} byte{expected_plural}'),
    "bytes_too_long": _('Data should have at most {max_length} byte{expected_plural}'),
    "bytes_invalid_encoding": _('Data should be valid {encoding}: {encoding_error}'),
    "value_error": _('Value error, {error}'),
    "assertion_error": _('Assertion failed, {error}'),
    "literal_error": _('Input should be {expected}'),
    "missing_sentinel_error": _("Input should be the 'MISSING' sentinel"),
    "ellipsis_error": _("Input should be the 'Ellipsis' literal"),
    "date_type": _('Input should be a valid date'),
    "date_parsing": _('Input should be a valid date in the format YYYY-MM-DD, {error}'),
    "date_from_datetime_parsing": _('Input should be a valid date or datetime, {error}'),
    "date_from_datetime_inexact": _('Datetimes provided to dates should have zero time - e.g. be exact dates'),
    "date_past": _('Date should be in the past'),
    "date_future": _('Date should be in the future'),
    "time_type": _('Input should be a valid time'),
    "time_parsing": _('Input should be in a valid time format, {error}'),
    "datetime_type": _('Input should be a valid datetime'),
    "datetime_parsing": _('Input should be a valid datetime, {error}'),
    "datetime_object_invalid": _('Invalid datetime object, got {error}'),
    "datetime_from_date_parsing": _('Input should be a valid datetime or date, {error}'),
    "datetime_past": _('Input should be in the past'),
    "datetime_future": _('Input should be in the future'),
    "timezone_naive": _('Input should not have timezone info'),
    "timezone_aware": _('Input should have timezone info'),
    "timezone_offset": _('Timezone offset of {tz_expected} required, got {tz_actual}'),
    "time_delta_type": _('Input should be a valid timedelta'),
    "time_delta_parsing": _('Input should be a valid timedelta, {error}'),
    "frozen_set_type": _('Input should be a valid frozenset'),
    "is_instance_of": _('Input should be an instance of {class}'),
    "is_subclass_of": _('Input should be a subclass of {class}'),
    "callable_type": _('Input should be callable'),
    "union_tag_invalid": _("Input tag '{tag}' found using {discriminator} does not match any of the expected tags: {expected_tags}"),
    "union_tag_not_found": _('Unable to extract tag using discriminator {discriminator}'),
    "arguments_type": _('Arguments must be a tuple, list or a dictionary'),
    "missing_argument": _('Missing required argument'),
    "unexpected_keyword_argument": _('Unexpected keyword argument'),
    "missing_keyword_only_argument": _('Missing required keyword only argument'),
    "unexpected_positional_argument": _('Unexpected positional argument'),
    "missing_positional_only_argument": _('Missing required positional only argument'),
    "multiple_argument_values": _('Got multiple values for argument'),
    "url_type": _('URL input should be a string or URL'),
    "url_parsing": _('Input should be a valid URL, {error}'),
    "url_syntax_violation": _('Input violated strict URL syntax rules, {error}'),
    "url_too_long": _('URL should have at most {max_length} character{expected_plural}'),
    "url_scheme": _('URL scheme should be {expected_schemes}'),
    "uuid_type": _('UUID input should be a string, bytes or UUID object'),
    "uuid_parsing": _('Input should be a valid UUID, {error}'),
    "uuid_version": _('UUID version {expected_version} expected'),
    "decimal_type": _('Decimal input should be an integer, float, string or Decimal object'),
    "decimal_parsing": _('Input should be a valid decimal'),
    "decimal_max_digits": _('Decimal input should have no more than {max_digits} digit{expected_plural} in total'),
    "decimal_max_places": _('Decimal input should have no more than {decimal_places} decimal place{expected_plural}'),
    "decimal_whole_digits": _('Decimal input should have no more than {whole_digits} digit{expected_plural} before the decimal point'),
    "fraction_type": _('Fraction input should be an integer, float, string or Fraction object'),
    "fraction_parsing": _('Input is not a valid fraction'),
    "complex_type": _('Input should be a valid python complex object, a number, or a valid complex string following the rules at https://docs.python.org/3/library/functions.html#complex'),
    "complex_str_parsing": _('Input should be a valid complex string following the rules at https://docs.python.org/3/library/functions.html#complex'),
}


def _value(value: Any) -> Any:
    if isinstance(value, Message):
        return value
    if isinstance(value, BaseException):  # value_error / assertion_error: our validators raise Messages
        first = value.args[0] if value.args else ""
        return first if isinstance(first, Message) else str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # as pydantic shows it: "less than or equal to 3"
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def problem_message(problem: dict) -> Message:
    """One pydantic error (an item of `errors()`) as a Message: English is its `msg`, unchanged."""
    english = str(problem.get("msg") or "invalid")
    entry = ERROR_TYPES.get(str(problem.get("type")))
    if entry is None:
        return verbatim(english)
    values = {name: _value(value) for name, value in (problem.get("ctx") or {}).items()}
    return Message(entry.template, **values).with_english(english)
