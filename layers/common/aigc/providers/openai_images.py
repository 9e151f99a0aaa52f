"""OpenAI-compatible Images API adapter (synchronous), e.g. the Sora-image / gpt-image models.

* text_to_image:  POST {base}/v1/images/generations  JSON {model, prompt, n, size, response_format?}
* image_to_image: POST {base}/v1/images/edits        multipart: image[] parts + prompt, model, n, size
* answer: {"created", "data": [{"url"} | {"b64_json"}]}
* errors: {"error": {"message", "type", "code"}} with the HTTP status.

The call blocks until the images exist, so ``submit`` returns a final ProviderJob; the workflow
never polls a sync provider.
"""
from __future__ import annotations

import logging
import mimetypes
from typing import Any
from urllib.parse import urlparse

import requests

from aigc.core.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from aigc.core.observability import count
from aigc.core.vocab import JobStatus
from aigc.providers.base import ProviderJob, ProviderRequest
from aigc.providers.http_session import build_session, connect_retry
from aigc.store import outbound

log = logging.getLogger(__name__)

GENERATIONS_PATH = "/v1/images/generations"
EDITS_PATH = "/v1/images/edits"
DEFAULT_SIZE = "1024x1024"
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
MAX_REFERENCE_IMAGES = 16
DOWNLOAD_TIMEOUT = 20.0

_PASSTHROUGH_SKIP = {"model", "prompt", "image", "image[]"}


class OpenAIImagesProvider:
    """Adapter for an OpenAI-compatible Images API (sync)."""

    is_async = False
    name = "openai_images"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 120,
        session: requests.Session | None = None,
        max_reference_bytes: int = MAX_REFERENCE_BYTES,
        allow_private_hosts: bool = False,
    ):
        if not base_url:
            raise ValueError("base_url is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key or ""
        self._timeout = timeout
        self._session = session or build_session(redirects=3)
        self._max_reference_bytes = max_reference_bytes
        # User-given reference image URLs: only public addresses, checked at connect time (every redirect hop).
        self._downloads = outbound.session(allow_private=allow_private_hosts, max_retries=connect_retry())
        self._downloads.max_redirects = 3

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIImagesProvider(base_url={self._base!r})"

    # --- Provider interface ------------------------------------------------------------------

    def submit(self, req: ProviderRequest) -> ProviderJob:
        if not req.prompt:
            raise ProviderRejected(f"{req.task_type} needs a prompt", code="invalid_request_error")
        if req.task_type == "text_to_image":
            body = self.build_generation_body(req)
            data = self._post(GENERATIONS_PATH, json=body)
        elif req.task_type == "image_to_image":
            if not req.image_urls:
                raise ProviderRejected("image_to_image needs at least one image url", code="invalid_request_error")
            if len(req.image_urls) > MAX_REFERENCE_IMAGES:
                raise ProviderRejected(
                    f"at most {MAX_REFERENCE_IMAGES} reference images", code="invalid_request_error"
                )
            files = [("image[]", self._download(url, i)) for i, url in enumerate(req.image_urls)]
            data = self._post(EDITS_PATH, data=self.build_edit_fields(req), files=files)
        else:
            raise ProviderRejected(
                f"unsupported task_type for the OpenAI Images API: {req.task_type!r}", code="invalid_request_error"
            )
        return self.parse_result(data)

    def poll(self, provider_task_id: str) -> ProviderJob:
        raise NotImplementedError(
            "OpenAIImagesProvider is synchronous: submit() returns the final result, there is nothing to poll"
        )

    def cancel(self, provider_task_id: str) -> bool:
        """A sync request cannot be canceled once answered: always False."""
        return False

    # --- request building / parsing ----------------------------------------------------------

    @staticmethod
    def _common_params(req: ProviderRequest) -> dict[str, Any]:
        params = {k: v for k, v in (req.parameters or {}).items() if k not in _PASSTHROUGH_SKIP and v is not None}
        params.setdefault("n", 1)
        params.setdefault("size", DEFAULT_SIZE)
        return params

    def build_generation_body(self, req: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt}
        body.update(self._common_params(req))
        return body

    def build_edit_fields(self, req: ProviderRequest) -> dict[str, str]:
        fields: dict[str, Any] = {"model": req.model, "prompt": req.prompt}
        fields.update(self._common_params(req))
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in fields.items()}

    @staticmethod
    def parse_result(data: Any) -> ProviderJob:
        items = data.get("data") if isinstance(data, dict) else None
        urls: list[str] = []
        b64: list[str] = []
        for item in items or []:
            if not isinstance(item, dict):
                continue
            if item.get("url"):
                urls.append(item["url"])
            elif item.get("b64_json"):
                b64.append(item["b64_json"])
        if not urls and not b64:
            raise ProviderUnavailable("OpenAI Images API answered without any image")
        return ProviderJob(provider_task_id=None, status=JobStatus.SUCCEEDED, output_urls=urls, b64_outputs=b64)

    # --- HTTP ---------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _download(self, url: str, index: int) -> tuple[str, bytes, str]:
        """Fetch one reference image (http/https only, size-capped) as a multipart file tuple."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ProviderRejected("reference image URL must be http(s)", code="InvalidParameter.FileDownload")
        try:
            resp = self._get_public(url, index)
            with resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise ProviderUnavailable(
                        f"reference image {index} download failed: HTTP {resp.status_code}",
                        http_status=resp.status_code,
                    )
                if resp.status_code >= 400:
                    raise ProviderRejected(
                        f"reference image {index} download failed: HTTP {resp.status_code}",
                        code="InvalidParameter.FileDownload",
                        http_status=resp.status_code,
                    )
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self._max_reference_bytes:
                    raise ProviderRejected(
                        f"reference image {index} is larger than {self._max_reference_bytes} bytes",
                        code="InvalidParameter.FileDownload",
                    )
                chunks: list[bytes] = []
                total = 0
                for chunk in resp.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > self._max_reference_bytes:
                        raise ProviderRejected(
                            f"reference image {index} is larger than {self._max_reference_bytes} bytes",
                            code="InvalidParameter.FileDownload",
                        )
                    chunks.append(chunk)
                content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        except outbound.BlockedAddress:
            raise ProviderRejected(f"reference image {index} is not on a public host",
                                   code="InvalidParameter.FileDownload") from None
        except requests.TooManyRedirects:
            raise ProviderRejected(f"reference image {index}: too many redirects",
                                   code="InvalidParameter.FileDownload") from None
        except requests.RequestException as e:
            raise ProviderUnavailable(f"reference image {index} download failed: {type(e).__name__}") from e
        if not content_type.startswith("image/"):
            content_type = mimetypes.guess_type(parsed.path)[0] or "image/png"
        ext = mimetypes.guess_extension(content_type) or ".png"
        return (f"image_{index}{ext}", b"".join(chunks), content_type)

    def _get_public(self, url: str, index: int) -> requests.Response:
        return self._downloads.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT, allow_redirects=True)

    def _post(self, path: str, **kwargs) -> dict:
        url = self._base + path
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            resp = self._session.post(url, headers=headers, timeout=self._timeout, **kwargs)
        except requests.Timeout as e:
            raise ProviderUnavailable(f"OpenAI Images API timed out: POST {path}") from e
        except requests.RequestException as e:
            raise ProviderUnavailable(self._scrub(f"OpenAI Images API unreachable: POST {path}: {type(e).__name__}")) from e
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            self._raise_for_status(resp.status_code, data, path)
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"OpenAI Images API answered {resp.status_code} with a non-JSON body")
        return data

    def _raise_for_status(self, status: int, data: Any, path: str) -> None:
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            err = {}
        code = err.get("code") or err.get("type")
        message = err.get("message")
        text = f"OpenAI Images API POST {path} -> HTTP {status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        text = self._scrub(text)
        log.warning("openai images error: %s", text)
        if status == 429 and code == "insufficient_quota":
            # Our account is out of credit: waiting for a slot will not help. Fail the step (held for a
            # redrive once an operator tops up the account), do not blame the user's input.
            raise ProviderUnavailable(text, code=code, http_status=status)
        if status == 429:
            count("ProviderThrottled")  # the ProviderThrottles alarm
            raise ProviderThrottled(text, code=code or "rate_limit_exceeded", http_status=status)
        if status >= 500 or status == 408:
            raise ProviderUnavailable(text, code=code, http_status=status)
        raise ProviderRejected(text, code=code or f"HTTP{status}", http_status=status)
