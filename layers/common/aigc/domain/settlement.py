"""Settling tasks outside the happy path: user cancels, the reconciler, operator refunds.

The policy (what is refunded at once, what is held for a redrive, when the sweep refunds) is told
once, in docs/ARCHITECTURE.md, "Failures, retries and redrive". Everything here is idempotent with
the workflow's own refund: refunds are keyed by task.
"""
from __future__ import annotations

import json
import time

from aigc.core.errors import Conflict, NotFound
from aigc.core.i18n import Message, _
from aigc.core.observability import count, logger
from aigc.core.vocab import TaskStatus
from aigc.domain import capacity, lots, points, tasks
from aigc.providers import cancel_quietly
from aigc.store import executions
from aigc.store.db import TaskItem

# The reconciler's timeout is 300 s: the sweep stops taking tasks after this, leaving room for the queues,
# the points lots' expiry and a slow last refund.
SWEEP_BUDGET_SECONDS = 200.0


def refund(task: TaskItem, *, status: str, code: str, message: Message | str) -> bool:
    """Refund once (points.refund_task) and record it; False when the task was already settled."""
    refunded = points.refund_task(task, status=status, error_code=code, error_message=message)
    if refunded:
        capacity.finish(task)  # leave the provider queue / give the slot back, and let the queue move
        count("TasksRefunded", model=task.model_name)
        count("PointsRefunded", int(task.points_cost))
        logger.info("task refunded", extra={"task_no": task.task_no, "error_code": code})
    return refunded


def _stop_execution(task: TaskItem, cause: str) -> None:
    """After a refund: stop the execution. If that fails the task stays settled (its steps find it
    so and end), so the caller still succeeds; the failure is logged and counted, never dropped."""
    try:
        executions.stop_if_running(task.execution_name or task.task_no, cause)
    except executions.StepFunctionsError:
        logger.exception("could not stop the execution of a settled task", extra={"task_no": task.task_no})
        count("ExecutionStopFailed")


def _cancel_at_provider(task: TaskItem) -> None:
    cancel_quietly(task.provider, task.provider_task_id, task.provider_account)  # the account its job runs on


def cancel_task(user_id: str, task_no: str) -> TaskItem:
    """The user's cancel: refund and mark cancelled, or 409 when the task already finished."""
    task = tasks.get_user_task(user_id, task_no)
    if tasks.is_settled(task):
        raise Conflict(_("task {task_no} is already {status}; only queued or processing tasks can be cancelled",
                         task_no=task_no, status=task.status))
    # Settle first: cancelling at the provider first lets the workflow see CANCELED and settle the
    # task as failed before this refund, and the user's cancel would answer 409.
    if not refund(task, status=TaskStatus.CANCELLED, code="Cancelled",
                   message=_("cancelled by the user; your points were refunded")):
        task.refresh(consistent_read=True)
        raise Conflict(_("task {task_no} is already {status}; only queued or processing tasks can be cancelled",
                         task_no=task_no, status=task.status))
    count("TasksCancelled", model=task.model_name)
    _cancel_at_provider(task)
    _stop_execution(task, "cancelled by the user")
    task.refresh(consistent_read=True)
    return task


def operator_refund(task_no: str, reason: str) -> TaskItem:
    """An operator's manual refund of an unsettled or held task (the runbook's supported path)."""
    task = tasks.get_task(task_no)
    if not int(task.points_cost or 0):
        raise Conflict(_("task {task_no} was never charged (errorCode {error_code}); nothing to refund",
                         task_no=task_no, error_code=task.error_code))
    if not refund(task, status=TaskStatus.FAILED, code="RefundedByOperator",
                  message=_("refunded by an operator: {reason}", reason=reason)):
        if task.refunded:
            raise Conflict(_("task {task_no} is {status} and already refunded; nothing to refund",
                             task_no=task_no, status=task.status))
        raise Conflict(_("task {task_no} is {status}; nothing to refund", task_no=task_no, status=task.status))
    _stop_execution(task, f"refunded by an operator: {reason}")
    task.refresh(consistent_read=True)
    return task


def _task_of_execution(detail: dict) -> TaskItem | None:
    task_no = None
    try:
        task_no = json.loads(detail.get("input") or "{}").get("taskNo")
    except (TypeError, ValueError):
        pass
    task_no = task_no or detail.get("name")
    try:
        return tasks.get_task(task_no) if task_no else None
    except NotFound:
        return None


def _superseded(detail: dict) -> bool:
    """The event is about an earlier run: the execution was redriven since (it runs again, or a later
    run already ended and sends its own event). EventBridge may deliver late and out of order."""
    now = executions.current_run(detail.get("name") or "") if detail.get("name") else None
    if now is None:
        return False
    status, redrive_count = now
    return status == "RUNNING" or redrive_count > int(detail.get("redriveCount") or 0)


def on_execution_ended(detail: dict, *, hold_grace_seconds: int) -> str:
    """EventBridge 'Step Functions Execution Status Change' for FAILED, TIMED_OUT or ABORTED."""
    task = _task_of_execution(detail)
    status = detail.get("status")
    if task is None:
        logger.warning("execution ended for an unknown task", extra={"execution": detail.get("executionArn")})
        return "unknown-task"
    logger.append_keys(task_no=task.task_no)
    if _superseded(detail):
        logger.info("event of an earlier run of a redriven execution ignored",
                    extra={"status": status, "redrive_count": detail.get("redriveCount", 0)})
        return "superseded"
    # However the execution ended, its task leaves the provider queue and gives its slot back (once).
    capacity.finish(task)
    if tasks.is_settled(task) or tasks.is_held(task):
        return "already-settled"
    if status == "FAILED":
        reason = detail.get("error") or "execution failed"
        if tasks.hold(task, reason, hold_grace_seconds):
            count("TasksHeld", model=task.model_name)
            logger.warning("task held for redrive", extra={"error": reason, "cause": str(detail.get("cause"))[:1000]})
            return "held"
        return "already-settled"
    code = "ExecutionTimedOut" if status == "TIMED_OUT" else "ExecutionAborted"
    message = (_("the task ran too long and was stopped; your points were refunded") if status == "TIMED_OUT"
               else _("the task was stopped by an operator; your points were refunded"))
    _cancel_at_provider(task)
    return "refunded" if refund(task, status=TaskStatus.FAILED, code=code, message=message) else "already-settled"


def sweep(budget_seconds: float = SWEEP_BUDGET_SECONDS) -> dict:
    """Settle tasks whose hold window passed or that outlived their deadline without an execution, as many
    as `budget_seconds` allow (the next run goes on where this one stopped), then let every pool's queue
    move (its pools read from the catalog: nothing is scanned)."""
    outcome = {"refunded": 0, "postponed": 0, "seen": 0}
    stop_at = time.monotonic() + budget_seconds
    for task in tasks.due_for_attention():
        if time.monotonic() > stop_at:
            outcome["unfinished"] = True
            break
        outcome["seen"] += 1
        logger.append_keys(task_no=task.task_no)
        if tasks.is_held(task):
            if refund(task, status=TaskStatus.FAILED, code="InternalError",
                       message=_("the task failed because of an internal error and was not retried in time; "
                                 "your points were refunded")):
                outcome["refunded"] += 1
            continue
        if tasks.is_settled(task):
            continue
        if executions.execution_status(task.execution_name or task.task_no) == "RUNNING":
            tasks.postpone_attention(task)  # its own deadline logic (or execution timeout) will settle it
            outcome["postponed"] += 1
            continue
        _cancel_at_provider(task)
        if refund(task, status=TaskStatus.FAILED, code="Timeout",
                   message=_("the task did not finish in time; your points were refunded")):
            outcome["refunded"] += 1
    outcome["woken"] = capacity.pump_all()  # expired leases back, waiting tasks woken (a lost wake-up)
    logger.info("sweep done", extra=outcome)
    return outcome


def handle_reconcile_event(event: dict, *, hold_grace_seconds: int) -> dict:
    """One entry point for the reconciler: execution status changes, and the schedule: the sweep, then the
    points lots whose expiry has come (aigc.domain.lots.expire_due)."""
    if event.get("detail-type") == "Step Functions Execution Status Change":
        return {"outcome": on_execution_ended(event.get("detail") or {}, hold_grace_seconds=hold_grace_seconds)}
    return {**sweep(), "lotsExpired": lots.expire_due()}
