"""The fast tier's support: tables from the template, fakes at the edges, and the books.

- Tables come from template.yaml (local.cfn, as the local stack builds them), and their names reach
  the code through the same environment variables the template gives the functions: nothing here
  describes a table a second time (only their encryption is left out: see create_tables).
- Step Functions is `FakeExecutions` (the functions of aigc.store.executions replaced; a real call
  fails the test), providers are `FakeProvider` (aigc.providers.get_provider replaced), S3 is
  `FakeStorage` (the two copy functions the store step calls). No Lambda, no state machine, no HTTP.
- After every test `check_books` reads the whole ledger back: each user's balance equals the sum of
  their entries (grants - debits + refunds) and is never negative, every charged task has exactly
  one debit, at most one refund, a completed task none, and a settled task holds no provider slot.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from aigc.core.catalog import get_model
from aigc.core.config import get_settings
from aigc.core.vocab import JobStatus, LedgerKind, TaskStatus
from aigc.domain import capacity, durations, points, pricing, tasks
from aigc.providers import base
from aigc.store import executions, storage
from aigc.store.db import PointsItem, SchedulerItem, TaskItem
from local import cfn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = cfn.load_template(ROOT / "template.yaml")
REGION = "us-east-1"
OUTPAINTING = "image-out-painting"
POOL = get_model(OUTPAINTING).pool
RESULT_URL = "https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/out/{job}.png"


def table_variables(template: dict) -> dict[str, str]:
    """Environment variable -> table logical id, as the template's functions receive them
    (`POINTS_TABLE: !Ref PointsTable` ...)."""
    tables = set(cfn.resources_of_type(template, "AWS::DynamoDB::Table"))
    found: dict[str, str] = {}
    for spec in cfn.functions(template).values():
        for name, value in (spec["environment"] or {}).items():
            if isinstance(value, dict) and value.get("Ref") in tables:
                found[name] = value["Ref"]
    return found


TABLE_VARIABLES = table_variables(TEMPLATE)
ENVIRONMENT = {
    **{variable: f"domain-{logical}" for variable, logical in TABLE_VARIABLES.items()},
    "RESULTS_BUCKET": "domain-results",
    "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:domain-tasks",
    # One turn of the provider's submit rate per test is plenty; concurrency stays the catalog's (2).
    "PROVIDER_CAPACITY": '{"*": {"submitsPerSecond": 1000}}',
    "SUBMIT_RATE_LIMIT_PER_MINUTE": "0",
}


def clear_caches() -> None:
    get_settings.cache_clear()
    capacity._overrides.cache_clear()
    durations._cache.clear()
    capacity._refusals.clear()
    capacity._joins.clear()


@functools.cache
def dynamodb():
    """One client for the whole session: moto intercepts it under every later mock_aws() too, and a
    new client costs more than creating the tables."""
    return boto3.client("dynamodb", region_name=REGION)


def create_tables() -> None:
    client = dynamodb()
    for logical in cfn.resources_of_type(TEMPLATE, "AWS::DynamoDB::Table"):
        name = f"domain-{logical}"
        table = cfn.dynamodb_table_kwargs(TEMPLATE, logical, name)
        # Encryption at rest changes no rule, and for it moto makes a KMS key (an RSA key, ~70 ms) each test.
        table.pop("SSESpecification", None)
        client.create_table(**table)
        ttl = cfn.ttl_attribute(TEMPLATE, logical)
        if ttl:
            client.update_time_to_live(TableName=name,
                                       TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})


# --- fakes at the edges ---------------------------------------------------------------------


class FakeExecutions:
    """Step Functions as the domain sees it: executions by name, their status, task tokens."""

    REPLACES = ("start_task_execution", "execution_status", "current_run", "stop_if_running", "send_task_success")

    def __init__(self):
        self.status: dict[str, str] = {}
        self.redrives: dict[str, int] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.woken: list[tuple[str, dict]] = []  # (token, output) of every SendTaskSuccess that landed
        self.gone_tokens: set[str] = set()  # tokens whose execution no longer waits
        self.fail_start = False
        self.fail_stop = False
        self.lock = threading.Lock()

    def start_task_execution(self, task_no: str) -> str:
        if self.fail_start:
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "StartExecution")
        with self.lock:
            self.started.append(task_no)
            self.status[task_no] = "RUNNING"
        return executions.execution_arn(task_no)

    def execution_status(self, name: str) -> str | None:
        return self.status.get(name)

    def current_run(self, name: str):
        return None if name not in self.status else (self.status[name], self.redrives.get(name, 0))

    def stop_if_running(self, name: str, cause: str) -> bool:
        if self.fail_stop:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "StopExecution")
        with self.lock:
            if self.status.get(name) != "RUNNING":
                return False
            self.status[name] = "ABORTED"
            self.stopped.append(name)
        return True

    def send_task_success(self, token: str, output: dict) -> bool:
        with self.lock:
            if token in self.gone_tokens:
                return False
            self.woken.append((token, output))
        return True

    def woken_tasks(self, status: str | None = None) -> list[str]:
        return [out["taskNo"] for _, out in self.woken if status is None or out["job"]["status"] == status]


class FakeProvider:
    """A provider behind base.Provider's interface. Async by default: a job is accepted PENDING and
    polls answer `will_answer(...)`'s statuses in turn (the last one repeats; RUNNING if none);
    SUCCEEDED carries one output URL. `reject` makes submit raise it; `is_async = False` makes it a
    sync provider that answers SUCCEEDED at submit."""

    def __init__(self):
        self.is_async = True
        self.submitted: list[base.ProviderRequest] = []
        self.polls: list[str] = []
        self.cancelled: list[str] = []
        self.answers: list[base.ProviderJob] = []
        self.reject: Exception | None = None
        self.accounts_used: list[str | None] = []  # the account of every get_provider call (conftest)

    def will_answer(self, *statuses, error_code: str | None = None, error_message: str | None = None) -> None:
        self.answers = [base.ProviderJob(status=status, error_code=error_code, error_message=error_message)
                        for status in statuses]

    @staticmethod
    def _answer(status: str, job_id: str | None, **errors) -> base.ProviderJob:
        outputs = [RESULT_URL.format(job=job_id or "sync")] if status == JobStatus.SUCCEEDED else []
        return base.ProviderJob(provider_task_id=job_id, status=status, output_urls=outputs, **errors)

    def prepare(self, req: base.ProviderRequest) -> base.ProviderRequest:
        return req  # like DashScope: the provider fetches the image URLs itself

    def submit(self, req: base.ProviderRequest) -> base.ProviderJob:
        self.submitted.append(req)
        if self.reject is not None:
            raise self.reject
        if not self.is_async:
            return self._answer(JobStatus.SUCCEEDED, None)
        return self._answer(JobStatus.PENDING, f"job-{len(self.submitted)}")

    def poll(self, provider_task_id: str) -> base.ProviderJob:
        self.polls.append(provider_task_id)
        scripted = (self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]) if self.answers else None
        if scripted is None:
            return self._answer(JobStatus.RUNNING, provider_task_id)
        return self._answer(scripted.status, provider_task_id, error_code=scripted.error_code,
                            error_message=scripted.error_message)

    def cancel(self, provider_task_id: str) -> bool:
        self.cancelled.append(provider_task_id)
        return True


class FakeStorage:
    """The store step's S3 side: copies and thumbnails are recorded, not made."""

    def __init__(self):
        self.copied: list[tuple[str, str]] = []

    def copy_url_to_s3(self, url, bucket, key_stem, *, allowed_hosts, max_bytes, spool) -> str:
        assert storage.host_allowed(url, allowed_hosts), url
        spool.write(b"image")
        self.copied.append((url, f"{key_stem}.png"))
        return f"{key_stem}.png"

    @staticmethod
    def write_thumbnail(image_file, bucket, key) -> str:
        return key


class Clock:
    """Moves the domain's UTC clock (aigc.core.timeutil.utcnow, as each module imported it)."""

    MODULES = ("aigc.domain.tasks", "aigc.domain.points", "aigc.flows.workflow")

    def __init__(self, monkeypatch):
        import importlib

        from aigc.core.timeutil import utcnow

        self.offset = timedelta(0)
        self.frozen = None
        real = utcnow

        def now():
            return self.frozen if self.frozen is not None else real() + self.offset

        for module in self.MODULES:
            monkeypatch.setattr(importlib.import_module(module), "utcnow", now)
        self.now = now

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def freeze(self, moment=None) -> None:
        self.frozen = moment or self.now()


# --- making tasks ---------------------------------------------------------------------------


def grant(user: str, amount: int, grant_id: str | None = None) -> None:
    points.grant(user, amount, "test", grant_id=grant_id or f"grant-{user}-{amount}-{os.urandom(4).hex()}",
                 actor="test")


def accepted(function, **settings) -> dict:
    """Those of `settings` that `function` takes as parameters (the domain is moving from reading
    get_settings() itself to being handed its settings: either way these tests call it right)."""
    names = inspect.signature(function).parameters
    return {name: value for name, value in settings.items() if name in names}


def new_task(user: str = "alice", model: str = OUTPAINTING, *, priority: int | None = None,
             cost: int | None = None) -> TaskItem:
    spec = get_model(model)
    settings = get_settings()
    task = tasks.new_task(user_id=user, model=spec, prompt=None, negative_prompt=None,
                          image_urls=["https://example.com/picture.png"], provider_parameters={},
                          effect=None, points_cost=cost if cost is not None else pricing.quote(spec.pricing, {}).total,
                          **accepted(tasks.new_task, task_deadline_seconds=settings.task_deadline_seconds,
                                     queue_timeout_seconds=settings.queue_timeout_seconds))
    task.priority = priority
    return task


def rejected_upload(user: str) -> TaskItem:
    """An upload refused before any charge (aigc.flows.uploads), as it is recorded: failed, cost 0."""
    return tasks.rejected_task(task_no=f"TASK-upload-{user}", user_id=user, model=get_model(OUTPAINTING),
                               source="upload", image_urls=["s3://bucket/uploads/x.png"],
                               error_code="Rejected.CorruptImage", error_message="damaged file")


def submitted(user: str = "alice", model: str = OUTPAINTING, *, priority: int | None = None,
              fund: bool = True) -> TaskItem:
    """A task debited and created, as the submit leaves it (its execution 'started')."""
    task = new_task(user, model, priority=priority)
    if fund:
        grant(user, int(task.points_cost))
    points.debit_for_new_task(task, rate_limit_per_minute=0)
    executions.start_task_execution(task.task_no)
    return task


def execution_ended(sfn: FakeExecutions, task: TaskItem, status: str, *, redrive_count: int = 0,
                    error: str = "Lambda.ServiceException") -> str:
    """The reconciler given EventBridge's event for the task's execution ending as `status`."""
    from aigc.domain import settlement

    sfn.status[task.task_no] = status
    detail = {"name": task.task_no, "status": status, "input": json.dumps({"taskNo": task.task_no}),
              "executionArn": executions.execution_arn(task.task_no), "redriveCount": redrive_count, "error": error}
    return settlement.on_execution_ended(
        detail, **accepted(settlement.on_execution_ended, hold_grace_seconds=get_settings().hold_grace_seconds))


def reload(task: TaskItem) -> TaskItem:
    return tasks.get_task(task.task_no)


def snapshot(*models) -> dict:
    """Every item of the given tables (all of them by default), to show that nothing was written."""
    models = models or (PointsItem, TaskItem, SchedulerItem)
    client = dynamodb()
    out = {}
    for model in models:
        items = client.scan(TableName=model.Meta.table_name, ConsistentRead=True)["Items"]
        key = [model._hash_key_attribute().attr_name] + (
            [model._range_key_attribute().attr_name] if model._range_key_attribute() else [])
        out[model.Meta.table_name] = sorted(items, key=lambda item: [str(item[k]) for k in key])
    return out


def holders() -> dict[str, float]:
    """Every task holding a slot in the outpainting pool, whichever account."""
    return capacity.holders(capacity.pool_of(OUTPAINTING))


def holders_by_account() -> dict[str, list[str]]:
    """account -> the tasks holding a slot on it (accounts holding none left out)."""
    state = capacity.read(capacity.pool_of(OUTPAINTING), counters=False)
    return {account: sorted(held) for account, held in state.holders.items() if held}


def tickets() -> list[str]:
    """The tasks waiting in the outpainting pool's queue, in the order they will be served."""
    return capacity.waiting(capacity.pool_of(OUTPAINTING))


# --- the books, after every test ------------------------------------------------------------


def check_books() -> None:
    balances = [item for item in PointsItem.scan(PointsItem.entry == points.BALANCE)]
    for item in balances:
        entries = points.ledger_entries(item.user_id)
        total = sum(int(entry.amount) for entry in entries)
        balance = points.get_balance(item.user_id)
        assert balance == total, f"{item.user_id}: balance {balance} != ledger sum {total}"
        assert balance >= 0, f"{item.user_id}: negative balance {balance}"
        assert int(item.ledger_count or 0) == len(entries), f"{item.user_id}: ledger_count is off"
        assert len({e.entry for e in entries}) == len(entries)
    by_task = Counter()
    amounts = {}
    for entry in PointsItem.scan(PointsItem.entry.startswith("TXN#")):
        if entry.kind in (LedgerKind.DEBIT, LedgerKind.REFUND):
            by_task[(entry.ref, entry.kind)] += 1
            amounts[(entry.ref, entry.kind)] = int(entry.amount)
    held = holders()
    for task in TaskItem.scan(consistent_read=True):
        # every status change kept the status-filtered lists' key (the UserStatus index) with it
        assert task.status_key == tasks.status_key(task.status, task.created_at), (task.task_no, task.status_key)
        cost = int(task.points_cost)
        debits, refunds = by_task[(task.task_no, LedgerKind.DEBIT)], by_task[(task.task_no, LedgerKind.REFUND)]
        if cost == 0:
            assert debits == refunds == 0, task.task_no
            continue
        assert debits == 1 and amounts[(task.task_no, LedgerKind.DEBIT)] == -cost, f"{task.task_no}: debits {debits}"
        assert refunds <= 1, f"{task.task_no}: refunded {refunds} times"
        if refunds:
            assert amounts[(task.task_no, LedgerKind.REFUND)] == cost
        assert bool(task.refunded) == (refunds == 1), f"{task.task_no}: refunded flag {task.refunded}, refunds {refunds}"
        if task.status == TaskStatus.COMPLETED:
            assert refunds == 0, f"{task.task_no}: a completed task was refunded"
        if task.refunded:
            assert task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED), task.status
        if tasks.is_settled(task):
            assert task.unsettled is None, f"{task.task_no}: settled but still in the sweep's index"
            assert task.task_no not in held, f"{task.task_no}: settled and still holds a provider slot"
