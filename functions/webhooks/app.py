"""Webhooks: TasksTable stream records become queued events; queued events are delivered, signed."""
from aigc.core.config import WebhookEnv
from aigc.core.observability import logger, metrics
from aigc.flows.webhook_delivery import handle_event


ENV = WebhookEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return handle_event(event, context)
