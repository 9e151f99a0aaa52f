"""The `aigc` CLI's pure rules: --param parsing, the error -> exception -> exit code mapping (for the
answers the local stack cannot easily give: 403, 429, 5xx), and the progress text."""
from __future__ import annotations

import pytest
import typer
from aigc_client import (
    AuthError,
    BadRequest,
    Conflict,
    InsufficientPoints,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    Task,
    WaitTimeout,
)
from aigc_client.cli import exit_code, parse_param
from aigc_client.errors import error_for
from aigc_client.progress import describe


@pytest.mark.parametrize("text,expected", [
    ("n=2", ("n", 2)), ("xScale=1.5", ("xScale", 1.5)), ("bestQuality=true", ("bestQuality", True)),
    ("outputRatio=16:9", ("outputRatio", "16:9")), ("size=720*1280", ("size", "720*1280")),
    ("seed=", ("seed", "")), ("negativePrompt=a=b", ("negativePrompt", "a=b")), ("style=\"1\"", ("style", "1")),
])
def test_param_values_are_json_when_they_parse(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", " =x"])
def test_a_param_without_a_name_is_a_usage_error(text):
    with pytest.raises(typer.BadParameter):
        parse_param(text)


@pytest.mark.parametrize("status,cls,code", [
    (400, BadRequest, 2), (401, AuthError, 3), (402, InsufficientPoints, 3), (403, AuthError, 3),
    (404, NotFound, 2), (409, Conflict, 2), (413, BadRequest, 2), (429, RateLimited, 3),
    (500, ServerError, 4), (503, ServerError, 4),
])
def test_each_status_has_its_exception_and_exit_code(status, cls, code):
    error = error_for(status, status, "the API's message", {"x": 1})
    assert type(error) is cls and error.code == status and error.message == "the API's message"
    assert error.data == {"x": 1} and exit_code(error) == code


def test_gateway_errors_without_a_code_take_the_status():
    error = error_for(401, None, "Unauthorized")
    assert error.code == 401 and str(error) == "Unauthorized (HTTP 401)"


def test_network_and_wait_errors_exit_codes():
    assert exit_code(NetworkError("refused")) == 4
    assert exit_code(WaitTimeout("still running", None)) == 1


def test_progress_shows_queue_position_only_while_waiting():
    queued = Task(taskNo="TASK-1", modelName="wanx-v1", status="queued", queuePosition=3)
    assert describe(queued) == "TASK-1 queued, queue position 3"
    assert describe(queued, with_task_no=False) == "queued, queue position 3"
    assert describe(queued.model_copy(update={"status": "completed"})) == "TASK-1 completed"
    assert describe(Task(taskNo="TASK-1", modelName="wanx-v1", status="processing")) == "TASK-1 processing"
