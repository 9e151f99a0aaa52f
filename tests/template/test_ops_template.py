"""template.yaml operations: alarms -> topic, dashboard, DLQs of async paths, aliases, safe deploys.

The checks read the template itself (and the SAM-expanded one where SAM decides the outcome), so
a new async function without a DLQ, an alarm nobody is told of, or an alarm on a metric the code
never emits fails here.
"""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]

from local.cfn import Resolver, functions, resources_of_type, state_machine

# Share test_template's cached SAM transform (tests/ is a package: no basename collisions).
from tests.template.test_template import _require_sam, _transformed

ASYNC_EVENTS = {"S3", "EventBridgeRule", "Schedule", "SNS", "CloudWatchEvent", "ScheduleV2"}
CODE = [*(ROOT / "layers" / "common" / "aigc").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]




def _alarms(template: dict) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in resources_of_type(template, "AWS::CloudWatch::Alarm").items()}


def _metric_stats(alarm: dict) -> list[dict]:
    """(Namespace, MetricName, Dimensions) of a plain or metric-math alarm."""
    if "MetricName" in alarm:
        return [{k: alarm.get(k) for k in ("Namespace", "MetricName", "Dimensions")}]
    return [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]


def test_every_alarm_notifies_the_topic(template: dict) -> None:
    alarms = _alarms(template)
    assert len(alarms) >= 10
    for name, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"], name
        assert {"Ref": "AlarmTopic"} in alarm["OKActions"], name
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert Resolver(template).condition("HasAlarmEmail") is False  # no email by default
    assert Resolver(template, {"AlarmEmail": "ops@example.com"}).condition("HasAlarmEmail") is True


def test_the_issue_alarms_exist(template: dict) -> None:
    watched = {(m["Namespace"] if isinstance(m["Namespace"], str) else "app", m["MetricName"])
               for alarm in _alarms(template).values() for m in _metric_stats(alarm)}
    for needed in [("app", "TasksRefunded"), ("app", "TasksHeld"), ("AWS/States", "ExecutionsFailed"),
                   ("AWS/States", "ExecutionsTimedOut"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
                   ("AWS/ApiGateway", "5xx"), ("AWS/ApiGateway", "Latency"), ("app", "ProviderLatency"),
                   ("app", "ProviderThrottled"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")]:
        assert needed in watched, needed
    latency = _alarms(template)["ApiLatencyAlarm"]
    assert latency["ExtendedStatistic"] == "p95"


def test_application_alarms_watch_metrics_the_code_emits(template: dict) -> None:
    """Same namespace as the functions' POWERTOOLS_METRICS_NAMESPACE, only the service dimension,
    and a metric name some module really counts."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    source = "\n".join(path.read_text() for path in CODE)
    emitted = set(re.findall(r"""count\(\s*["'](\w+)["']""", source))
    emitted |= set(re.findall(r"""add_metric\(\s*name=["'](\w+)["']""", source))
    checked = 0
    for name, alarm in _alarms(template).items():
        for metric in _metric_stats(alarm):
            if metric["Namespace"] != env["POWERTOOLS_METRICS_NAMESPACE"]:
                continue
            checked += 1
            assert metric["MetricName"] in emitted, f"{name}: nothing emits {metric['MetricName']}"
            assert metric["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}], name
    assert checked >= 5


def test_admin_grants_are_capped_and_alarmed(template: dict) -> None:
    """One grant is capped (MaxGrantPoints -> the API's MAX_GRANT_POINTS); the points granted in an hour
    (the code's PointsGranted count, all grants) above GrantAlarmPointsPerHour alarm the topic."""
    parameters = template["Parameters"]
    for name in ("MaxGrantPoints", "GrantAlarmPointsPerHour"):
        assert parameters[name]["Type"] == "Number" and str(parameters[name]["Default"]) == "100000", name
    for logical, fn in functions(template).items():
        if logical == "ApiFunction":
            assert fn["environment"]["MAX_GRANT_POINTS"] == {"Ref": "MaxGrantPoints"}
        else:
            assert "MAX_GRANT_POINTS" not in fn["environment"], logical
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    granted = [alarm for alarm in _alarms(template).values()
               if any(m["MetricName"] == "PointsGranted" for m in _metric_stats(alarm))]
    assert len(granted) == 1
    (alarm,) = granted
    assert Resolver(template, {}, stack_name="aigc-prod").resolve(alarm["AlarmName"]) == "aigc-prod-points-granted"
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 3600, 1)
    assert alarm["Threshold"] == {"Ref": "GrantAlarmPointsPerHour"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"] and {"Ref": "AlarmTopic"} in alarm["OKActions"]


def test_every_dead_letter_queue_is_encrypted_and_alarmed(template: dict) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    dead_letter = {k for k in queues if k.endswith("DeadLetterQueue")}
    assert dead_letter
    alarmed = {d["Value"]["Fn::GetAtt"][0] for alarm in _alarms(template).values() for m in _metric_stats(alarm)
               if m["MetricName"] == "ApproximateNumberOfMessagesVisible" for d in m["Dimensions"]}
    assert dead_letter <= alarmed
    for logical, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), logical


def test_every_async_function_and_rule_has_a_dead_letter_queue(template: dict) -> None:
    queues = set(resources_of_type(template, "AWS::SQS::Queue"))
    async_functions = []
    for logical, fn in functions(template).items():
        kinds = {event["Type"] for event in fn["events"].values()}
        if not kinds & ASYNC_EVENTS:
            continue
        async_functions.append(logical)
        dlq = template["Resources"][logical]["Properties"].get("DeadLetterQueue") or {}
        assert dlq.get("Type") == "SQS" and dlq["TargetArn"]["Fn::GetAtt"][0] in queues, logical
        for name, event in fn["events"].items():
            if event["Type"] in {"EventBridgeRule", "Schedule", "ScheduleV2", "CloudWatchEvent"}:
                target = (event["Properties"].get("DeadLetterConfig") or {}).get("Arn")
                assert target and target["Fn::GetAtt"][0] in queues, f"{logical}.{name}"
    assert {"UploadFunction", "ReconcileFunction"} <= set(async_functions)


def test_events_queue_accepts_only_this_stacks_rules(template: dict) -> None:
    policy = template["Resources"]["EventsDeadLetterQueuePolicy"]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    sources = {arn["Fn::GetAtt"][0] for arn in statement["Condition"]["ArnEquals"]["aws:SourceArn"]}
    _require_sam()
    rules = {logical for logical, resource in _transformed()["Resources"].items()
             if resource["Type"] == "AWS::Events::Rule"
             and any("EventsDeadLetterQueue" in json.dumps(t.get("DeadLetterConfig", {}))
                     for t in resource["Properties"]["Targets"])}
    assert rules and sources == rules  # exactly the rules that dead-letter into it


def test_workflow_invokes_published_aliases() -> None:
    _require_sam()
    cfn = _transformed()
    substitutions = cfn["Resources"]["TaskStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions
    for name, value in substitutions.items():
        if name.endswith("FunctionArn"):
            target = cfn["Resources"][value["Ref"]]
            assert target["Type"] == "AWS::Lambda::Alias", name
            assert target["Properties"]["Name"] == "live"


def test_every_function_deploys_through_codedeploy_with_alarm_rollback() -> None:
    _require_sam()
    cfn = _transformed()
    groups = resources_of_type(cfn, "AWS::CodeDeploy::DeploymentGroup")
    fns = resources_of_type(cfn, "AWS::Lambda::Function")
    assert len(groups) == len(fns)
    for logical, group in groups.items():
        props = group["Properties"]
        alarms = {a["Name"]["Ref"] for a in props["AlarmConfiguration"]["Alarms"]}
        assert {"LambdaErrorsAlarm", "Api5xxRateAlarm"} <= alarms, logical
        assert "DEPLOYMENT_STOP_ON_ALARM" in props["AutoRollbackConfiguration"]["Events"]


def test_canary_in_prod_all_at_once_in_dev(template: dict) -> None:
    preference = template["Globals"]["Function"]["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentType"}
    assert template["Parameters"]["DeploymentType"]["Default"] == "AllAtOnce"
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    prod = config["prod"]["deploy"]["parameters"]["parameter_overrides"]
    assert re.search(r"\bDeploymentType=Canary", prod)
    dev = config["default"]["deploy"]["parameters"]["parameter_overrides"]
    assert re.search(r"\bDeploymentType=AllAtOnce\b", dev)


def test_api_snapstart_throttling_and_reserved_concurrency(template: dict) -> None:
    resources = template["Resources"]
    assert resources["ApiFunction"]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert template["Globals"]["Function"]["AutoPublishAlias"] == "live"
    routes = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert routes == {"ThrottlingRateLimit": {"Ref": "ApiThrottleRateLimit"},
                      "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurstLimit"}}
    # The submit step is not reserved: bounded by the API's throttle and admission (docs/ARCHITECTURE.md, "Bursts").
    assert "ReservedConcurrentExecutions" not in resources["ProviderSubmitFunction"]["Properties"]
    for logical, parameter in [("ProviderPollFunction", "ProviderStepConcurrency"),
                               ("UploadFunction", "UploadConcurrency")]:
        reserved = resources[logical]["Properties"]["ReservedConcurrentExecutions"]
        assert Resolver(template).resolve(reserved) == str(template["Parameters"][parameter]["Default"]), logical
        assert Resolver(template, {parameter: "0"}).resolve(reserved) is None, logical  # 0 reserves nothing


def test_dashboard_body_is_valid_json_with_the_issue_widgets(template: dict) -> None:
    physical = {logical: {"Ref": logical, "Arn": f"arn:{logical}", "QueueName": logical}
                for logical in template["Resources"]}
    body = Resolver(template, {}, physical).resolve(
        template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"])
    widgets = json.loads(body)["widgets"]
    titles = " | ".join(w["properties"].get("title", "") for w in widgets)
    for needed in ("Tasks by outcome and model", "Points debited and refunded", "Queue depth",
                   "Provider latency", "API latency"):
        assert needed in titles
    points = next(w for w in widgets if w["properties"].get("title", "").startswith("Points debited"))
    assert {m[1] for m in points["properties"]["metrics"]} == {"PointsDebited", "PointsRefunded", "PointsGranted"}
    depth = next(w for w in widgets if w["properties"].get("title", "").startswith("Queue depth"))
    shown = {m[3] if m[0] == "AWS/SQS" else m[1] for m in depth["properties"]["metrics"]}
    assert shown == set(resources_of_type(template, "AWS::SQS::Queue"))  # every queue of the stack
    alarm_widget = next(w for w in widgets if w["type"] == "alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"arn:{logical}" for logical in _alarms(template))


def test_workflow_alias_substitutions_resolve_locally(template: dict) -> None:
    """The local stack resolves `!Ref <Function>.Alias` to the alias it publishes in moto."""
    from local.stack import _physical

    _, physical = _physical(template, "t")
    subs = Resolver(template, {}, physical).resolve(state_machine(template, "TaskStateMachine")["substitutions"])
    assert subs["RefundFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:t-RefundFunction:live"


def test_every_checkov_skip_says_why(template: dict) -> None:
    """`make lint` runs checkov to 0 failed: each finding not fixed is a recorded choice."""
    skips = [(logical, skip) for logical, resource in template["Resources"].items()
             for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])]
    assert skips
    for logical, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical, skip)
        assert len(skip.get("comment", "").split()) >= 5, f"{logical} {skip['id']}: give the reason"
    assert "CKV_AWS_116" not in {s["id"] for logical, s in skips if logical in ("UploadFunction", "ReconcileFunction")}


def test_lambda_error_and_throttle_alarms_cover_every_function(template: dict) -> None:
    """Every function once, over LambdaErrorsAlarm and its overflow alarms (LambdaErrors2Alarm...): CloudWatch
    takes at most 10 metrics in one metric-math alarm."""
    alarms = _alarms(template)
    for prefix, metric in (("LambdaErrors", "Errors"), ("LambdaThrottles", "Throttles")):
        watched = []
        for name in sorted(a for a in alarms if re.fullmatch(rf"{prefix}\d*Alarm", a)):
            stats = _metric_stats(alarms[name])
            assert len(stats) <= 10, f"{name}: {len(stats)} metrics, CloudWatch takes 10"
            watched += [d["Value"]["Ref"] for m in stats if m["MetricName"] == metric for d in m["Dimensions"]]
        assert sorted(watched) == sorted(functions(template)), prefix


def test_layer_build_compiles_for_lambdas_python_or_warns() -> None:
    """`make build` ships cpython-313 .pyc checked by hash (zip mtimes are not exact); without a
    Python 3.13 it says so (verified by a real build: bench/RESULTS.md)."""
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text()
    assert re.search(r'-m compileall .*--invalidation-mode unchecked-hash "\$\(DEST\)"', makefile)
    assert "sys.version_info[:2] != (3, 13)" in makefile
    assert "WARNING: no Python 3.13 found" in makefile
    assert "--no-compile" in makefile  # pip would compile for the build interpreter, not 3.13
