"""`aigc`: the command line over `Client`.

Exit codes: 0 completed (or the command succeeded), 1 the task failed, was cancelled or is still
running when --timeout passes, 2 usage (also the API's 400/404/409: the request cannot be done as
given), 3 auth, points or rate limit (401/402/403/429, and an upload refused for points), 4 server
or network.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from aigc_client.client import DEFAULT_BASE_URL, Client, language_from_environment
from aigc_client.errors import (
    AigcError,
    AuthError,
    InsufficientPoints,
    NetworkError,
    RateLimited,
    ServerError,
    WaitTimeout,
)
from aigc_client.models import Task
from aigc_client.progress import progress_view, stage

EXIT_OK, EXIT_TASK, EXIT_USAGE, EXIT_DENIED, EXIT_SERVER = 0, 1, 2, 3, 4

app = typer.Typer(name="aigc", help="AI image tasks paid in points: submit, wait, download.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


TaskNo = Annotated[str, typer.Argument(metavar="TASK_NO")]
ModelArgument = Annotated[Optional[str], typer.Argument(help="Model name (see: aigc models); or use --template.")]
TemplateOption = Annotated[Optional[str], typer.Option("--template", help="Template code (see: aigc templates).")]
TemplateVersionOption = Annotated[Optional[int], typer.Option("--template-version",
                                                              help="That version of the template (default: latest).")]
InputOption = Annotated[Optional[list[str]], typer.Option("--input", help="Template input k=v (v parsed as JSON "
                                                                          "when it can be). Repeatable.")]
# Flags take no value: metavar "" keeps typer's help from showing a "<bool>" value after them.
WaitFlag = Annotated[bool, typer.Option("--wait", help="Wait until the task finishes.", metavar="")]
DownloadTo = Annotated[Optional[Path], typer.Option(help="Wait, then save the results into this folder.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait at most.")]
Limit = Annotated[int, typer.Option(help="At most this many (0: all).")]


class State:
    def __init__(self, base_url: str, token: str | None, as_json: bool, api_key: str | None = None,
                 language: str | None = None):
        self.base_url, self.token, self.as_json, self.api_key = base_url, token, as_json, api_key
        self.language = language
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.base_url, self.token, api_key=self.api_key or "", language=self.language)
        return self._client


@app.callback()
def _options(
    ctx: typer.Context,
    base_url: Annotated[str, typer.Option(envvar="AIGC_BASE_URL", help="API base URL.")] = DEFAULT_BASE_URL,
    token: Annotated[Optional[str], typer.Option(envvar="AIGC_TOKEN", help="Bearer token (JWT).",
                                                 show_default=False)] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="AIGC_API_KEY", help="API key (aigc_...): tasks and "
                                                   "points commands, within its scopes.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.", metavar="")] = False,
    language: Annotated[Optional[str], typer.Option(
        "--language", help="The API's messages in this language (Accept-Language: zh-CN for Chinese); default: "
        "from LANGUAGE, LC_ALL, LC_MESSAGES or LANG.", show_default=False)] = None,
) -> None:
    state = State(base_url, token, as_json, api_key, language or language_from_environment())
    ctx.obj = state
    ctx.call_on_close(lambda: state._client and state._client.close())


def _state(ctx: typer.Context) -> State:
    return ctx.obj


def _dump(data: Any) -> None:
    out.print_json(json.dumps(data, default=str)) if out.is_terminal else print(json.dumps(data, default=str))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal (long columns are never cut), tab-separated lines otherwise (for cut/awk)."""
    if not out.is_terminal:
        for row in [headers, *rows]:
            print("\t".join(row))
        return
    table = Table(box=None)
    for index, header in enumerate(headers):
        longest = max((len(row[index]) for row in rows), default=0)
        table.add_column(header, no_wrap=True, min_width=min(longest, 40) if index == 0 else None)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _page_size(limit: int) -> int:
    return min(limit or 100, 100)


def _take(items: Iterable, limit: int) -> list:
    """The first `limit` items (0: all); pages past them are never fetched."""
    return list(islice(items, limit or None))


def _time(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


def _task_json(task: Task) -> dict:
    return task.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_param(text: str) -> tuple[str, Any]:
    """k=v; v is JSON when it parses (2, 1.5, true, null, [..]), else the plain string (16:9, red)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"'{text}' is not k=v", param_hint="--param")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _finish(state: State, task: Task, *, wait: bool, download: Path | None, timeout: float) -> None:
    """Print the task; with --wait/--download follow it to the end and exit with its outcome."""
    if not (wait or download):
        _dump(_task_json(task)) if state.as_json else out.print(
            f"{task.task_no} {task.status} ({task.points_cost} points)")
        return
    with progress_view(err if state.as_json else out) as show:  # --json: stdout holds only the JSON
        try:
            task = state.client.watch(task, timeout=timeout, on_progress=show)  # push, else polling
        except WaitTimeout as error:
            err.print(f"error: {error.message}; follow it with: aigc wait {error.task.task_no}")
            raise typer.Exit(EXIT_TASK)
    paths = state.client.download(task, download) if download and task.status == "completed" else []
    if state.as_json:
        _dump(_task_json(task) | ({"files": [str(p) for p in paths]} if paths else {}))
    elif task.status == "completed":
        for line in [str(p) for p in paths] or task.result_urls:
            out.print(line)
    if task.status != "completed":
        reason = ": ".join(x for x in (task.error_code, task.error_message) if x) or "no reason given"
        refund = " (points refunded)" if task.refunded else ""
        err.print(f"task {task.task_no} {task.status}: {reason}{refund}")
        # An upload refused for want of points is the 402 of a submit: same exit code.
        raise typer.Exit(EXIT_DENIED if task.error_code == "Rejected.InsufficientPoints" else EXIT_TASK)


@app.command()
def submit(
    ctx: typer.Context,
    model: ModelArgument = None,
    template: TemplateOption = None,
    template_version: TemplateVersionOption = None,
    input_: InputOption = None,
    prompt: Annotated[Optional[str], typer.Option(help="Text prompt.")] = None,
    image: Annotated[Optional[list[str]], typer.Option(
        help="Image URL, or a local file (uploaded; outpainting models only). Repeatable.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="Model parameter k=v (v parsed as JSON when it can "
                                                            "be). Repeatable.")] = None,
    wait: WaitFlag = False,
    download: DownloadTo = None,
    timeout: Timeout = 900,
    idempotency_key: Annotated[Optional[str], typer.Option(help="A repeat with the same key returns the same "
                                                                "task, charged once.")] = None,
    webhook: Annotated[Optional[str], typer.Option(help="https URL that receives the task, signed "
                                                        "(see: aigc webhook-secret).")] = None,
    webhook_event: Annotated[Optional[list[str]], typer.Option(help="start and/or completed (default: both). "
                                                                    "Repeatable.")] = None,
) -> None:
    """Start a task (charged now, refunded if it fails): a MODEL, or --template CODE with its --input k=v."""
    state = _state(ctx)
    parameters = dict(parse_param(p) for p in param or [])
    images = image or []
    files = [Path(i) for i in images if not _is_url(i)]
    _one_of(model, template, input_)
    if template:
        if files:
            raise typer.BadParameter("a template takes its image as an http(s) URL", param_hint="--image")
        task = state.client.submit(template=template, template_version=template_version,
                                   inputs=dict(parse_param(p) for p in input_ or []), prompt=prompt,
                                   image_url=(images[0] if len(images) == 1 else images) or None,
                                   parameters=parameters or None, webhook=webhook, webhook_events=webhook_event,
                                   idempotency_key=idempotency_key)
    elif files:
        if webhook or webhook_event:
            raise typer.BadParameter("an upload cannot carry a webhook; give the image as a URL",
                                     param_hint="--webhook")
        _check_upload(state, model, files, images, prompt)
        task = state.client.upload(files[0], parameters=parameters or None)
    else:
        task = state.client.submit(model, prompt=prompt, image_url=(images[0] if len(images) == 1 else images) or None,
                                   parameters=parameters or None, webhook=webhook, webhook_events=webhook_event,
                                   idempotency_key=idempotency_key)
    _finish(state, task, wait=wait, download=download, timeout=timeout)


def _one_of(model: str | None, template: str | None, inputs: list[str] | None) -> None:
    if (model is None) == (template is None):
        raise typer.BadParameter("give a MODEL or --template CODE (exactly one)", param_hint="MODEL")
    if inputs and not template:
        raise typer.BadParameter("--input goes with --template", param_hint="--input")


@app.command()
def quote(
    ctx: typer.Context,
    model: ModelArgument = None,
    template: TemplateOption = None,
    template_version: TemplateVersionOption = None,
    input_: InputOption = None,
    prompt: Annotated[Optional[str], typer.Option(help="Text prompt.")] = None,
    image: Annotated[Optional[list[str]], typer.Option(help="Image URL. Repeatable.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="Model parameter k=v. Repeatable.")] = None,
) -> None:
    """What a submit with these arguments would charge, and why (nothing is charged)."""
    state = _state(ctx)
    _one_of(model, template, input_)
    images = image or []
    answer = state.client.quote(model, template=template, template_version=template_version,
                                inputs=dict(parse_param(p) for p in input_ or []) if template else None,
                                prompt=prompt, image_url=(images[0] if len(images) == 1 else images) or None,
                                parameters=dict(parse_param(p) for p in param or []) or None)
    if state.as_json:
        _dump(answer.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    made_with = f"{answer.template_code} v{answer.template_version} on " if answer.template_code else ""
    out.print(f"{answer.pricing.total} points ({made_with}{answer.model_name}, {answer.result_type})")
    out.print(f"  base {answer.pricing.base}")
    for factor in answer.pricing.factors:
        change = f"x{factor.factor:g}" if factor.factor is not None else f"+{factor.points:g}"
        out.print(f"  {change}  {factor.label}")


@app.command()
def templates(
    ctx: typer.Context,
    category: Annotated[Optional[str], typer.Option(help="Only this category.")] = None,
) -> None:
    """Ready-made tasks: their code, what they make, their inputs and price (aigc submit --template CODE)."""
    state = _state(ctx)
    listed = state.client.templates(category)
    if state.as_json:
        _dump([t.model_dump(mode="json", by_alias=True) for t in listed])
        return
    _table(["template", "version", "category", "makes", "points", "inputs", "model"],
           [[t.code, str(t.version), t.category, t.result_type, str(t.example_price) if t.example_price else "",
             ", ".join(f"{name}{'' if name in t.inputs.get('required', []) else '?'}"
                       for name in t.inputs.get("properties", {})), t.model_name] for t in listed])


def _check_upload(state: State, model: str, files: list[Path], images: list[str], prompt: str | None) -> None:
    """A local --image goes through POST /user/uploads, whose trigger makes an outpainting task by itself:
    so only for an outpainting model, as the only image, without a prompt; anything else is a usage error
    before anything is uploaded or charged."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise typer.BadParameter(f"no such file: {', '.join(missing)} (or give an http(s) URL)", param_hint="--image")
    info = {m.model_name: m for m in state.client.models()}.get(model)
    if info is None:
        raise typer.BadParameter(f"unknown model '{model}' (aigc models lists them)", param_hint="MODEL")
    if info.task_type != "outpainting":
        raise typer.BadParameter(
            f"a local file is uploaded, and uploads become outpainting tasks; {model} is {info.task_type}: "
            "give it an http(s) URL instead", param_hint="--image")
    if len(images) != 1:
        raise typer.BadParameter("an uploaded file must be the only --image", param_hint="--image")
    if prompt:
        raise typer.BadParameter("an upload takes no prompt (outpainting)", param_hint="--prompt")


@app.command()
def get(ctx: typer.Context, task_no: TaskNo) -> None:
    """Show one task (JSON)."""
    _dump(_task_json(_state(ctx).client.get(task_no)))


@app.command("wait")
def wait_(
    ctx: typer.Context,
    task_no: TaskNo,
    download: DownloadTo = None,
    timeout: Timeout = 900,
) -> None:
    """Wait for a task to finish (exit 0 completed, 1 failed or cancelled)."""
    state = _state(ctx)
    _finish(state, state.client.get(task_no), wait=True, download=download, timeout=timeout)


@app.command()
def download(ctx: typer.Context, task_no: TaskNo,
             directory: Annotated[Path, typer.Argument()] = Path(".")) -> None:
    """Save a completed task's images into a folder."""
    for path in _state(ctx).client.download(task_no, directory):
        out.print(str(path))


@app.command()
def tasks(
    ctx: typer.Context,
    status: Annotated[Optional[str], typer.Option(help="Only this status.")] = None,
    task_type: Annotated[Optional[str], typer.Option("--type", help="Only this task type.")] = None,
    limit: Limit = 20,
) -> None:
    """List your tasks, newest first."""
    state = _state(ctx)
    rows = _take(state.client.list(status=status, task_type=task_type, page_size=_page_size(limit)), limit)
    if state.as_json:
        _dump([_task_json(t) for t in rows])
        return
    _table(["taskNo", "model", "status", "progress", "points", "created"],
           [[t.task_no, t.model_name, t.status, stage(t).percent_text, str(t.points_cost), _time(t.create_time)]
            for t in rows])


@app.command()
def cancel(ctx: typer.Context, task_no: TaskNo) -> None:
    """Cancel a queued or processing task (refunded)."""
    state = _state(ctx)
    _finish(state, state.client.cancel(task_no), wait=False, download=None, timeout=0)


@app.command()
def retry(
    ctx: typer.Context,
    task_no: TaskNo,
    wait: WaitFlag = False,
    download: DownloadTo = None,
    timeout: Timeout = 900,
) -> None:
    """Run a failed or cancelled task again as a new task (charged anew)."""
    state = _state(ctx)
    _finish(state, state.client.retry(task_no), wait=wait, download=download, timeout=timeout)


@app.command()
def balance(ctx: typer.Context) -> None:
    """Your points balance and the lots that hold it (spent in this order)."""
    state = _state(ctx)
    result = state.client.balance()
    if state.as_json:
        _dump(result.model_dump(mode="json", by_alias=True))
        return
    expiry = f", the first {_time(result.expire_time)} UTC" if result.expire_time else ""
    out.print(f"{result.balance} points" + (f" (some expire{expiry})" if result.expire_time else ""))
    if result.lots:
        _table(["lot", "category", "source", "remaining", "granted", "expires"],
               [[lot.lot_id, lot.category, lot.source or "", str(lot.remaining), str(lot.granted),
                 _time(lot.expire_time) or "never"] for lot in result.lots])


@app.command()
def packs(ctx: typer.Context) -> None:
    """The point packs you can buy (aigc buy PACK_ID)."""
    state = _state(ctx)
    found = state.client.packs()
    if state.as_json:
        _dump([p.model_dump(mode="json", by_alias=True) for p in found])
        return
    _table(["pack", "points", "bonus", "price", "valid"],
           [[p.pack_id, str(p.points), f"+{p.bonus_points} ({p.bonus_valid_days} days)" if p.bonus_points else "",
             p.price.text, f"{p.valid_days} days" if p.valid_days else "never expire"] for p in found])


@app.command()
def buy(
    ctx: typer.Context,
    pack_id: Annotated[str, typer.Argument(metavar="PACK_ID", help="A pack of: aigc packs.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the order is paid.")] = True,
    timeout: Timeout = 900,
    idempotency_key: Annotated[Optional[str], typer.Option(help="A repeat with the same key answers the same "
                                                                "order.")] = None,
) -> None:
    """Buy a pack: prints the checkout URL to pay at, then waits (a spinner) until the order is paid."""
    state = _state(ctx)
    order = state.client.buy(pack_id, idempotency_key=idempotency_key)
    if state.as_json and not wait:
        _dump(order.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    shown = err if state.as_json else out
    shown.print(f"order {order.order_no}: pay at")
    print(order.checkout_url, file=sys.stderr if state.as_json else sys.stdout, flush=True)
    if not wait:
        return
    try:
        with shown.status(f"waiting for the payment of {order.order_no} ...", spinner="dots"):
            order = state.client.wait_order(order, timeout=timeout)
    except WaitTimeout as error:
        err.print(f"error: {error.message}; see it with: aigc orders")
        raise typer.Exit(EXIT_TASK)
    if state.as_json:
        _dump(order.model_dump(mode="json", by_alias=True, exclude_none=True))
    elif order.status == "paid":
        bonus = f" + {order.bonus_points} bonus" if order.bonus_points else ""
        out.print(f"paid: {order.points}{bonus} points added; balance {state.client.balance().balance}")
    if order.status != "paid":
        err.print(f"order {order.order_no} {order.status}" + (f": {order.problem}" if order.problem else ""))
        raise typer.Exit(EXIT_TASK)


@app.command()
def orders(ctx: typer.Context, limit: Limit = 20) -> None:
    """Your point orders, newest first."""
    state = _state(ctx)
    rows = _take(state.client.orders(page_size=_page_size(limit)), limit)
    if state.as_json:
        _dump([o.model_dump(mode="json", by_alias=True) for o in rows])
        return
    _table(["orderNo", "pack", "status", "points", "price", "created", "paid"],
           [[o.order_no, o.pack_id or "", o.status, str(o.points + o.bonus_points),
             f"{(o.amount or 0) / 100:.2f} {(o.currency or '').upper()}", _time(o.create_time), _time(o.paid_time)]
            for o in rows])


@app.command()
def records(ctx: typer.Context, limit: Limit = 20) -> None:
    """Your points ledger (grants, purchases, debits, refunds, expiries, clawbacks), newest first."""
    state = _state(ctx)
    rows = _take(state.client.records(page_size=_page_size(limit)), limit)
    if state.as_json:
        _dump([e.model_dump(mode="json", by_alias=True) for e in rows])
        return
    _table(["time", "type", "amount", "task or order", "lots", "reason"],
           [[_time(e.create_time), e.type, f"{e.amount:+d}", e.task_no or e.order_no or "",
             ", ".join(f"{share.lot_id}:{share.points}" for share in e.lots), e.reason or ""] for e in rows])


@app.command()
def models(ctx: typer.Context) -> None:
    """The models, their task type and price."""
    state = _state(ctx)
    catalog = state.client.models()
    if state.as_json:
        _dump([m.model_dump(mode="json", by_alias=True) for m in catalog])
        return
    _table(["model", "type", "points", "prompt", "images"],
           [[m.model_name, m.task_type, str(m.points_cost), m.inputs.prompt if m.inputs else "",
             f"{m.inputs.min_images}-{m.inputs.max_images}" if m.inputs else ""] for m in catalog])


@app.command("webhook-secret")
def webhook_secret(ctx: typer.Context,
                   rotate: Annotated[bool, typer.Option("--rotate", help="Replace it with a new one.",
                                                        metavar="")] = False) -> None:
    """Your webhook signing secret (whsec_...), to verify deliveries with a Standard Webhooks library."""
    state = _state(ctx)
    secret = state.client.webhook_secret(rotate=rotate)
    _dump({"secret": secret}) if state.as_json else print(secret)


keys_app = typer.Typer(name="keys", help="Your API keys (need --token: a signed-in user, not a key).",
                       no_args_is_help=True)
app.add_typer(keys_app)


def _key_row(key) -> list[str]:
    return [key.key_id, key.name, key.prefix, " ".join(key.scopes),
            "" if key.daily_points_limit is None else str(key.daily_points_limit),
            ",".join(key.models) if key.models is not None else "all",
            "expired" if key.expired else _time(key.expire_time) or "never", _time(key.last_used_time)]


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Your label for the key.")],
    scope: Annotated[Optional[list[str]], typer.Option(help="tasks:write, tasks:read or points:read (default: "
                                                            "all three). Repeatable.")] = None,
    expires_in_days: Annotated[Optional[int], typer.Option(help="Days until it stops working (default: "
                                                                "never).")] = None,
    daily_points_limit: Annotated[Optional[int], typer.Option(help="Points it may spend per UTC day.")] = None,
    model: Annotated[Optional[list[str]], typer.Option(help="A model it may use (default: all). "
                                                            "Repeatable.")] = None,
) -> None:
    """Create an API key; prints the key once (store it: it is never shown again)."""
    state = _state(ctx)
    key = state.client.create_api_key(name, scopes=scope, expires_in_days=expires_in_days,
                                      daily_points_limit=daily_points_limit, models=model)
    if state.as_json:
        _dump(key.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    print(key.key)
    err.print(f"{key.key_id} ({' '.join(key.scopes)}): store the key now, it is not shown again")


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """Your API keys (never their secrets)."""
    state = _state(ctx)
    keys = state.client.api_keys()
    if state.as_json:
        _dump([k.model_dump(mode="json", by_alias=True, exclude_none=True) for k in keys])
        return
    _table(["keyId", "name", "prefix", "scopes", "daily limit", "models", "expires", "last used"],
           [_key_row(k) for k in keys])


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke an API key: refused from the next request on."""
    state = _state(ctx)
    key = state.client.revoke_api_key(key_id)
    _dump(key.model_dump(mode="json", by_alias=True, exclude_none=True)) if state.as_json else out.print(
        f"{key.key_id} revoked")


def exit_code(error: AigcError) -> int:
    if isinstance(error, (AuthError, InsufficientPoints, RateLimited)):
        return EXIT_DENIED
    if isinstance(error, (ServerError, NetworkError)):
        return EXIT_SERVER
    if isinstance(error, WaitTimeout):
        return EXIT_TASK
    return EXIT_USAGE


def main() -> None:
    try:
        app()
    except AigcError as error:
        err.print(f"error: {error}")
        if isinstance(error, AuthError) and error.status == 401 and not os.environ.get("AIGC_TOKEN") \
                and "--token" not in sys.argv:
            err.print("hint: set AIGC_TOKEN (or AIGC_API_KEY) or pass --token (or --api-key)")
        sys.exit(exit_code(error))
