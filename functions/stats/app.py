"""Business numbers: the tasks' and the ledger's stream records become counters (aigc.flows.stats_feed)."""
from aigc.core.config import StatsEnv
from aigc.core.observability import logger, metrics
from aigc.flows.stats_feed import handle_event

ENV = StatsEnv.load()  # a missing or malformed variable stops the cold start, naming it


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return handle_event(event, context, tasks_table=ENV.tasks_table, points_table=ENV.points_table)
