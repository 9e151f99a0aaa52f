"""The one small interface every provider adapter implements."""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from aigc.core.vocab import JobStatus

# Provider task statuses (DashScope's vocabulary; sync providers use the same words).
IN_PROGRESS_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUSPENDED})
FINAL_FAILURE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.UNKNOWN})


class ProviderRequest(BaseModel):
    """A job in the provider's own terms, already validated and priced by us."""

    model: str
    task_type: str
    prompt: str | None = None
    negative_prompt: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    parameters: dict = Field(default_factory=dict)


class ProviderJob(BaseModel):
    """What the provider says about a job."""

    provider_task_id: str | None = None
    status: str
    output_urls: list[str] = Field(default_factory=list)
    b64_outputs: list[str] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None


class Provider(Protocol):
    is_async: bool

    def submit(self, req: ProviderRequest) -> ProviderJob: ...

    def poll(self, provider_task_id: str) -> ProviderJob: ...

    def cancel(self, provider_task_id: str) -> bool: ...
