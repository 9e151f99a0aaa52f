"""StopExecution works at any moment and is final in the local Step Functions, as on AWS.

moto's interpreter keeps running the current state after a StopExecution; when that state then
fails (it finds its evaluation stack cut short, e.g. "'dict' object has no attribute 'region'"),
`Environment.set_error` overwrites the stop, and the execution ends FAILED instead of ABORTED. A
user's cancel that lands just as a queued task is woken did that about once in four runs, leaving a
FAILED execution for an operator to redrive. `install()` makes `set_error` leave a stopped execution
stopped (moto's own `set_ended` and `set_stop` already act only on a running one).

moto also fails a StopExecution that comes before its worker thread has parsed the definition and
created the execution's environment (`'NoneType' object has no attribute 'set_stop'`, a 500), and
ignores one that comes before the program has started running. A cancel right after a submit did
that. `install()` makes the stop wait (up to STARTING_SECONDS) until the program runs, then stop it.

local/seams.py registers both; tests/workflow/test_moto_seams.py fails if a moto upgrade changes either.
"""
from __future__ import annotations

import time
from typing import Callable

from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from local import seams

_ORIGINAL_SET_ERROR = Environment.set_error
_ORIGINAL_STOP = ExecutionWorker.stop
STARTING_SECONDS = 10.0


def _stop(self: ExecutionWorker, stop_date, error, cause) -> None:
    deadline = time.monotonic() + STARTING_SECONDS
    while (self.env is None or self.env._program_state is None) and time.monotonic() < deadline:
        time.sleep(0.005)  # the worker thread is parsing the definition or entering the first state
    if self.env is not None:
        _ORIGINAL_STOP(self, stop_date=stop_date, error=error, cause=cause)


def _set_error(self: Environment, error) -> None:
    with self._state_mutex:  # re-entrant: moto's set_error takes it again
        if not isinstance(self._program_state, ProgramStopped):
            _ORIGINAL_SET_ERROR(self, error)


def install() -> Callable[[], None]:
    """Stop executions however young, and keep them stopped; returns the undo."""
    return seams.patch_all({
        "moto.stepfunctions.parser.asl.eval.environment:Environment.set_error": _set_error,
        "moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker.stop": _stop,
    })
