"""The event sources moto does not emulate, driven from the template.

- Step Functions "Execution Status Change" events on EventBridge: moto emits none, so a watcher
  polls the executions and delivers each status an execution run reaches (once per run: a
  redriven execution, local/sfn_redrive.py, is a new run with a higher redriveCount) to the
  functions whose `EventBridgeRule` pattern asks for that status.
- `Schedule` events: run on a local interval (the template's rate is for AWS; the sweep locally
  runs every few seconds so its effect is visible).
"""
from __future__ import annotations

import logging
import threading

import boto3

from local import cfn

log = logging.getLogger("local.events")


def _rules(template: dict, kind: str) -> list[tuple[str, dict]]:
    found = []
    for logical, spec in cfn.functions(template).items():
        for event in spec["events"].values():
            if event.get("Type") == kind:
                found.append((logical, event.get("Properties") or {}))
    return found


def execution_event(described: dict) -> dict:
    detail = {k: described.get(k) for k in ("executionArn", "stateMachineArn", "name", "status", "input",
                                             "error", "cause", "redriveCount", "redriveStatus",
                                             "redriveStatusReason")}
    if described.get("redriveDate") is not None:
        detail["redriveDate"] = int(described["redriveDate"].timestamp() * 1000)  # epoch ms, as EventBridge
    return {"version": "0", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {k: v for k, v in detail.items() if v is not None}}


class EventSources:
    """Background threads that feed execution-status and schedule events to the routed functions."""

    def __init__(self, deployment, *, poll_seconds: float = 1.0, schedule_seconds: float = 10.0):
        self.deployment = deployment
        self.poll_seconds = poll_seconds
        self.schedule_seconds = schedule_seconds
        self._stop = threading.Event()
        self._seen: set[tuple[str, int, str]] = set()  # (execution, redriveCount, status) delivered
        self._threads: list[threading.Thread] = []
        template = deployment.template
        self.status_targets = []
        for logical, props in _rules(template, "EventBridgeRule"):
            pattern = props.get("Pattern") or {}
            if "aws.states" in (pattern.get("source") or []):
                statuses = set(((pattern.get("detail") or {}).get("status")) or [])
                self.status_targets.append((deployment.name(logical), statuses))
        self.schedule_targets = [deployment.name(logical) for logical, _ in _rules(template, "Schedule")]

    def deliver_execution_events(self) -> int:
        """One pass over the executions; returns how many events were delivered."""
        sfn = boto3.client("stepfunctions")
        delivered = 0
        paginator = sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.deployment.state_machine_arn):
            for execution in page["executions"]:
                arn, status, count = execution["executionArn"], execution["status"], execution.get("redriveCount", 0)
                key = (arn, count, status)
                targets = [name for name, statuses in self.status_targets if not statuses or status in statuses]
                if key in self._seen or not targets:
                    continue
                described = sfn.describe_execution(executionArn=arn)
                if (described["status"], described.get("redriveCount", 0)) != (status, count):
                    continue  # it moved on (redriven) since the listing: the next pass sees the new run
                self._seen.add(key)
                event = execution_event(described)
                for function_name in targets:
                    self.deployment.router.invoke(function_name, function_name, event)
                    delivered += 1
        return delivered

    def forget(self, execution_arns) -> None:
        """The executions were pruned (local/retention.py): they will not be listed again."""
        gone = set(execution_arns)
        self._seen.difference_update([key for key in list(self._seen) if key[0] in gone])

    def run_schedules(self) -> None:
        for function_name in self.schedule_targets:
            self.deployment.router.invoke(function_name, function_name,
                                          {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def _loop(self, interval: float, work) -> None:
        while not self._stop.wait(interval):
            try:
                work()
            except Exception:  # keep the local stack alive; the next pass retries
                log.exception("local event source failed")

    def start(self) -> "EventSources":
        for interval, work in ((self.poll_seconds, self.deliver_execution_events),
                               (self.schedule_seconds, self.run_schedules)):
            thread = threading.Thread(target=self._loop, args=(interval, work), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
