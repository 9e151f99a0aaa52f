"""The sweep's Attention index: unsettled tasks spread over 16 shards (no partition takes every task), keys
only; the sweep pages through every shard and stops at its time budget, the next run going on from there."""
from __future__ import annotations

from aigc.core.vocab import TaskStatus
from aigc.domain import settlement, tasks
from aigc.store.db import TaskItem
from tests.domain.support import reload, submitted

PAST = "2000-01-01T00:00:00.000Z"


def _due(count: int) -> list[TaskItem]:
    made = []
    for n in range(count):
        task = submitted(f"user{n}")
        task.update(actions=[TaskItem.attention_at.set(PAST)])  # its deadline long gone, no execution running
        made.append(task)
    return made


def test_unsettled_tasks_spread_over_the_shards_and_every_page_of_each_is_read(sfn):
    made = _due(12)
    assert len({task.unsettled for task in made}) >= 4  # 12 tasks, 16 shards: spread, not one key
    found = [task.task_no for task in tasks.due_for_attention(page_size=2)]
    assert sorted(found) == sorted(task.task_no for task in made)  # each once, all pages of all shards
    assert all(isinstance(task.points_cost, (int, float)) for task in tasks.due_for_attention(page_size=2))


def test_the_sweep_stops_at_its_budget_and_the_next_run_goes_on(sfn):
    made = _due(3)
    for task in made:
        sfn.status.pop(task.task_no, None)  # the API died before starting it: no execution

    first = settlement.sweep(budget_seconds=0)
    assert first["seen"] == 0 and first.get("unfinished") is True
    assert all(reload(task).status == TaskStatus.QUEUED for task in made)

    second = settlement.sweep()
    assert second["refunded"] == 3 and not second.get("unfinished")
    assert all(reload(task).refunded and reload(task).unsettled is None for task in made)
