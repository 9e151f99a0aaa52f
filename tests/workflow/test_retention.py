"""Finished executions are forgotten after the retention window (local/retention.py); running ones stay."""
import boto3
import pytest

from local import retention


def test_finished_executions_are_pruned_and_running_ones_kept(app):
    app.grant("alice", 100)
    done = app.submit(modelName="sc_soraimg_text_1x1", prompt="cat")[1]["data"]["taskNo"]
    assert app.wait_execution(done)["status"] == "SUCCEEDED"
    running = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(sim_seconds=600),
                         parameters={"xScale": 2})[1]["data"]["taskNo"]
    sfn = boto3.client("stepfunctions")
    assert retention.prune(3600) == 0  # inside the window: nothing goes
    forgotten = []
    assert retention.prune(0, on_dropped=forgotten.extend) == 1
    assert forgotten == [app.execution_arn(done)]
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=app.execution_arn(done))
    assert sfn.describe_execution(executionArn=app.execution_arn(running))["status"] == "RUNNING"
    assert app.task(done)["status"] == "completed"  # the task and its ledger stay
    assert app.ledger("alice", done) == [("DEBIT", -30)]
