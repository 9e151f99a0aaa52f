"""What an execution cost, read from its history: state transitions and Lambda invocations.

Step Functions bills one transition per state entered (Task, Wait, Choice, Succeed... and every
retry); a Lambda task is one invocation per TaskScheduled event.
"""
from __future__ import annotations


def execution_costs(sfn, execution_arn: str) -> dict:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000,
                                         **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    exited = {e["stateExitedEventDetails"]["name"]: e["timestamp"].timestamp()
              for e in events if e["type"].endswith("StateExited")}
    return {
        "transitions": len(entered),
        "invocations": sum(1 for e in events if e["type"] == "TaskScheduled"),
        "states": entered,
        "last_exit": exited,  # state name -> when it was last left (epoch seconds)
    }
