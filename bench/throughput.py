"""Throughput of the local stack over HTTP, and a mixed run that checks the ledger at the end.

    python -m bench.throughput                      # 8 clients x 25 submits: submits/s, p50/p95, RSS
    python -m bench.throughput --rounds 10 --settle # memory over 2000 tasks: RSS once each round has ended
    python -m bench.throughput --mixed 300          # 300 tasks: provider failures + cancels, then 0 drift?
    python -m bench.throughput --url http://127.0.0.1:18101 --pid N   # against a stack already running

Without --url it starts `python -m local` (waits x0.05, fast simulator) on free ports and stops it.
Each client is its own user with its own points; a submit's latency is the HTTP round trip. After
each round every user's ledger is checked (balance = grants - debits + refunds, one debit per task).
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.stack import LocalStack
from local import auth

SETTLED = ("completed", "failed", "cancelled")


def rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Client:
    def __init__(self, url: str, user: str):
        self.url, self.user = url, user
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {auth.mint(user)}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=120, **kwargs)


def grant(url: str, user: str, amount: int) -> None:
    token = auth.mint("bench-admin", admin=True)
    response = requests.post(f"{url}/admin/points/grant", timeout=60, headers={"Authorization": f"Bearer {token}"},
                             json={"userId": user, "amount": amount, "reason": "bench"})
    response.raise_for_status()


def submit_body(sim_url: str, **directives) -> dict:
    extra = "".join(f"&{k}={v}" for k, v in directives.items())
    return {"modelName": "image-out-painting", "imageUrl": f"{sim_url}/samples/bench.png?w=64&h=64{extra}",
            "parameters": {"xScale": 1.5}}


def ledger_problems(url: str, user: str, granted: int) -> list[str]:
    """What is wrong with a user's ledger: balance = grants - debits + refunds, one debit per task."""
    client = Client(url, user)
    records = client.call("GET", "/user/points/consumption/records", params={"size": 100}).json()["data"]["records"]
    balance = client.call("GET", "/user/points/consumption/balance").json()["data"]["balance"]
    tasks = client.call("GET", "/user/ai/tasks/list", params={"size": 100}).json()["data"]["records"]
    debits = [r["taskNo"] for r in records if r["type"] == "debit"]
    problems = []
    if balance != sum(r["amount"] for r in records) or sum(r["amount"] for r in records if r["type"] == "grant") != granted:
        problems.append(f"{user}: balance {balance} against ledger {[(r['type'], r['amount']) for r in records]}")
    if sorted(debits) != sorted(t["taskNo"] for t in tasks):
        problems.append(f"{user}: {len(debits)} debits ({len(set(debits))} tasks) for {len(tasks)} tasks")
    return problems


def throughput(url: str, sim_url: str, clients: int, per_client: int, pid: int | None,
               settle: bool = False) -> dict:
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(clients)]
    for user in users:
        grant(url, user, per_client * 10)
    rss_before = rss_mb(pid)

    failures: list[str] = []

    def run(user: str) -> list[float]:
        client, latencies = Client(url, user), []
        for _ in range(per_client):
            started = time.perf_counter()
            response = client.call("POST", "/user/ai/tasks/submit", json=submit_body(sim_url))
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:120]}")
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(x for batch in pool.map(run, users) for x in batch)
    elapsed = time.perf_counter() - started
    settled_s = None
    if settle:  # wait for every task to end, so RSS is measured with nothing in flight
        deadline = time.monotonic() + 900
        for user in users:
            client = Client(url, user)
            while time.monotonic() < deadline:
                listed = client.call("GET", "/user/ai/tasks/list", params={"size": 100}).json()["data"]["records"]
                if all(t["status"] in SETTLED for t in listed):
                    break
                time.sleep(1.0)
        settled_s = time.perf_counter() - started
    return {
        "settled_s": settled_s,
        "ledger_problems": [problem for user in users for problem in ledger_problems(url, user, per_client * 10)],
        "failures": failures,
        "submits": len(latencies),
        "submits_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_mb(pid),
    }


def mixed(url: str, sim_url: str, tasks: int, users: int = 30, seed: int = 7) -> dict:
    """`tasks` tasks over `users` users: 1 in 5 fails at the provider, 1 in 5 is cancelled while it
    runs. Then every task must settle and every user's balance equal grants - debits + refunds, with
    exactly one debit per task and one refund per failed or cancelled task."""
    rng = random.Random(seed)
    names = [f"mix-{uuid.uuid4().hex[:8]}" for _ in range(users)]
    per_user = -(-tasks // users)
    for name in names:
        grant(url, name, per_user * 10)
    plan = []
    for i in range(tasks):
        kind = rng.choice(["ok", "ok", "ok", "fail", "cancel"])
        plan.append((names[i % users], kind))

    def run(item) -> str:
        user, kind = item
        client = Client(url, user)
        directives = {"sim_fail": "InternalError.Algo"} if kind == "fail" else (
            {"sim_seconds": 30} if kind == "cancel" else {})
        response = client.call("POST", "/user/ai/tasks/submit", json=submit_body(sim_url, **directives))
        if response.status_code != 200:  # e.g. a Lambda timeout on a loaded machine: the task may exist
            return f"submit {response.status_code}"
        task_no = response.json()["data"]["taskNo"]
        if kind == "cancel":
            time.sleep(rng.uniform(0, 1.0))
            cancel = client.call("POST", f"/user/ai/tasks/{task_no}/cancel")
            if cancel.status_code not in (200, 409):
                return f"cancel {cancel.status_code}"
        return "ok"

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        calls = list(pool.map(run, plan))
    problems, outcome, drift, seen = [], {}, 0, 0
    deadline = time.monotonic() + 300
    for name in names:  # every task the API knows for the user, whatever its submit answered
        client = Client(url, name)
        while True:
            listed = client.call("GET", "/user/ai/tasks/list", params={"size": 100}).json()["data"]["records"]
            if all(t["status"] in SETTLED for t in listed) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        records = client.call("GET", "/user/points/consumption/records", params={"size": 100}).json()["data"]["records"]
        balance = client.call("GET", "/user/points/consumption/balance").json()["data"]["balance"]
        drift += abs(balance - sum(r["amount"] for r in records))
        for task in listed:
            seen += 1
            outcome[task["status"]] = outcome.get(task["status"], 0) + 1
            kinds = sorted(r["type"] for r in records if r["taskNo"] == task["taskNo"])
            expected = ["debit"] if task["status"] == "completed" else ["debit", "refund"]
            if task["status"] not in SETTLED or kinds != expected:
                problems.append(f"{task['taskNo']} {task['status']}: ledger {kinds}")
    calls_summary = {c: calls.count(c) for c in set(calls)}
    return {"tasks": seen, "planned": tasks, "calls": calls_summary, "seconds": time.perf_counter() - started,
            "outcome": outcome, "drift_points": drift, "problems": problems}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running stack's API (default: start one)")
    parser.add_argument("--sim-url", help="its simulator (with --url)")
    parser.add_argument("--pid", type=int, help="its process id, for RSS (with --url)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--submits", type=int, default=25, help="per client")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the throughput run (RSS over rounds)")
    parser.add_argument("--settle", action="store_true",
                        help="after each round wait until its tasks have ended, then read RSS (memory over many tasks)")
    parser.add_argument("--mixed", type=int, default=0, metavar="TASKS", help="run the mixed ledger check instead")
    args = parser.parse_args(argv)
    stack = None
    if args.url:
        url, sim_url, pid = args.url, args.sim_url, args.pid
    else:
        stack = LocalStack(params={"SubmitRateLimitPerMinute": 100000}, wait_scale=0.05,
                           sim={"latency_min": 0.3, "latency_max": 0.6, "max_concurrency": 200})
        url, sim_url, pid = stack.url, stack.sim_url, stack.proc.pid
    try:
        if args.mixed:
            result = mixed(url, sim_url, args.mixed)
            print(f"mixed run: {result['planned']} submits {result['calls']}, {result['tasks']} tasks in "
                  f"{result['seconds']:.0f} s, outcome {result['outcome']}, "
                  f"drift {result['drift_points']} points, {len(result['problems'])} problems")
            for line in result["problems"][:20]:
                print("  ", line)
            if result["problems"] or result["drift_points"]:
                raise SystemExit(1)
            return
        for round_number in range(1, args.rounds + 1):
            result = throughput(url, sim_url, args.clients, args.submits, pid, settle=args.settle)
            print(f"round {round_number}: {result['submits']} submits by {args.clients} clients: "
                  f"{result['submits_per_s']:.1f} submits/s, p50 {result['p50_ms']:.0f} ms, "
                  f"p95 {result['p95_ms']:.0f} ms; stack RSS {result['rss_before_mb'] or 0:.0f} -> "
                  f"{result['rss_after_mb'] or 0:.0f} MB"
                  f"{'' if result['settled_s'] is None else ' with all settled after %.0f s' % result['settled_s']}; "
                  f"{len(result['failures'])} not 200 "
                  f"{sorted(set(result['failures']))[:3]}; ledger "
                  f"{'exact' if not result['ledger_problems'] else result['ledger_problems'][:3]}", flush=True)
            if result["ledger_problems"]:
                raise SystemExit(1)
    finally:
        if stack is not None:
            stopped = stack.close()
            print("stack did not stop within 20 s of SIGTERM: killed" if stopped is None
                  else f"stack stopped {stopped:.1f} s after SIGTERM")

if __name__ == "__main__":
    main()
