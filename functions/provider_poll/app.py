"""Polls the provider about every second for one invocation's budget and decides: store, refund, or poll on."""
from aigc.core.config import WorkflowEnv
from aigc.core.observability import logger, metrics
from aigc.flows.workflow import poll_step


ENV = WorkflowEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    remaining = context.get_remaining_time_in_millis() if hasattr(context, "get_remaining_time_in_millis") else None
    return poll_step(event, remaining)
