"""Each function validates its environment when it starts, and says what is wrong."""
from __future__ import annotations

import pytest

from aigc.core.config import ENVIRONMENTS, ApiEnv, EnvironmentError_, UploadEnv
from local.openapi import PLACEHOLDER_ENVIRONMENT


def test_a_complete_environment_loads_with_typed_values() -> None:
    env = ApiEnv.load({**PLACEHOLDER_ENVIRONMENT, "RESULT_HOST_ALLOWLIST": "*.aliyuncs.com, *.OpenAI.com",
                       "PROVIDER_CAPACITY": '{"*": {"concurrency": 3}}'})
    assert env.result_hosts == ["*.aliyuncs.com", "*.openai.com"]
    assert env.provider_capacity == {"*": {"concurrency": 3}}
    assert env.max_grant_points == 100000 and env.allow_private_hosts is False


def test_missing_empty_and_malformed_variables_stop_the_cold_start_naming_each() -> None:
    broken = {**PLACEHOLDER_ENVIRONMENT, "TASKS_TABLE": "", "PROVIDER_CAPACITY": "{not json",
              "UPLOAD_TRIGGER": "enabled-ish", "MAX_GRANT_POINTS": "0"}
    del broken["STATE_MACHINE_ARN"]
    with pytest.raises(EnvironmentError_) as raised:
        ApiEnv.load(broken)
    message = str(raised.value)
    for name in ("TASKS_TABLE", "PROVIDER_CAPACITY", "UPLOAD_TRIGGER", "MAX_GRANT_POINTS", "STATE_MACHINE_ARN"):
        assert name in message


def test_upload_defaults_are_a_json_object() -> None:
    env = UploadEnv.load({**PLACEHOLDER_ENVIRONMENT, "UPLOAD_MODEL": "image-out-painting",
                          "UPLOAD_DEFAULT_PARAMETERS": '{"xScale": 2}'})
    assert env.upload_default_parameters == {"xScale": 2}
    with pytest.raises(EnvironmentError_, match="UPLOAD_DEFAULT_PARAMETERS"):
        UploadEnv.load({**PLACEHOLDER_ENVIRONMENT, "UPLOAD_MODEL": "m", "UPLOAD_DEFAULT_PARAMETERS": "[1, 2]"})


def test_every_function_has_a_model_and_optional_variables_are_not_required() -> None:
    assert set(ENVIRONMENTS) == {"ApiFunction", "ProviderSubmitFunction", "ProviderPollFunction",
                                 "StoreResultsFunction", "RefundFunction", "WebhookFunction", "UploadFunction",
                                 "ReconcileFunction", "AuthorizerFunction", "StatsFunction", "SocketFunction",
                                 "PushFunction"}
    for model in ENVIRONMENTS.values():
        assert "ALLOW_PRIVATE_HOSTS" not in model.variable_names()
        assert {"POINTS_TABLE", "RESULTS_BUCKET", "POWERTOOLS_SERVICE_NAME"} <= model.variable_names()


def test_the_authorizer_needs_its_issuer_and_keys_table_and_may_be_told_where_the_jwks_is() -> None:
    from aigc.core.config import AuthorizerEnv

    base = {**PLACEHOLDER_ENVIRONMENT, "JWT_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/pool",
            "JWT_AUDIENCE": "client-a,client-b"}
    env = AuthorizerEnv.load(base)
    assert env.api_keys_table == PLACEHOLDER_ENVIRONMENT["API_KEYS_TABLE"] and env.jwks_url == ""
    assert "JWKS_URL" not in AuthorizerEnv.variable_names()
    assert {"API_KEYS_TABLE", "JWT_ISSUER", "JWT_AUDIENCE"} <= AuthorizerEnv.variable_names()
    with pytest.raises(EnvironmentError_, match="JWT_ISSUER"):
        AuthorizerEnv.load({**base, "JWT_ISSUER": "not-a-url"})


def test_the_push_functions_need_their_tables_the_issuer_and_the_management_endpoint() -> None:
    from aigc.core.config import PushEnv, SocketEnv

    socket = {**PLACEHOLDER_ENVIRONMENT, "CONNECTIONS_TABLE": "c", "JWT_ISSUER": "https://issuer.example/pool",
              "JWT_AUDIENCE": "client"}
    assert SocketEnv.load(socket).jwks_url == "" and "JWKS_URL" not in SocketEnv.variable_names()  # local only
    assert {"CONNECTIONS_TABLE", "API_KEYS_TABLE", "JWT_ISSUER", "JWT_AUDIENCE"} <= SocketEnv.variable_names()
    push = {**PLACEHOLDER_ENVIRONMENT, "CONNECTIONS_TABLE": "c",
            "WEBSOCKET_MANAGEMENT_URL": "https://abc.execute-api.us-east-1.amazonaws.com/live"}
    assert PushEnv.load(push).websocket_management_url.endswith("/live")
    with pytest.raises(EnvironmentError_, match="WEBSOCKET_MANAGEMENT_URL"):
        PushEnv.load({**push, "WEBSOCKET_MANAGEMENT_URL": "abc.execute-api"})
    with pytest.raises(EnvironmentError_, match="CONNECTIONS_TABLE"):
        PushEnv.load({**push, "CONNECTIONS_TABLE": ""})
