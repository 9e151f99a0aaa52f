"""Step Functions executions reuse what moto builds again for every one: the parsed definition and the
Lambda client.

moto parses a state machine's definition with its ANTLR grammar at the start of every execution
(`ExecutionWorker._get_evaluation_entrypoint`), and creates a new boto3 client for every Lambda task
(`boto_client_for`). Measured on the local stack (py-spy, 40 submits): each took about 15 % of the
process's CPU, a third of a submit's cost between them. Both are pure functions of their inputs:

- The parsed program is a tree of evaluation components that keep nothing of an execution on
  themselves (everything lives in the execution's Environment; the one lazily set attribute,
  `heap_key`, is set on every component here before the tree is shared, so two executions never race
  to set it). It is cached per definition text.
- The Lambda client is cached per region, endpoint and interception mode (moto ignores the state's
  credentials); botocore clients are safe to share between threads.

local/seams.py registers both targets; tests/workflow/test_moto_seams.py fails if moto changes them.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

from local import seams

_LAMBDA_UTILS = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
_WORKER = "moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker"
CLIENT_POOL_CONNECTIONS = 64  # Lambda tasks of concurrent executions share the client's connections


def _settle_heap_keys(component: Any, seen: set[int]) -> None:
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    if id(component) in seen:
        return
    seen.add(id(component))
    if isinstance(component, EvalComponent):
        component.heap_key  # noqa: B018 (assigned on first read; read now, before the tree is shared)
    children = vars(component).values() if hasattr(component, "__dict__") else ()
    for child in children:
        if isinstance(child, (list, tuple)):
            for item in child:
                _settle_heap_keys(item, seen)
        elif isinstance(child, dict):
            for item in child.values():
                _settle_heap_keys(item, seen)
        elif hasattr(child, "__dict__") and type(child).__module__.startswith("moto.stepfunctions.parser.asl"):
            _settle_heap_keys(child, seen)


_PARSE_LOCK = threading.Lock()  # executions that start together wait for the one parse


@functools.lru_cache(maxsize=32)
def _parse(definition: str):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    program = AmazonStateLanguageParser.parse(definition)[0]
    _settle_heap_keys(program, set())
    return program


def parsed_program(definition: str):
    with _PARSE_LOCK:
        return _parse(definition)


def _entrypoint(self):
    return parsed_program(self._evaluation_details.state_machine_details.definition)


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _shared_client(region: str, service: str, state_credentials: Any = None):
    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    intercepting = botocore_stubber.enabled
    endpoint = None if intercepting else f"http://localhost:{moto_server_port()}"
    key = (region, service, endpoint)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = boto3.client(
                service_name=service, region_name=region, aws_access_key_id="ak", aws_secret_access_key="sk",
                endpoint_url=endpoint,
                config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                              connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                              read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                              max_pool_connections=CLIENT_POOL_CONNECTIONS))
        return client


def install() -> Callable[[], None]:
    """Share parsed definitions and Lambda clients between executions; returns the undo."""
    undo = seams.patch_all({
        f"{_WORKER}._get_evaluation_entrypoint": _entrypoint,
        f"{_LAMBDA_UTILS}:boto_client_for": _shared_client,
    })

    def uninstall() -> None:
        undo()
        with _CLIENTS_LOCK:
            _CLIENTS.clear()
        _parse.cache_clear()

    return uninstall
