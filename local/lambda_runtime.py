"""Run the functions' real handlers in process wherever moto would start a Lambda container.

moto sends every Lambda invocation (from Step Functions tasks, S3 notifications and the Invoke
API alike) through `moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)`, which
returns `(payload_json, errored, logs)`. `install_router` replaces that one method; a test in
tests/workflow fails if moto ever drops it (moto is pinned in requirements-dev.txt).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from moto.awslambda.models import LambdaFunction

Handler = Callable[[dict, object], object]
ROOT = Path(__file__).resolve().parents[1]
_ORIGINAL_INVOKE = LambdaFunction._invoke_lambda


_IMPORT_LOCK = threading.Lock()


def load_handler(code_uri: str, handler: str) -> Handler:
    """Import `<code_uri>/<module>.py` by path under a unique name (every function has an app.py).

    Under a lock: two first invocations at once must not see a half-imported module.
    """
    module_name, _, function_name = handler.rpartition(".")
    path = (ROOT / code_uri / f"{module_name.replace('.', '/')}.py").resolve()
    unique = f"_fn_{path.parent.name}_{module_name}"
    with _IMPORT_LOCK:
        if unique not in sys.modules:
            spec = importlib.util.spec_from_file_location(unique, path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(unique, None)
                raise
            sys.modules[unique] = module
        return getattr(sys.modules[unique], function_name)


@dataclass
class LambdaContext:
    function_name: str
    timeout_seconds: int = 30
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def __post_init__(self):
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Route:
    handler: Handler
    timeout: int = 30
    memory: int = 512


class Router:
    """Maps moto function names to in-process handlers and records every invocation."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.invocations: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()

    def add(self, function_name: str, handler: Handler, *, timeout: int = 30, memory: int = 512) -> None:
        self.routes[function_name] = Route(handler, timeout, memory)

    def invoke(self, function_name: str, arn: str, event) -> tuple[str, bool, str]:
        route = self.routes.get(function_name)
        if route is None:
            return json.dumps({"errorType": "ResourceNotFound", "errorMessage": f"no handler for {function_name}"}), True, ""
        if isinstance(event, (str, bytes)):
            event = json.loads(event or "{}")
        context = LambdaContext(function_name, route.timeout, route.memory, invoked_function_arn=arn)
        try:
            result = route.handler(event, context)
            errored = False
            payload = json.dumps(result, default=str)
        except Exception as error:  # the Lambda runtime's error shape: errorType is the class name
            errored = True
            payload = json.dumps({
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_exception(error)[-5:],
            })
            logging.getLogger("local.lambda").info("%s raised %s: %s", function_name, type(error).__name__, error)
        with self._lock:
            self.invocations.append((function_name, event, errored))
        return payload, errored, ""


S3_NOTIFICATION_DELAY = 0.2


def _is_s3_notification(event) -> bool:
    if isinstance(event, (str, bytes)):
        try:
            event = json.loads(event or "{}")
        except ValueError:
            return False
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:s3"


def install_router(router: Router) -> Callable[[], None]:
    """Route moto's Lambda invocations to `router`; returns the function that undoes it."""

    def _invoke_lambda(self, event=None):
        if _is_s3_notification(event):
            # S3 invokes asynchronously, after the object is complete. moto notifies from inside
            # put_object, before it stores the object's metadata: run the handler a moment later.
            timer = threading.Timer(S3_NOTIFICATION_DELAY, router.invoke, (self.function_name, self.function_arn, event))
            timer.daemon = True
            timer.start()
            return "", False, ""
        return router.invoke(self.function_name, self.function_arn, event)

    LambdaFunction._invoke_lambda = _invoke_lambda

    def uninstall() -> None:
        LambdaFunction._invoke_lambda = _ORIGINAL_INVOKE

    return uninstall


@contextlib.contextmanager
def scaled_waits(scale: float):
    """moto's Wait states and Retry intervals sleep for real; scale them (0.01 makes 10 s take 0.1 s)."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    original_wait = WaitFunction._wait_interval
    original_time = retrier_decl.time

    def _wait_interval(self, env, wait_seconds):
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * scale)

    class _ScaledTime:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            time.sleep(seconds * scale)

    WaitFunction._wait_interval = _wait_interval
    retrier_decl.time = _ScaledTime()
    # The poll step's pause between provider polls (inside one invocation) is a wait too.
    from aigc import workflow

    original_pause = workflow.SLEEP
    workflow.SLEEP = _ScaledTime.sleep
    try:
        yield
    finally:
        WaitFunction._wait_interval = original_wait
        retrier_decl.time = original_time
        workflow.SLEEP = original_pause
