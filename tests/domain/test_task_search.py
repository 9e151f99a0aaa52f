"""The admins' task search (aigc.domain.task_search) on moto's DynamoDB: newest first across the day's
shards and across days, every task once whatever the page size, filters on the index entries, a
page bounded by what it may read, never a Scan."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aigc.core.errors import BadRequest
from aigc.core.vocab import TaskStatus
from aigc.domain import points, task_search, tasks
from aigc.domain.task_search import Filters
from aigc.store.db import TaskItem
from tests.domain.support import rejected_upload, submitted

T0 = datetime(2031, 5, 6, 22, 0, tzinfo=timezone.utc)
WANX = "wanx-v1"


@pytest.fixture
def made(clock):
    """12 tasks over two days (a minute apart, 6 before midnight and 6 after), two users, two models;
    the third of each day failed."""
    out = []
    for i in range(12):
        clock.freeze(T0 + timedelta(hours=1.5) * (i // 6) + timedelta(minutes=i))
        task = submitted("alice" if i % 2 else "bob", WANX if i % 4 == 0 else "image-out-painting")
        if i % 6 == 2:
            assert points.refund_task(task, status=TaskStatus.FAILED, error_code="InternalError.Algo",
                                      error_message="failed")
        out.append(task.task_no)
    return list(reversed(out))  # newest first


def everything(filters: Filters, size: int, start=T0 - timedelta(hours=1), end=T0 + timedelta(days=1)) -> list:
    found, token, pages = [], None, 0
    while True:
        page = task_search.search(filters, start=start, end=end, size=size, token=token)
        assert len(page.items) <= size
        found += [item.task_no for item in page.items]
        pages += 1
        token = page.next_token
        if token is None:
            return found
        assert pages < 50


def test_every_task_once_newest_first_across_shards_and_days(made):
    assert len(set(made)) == 12
    for size in (1, 2, 5, 12, 100):
        assert everything(Filters(), size) == made, size


def test_a_page_holds_whole_tasks_read_by_key(made):
    page = task_search.search(Filters(), start=T0, end=T0 + timedelta(days=1), size=3, token=None)
    first = page.items[0]
    assert first.task_no == made[0] and first.prompt is None and first.points_cost > 0 and first.image_urls


def test_filters(made):
    for filters, expected in [
        (Filters(model=WANX), lambda t: t.model_name == WANX),
        (Filters(status=TaskStatus.FAILED), lambda t: t.status == TaskStatus.FAILED),
        (Filters(user_id="alice"), lambda t: t.user_id == "alice"),
        (Filters(user_id="alice", status=TaskStatus.QUEUED), lambda t: t.user_id == "alice" and t.status == "queued"),
        (Filters(error_code="InternalError.Algo"), lambda t: t.error_code == "InternalError.Algo"),
        (Filters(model="no-such-model"), lambda t: False),
    ]:
        matching = [n for n in made if expected(tasks.get_task(n))]
        assert matching or filters.model == "no-such-model"
        assert everything(filters, 2) == matching, filters
        assert everything(filters, 100) == matching, filters


def test_the_time_range_bounds_the_search(made):
    first_day = [n for n in made if tasks.get_task(n).created_at < "2031-05-07"]
    assert everything(Filters(), 4, end=datetime(2031, 5, 7, tzinfo=timezone.utc)) == first_day
    assert everything(Filters(user_id="bob"), 4, end=datetime(2031, 5, 7, tzinfo=timezone.utc)) == [
        n for n in first_day if tasks.get_task(n).user_id == "bob"]


def test_a_rarely_matching_filter_stops_at_its_budget_with_a_token(made, monkeypatch):
    monkeypatch.setattr(task_search, "MAX_EVALUATED", 5)
    page = task_search.search(Filters(model="no-such-model"), start=T0 - timedelta(hours=1),
                              end=T0 + timedelta(days=1), size=10, token=None)
    assert page.items == [] and page.next_token is not None
    assert everything(Filters(status=TaskStatus.FAILED), 10) == [
        n for n in made if tasks.get_task(n).status == TaskStatus.FAILED]


def test_an_unfiltered_page_reads_about_shards_times_size(made, monkeypatch):
    """O(page): the index queries read at most SEARCH_SHARDS x (size + 1) entries a day touched."""
    read = []
    query = TaskItem.tasks_by_time.query

    def counting(*args, **kwargs):
        for item in query(*args, **kwargs):
            read.append(item)
            yield item

    monkeypatch.setattr(TaskItem.tasks_by_time, "query", counting)
    task_search.search(Filters(), start=T0 - timedelta(hours=1), end=T0 + timedelta(days=1), size=2, token=None)
    assert len(read) <= tasks.SEARCH_SHARDS * 3


def test_tokens_and_ranges_are_checked():
    with pytest.raises(BadRequest, match="nextToken"):
        task_search.search(Filters(), start=T0, end=T0 + timedelta(hours=1), size=5, token="bm9wZQ")
    with pytest.raises(BadRequest, match="31 days"):
        task_search.window(T0, T0 + timedelta(days=40))
    with pytest.raises(BadRequest, match="after from"):
        task_search.window(T0, T0)
    start, end = task_search.window(None, T0.replace(tzinfo=None))
    assert end == T0 and start == T0 - task_search.DEFAULT_SPAN


def test_an_upload_rejected_before_any_charge_is_found_too(clock):
    clock.freeze(T0)
    points.save_uncharged_task(rejected_upload("carol"))
    (found,) = task_search.search(Filters(error_code="Rejected.CorruptImage"), start=T0, end=T0 + timedelta(hours=1),
                                  size=5, token=None).items
    assert found.user_id == "carol" and found.status == TaskStatus.FAILED
