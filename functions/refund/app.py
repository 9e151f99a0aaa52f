"""Refunds a failed or timed-out task, at most once."""
from aigc.core.config import WorkflowEnv
from aigc.core.observability import logger, metrics
from aigc.flows.workflow import refund_step


ENV = WorkflowEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return refund_step(event)
