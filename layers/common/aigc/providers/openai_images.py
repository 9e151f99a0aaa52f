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
import time
from typing import Any
from urllib.parse import urljoin, urlparse

import requests
from urllib3 import exceptions as urllib3_exceptions

from aigc.core.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from aigc.core.observability import count
from aigc.core.vocab import JobStatus
from aigc.providers.base import InputImage, InputUnavailable, ProviderJob, ProviderRequest
from aigc.providers.http_session import build_session
from aigc.store import outbound

log = logging.getLogger(__name__)

GENERATIONS_PATH = "/v1/images/generations"
EDITS_PATH = "/v1/images/edits"
DEFAULT_SIZE = "1024x1024"
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
MAX_REFERENCE_IMAGES = 16
# The user's reference images are fetched before a provider slot is taken, all of them within this
# total (DNS, connect, redirects and every read included): the submit step's budget (its Lambda
# timeout) also covers the provider's answer.
INPUT_DEADLINE_SECONDS = 20.0
CONNECT_TIMEOUT = 5.0
MAX_REDIRECTS = 3
DOWNLOAD_CHUNK = 64 * 1024

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
        # The submit step's budget (Timeout 150 s): the inputs' 20 s deadline + up to 10 s waiting for a
        # submit turn + this, with room to answer before Lambda stops the function.
        timeout: float = 110,
        session: requests.Session | None = None,
        max_reference_bytes: int = MAX_REFERENCE_BYTES,
        allow_private_hosts: bool = False,
        input_deadline: float | None = None,
    ):
        if not base_url:
            raise ValueError("base_url is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key or ""
        self._timeout = timeout
        self._session = session or build_session(redirects=3)
        self._max_reference_bytes = max_reference_bytes
        self._input_deadline = INPUT_DEADLINE_SECONDS if input_deadline is None else input_deadline
        # User-given reference image URLs: only public addresses, checked at connect time (every redirect
        # hop). No retries: a second try would only stretch the deadline; a failure is the user's.
        self._downloads = outbound.session(allow_private=allow_private_hosts)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIImagesProvider(base_url={self._base!r})"

    # --- Provider interface ------------------------------------------------------------------

    def prepare(self, req: ProviderRequest) -> ProviderRequest:
        """Image to image: fetch the user's reference images (we upload them to the provider).

        Called by the workflow before a provider slot is taken; raises InputUnavailable."""
        if req.task_type != "image_to_image" or req.images:
            return req
        if not req.image_urls:
            raise ProviderRejected("image_to_image needs at least one image url", code="invalid_request_error")
        if len(req.image_urls) > MAX_REFERENCE_IMAGES:
            raise ProviderRejected(f"at most {MAX_REFERENCE_IMAGES} reference images", code="invalid_request_error")
        return req.model_copy(update={"images": self._download_all(req.image_urls)})

    def submit(self, req: ProviderRequest) -> ProviderJob:
        if not req.prompt:
            raise ProviderRejected(f"{req.task_type} needs a prompt", code="invalid_request_error")
        if req.task_type == "text_to_image":
            body = self.build_generation_body(req)
            data = self._post(GENERATIONS_PATH, json=body)
        elif req.task_type == "image_to_image":
            req = self.prepare(req)
            files = [("image[]", (image.name, image.data, image.content_type)) for image in req.images]
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

    def _download_all(self, urls: list[str]) -> list[InputImage]:
        """Every reference image within one total deadline (INPUT_DEADLINE_SECONDS, for all of them)."""
        deadline = time.monotonic() + self._input_deadline
        return [self._download(url, index, deadline) for index, url in enumerate(urls)]

    def _download(self, url: str, index: int, deadline: float) -> InputImage:
        """Fetch one reference image (public http(s) only, size-capped, before `deadline`).

        Whatever goes wrong is the user's input failing (InputUnavailable): a host that does not
        resolve, refuses, times out, answers 5xx or 429, drips its body past the deadline, redirects
        too often or to a private address. Never ProviderUnavailable: retrying our side would not help.
        """
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InputUnavailable(f"reference image {index}: not an http(s) URL")
        try:
            resp = self._get_public(url, index, deadline)
            with resp:
                if resp.status_code >= 400:
                    raise InputUnavailable(f"reference image {index} download failed: HTTP {resp.status_code}",
                                           http_status=resp.status_code)
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self._max_reference_bytes:
                    raise InputUnavailable(f"reference image {index} is larger than {self._max_reference_bytes} bytes")
                data = self._read_body(resp, index, deadline)
                content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        except outbound.BlockedAddress:
            raise InputUnavailable(f"reference image {index} is not on a public host") from None
        except (requests.RequestException, OSError, urllib3_exceptions.HTTPError) as e:
            raise InputUnavailable(f"reference image {index} download failed: {type(e).__name__}") from None
        if not content_type.startswith("image/"):
            content_type = mimetypes.guess_type(parsed.path)[0] or "image/png"
        ext = mimetypes.guess_extension(content_type) or ".png"
        return InputImage(name=f"image_{index}{ext}", data=data, content_type=content_type)

    def _read_body(self, resp: requests.Response, index: int, deadline: float) -> bytes:
        """Read as bytes arrive (read1: at most one receive), each wait bounded by what is left of the
        deadline, so a body dripped a byte at a time cannot outlast it."""
        chunks: list[bytes] = []
        total = 0
        while True:
            _bound_socket_wait(resp, _remaining(deadline, index))
            chunk = resp.raw.read1(DOWNLOAD_CHUNK, decode_content=True)
            if not chunk:
                break
            total += len(chunk)
            if total > self._max_reference_bytes:
                raise InputUnavailable(f"reference image {index} is larger than {self._max_reference_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _get_public(self, url: str, index: int, deadline: float) -> requests.Response:
        """GET with redirects followed here, each hop's timeouts cut to what is left of the deadline
        (DNS included: the checked connection resolves within the connect timeout)."""
        for _ in range(MAX_REDIRECTS + 1):
            left = _remaining(deadline, index)
            resp = self._downloads.get(url, stream=True, timeout=(min(CONNECT_TIMEOUT, left), left),
                                       allow_redirects=False)
            if not resp.is_redirect:
                return resp
            url = urljoin(url, resp.headers["Location"])
            resp.close()
        raise InputUnavailable(f"reference image {index}: too many redirects")

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


def _remaining(deadline: float, index: int) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InputUnavailable(f"reference image {index}: not fetched before the deadline")
    return left


def _bound_socket_wait(resp: requests.Response, seconds: float) -> None:
    """The next receive waits at most `seconds` (the read timeout was set when the request started)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)
