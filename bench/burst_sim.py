"""A burst, simulated: 500 submits a second for 60 s against 4 provider keys x quota 5 (one pool).

`python -m bench.burst_sim [--rate 500] [--seconds 60] [--keys 4] [--quota 5] [--api-rate N] [--seed 1]`

A discrete-event simulation of the deployed system, with its numbers read from where they are set:

- template.yaml: the API stage's throttle (ApiThrottleRateLimit / ApiThrottleBurstLimit: a token bucket
  that answers 429 itself, before our function), the poll function's reserved concurrency
  (ProviderStepConcurrency; the submit function is not reserved), QueueTimeoutSeconds,
  SubmitRateLimitPerMinute;
- statemachine/task_workflow.asl.json: each Lambda step's retry schedule for Lambda's throttling
  (Lambda.TooManyRequestsException: interval, backoff, max delay, attempts, full jitter). A step whose
  retries run out fails the execution: the reconciler holds the task's points for an hour ("held");
- aigc.domain.capacity: admission (refused before the debit when (waiting + 0.5) x (typical + the slot's
  overhead) / slots > 0.9 x QueueTimeoutSeconds, or in part while tasks join the queue faster than 400 a
  second, 429 with Retry-After), the queue's numbers, grants and releases per account;
- DynamoDB: 1,000 write units a second per partition. Each operation writes the partitions the code
  writes (bench/scale.py counts them on the real code): the user's points items in the debit's
  transaction (twice the units), the task item and its index entries (UserTasks by user, the sweep's
  Attention index in 16 shards, TasksByTime by day in 4 shards, UserStatus by user), the pool's queue
  counter (a number per queued arrival, a move per hand-over), the account's slot item (a grant and a
  release per task), the account's submit-rate window, each ticket (its own partition), the durations
  ring. The busiest partition's write units in any one second are reported.

Assumptions (not measured here): users are 20,000, each submitting at random (the per-user limit of
SubmitRateLimitPerMinute applies); jobs take 15 to 25 s at the provider (outpainting's 20 s); our
Lambda invocations take: API submit 120 ms, a submit step that queues 60 ms, WaitForSlot 60 ms, a submit
step that starts a job 400 ms (the provider's create call included), store 1.5 s, refund 200 ms; the poll
runs from the learned window start (11 s) to the job's end. Clients refused do not come back (each 429
says when they may).
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WCU_PER_PARTITION = 1000
RCU_PER_PARTITION = 3000
DURATION = {"api": 0.12, "submit_queue": 0.06, "wait": 0.06, "submit_start": 0.4, "store": 1.5, "refund": 0.2}
JOB_SECONDS = (15.0, 25.0)
TYPICAL = 20.0
WINDOW_START = 11.0
USERS = 20_000
GONE = "gone"
# The ASL's Lambda retrier before issue 16 (throttling was retried with the other Lambda errors)
BEFORE_RETRY = {"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 2, "MaxAttempts": 6,
                "BackoffRate": 2, "MaxDelaySeconds": 30, "JitterStrategy": "FULL"}
TASK_UNITS = 2  # a task item (about 1.5 KB): 2 write units


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_numbers() -> dict:
    parameters = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)["Parameters"]

    def default(name):
        return parameters[name]["Default"]

    return {"api_rate": float(default("ApiThrottleRateLimit")), "api_burst": float(default("ApiThrottleBurstLimit")),
            "step_concurrency": int(default("ProviderStepConcurrency")),
            "queue_timeout": float(default("QueueTimeoutSeconds")),
            "rate_limit_per_minute": int(default("SubmitRateLimitPerMinute"))}


def throttle_retry(state: str) -> dict:
    """The state's retrier for Lambda's throttling, from the ASL."""
    states = json.loads((ROOT / "statemachine" / "task_workflow.asl.json").read_text())["States"]
    for retrier in states[state]["Retry"]:
        if "Lambda.TooManyRequestsException" in retrier["ErrorEquals"]:
            return retrier
    raise KeyError(f"{state} does not retry Lambda.TooManyRequestsException")


@dataclass
class Function:
    """A Lambda function with reserved concurrency (None: the account's pool, not a limit here)."""

    limit: int | None
    running: list = field(default_factory=list)  # end times
    peak: int = 0
    throttled: int = 0

    def start(self, now: float, seconds: float) -> bool:
        while self.running and self.running[0] <= now:
            heapq.heappop(self.running)
        if self.limit is not None and len(self.running) >= self.limit:
            self.throttled += 1
            return False
        heapq.heappush(self.running, now + seconds)
        self.peak = max(self.peak, len(self.running))
        return True


@dataclass
class Task:
    n: int
    user: int
    arrived: float
    ticket: int | None = None
    account: int | None = None
    job_end: float | None = None
    outcome: str | None = None


class Simulation:
    def __init__(self, args, numbers: dict):
        global capacity
        from aigc.domain import capacity  # admission's numbers (imported here: scale.py sets the environment first)

        self.args = args
        self.rng = random.Random(args.seed)
        self.numbers = numbers
        self.events: list = []
        self.seq = 0
        self.now = 0.0
        self.tokens, self.token_time = numbers["api_burst"], 0.0
        self.api_rate = args.api_rate or numbers["api_rate"]
        before = args.before
        # not reserved: bounded by the API's throttle and admission (before issue 16: ProviderStepConcurrency)
        self.submit_fn = Function(numbers["step_concurrency"] if before else None)
        self.poll_fn = Function(numbers["step_concurrency"] or None)
        self.other_fn = Function(None)
        self.retry = {state: BEFORE_RETRY if before else throttle_retry(state)
                      for state in ("SubmitToProvider", "WaitForSlot", "PollProvider", "StoreResults", "Refund")}
        self.slots = [[] for _ in range(args.keys)]  # per account: tasks holding a slot
        self.issued = self.served = 0
        self.tickets: dict[int, Task | None] = {}  # number -> task (None: number taken, ticket not yet placed)
        self.outcomes = Counter()
        self.wcu: dict[tuple[int, str], float] = defaultdict(float)
        self.rcu: dict[tuple[int, str], float] = defaultdict(float)
        self.per_user_minute: Counter = Counter()
        # API containers at once (rate x the submit's 120 ms); each keeps its own recent refusal
        self.api_containers = max(1, math.ceil(self.api_rate * DURATION["api"]))
        self.refusal_until: dict[int, float] = {}
        self.joins: deque = deque()
        self.tasks: list[Task] = []

    # --- the machinery -----------------------------------------------------------------------------------
    def at(self, when: float, action, *args) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, action, args))

    def write(self, partition: str, units: float = 1) -> None:
        self.wcu[(int(self.now), partition)] += units

    def read_pool(self, consistent: bool = True, accounts: bool = True) -> None:
        """capacity.read: the queue's counters (one item) and each account's slot item, one BatchGetItem."""
        unit = 1.0 if consistent else 0.5
        self.rcu[(int(self.now), "Scheduler:QUEUE#pool")] += unit
        for account in range(self.args.keys if accounts else 0):
            self.rcu[(int(self.now), f"Scheduler:POOL#pool#{account}")] += unit

    def invoke(self, fn: Function, state: str, seconds: float, then, task: Task, attempt: int = 0) -> None:
        """A Lambda step: runs if the function has room, else the ASL's throttling retrier, else the execution fails."""
        if fn.start(self.now, seconds):
            self.at(self.now + seconds, then, task)
            return
        retrier = self.retry[state]
        if attempt >= retrier["MaxAttempts"]:
            task.outcome = "held"  # the execution failed: the reconciler holds the points for a redrive
            self.outcomes["failed and held"] += 1
            if task.ticket is not None and self.tickets.get(task.ticket) is None:
                self.tickets[task.ticket] = GONE  # its ticket never comes: passed over (after 60 s; here at once)
                self.wake()
            return
        cap = min(retrier.get("MaxDelaySeconds", 1e9), retrier["IntervalSeconds"] * retrier["BackoffRate"] ** attempt)
        delay = self.rng.uniform(0, cap) if retrier.get("JitterStrategy") == "FULL" else cap
        self.at(self.now + delay, lambda t: self.invoke(fn, state, seconds, then, t, attempt + 1), task)

    # --- arrivals --------------------------------------------------------------------------------------------
    def arrive(self, task: Task) -> None:
        self.tokens = min(self.numbers["api_burst"], self.tokens + (self.now - self.token_time) * self.api_rate)
        self.token_time = self.now
        if self.tokens < 1:
            self.outcomes["refused by the API stage's throttle (429, no Retry-After)"] += 1
            return
        self.tokens -= 1
        minute = (task.user, int(self.now // 60))
        if self.per_user_minute[minute] >= self.numbers["rate_limit_per_minute"]:
            self.outcomes["refused: the user's rate limit (429, Retry-After)"] += 1
            return
        slots = self.args.keys * self.args.quota
        container = task.n % self.api_containers
        if self.now >= self.refusal_until.get(container, -1):  # a container reuses its refusal's read 5 s
            self.read_pool(consistent=False, accounts=False)  # admission: the counters, eventually consistent
        waiting = self.issued - self.served
        estimate = (waiting + 0.5) * (TYPICAL + capacity.SLOT_OVERHEAD_SECONDS) / slots  # capacity.wait_seconds
        while self.joins and self.joins[0] < self.now - 1.0:
            self.joins.popleft()
        rate = len(self.joins)  # numbers given out in the last second (a container measures it from the counter)
        if not self.args.before and waiting and rate > capacity.JOIN_RATE_LIMIT and (
                self.rng.random() > capacity.JOIN_RATE_LIMIT / rate):
            self.outcomes["refused: joining the queue too fast (429, Retry-After 1)"] += 1
            return
        if not self.args.before and waiting and estimate > capacity.ADMISSION_MARGIN * self.numbers["queue_timeout"]:
            self.outcomes["refused: admission (429, Retry-After)"] += 1
            if self.now >= self.refusal_until.get(container, -1):
                self.refusal_until[container] = self.now + capacity.REFUSAL_REUSE_SECONDS
            return
        self.per_user_minute[minute] += 1
        # The debit: one transaction over the user's BALANCE, ledger entry, rate window and lot, and the task.
        self.write(f"Points:user{task.user}", 2 * 4)
        self.write(f"Tasks:{task.n}", 2 * TASK_UNITS)
        self.write(f"Tasks/UserTasks:user{task.user}", TASK_UNITS)
        self.write(f"Tasks/UserStatus:user{task.user}")
        self._attention(task)
        self.write(f"Tasks/TasksByTime:day#{task.n % 4}")
        self.outcomes["accepted"] += 1
        self.tasks.append(task)
        self.invoke(self.submit_fn, "SubmitToProvider", DURATION["submit_queue"], self.submit_step, task)

    def submit_step(self, task: Task) -> None:
        self.read_pool()
        if self.issued == self.served:
            account = self._free_account()
            if account is not None:
                self._grant(task, account)
                self.invoke(self.submit_fn, "SubmitToProvider", DURATION["submit_start"], self.started, task)
                return
        self.issued += 1
        self.joins.append(self.now)
        task.ticket = self.issued
        self.tickets[task.ticket] = None
        self.write("Scheduler:QUEUE#pool")
        self.write(f"Tasks:{task.n}", TASK_UNITS)  # the number, on the task
        if self.args.before:  # the pool's one SLOTS item: 3 failing conditional writes (1 unit each)
            self.write("Scheduler:POOL#pool", 3)
        self.invoke(self.submit_fn, "WaitForSlot", DURATION["wait"], self.registered, task)

    def registered(self, task: Task) -> None:
        self.tickets[task.ticket] = task
        self.write("Scheduler:QUEUE#pool" if self.args.before else f"Scheduler:TICKET#{task.ticket}")
        self.wake()

    # --- slots -----------------------------------------------------------------------------------------------
    def _free_account(self) -> int | None:
        free = [a for a in range(self.args.keys) if len(self.slots[a]) < self.args.quota]
        return min(free, key=lambda a: (len(self.slots[a]), self.rng.random())) if free else None

    def _grant(self, task: Task, account: int) -> None:
        self.slots[account].append(task)
        task.account = account
        self.write("Scheduler:POOL#pool" if self.args.before else f"Scheduler:POOL#pool#{account}")

    def release(self, task: Task) -> None:
        self.slots[task.account].remove(task)
        self.write("Scheduler:POOL#pool" if self.args.before else f"Scheduler:POOL#pool#{task.account}")
        self.wake()

    def wake(self) -> None:
        while self.served < self.issued:
            self.read_pool()
            head = self.tickets.get(self.served + 1)
            if head is GONE:
                self.served += 1
                del self.tickets[self.served]
                continue
            if head is None:
                return  # its execution is on its way to WaitForSlot: it wakes the queue itself
            account = self._free_account()
            if account is None:
                return
            self.served += 1
            del self.tickets[self.served]
            self.write("Scheduler:QUEUE#pool")
            if self.now - head.arrived > self.numbers["queue_timeout"]:  # its wait ran out: refunded meanwhile
                head.outcome = "queue timeout"
                continue
            self._grant(head, account)
            self.invoke(self.submit_fn, "SubmitToProvider", DURATION["submit_start"], self.started, head)

    # --- the job ---------------------------------------------------------------------------------------------
    def started(self, task: Task) -> None:
        self.write("Scheduler:POOL#pool" if self.args.before else f"Scheduler:RATE#pool#{task.account}")
        self.write(f"Tasks:{task.n}", TASK_UNITS)
        self._attention(task, update=True)
        self.write(f"Tasks/UserTasks:user{task.user}", TASK_UNITS)
        self.write(f"Tasks/UserStatus:user{task.user}", 2)
        self.write(f"Tasks/TasksByTime:day#{task.n % 4}")
        task.job_end = self.now + self.rng.uniform(*JOB_SECONDS)
        self.at(self.now + WINDOW_START, lambda t: self.invoke(
            self.poll_fn, "PollProvider", max(0.5, t.job_end - self.now + 0.5), self.job_seen, t), task)

    def job_seen(self, task: Task) -> None:
        self.write(f"Tasks:{task.n}", TASK_UNITS)
        self._attention(task, update=True)
        self.write(f"Tasks/UserTasks:user{task.user}", TASK_UNITS)
        self.write("Scheduler:DUR#model", 2)
        self.release(task)
        self.invoke(self.other_fn, "StoreResults", DURATION["store"], self.completed, task)

    def completed(self, task: Task) -> None:
        for partition in (f"Tasks:{task.n}", f"Tasks/UserTasks:user{task.user}"):
            self.write(partition, TASK_UNITS)
        self.write(f"Tasks/UserStatus:user{task.user}", 2)
        self._attention(task)
        self.write(f"Tasks/TasksByTime:day#{task.n % 4}")
        task.outcome = "completed"
        self.outcomes["completed"] += 1

    def _attention(self, task: Task, update: bool = False) -> None:
        """The sweep's index: now keys only in 16 shards (written when a task enters or leaves it); before issue
        16 one constant key with every attribute (written by every update of an unsettled task too)."""
        if self.args.before:
            self.write("Tasks/Unsettled:1", TASK_UNITS)
        elif not update:
            self.write(f"Tasks/Attention:{task.n % 16}")

    def run(self) -> dict:
        count = int(self.args.rate * self.args.seconds)
        for n in range(count):
            task = Task(n, self.rng.randrange(USERS), n / self.args.rate)
            self.at(task.arrived, self.arrive, task)
        horizon = self.args.seconds + self.numbers["queue_timeout"] + 600
        while self.events and self.events[0][0] <= horizon:
            self.now, _, action, args = heapq.heappop(self.events)
            action(*args)
        timed_out = [t for t in self.tasks if t.outcome == "queue timeout"
                     or (t.outcome is None and t.job_end is None and self.now - t.arrived > self.numbers["queue_timeout"])]
        self.outcomes["refunded: waited past QueueTimeoutSeconds"] = len(timed_out)
        self.outcomes["unfinished at the end"] = sum(1 for t in self.tasks if t.outcome is None) - sum(
            1 for t in timed_out if t.outcome is None)
        return self.report(count)

    def report(self, count: int) -> dict:
        per_partition = defaultdict(float)
        for (_second, partition), units in self.wcu.items():
            per_partition[partition] = max(per_partition[partition], units)
        busiest, units = max(per_partition.items(), key=lambda kv: kv[1])
        over = sum(1 for units in self.wcu.values() if units > WCU_PER_PARTITION)
        read_busiest = max(((p, u) for (_, p), u in self.rcu.items()), key=lambda kv: kv[1], default=("-", 0))
        return {
            "submits": count, "rate_per_s": self.args.rate, "seconds": self.args.seconds, "keys": self.args.keys,
            "quota": self.args.quota, "api_rate": self.api_rate, "step_concurrency": self.numbers["step_concurrency"],
            "outcomes": dict(self.outcomes), "submit_fn_peak": self.submit_fn.peak,
            "submit_fn_throttled": self.submit_fn.throttled, "poll_fn_peak": self.poll_fn.peak,
            "poll_fn_throttled": self.poll_fn.throttled,
            "busiest_partition": busiest, "busiest_partition_wcu_per_s": round(units, 1),
            "busiest_share_of_1000": round(units / WCU_PER_PARTITION, 3),
            "partition_seconds_over_1000_wcu": over,
            "busiest_read_partition": read_busiest[0], "busiest_read_rcu_per_s": round(read_busiest[1], 1),
            "busiest_read_share_of_3000": round(read_busiest[1] / RCU_PER_PARTITION, 3),
            "top_partitions": dict(sorted(((p, round(u, 1)) for p, u in per_partition.items()),
                                          key=lambda kv: -kv[1])[:6]),
            "drained_at_s": round(max((t.job_end or 0) for t in self.tasks), 1) if self.tasks else 0,
        }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--quota", type=int, default=5)
    parser.add_argument("--api-rate", type=float, default=None,
                        help="the API stage's rate limit (default: the template's ApiThrottleRateLimit)")
    parser.add_argument("--api-burst", type=float, default=None)
    parser.add_argument("--step-concurrency", type=int, default=None,
                        help="the poll function's reserved concurrency (default: the template's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", action="store_true",
                        help="the design before issue 16: no admission, the submit step reserved, Lambda throttling "
                             "retried 6 times (2 s, x2, at most 30 s), one SLOTS item per pool (3 failing writes per "
                             "queued arrival), the sweep's index on one constant key with every attribute")
    args = parser.parse_args(argv)
    numbers = template_numbers()
    if args.api_burst is not None:
        numbers["api_burst"] = args.api_burst
    if args.step_concurrency is not None:
        numbers["step_concurrency"] = args.step_concurrency
    result = Simulation(args, numbers).run()
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
