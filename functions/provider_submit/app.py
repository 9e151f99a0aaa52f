"""Sends a task to its provider (first state of the task workflow)."""
from aigc.core.config import WorkflowEnv
from aigc.core.observability import logger, metrics
from aigc.flows.workflow import submit_step


ENV = WorkflowEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return submit_step(event)
