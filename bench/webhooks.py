"""Webhook lag on the local stack: when the receiver gets an event minus when the task's record changed.

`python -m bench.webhooks [--tasks 20]`

Runs the local stack (`python -m local`, real waits) and a receiver (local.webhook_receiver), submits
`--tasks` Sora-image tasks (sync provider, the simulator answering in 0.3-0.5 s) with a webhook and
both events, and measures per event: arrival at the receiver minus the task record's `started_at`
(start) or `completed_at` (completed), i.e. the stream -> WebhookFunction -> WebhookQueue ->
WebhookFunction -> HTTP path. Also checks every delivery verifies with the user's secret.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from bench.stack import LocalStack, percentile
from local.webhook_receiver import Receiver

USER = "bench-webhooks"


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args(argv)
    from standardwebhooks import Webhook

    receiver = Receiver()
    with LocalStack(params={"SubmitRateLimitPerMinute": 1000}, sim={"latency_min": 0.3, "latency_max": 0.5}) as stack:
        stack.grant(USER, 100 * args.tasks)
        secret = stack.call("GET", "/user/webhooks/secret", USER)["secret"]
        task_nos = []
        for _ in range(args.tasks):
            data = stack.call("POST", "/user/ai/tasks/submit", USER,
                              json={"modelName": "sc_soraimg_text_3x2", "prompt": "a red kite", "webhook": receiver.url})
            task_nos.append(data["taskNo"])
            time.sleep(0.2)
        receiver.wait_for(2 * args.tasks, timeout=60 + 5 * args.tasks)
        records = {task_no: stack.record(task_no) for task_no in task_nos}
    receiver.stop()
    lags: dict[str, list[float]] = {"start": [], "completed": []}
    for (headers, raw), arrived in zip(receiver.deliveries, receiver.arrivals, strict=True):
        Webhook(secret).verify(raw, headers)
        payload = json.loads(raw)
        record = records[payload["data"]["taskNo"]]
        changed = _epoch(record["started_at" if payload["event"] == "start" else "completed_at"])
        lags[payload["event"]].append((arrived - changed) * 1000)
    for event, values in lags.items():
        print(f"{event:9s} n={len(values):3d}  median {percentile(values, 0.5):6.0f} ms  "
              f"p95 {percentile(values, 0.95):6.0f} ms  max {max(values):6.0f} ms")
    print(f"deliveries {len(receiver.deliveries)} for {args.tasks} tasks, all verified")


if __name__ == "__main__":
    main()
