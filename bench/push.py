"""Push delay on the local stack: when a task's change reaches the browser's socket, against polling.

`python -m bench.push [--tasks 50] [--users 10]`

Runs the local stack (`python -m local`, the workflow's waits x0.05), opens one WebSocket per user
(`--users`, each a real `websockets` client), and has each user submit its share of `--tasks` outpainting
tasks (a 64 x 64 image, a 2 s job at the simulator) one after the other. Per task it measures:

- push: when the socket received `task.updated` with `completed`, minus the task record's `completed_at`
  (the change: read from the tasks table, microseconds; the API's completeTime shows whole seconds);
  also every status change pushed (queued from `created_at`, processing from `started_at`);
- poll: then the same number of tasks again, with no socket, each followed by a client GETting it
  every second (seed 001 polls every 5 s; 1 s is the cadence the issue compares with) from a random
  phase: when it first saw `completed`, minus `completed_at`. The two phases run apart, so the pollers'
  requests do not slow the push down, nor the sockets the polls.

Prints p50/p95/max of each (seconds) and checks every socket got only its own user's tasks.
"""
from __future__ import annotations

import argparse
import json
import random
import threading
import time

from websockets.sync.client import connect

from bench.stack import LocalStack, percentile
from local import auth

POLL_SECONDS = 1.0
JOB_SECONDS = 2


class Browser:
    """One user's socket: every message with the time it arrived."""

    def __init__(self, url: str, user: str):
        self.user = user
        self.socket = connect(f"{url}?token={auth.mint(user)}", open_timeout=10)
        self.messages: list[tuple[float, dict]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for frame in self.socket:
                self.messages.append((time.time(), json.loads(frame)))
        except Exception:  # closed at the end
            pass

    def received(self, task_no: str, status: str) -> float | None:
        return next((at for at, m in self.messages if m["type"] == "task.updated"
                     and m["data"]["taskNo"] == task_no and m["data"]["status"] == status), None)


def _poll(stack: LocalStack, user: str, task_no: str, seen: dict) -> None:
    """A polling client of one task: GET every second (random phase) until it is completed."""
    time.sleep(random.uniform(0, POLL_SECONDS))
    while True:
        started = time.time()
        if stack.task(user, task_no)["status"] in ("completed", "failed", "cancelled"):
            seen[task_no] = time.time()
            return
        time.sleep(max(0.0, POLL_SECONDS - (time.time() - started)))


def _epoch(item: dict, name: str) -> float | None:
    from datetime import datetime

    value = item.get(name)
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _push_run(stack: LocalStack, browser: Browser, count: int, results: list) -> None:
    """One user's tasks, one after the other, followed by push alone (no GET)."""
    for _ in range(count):
        task_no = stack.outpaint(browser.user, JOB_SECONDS)  # a 64 x 64 image: the CPU stays on the path measured
        deadline = time.time() + 120
        while browser.received(task_no, "completed") is None and time.time() < deadline:
            time.sleep(0.02)
        results.append((browser, task_no))


def _poll_run(stack: LocalStack, user: str, count: int, results: list, polled: dict) -> None:
    """The same, followed by a client polling every second instead (no socket)."""
    for _ in range(count):
        task_no = stack.outpaint(user, JOB_SECONDS)
        _poll(stack, user, task_no, polled)
        results.append(task_no)


def _run_all(target, argument_lists) -> None:
    runs = [threading.Thread(target=target, args=arguments) for arguments in argument_lists]
    for run in runs:
        run.start()
    for run in runs:
        run.join()


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} (none)"
    return (f"{name:<34} n={len(values):3d}  p50 {percentile(values, 0.5):6.3f}  p95 {percentile(values, 0.95):6.3f}"
            f"  max {max(values):6.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.push")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args(argv)
    users = [f"bench-push-{n}" for n in range(args.users)]
    with LocalStack(params={"SubmitRateLimitPerMinute": 1000}, wait_scale=0.05, sim={"max_concurrency": 50}) as stack:
        for user in users:
            stack.grant(user, 20 * args.tasks)
        shares = [args.tasks // args.users + (1 if n < args.tasks % args.users else 0) for n in range(args.users)]
        # 1. push: one socket per user, no polling
        browsers = [Browser(stack.ws_url, user) for user in users]
        time.sleep(0.5)  # the grants' points.changed are not measured
        results: list = []
        _run_all(_push_run, [(stack, b, n, results) for b, n in zip(browsers, shares, strict=True)])
        push, changes, missing = [], {"queued": [], "processing": []}, []
        for browser, task_no in results:
            record = stack.record(task_no)
            completed_at = _epoch(record, "completed_at")
            received = browser.received(task_no, "completed")
            if received is None or completed_at is None:
                missing.append(task_no)
                continue
            push.append(received - completed_at)
            for status, field in (("queued", "created_at"), ("processing", "started_at")):
                at, changed = browser.received(task_no, status), _epoch(record, field)
                if at is not None and changed is not None:
                    changes[status].append(at - changed)
        foreign = [(b.user, m["data"].get("taskNo")) for b in browsers for _, m in b.messages
                   if m["type"] == "task.updated" and not any(t == m["data"]["taskNo"] and r is b for r, t in results)]
        for browser in browsers:
            browser.socket.close()
        # 2. polling: the same load of tasks, each followed by a client GETting it every second
        polled: dict[str, float] = {}
        polled_tasks: list = []
        _run_all(_poll_run, [(stack, user, n, polled_tasks, polled) for user, n in zip(users, shares, strict=True)])
        poll = [polled[t] - _epoch(stack.record(t), "completed_at") for t in polled_tasks if t in polled]
    print(f"push delay: {len(results)} tasks by push, then {len(polled_tasks)} by polling, {args.users} users at a time"
          " (seconds from the change)")
    print(summary("completed: push (socket)", push))
    print(summary(f"completed: poll every {POLL_SECONDS:g} s (GET)", poll))
    print(summary("queued: push", changes["queued"]))
    print(summary("processing: push", changes["processing"]))
    print(f"completions not pushed: {len(missing)}; messages of another user's task: {len(foreign)}")


if __name__ == "__main__":
    main()
