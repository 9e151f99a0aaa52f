"""One Logger and one Metrics for every function (powertools)."""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics()

__all__ = ["logger", "metrics", "MetricUnit", "count"]


def count(name: str, value: int = 1, *, model: str | None = None) -> None:
    """A Count metric (tasks, uploads, points), by service; with ``model`` also by service and model.

    The alarms read the service-only series; the dashboard's "tasks by outcome and model" the
    per-model one, written at once as its own EMF record (its dimensions differ from the flush's).
    """
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if model:
        with single_metric(name=name, unit=MetricUnit.Count, value=value,
                           default_dimensions=metrics.default_dimensions) as metric:
            metric.add_dimension("model", model)
