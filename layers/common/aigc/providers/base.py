"""The one small interface every provider adapter implements."""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from aigc.core.errors import ProviderRejected
from aigc.core.vocab import JobStatus

# Provider task statuses (DashScope's vocabulary; sync providers use the same words).
IN_PROGRESS_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUSPENDED})
FINAL_FAILURE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.UNKNOWN})


# The code of a task whose input image we (or the provider) could not fetch: the user's to fix (seed 003).
INPUT_DOWNLOAD_CODE = "InvalidParameter.FileDownload"


class InputUnavailable(ProviderRejected):
    """A user's input could not be fetched (unreachable, slow, refused, too large, not public).

    The user's fault, never our outage: the task fails with INPUT_DOWNLOAD_CODE and is refunded at
    once; nothing retries it (a ProviderRejected).
    """

    def __init__(self, message: str, *, http_status: int | None = None):
        super().__init__(message, code=INPUT_DOWNLOAD_CODE, http_status=http_status)


class InputImage(BaseModel):
    """A reference image already fetched (by `Provider.prepare`), sent by the adapter as a file."""

    name: str
    data: bytes
    content_type: str


class ProviderRequest(BaseModel):
    """A job in the provider's own terms, already validated and priced by us."""

    model: str
    task_type: str
    prompt: str | None = None
    negative_prompt: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    parameters: dict = Field(default_factory=dict)
    images: list[InputImage] = Field(default_factory=list)  # filled by prepare() where the adapter uploads them


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

    def prepare(self, req: ProviderRequest) -> ProviderRequest:
        """Fetch what the adapter must send itself (the user's reference images), before any provider
        slot is taken; raises InputUnavailable. Adapters whose provider fetches URLs itself return `req`."""
        ...

    def submit(self, req: ProviderRequest) -> ProviderJob: ...

    def poll(self, provider_task_id: str) -> ProviderJob: ...

    def cancel(self, provider_task_id: str) -> bool: ...


def prepare(provider: Provider, req: ProviderRequest) -> ProviderRequest:
    """`provider.prepare(req)`, for adapters (and test fakes) that have nothing to prepare too."""
    method = getattr(provider, "prepare", None)
    return method(req) if method is not None else req
