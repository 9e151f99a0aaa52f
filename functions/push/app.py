"""Push: TasksTable and PointsTable stream records become messages on the user's WebSockets."""
from aigc.core.config import PushEnv
from aigc.core.observability import logger, metrics
from aigc.flows.push import handle_stream


ENV = PushEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return handle_stream(event, context)
