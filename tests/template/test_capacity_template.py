"""The template's side of issue 16: results kept as long as ResultsRetentionDays says, our own functions'
throttling waited out by the workflow instead of failing it, and the capacity the pools need reserved."""
from __future__ import annotations

import json
from pathlib import Path


from local.cfn import Resolver

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "task_workflow.asl.json"




def _rules(template: dict, parameters: dict) -> dict:
    bucket = template["Resources"]["ResultsBucket"]["Properties"]
    rules = Resolver(template, parameters, {"ResultsBucket": "b"}).resolve(bucket["LifecycleConfiguration"])["Rules"]
    return {rule["Id"]: rule for rule in rules}


def test_results_are_kept_forever_by_default_and_for_the_days_given(template: dict) -> None:
    assert "ExpireResults" not in _rules(template, {})
    rule = _rules(template, {"ResultsRetentionDays": "30"})["ExpireResults"]
    assert (rule["Prefix"], str(rule["ExpirationInDays"]), rule["Status"]) == ("results/", "30", "Enabled")
    assert _rules(template, {"ResultsRetentionDays": "30"})["ExpireUploads"]["Prefix"] == "uploads/"


def test_every_lambda_step_waits_out_its_own_throttling_for_minutes() -> None:
    states = json.loads(ASL.read_text())["States"]
    for name, state in states.items():
        if state.get("Type") != "Task" or "lambda:invoke" not in state["Resource"]:
            continue
        retry = [r for r in state["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"]]
        assert len(retry) == 1 and retry[0]["ErrorEquals"] == ["Lambda.TooManyRequestsException"], name
        schedule = retry[0]
        # The longest it waits (full jitter draws up to these): at least 4 minutes in total.
        total = sum(min(schedule["MaxDelaySeconds"], schedule["IntervalSeconds"] * schedule["BackoffRate"] ** k)
                    for k in range(schedule["MaxAttempts"]))
        assert total >= 240, (name, total)
