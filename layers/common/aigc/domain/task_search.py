"""The admins' task search: any user's tasks by time range, newest first, filtered by status, model,
user or error code, cursor-paged. Never a Scan:

- with a user: that user's UserTasks partition over the time range;
- without: TasksByTime, a partition per day and shard (tasks.SEARCH_SHARDS): the day's shards are
  queried newest first and merged, one day after another, so an unfiltered page reads about
  SEARCH_SHARDS x (size + 1) index entries whatever the number of tasks.

Status, model and error code are not keys: they are matched on the index entries (projected for
this) within the time range. One request reads at most MAX_EVALUATED entries: a page whose filters
match rarely comes back short (even empty) with a nextToken to go on from where it stopped.
"""
from __future__ import annotations

import heapq
import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Iterator

from aigc.core.errors import BadRequest
from aigc.core.i18n import _
from aigc.core.timeutil import iso_ms, utcnow
from aigc.domain.tasks import SEARCH_SHARDS
from aigc.store.db import TaskItem
from aigc.store.paging import Cursor, Page

MAX_SPAN = timedelta(days=31)
DEFAULT_SPAN = timedelta(days=7)
MAX_EVALUATED = 1000
SEARCH_CURSOR = Cursor("admin-tasks", "-", {
    "at": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#TASK-[A-Za-z0-9-]{1,80}"),
})


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    model: str | None = None
    user_id: str | None = None
    error_code: str | None = None

    def match(self, item: TaskItem) -> bool:
        return ((self.status is None or item.status == self.status)
                and (self.model is None or item.model_name == self.model)
                and (self.user_id is None or item.user_id == self.user_id)
                and (self.error_code is None or item.error_code == self.error_code))

    @property
    def narrowing(self) -> bool:
        return any((self.status, self.model, self.error_code))


def _key(item: TaskItem) -> str:
    return item.created_key or f"{item.created_at}#{item.task_no}"


def _days(first: datetime, last: datetime) -> list[str]:
    """The UTC days from `last` back to `first`, newest first."""
    day, stop = last.date(), first.date()
    out = []
    while day >= stop:
        out.append(day.isoformat())
        day -= timedelta(days=1)
    return out


def _by_time(lo: str, hi: str, start: datetime, top: datetime, page_size: int) -> Iterator[TaskItem]:
    """TasksByTime entries with lo <= key <= hi, newest first: each day's shards merged, day after day."""
    def day(name: str) -> Iterator[TaskItem]:
        shards = [TaskItem.tasks_by_time.query(f"{name}#{shard}", TaskItem.created_key.between(lo, hi),
                                               scan_index_forward=False, page_size=page_size)
                  for shard in range(SEARCH_SHARDS)]
        return heapq.merge(*shards, key=_key, reverse=True)

    return itertools.chain.from_iterable(day(name) for name in _days(start, top))


def _of_user(user_id: str, lo: str, hi: str, position: str | None, page_size: int) -> Iterator[TaskItem]:
    """The user's tasks created in [lo, hi), newest first, after `position` (the previous page's last
    task, as DynamoDB orders the index: its key is where the query resumes)."""
    start_key = None
    if position:
        created_at, _sep, task_no = position.partition("#")
        start_key = {"user_id": {"S": user_id}, "created_at": {"S": created_at}, "task_no": {"S": task_no}}
    found = TaskItem.user_tasks.query(user_id, TaskItem.created_at.between(lo, hi), scan_index_forward=False,
                                      last_evaluated_key=start_key, page_size=page_size)
    return (item for item in found if item.created_at < hi)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def window(start: datetime | None, end: datetime | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The time range asked for (naive times are UTC): `to` defaults to now, `from` to DEFAULT_SPAN before
    it; at most MAX_SPAN."""
    end = _utc(end or now or utcnow())
    start = _utc(start) if start else end - DEFAULT_SPAN
    if end <= start:
        raise BadRequest(_("to: must be after from"))
    if end - start > MAX_SPAN:
        raise BadRequest(_("from, to: at most {days} days in one search", days=MAX_SPAN.days))
    return start, end


def search(filters: Filters, *, start: datetime, end: datetime, size: int, token: str | None) -> Page[TaskItem]:
    """One page of tasks created in [start, end) that match `filters`, newest first (see the module)."""
    position = SEARCH_CURSOR.start_key(token, "")["at"]["S"] if token else None
    lo, hi = iso_ms(start), iso_ms(end)
    page_size = 100 if filters.narrowing else size + 1
    if filters.user_id:
        entries = _of_user(filters.user_id, lo, hi, position, page_size)
    else:
        top = min(hi, position) if position else hi  # keys are unique: strictly below the last one shown
        newest = datetime.fromisoformat(top[:23] + "+00:00")
        entries = (entry for entry in _by_time(lo, top, start, newest, page_size) if _key(entry) < top)
    found: list[TaskItem] = []
    evaluated, next_at = 0, None
    for entry in entries:
        evaluated += 1
        if filters.match(entry):
            found.append(entry)
            if len(found) > size:
                next_at = _key(found[size - 1])
                break
        if evaluated >= MAX_EVALUATED:
            next_at = _key(entry)
            break
    page = found[:size]
    if not filters.user_id and page:  # the index holds what the filters need; the page is read whole
        full = {item.task_no: item for item in TaskItem.batch_get([item.task_no for item in page])}
        page = [full[item.task_no] for item in page if item.task_no in full]
    next_token = SEARCH_CURSOR.token_after(SimpleNamespace(at=next_at)) if next_at else None
    return Page(page, next_token, None, None, size)
