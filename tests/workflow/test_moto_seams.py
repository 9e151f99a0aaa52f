"""The private moto methods the local stack and these tests replace. If a moto upgrade renames
them, these fail first (moto is pinned in requirements-dev.txt)."""
import inspect

import moto
import pytest
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction


def test_lambda_invocation_seam_exists():
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]


def test_wait_and_retry_seams_exist():
    assert list(inspect.signature(WaitFunction._wait_interval).parameters) == ["self", "env", "wait_seconds"]
    assert retrier_decl.time.sleep


def test_stream_shard_seam_exists():
    """local/queues.py reads a table's stream records from the table's StreamShard."""
    from moto.dynamodb.models.table import StreamShard

    assert list(inspect.signature(StreamShard.get).parameters) == ["self", "start", "quantity"]
    assert isinstance(StreamShard.__init__.__code__.co_names, tuple) and "starting_sequence_number" in \
        StreamShard.__init__.__code__.co_names


def test_moto_is_the_pinned_version():
    assert moto.__version__ == "5.2.5"


def test_redrive_seams_exist():
    """local/sfn_redrive.py continues a stopped run with these interpreter internals."""
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext, EventManager
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    from local import sfn_redrive

    assert not sfn_redrive.MOTO_HAS_REDRIVE, "moto implements RedriveExecution now: drop local/sfn_redrive.py"
    assert list(inspect.signature(ExecutionWorker.__init__).parameters)[:5] == [
        "self", "evaluation_details", "exec_comm", "cloud_watch_logging_session", "activity_store"]
    for name in ("_get_evaluation_entrypoint", "_get_evaluation_environment", "_execution_logic", "start"):
        assert callable(getattr(ExecutionWorker, name))
    assert "_evaluation_details" in inspect.getsource(ExecutionWorker.__init__)
    source = inspect.getsource(Execution.__init__)
    for attribute in ("self._cloud_watch_logging_session", "self._activity_store", "self.exec_worker",
                      "self.stop_date", "self.input_data"):
        assert attribute in source
    assert callable(Execution._get_start_execution_worker_comm)
    assert {"start_at", "states", "timeout_seconds"} <= set(Program.__annotations__)
    assert "env.next_state_name = self.start_at.start_at_name" in inspect.getsource(Program.eval)
    assert list(inspect.signature(EventHistoryContext.__init__).parameters) == ["self", "previous_event_id"]
    assert callable(EventManager.get_event_history) and "event_manager" in Environment.__annotations__
    assert HistoryEventType.ExecutionRedriven


def test_redrive_resumes_at_the_failed_state_of_a_minimal_machine():
    """The same seam on a two-state machine, without the application: a Choice that fails on the first
    run and matches on a redrive ($$.Execution.RedriveCount, as in AWS's context object; moto's first
    run has no such field)."""
    import json
    import time

    import boto3
    from moto import mock_aws

    from local import sfn_redrive

    definition = {"StartAt": "Once", "States": {
        "Once": {"Type": "Pass", "Result": "ran", "ResultPath": "$.once", "Next": "Gate"},
        "Gate": {"Type": "Choice", "Choices": [
            {"Variable": "$$.Execution.RedriveCount", "IsPresent": True, "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        uninstall = sfn_redrive.install()
        try:
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            machine = sfn.create_state_machine(name="m", definition=json.dumps(definition),
                                               roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
            arn = sfn.start_execution(stateMachineArn=machine, name="e1", input='{"k": 1}')["executionArn"]

            def settled():
                for _ in range(200):
                    described = sfn.describe_execution(executionArn=arn)
                    if described["status"] != "RUNNING":
                        return described
                    time.sleep(0.02)
                raise AssertionError("still running")

            assert settled()["status"] == "FAILED"
            sfn.redrive_execution(executionArn=arn)
            done = settled()
            assert done["status"] == "SUCCEEDED" and done["redriveCount"] == 1
            assert json.loads(done["output"]) == {"k": 1, "once": "ran"}
            names = [e["stateEnteredEventDetails"]["name"] for e in sfn.get_execution_history(
                executionArn=arn)["events"] if "stateEnteredEventDetails" in e]
            assert names == ["Once", "Gate", "Gate", "Done"]
        finally:
            uninstall()


def test_fault_switch_seam_exists():
    """local/faults.py wraps the one method every botocore client call goes through."""
    from botocore.client import BaseClient

    assert list(inspect.signature(BaseClient._make_api_call).parameters) == ["self", "operation_name", "api_params"]


def test_dynamodb_request_seam_exists():
    """local/moto_dynamodb.py serialises every DynamoDB request at this one method; the writes and
    transactions must still reach the backend from inside it."""
    from moto.dynamodb.responses import DynamoHandler

    assert list(inspect.signature(DynamoHandler.call_action).parameters) == ["self"]
    source = inspect.getsource(DynamoHandler)
    for action in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query"):
        assert f"self.dynamodb_backend.{action}(" in source, action


# ------------------------------------------------------------------ moto's own transactions

def _interleaved_write_during_failed_transaction() -> bool:
    """Thread A runs a transaction whose ConditionCheck fails; while A is inside it, thread B puts an
    unrelated item. Returns whether B's item survived (DynamoDB: always)."""
    import threading

    import boto3
    from moto import mock_aws
    from moto.dynamodb.models import DynamoDBBackend

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        inside, written = threading.Event(), threading.Event()
        original_get_item = DynamoDBBackend.get_item

        def get_item(self, table_name, keys, *args, **kwargs):
            if "probe" in str(keys) and not inside.is_set():
                inside.set()
                written.wait(1.0)  # give B its chance to write while A is mid-transaction
            return original_get_item(self, table_name, keys, *args, **kwargs)

        def writer():
            inside.wait(5)
            client.put_item(TableName="t", Item={"pk": {"S": "b"}})
            written.set()

        DynamoDBBackend.get_item = get_item
        try:
            thread = threading.Thread(target=writer)
            thread.start()
            try:
                client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}},
                    {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "probe"}},
                                        "ConditionExpression": "attribute_exists(pk)"}},
                ])
            except client.exceptions.TransactionCanceledException:
                pass
            thread.join(10)
        finally:
            DynamoDBBackend.get_item = original_get_item
        survived = "Item" in client.get_item(TableName="t", Key={"pk": {"S": "b"}})
        assert "Item" not in client.get_item(TableName="t", Key={"pk": {"S": "a"}})  # A rolled back
        return survived


@pytest.mark.xfail(strict=True, reason="moto 5.2.5: a failed transaction restores a copy of the table, "
                                       "erasing writes made meanwhile; local/moto_dynamodb.py works around it")
def test_moto_alone_keeps_writes_made_during_a_failed_transaction():
    assert _interleaved_write_during_failed_transaction()


def test_serialised_dynamodb_keeps_writes_made_during_a_failed_transaction():
    from local import moto_dynamodb

    uninstall = moto_dynamodb.install()
    try:
        assert _interleaved_write_during_failed_transaction()
    finally:
        uninstall()


def test_botocore_data_loader_seam_exists():
    """local/lambda_runtime.share_botocore_models replaces how a session registers its loader."""
    import botocore.session

    source = inspect.getsource(botocore.session.Session._register_data_loader)
    assert "'data_loader'" in source and "create_loader" in source


def test_powertools_metrics_seam_exists():
    """local/lambda_runtime.isolate_metrics makes `Metrics.provider` per thread."""
    from aws_lambda_powertools.metrics import Metrics

    source = inspect.getsource(Metrics)
    assert "self.provider = AmazonCloudWatchEMFProvider(" in source and "self.provider.flush_metrics(" in source


def test_powertools_router_request_seam_exists():
    """local/lambda_runtime.isolate_router_requests makes the class-level request per thread."""
    from aws_lambda_powertools.event_handler import api_gateway

    source = inspect.getsource(api_gateway.ApiGatewayResolver.resolve)
    assert "BaseRouter.current_event = " in source and "BaseRouter.lambda_context = context" in source


def test_dynamodb_transaction_rollback_seam_exists():
    """local/moto_dynamodb.py turns moto's table copies into an undo log of the items named: moto must
    still back up by `copy.deepcopy` of the table and roll back by putting the backups in place."""
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    source = inspect.getsource(DynamoDBBackend.transact_write_items)
    assert "copy.deepcopy(\n                    self.tables[table_name]" in source
    assert "self.tables[table_name] = original_table_state[table_name]" in source
    assert dynamodb_models.copy.__name__ == "copy" or hasattr(dynamodb_models.copy, "deepcopy")
    assert "self.items[hash_value][range_value] = item" in inspect.getsource(Table.put_item)


def test_a_failed_transaction_leaves_items_and_stream_as_they_were():
    """The undo log restores what moto's table copies restored: updated, inserted and deleted items,
    and the stream records the failed transaction wrote; a successful one commits."""
    import boto3
    from moto import mock_aws

    from local import moto_dynamodb

    uninstall = moto_dynamodb.install()
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName="t", BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
            key = {"pk": {"S": "u"}, "sk": {"S": "balance"}}
            client.put_item(TableName="t", Item={**key, "n": {"N": "10"}})
            client.put_item(TableName="t", Item={"pk": {"S": "u"}, "sk": {"S": "old"}})

            def snapshot():
                from moto.core import DEFAULT_ACCOUNT_ID
                from moto.dynamodb.models import dynamodb_backends

                stream = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard.items
                return sorted(map(str, client.scan(TableName="t")["Items"])), [r.record["eventName"] for r in stream]

            before = snapshot()
            with pytest.raises(client.exceptions.TransactionCanceledException):
                client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET n = n - :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "u"}, "sk": {"S": "new"}}}},
                    {"Delete": {"TableName": "t", "Key": {"pk": {"S": "u"}, "sk": {"S": "old"}}}},
                    {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "u"}, "sk": {"S": "missing"}},
                                        "ConditionExpression": "attribute_exists(pk)"}},
                ])
            assert snapshot() == before

            client.transact_write_items(TransactItems=[
                {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET n = n - :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "u"}, "sk": {"S": "new"}}}},
            ])
            assert client.get_item(TableName="t", Key=key)["Item"]["n"] == {"N": "9"}
            assert snapshot()[1] == before[1] + ["MODIFY", "INSERT"]
    finally:
        uninstall()


def test_moto_model_tracking_seam_exists():
    """local/moto_memory.py replaces `BaseModel.__new__`, which keeps every model moto creates."""
    from moto.core.common_models import BaseModel

    assert "instances_tracked.append(instance)" in inspect.getsource(BaseModel.__new__)


def test_untracked_models_are_created_as_moto_creates_them_and_not_kept():
    import gc
    import weakref

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from local import moto_memory

    uninstall = moto_memory.install()
    try:
        item = Item(DynamoType({"S": "k"}), None, {"pk": {"S": "k"}, "n": {"N": "1"}})
        assert item.attrs["n"].value == "1" and isinstance(item, Item)
        assert item not in Item.instances_tracked
        gone = weakref.ref(item)
        del item
        gc.collect()
        assert gone() is None
    finally:
        uninstall()
    assert Item(DynamoType({"S": "k"}), None, {"pk": {"S": "k"}}) in Item.instances_tracked  # moto's own again


def test_stop_execution_seam_exists():
    """local/sfn_stop.py wraps `Environment.set_error`, which overwrites any program state."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    source = inspect.getsource(Environment.set_error)
    assert "self._program_state = ProgramError(error=error)" in source and "_state_mutex" in source


def test_an_error_after_a_stop_leaves_the_execution_stopped():
    import threading

    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramRunning, ProgramStopped

    from local import sfn_stop

    def environment() -> Environment:  # only what the state setters use
        env = object.__new__(Environment)
        env._state_mutex, env._frames, env.program_state_event = threading.RLock(), [], threading.Event()
        env._program_state = ProgramRunning()
        return env

    failure = {"error": "States.Runtime", "cause": "'dict' object has no attribute 'region'"}
    uninstall = sfn_stop.install()
    try:
        stopped = environment()
        stopped.set_stop(stop_date=None, cause="cancelled by the user", error=None)
        stopped.set_error(failure)
        assert isinstance(stopped.program_state(), ProgramStopped)
        running = environment()
        running.set_error(failure)
        assert isinstance(running.program_state(), ProgramError)
    finally:
        uninstall()
    stopped = environment()
    stopped.set_stop(stop_date=None, cause="cancelled", error=None)
    stopped.set_error(failure)
    assert isinstance(stopped.program_state(), ProgramError)  # moto's own behaviour


def test_execution_worker_stop_seam_exists():
    """local/sfn_stop.py wraps `ExecutionWorker.stop`, which needs the environment its thread creates."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    assert "self.env.set_stop(" in inspect.getsource(ExecutionWorker.stop)
    assert "self.env = self._get_evaluation_environment()" in inspect.getsource(ExecutionWorker._execution_logic)


def test_an_execution_stopped_the_moment_it_starts_is_aborted():
    import json
    import time

    import boto3
    from moto import mock_aws, settings

    from local import sfn_stop

    if settings.TEST_SERVER_MODE:
        pytest.skip("in-process moto only")
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    definition = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}}}
    parse = ExecutionWorker._get_evaluation_entrypoint

    def slow_parse(self):  # a busy machine: the worker thread is still parsing when the stop comes
        time.sleep(0.2)
        return parse(self)

    uninstall = sfn_stop.install()
    ExecutionWorker._get_evaluation_entrypoint = slow_parse
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            machine = sfn.create_state_machine(name="m", definition=json.dumps(definition),
                                               roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
            for attempt in range(5):
                arn = sfn.start_execution(stateMachineArn=machine, name=f"e{attempt}")["executionArn"]
                sfn.stop_execution(executionArn=arn, cause="cancelled by the user")
                deadline = time.monotonic() + 10
                while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
    finally:
        ExecutionWorker._get_evaluation_entrypoint = parse
        uninstall()
