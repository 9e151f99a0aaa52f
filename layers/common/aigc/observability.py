"""One Logger and one Metrics for every function (powertools)."""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

__all__ = ["logger", "metrics", "MetricUnit", "count"]


def count(name: str, value: int = 1) -> None:
    """A Count metric (tasks, uploads, points)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
