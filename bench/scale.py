"""What one task costs DynamoDB, and whether it grows with the queue: requests, items read and write units,
per partition key, at queue depths 10, 1,000 and 5,000, with 1 and 4 provider keys.

`python -m bench.scale [--depths 10 1000 5000] [--keys 1 4] [--cycles 40]`

The application's own code (the submit flow with its admission read, the workflow's steps, the API's
views) runs in process against moto's DynamoDB with template.yaml's tables (as the local stack builds
them); Step Functions and the provider are fakes at the edge (no Lambda, no HTTP). Every DynamoDB request
goes through one wrapper of botocore's client, which counts per partition key:

- reads: items read (what read capacity bills: Query's ScannedCount, GetItem's item, BatchGetItem's items);
- writes: write requests and write units: an item's size in 1 KB units (UpdateItem: the ALL_NEW image
  pynamodb asks for), twice in a transaction, 1 for a failed condition; and the index writes each table
  write causes, from the TasksTable stream's old and new images (a key that changes writes the index's
  old and new partitions; a projected attribute that changes writes the item's).

For each depth: `depth` tasks of 100 users wait in the outpainting pool (each through the real
try_start + WaitForSlot registration) behind keys x 5 running jobs. Then it measures a GET of the queued
task at the back, and one page of 10 of a user whose tasks all wait; then `cycles` times, in steady
state: a new task arrives (admission, debit, submit step -> queued, WaitForSlot), a running job ends
(poll -> store: completed; its slot goes to the head of the queue) and the head starts (submit step on
its handed slot, first poll). Per-task figures divide the cycles' counts by `cycles`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
MODEL = "image-out-painting"
QUOTA = 5
USERS = 100
PAGE = 10


# --- counting -----------------------------------------------------------------------------------------


def _size_units(item: dict | None) -> int:
    """DynamoDB's write units of an item: 1 per started KB of names and values (an estimate from the JSON)."""
    if not item:
        return 1
    return max(1, math.ceil(len(json.dumps(item, separators=(",", ":"))) / 1024))


def _partition(table: str, key: dict) -> str:
    name = table.split("-", 2)[-1].removesuffix("Table")
    for attribute in ("pk", "task_no", "user_id", "id", "connection_id", "key_id"):
        if attribute in key:
            return f"{name}:{next(iter(key[attribute].values()))}"
    return f"{name}:?"


class Counts:
    def __init__(self):
        self.requests = Counter()
        self.read_items = Counter()  # partition -> items read
        self.writes = Counter()  # partition -> write requests (index writes included)
        self.write_units = Counter()  # partition -> write units

    def write(self, partition: str, units: int) -> None:
        self.writes[partition] += 1
        self.write_units[partition] += units


class Recorder:
    """botocore's _make_api_call wrapped: every DynamoDB request of the process counted into `counts`."""

    def __init__(self):
        self.counts = Counts()
        self.on = False

    def install(self):
        import botocore.client
        import botocore.exceptions

        real = botocore.client.BaseClient._make_api_call
        recorder = self

        def call(client, operation, params):
            if not recorder.on or client.meta.service_model.service_name != "dynamodb":
                return real(client, operation, params)
            recorder.counts.requests[operation] += 1
            try:
                answer = real(client, operation, params)
            except botocore.exceptions.ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    recorder.counts.write(_partition(params["TableName"], params.get("Key") or params.get("Item")), 1)
                    recorder.counts.requests["failed conditions"] += 1
                raise
            recorder._count(operation, params, answer)
            return answer

        botocore.client.BaseClient._make_api_call = call
        return lambda: setattr(botocore.client.BaseClient, "_make_api_call", real)

    def _count(self, operation: str, params: dict, answer: dict) -> None:
        counts = self.counts
        if operation == "GetItem":
            counts.read_items[_partition(params["TableName"], params["Key"])] += 1 if "Item" in answer else 0
        elif operation == "Query":
            index = params.get("IndexName")
            values = params.get("ExpressionAttributeValues") or {}
            first = next(iter(values.values()), {"S": "?"}) if values else {"S": "?"}
            where = f"{params['TableName'].split('-', 2)[-1].removesuffix('Table')}{'/' + index if index else ''}"
            counts.read_items[f"{where}:{next(iter(first.values()))}"] += answer.get("ScannedCount", 0)
        elif operation == "BatchGetItem":
            for table, items in answer.get("Responses", {}).items():
                for item in items:
                    key = {k: v for k, v in item.items() if k in ("pk", "sk", "task_no")}
                    counts.read_items[_partition(table, key)] += 1
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            image = params.get("Item") or answer.get("Attributes")
            counts.write(_partition(params["TableName"], params.get("Key") or params["Item"]), _size_units(image))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                if kind == "ConditionCheck":
                    continue
                counts.write(_partition(body["TableName"], body.get("Key") or body.get("Item")),
                             2 * _size_units(body.get("Item")))


TASK_INDEXES = {  # name -> (hash, range, projected non-key attributes: None = all)
    "Attention": ("unsettled", "attention_at", ()),
    "UserTasks": ("user_id", "created_at", None),
    "UserStatus": ("user_id", "status_key", ("task_type",)),
    "TasksByTime": ("day_shard", "created_key", ("user_id", "model_name", "status", "error_code")),
}


def count_index_writes(counts: Counts, records: list[dict]) -> None:
    """The TasksTable indexes' writes, from its stream's images."""
    for record in records:
        old, new = record["dynamodb"].get("OldImage") or {}, record["dynamodb"].get("NewImage") or {}
        for index, (hash_key, range_key, projected) in TASK_INDEXES.items():
            before = (old.get(hash_key), old.get(range_key)) if hash_key in old and range_key in old else None
            after = (new.get(hash_key), new.get(range_key)) if hash_key in new and range_key in new else None
            if before != after:
                for key, image in ((before, old), (after, new)):
                    if key is not None:
                        counts.write(f"Tasks/{index}:{next(iter(key[0].values()))}", _size_units(image))
            elif after is not None:
                names = set(old) | set(new) if projected is None else set(projected)
                if any(old.get(name) != new.get(name) for name in names):
                    counts.write(f"Tasks/{index}:{next(iter(after[0].values()))}", _size_units(new))


# --- the application, in process --------------------------------------------------------------------------


class FakeExecutions:
    def __init__(self):
        self.woken: list[tuple[str, dict]] = []
        self.gone: set[str] = set()

    def start_task_execution(self, task_no: str) -> str:
        return f"arn:aws:states:{REGION}:123456789012:execution:bench:{task_no}"

    def execution_status(self, name):
        return "RUNNING"

    def current_run(self, name):
        return ("RUNNING", 0)

    def stop_if_running(self, name, cause):
        return True

    def send_task_success(self, token, output) -> bool:
        if token in self.gone:
            return False
        self.woken.append((token, output))
        self.gone.add(token)
        return True


class FakeProvider:
    is_async = True

    def __init__(self):
        self.jobs = 0
        self.finished: set[str] = set()

    def prepare(self, req):
        return req

    def submit(self, req):
        from aigc.providers.base import ProviderJob

        self.jobs += 1
        return ProviderJob(provider_task_id=f"job-{self.jobs}", status="PENDING")

    def poll(self, job_id):
        from aigc.providers.base import ProviderJob

        if job_id in self.finished:
            return ProviderJob(provider_task_id=job_id, status="SUCCEEDED",
                               output_urls=[f"https://dashscope-result.aliyuncs.com/{job_id}.png"])
        return ProviderJob(provider_task_id=job_id, status="RUNNING")

    def cancel(self, job_id):
        return True


def _environment() -> None:
    """Before anything of aigc is imported (powertools reads these at import)."""
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "x",
                       "AWS_SECRET_ACCESS_KEY": "x", "POWERTOOLS_SERVICE_NAME": "bench",
                       "POWERTOOLS_METRICS_NAMESPACE": "Bench", "POWERTOOLS_LOG_LEVEL": "ERROR",
                       "POWERTOOLS_METRICS_DISABLED": "true"})
    os.environ.pop("AWS_ENDPOINT_URL", None)


@contextmanager
def application(keys: int):
    """moto's DynamoDB with the template's tables, the functions' environment, fakes at the edges."""
    import boto3
    from moto import mock_aws

    from local import cfn, moto_dynamodb

    template = cfn.load_template(ROOT / "template.yaml")
    with mock_aws():
        undo = moto_dynamodb.install()
        client = boto3.client("dynamodb", region_name=REGION)
        variables = _table_variables(template)
        for logical in cfn.resources_of_type(template, "AWS::DynamoDB::Table"):
            table = cfn.dynamodb_table_kwargs(template, logical, f"bench-{logical}")
            table.pop("SSESpecification", None)
            client.create_table(**table)
            for variable in variables.get(logical, ()):
                os.environ[variable] = f"bench-{logical}"
        os.environ.update({
            "RESULTS_BUCKET": "bench-results", "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:b",
            "PROVIDER_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
            "PROVIDER_CAPACITY": json.dumps({"*": {"concurrency": QUOTA, "submitsPerSecond": 10_000}}),
            "SUBMIT_RATE_LIMIT_PER_MINUTE": "0", "QUEUE_TIMEOUT_SECONDS": "100000000",
            "RESULT_HOST_ALLOWLIST": "*.aliyuncs.com",
        })
        import aigc.flows.workflow
        import aigc.providers
        from aigc.core.config import get_settings
        from aigc.domain import capacity, durations
        from aigc.store import executions, storage

        get_settings.cache_clear()
        capacity._overrides.cache_clear()
        durations._cache.clear()
        secret = {"dashscope_api_keys": [f"sk-bench-{n}" for n in range(keys)]}
        aigc.providers.provider_keys = lambda: secret
        provider, sfn = FakeProvider(), FakeExecutions()
        aigc.providers.get_provider = aigc.flows.workflow.get_provider = lambda name, account=None: provider
        for name in ("start_task_execution", "execution_status", "current_run", "stop_if_running", "send_task_success"):
            setattr(executions, name, getattr(sfn, name))
        storage.copy_url_to_s3 = lambda url, bucket, stem, **kw: (kw["spool"].write(b"img"), f"{stem}.png")[1]
        storage.write_thumbnail = lambda image, bucket, key: key
        aigc.flows.workflow.SLEEP = lambda seconds: None
        try:
            yield provider, sfn
        finally:
            undo()


def _table_variables(template: dict) -> dict[str, set[str]]:
    """Table logical id -> the environment variables the template's functions get its name in."""
    from local import cfn

    tables = set(cfn.resources_of_type(template, "AWS::DynamoDB::Table"))
    found: dict[str, set[str]] = defaultdict(set)
    for spec in cfn.functions(template).values():
        for name, value in (spec["environment"] or {}).items():
            if isinstance(value, dict) and value.get("Ref") in tables:
                found[value["Ref"]].add(name)
    return found


def _stream_records() -> list[dict]:
    """The TasksTable stream's records so far, read from moto's backend in this process (as local/queues.py)."""
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends["123456789012"][REGION].get_table(os.environ["TASKS_TABLE"]).stream_shard
    return list(shard.get(shard.starting_sequence_number, 10**9))


# --- one configuration --------------------------------------------------------------------------------------


def _new_task(user: str):
    from aigc.core.catalog import get_model
    from aigc.core.config import get_settings
    from aigc.domain import points, tasks

    model = get_model(MODEL)
    task = tasks.new_task(user_id=user, model=model, prompt=None, negative_prompt=None,
                          image_urls=["https://example.com/p.png"], provider_parameters={}, effect=None,
                          points_cost=10, task_deadline_seconds=600, queue_timeout_seconds=get_settings().queue_timeout_seconds)
    task.priority = 1
    return task, points


def _arrive(user: str, sfn) -> str:
    """A submit as the API runs it (admission, the debit with the task), then the submit step and WaitForSlot."""
    from aigc.flows import submission, workflow

    task, _ = _new_task(user)
    submission.charge_and_start(task)
    state = workflow.submit_step({"taskNo": task.task_no})
    if state["job"]["status"] == "QUEUED":
        workflow.submit_step({"taskNo": task.task_no, "taskToken": f"token-{task.task_no}"})
    return task.task_no


def _fill_queue(depth: int, users: list[str]) -> None:
    """The queue, as fast as possible through the queue's own code (task records saved directly)."""
    from aigc.domain import capacity, tasks

    for n in range(depth):
        task, _ = _new_task(users[n % len(users)])
        task.save()
        assert not capacity.try_start(task)
        capacity.wait_for_slot(tasks.get_task(task.task_no), f"token-{task.task_no}")


def run(depth: int, keys: int, cycles: int) -> dict:
    from aigc.api.views import page_view, task_view
    from aigc.domain import points, tasks
    from aigc.flows import workflow

    recorder = Recorder()
    with application(keys) as (provider, sfn):
        undo = recorder.install()
        try:
            users = [f"user{n:03d}" for n in range(USERS)]
            for user in users + ["pager"]:
                points.grant(user, 10_000_000, "bench", grant_id=f"bench-{user}", actor="bench")
            running = []
            for n in range(keys * QUOTA):
                running.append(_arrive(users[n % USERS], sfn))
            started = time.monotonic()
            _fill_queue(depth - PAGE, users)
            pager = [_arrive("pager", sfn) for _ in range(PAGE)]  # the last ones waiting: one user's page
            fill_seconds = time.monotonic() - started

            recorder.on = True
            recorder.counts = Counts()
            view = task_view(tasks.get_user_task("pager", pager[-1]))
            get = recorder.counts
            recorder.counts = Counts()
            page = page_view(tasks.list_user_tasks("pager", page=1, size=PAGE, task_type=None, status=None), task_view)
            listing = recorder.counts
            assert view.queue_position == depth and page["records"][-1].queue_position == depth - PAGE + 1, (
                view.queue_position, page["records"][-1].queue_position)

            before_records = len(_stream_records())  # what the fill wrote is not counted below
            recorder.counts = Counts()
            for n in range(cycles):
                _arrive(users[n % USERS], sfn)  # a new task joins the queue
                ending = running.pop(0)
                provider.finished.add(tasks.get_task(ending).provider_task_id)
                state = workflow.poll_step({"taskNo": ending}, remaining_ms=12_000)
                assert workflow.store_step(state)["job"]["status"] == "COMPLETED", state
                head = sfn.woken[-1][1]["taskNo"]  # the slot went to the head of the queue
                state = workflow.submit_step({"taskNo": head, "job": sfn.woken[-1][1]["job"]})
                workflow.poll_step({"taskNo": head}, remaining_ms=12_000)
                running.append(head)
            cycle = recorder.counts
            recorder.on = False
            count_index_writes(cycle, _stream_records()[before_records:])
        finally:
            undo()
    return _summary(depth, keys, cycles, get, listing, cycle, fill_seconds)


def _summary(depth, keys, cycles, get: Counts, listing: Counts, cycle: Counts, fill_seconds: float) -> dict:
    hot, hot_writes = cycle.writes.most_common(1)[0]
    shared = {p: n for p, n in cycle.writes.items() if not p.startswith(("Tasks:TASK-", "Scheduler:TICKET#"))}
    busiest_shared = max(shared.items(), key=lambda kv: kv[1])
    return {
        "depth": depth, "keys": keys, "cycles": cycles, "fill_s": round(fill_seconds, 1),
        "get_requests": sum(get.requests.values()), "get_items_read": sum(get.read_items.values()),
        "page_requests": sum(listing.requests.values()), "page_items_read": sum(listing.read_items.values()),
        "requests_per_task": round(sum(cycle.requests.values()) / cycles, 1),
        "items_read_per_task": round(sum(cycle.read_items.values()) / cycles, 1),
        "writes_per_task": round(sum(cycle.writes.values()) / cycles, 2),
        "write_units_per_task": round(sum(cycle.write_units.values()) / cycles, 2),
        "failed_conditions_per_task": round(cycle.requests["failed conditions"] / cycles, 2),
        "busiest_key": hot, "busiest_key_writes_per_task": round(hot_writes / cycles, 2),
        "busiest_shared_key": busiest_shared[0], "busiest_shared_key_writes_per_task": round(busiest_shared[1] / cycles, 2),
        "top_keys": {p: round(n / cycles, 2) for p, n in cycle.writes.most_common(8)},
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 1000, 5000])
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--cycles", type=int, default=40)
    args = parser.parse_args(argv)
    _environment()
    results = []
    for keys in args.keys:
        for depth in args.depths:
            result = run(max(depth, PAGE), keys, args.cycles)
            print(json.dumps(result), flush=True)
            results.append(result)
    print("| keys | queue depth | GET queued task: requests / items read | list page of 10 queued: requests / items "
          "read | per task: requests / items read / writes / write units | failed conditional writes per task "
          "| busiest shared key: writes per task | busiest key of all: writes per task |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['keys']} | {r['depth']:,} | {r['get_requests']} / {r['get_items_read']} | {r['page_requests']} / "
              f"{r['page_items_read']} | {r['requests_per_task']} / {r['items_read_per_task']} / {r['writes_per_task']} / "
              f"{r['write_units_per_task']} | {r['failed_conditions_per_task']} | `{r['busiest_shared_key']}`: "
              f"{r['busiest_shared_key_writes_per_task']} | `{r['busiest_key']}`: {r['busiest_key_writes_per_task']} |")
    for keys in args.keys:
        rows = [r for r in results if r["keys"] == keys]
        low, high = rows[0], rows[-1]
        print(f"keys={keys}: GET items read {high['depth']}/{low['depth']} = "
              f"{high['get_items_read'] / max(1, low['get_items_read']):.2f}; page "
              f"{high['page_items_read'] / max(1, low['page_items_read']):.2f}; write units per task "
              f"{statistics.pstdev([r['write_units_per_task'] for r in rows]):.2f} spread")
    return results


if __name__ == "__main__":
    main()
