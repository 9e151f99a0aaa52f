"""template.yaml: lint, build layout, least privilege, local/cfn.py and the ASL.

The SAM CLI lives in its own virtualenv (.venv-sam, `make venv-sam`); CI
installs it, so its absence is a failure, not a skip.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]

from local.cfn import (
    Resolver,
    dynamodb_table_kwargs,
    functions,
    http_route_authorizers,
    http_routes,
    load_template,
    point_in_time_recovery,
    render_definition,
    resources_of_type,
    state_machine,
    ttl_attribute,
)

TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
ASL = ROOT / "statemachine" / "task_workflow.asl.json"

SAM_ENV = {
    **os.environ,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SAM_CLI_TELEMETRY": "0",
}

# What each function may touch (docs/ARCHITECTURE.md, "Functions").
ALLOWED_RESOURCES = {
    "ApiFunction": {"PointsTable", "TasksTable", "IdempotencyTable", "TaskStateMachine", "ResultsBucket",
                    "ProviderKeysSecret", "WebhookSecretsTable", "SchedulerTable", "ApiKeysTable", "StatsTable"},
    # the HttpApi's Lambda authorizer: finds a key by its hash, notes its last use
    "AuthorizerFunction": {"ApiKeysTable"},
    "ProviderSubmitFunction": {"TasksTable", "ProviderKeysSecret", "ResultsBucket", "SchedulerTable"},
    "ProviderPollFunction": {"TasksTable", "ProviderKeysSecret", "SchedulerTable"},
    "StoreResultsFunction": {"TasksTable", "ResultsBucket", "SchedulerTable"},
    "RefundFunction": {"PointsTable", "TasksTable", "ProviderKeysSecret", "SchedulerTable"},
    # the upload function names the bucket (it is notified by it: a Ref would be a cycle)
    "UploadFunction": {"PointsTable", "TasksTable", "TaskStateMachine", "UploadDeadLetterQueue", "SchedulerTable"},
    "ReconcileFunction": {"PointsTable", "TasksTable", "TaskStateMachine", "ProviderKeysSecret",
                          "ReconcileDeadLetterQueue", "SchedulerTable"},
    # reads the tasks table's stream only (SAM's stream policy), presigns the body's result URLs
    "WebhookFunction": {"TasksTable", "WebhookSecretsTable", "WebhookQueue", "WebhookDeadLetterQueue",
                        "ResultsBucket"},
    # records and forgets sockets (aigc.domain.push)
    "SocketFunction": {"ConnectionsTable", "ApiKeysTable"},
    # reads the two streams (SAM's stream policy), finds a user's sockets, posts to the stage, presigns results
    "PushFunction": {"ConnectionsTable", "WebSocketApi", "WebSocketStage", "ResultsBucket", "ApiKeysTable",
                     "PointsTable"},
    # reads the two streams (SAM's stream policy), counts into the stats table, dead-letters what it cannot
    "StatsFunction": {"StatsTable", "StatsDeadLetterQueue"},
}
SENSITIVE_SERVICES = ("dynamodb", "s3", "secretsmanager", "states", "lambda", "kms")
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::StackId",
          "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs"}




def _require_sam() -> None:
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: run `make venv-sam` (CI installs it)")


@lru_cache(maxsize=1)
def _transformed() -> dict:
    """The CloudFormation SAM deploys (policy templates expanded into roles)."""
    proc = subprocess.run(
        [str(SAM_PYTHON), str(Path(__file__).with_name("sam_transform.py")), str(TEMPLATE)],
        cwd=ROOT, env=SAM_ENV, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


# ------------------------------------------------------------------ sam validate


def test_sam_validate_lint() -> None:
    _require_sam()
    proc = subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=ROOT, env=SAM_ENV, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


# ------------------------------------------------------------------ build layout


def test_every_function_has_a_makefile_build_and_a_handler(template: dict) -> None:
    fns = functions(template)
    assert set(fns) == set(ALLOWED_RESOURCES), "update ALLOWED_RESOURCES with docs/ARCHITECTURE.md"
    problems = []
    for logical, fn in fns.items():
        folder = ROOT / fn["code_uri"]
        if not folder.is_dir():
            problems.append(f"{logical}: CodeUri {fn['code_uri']} does not exist")
            continue
        if fn["metadata"].get("BuildMethod") != "makefile":
            problems.append(f"{logical}: Metadata.BuildMethod is not makefile")
        makefile = folder / "Makefile"
        if not makefile.is_file() or not re.search(rf"^build-{logical}:", makefile.read_text(), re.M):
            problems.append(f"{logical}: {makefile.relative_to(ROOT)} lacks target build-{logical}")
        module, _, attr = fn["handler"].rpartition(".")
        source = folder / f"{module.replace('.', '/')}.py"
        if not source.is_file():
            problems.append(f"{logical}: handler module {source.relative_to(ROOT)} does not exist")
            continue
        names = {
            node.name for node in ast.parse(source.read_text()).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        } | {
            target.id for node in ast.parse(source.read_text()).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)
        }
        if attr not in names:
            problems.append(f"{logical}: {source.relative_to(ROOT)} defines no `{attr}`")
        if fn["runtime"] != "python3.13" or fn["architectures"] != ["arm64"]:
            problems.append(f"{logical}: not python3.13 on arm64")
    assert not problems, "\n".join(problems)


def test_common_layer_builds_without_docker(template: dict, tmp_path) -> None:
    """Run the layer's makefile build as `sam build` would (no Docker) and check what it produces:
    Lambda's python3.13 arm64 wheels, the shared library, no boto3/botocore (the runtime has them)."""
    layer = template["Resources"]["CommonLayer"]
    props, meta = layer["Properties"], layer["Metadata"]
    assert meta == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    folder = ROOT / props["ContentUri"]
    for fn in functions(template).values():
        assert {"Ref": "CommonLayer"} in fn["layers"]
    built = subprocess.run(
        ["make", "-s", "-C", str(folder), "build-CommonLayer", f"ARTIFACTS_DIR={tmp_path}", f"PYTHON={sys.executable}"],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    python = tmp_path / "python"
    assert (python / "aigc" / "__init__.py").is_file()
    compiled = [p.name for p in (python / "aigc").rglob("*.pyc")]
    assert all(".cpython-313." in name for name in compiled), compiled  # bytecode only for Lambda's Python
    shipped = {p.name.lower() for p in python.iterdir()}
    assert not shipped & {"boto3", "botocore", "s3transfer"}, "boto3 comes with the Lambda runtime"
    requirements = [re.split(r"[=<>\[]", line)[0].strip().lower().replace("-", "_")
                    for line in (folder / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    for name in requirements:
        assert any(n.startswith(f"{name}-") and n.endswith(".dist-info") for n in shipped), f"{name} not installed"
    binaries = [p.name for p in python.rglob("*.so")]
    assert binaries and all("cpython-313-aarch64-linux-gnu" in n or "abi3" in n for n in binaries), binaries


# ------------------------------------------------------------------ least privilege


def _references(value, found: set[str]) -> set[str]:
    """Logical ids / parameters named by Ref, GetAtt and Sub inside ``value``."""
    if isinstance(value, list):
        for item in value:
            _references(item, found)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name not in variables:
                        found.add(name.split(".")[0])
                _references(variables, found)
            else:
                _references(arg, found)
    return found


def _role_statements(cfn: dict, role_logical: str) -> list[dict]:
    role = cfn["Resources"][role_logical]["Properties"]
    statements = []
    for policy in role.get("Policies") or []:
        stmts = policy["PolicyDocument"]["Statement"]
        statements.extend(stmts if isinstance(stmts, list) else [stmts])
    return statements


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# IAM cannot scope these: a service-integration task token has no resource (waking queued tasks).
UNSCOPABLE_ACTIONS = {"states:sendtasksuccess", "states:sendtaskfailure"}


def _is_wildcard(resource) -> bool:
    return resource == "*" or resource == {"Fn::Sub": "*"}


def test_no_wildcard_resource_on_data_actions() -> None:
    _require_sam()
    cfn = _transformed()
    offenders = []
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for stmt in _role_statements(cfn, logical):
            if stmt.get("Effect") != "Allow":
                continue
            actions = [a.lower() for a in _as_list(stmt.get("Action", []))]
            sensitive = [a for a in actions if (a.split(":")[0] in SENSITIVE_SERVICES or a == "*")
                         and a not in UNSCOPABLE_ACTIONS]
            if sensitive and any(_is_wildcard(r) for r in _as_list(stmt.get("Resource", []))):
                offenders.append(f"{logical}: {sensitive} on Resource '*'")
    assert not offenders, "\n".join(offenders)


def test_function_policies_reference_only_what_the_function_owns(template: dict) -> None:
    _require_sam()
    cfn = _transformed()
    declared = set(template["Resources"])
    problems = []
    for logical in functions(template):
        role = cfn["Resources"][logical]["Properties"]["Role"]["Fn::GetAtt"][0]
        refs = _references(_role_statements(cfn, role), set()) - PSEUDO
        undeclared = refs - declared
        if undeclared:
            problems.append(f"{logical}: policies reference undeclared {sorted(undeclared)}")
        extra = (refs & declared) - ALLOWED_RESOURCES[logical]
        if extra:
            problems.append(f"{logical}: policies reach {sorted(extra)} beyond docs/ARCHITECTURE.md")
        for policy in template["Resources"][logical]["Properties"].get("Policies") or []:
            if isinstance(policy, str) and ("FullAccess" in policy or policy.endswith("Administrator")):
                problems.append(f"{logical}: broad managed policy {policy}")
    assert not problems, "\n".join(problems)


def _actions_on(cfn: dict, function: str, resource: str) -> set[str]:
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return {a.lower() for stmt in _role_statements(cfn, role) if stmt.get("Effect") == "Allow"
            and resource in _references(stmt.get("Resource"), set()) for a in _as_list(stmt["Action"])}


def test_webhook_secrets_are_read_and_created_by_exactly_what_needs_them() -> None:
    """The API reads, creates and rotates secrets; the delivery function reads them and creates one for
    a user's first delivery (a conditional put): nothing may scan, update or delete them."""
    _require_sam()
    cfn = _transformed()
    for function in ("ApiFunction", "WebhookFunction"):
        assert _actions_on(cfn, function, "WebhookSecretsTable") == {"dynamodb:getitem", "dynamodb:putitem"}, function
    for function in set(functions(load_template(TEMPLATE))) - {"ApiFunction", "WebhookFunction"}:
        assert not _actions_on(cfn, function, "WebhookSecretsTable"), function


# What each function does to the ledger (aigc.domain.points), by ARN: "table" or "index/<name>".
# A TransactWrite needs the action of each item it names (Put -> PutItem, Update -> UpdateItem; a
# condition on a Put or Update is part of that action, not a ConditionCheckItem); pynamodb 6 never
# calls DescribeTable for gets, queries or transactions.
POINTS_TABLE_ACTIONS = {
    # debit (update BALANCE, RATE# and lots, put DEBIT), refunds (cancel, operator, a start that failed),
    # grants and purchases (update BALANCE and the order, put lots and entries); get BALANCE (balance, totals,
    # the spending order); batch-get the lots a debit may spend (consistent); a task's entries and the
    # user's orders (Query by key); the ledger's pages (Query on LedgerByTime)
    "ApiFunction": {"table": {"dynamodb:getitem", "dynamodb:batchgetitem", "dynamodb:query", "dynamodb:putitem",
                              "dynamodb:updateitem"},
                    "index/LedgerByTime": {"dynamodb:query"}},
    # has_account (get BALANCE), debit (batch-get its lots), refund of a start that failed, a rejected upload's count
    "UploadFunction": {"table": {"dynamodb:getitem", "dynamodb:batchgetitem", "dynamodb:putitem",
                                 "dynamodb:updateitem"}},
    # refund_task: update BALANCE and lots, put REFUND (get BALANCE: a task debited before lots existed)
    "RefundFunction": {"table": {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:updateitem"}},
    # the reconciler's refunds, and the schedule's expiry: query each shard of LotsByExpiry, get each due lot
    "ReconcileFunction": {"table": {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:updateitem"},
                          "index/LotsByExpiry": {"dynamodb:query"}},
    # the push renders a balance change with the lots its BALANCE item names (read only)
    "PushFunction": {"table": {"dynamodb:batchgetitem"}},
}
POINTS_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/points"


def _points_table_grants(cfn: dict, function: str) -> dict[str, set[str]]:
    """{"table" | "index/<name>" | other ARN: actions} the function's role allows on the points table."""
    physical = {logical: {"Ref": logical, "Arn": f"arn:aws:local:{logical}"} for logical in cfn["Resources"]}
    physical["PointsTable"] = {"Ref": "points", "Arn": POINTS_ARN, "StreamArn": f"{POINTS_ARN}/stream/x"}
    resolver = Resolver(cfn, {}, physical)
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: dict[str, set[str]] = {}
    for stmt in _role_statements(cfn, role):
        assert stmt.get("Effect") == "Allow" and "NotAction" not in stmt and "NotResource" not in stmt, stmt
        for resource in _as_list(stmt.get("Resource", [])):
            if "PointsTable" not in _references(resource, set()):
                continue
            arn = resolver.resolve(resource)
            target = "table" if arn == POINTS_ARN else arn.removeprefix(f"{POINTS_ARN}/")
            grants.setdefault(target, set()).update(a.lower() for a in _as_list(stmt["Action"]))
    return grants


def test_the_ledger_is_least_privilege(template: dict) -> None:
    """Each function may do to the points table exactly what aigc.domain.points (lots, orders) does for it:
    nothing deletes, scans or batch-writes the ledger; only the API queries it (and LedgerByTime), only the
    reconciler the due lots (LotsByExpiry)."""
    _require_sam()
    cfn = _transformed()
    problems = []
    for function in functions(template):
        grants = _points_table_grants(cfn, function)
        expected = POINTS_TABLE_ACTIONS.get(function, {})
        if grants != expected:
            problems.append(f"{function}: {({k: sorted(v) for k, v in grants.items()})} "
                            f"!= {({k: sorted(v) for k, v in expected.items()})}")
        forbidden = {"dynamodb:scan", "dynamodb:deleteitem", "dynamodb:batchwriteitem", "dynamodb:*"}
        for target, actions in grants.items():
            if actions & forbidden:
                problems.append(f"{function}: {sorted(actions & forbidden)} on the points {target}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ identity


def _admin_group(template: dict) -> str:
    return template["Globals"]["Function"]["Environment"]["Variables"]["ADMIN_GROUP"]


def test_app_clients_sign_in_with_srp_only(template: dict) -> None:
    """No app client takes the password itself (USER_PASSWORD_AUTH): SRP and refresh tokens only."""
    clients = resources_of_type(template, "AWS::Cognito::UserPoolClient")
    assert clients
    for logical, client in clients.items():
        flows = set(client["Properties"]["ExplicitAuthFlows"])
        assert flows == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}, logical
        assert client["Properties"]["GenerateSecret"] is False, logical


def test_admins_are_invited_and_sign_in_with_mfa(template: dict) -> None:
    """The admins group lives in a pool without self sign-up that requires TOTP; the users' pool keeps
    self sign-up and has no admins group (a user there can never reach an /admin route)."""
    resources = template["Resources"]
    groups = resources_of_type(template, "AWS::Cognito::UserPoolGroup")
    admin_pools = {g["Properties"]["UserPoolId"]["Ref"] for g in groups.values()
                   if g["Properties"]["GroupName"] == _admin_group(template)}
    assert len(admin_pools) == 1, admin_pools
    (admin_pool,) = admin_pools
    pool = resources[admin_pool]["Properties"]
    assert pool["MfaConfiguration"] == "ON"
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert resources[admin_pool]["DeletionPolicy"] == "Retain"
    users = resources["UserPool"]["Properties"]
    assert users.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly", False) is False  # self sign-up
    assert admin_pool != "UserPool"
    clients = {c["Properties"]["UserPoolId"]["Ref"]: logical
               for logical, c in resources_of_type(template, "AWS::Cognito::UserPoolClient").items()}
    assert set(clients) == {"UserPool", admin_pool}


def _route_authorizers(cfn: dict) -> tuple[dict[tuple[str, str], str], dict]:
    """({(METHOD, path): authorizer name}, the API's OpenAPI body) of the one HttpApi SAM generated."""
    (api,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"
              and r["Properties"].get("ProtocolType") != "WEBSOCKET"]
    body = api["Properties"]["Body"]
    routes = {(method.upper(), path): next(iter(op["security"][0]))
              for path, ops in body["paths"].items() for method, op in ops.items()}
    return routes, body


def test_admin_routes_accept_only_the_admins_pool(template: dict) -> None:
    """SAM's API definition: /admin routes use the authorizer of the admins' pool and client, every
    other authorized route the users' pool and client; with JwtIssuer both trust that issuer."""
    _require_sam()
    cfn = _transformed()
    routes, body = _route_authorizers(cfn)
    schemes = body["components"]["securitySchemes"]
    physical = {"UserPool": "users-pool", "UserPoolClient": "users-client",
                "AdminUserPool": "admins-pool", "AdminUserPoolClient": "admins-client"}
    cognito = "https://cognito-idp.us-east-1.amazonaws.com/"
    admin_routes = {(m, p) for m, p, authorized in http_routes(template, "ApiFunction") if p.startswith("/admin/")}
    assert len(admin_routes) == 6
    for parameters, users, admins in [
        ({}, (cognito + "users-pool", ["users-client"]), (cognito + "admins-pool", ["admins-client"])),
        ({"JwtIssuer": "https://issuer.example", "JwtAudience": "aud"},
         ("https://issuer.example", ["aud"]), ("https://issuer.example", ["aud"])),
    ]:
        resolver = Resolver(cfn, parameters, physical)
        for route, name in routes.items():
            if name == "NONE":
                assert not route[1].startswith("/admin"), route
                continue
            authorizer = schemes[name]["x-amazon-apigateway-authorizer"]
            if "jwtConfiguration" in authorizer:
                jwt = resolver.resolve(authorizer["jwtConfiguration"])
            else:  # the Lambda authorizer (JWT or API key): the issuer its function checks JWTs against
                assert route not in admin_routes, route
                env = cfn["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
                jwt = {"issuer": resolver.resolve(env["JWT_ISSUER"]),
                       "audience": resolver.resolve(env["JWT_AUDIENCE"]).split(",")}
            expected = admins if route in admin_routes else users
            assert (jwt["issuer"], jwt["audience"]) == expected, (route, name, parameters)
    assert {route for route, name in routes.items() if name == "AdminJwtAuthorizer"} == admin_routes


def test_api_keys_reach_only_the_routes_the_contract_gives_them(template: dict) -> None:
    """The routes the OpenAPI document marks `x-api-key-scope` (aigc.api.contract.key_route) are exactly those
    behind the Lambda authorizer; every other authorized route stays behind a JWT authorizer (managing keys,
    webhook secrets, admin). The authorizer is uncached and has no identity source (API Gateway would answer
    401 itself when a caller sends only one of Authorization and X-API-Key), and uses simple responses."""
    from local.openapi import api_document

    document = api_document()
    keyed = {(method.upper(), path) for path, operations in document["paths"].items()
             for method, operation in operations.items() if operation.get("x-api-key-scope")}
    by_route = http_route_authorizers(template, "ApiFunction")
    assert keyed and {route for route, name in by_route.items() if name == "KeyOrJwtAuthorizer"} == keyed
    assert {("POST", "/user/ai/tasks/submit"), ("GET", "/user/ai/tasks/{taskNo}")} <= keyed
    assert not {route for route in keyed if "/api-keys" in route[1] or "/webhooks/" in route[1]
                or route[1].startswith("/admin")}
    spec = template["Resources"]["HttpApi"]["Properties"]["Auth"]["Authorizers"]["KeyOrJwtAuthorizer"]
    assert spec["FunctionArn"] == {"Ref": "AuthorizerFunction.Alias"}
    assert spec["Identity"] == {"ReauthorizeEvery": 0} and spec["EnableSimpleResponses"] is True
    assert spec["AuthorizerPayloadFormatVersion"] == "2.0"
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert "X-API-Key" in cors["AllowHeaders"] and "DELETE" in cors["AllowMethods"]
    _require_sam()
    body = _transformed()["Resources"]["HttpApi"]["Properties"]["Body"]
    authorizer = body["components"]["securitySchemes"]["KeyOrJwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerResultTtlInSeconds"] == 0 and authorizer["identitySource"] == []


def test_api_keys_are_touched_by_exactly_what_needs_them() -> None:
    """The API creates (conditional put), lists (UserKeys) and revokes (conditional delete) keys; the authorizer
    reads one by its hash and updates its lastUsedTime. Nothing scans them; nothing else reaches them."""
    _require_sam()
    cfn = _transformed()
    assert _actions_on(cfn, "ApiFunction", "ApiKeysTable") == {"dynamodb:putitem", "dynamodb:deleteitem",
                                                               "dynamodb:query"}
    assert _actions_on(cfn, "AuthorizerFunction", "ApiKeysTable") == {"dynamodb:getitem", "dynamodb:updateitem"}
    # a WebSocket's ?token= may be a key too (aigc.domain.auth.authenticate): the authorizer's reads at most
    assert _actions_on(cfn, "SocketFunction", "ApiKeysTable") <= {"dynamodb:getitem", "dynamodb:updateitem"}
    # the push closes the sockets of revoked keys: it lists a user's keys (the UserKeys index) and no more
    assert _actions_on(cfn, "PushFunction", "ApiKeysTable") == {"dynamodb:query"}
    for function in set(functions(load_template(TEMPLATE))) - {"ApiFunction", "AuthorizerFunction", "SocketFunction",
                                                                "PushFunction"}:
        assert not _actions_on(cfn, function, "ApiKeysTable"), function


def _rules_refuse(template: dict, parameters: dict) -> list[str]:
    """AssertDescriptions of the template's Rules that fail for `parameters` (as CloudFormation would)."""
    resolver = Resolver(template, parameters)
    failed = []
    for rule in (template.get("Rules") or {}).values():
        if "RuleCondition" in rule and not resolver.resolve(rule["RuleCondition"]):
            continue
        failed += [a.get("AssertDescription", "?") for a in rule["Assertions"] if not resolver.resolve(a["Assert"])]
    return failed


def test_an_external_issuer_needs_an_audience(template: dict) -> None:
    assert _rules_refuse(template, {"JwtIssuer": "https://issuer.example"})
    assert _rules_refuse(template, {"JwtIssuer": "https://issuer.example", "JwtAudience": ""})
    assert not _rules_refuse(template, {"JwtIssuer": "https://issuer.example", "JwtAudience": "aud"})
    assert not _rules_refuse(template, {})  # the stack's own pools
    _require_sam()
    assert _transformed()["Rules"] == template["Rules"]  # SAM hands them to CloudFormation


def test_state_machine_may_invoke_exactly_the_workflow_functions(template: dict) -> None:
    _require_sam()
    cfn = _transformed()
    role = cfn["Resources"]["TaskStateMachine"]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = _role_statements(cfn, role)
    invokable = set()
    for stmt in statements:
        if any(a.startswith("lambda:") for a in _as_list(stmt["Action"])):
            invokable |= _references(stmt.get("Resource"), set())
    substituted = {
        _alias_target(value)
        for value in state_machine(template, "TaskStateMachine")["substitutions"].values()
        if _alias_target(value)
    }
    assert invokable - PSEUDO == substituted


def _alias_target(value) -> str | None:
    """The function of a `!Ref <Function>.Alias` substitution (SAM's published alias)."""
    if isinstance(value, dict) and isinstance(value.get("Ref"), str) and value["Ref"].endswith(".Alias"):
        return value["Ref"].removesuffix(".Alias")
    return None


# ------------------------------------------------------------------ local/cfn.py


def test_short_tags_become_long_forms(template: dict) -> None:
    subs = state_machine(template, "TaskStateMachine")["substitutions"]
    assert subs["RefundFunctionArn"] == {"Ref": "RefundFunction.Alias"}
    env = functions(template)["ApiFunction"]["environment"]
    assert env["POINTS_TABLE"] == {"Ref": "PointsTable"}
    assert env["STATE_MACHINE_ARN"] == {"Ref": "TaskStateMachine"}
    assert env["ADMIN_GROUP"] == "admins"
    assert "STATE_MACHINE_ARN" not in functions(template)["RefundFunction"]["environment"]
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"


def test_each_function_environment_is_exactly_its_model(template: dict) -> None:
    """The variables template.yaml sets on a function are the ones its env model validates at cold start
    (aigc.core.config.ENVIRONMENTS): nothing the code requires is missing, nothing set is unread."""
    from aigc.core.config import ENVIRONMENTS

    assert set(functions(template)) == set(ENVIRONMENTS)
    for logical, fn in functions(template).items():
        assert set(fn["environment"]) == ENVIRONMENTS[logical].variable_names(), logical


def test_dynamodb_tables_build_in_moto(template: dict) -> None:
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    assert set(tables) == {"PointsTable", "TasksTable", "IdempotencyTable", "WebhookSecretsTable", "SchedulerTable",
                           "ApiKeysTable", "ConnectionsTable", "StatsTable"}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for logical in tables:
            name = f"test-{logical}"
            client.create_table(**dynamodb_table_kwargs(template, logical, name))
            attr = ttl_attribute(template, logical)
            if attr:
                client.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attr}
                )
            assert point_in_time_recovery(template, logical)
        points = client.describe_table(TableName="test-PointsTable")["Table"]
        assert [i["IndexName"] for i in points["LocalSecondaryIndexes"]] == ["LedgerByTime"]
        assert [(i["IndexName"], i["Projection"]["ProjectionType"]) for i in points["GlobalSecondaryIndexes"]] == [
            ("LotsByExpiry", "KEYS_ONLY")]  # spending a lot never writes the index
        assert ttl_attribute(template, "PointsTable") == "expires_at"
        tasks = client.describe_table(TableName="test-TasksTable")["Table"]
        assert sorted((i["IndexName"], i["Projection"]["ProjectionType"]) for i in tasks["GlobalSecondaryIndexes"]) == [
            ("Attention", "KEYS_ONLY"), ("TasksByTime", "INCLUDE"), ("UserStatus", "INCLUDE"), ("UserTasks", "ALL")]
        assert ttl_attribute(template, "TasksTable") is None
        assert ttl_attribute(template, "IdempotencyTable") == "expiration"
        desc = client.describe_time_to_live(TableName="test-IdempotencyTable")
        assert desc["TimeToLiveDescription"]["AttributeName"] == "expiration"

        # The indexes answer queries as the code will ask them.
        client.put_item(TableName="test-PointsTable", Item={
            "user_id": {"S": "u1"}, "entry": {"S": "TXN#T1#DEBIT"}, "ledger_time": {"S": "2026-01-01T00:00:00Z#T1"},
        })
        got = client.query(
            TableName="test-PointsTable", IndexName="LedgerByTime",
            KeyConditionExpression="user_id = :u", ExpressionAttributeValues={":u": {"S": "u1"}},
        )
        assert got["Count"] == 1
        client.put_item(TableName="test-TasksTable", Item={
            "task_no": {"S": "T1"}, "user_id": {"S": "u1"}, "created_at": {"S": "2026-01-01T00:00:00Z"},
        })
        got = client.query(
            TableName="test-TasksTable", IndexName="UserTasks", ScanIndexForward=False,
            KeyConditionExpression="user_id = :u", ExpressionAttributeValues={":u": {"S": "u1"}},
        )
        assert got["Items"][0]["task_no"] == {"S": "T1"}


def test_resolver(template: dict) -> None:
    physical = {
        "ResultsBucket": {"Ref": "aigc-results", "Arn": "arn:aws:s3:::aigc-results"},
        "UserPool": "us-east-1_pool",
        "UserPoolClient": "client123",
        "AdminUserPool": "us-east-1_admins",
        "AdminUserPoolClient": "admin456",
        "TaskStateMachine": {"Ref": "arn:aws:states:us-east-1:123456789012:stateMachine:sm", "Name": "sm"},
        "RefundFunction": {"Ref": "refund", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:refund"},
        "AuthorizerFunction.Alias": "arn:aws:lambda:us-east-1:123456789012:function:authorizer:live",
        "PointsTable": "points", "TasksTable": "tasks", "IdempotencyTable": "idem", "WebhookSecretsTable": "hooks",
        "SchedulerTable": "scheduler", "StatsTable": "stats", "ApiKeysTable": "keys", "ConnectionsTable": "sockets",
        "ProviderKeysSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys",
    }
    resolver = Resolver(template, {"LogLevel": "DEBUG"}, physical, stack_name="aigc-test")
    # Sub with a parameter / pseudo parameter, and with a GetAtt.
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${LogLevel}"}) == "aigc-test-DEBUG"
    assert resolver.resolve({"Fn::Sub": "${ResultsBucket.Arn}/*"}) == "arn:aws:s3:::aigc-results/*"
    assert resolver.resolve({"Fn::Sub": ["${X}-${!Literal}", {"X": {"Ref": "ResultsBucket"}}]}) == "aigc-results-${Literal}"
    assert resolver.resolve({"Fn::GetAtt": ["RefundFunction", "Arn"]}).endswith(":function:refund")
    # Parameters: defaults, overrides, lists, numbers as strings.
    assert resolver.resolve({"Ref": "CorsAllowOrigins"}) == ["*"]
    assert resolver.resolve({"Ref": "SubmitRateLimitPerMinute"}) == "3"
    assert resolver.resolve({"Fn::Join": [",", {"Fn::Split": [",", "a,b"]}]}) == "a,b"
    assert resolver.resolve({"Fn::Select": [1, ["a", "b"]]}) == "b"
    # Conditions, Fn::If and AWS::NoValue.
    assert resolver.condition("CreateUserPool") is True
    assert resolver.condition("ApiAccessLogs") is False
    api = resolver.resolve(template["Resources"]["HttpApi"]["Properties"])
    assert "AccessLogSettings" not in api
    jwt = api["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
    assert jwt == {"issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", "audience": ["client123"]}
    external = Resolver(template, {"JwtIssuer": "https://issuer.example", "JwtAudience": "aud"}, physical)
    assert not external.resource_enabled("UserPool")
    jwt = external.resolve(template["Resources"]["HttpApi"]["Properties"]["Auth"])
    assert jwt["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]["issuer"] == "https://issuer.example"
    env = resolver.resolve(functions(template)["ApiFunction"]["environment"] | {"X": {"Ref": "AWS::NoValue"}})
    assert "X" not in env and env["STATE_MACHINE_ARN"].endswith(":stateMachine:sm")
    assert env["POINTS_TABLE"] == "points" and env["SUBMIT_RATE_LIMIT_PER_MINUTE"] == "3"
    with pytest.raises(KeyError):
        Resolver(template).resolve({"Ref": "PointsTable"})  # no physical name given


def test_http_routes(template: dict) -> None:
    routes = set(http_routes(template, "ApiFunction"))
    assert routes == {
        ("POST", "/user/ai/tasks/submit", True),
        ("GET", "/user/ai/tasks/list", True),
        ("GET", "/user/ai/tasks/{taskNo}", True),
        ("GET", "/user/points/consumption/balance", True),
        ("GET", "/user/points/consumption/records", True),
        ("GET", "/models", False),
        ("GET", "/templates", False),
        ("POST", "/user/ai/tasks/quote", True),
        ("POST", "/admin/points/grant", True),
        ("POST", "/user/ai/tasks/{taskNo}/cancel", True),
        ("POST", "/user/ai/tasks/{taskNo}/retry", True),
        ("POST", "/user/uploads", True),
        ("GET", "/admin/tasks/{taskNo}", True),
        ("POST", "/admin/tasks/{taskNo}/refund", True),
        ("GET", "/admin/stats", True),
        ("GET", "/admin/tasks", True),
        ("GET", "/admin/users/{userId}", True),
        ("GET", "/openapi.json", False),
        ("GET", "/docs", False),
        ("GET", "/user/webhooks/secret", True),
        ("POST", "/user/webhooks/secret/rotate", True),
        ("POST", "/user/api-keys", True),
        ("GET", "/user/api-keys", True),
        ("DELETE", "/user/api-keys/{keyId}", True),
        ("GET", "/points/packs", False),
        ("POST", "/user/points/checkout", True),
        ("GET", "/user/points/orders", True),
        ("GET", "/user/points/orders/{orderNo}", True),
        ("POST", "/payments/stripe/webhook", False),  # Stripe signs it (Stripe-Signature): no token
    }
    for logical in functions(template):
        if logical != "ApiFunction":
            assert http_routes(template, logical) == []


# ------------------------------------------------------------------ the workflow (ASL)


def _asl_text() -> str:
    return ASL.read_text()


def _fake_substitutions(template: dict) -> dict[str, str]:
    out = {}
    for name, value in state_machine(template, "TaskStateMachine")["substitutions"].items():
        if _alias_target(value):
            out[name] = f"arn:aws:lambda:us-east-1:123456789012:function:{_alias_target(value)}:live"
        else:
            out[name] = f"sub-{name}"
    return out


def _definition(template: dict) -> dict:
    return json.loads(render_definition(_asl_text(), _fake_substitutions(template)))


def _scopes(definition: dict):
    """Every {StartAt, States} scope: the top level, Parallel branches, Map processors."""
    yield definition
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            yield from _scopes(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _scopes(state[key])


def _targets(state: dict) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [choice["Next"] for choice in state.get("Choices", []) if "Next" in choice]
    targets += [state["Default"]] if "Default" in state else []
    targets += [catch["Next"] for catch in state.get("Catch", [])]
    return targets


def test_asl_substitutions_match_template(template: dict) -> None:
    used = set(re.findall(r"\$\{([^}]+)\}", _asl_text()))
    declared = set(state_machine(template, "TaskStateMachine")["substitutions"])
    assert used == declared, f"only in ASL: {used - declared}; only in template: {declared - used}"
    assert state_machine(template, "TaskStateMachine")["type"] == "STANDARD"


def test_asl_lambda_tasks_retry_service_errors(template: dict) -> None:
    problems = []
    for scope in _scopes(_definition(template)):
        for name, state in scope["States"].items():
            if state["Type"] != "Task":
                continue
            resource = state["Resource"]
            if not (resource.startswith("arn:aws:states:::lambda:invoke") or ":lambda:" in resource):
                continue
            retried = {err for retry in state.get("Retry", []) for err in retry["ErrorEquals"]}
            if "States.ALL" not in retried and not LAMBDA_SERVICE_ERRORS <= retried:
                problems.append(f"{name}: no Retry on {sorted(LAMBDA_SERVICE_ERRORS - retried)}")
    assert not problems, "\n".join(problems)


def test_asl_graph_is_closed_and_reachable(template: dict) -> None:
    problems = []
    for scope in _scopes(_definition(template)):
        states = scope["States"]
        if scope["StartAt"] not in states:
            problems.append(f"StartAt {scope['StartAt']} does not exist")
            continue
        for name, state in states.items():
            for target in _targets(state):
                if target not in states:
                    problems.append(f"{name} -> {target}: no such state")
            terminal = state["Type"] in ("Succeed", "Fail") or state.get("End") is True
            if state["Type"] != "Choice" and not terminal and "Next" not in state:
                problems.append(f"{name}: neither Next nor End")
        seen, todo = set(), [scope["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo.extend(_targets(states[name]))
        unreachable = set(states) - seen
        if unreachable:
            problems.append(f"unreachable states: {sorted(unreachable)}")
    assert not problems, "\n".join(problems)


def test_asl_service_integrations_are_allowed(template: dict) -> None:
    """A Task that calls a service needs a policy for it on the state machine."""
    policies = json.dumps(state_machine(template, "TaskStateMachine")["policies"])
    needs = {
        "lambda": "LambdaInvokePolicy",
        "dynamodb": "DynamoDB",
        "events": "EventBridgePutEventsPolicy",
        "sqs": "SQS",
        "sns": "SNS",
    }
    problems = []
    for scope in _scopes(_definition(template)):
        for name, state in scope["States"].items():
            match = re.match(r"arn:aws:states:::(?:aws-sdk:)?([a-z0-9]+)", state.get("Resource", ""))
            if state["Type"] != "Task" or not match:
                continue
            service = match.group(1)
            if needs.get(service, f"<policy for {service}>") not in policies:
                problems.append(f"{name}: calls {service} but TaskStateMachine has no policy for it")
    assert not problems, "\n".join(problems)


def test_moto_accepts_the_state_machine(template: dict) -> None:
    """moto's ASL parser (the interpreter the workflow tests run) accepts the rendered definition."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = render_definition(_asl_text(), _fake_substitutions(template))
    program, _ = AmazonStateLanguageParser.parse(text)
    assert set(program.states.states) == set(json.loads(text)["States"])


def test_the_upload_function_reads_uploads_only_and_can_tell_a_deleted_one_apart() -> None:
    """HeadObject answers 404 (not 403) for a missing key only to a caller with s3:ListBucket: without
    it a deleted upload would end in the dead-letter queue instead of a Rejected.ObjectMissing task."""
    _require_sam()
    cfn = _transformed()
    role = cfn["Resources"]["UploadFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    s3 = {(action.lower(), json.dumps(stmt["Resource"])) for stmt in _role_statements(cfn, role)
          if stmt.get("Effect") == "Allow" for action in _as_list(stmt["Action"]) if action.startswith("s3:")}
    # GetObjectVersion: the trigger reads the version its event names (a task is pinned to what was checked)
    assert {action for action, _ in s3} == {"s3:getobject", "s3:getobjectversion", "s3:listbucket"}
    for action, resource in s3:
        arn = json.loads(resource)["Fn::Sub"][0]
        assert arn == ("arn:${AWS::Partition}:s3:::${Bucket}/uploads/*" if action != "s3:listbucket"
                       else "arn:${AWS::Partition}:s3:::${Bucket}"), (action, arn)
