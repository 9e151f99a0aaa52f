"""Polls the provider once and decides: wait, store, or refund."""
from aigc.observability import logger, metrics
from aigc.workflow import poll_step


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return poll_step(event)
