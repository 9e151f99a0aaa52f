"""StopExecution is final in the local Step Functions, as it is on AWS.

moto's interpreter keeps running the current state after a StopExecution; when that state then
fails (it finds its evaluation stack cut short, e.g. "'dict' object has no attribute 'region'"),
`Environment.set_error` overwrites the stop, and the execution ends FAILED instead of ABORTED. A
user's cancel that lands just as a queued task is woken did that about once in four runs, leaving a
FAILED execution for an operator to redrive. `install()` makes `set_error` leave a stopped execution
stopped (moto's own `set_ended` and `set_stop` already act only on a running one).

tests/workflow/test_moto_seams.py fails if a moto upgrade changes `set_error`.
"""
from __future__ import annotations

from typing import Callable

from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

_ORIGINAL_SET_ERROR = Environment.set_error


def _set_error(self: Environment, error) -> None:
    with self._state_mutex:  # re-entrant: moto's set_error takes it again
        if not isinstance(self._program_state, ProgramStopped):
            _ORIGINAL_SET_ERROR(self, error)


def install() -> Callable[[], None]:
    """Keep stopped executions stopped; returns the undo."""
    Environment.set_error = _set_error

    def uninstall() -> None:
        Environment.set_error = _ORIGINAL_SET_ERROR

    return uninstall
