"""The named vocabularies are the only source of the values the workflow and the API branch on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

from aigc.api.schemas import TaskStatusValue
from aigc.core.vocab import Outcome, TaskStatus

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "task_workflow.asl.json"


def _choice_values(states: dict) -> set[str]:
    found = set()
    for state in states.values():
        if state["Type"] == "Choice":
            for choice in state["Choices"]:
                if choice.get("Variable") == "$.job.status":
                    found.add(choice["StringEquals"])
        for branch in state.get("Branches", []):
            found |= _choice_values(branch["States"])
    return found


def test_the_state_machine_branches_on_exactly_the_workflow_outcomes() -> None:
    branched = _choice_values(json.loads(ASL.read_text())["States"])
    # ADMITTED and QUEUE_TIMEOUT never reach a Choice: the first answers the slot's task token, the
    # second is the queue wait's timeout, caught into the refund step.
    assert branched == set(Outcome) - {Outcome.ADMITTED, Outcome.QUEUE_TIMEOUT}


def test_the_api_shows_exactly_the_task_statuses() -> None:
    assert set(get_args(TaskStatusValue)) == {status.value for status in TaskStatus}
