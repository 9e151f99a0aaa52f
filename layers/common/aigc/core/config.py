"""Configuration: one environment model per function, validated at cold start.

Each handler builds its model when it is imported (`ApiEnv.load()`): a missing, empty or malformed
variable stops the cold start with one error naming every bad variable, instead of a KeyError or a
wrong default on some later request. Handlers pass the values they need into the logic.
tests/template checks that each function's environment in template.yaml is exactly its model's
variables (`ENVIRONMENTS`), so the two cannot drift.

`get_settings()` is the library's lenient view of the same variables (every one optional), for the
few infrastructure settings read where they are used (table names, the bucket, the state machine)
and for tools and tests that run outside a function.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text else {}
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
Name = Annotated[str, Field(min_length=1)]


class EnvironmentError_(RuntimeError):
    """The function's environment is incomplete or malformed: the cold start stops here."""


class FunctionEnv(BaseModel):
    """The variables every function gets (template.yaml Globals)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    # Variables a function may read that the template does not set (local stack, tuning): optional.
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"ALLOW_PRIVATE_HOSTS", "PRESIGN_EXPIRY_SECONDS", "MAX_RESULT_BYTES",
                                                     "MAX_VIDEO_BYTES"})

    points_table: Name = Field(alias="POINTS_TABLE")
    tasks_table: Name = Field(alias="TASKS_TABLE")
    scheduler_table: Name = Field(alias="SCHEDULER_TABLE")
    idempotency_table: Name = Field(alias="IDEMPOTENCY_TABLE")
    results_bucket: Name = Field(alias="RESULTS_BUCKET")
    provider_secret_arn: Name = Field(alias="PROVIDER_SECRET_ARN")
    dashscope_base_url: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="DASHSCOPE_BASE_URL")
    openai_base_url: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="OPENAI_BASE_URL")
    result_hosts: CommaList = Field(alias="RESULT_HOST_ALLOWLIST")
    submit_rate_limit_per_minute: int = Field(ge=0, alias="SUBMIT_RATE_LIMIT_PER_MINUTE")
    task_deadline_seconds: int = Field(ge=1, alias="TASK_DEADLINE_SECONDS")
    video_task_deadline_seconds: int = Field(ge=1, alias="VIDEO_TASK_DEADLINE_SECONDS")
    hold_grace_seconds: int = Field(ge=1, alias="HOLD_GRACE_SECONDS")
    queue_timeout_seconds: int = Field(ge=1, alias="QUEUE_TIMEOUT_SECONDS")
    provider_capacity: JsonObject = Field(alias="PROVIDER_CAPACITY")
    member_group: Name = Field(alias="MEMBER_GROUP")
    admin_group: Name = Field(alias="ADMIN_GROUP")
    powertools_service_name: Name = Field(alias="POWERTOOLS_SERVICE_NAME")
    powertools_metrics_namespace: Name = Field(alias="POWERTOOLS_METRICS_NAMESPACE")
    powertools_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        alias="POWERTOOLS_LOG_LEVEL")
    allow_private_hosts: bool = Field(False, alias="ALLOW_PRIVATE_HOSTS")
    presign_expiry_seconds: int = Field(3600, ge=1, le=604800, alias="PRESIGN_EXPIRY_SECONDS")
    max_result_bytes: int = Field(50 * 1024 * 1024, ge=1, alias="MAX_RESULT_BYTES")
    max_video_bytes: int = Field(256 * 1024 * 1024, ge=1, alias="MAX_VIDEO_BYTES")

    @classmethod
    def load(cls, environ: dict[str, str] | None = None):
        """Validate the process environment; raises EnvironmentError_ naming every bad variable."""
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors())
            raise EnvironmentError_(f"{cls.__name__}: the function's environment is not valid: {problems}") from None

    @classmethod
    def variable_names(cls) -> set[str]:
        """The variables template.yaml must set for a function of this model."""
        return {field.alias for field in cls.model_fields.values() if field.alias} - cls.OPTIONAL


class ApiEnv(FunctionEnv):
    state_machine_arn: Name = Field(alias="STATE_MACHINE_ARN")
    webhook_secrets_table: Name = Field(alias="WEBHOOK_SECRETS_TABLE")
    upload_trigger: Literal["Enabled", "Disabled"] = Field(alias="UPLOAD_TRIGGER")
    upload_max_bytes: int = Field(ge=1, alias="UPLOAD_MAX_BYTES")
    max_grant_points: int = Field(ge=1, alias="MAX_GRANT_POINTS")
    stats_table: Name = Field(alias="STATS_TABLE")  # GET /admin/stats reads the business numbers
    api_keys_table: Name = Field(alias="API_KEYS_TABLE")  # POST/GET/DELETE /user/api-keys
    # Stripe Checkout (aigc.flows.checkout; its keys are in the provider keys' secret)
    stripe_api_base: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="STRIPE_API_BASE")
    checkout_success_url: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="CHECKOUT_SUCCESS_URL")
    checkout_cancel_url: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="CHECKOUT_CANCEL_URL")


class WorkflowEnv(FunctionEnv):
    """The workflow's steps: submit, poll, store, refund."""


class WebhookEnv(FunctionEnv):
    webhook_secrets_table: Name = Field(alias="WEBHOOK_SECRETS_TABLE")
    webhook_queue_url: Name = Field(alias="WEBHOOK_QUEUE_URL")
    webhook_dead_letter_queue_url: Name = Field(alias="WEBHOOK_DLQ_URL")


class UploadEnv(FunctionEnv):
    state_machine_arn: Name = Field(alias="STATE_MACHINE_ARN")
    upload_trigger: Literal["Enabled", "Disabled"] = Field(alias="UPLOAD_TRIGGER")
    upload_model: Name = Field(alias="UPLOAD_MODEL")
    upload_default_parameters: JsonObject = Field(alias="UPLOAD_DEFAULT_PARAMETERS")
    upload_max_bytes: int = Field(ge=1, alias="UPLOAD_MAX_BYTES")


class ReconcileEnv(FunctionEnv):
    state_machine_arn: Name = Field(alias="STATE_MACHINE_ARN")


class SocketEnv(FunctionEnv):
    """The WebSocket API's $connect/$disconnect/$default routes (aigc.flows.push)."""

    # JWKS_URL: where the issuer's keys are, when not at <issuer>/.well-known/jwks.json (the local stack).
    OPTIONAL: ClassVar[frozenset[str]] = FunctionEnv.OPTIONAL | {"JWKS_URL"}

    connections_table: Name = Field(alias="CONNECTIONS_TABLE")
    api_keys_table: Name = Field(alias="API_KEYS_TABLE")  # a socket may open with an API key
    jwt_issuer: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="JWT_ISSUER")
    jwt_audience: Name = Field(alias="JWT_AUDIENCE")  # one or more app client ids, comma-separated
    jwks_url: str = Field("", alias="JWKS_URL")


class PushEnv(FunctionEnv):
    """The push consumer of the tasks' and points' streams (aigc.flows.push)."""

    connections_table: Name = Field(alias="CONNECTIONS_TABLE")
    api_keys_table: Name = Field(alias="API_KEYS_TABLE")  # revoked keys' sockets are closed
    websocket_management_url: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="WEBSOCKET_MANAGEMENT_URL")


class AuthorizerEnv(FunctionEnv):
    """The HttpApi's Lambda authorizer (a JWT of the users' issuer, or an API key: aigc.domain.auth)."""

    # JWKS_URL: where the issuer's keys are, when not at <issuer>/.well-known/jwks.json (the local stack).
    OPTIONAL: ClassVar[frozenset[str]] = FunctionEnv.OPTIONAL | {"JWKS_URL"}

    api_keys_table: Name = Field(alias="API_KEYS_TABLE")
    jwt_issuer: Annotated[str, Field(pattern=r"^https?://")] = Field(alias="JWT_ISSUER")
    jwt_audience: Name = Field(alias="JWT_AUDIENCE")  # one or more app client ids, comma-separated
    jwks_url: str = Field("", alias="JWKS_URL")


class StatsEnv(FunctionEnv):
    """The business numbers' consumer of the tasks' and the ledger's streams (aigc.flows.stats_feed)."""

    stats_table: Name = Field(alias="STATS_TABLE")


# template.yaml's functions and the model each one validates at cold start.
ENVIRONMENTS: dict[str, type[FunctionEnv]] = {
    "ApiFunction": ApiEnv,
    "ProviderSubmitFunction": WorkflowEnv,
    "ProviderPollFunction": WorkflowEnv,
    "StoreResultsFunction": WorkflowEnv,
    "RefundFunction": WorkflowEnv,
    "WebhookFunction": WebhookEnv,
    "UploadFunction": UploadEnv,
    "ReconcileFunction": ReconcileEnv,
    "StatsFunction": StatsEnv,
    "AuthorizerFunction": AuthorizerEnv,
    "SocketFunction": SocketEnv,
    "PushFunction": PushEnv,
}


class Settings(BaseModel):
    """Every variable any function reads, each optional: the library's lenient view (see above)."""

    model_config = ConfigDict(extra="ignore")

    idempotency_table: str = Field("", alias="IDEMPOTENCY_TABLE")
    results_bucket: str = Field("", alias="RESULTS_BUCKET")
    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    provider_secret_arn: str = Field("", alias="PROVIDER_SECRET_ARN")
    dashscope_base_url: str = Field("https://dashscope.aliyuncs.com", alias="DASHSCOPE_BASE_URL")
    openai_base_url: str = Field("https://api.openai.com", alias="OPENAI_BASE_URL")
    result_hosts: CommaList = Field(["*.aliyuncs.com", "*.openai.com", "*.blob.core.windows.net"],
                                    alias="RESULT_HOST_ALLOWLIST")
    submit_rate_limit_per_minute: int = Field(3, ge=0, alias="SUBMIT_RATE_LIMIT_PER_MINUTE")
    task_deadline_seconds: int = Field(600, ge=1, alias="TASK_DEADLINE_SECONDS")
    video_task_deadline_seconds: int = Field(1800, ge=1, alias="VIDEO_TASK_DEADLINE_SECONDS")
    hold_grace_seconds: int = Field(3600, ge=1, alias="HOLD_GRACE_SECONDS")
    upload_trigger: str = Field("Enabled", alias="UPLOAD_TRIGGER")
    upload_model: str = Field("image-out-painting", alias="UPLOAD_MODEL")
    upload_default_parameters: JsonObject = Field({"xScale": 2, "yScale": 2}, alias="UPLOAD_DEFAULT_PARAMETERS")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, alias="UPLOAD_MAX_BYTES")
    # Only the local stack sets this: there, reference images and webhook receivers live on 127.0.0.1
    # (aigc.store.outbound refuses non-public addresses otherwise).
    allow_private_hosts: bool = Field(False, alias="ALLOW_PRIVATE_HOSTS")
    webhook_queue_url: str = Field("", alias="WEBHOOK_QUEUE_URL")
    webhook_dead_letter_queue_url: str = Field("", alias="WEBHOOK_DLQ_URL")
    admin_group: str = Field("admins", alias="ADMIN_GROUP")
    member_group: str = Field("members", alias="MEMBER_GROUP")
    queue_timeout_seconds: int = Field(1800, ge=1, alias="QUEUE_TIMEOUT_SECONDS")
    provider_capacity: JsonObject = Field({}, alias="PROVIDER_CAPACITY")
    presign_expiry_seconds: int = Field(3600, ge=1, le=604800, alias="PRESIGN_EXPIRY_SECONDS")
    max_result_bytes: int = Field(50 * 1024 * 1024, ge=1, alias="MAX_RESULT_BYTES")
    # a video result larger than this is refused before the copy (VideoTooLarge, refunded); the store step
    # spools it to /tmp (512 MB) while it copies
    max_video_bytes: int = Field(256 * 1024 * 1024, ge=1, alias="MAX_VIDEO_BYTES")
    max_grant_points: int = Field(100_000, ge=1, alias="MAX_GRANT_POINTS")
    connections_table: str = Field("", alias="CONNECTIONS_TABLE")
    websocket_management_url: str = Field("", alias="WEBSOCKET_MANAGEMENT_URL")
    jwt_issuer: str = Field("", alias="JWT_ISSUER")
    jwt_audience: str = Field("", alias="JWT_AUDIENCE")
    jwks_url: str = Field("", alias="JWKS_URL")
    stripe_api_base: str = Field("https://api.stripe.com", alias="STRIPE_API_BASE")
    checkout_success_url: str = Field("https://example.com/points/success?session_id={CHECKOUT_SESSION_ID}",
                                      alias="CHECKOUT_SUCCESS_URL")
    checkout_cancel_url: str = Field("https://example.com/points/cancelled", alias="CHECKOUT_CANCEL_URL")

    @property
    def uploads_enabled(self) -> bool:
        return self.upload_trigger.lower() == "enabled"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
