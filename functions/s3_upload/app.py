"""S3 ObjectCreated under uploads/: each image becomes an outpainting task for the user in its key."""
from aigc.core.config import UploadEnv
from aigc.core.observability import logger, metrics
from aigc.flows.uploads import handle_s3_event


ENV = UploadEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return {"outcomes": handle_s3_event(event)}
