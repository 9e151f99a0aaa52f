"""S3 ObjectCreated under uploads/: each image becomes an outpainting task for the user in its key."""
from aigc.core.observability import logger, metrics
from aigc.flows.uploads import handle_s3_event


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return {"outcomes": handle_s3_event(event)}
