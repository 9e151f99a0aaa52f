"""Reconciler: execution FAILED / TIMED_OUT / ABORTED events, and the scheduled sweep."""
from aigc.core.config import ReconcileEnv
from aigc.core.observability import logger, metrics
from aigc.domain.settlement import handle_reconcile_event


ENV = ReconcileEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return handle_reconcile_event(event, hold_grace_seconds=ENV.hold_grace_seconds)
