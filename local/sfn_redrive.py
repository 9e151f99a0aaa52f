"""RedriveExecution for moto's Step Functions interpreter (moto 5.2.5 answers it with HTTP 500).

AWS semantics (API reference, "RedriveExecution" and "Redriving executions"):
- only a FAILED, TIMED_OUT or ABORTED Standard execution, within 14 days of its stop, is redrivable;
  otherwise ExecutionNotRedrivable with the reason DescribeExecution gives as redriveStatusReason;
- the same execution ARN, definition and input: the run resumes at the state it stopped in, with
  the input that state received, and the states that succeeded are not run again;
- the history goes on (ExecutionRedriven, then the resumed states), the state machine timeout counts
  from the redrive, and redriveCount / redriveDate appear in DescribeExecution and ListExecutions
  (ListExecutions filters them with redriveFilter REDRIVEN / NOT_REDRIVEN);
- a repeated clientToken is idempotent.

Seam: the interpreter's `ExecutionWorker` (moto.stepfunctions.parser.backend.execution_worker), whose
Environment holds the history and the program. The redrive worker continues the failed run's
EventManager and evaluates the program from the state that failed. local/seams.py registers what it
replaces and reads; tests/workflow/test_moto_seams.py fails if those internals move. Inline Map / Parallel states are re-run as a whole (AWS re-runs only
their failed branches); this application's workflow has neither.
"""
from __future__ import annotations

import copy
import datetime
import json
import threading
from typing import Callable

from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.exceptions import ValidationException
from moto.stepfunctions.parser.api import (
    ExecutionRedrivenEventDetails,
    ExecutionStatus,
    HistoryEventType,
    StateMachineType,
)
from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.parser.utils import TMP_THREADS
from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.stepfunctions.utils import PAGINATION_MODEL
from moto.utilities.paginator import paginate

from local import seams

MOTO_HAS_REDRIVE = hasattr(sfn_responses.StepFunctionResponse, "redrive_execution")  # the seam test watches this
REDRIVABLE_PERIOD = datetime.timedelta(days=14)
MAX_OPEN_TIME = datetime.timedelta(days=365)
HISTORY_EVENT_LIMIT = 25_000
REDRIVABLE, NOT_REDRIVABLE = "REDRIVABLE", "NOT_REDRIVABLE"
_LOCK = threading.Lock()


class ExecutionNotRedrivable(AWSError):
    TYPE = "ExecutionNotRedrivable"
    STATUS = 400


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)


# ------------------------------------------------------------------------ redrive bookkeeping
def redrive_count(execution) -> int:
    return getattr(execution, "redrive_count", 0)


def redrive_status(execution, now: datetime.datetime | None = None) -> tuple[str, str | None]:
    """(redriveStatus, redriveStatusReason) as DescribeExecution reports them."""
    now = now or _now()
    status = execution.status
    if getattr(execution, "sm_type", StateMachineType.STANDARD) != StateMachineType.STANDARD:
        return NOT_REDRIVABLE, "Execution is of type EXPRESS and cannot be redriven"
    if status in (ExecutionStatus.RUNNING, ExecutionStatus.SUCCEEDED):
        return NOT_REDRIVABLE, f"Execution is {status} and cannot be redriven"
    if not isinstance(execution, Execution) or execution.exec_worker is None or execution.exec_worker.env is None:
        return NOT_REDRIVABLE, "Execution has no history to redrive from"
    if now - execution.start_date > MAX_OPEN_TIME:
        return NOT_REDRIVABLE, "Execution has exceeded the max execution time"
    if execution.stop_date is not None and now - execution.stop_date > REDRIVABLE_PERIOD:
        return NOT_REDRIVABLE, "Execution redrivable period exceeded"
    if len(execution.exec_worker.env.event_manager.get_event_history()) >= HISTORY_EVENT_LIMIT:
        return NOT_REDRIVABLE, "Execution history event limit exceeded"
    return REDRIVABLE, None


def _resume_point(execution: Execution, program) -> tuple[str, object]:
    """The top-level state the run stopped in and the input it entered with."""
    events = execution.exec_worker.env.event_manager.get_event_history()
    top_level = program.states.states
    for event in reversed(events):
        entered = event.get("stateEnteredEventDetails")
        if entered and entered.get("name") in top_level:
            return entered["name"], json.loads(entered.get("input") or "null")
    return program.start_at.start_at_name, execution.input_data


class RedriveExecutionWorker(ExecutionWorker):
    """Continues a stopped run: same history (events go on), evaluation from the state that stopped."""

    def __init__(self, execution: Execution, redrive_count: int, redrive_date: datetime.datetime):
        super().__init__(
            evaluation_details=execution.exec_worker._evaluation_details,
            exec_comm=execution._get_start_execution_worker_comm(),
            cloud_watch_logging_session=execution._cloud_watch_logging_session,
            activity_store=execution._activity_store,
        )
        self._execution = execution
        self._previous = execution.exec_worker
        self._redrive_count = redrive_count
        self._redrive_date = redrive_date
        self._program = None

    def _get_evaluation_environment(self):
        env = super()._get_evaluation_environment()
        history = self._previous.env.event_manager
        last_event_id = max((e["id"] for e in history.get_event_history()), default=0)
        env.event_manager = history
        env.event_history_context.source_event_id = last_event_id
        env.event_history_context.last_published_event_id = last_event_id
        execution_data = env.states.context_object.context_object_data["Execution"]
        execution_data["RedriveCount"] = self._redrive_count
        execution_data["RedriveTime"] = self._redrive_date.isoformat()
        return env

    def prepare(self) -> None:
        """Synchronously: write ExecutionRedriven and position the program, so the caller sees both."""
        program = self._get_evaluation_entrypoint()
        resume_at, state_input = _resume_point(self._execution, program)
        self.env = self._get_evaluation_environment()
        self.env.event_manager.add_event(
            context=self.env.event_history_context,
            event_type=HistoryEventType.ExecutionRedriven,
            event_details=EventDetails(
                executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=self._redrive_count)
            ),
        )
        self.env.states.reset(input_value=state_input)
        self._program = copy.copy(program)
        self._program.start_at = StartAt(resume_at)  # Program.eval starts there; its timeout counts from now

    def _execution_logic(self):
        self._program.eval(self.env)
        self._execution_communication.terminated()

    def start(self):
        thread = threading.Thread(target=self._execution_logic, daemon=True)
        TMP_THREADS.append(thread)
        thread.start()


def redrive(execution: Execution, client_token: str | None = None) -> datetime.datetime:
    """Redrive one parser Execution in place; returns the redrive date."""
    with _LOCK:
        if client_token and client_token == getattr(execution, "redrive_client_token", None):
            return execution.redrive_date
        status, reason = redrive_status(execution)
        if status != REDRIVABLE:
            raise ExecutionNotRedrivable(reason)
        count, date = redrive_count(execution) + 1, _now()
        worker = RedriveExecutionWorker(execution, count, date)
        worker.prepare()
        execution.exec_worker = worker
        execution.exec_status = ExecutionStatus.RUNNING
        execution.stop_date = None
        execution.output = None
        execution.error = None
        execution.cause = None
        execution.redrive_count = count
        execution.redrive_date = date
        execution.redrive_client_token = client_token
        worker.start()
        return date


# ------------------------------------------------------------------------------- the backend
def _backend_redrive_execution(self, execution_arn: str, client_token: str | None = None) -> datetime.datetime:
    return redrive(self.describe_execution(execution_arn), client_token)


@paginate(pagination_model=PAGINATION_MODEL)
def list_executions(self, state_machine_arn: str, status_filter: str | None = None,
                             redrive_filter: str | None = None) -> list:
    executions = self.describe_state_machine(state_machine_arn).executions
    if status_filter:
        executions = [e for e in executions if e.status == status_filter]
    if redrive_filter == "REDRIVEN":
        executions = [e for e in executions if redrive_count(e) > 0]
    elif redrive_filter == "NOT_REDRIVEN":
        executions = [e for e in executions if redrive_count(e) == 0]
    return sorted(executions, key=lambda x: x.start_date, reverse=True)


# ------------------------------------------------------------------------------ the responses
_ORIGINAL_DESCRIBE = sfn_responses.StepFunctionResponse.describe_execution
_ORIGINAL_LIST = sfn_responses.StepFunctionResponse.list_executions


def _redrive_fields(execution, *, describe: bool) -> dict:
    fields = {"redriveCount": redrive_count(execution)}
    if getattr(execution, "redrive_date", None) is not None:
        fields["redriveDate"] = execution.redrive_date
    if describe:
        status, reason = redrive_status(execution)
        fields["redriveStatus"] = status
        if reason:
            fields["redriveStatusReason"] = reason
    return fields


def _response_redrive_execution(self) -> ActionResult:
    arn = self._get_param("executionArn")
    backend = self.stepfunction_backend
    if not isinstance(backend, StepFunctionsParserBackend):
        raise ValidationException("RedriveExecution needs executing state machines "
                                  '(moto config {"stepfunctions": {"execute_state_machine": true}})')
    date = backend.redrive_execution(arn, self._get_param("clientToken"))
    return ActionResult({"redriveDate": date})


def _response_describe_execution(self) -> ActionResult:
    result = _ORIGINAL_DESCRIBE(self)
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    result.result.update(_redrive_fields(execution, describe=True))
    return result


def _response_list_executions(self) -> ActionResult:
    arn = self._get_param("stateMachineArn")
    redrive_filter = self._get_param("redriveFilter")
    if redrive_filter not in (None, "REDRIVEN", "NOT_REDRIVEN"):
        raise ValidationException(f"1 validation error detected: Value '{redrive_filter}' at 'redriveFilter' "
                                  "failed to satisfy constraint: Member must satisfy enum value set: "
                                  "[REDRIVEN, NOT_REDRIVEN]")
    backend = self.stepfunction_backend
    if not isinstance(backend, StepFunctionsParserBackend):
        return _ORIGINAL_LIST(self)
    state_machine = backend.describe_state_machine(arn)
    results, next_token = backend.list_executions(
        arn, status_filter=self._get_param("statusFilter"), redrive_filter=redrive_filter,
        max_results=self._get_int_param("maxResults"), next_token=self._get_param("nextToken"),
    )
    executions = []
    for execution in results:
        item = {"executionArn": execution.execution_arn, "name": execution.name, "startDate": execution.start_date,
                "stateMachineArn": state_machine.arn, "status": execution.status,
                **_redrive_fields(execution, describe=False)}
        if execution.stop_date is not None and execution.status != ExecutionStatus.RUNNING:
            item["stopDate"] = execution.stop_date
        executions.append(item)
    return ActionResult({"executions": executions, "nextToken": next_token})


def install() -> Callable[[], None]:
    """Add RedriveExecution (and the redrive fields) to moto; returns the function that undoes it."""
    backend = "moto.stepfunctions.parser.models:StepFunctionsParserBackend"
    response = "moto.stepfunctions.responses:StepFunctionResponse"
    return seams.patch_all({
        f"{backend}.redrive_execution": _backend_redrive_execution,
        f"{backend}.list_executions": list_executions,  # the paginator keys on this name
        f"{response}.redrive_execution": _response_redrive_execution,
        f"{response}.describe_execution": _response_describe_execution,
        f"{response}.list_executions": _response_list_executions,
    })

