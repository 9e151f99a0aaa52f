"""DynamoDB answers written as JSON directly, without moto's model-driven serializer.

moto 5.2 turns every answer into its wire form by walking botocore's output shape member by member
(`ActionResult.execute_result`); for DynamoDB items (a shape per attribute value) that walk was about
a quarter of the local stack's CPU under load (py-spy on `bench/one_user.py`). moto's DynamoDB results
(`DynamoResult`) are already in the wire form, AttributeValue maps included (`dynamo_to_dict`), so
this writes them with `json.dumps`, and falls back to the serializer for anything `json` cannot write
as is (binary values, timestamps, errors).

`CHECK = True` (set by tests/workflow/test_moto_seams.py's check while the workflow tier runs a sample)
computes both and raises if they ever differ. local/seams.py registers the target.
"""
from __future__ import annotations

import json
from typing import Callable

from local import seams

TARGET = "moto.dynamodb.responses:DynamoResult.execute_result"
CHECK = False
_CONTENT_TYPE = "application/x-amz-json-1.0"


def _serializer_answer(self, context):
    from moto.core.responses import ActionResult

    return ActionResult.execute_result(self, context)


def _execute_result(self, context):
    result = self.result
    if isinstance(result, Exception) or not isinstance(result, dict):
        return _serializer_answer(self, context)
    try:
        body = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # bytes (binary attributes), datetimes (table descriptions): moto's way
        return _serializer_answer(self, context)
    if CHECK:
        status, _, serialised = _serializer_answer(self, context)
        assert status == 200 and _as_parsed(context, serialised) == _as_parsed(context, body), (
            context.operation_model.name, serialised, body)
    return 200, {"Content-Type": _CONTENT_TYPE}, body


def _as_parsed(context, body: str) -> dict:
    """What botocore makes of an answer (members outside the operation's output shape are ignored)."""
    from botocore.parsers import create_parser

    parsed = create_parser("json").parse({"body": (body or "{}").encode(), "headers": {}, "status_code": 200},
                                         context.operation_model.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def install() -> Callable[[], None]:
    """Write moto's DynamoDB answers as JSON directly; returns the undo."""
    return seams.patch(TARGET, _execute_result)
