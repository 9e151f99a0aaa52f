"""WebSocket API routes: $connect (the `?token=` is checked, the connection recorded), $disconnect, $default."""
from aigc.core.config import SocketEnv
from aigc.core.observability import logger, metrics
from aigc.flows.push import handle_socket


ENV = SocketEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return handle_socket(event)
