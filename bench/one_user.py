"""One user, many requests at once: submits and cancels mixed, on the local stack, over HTTP.

`python -m bench.one_user [--requests 200] [--cancels 80] [--stage-throttle RATE,BURST]`

Starts the local stack (`python -m local`, real waits, SubmitRateLimitPerMinute raised), grants one user
points, submits `cancels` tasks, then fires `requests` requests at the same moment (one thread each):
`cancels` cancels of those tasks and the rest new submits. Every request of one user meets the others on
the same BALANCE item (on DynamoDB a TransactionConflict: retried with jitter, then 429 Busy with
Retry-After). The local front keeps the API stage's throttle (the template's ApiThrottleRateLimit and
ApiThrottleBurstLimit, or `--stage-throttle`): API Gateway's own 429s are counted apart from ours. Reports
the answers by status (the target: no 5xx) and their times, waits until every task is settled, then checks
the user's ledger as the domain tier's books do: the balance equals the sum of the entries, every task has
exactly one debit, at most one refund, none if it completed.
"""
from __future__ import annotations

import argparse
import functools
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
from boto3.dynamodb.conditions import Key

from bench.stack import PREFIX, LocalStack, percentile

USER = "bench-one-user"
FINAL = ("completed", "failed", "cancelled")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cancels", type=int, default=80)
    parser.add_argument("--job-seconds", type=float, default=20.0, help="each provider job (the simulator)")
    parser.add_argument("--stage-throttle", default=None, metavar="RATE,BURST",
                        help="the API stage's throttle (default: the template's)")
    args = parser.parse_args(argv)
    params = {"SubmitRateLimitPerMinute": 100000}
    if args.stage_throttle:
        rate, burst = args.stage_throttle.split(",")
        params.update(ApiThrottleRateLimit=int(rate), ApiThrottleBurstLimit=int(burst))
    sim = {"latency_min": 1.0, "latency_max": 3.0, "max_concurrency": 5}
    with LocalStack(params=params, sim=sim) as stack:
        stack.grant(USER, 100_000)
        targets = [stack.outpaint(USER, args.job_seconds) for _ in range(args.cancels)]
        barrier = threading.Barrier(args.requests)

        def one(n: int):
            barrier.wait()
            started = time.monotonic()
            if n < args.cancels:
                response = _raw(stack, "POST", f"/user/ai/tasks/{targets[n]}/cancel")
            else:
                url = f"{stack.sim_url}/samples/bench.png?w=64&h=64&sim_seconds={args.job_seconds}"
                response = _raw(stack, "POST", "/user/ai/tasks/submit", json={
                    "modelName": "image-out-painting", "imageUrl": url, "parameters": {"xScale": 1.5}})
            return ("cancel" if n < args.cancels else "submit", response.status_code,
                    response.headers.get("Retry-After"), response.json(), time.monotonic() - started)

        burst_started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.requests) as pool:
            answers = list(pool.map(one, range(args.requests)))
        burst_seconds = time.monotonic() - burst_started
        submitted = [body["data"]["taskNo"] for kind, status, _, body, _ in answers if kind == "submit" and status == 200]
        task_nos = targets + submitted
        give_up = time.monotonic() + 900
        pending = set(task_nos)
        while pending and time.monotonic() < give_up:
            pending = {t for t in pending if stack.record(t)["status"] not in FINAL or _held(stack.record(t))}
            time.sleep(1)
        problems = _books(stack, task_nos)
        records = {t: stack.record(t) for t in task_nos}
    times = [a[4] for a in answers]
    # API Gateway's own answers ({"message": ...}) apart from ours (the envelope, with its "code")
    statuses = Counter(f"{kind} {status}" + ("" if "code" in body else " (API Gateway)")
                       for kind, status, _, body, _ in answers)
    result = {
        "requests": args.requests, "answers": dict(sorted(statuses.items())),
        "5xx": sum(1 for _, status, *_ in answers if status >= 500),
        "ours: 429/503 without Retry-After": sum(1 for kind, status, retry, body, _ in answers
                                                  if status in (429, 503) and not retry and "code" in body),
        "API Gateway's: 429/503 without Retry-After": sum(1 for kind, status, retry, body, _ in answers
                                                          if status in (429, 503) and not retry and "code" not in body),
        "answer_s_p50_p95_max": [round(percentile(times, q), 2) for q in (0.5, 0.95, 1.0)],
        "burst_s": round(burst_seconds, 2),
        "tasks": len(task_nos), "unsettled": len(pending),
        "outcomes": dict(Counter(r["status"] for r in records.values())),
        "ledger_problems": problems,
    }
    print(json.dumps(result, indent=1))
    return result


@functools.cache
def _token() -> str:
    """One token for all the user's requests, as a client holds it (minting loads and checks the RSA key:
    tens of ms of this machine's CPU per request, which the stack would lose)."""
    from local import auth

    return auth.mint(USER)


def _raw(stack, method: str, path: str, **kwargs):
    headers = {"Authorization": f"Bearer {_token()}"}
    return stack.http.request(method, stack.url + path, headers=headers, timeout=60, **kwargs)


def _held(record: dict) -> bool:
    return record["status"] == "failed" and bool(record.get("hold_until")) and not record.get("refunded")


def _books(stack, task_nos: list[str]) -> list[str]:
    """The user's ledger, read from the stack's own table: balance = the entries' sum, one debit per task,
    at most one refund, none for a completed task."""
    table = boto3.resource("dynamodb", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x").Table(f"{PREFIX}-PointsTable")
    items, kwargs = [], {}
    while True:
        page = table.query(KeyConditionExpression=Key("user_id").eq(USER), ConsistentRead=True, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    entries = [i for i in items if i["entry"].startswith("TXN#")]
    balance = next(int(i["balance"]) for i in items if i["entry"] == "BALANCE")
    problems = []
    if balance != sum(int(e["amount"]) for e in entries):
        problems.append(f"balance {balance} != the entries' sum {sum(int(e['amount']) for e in entries)}")
    kinds = Counter((e.get("ref"), e.get("kind")) for e in entries)
    for task_no in task_nos:
        record = stack.record(task_no)
        debits, refunds = kinds[(task_no, "DEBIT")], kinds[(task_no, "REFUND")]
        if debits != 1 or refunds > 1 or (record["status"] == "completed" and refunds):
            problems.append(f"{task_no} ({record['status']}): {debits} debits, {refunds} refunds")
        if record["status"] in ("cancelled", "failed") and not _held(record) and refunds != 1:
            problems.append(f"{task_no} ({record['status']}): not refunded")
    return problems


if __name__ == "__main__":
    main()
