"""Environment configuration, validated once per cold start."""
from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    points_table: str = Field(alias="POINTS_TABLE")
    tasks_table: str = Field(alias="TASKS_TABLE")
    idempotency_table: str = Field("", alias="IDEMPOTENCY_TABLE")
    results_bucket: str = Field(alias="RESULTS_BUCKET")
    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    provider_secret_arn: str = Field("", alias="PROVIDER_SECRET_ARN")
    dashscope_base_url: str = Field("https://dashscope.aliyuncs.com", alias="DASHSCOPE_BASE_URL")
    openai_base_url: str = Field("https://api.openai.com", alias="OPENAI_BASE_URL")
    result_host_allowlist: str = Field(
        "*.aliyuncs.com,*.openai.com,*.blob.core.windows.net", alias="RESULT_HOST_ALLOWLIST"
    )
    submit_rate_limit_per_minute: int = Field(3, ge=0, alias="SUBMIT_RATE_LIMIT_PER_MINUTE")
    task_deadline_seconds: int = Field(600, ge=1, alias="TASK_DEADLINE_SECONDS")
    hold_grace_seconds: int = Field(3600, ge=1, alias="HOLD_GRACE_SECONDS")
    upload_trigger: str = Field("Enabled", alias="UPLOAD_TRIGGER")
    upload_model: str = Field("image-out-painting", alias="UPLOAD_MODEL")
    upload_default_parameters: str = Field('{"xScale": 2, "yScale": 2}', alias="UPLOAD_DEFAULT_PARAMETERS")
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, alias="UPLOAD_MAX_BYTES")
    # Only the local stack sets this: there, reference images and webhook receivers live on 127.0.0.1
    # (aigc.store.outbound refuses non-public addresses otherwise).
    allow_private_hosts: bool = Field(False, alias="ALLOW_PRIVATE_HOSTS")
    webhook_queue_url: str = Field("", alias="WEBHOOK_QUEUE_URL")
    webhook_dead_letter_queue_url: str = Field("", alias="WEBHOOK_DLQ_URL")
    admin_group: str = Field("admins", alias="ADMIN_GROUP")
    # Scheduling against the provider (aigc.domain.capacity)
    member_group: str = Field("members", alias="MEMBER_GROUP")
    queue_timeout_seconds: int = Field(1800, ge=1, alias="QUEUE_TIMEOUT_SECONDS")
    provider_capacity: str = Field("", alias="PROVIDER_CAPACITY")
    presign_expiry_seconds: int = Field(3600, alias="PRESIGN_EXPIRY_SECONDS")
    max_result_bytes: int = Field(50 * 1024 * 1024, alias="MAX_RESULT_BYTES")

    @property
    def uploads_enabled(self) -> bool:
        return self.upload_trigger.lower() == "enabled"

    @property
    def result_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.result_host_allowlist.split(",") if h.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate({k: v for k, v in os.environ.items()})
