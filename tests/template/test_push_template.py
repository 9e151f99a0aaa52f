"""template.yaml's WebSocket push: the API and its routes, the connections table, the two functions'
least privilege (ManageConnections on this stage only) and their stream sources."""
from __future__ import annotations

from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]

from local.cfn import Resolver, functions, load_template
from local.websocket import routes_from_template
from tests.template.test_template import _actions_on, _as_list, _references, _require_sam, _role_statements, _transformed




def test_the_websocket_routes_reach_the_socket_function(template: dict) -> None:
    routes = routes_from_template(template)  # what the local stack serves, read from the template
    assert routes.functions == {"$connect": "SocketFunction", "$disconnect": "SocketFunction",
                                "$default": "SocketFunction"}
    assert routes.responding == {"$default"}  # the pong goes back through the route response
    api = template["Resources"]["WebSocketApi"]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    integration = template["Resources"]["SocketIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert {"Ref": "SocketFunction.Alias"} in integration["IntegrationUri"]["Fn::Join"][1]  # the live alias
    permission = template["Resources"]["SocketFunctionPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "SocketFunction.Alias"}
    assert "${WebSocketApi}/*" in permission["SourceArn"]["Fn::Sub"]


def test_the_connections_table_has_no_hot_key_and_one_index_by_user(template: dict) -> None:
    from aigc.store.db import ConnectionItem

    props = template["Resources"]["ConnectionsTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "connection_id", "KeyType": "HASH"}]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == ConnectionItem.by_user.Meta.index_name == "UserConnections"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["user_id", "connection_id"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert ConnectionItem._hash_keyname == "connection_id"


def test_push_reads_both_streams_with_images(template: dict) -> None:
    resources = template["Resources"]
    for table in ("TasksTable", "PointsTable"):
        assert resources[table]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    events = functions(template)["PushFunction"]["events"]
    streams = {e["Properties"]["Stream"]["Fn::GetAtt"][0] if isinstance(e["Properties"]["Stream"]["Fn::GetAtt"], list)
               else e["Properties"]["Stream"]["Fn::GetAtt"].split(".")[0]: e["Properties"] for e in events.values()}
    assert set(streams) == {"TasksTable", "PointsTable"}
    for props in streams.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["MaximumBatchingWindowInSeconds"] == 0  # within a second: no batching window
    assert '"BALANCE"' in streams["PointsTable"]["FilterCriteria"]["Filters"][0]["Pattern"]


def test_only_the_push_manages_connections_and_only_on_its_stage() -> None:
    _require_sam()
    cfn = _transformed()
    grants = {}
    for logical in functions(load_template(ROOT / "template.yaml")):
        role = cfn["Resources"][logical]["Properties"]["Role"]["Fn::GetAtt"][0]
        for stmt in _role_statements(cfn, role):
            if any(a.lower().startswith("execute-api:") for a in _as_list(stmt["Action"])):
                grants.setdefault(logical, []).append(stmt)
    assert set(grants) == {"PushFunction"}
    (stmt,) = grants["PushFunction"]
    assert _as_list(stmt["Action"]) == ["execute-api:ManageConnections"]
    physical = {"WebSocketApi": {"Ref": "abc123"}, "WebSocketStage": {"Ref": "live"}}
    resources = [Resolver(cfn, {}, physical).resolve(r) for r in _as_list(stmt["Resource"])]
    assert resources == [f"arn:aws:execute-api:us-east-1:123456789012:abc123/live/{method}/@connections/*"
                         for method in ("POST", "DELETE")]  # post, and close a revoked key's socket


def test_the_connections_table_is_least_privilege() -> None:
    _require_sam()
    cfn = _transformed()
    assert _actions_on(cfn, "SocketFunction", "ConnectionsTable") == {"dynamodb:putitem", "dynamodb:deleteitem"}
    assert _actions_on(cfn, "PushFunction", "ConnectionsTable") == {"dynamodb:query", "dynamodb:deleteitem"}
    role = cfn["Resources"]["PushFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    (query,) = [s for s in _role_statements(cfn, role) if s["Action"] == "dynamodb:Query"
                and "ConnectionsTable" in _references(s["Resource"], set())]
    assert query["Resource"]["Fn::Sub"].endswith("/index/UserConnections")  # the index only, never a scan
    for logical in set(functions(load_template(ROOT / "template.yaml"))) - {"SocketFunction", "PushFunction"}:
        assert not _actions_on(cfn, logical, "ConnectionsTable"), logical
    assert "ConnectionsTable" not in _references(cfn["Resources"]["WebhookFunction"]["Properties"], set())


def test_the_stack_outputs_the_websocket_url(template: dict) -> None:
    value = template["Outputs"]["WebSocketUrl"]["Value"]["Fn::Sub"]
    assert value.startswith("wss://${WebSocketApi}.execute-api.") and value.endswith("/${WebSocketStage}")
    env = functions(template)["PushFunction"]["environment"]["WEBSOCKET_MANAGEMENT_URL"]["Fn::Sub"]
    assert env == value.replace("wss://", "https://")
