"""Provider capacity and the fair queue (issue 7), on the real ASL with the simulator enforcing its quota.

Pools are the catalog's (outpainting: 2 at once) unless a test narrows one with PROVIDER_CAPACITY, as
the ProviderCapacity template parameter does. The simulator refuses (429) anything above its own
`max_concurrency` and counts it: the queue must never make it refuse.
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from aigc.domain import capacity
from aigc.core.config import get_settings
from aigc.store.db import TaskItem
from local.apigw import http_event

POOL = "dashscope:image-out-painting"


@pytest.fixture
def sim(simulator):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)

    def configure(**values):
        assert requests.post(f"{simulator.url}/_sim/config", json=values, timeout=5).status_code == 200

    configure(latency_min=0.4, latency_max=0.4)
    yield configure
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)
    requests.post(f"{simulator.url}/_sim/config", json={"latency_min": 0.3, "latency_max": 0.5,
                                                        "max_concurrency": 50}, timeout=5)


@pytest.fixture
def settings(monkeypatch):
    """Change the scheduler's settings as the template parameters would (the handlers run in process)."""

    def apply(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        get_settings.cache_clear()
        capacity._overrides.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()
    capacity._overrides.cache_clear()


def _stats(app) -> dict:
    return requests.get(f"{app.sim.url}/_sim/stats", timeout=5).json()


def _submit(app, user: str, seconds: float | None = None, member: bool = False) -> str:
    claims = {"sub": user, "token_use": "id"}
    if member:
        claims["cognito:groups"] = ["members"]
    url = app.sample_url() + (f"&sim_seconds={seconds}" if seconds is not None else "")
    event = http_event("POST", "/user/ai/tasks/submit", claims=claims,
                       body={"modelName": "image-out-painting", "imageUrl": url, "parameters": {"xScale": 1.5}})
    name = app.deployment.name("ApiFunction")
    payload, errored, _ = app.deployment.router.invoke(name, name, event)
    assert not errored, payload
    response = json.loads(payload)
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])["data"]["taskNo"]


def _wait_for(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _submit_queued(app, user: str, member: bool = False) -> str:
    task_no = _submit(app, user, member=member)
    _wait_for(lambda: _queued(task_no), what=f"{task_no} queued")
    return task_no


def _processing(app, task_no: str, user: str = "alice") -> bool:
    return app.task(task_no, user=user)["status"] == "processing"


def _queued(task_no: str) -> bool:
    """Its execution waits in the queue (its ticket holds the task token)."""
    return task_no in capacity.waiting(capacity.pool_of("image-out-painting"))


def _holders() -> set[str]:
    return set(capacity.holders(capacity.pool_of("image-out-painting")))


def test_a_burst_of_three_times_the_quota_completes_without_a_refusal(app, sim):
    sim(max_concurrency=2)
    app.grant("alice", 1000)
    task_nos = [_submit(app, "alice", seconds=2) for _ in range(6)]
    for task_no in task_nos:
        assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
        assert app.task(task_no)["status"] == "completed"
    stats = _stats(app)
    assert stats["refused"] == 0 and stats["created"] == 6, stats
    assert stats["peak_concurrency"] == 2, stats  # the quota was used, never exceeded
    assert app.balance("alice") == 1000 - 6 * 10
    assert _holders() == set() and not capacity.waiting(capacity.pool_of("image-out-painting"))
    waited = [t for t in task_nos if "WaitForSlot" in app.states_visited(t)]
    assert len(waited) >= 3  # only 2 could start at once
    # Waiting cost: SubmitToProvider + AfterSubmit again and the WaitForSlot task, however long the wait.
    states = app.states_visited(waited[-1])
    assert states.count("WaitForSlot") == 1 and states.count("SubmitToProvider") == 2, states


@pytest.fixture
def provider_keys(app, sim):
    """The provider keys' secret with `count` DashScope keys, as an operator adds them (no deploy), and the
    simulator with as many accounts."""
    import os

    import boto3
    from aws_lambda_powertools.utilities import parameters

    def use(count: int):
        sim(dashscope_keys=count)
        keys = requests.get(f"{app.sim.url}/_sim/config", timeout=5).json()["dashscope_api_key"]
        keys = [keys] + [f"{keys}-{n}" for n in range(2, count + 1)]
        boto3.client("secretsmanager").put_secret_value(
            SecretId=os.environ["PROVIDER_SECRET_ARN"],
            SecretString=json.dumps({"dashscope_api_keys": keys, "openai_api_key": "sim-openai-key"}))
        parameters.clear_caches()

    yield use
    parameters.clear_caches()


def test_two_keys_run_twice_the_quota_each_task_on_its_own_account(app, sim, settings, provider_keys):
    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}))  # per account, as the simulator's quota
    sim(max_concurrency=1)
    provider_keys(2)
    app.grant("alice", 1000)
    task_nos = [_submit(app, "alice", seconds=1.5) for _ in range(4)]
    for task_no in task_nos:
        assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
        assert app.task(task_no)["status"] == "completed"  # polled with the key of its account (else UNKNOWN)
    stats = _stats(app)
    assert stats["refused"] == 0 and stats["created"] == 4, stats
    assert sorted(stats["by_key"]) == ["1", "2"], stats  # both accounts ran jobs, one at a time each
    assert all(account["peak_concurrency"] == 1 for account in stats["by_key"].values()), stats
    accounts = {TaskItem.get(task_no).provider_account for task_no in task_nos}
    assert len(accounts) == 2
    assert _holders() == set() and not capacity.waiting(capacity.pool_of("image-out-painting"))


def test_members_go_first_and_each_tier_is_first_come_first_served(app, sim, settings):
    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}))
    sim(max_concurrency=1)
    for user in ("alice", "bob"):
        app.grant(user, 1000)
    blocker = _submit(app, "alice", seconds=3600)
    _wait_for(lambda: _processing(app, blocker), what="the blocker to start")
    # First come, first served: in the order the tasks reach the provider step (their number), which follows the
    # submit by a few ms; each waits to be queued here before the next, so the order is the submit order.
    normal = [_submit_queued(app, "alice") for _ in range(3)]
    assert [app.task(t)["queuePosition"] for t in normal] == [1, 2, 3]
    members = [_submit_queued(app, "bob", member=True) for _ in range(2)]
    views = {t: app.task(t, user="bob" if t in members else "alice") for t in normal + members}
    assert [views[t]["queuePosition"] for t in members + normal] == [1, 2, 3, 4, 5]
    assert all(views[t]["status"] == "queued" and views[t]["estimatedStartTime"] for t in views)
    assert app.task(blocker)["queuePosition"] is None
    assert _stats(app)["refused"] == 0  # the queue never sent more than the quota

    # The blocker's slot goes to the head. It is freed before the provider has dropped the cancelled
    # job, so the head may meet one 429 there, which the workflow's throttle retry absorbs.
    assert app.api("POST", f"/user/ai/tasks/{blocker}/cancel")[0] == 200
    for task_no in normal + members:
        assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
    started = sorted(normal + members, key=lambda t: TaskItem.get(t).started_at)
    assert started == members + normal
    assert _stats(app)["created"] == 1 + len(normal + members)


def test_a_crashed_holders_slot_comes_back(app, sim, settings):
    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}))
    sim(max_concurrency=1)
    app.grant("alice", 100)
    pool = capacity.pool_of("image-out-painting")
    # A holder that crashed without anyone releasing it: its lease runs out 8 s from now.
    capacity._ensure(pool, pool.accounts[0].id)
    expires = time.time() + 8
    assert capacity._grant(pool, pool.accounts[0], "TASK-crashed", 8)
    task_no = _submit(app, "alice")
    _wait_for(lambda: _queued(task_no), what="the task to queue behind the dead holder")
    assert capacity.wake(pool) == 0  # the slot is still leased: nothing to hand over
    time.sleep(max(0.0, expires - time.time()) + 1)
    assert app.sweep()["woken"] == 1  # the sweep reclaims the expired lease and hands the slot over
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    assert app.task(task_no)["status"] == "completed"
    assert _holders() == set() and _stats(app)["refused"] == 0


def test_queue_timeout_refunds_and_says_why(app, sim, settings):
    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}), QUEUE_TIMEOUT_SECONDS=3)
    app.grant("alice", 100)
    blocker = _submit(app, "alice", seconds=3600)
    _wait_for(lambda: _processing(app, blocker), what="the blocker to start")
    waiting = _submit(app, "alice")
    assert app.wait_execution(waiting, timeout=30)["status"] == "SUCCEEDED"
    task = app.task(waiting)
    assert task["status"] == "failed" and task["errorCode"] == "QueueTimeout", task
    assert "waited 3 seconds in the queue" in task["errorMessage"] and "refunded" in task["errorMessage"]
    assert app.ledger("alice", waiting) == [("DEBIT", -10), ("REFUND", 10)]
    assert _holders() == {blocker}  # the refund freed nothing it did not hold
    assert app.api("POST", f"/user/ai/tasks/{blocker}/cancel")[0] == 200
    assert _holders() == set()


def test_cancel_while_queued_refunds_and_frees_nothing_it_did_not_hold(app, sim, settings):
    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}))
    sim(max_concurrency=1)
    app.grant("alice", 100)
    blocker = _submit(app, "alice", seconds=3600)
    _wait_for(lambda: _processing(app, blocker), what="the blocker to start")
    cancelled, after = _submit(app, "alice"), _submit(app, "alice")
    _wait_for(lambda: _queued(cancelled) and _queued(after), what="both queued")
    status, body = app.api("POST", f"/user/ai/tasks/{cancelled}/cancel")
    assert status == 200 and body["data"]["status"] == "cancelled", body
    assert _holders() == {blocker} and not _queued(cancelled)
    assert app.task(after)["queuePosition"] == 1
    assert app.wait_execution(cancelled)["status"] in ("ABORTED", "SUCCEEDED")
    assert _stats(app)["refused"] == 0  # the queue never sent more than the quota
    # Cancelling the blocker frees its slot before the provider has dropped the job, so `after` may
    # meet one 429 there, which the workflow's throttle retry absorbs.
    assert app.api("POST", f"/user/ai/tasks/{blocker}/cancel")[0] == 200
    assert app.wait_execution(after, timeout=60)["status"] == "SUCCEEDED"
    assert app.task(after)["status"] == "completed"
    assert app.ledger("alice", cancelled) == [("DEBIT", -10), ("REFUND", 10)]
    assert app.balance("alice") == 100 - 10
    assert _stats(app)["created"] == 2  # the cancelled task never reached the provider


def test_a_submit_that_could_not_start_in_time_is_refused_with_retry_after(app, sim, settings):
    """Admission control through the API: 429, Retry-After, the estimate in the message, nothing charged."""
    from aigc.domain import durations

    settings(PROVIDER_CAPACITY=json.dumps({POOL: {"concurrency": 1}}), QUEUE_TIMEOUT_SECONDS=60)
    durations._cache.clear()  # the catalog's prior: 20 s a job, + 2 s of hand-over
    capacity._refusals.clear()
    sim(max_concurrency=1)
    app.grant("alice", 100)
    blocker = _submit(app, "alice", seconds=3600)
    _wait_for(lambda: _processing(app, blocker), what="the blocker to start")
    waiting = [_submit(app, "alice") for _ in range(2)]  # (1 + 0.5) x 22 s = 33 s: within 0.9 x 60 s
    _wait_for(lambda: all(_queued(t) for t in waiting), what="both queued")

    status, headers, body = app.api_with_headers("POST", "/user/ai/tasks/submit", body={
        "modelName": "image-out-painting", "imageUrl": app.sample_url(), "parameters": {"xScale": 1.5}})
    assert status == 429, body  # (2 + 0.5) x 22 s = 55 s > 54 s
    assert int(headers["Retry-After"]) == 1 and "2 tasks are waiting" in body["message"], (headers, body)
    assert app.balance("alice") == 100 - 3 * 10  # the refused one charged nothing
    assert app.api("POST", f"/user/ai/tasks/{blocker}/cancel")[0] == 200
    for task_no in waiting:
        assert app.wait_execution(task_no, timeout=60)["status"] == "SUCCEEDED"
