"""Every place the local stack reaches into moto, botocore or powertools, in one registry.

The local stack emulates what moto lacks (Lambda in process, redrive, atomic DynamoDB, presigned
POST policies, ...) by replacing a few private methods of the libraries. Each such target is a
`Seam` here: the attributes it replaces (`module:Qualified.name`), the function that replaces them
(`used_by`), and a `check` that the target is still what the replacement was written against (it
exists, has the expected signature, its source still does what the replacement relies on).

- `patch(target, value)` is the only way a local module replaces a library attribute: it refuses a
  target that is not registered here, so a new patch cannot skip its check. It returns the undo.
- tests/workflow/test_moto_seams.py runs every seam's check (parametrised over `SEAMS`) and fails if a
  module under local/ assigns to a library attribute without going through `patch`.
- Seams with `reads` only (no targets) are internals the stack reads without replacing them.

Targets are resolved by name when patched or checked, so importing this module imports no library.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Seam:
    name: str
    used_by: str  # "local.module:function" that installs the replacement (or reads the internals)
    check: Callable[[], None]  # raises AssertionError when the target no longer fits
    targets: tuple[str, ...] = ()  # "module:Owner.attribute" replaced by `patch`
    adds: tuple[str, ...] = ()  # targets the library lacks (the patch adds them); the check says so
    reads: str = ""  # what is read without being replaced, for seams with no targets
    why: str = field(default="", compare=False)


SEAMS: dict[str, Seam] = {}
_BY_TARGET: dict[str, Seam] = {}


def seam(name: str, *, used_by: str, targets: tuple[str, ...] = (), adds: tuple[str, ...] = (), reads: str = "",
         why: str = "") -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated function as the check of a seam."""

    def register(check: Callable[[], None]) -> Callable[[], None]:
        assert name not in SEAMS, f"seam {name!r} registered twice"
        assert targets or adds or reads, f"seam {name!r} names neither targets nor what it reads"
        entry = Seam(name, used_by, check, tuple(targets), tuple(adds), reads, why)
        SEAMS[name] = entry
        for target in (*targets, *adds):
            assert target not in _BY_TARGET, f"{target} registered by {_BY_TARGET[target].name} and {name}"
            _BY_TARGET[target] = entry
        return check

    return register


# ------------------------------------------------------------------------------ resolving and patching
def resolve(path: str) -> Any:
    """The object at "module:Qualified.name" (or the module itself for "module")."""
    module_name, _, qualified = path.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in filter(None, qualified.split(".")):
        value = getattr(value, part)
    return value


def _owner(target: str) -> tuple[Any, str]:
    module_name, _, qualified = target.partition(":")
    owner_path, _, attribute = qualified.rpartition(".")
    return resolve(f"{module_name}:{owner_path}"), attribute


def patch(target: str, value: Any) -> Callable[[], None]:
    """Set the registered `target` to `value`; returns the function that puts back what was there."""
    entry = _BY_TARGET.get(target)
    if entry is None:
        raise LookupError(f"{target} is not a registered seam: register it in local/seams.py with its check")
    owner, attribute = _owner(target)
    if target not in entry.adds and not hasattr(owner, attribute):
        raise AttributeError(f"{target} is gone (seam {entry.name!r}); run tests/workflow/test_moto_seams.py")
    own = attribute in vars(owner) or attribute == "__class__"
    before = getattr(owner, attribute) if attribute == "__class__" else vars(owner).get(attribute)
    setattr(owner, attribute, value)

    def undo() -> None:
        if own:
            setattr(owner, attribute, before)
        elif attribute in vars(owner):
            delattr(owner, attribute)

    return undo


def patch_all(replacements: dict[str, Any]) -> Callable[[], None]:
    """Several targets at once, undone in reverse order."""
    undos = [patch(target, value) for target, value in replacements.items()]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


# ------------------------------------------------------------------------------ check helpers
def parameters(path: str) -> list[str]:
    return list(inspect.signature(resolve(path)).parameters)


def source(path: str) -> str:
    return inspect.getsource(resolve(path))


def _has(path: str, *markers: str) -> None:
    text = source(path)
    for marker in markers:
        assert marker in text, f"{path} no longer contains {marker!r}"


# ------------------------------------------------------------------------------ moto: Lambda, Step Functions
_WAIT = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_RETRY = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"


@seam("lambda-invoke", used_by="local.lambda_runtime:install_router",
      targets=("moto.awslambda.models:LambdaFunction._invoke_lambda",),
      why="every Lambda invocation (Step Functions, S3 notifications, Invoke) runs the real handler in process")
def _lambda_invoke() -> None:
    assert parameters("moto.awslambda.models:LambdaFunction._invoke_lambda") == ["self", "event"]


@seam("sfn-wait", used_by="local.lambda_runtime:scaled_waits",
      targets=(f"{_WAIT}:WaitFunction._wait_interval", f"{_RETRY}:time", "aigc.flows.workflow:SLEEP"),
      why="Wait states, Retry intervals and the poll step's pause are scaled in tests")
def _sfn_wait() -> None:
    assert parameters(f"{_WAIT}:WaitFunction._wait_interval") == ["self", "env", "wait_seconds"]
    assert callable(resolve(f"{_RETRY}:time").sleep)
    _has(_RETRY, "import time", "time.sleep(")
    assert callable(resolve("aigc.flows.workflow:SLEEP"))


@seam("sfn-stop", used_by="local.sfn_stop:install",
      targets=("moto.stepfunctions.parser.asl.eval.environment:Environment.set_error",
               "moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker.stop"),
      why="StopExecution is final and works however young the execution is")
def _sfn_stop() -> None:
    _has("moto.stepfunctions.parser.asl.eval.environment:Environment.set_error",
         "self._program_state = ProgramError(error=error)", "_state_mutex")
    _has("moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker.stop", "self.env.set_stop(")
    _has("moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker._execution_logic",
         "self.env = self._get_evaluation_environment()")


@seam("sfn-reuse", used_by="local.sfn_reuse:install",
      targets=("moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker._get_evaluation_entrypoint",
               "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils:boto_client_for"),
      why="executions share the parsed definition and the Lambda client instead of rebuilding them each time")
def _sfn_reuse() -> None:
    worker = "moto.stepfunctions.parser.backend.execution_worker:ExecutionWorker"
    _has(f"{worker}._get_evaluation_entrypoint", "AmazonStateLanguageParser.parse(",
         "self._evaluation_details.state_machine_details.definition")
    _has(f"{worker}._execution_logic", "program = self._get_evaluation_entrypoint()")
    utils = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
    assert parameters(f"{utils}:boto_client_for") == ["region", "service", "state_credentials"]
    _has(utils, "boto_client_for(")
    # the one attribute a component sets on itself after parsing (local.sfn_reuse settles it before sharing)
    _has("moto.stepfunctions.parser.asl.component.eval_component:EvalComponent", "self.__heap_key = long_uid()")


_PARSER = "moto.stepfunctions.parser"


@seam("sfn-redrive", used_by="local.sfn_redrive:install",
      targets=("moto.stepfunctions.parser.models:StepFunctionsParserBackend.list_executions",
               "moto.stepfunctions.responses:StepFunctionResponse.describe_execution",
               "moto.stepfunctions.responses:StepFunctionResponse.list_executions"),
      adds=("moto.stepfunctions.parser.models:StepFunctionsParserBackend.redrive_execution",
            "moto.stepfunctions.responses:StepFunctionResponse.redrive_execution"),
      why="RedriveExecution (moto answers 500) continues a stopped run with the interpreter's internals")
def _sfn_redrive() -> None:
    responses = resolve("moto.stepfunctions.responses:StepFunctionResponse")
    assert not hasattr(responses, "redrive_execution"), "moto implements RedriveExecution now: drop local/sfn_redrive.py"
    assert callable(responses.describe_execution) and callable(responses.list_executions)
    worker = f"{_PARSER}.backend.execution_worker:ExecutionWorker"
    assert parameters(f"{worker}.__init__")[:5] == [
        "self", "evaluation_details", "exec_comm", "cloud_watch_logging_session", "activity_store"]
    for name in ("_get_evaluation_entrypoint", "_get_evaluation_environment", "_execution_logic", "start"):
        assert callable(resolve(f"{worker}.{name}"))
    _has(f"{worker}.__init__", "_evaluation_details")
    _has(f"{_PARSER}.backend.execution:Execution.__init__", "self._cloud_watch_logging_session",
         "self._activity_store", "self.exec_worker", "self.stop_date", "self.input_data")
    assert callable(resolve(f"{_PARSER}.backend.execution:Execution._get_start_execution_worker_comm"))
    program = resolve(f"{_PARSER}.asl.component.program.program:Program")
    assert {"start_at", "states", "timeout_seconds"} <= set(program.__annotations__)
    _has(f"{_PARSER}.asl.component.program.program:Program.eval", "env.next_state_name = self.start_at.start_at_name")
    assert parameters(f"{_PARSER}.asl.eval.event.event_manager:EventHistoryContext.__init__") == [
        "self", "previous_event_id"]
    assert callable(resolve(f"{_PARSER}.asl.eval.event.event_manager:EventManager.get_event_history"))
    assert "event_manager" in resolve(f"{_PARSER}.asl.eval.environment:Environment").__annotations__
    assert resolve(f"{_PARSER}.api:HistoryEventType").ExecutionRedriven
    assert callable(resolve(f"{_PARSER}.models:StepFunctionsParserBackend.list_executions"))


# ------------------------------------------------------------------------------ moto: DynamoDB, S3, memory
@seam("dynamodb-serialised", used_by="local.moto_dynamodb:install",
      targets=("moto.dynamodb.responses:DynamoHandler.call_action",),
      why="one DynamoDB request at a time, as DynamoDB makes each request atomic and isolated")
def _dynamodb_serialised() -> None:
    assert parameters("moto.dynamodb.responses:DynamoHandler.call_action") == ["self"]
    text = source("moto.dynamodb.responses:DynamoHandler")
    for action in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query"):
        assert f"self.dynamodb_backend.{action}(" in text, action


@seam("dynamodb-undo-log", used_by="local.moto_dynamodb:install",
      targets=("moto.dynamodb.models:DynamoDBBackend.transact_write_items", "moto.dynamodb.models:copy"),
      why="a failed transaction is undone from a log of its items, not from copies of whole tables")
def _dynamodb_undo_log() -> None:
    _has("moto.dynamodb.models:DynamoDBBackend.transact_write_items", "copy.deepcopy(\n                    self.tables[table_name]",
         "self.tables[table_name] = original_table_state[table_name]")
    assert callable(resolve("moto.dynamodb.models:copy").deepcopy)
    _has("moto.dynamodb.models.table:Table.put_item", "self.items[hash_value][range_value] = item")


@seam("dynamodb-stream-shard", used_by="local.queues:EventSourceMappings._pump_stream",
      reads="moto.dynamodb.models.table:StreamShard (the records of a table's stream, in this process)")
def _dynamodb_stream_shard() -> None:
    assert parameters("moto.dynamodb.models.table:StreamShard.get") == ["self", "start", "quantity"]
    assert "starting_sequence_number" in resolve("moto.dynamodb.models.table:StreamShard.__init__").__code__.co_names
    assert callable(resolve("moto.dynamodb.models.table:Table").__dict__.get("stream_shard") or (lambda: None))


@seam("moto-in-process", used_by="local.moto_inprocess:install",
      reads="botocore.handlers:BUILTIN_HANDLERS (a before-send handler) and ThreadedMotoServer's WSGI app",
      why="the handlers' DynamoDB and Step Functions calls skip the localhost HTTP round trip")
def _moto_in_process() -> None:
    assert isinstance(resolve("botocore.handlers:BUILTIN_HANDLERS"), list)
    _has("botocore.session:Session._register_builtin_handlers", "BUILTIN_HANDLERS")
    _has("moto.moto_server.werkzeug_app:DomainDispatcherApplication.__call__", "self.get_application(environ)")
    _has("moto.moto_server.threaded_moto_server:ThreadedMotoServer._server_entry",
         "app = DomainDispatcherApplication(create_backend_app)", "self._server = make_server(")
    _has("botocore.endpoint:Endpoint._do_get_response", "before-send", "first_non_none_response(responses)")


@seam("dynamodb-answers-json", used_by="local.moto_dynamodb_results:install",
      adds=("moto.dynamodb.responses:DynamoResult.execute_result",),
      why="DynamoDB answers (already in wire form) are written with json.dumps, not moto's shape walker")
def _dynamodb_answers_json() -> None:
    _has("moto.dynamodb.responses:DynamoResult", "dynamo_to_dict(result)", "super().__init__(transformed_result)")
    assert "execute_result" not in vars(resolve("moto.dynamodb.responses:DynamoResult"))  # inherited: we add it
    _has("moto.core.responses:ActionResult.execute_result", "serializer.serialize(self.result)")
    _has("moto.core.responses:BaseResponse.serialized", "action_result.execute_result(context)")


@seam("moto-model-tracking", used_by="local.moto_memory:install",
      targets=("moto.core.common_models:BaseModel.__new__",),
      why="moto's tracker of every model it ever created is switched off (memory follows the data)")
def _moto_model_tracking() -> None:
    _has("moto.core.common_models:BaseModel.__new__", "instances_tracked.append(instance)")
    assert callable(resolve("moto.core.model_instances:reset_model_data"))


@seam("s3-event-version", used_by="local.s3_events:install",
      targets=("moto.s3.notifications:_get_s3_event",),
      why="S3 notifications name the object's version (and a sequencer) as S3 does for a versioned bucket")
def _s3_event_version() -> None:
    target = "moto.s3.notifications:_get_s3_event"
    assert parameters(target) == ["event_name", "bucket", "key", "notification_id"]
    _has(target, '"object": {"key": key_name')
    _has("moto.s3.notifications:send_event", "_get_s3_event(event_name, bucket, key, notification.id)")
    assert isinstance(resolve("moto.s3.models:FakeBucket").is_versioned, property)


@seam("s3-post-policy", used_by="local.s3_post_policy:install",
      targets=("moto.s3.responses:S3Response._bucket_response_post",),
      why="a browser-style POST upload is checked against its signed policy, as S3 does (moto checks nothing)")
def _s3_post_policy() -> None:
    target = "moto.s3.responses:S3Response._bucket_response_post"
    assert parameters(target) == ["self", "request", "bucket_name"]
    _has(target, "self.is_delete_keys()", 'key = self.querystring["key"][0]', "f = self.body",
         "self.backend.put_object(", "metadata_from_headers(self.form_data)")
    _has("moto.s3.responses:S3Response.bucket_response", "self.setup_class(request)", "self._bucket_response(")
    _has("moto.core.responses:BaseResponse.setup_class", "self.form_data = request.form")


# ------------------------------------------------------------------------------ botocore, powertools
@seam("botocore-api-call", used_by="local.faults:install",
      targets=("botocore.client:BaseClient._make_api_call",),
      why="the fault switch answers errors for chosen AWS calls of this process")
def _botocore_api_call() -> None:
    assert parameters("botocore.client:BaseClient._make_api_call") == ["self", "operation_name", "api_params"]


@seam("botocore-data-loader", used_by="local.lambda_runtime:share_botocore_models",
      targets=("botocore.session:Session._register_data_loader",),
      why="one botocore data loader (service models) for every session of the process")
def _botocore_data_loader() -> None:
    _has("botocore.session:Session._register_data_loader", "'data_loader'", "create_loader")


@seam("powertools-metrics", used_by="local.lambda_runtime:isolate_metrics",
      adds=("aws_lambda_powertools.metrics:Metrics.provider",),
      why="each emulated environment (thread) keeps its own metrics")
def _powertools_metrics() -> None:
    _has("aws_lambda_powertools.metrics:Metrics", "self.provider = AmazonCloudWatchEMFProvider(",
         "self.provider.flush_metrics(")


@seam("powertools-router-request", used_by="local.lambda_runtime:isolate_router_requests",
      targets=("aws_lambda_powertools.event_handler.api_gateway:BaseRouter.__class__",),
      adds=("aws_lambda_powertools.event_handler.api_gateway:BaseRouter.current_event",
            "aws_lambda_powertools.event_handler.api_gateway:BaseRouter.lambda_context"),
      why="the request powertools keeps on its class is per environment (thread)")
def _powertools_router_request() -> None:
    _has("aws_lambda_powertools.event_handler.api_gateway:ApiGatewayResolver.resolve",
         "BaseRouter.current_event = ", "BaseRouter.lambda_context = context")
