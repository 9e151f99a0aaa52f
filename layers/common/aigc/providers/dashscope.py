"""DashScope (Alibaba Cloud Model Studio) adapter: asynchronous image tasks.

Documented HTTP contract used here:

* create (all require ``X-DashScope-Async: enable`` and ``Authorization: Bearer <key>``):
  - outpainting:    POST /api/v1/services/aigc/image2image/out-painting
                    {"model": "image-out-painting", "input": {"image_url"}, "parameters": {...}}
  - text_to_image:  POST /api/v1/services/aigc/text2image/image-synthesis
                    {"model": "wanx...", "input": {"prompt", "negative_prompt"?},
                     "parameters": {"size": "1024*1024", "n", "seed"?}}
  - image_to_image: POST /api/v1/services/aigc/image2image/image-synthesis   (wanx2.1-imageedit)
                    {"model": "wanx2.1-imageedit",
                     "input": {"function", "prompt", "base_image_url"},
                     "parameters": {"n", "seed"?, "strength"?, "watermark"?}}
  answer ``{"output": {"task_id", "task_status"}, "request_id"}``.
  - text_to_video:  POST /api/v1/services/aigc/video-generation/video-synthesis   (wanx2.1-t2v-turbo/-plus)
                    {"model", "input": {"prompt", "negative_prompt"?},
                     "parameters": {"size": "1280*720", "duration": 5, "prompt_extend", "seed"?, "watermark"}}
  - image_to_video: POST /api/v1/services/aigc/video-generation/video-synthesis   (wanx2.1-i2v-turbo/-plus)
                    {"model", "input": {"img_url", "prompt"?, "negative_prompt"?},
                     "parameters": {"resolution": "720P", "duration": 3..5, "prompt_extend", "seed"?, "watermark"}}
    Video jobs take minutes; the result is one MP4 (H.264, 30 fps) at ``output.video_url`` (valid 24 h),
    ``usage.video_duration``/``video_ratio`` say what was made. An image the provider cannot use (not
    downloadable, not JPEG/PNG/BMP/WEBP, a side outside 360..2000 px, over 10 MB, or content moderation)
    is refused: HTTP 400 at create, or the job ends FAILED with the code.
* query:  GET  /api/v1/tasks/{task_id} -> ``output.task_status`` and ``output.output_image_url``
  (out-painting), ``output.results[].url`` (wanx images) or ``output.video_url`` (video);
  ``output.code``/``output.message`` on failure.
* cancel: POST /api/v1/tasks/{task_id}/cancel -> 200 ``{"request_id"}``; only PENDING tasks can be
  canceled, otherwise 400 ``UnsupportedOperation``.
* errors: ``{"code", "message", "request_id"}`` with the HTTP status.
"""
from __future__ import annotations

import logging
from typing import Any

import requests

from aigc.core.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from aigc.core.observability import count
from aigc.core.vocab import JobStatus
from aigc.providers.base import ProviderJob, ProviderRequest
from aigc.providers.http_session import build_session

log = logging.getLogger(__name__)

OUTPAINTING_PATH = "/api/v1/services/aigc/image2image/out-painting"
TEXT_TO_IMAGE_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
IMAGE_TO_IMAGE_PATH = "/api/v1/services/aigc/image2image/image-synthesis"
VIDEO_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
TASK_PATH = "/api/v1/tasks/{task_id}"
CANCEL_PATH = "/api/v1/tasks/{task_id}/cancel"

DEFAULT_T2I_SIZE = "1024*1024"
DEFAULT_IMAGEEDIT_FUNCTION = "stylization_all"
CANCEL_REFUSED_CODE = "UnsupportedOperation"

_KNOWN_STATUSES = set(JobStatus)


class DashScopeProvider:
    """Adapter for DashScope's asynchronous image APIs (out-painting, wanx t2i, wanx image edit)."""

    is_async = True
    name = "dashscope"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15,
        session: requests.Session | None = None,
    ):
        if not base_url:
            raise ValueError("base_url is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key or ""
        self._timeout = timeout
        self._session = session or build_session()

    def __repr__(self) -> str:  # never show the key
        return f"DashScopeProvider(base_url={self._base!r})"

    # --- Provider interface ------------------------------------------------------------------

    @staticmethod
    def prepare(req: ProviderRequest) -> ProviderRequest:
        """Nothing to fetch: DashScope downloads the input URLs itself (a failure there is the job's
        InvalidParameter.FileDownload)."""
        return req

    def submit(self, req: ProviderRequest) -> ProviderJob:
        path, body = self.build_submit(req)
        data = self._request("POST", path, json=body, async_header=True)
        output = data.get("output") if isinstance(data, dict) else None
        if not isinstance(output, dict) or not output.get("task_id"):
            code = data.get("code") if isinstance(data, dict) else None
            if code:
                raise ProviderRejected(
                    self._scrub(f"DashScope rejected the task: {code}: {data.get('message') or ''}".strip()),
                    code=code,
                )
            raise ProviderUnavailable("DashScope create answered without a task_id")
        status = output.get("task_status") or JobStatus.PENDING
        return ProviderJob(provider_task_id=output["task_id"], status=status)

    def poll(self, provider_task_id: str) -> ProviderJob:
        data = self._request("GET", TASK_PATH.format(task_id=provider_task_id))
        return self.parse_task(provider_task_id, data)

    def cancel(self, provider_task_id: str) -> bool:
        try:
            self._request("POST", CANCEL_PATH.format(task_id=provider_task_id))
        except ProviderRejected as e:
            if e.code == CANCEL_REFUSED_CODE:
                return False
            raise
        return True

    # --- request building / parsing (public for tests and the lead's factory) ----------------

    def build_submit(self, req: ProviderRequest) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of the create call for `req`, routed by task_type."""
        task_type = req.task_type
        params = dict(req.parameters or {})
        if task_type == "outpainting":
            image_url = self._first_image(req)
            return OUTPAINTING_PATH, {
                "model": req.model,
                "input": {"image_url": image_url},
                "parameters": params,
            }
        if task_type == "text_to_image":
            if not req.prompt:
                raise ProviderRejected("text_to_image needs a prompt", code="InvalidParameter")
            inp: dict[str, Any] = {"prompt": req.prompt}
            if req.negative_prompt:
                inp["negative_prompt"] = req.negative_prompt
            params.setdefault("size", DEFAULT_T2I_SIZE)
            params.setdefault("n", 1)
            return TEXT_TO_IMAGE_PATH, {"model": req.model, "input": inp, "parameters": params}
        if task_type == "image_to_image":
            if not req.prompt:
                raise ProviderRejected("image_to_image needs a prompt", code="InvalidParameter")
            image_url = self._first_image(req)
            function = params.pop("function", None) or DEFAULT_IMAGEEDIT_FUNCTION
            params.setdefault("n", 1)
            return IMAGE_TO_IMAGE_PATH, {
                "model": req.model,
                "input": {"function": function, "prompt": req.prompt, "base_image_url": image_url},
                "parameters": params,
            }
        if task_type in ("text_to_video", "image_to_video"):
            return VIDEO_PATH, {"model": req.model, "input": self._video_input(req), "parameters": params}
        raise ProviderRejected(f"unsupported task_type for DashScope: {task_type!r}", code="InvalidParameter")

    def _video_input(self, req: ProviderRequest) -> dict[str, Any]:
        """text_to_video: the prompt (required); image_to_video: the first frame's URL, the prompt optional."""
        inp: dict[str, Any] = {}
        if req.task_type == "image_to_video":
            inp["img_url"] = self._first_image(req)
        elif not req.prompt:
            raise ProviderRejected("text_to_video needs a prompt", code="InvalidParameter")
        if req.prompt:
            inp["prompt"] = req.prompt
        if req.negative_prompt:
            inp["negative_prompt"] = req.negative_prompt
        return inp

    @staticmethod
    def parse_task(provider_task_id: str, data: Any) -> ProviderJob:
        """Map a documented GET /api/v1/tasks/{id} answer to a ProviderJob."""
        output = data.get("output") if isinstance(data, dict) else None
        if not isinstance(output, dict):
            raise ProviderUnavailable("DashScope task query answered without output")
        status = str(output.get("task_status") or JobStatus.UNKNOWN).upper()
        if status not in _KNOWN_STATUSES:
            status = JobStatus.UNKNOWN
        urls: list[str] = []
        if output.get("output_image_url"):
            urls.append(output["output_image_url"])
        if output.get("video_url"):
            urls.append(output["video_url"])
        result_errors: list[dict] = []
        for item in output.get("results") or []:
            if isinstance(item, dict):
                if item.get("url"):
                    urls.append(item["url"])
                elif item.get("code"):
                    result_errors.append(item)
        code = output.get("code")
        message = output.get("message")
        if status == JobStatus.SUCCEEDED and not urls:
            # Documented "all sub-tasks failed" shape: SUCCEEDED/FAILED with results[] holding codes.
            status = JobStatus.FAILED
            if result_errors:
                code = code or result_errors[0].get("code")
                message = message or result_errors[0].get("message")
            code = code or "InternalError"
            message = message or "the task finished without any output"
        return ProviderJob(
            provider_task_id=output.get("task_id") or provider_task_id,
            status=status,
            output_urls=urls,
            error_code=code if status != JobStatus.SUCCEEDED else None,
            error_message=message if status != JobStatus.SUCCEEDED else None,
        )

    # --- HTTP ---------------------------------------------------------------------------------

    @staticmethod
    def _first_image(req: ProviderRequest) -> str:
        if not req.image_urls:
            raise ProviderRejected(f"{req.task_type} needs an image url", code="InvalidParameter")
        return req.image_urls[0]

    def _headers(self, async_header: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}
        if async_header:
            headers["X-DashScope-Async"] = "enable"
        return headers

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _request(self, method: str, path: str, *, json: dict | None = None, async_header: bool = False) -> dict:
        url = self._base + path
        try:
            resp = self._session.request(
                method, url, json=json, headers=self._headers(async_header), timeout=self._timeout
            )
        except requests.Timeout as e:
            raise ProviderUnavailable(f"DashScope timed out: {method} {path}") from e
        except requests.RequestException as e:
            raise ProviderUnavailable(
                self._scrub(f"DashScope unreachable: {method} {path}: {type(e).__name__}")
            ) from e
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            self._raise_for_status(resp.status_code, data, method, path)
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"DashScope answered {resp.status_code} with a non-JSON body: {method} {path}")
        return data

    def _raise_for_status(self, status: int, data: Any, method: str, path: str) -> None:
        code = data.get("code") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        request_id = data.get("request_id") if isinstance(data, dict) else None
        text = f"DashScope {method} {path} -> HTTP {status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        if request_id:
            text += f" (request_id {request_id})"
        text = self._scrub(text)
        log.warning("dashscope error: %s", text)
        if status == 429:
            count("ProviderThrottled")  # the ProviderThrottles alarm
            raise ProviderThrottled(text, code=code or "Throttling", http_status=status)
        if status >= 500 or status == 408:
            raise ProviderUnavailable(text, code=code, http_status=status)
        raise ProviderRejected(text, code=code or f"HTTP{status}", http_status=status)
