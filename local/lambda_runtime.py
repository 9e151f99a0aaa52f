"""Run the functions' real handlers in process wherever moto would start a Lambda container.

moto sends every Lambda invocation (from Step Functions tasks, S3 notifications and the Invoke
API alike) through `moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)`, which
returns `(payload_json, errored, logs)`. `install_router` replaces that one method (local/seams.py
registers it, and every other library attribute this module replaces; tests/workflow/test_moto_seams.py
fails if moto ever drops one; moto is pinned in requirements-dev.txt).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import queue
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from local import seams

Handler = Callable[[dict, object], object]
ROOT = Path(__file__).resolve().parents[1]
INVOCATIONS_KEPT = 1000  # the newest invocations, for tests and debugging (bounded memory)


_IMPORT_LOCK = threading.Lock()


def load_handler(code_uri: str, handler: str, instance: int | None = None) -> Handler:
    """Import `<code_uri>/<module>.py` by path under a unique name (every function has an app.py).

    Each `instance` (an execution environment) gets its own module object, so module-level state
    (the API's powertools resolver, caches) is never shared by two environments; the shared
    library (`aigc`, the layer) is imported once, as a layer's modules are per process.
    Under a lock: two first invocations at once must not see a half-imported module.
    """
    module_name, _, function_name = handler.rpartition(".")
    path = (ROOT / code_uri / f"{module_name.replace('.', '/')}.py").resolve()
    unique = f"_fn_{path.parent.name}_{module_name}" + (f"_env{instance}" if instance is not None else "")
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


DEFAULT_CONCURRENCY = 16  # environments per function when the template reserves none (this machine's share)
IDLE_SECONDS = 300  # an environment unused this long is reclaimed (its module instance and thread end)


def _error_payload(error_type: str, message: str, trace: list[str] | None = None) -> str:
    payload = {"errorType": error_type, "errorMessage": message}
    if trace is not None:
        payload["stackTrace"] = trace
    return json.dumps(payload)


class Environment:
    """One execution environment: its handler module instance and the one thread that runs it.

    A persistent thread, as Lambda's runtime process is: the handler module is imported in it (the
    init phase) and every invocation runs in it, so thread-local state (botocore sessions in
    PynamoDB connections, the powertools metrics, see `isolate_metrics`) is the environment's own.
    """

    def __init__(self, name: str, factory: Callable[[int], Handler], number: int):
        self.name = name
        self.module = ""
        self.initialised = threading.Event()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(factory, number), name=f"lambda-{name}-{number}",
                                        daemon=True)
        self._thread.start()

    def run(self, event, context: LambdaContext, timeout: float) -> dict | None:
        """The outcome (payload, errored), or None when the invocation ran past `timeout`."""
        outcome: dict = {}
        done = threading.Event()
        self._jobs.put((event, context, outcome, done))
        return outcome if done.wait(timeout) else None

    def retire(self) -> None:
        self._jobs.put(None)  # the thread ends after what it is running now
        if self.module.startswith("_fn_") and "_env" in self.module:
            sys.modules.pop(self.module, None)  # this environment's own module instance goes with it

    def _serve(self, factory: Callable[[int], Handler], number: int) -> None:
        try:
            handler, init_error = factory(number), None
            self.module = getattr(handler, "__module__", "") or ""
        except Exception as error:  # reported on every invocation, as Lambda does
            handler, init_error = None, error
        self.initialised.set()
        while (job := self._jobs.get()) is not None:
            event, context, outcome, done = job
            try:
                if init_error is not None:
                    raise init_error
                outcome["payload"] = json.dumps(handler(event, context), default=str)
                outcome["errored"] = False
            except Exception as error:  # the Lambda runtime's error shape: errorType is the class name
                outcome["payload"] = _error_payload(type(error).__name__, str(error),
                                                    traceback.format_exception(error)[-5:])
                outcome["errored"] = True
                logging.getLogger("local.lambda").info("%s raised %s: %s", context.function_name,
                                                       type(error).__name__, error)
            done.set()


def share_botocore_models() -> Callable[[], None]:
    """One botocore data loader for every session of the process; returns the undo.

    Each environment keeps its own botocore sessions (PynamoDB makes one per thread and connection),
    and each session would parse and hold its own copy of the service models and endpoints (tens of
    MB, and most of a cold client's CPU). The models are read-only: sharing them changes nothing but
    memory and time.
    """
    import botocore.loaders

    loaders: dict = {}
    lock = threading.Lock()

    def shared(session):
        path = session.get_config_variable("data_path")
        with lock:
            if path not in loaders:
                loaders[path] = botocore.loaders.create_loader(path)
            return loaders[path]

    def _register_data_loader(self):
        self._components.lazy_register_component("data_loader", lambda: shared(self))

    return seams.patch("botocore.session:Session._register_data_loader", _register_data_loader)


def isolate_metrics() -> Callable[[], None]:
    """Give every thread (every environment) its own powertools metrics; returns the undo.

    powertools keeps metrics in dicts shared by all `Metrics` instances of a process, which is one
    environment on Lambda. Here environments share the process: one invocation's flush would emit
    or clear another's metrics, or fail with "Must contain at least one metric".
    """
    from aws_lambda_powertools.metrics import Metrics
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    if isinstance(Metrics.__dict__.get("provider"), property):
        return lambda: None
    per_thread = threading.local()

    def get(self):
        providers = per_thread.__dict__.setdefault("providers", {})
        provider = providers.get(id(self))
        if provider is None:
            blueprint = self.__dict__["provider"]  # what __init__ made (shadowed by this property)
            defaults = dict(blueprint.default_dimensions)
            provider = providers[id(self)] = AmazonCloudWatchEMFProvider(
                namespace=blueprint.namespace, service=blueprint.service, metric_set={},
                dimension_set={k: str(v) for k, v in defaults.items()}, metadata_set={},
                default_dimensions=defaults, function_name=blueprint.function_name)
        return provider

    def set_(self, provider):
        self.__dict__["provider"] = provider

    return seams.patch("aws_lambda_powertools.metrics:Metrics.provider", property(get, set_))


ROUTER_REQUEST_STATE = ("current_event", "lambda_context")


def isolate_router_requests() -> Callable[[], None]:
    """Make powertools' current request per thread (per environment); returns the undo.

    `ApiGatewayResolver.resolve` stores the request on the class (`BaseRouter.current_event = ...`,
    and `lambda_context`), which is one environment's on Lambda. Here environments share the process,
    so two API invocations at once would route, authorise and answer one request with the other's
    event: another user's balance, or a false 402. A data descriptor on the metaclass catches the
    class-level writes and reads, and one on the class the instance reads; both keep the value per
    thread.
    """
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    if type(BaseRouter).__name__ == "PerThreadRouterState":
        return lambda: None
    per_thread = threading.local()

    def per_thread_attribute(name: str) -> property:
        def get(_owner):
            try:
                return per_thread.__dict__[name]
            except KeyError:
                raise AttributeError(name) from None

        def set_(_owner, value):
            per_thread.__dict__[name] = value

        return property(get, set_)

    owner = "aws_lambda_powertools.event_handler.api_gateway:BaseRouter"
    return seams.patch_all({
        **{f"{owner}.{name}": per_thread_attribute(name) for name in ROUTER_REQUEST_STATE},
        f"{owner}.__class__": type("PerThreadRouterState", (type(BaseRouter),),
                                   {name: per_thread_attribute(name) for name in ROUTER_REQUEST_STATE}),
    })


class Function:
    """One emulated function: a pool of execution environments, as Lambda keeps them.

    An environment runs one invocation at a time and has its own instance of the handler module
    (`factory(n)` creates environment n's handler). More concurrent invocations get more
    environments, up to `concurrency`. A function with a reservation (the template's
    ReservedConcurrentExecutions) is throttled past it: the invocation waits for a free environment
    for up to its timeout, then is answered TooManyRequestsException, which the workflow's retriers
    absorb. A function without one would scale out on Lambda (the account's 1,000) and is never
    throttled here: past DEFAULT_CONCURRENCY environments (the cores of this one process are the limit,
    not Lambda) the invocation waits for one, however long (the local API front stops waiting at API
    Gateway's integration timeout and answers 503, local/front.py; the invocation still runs, as on AWS).
    An invocation that runs past the function's
    Timeout is answered with Lambda's timeout error and its environment is thrown away (Python cannot
    kill the thread: it finishes in the background, unseen).
    """

    def __init__(self, name: str, factory: Callable[[int], Handler], *, timeout: int = 30, memory: int = 512,
                 concurrency: int = DEFAULT_CONCURRENCY, reserved: bool = False):
        self.name = name
        self.factory = factory
        self.timeout = timeout
        self.memory = memory
        self.concurrency = concurrency
        self.reserved = reserved
        self.waited_for_environment = 0  # invocations of an unreserved function that waited for one
        self._slots = threading.BoundedSemaphore(concurrency)
        self._idle: list[tuple[float, Environment]] = []  # (last used, environment), newest last
        self._lock = threading.Lock()
        self.environments_created = 0

    def _environment(self) -> Environment:
        with self._lock:
            if self._idle:
                return self._idle.pop()[1]
            self.environments_created += 1
            number = self.environments_created
        return Environment(self.name, self.factory, number)

    def warm(self) -> None:
        """Create one environment now (the stack does this for every function before it is ready)."""
        with self._lock:
            if self._idle:
                return
        environment = self._environment()
        environment.initialised.wait(self.timeout)
        self._release(environment)

    def _release(self, environment: Environment) -> None:
        """Back to the pool; environments idle for IDLE_SECONDS are reclaimed, as Lambda does."""
        now = time.monotonic()
        with self._lock:
            self._idle.append((now, environment))
            stale = [env for used, env in self._idle if now - used > IDLE_SECONDS]
            self._idle = [(used, env) for used, env in self._idle if now - used <= IDLE_SECONDS]
        for env in stale:
            env.retire()

    def invoke(self, event, arn: str) -> tuple[str, bool]:
        if not self._slots.acquire(blocking=False):
            if self.reserved:
                if not self._slots.acquire(timeout=self.timeout):
                    return _error_payload("TooManyRequestsException", "Rate Exceeded."), True
            else:
                with self._lock:
                    self.waited_for_environment += 1
                self._slots.acquire()
        try:
            environment = self._environment()
            context = LambdaContext(self.name, self.timeout, self.memory, invoked_function_arn=arn)
            outcome = environment.run(event, context, self.timeout)
            if outcome is None:
                environment.retire()
                logging.getLogger("local.lambda").warning("%s timed out after %s s", self.name, self.timeout)
                return _error_payload("Sandbox.Timedout", f"Task timed out after {self.timeout:.2f} seconds"), True
            self._release(environment)
            return outcome["payload"], outcome["errored"]
        finally:
            self._slots.release()


class Router:
    """Maps moto function names to their pools of in-process environments; records invocations."""

    def __init__(self):
        self.routes: dict[str, Function] = {}
        self.invocations: deque[tuple[str, dict, bool]] = deque(maxlen=INVOCATIONS_KEPT)

    def add(self, function_name: str, factory: Callable[[int], Handler], *, timeout: int = 30, memory: int = 512,
            concurrency: int | None = None) -> Function:
        function = Function(function_name, factory, timeout=timeout, memory=memory,
                            concurrency=concurrency or DEFAULT_CONCURRENCY, reserved=bool(concurrency))
        self.routes[function_name] = function
        return function

    def invoke(self, function_name: str, arn: str, event) -> tuple[str, bool, str]:
        function = self.routes.get(function_name)
        if function is None:
            return _error_payload("ResourceNotFound", f"no handler for {function_name}"), True, ""
        if isinstance(event, (str, bytes)):
            event = json.loads(event or "{}")
        payload, errored = function.invoke(event, arn)
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

    undo_invoke = seams.patch("moto.awslambda.models:LambdaFunction._invoke_lambda", _invoke_lambda)
    undo_metrics = isolate_metrics()
    undo_router = isolate_router_requests()
    undo_models = share_botocore_models()

    def uninstall() -> None:
        undo_invoke()
        undo_metrics()
        undo_router()
        undo_models()

    return uninstall


@contextlib.contextmanager
def scaled_waits(scale: float):
    """moto's Wait states and Retry intervals sleep for real; scale them (0.01 makes 10 s take 0.1 s)."""
    def _wait_interval(self, env, wait_seconds):
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * scale)

    class _ScaledTime:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            time.sleep(seconds * scale)

    wait = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function:WaitFunction"
    undo = seams.patch_all({
        f"{wait}._wait_interval": _wait_interval,
        "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl:time": _ScaledTime(),
        # The poll step's pause between provider polls (inside one invocation) is a wait too.
        "aigc.flows.workflow:SLEEP": _ScaledTime.sleep,
    })
    try:
        yield
    finally:
        undo()
