"""`Client`: the AIGC points API over HTTP (httpx), returning typed models and raising typed errors."""
from __future__ import annotations

import json
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlparse

import httpx
from pydantic import BaseModel

from aigc_client.errors import AigcError, NetworkError, RateLimited, ServerError, WaitTimeout, error_for
from aigc_client.models import ApiKey, Balance, LedgerEntry, ModelInfo, Order, Pack, Page, Task, Upload

from aigc_client.models import Quote, Template  # templates and quotes (issue 19)

DEFAULT_BASE_URL = "http://127.0.0.1:8081"
DEFAULT_WS_URL = "ws://127.0.0.1:8082/"  # the push of `make dev`
WAIT_POLL_FAILURES = 5  # consecutive failed polls `wait` rides out
M = TypeVar("M", bound=BaseModel)
TaskRef = Task | str


def _task_no(task: TaskRef) -> str:
    return task.task_no if isinstance(task, Task) else task


def _task_body(model: str | None, template: str | None, template_version: int | None, inputs: dict | None,
               prompt: str | None, image_url, parameters: dict | None) -> dict[str, Any]:
    """A submit's (or a quote's) body: a model with its prompt and parameters, or a template with its inputs."""
    if (model is None) == (template is None):
        raise AigcError("give a model or a template (exactly one)")
    body: dict[str, Any] = {"modelName": model} if model else {"templateCode": template, "inputs": inputs or {}}
    if template_version is not None:
        body["templateVersion"] = template_version
    if prompt is not None:
        body["prompt"] = prompt
    if image_url:
        body["imageUrl"] = image_url
    if parameters:
        body["parameters"] = parameters
    return body


def language_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """An Accept-Language for the user's locale, read as gettext reads it: LANGUAGE (a list, `zh_CN:en`),
    then the first set of LC_ALL, LC_MESSAGES, LANG (`zh_CN.UTF-8` -> `zh-CN`). None for the C/POSIX
    locale or none set (the API then answers in English)."""
    environ = os.environ if environ is None else environ
    locale = next((environ[name] for name in ("LC_ALL", "LC_MESSAGES", "LANG") if environ.get(name)), "")
    if locale.split(".")[0] in ("C", "POSIX"):
        return None  # gettext ignores LANGUAGE in the C locale too
    names = [name for name in (environ.get("LANGUAGE") or "").split(":") if name] or ([locale] if locale else [])
    tags = []
    for name in names:
        tag = name.split(".")[0].split("@")[0].replace("_", "-")
        if tag and tag not in ("C", "POSIX") and tag not in tags and all(part.isalnum() for part in tag.split("-")):
            tags.append(tag)
    if not tags:
        return None
    return ", ".join([tags[0]] + [f"{tag};q={max(0.1, 1 - 0.1 * index):.1f}" for index, tag in enumerate(tags[1:], 1)])


class Client:
    """A client of one API for one user (the bearer token's subject, or the API key's owner).

    ``with Client(url, token) as client: client.wait(client.submit("wanx-v1", prompt="a red kite"))``

    `api_key` (`aigc_...`, default: the AIGC_API_KEY environment variable when no token is given) is sent as
    `X-API-Key`: tasks and points routes accept it within its scopes; managing keys and webhook secrets need
    the `token` (a JWT). With both, each route takes the credential it accepts.

    `language` is sent as Accept-Language: the API's messages (errors, a task's errorMessage) are Chinese for
    `zh-CN`, English otherwise; `language_from_environment()` reads it from LANG and its kin, as the CLI does.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, token: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 2, language: str | None = None,
                 ws_url: str | None = None):
        headers = {"Accept": "application/json", "User-Agent": "aigc-client/0.1"}
        if language:
            headers["Accept-Language"] = language
        if api_key is None and not token:
            api_key = os.environ.get("AIGC_API_KEY") or None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["X-API-Key"] = api_key
        # The push (`watch`): the stack's WebSocketUrl; AIGC_WS_URL, or make dev's when talking to make dev.
        if ws_url is None:
            ws_url = os.environ.get("AIGC_WS_URL") or (
                DEFAULT_WS_URL if base_url.rstrip("/") == DEFAULT_BASE_URL else None)
        self.ws_url = ws_url or None
        self._socket_token = token or api_key or None
        # retries: connection failures only (httpx never repeats a request the server has seen).
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=httpx.HTTPTransport(retries=retries))
        # Result and upload URLs are presigned: they must not carry our bearer token.
        self._plain = httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(retries=retries),
                                   follow_redirects=True)

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- transport
    def _request(self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise NetworkError(f"{method} {path}: {error}") from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and "data" in body:
            return body["data"]
        envelope = body if isinstance(body, dict) else {}
        message = envelope.get("message") or response.text[:300] or response.reason_phrase
        code = envelope.get("code") if isinstance(envelope.get("code"), int) else None
        error = error_for(response.status_code, code, str(message), envelope.get("data"))
        if isinstance(error, RateLimited) and response.headers.get("retry-after", "").isdigit():
            error.retry_after = float(response.headers["retry-after"])
        raise error

    def _pages(self, path: str, model: type[M], params: dict[str, Any], page_size: int) -> Iterator[M]:
        """Every record of a paged list: by `nextToken` when the API returns one, else by page number."""
        query = {k: v for k, v in params.items() if v is not None} | {"size": page_size}
        page, seen = 1, set()
        while True:
            data = Page[model].model_validate(self._request("GET", path, params=query))
            for record in data.records:
                # Page numbers over a newest-first list shift when records are added meanwhile.
                key = getattr(record, {Task: "task_no", Order: "order_no"}.get(model, "id"), None)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                yield record
            if data.next_token:
                query = query | {"nextToken": data.next_token}
                query.pop("page", None)
            elif "nextToken" in query or "next_token" in data.model_fields_set:
                return  # paging by cursor: a page without a token is the last one
            elif not data.records or not data.pages or page >= data.pages:
                return
            else:
                page += 1
                query = query | {"page": page}

    # ---------------------------------------------------------------- tasks
    def submit(self, model: str | None = None, *, template: str | None = None, template_version: int | None = None,
               inputs: dict[str, Any] | None = None, prompt: str | None = None,
               image_url: str | list[str] | None = None, parameters: dict[str, Any] | None = None,
               webhook: str | None = None, webhook_events: list[str] | None = None,
               idempotency_key: str | None = None) -> Task:
        """Start a task (debited now, refunded if it fails). A repeated `idempotency_key` returns the same task.

        Give a `model` (with its prompt and parameters) or a `template` (see `templates`) with its `inputs`;
        `template_version` pins a version (default: the latest). `webhook`: an https URL that receives the
        task, signed (Standard Webhooks, see `webhook_secret`), on the `webhook_events` "start" and/or
        "completed" (the default: both).
        """
        body = _task_body(model, template, template_version, inputs, prompt, image_url, parameters)
        if webhook:
            body["webhook"] = webhook
        if webhook_events:
            body["webhookEventsFilter"] = webhook_events
        return Task.model_validate(self._request("POST", "/user/ai/tasks/submit", json=body,
                                                 idempotency_key=idempotency_key))

    def quote(self, model: str | None = None, *, template: str | None = None, template_version: int | None = None,
              inputs: dict[str, Any] | None = None, prompt: str | None = None,
              image_url: str | list[str] | None = None, parameters: dict[str, Any] | None = None) -> Quote:
        """What `submit` with the same arguments would charge, and why (nothing is submitted or charged)."""
        body = _task_body(model, template, template_version, inputs, prompt, image_url, parameters)
        return Quote.model_validate(self._request("POST", "/user/ai/tasks/quote", json=body))

    def get(self, task: TaskRef) -> Task:
        return Task.model_validate(self._request("GET", f"/user/ai/tasks/{_task_no(task)}"))

    def list(self, *, status: str | None = None, task_type: str | None = None, page_size: int = 100
             ) -> Iterator[Task]:
        """All the user's tasks, newest first, fetched page by page as the iteration goes."""
        return self._pages("/user/ai/tasks/list", Task, {"status": status, "taskType": task_type}, page_size)

    def cancel(self, task: TaskRef) -> Task:
        return Task.model_validate(self._request("POST", f"/user/ai/tasks/{_task_no(task)}/cancel"))

    def retry(self, task: TaskRef, *, idempotency_key: str | None = None) -> Task:
        """A new task with the same inputs as a failed or cancelled one (charged anew)."""
        return Task.model_validate(self._request("POST", f"/user/ai/tasks/{_task_no(task)}/retry",
                                                 idempotency_key=idempotency_key))

    def wait(self, task: TaskRef, *, timeout: float | None = 600, interval: float = 1.0,
             on_progress: Callable[[Task], None] | None = None) -> Task:
        """Poll until the task is completed, failed or cancelled; `on_progress` sees every state read.

        Raises WaitTimeout (with the last state) after `timeout` seconds; the task keeps running.
        Up to WAIT_POLL_FAILURES polls in a row may fail (network, 5xx) before the error is raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        current = task if isinstance(task, Task) else self.get(task)
        failures = 0
        while True:
            if on_progress and not failures:
                on_progress(current)
            if current.done:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"task {current.task_no} is still {current.status} after {timeout} s", current)
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)
            try:
                current, failures = self.get(current.task_no), 0
            except (NetworkError, ServerError):
                # A blip while polling does not end the wait; the task runs on regardless.
                failures += 1
                if failures > WAIT_POLL_FAILURES:
                    raise

    def watch(self, task: TaskRef, *, timeout: float | None = 600, on_progress: Callable[[Task], None] | None = None,
              poll_interval: float = 15.0) -> Task:
        """Follow a task to its end by push (the WebSocket, `task.updated`), polling only as the fallback.

        Opens the socket (`ws_url`, with the client's token or API key as `?token=`), then reads the task
        once (a change made before the socket opened is not pushed again), then takes the pushed states;
        a GET every `poll_interval` seconds covers a message lost on the way. Without a socket (no
        `ws_url`, refused, unreachable) or when it closes, it goes on as `wait` does (a GET every second).
        `on_progress` sees every new state. Raises WaitTimeout (with the last state) after `timeout` s.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        current = task if isinstance(task, Task) else None
        socket = self._open_socket()
        if socket is not None:
            with socket:
                current = self._follow(socket, _task_no(task), deadline, on_progress, poll_interval)
            if current.done:
                return current
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.wait(current or _task_no(task), timeout=left, on_progress=on_progress)

    def _open_socket(self):
        """The push socket, or None when there is none to open (the caller polls instead)."""
        if not self.ws_url or not self._socket_token:
            return None
        try:
            from websockets.exceptions import WebSocketException
            from websockets.sync.client import connect
        except ImportError:  # the push is optional: polling works without the package
            return None
        separator = "&" if "?" in self.ws_url else "?"
        try:
            return connect(f"{self.ws_url}{separator}token={quote(self._socket_token, safe='')}", open_timeout=5,
                           user_agent_header="aigc-client/0.1")
        except (OSError, TimeoutError, WebSocketException):
            return None

    def _follow(self, socket, task_no: str, deadline: float | None, on_progress, poll_interval: float) -> Task:
        """The task's states as the socket pushes them, until it ends, the deadline passes or the socket closes."""
        from websockets.exceptions import ConnectionClosed

        current, shown, polled = self.get(task_no), None, time.monotonic()
        while True:
            if on_progress and current != shown:
                on_progress(current)
                shown = current
            if current.done:
                return current
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(f"task {task_no} is still {current.status} after the wait", current)
            pause = polled + poll_interval - now if deadline is None else min(polled + poll_interval, deadline) - now
            try:
                message = json.loads(socket.recv(timeout=max(0.01, pause)))
            except TimeoutError:
                current, polled = self.get(task_no), time.monotonic()
                continue
            except ConnectionClosed:
                return current
            except ValueError:
                continue
            data = message.get("data") if isinstance(message, dict) else None
            if message.get("type") == "task.updated" and isinstance(data, dict) and data.get("taskNo") == task_no:
                current = Task.model_validate(data)

    # ---------------------------------------------------------------- points and catalog
    def balance(self) -> Balance:
        return Balance.model_validate(self._request("GET", "/user/points/consumption/balance"))

    def records(self, *, page_size: int = 100) -> Iterator[LedgerEntry]:
        """The user's ledger (debits, refunds, grants), newest first, all pages."""
        return self._pages("/user/points/consumption/records", LedgerEntry, {}, page_size)

    def packs(self) -> list[Pack]:
        """The point packs on sale (no token needed)."""
        return [Pack.model_validate(p) for p in self._request("GET", "/points/packs")]

    def buy(self, pack_id: str, *, idempotency_key: str | None = None, success_url: str | None = None,
            cancel_url: str | None = None) -> Order:
        """A pending order for the pack and its `checkout_url` (Stripe Checkout): open it to pay. The points
        come when the payment provider confirms the payment; `wait_order` waits for that. A repeated
        `idempotency_key` answers the same order."""
        body: dict[str, Any] = {"packId": pack_id}
        if success_url:
            body["successUrl"] = success_url
        if cancel_url:
            body["cancelUrl"] = cancel_url
        return Order.model_validate(self._request("POST", "/user/points/checkout", json=body,
                                                  idempotency_key=idempotency_key))

    def order(self, order_no: str | Order) -> Order:
        number = order_no.order_no if isinstance(order_no, Order) else order_no
        return Order.model_validate(self._request("GET", f"/user/points/orders/{quote(number, safe='')}"))

    def orders(self, *, page_size: int = 100) -> Iterator[Order]:
        """The user's orders, newest first, all pages."""
        return self._pages("/user/points/orders", Order, {}, page_size)

    def wait_order(self, order_no: str | Order, *, timeout: float | None = 900, interval: float = 2.0,
                   on_progress: Callable[[Order], None] | None = None) -> Order:
        """Poll until the order is paid (or expired, refunded, disputed). Raises WaitTimeout after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = self.order(order_no)
        while True:
            if on_progress:
                on_progress(current)
            if current.done:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"order {current.order_no} is still {current.status} after {timeout} s", None)
            time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
            try:
                current = self.order(current.order_no)
            except (NetworkError, ServerError):
                pass  # a blip while polling does not end the wait

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._request("GET", "/models")]

    def templates(self, category: str | None = None) -> list[Template]:
        """The templates (the latest enabled version of each), optionally of one category; no token needed."""
        params = {"category": category} if category else None
        return [Template.model_validate(t) for t in self._request("GET", "/templates", params=params)]

    def webhook_secret(self, *, rotate: bool = False) -> str:
        """The user's webhook signing secret (`whsec_...`), created on first read; `rotate` replaces it."""
        if rotate:
            return self._request("POST", "/user/webhooks/secret/rotate")["secret"]
        return self._request("GET", "/user/webhooks/secret")["secret"]

    # ---------------------------------------------------------------- API keys (need the token, a JWT)
    def create_api_key(self, name: str, *, scopes: list[str] | None = None, expires_in_days: int | None = None,
                       daily_points_limit: int | None = None, models: list[str] | None = None) -> ApiKey:
        """A new API key; its secret (`.key`) is in this answer only: store it now.

        `scopes`: tasks:write, tasks:read, points:read (default all); `daily_points_limit`: points it may spend
        per UTC day; `models`: the models it may use (default all)."""
        body: dict[str, Any] = {"name": name}
        for field, value in (("scopes", scopes), ("expiresInDays", expires_in_days),
                             ("dailyPointsLimit", daily_points_limit), ("models", models)):
            if value is not None:
                body[field] = value
        return ApiKey.model_validate(self._request("POST", "/user/api-keys", json=body))

    def api_keys(self) -> list[ApiKey]:
        """Your API keys, newest first (never their secrets)."""
        return [ApiKey.model_validate(k) for k in self._request("GET", "/user/api-keys")]

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key: it is refused from the next request on."""
        return ApiKey.model_validate(self._request("DELETE", f"/user/api-keys/{key_id}"))

    # ---------------------------------------------------------------- files
    def upload(self, path: str | Path, *, parameters: dict[str, Any] | None = None,
               timeout: float = 60.0, interval: float = 0.5) -> Task:
        """Upload an image through `POST /user/uploads`; the service turns it into an outpainting task.

        `parameters` are outpainting parameters (e.g. {"outputRatio": "16:9"}). Returns that task once it
        appears in the task list (it may already be `failed` with a `Rejected.*` code, charged nothing).
        """
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body: dict[str, Any] = {"fileName": path.name, "contentType": content_type}
        if parameters:
            body["parameters"] = parameters
        upload = Upload.model_validate(self._request("POST", "/user/uploads", json=body))
        with path.open("rb") as file:
            try:
                posted = self._plain.post(upload.url, data=upload.fields, files={"file": (path.name, file,
                                                                                          content_type)})
            except httpx.HTTPError as error:
                raise NetworkError(f"upload to storage: {error}") from error
        if not posted.is_success:
            raise error_for(posted.status_code, None, f"storage refused the upload: {posted.text[:300]}")
        return self._find_upload_task(upload.key, timeout, interval)

    def _find_upload_task(self, key: str, timeout: float, interval: float) -> Task:
        """The upload's task is made asynchronously by the bucket's trigger; its image is the uploaded key."""
        deadline = time.monotonic() + timeout
        while True:
            page = Page[Task].model_validate(self._request("GET", "/user/ai/tasks/list", params={"size": 20}))
            for task in page.records:
                if task.source == "upload" and any(unquote(urlparse(u).path).endswith("/" + key)
                                                   for u in task.image_urls):
                    return task
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"no task appeared for the upload {key} within {timeout} s", None)
            time.sleep(interval)

    def download(self, task: TaskRef, directory: str | Path) -> list[Path]:
        """Save a completed task's result images into `directory` as <taskNo>[-<n>].<ext>; returns the paths."""
        fresh = self.get(task)  # result URLs are presigned and expire: read them now
        if fresh.status != "completed":
            raise AigcError(f"task {fresh.task_no} is {fresh.status}, not completed: nothing to download")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        urls = fresh.result_urls or ([fresh.result_url] if fresh.result_url else [])
        saved = []
        for index, url in enumerate(urls):
            suffix = Path(urlparse(url).path).suffix or ".png"
            target = directory / (f"{fresh.task_no}{suffix}" if len(urls) == 1 else f"{fresh.task_no}-{index + 1}{suffix}")
            try:
                with self._plain.stream("GET", url) as response:
                    if not response.is_success:
                        response.read()
                        raise error_for(response.status_code, None, f"download failed: {response.text[:300]}")
                    with target.open("wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
            except httpx.HTTPError as error:
                raise NetworkError(f"download {fresh.task_no}: {error}") from error
            saved.append(target)
        return saved
