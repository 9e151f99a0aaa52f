"""A status-filtered task list reads only the tasks with that status (the UserStatus index), whatever the
user's history, and pages through them by nextToken like the unfiltered list."""
from __future__ import annotations

import botocore.client

from aigc.core.vocab import TaskStatus
from aigc.domain import settlement, tasks
from tests.domain.support import submitted


def _reads(call):
    """Items DynamoDB read (ScannedCount of queries, items of batch gets) while `call` ran, and its result."""
    read = []
    real = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        answer = real(client, operation, params)
        if operation == "Query":
            read.append(answer.get("ScannedCount", 0))
        elif operation == "BatchGetItem":
            read.append(sum(len(items) for items in answer["Responses"].values()))
        return answer

    botocore.client.BaseClient._make_api_call = record
    try:
        return call(), sum(read)
    finally:
        botocore.client.BaseClient._make_api_call = real


def test_a_status_filtered_list_reads_only_matching_tasks():
    made = [submitted("alice") for _ in range(24)]
    cancelled = made[3:6]
    for task in cancelled:
        settlement.cancel_task("alice", task.task_no)

    page, read = _reads(lambda: tasks.list_user_tasks("alice", page=1, size=2, task_type=None,
                                                       status=TaskStatus.CANCELLED))
    assert [t.task_no for t in page.items] == [cancelled[2].task_no, cancelled[1].task_no]  # newest first
    assert all(t.status == TaskStatus.CANCELLED and t.prompt is None and t.user_id == "alice" for t in page.items)
    assert read <= 2 + 1 + 2  # the page and one more from the index, then the page's own items: not 24
    rest, _ = _reads(lambda: tasks.list_user_tasks("alice", page=1, size=2, task_type=None,
                                                    status=TaskStatus.CANCELLED, token=page.next_token))
    assert [t.task_no for t in rest.items] == [cancelled[0].task_no] and rest.next_token is None

    queued = tasks.list_user_tasks("alice", page=1, size=50, task_type="outpainting", status=TaskStatus.QUEUED)
    assert len(queued.items) == 21 and queued.total is None
    assert tasks.list_user_tasks("alice", page=1, size=5, task_type="text_to_image", status=TaskStatus.QUEUED).items == []
