"""Page tokens: what a client gets back leads to the next item, and anything else is a 400 naming nextToken."""
import base64
import json
from types import SimpleNamespace

import pytest
from aigc.core.errors import BadRequest
from aigc.domain.points import LEDGER_CURSOR
from aigc.domain.tasks import TASK_CURSOR
from aigc.store.paging import read_page

TASK = SimpleNamespace(user_id="alice", created_at="2026-11-22T01:02:03.456Z", task_no="TASK-20261122010203456-0a1b2c3d4e5f6a7b")
ENTRY = SimpleNamespace(user_id="alice", entry="TXN#TASK-1#DEBIT", ledger_time="2026-11-22T01:02:03.456Z#TASK-1#DEBIT")


def test_a_token_stands_for_the_key_of_the_last_item_under_the_callers_own_partition():
    token = TASK_CURSOR.token_after(TASK)
    assert TASK_CURSOR.start_key(token, "alice") == {
        "user_id": {"S": "alice"}, "created_at": {"S": TASK.created_at}, "task_no": {"S": TASK.task_no}}
    # the owner is never taken from the token: bob's call with alice's token stays in bob's list
    assert TASK_CURSOR.start_key(token, "bob")["user_id"] == {"S": "bob"}
    ledger = LEDGER_CURSOR.token_after(ENTRY)
    assert LEDGER_CURSOR.start_key(ledger, "alice") == {
        "user_id": {"S": "alice"}, "entry": {"S": ENTRY.entry}, "ledger_time": {"S": ENTRY.ledger_time}}


def _forge(fields: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


@pytest.mark.parametrize("token", [
    "garbage",
    "!!!!",
    "",
    "x" * 2000,
    _forge(["not", "an", "object"]),
    _forge({"k": "tasks", "created_at": "yesterday", "task_no": TASK.task_no}),
    _forge({"k": "tasks", "created_at": TASK.created_at, "task_no": TASK.task_no, "user_id": "bob"}),
    _forge({"k": "tasks", "created_at": TASK.created_at, "task_no": {"S": "TASK-1"}}),
    _forge({"k": "tasks", "created_at": TASK.created_at}),
    LEDGER_CURSOR.token_after(ENTRY),  # another list's token
])
def test_tokens_we_did_not_issue_are_a_400_naming_next_token(token):
    with pytest.raises(BadRequest) as refused:
        TASK_CURSOR.start_key(token, "alice")
    assert refused.value.message.startswith("nextToken:")


def _pages(items, size, page=1, token=None):
    def query(start, limit):
        position = 0
        if start is not None:
            position = next(i for i, item in enumerate(items) if item.task_no == start["task_no"]["S"]) + 1
        return iter(items[position:position + limit])

    return read_page(query, TASK_CURSOR, owner="alice", page=page, size=size, token=token, total=len(items))


def test_walking_by_token_sees_every_item_once_and_the_last_page_has_no_token():
    items = [SimpleNamespace(user_id="alice", created_at=f"2026-11-22T01:02:{59 - i:02d}.000Z", task_no=f"TASK-{i}")
             for i in range(7)]
    seen, token = [], None
    while True:
        page = _pages(items, 3, token=token)
        seen += page.items
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == items
    assert [len(_pages(items, 3, page=n).items) for n in (1, 2, 3, 4)] == [3, 3, 1, 0]
    assert _pages(items, 3, page=2).items == items[3:6]
    assert _pages(items, 7).next_token is None  # exactly one full page: no token to an empty page
