"""The `aigc` CLI's pure rules: --param parsing, the error -> exception -> exit code mapping (for the
answers the local stack cannot easily give: 403, 429, 5xx), the progress text and the help's flags."""
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
from aigc_client.progress import describe, line, progress_view, stage


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


def _task(status: str, **fields) -> Task:
    return Task(taskNo="TASK-1", modelName="wanx-v1", status=status, **fields)


def test_progress_follows_the_state_not_one_number():
    """Queued: no percentage (not started); processing: the service's estimate, marked as one, or the
    provider's own progress when reported; completed 100%; failed or cancelled: no percentage."""
    assert line(_task("queued", queuePosition=2)) == "TASK-1 queued, queue position 2"
    assert line(_task("queued")) == "TASK-1 queued"
    assert line(_task("processing", progress=20)) == "TASK-1 processing ~20%"
    assert stage(_task("processing", progress=20)).estimated
    assert line(_task("processing", progress=20, providerProgress=64)) == "TASK-1 processing 64%"
    assert line(_task("completed", progress=100)) == "TASK-1 completed 100%"
    assert line(_task("failed", progress=0)) == "TASK-1 failed"
    assert line(_task("cancelled", progress=0)) == "TASK-1 cancelled"


def test_plain_progress_prints_one_line_per_change_of_state():
    import io

    from rich.console import Console

    buffer = io.StringIO()
    states = [_task("queued", queuePosition=2), _task("queued", queuePosition=2), _task("queued", queuePosition=1),
              _task("processing", progress=10), _task("processing", progress=20), _task("completed", progress=100)]
    with progress_view(Console(file=buffer, force_terminal=False)) as show:
        for task in states:
            show(task)
    shown = [text.split(" ", 1)[1] for text in buffer.getvalue().splitlines()]
    assert shown == ["TASK-1 queued, queue position 2", "TASK-1 queued, queue position 1", "TASK-1 processing ~10%",
                     "TASK-1 processing ~20%", "TASK-1 completed 100%"]


def test_flags_show_no_value_in_the_help():
    """--json, --wait and --rotate are flags: the help must not suggest they take a value ("<bool>")."""
    from typer.testing import CliRunner

    from aigc_client.cli import app

    runner = CliRunner()
    for args, flag in ((["--help"], "--json"), (["submit", "--help"], "--wait"), (["wait", "--help"], "--timeout"),
                       (["webhook-secret", "--help"], "--rotate")):
        result = runner.invoke(app, args, env={"COLUMNS": "120", "NO_COLOR": "1"})
        assert result.exit_code == 0, result.output
        [row] = [text for text in result.output.splitlines() if f" {flag} " in text]
        if flag == "--timeout":
            assert "<float>" in row  # options with a value keep their type
        else:
            assert "<bool>" not in row and "--no-" not in row, row
