"""How long a model's jobs take at the provider, learned from recent real durations.

The poll step waits (a Wait state: one transition, no Lambda time) until the job could
plausibly have ended, then polls about every second inside one invocation. Where "plausibly"
starts is learned per model from the last `SAMPLES` successful jobs, kept in the scheduler table
with a TTL; until there are `MIN_SAMPLES` of them the catalog's `expectedSeconds` is the prior.
The median also feeds the queue's estimated start times.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

from aigc.core.catalog import ModelSpec
from aigc.core.timeutil import iso_ms
from aigc.store.db import SchedulerItem
from aigc.store.dynamo import conditional

SAMPLES = 30
MIN_SAMPLES = 5
KEEP_SECONDS = 7 * 24 * 3600
CACHE_SECONDS = 30.0
_cache: dict[str, tuple[float, list[float]]] = {}


@dataclass(frozen=True)
class Window:
    start: float  # seconds after the job reached the provider before which it rarely ends
    typical: float  # median duration
    samples: int


def _key(model_name: str) -> str:
    return f"DUR#{model_name}"


def record(model_name: str, task_no: str, started_at: datetime, seconds: float) -> None:
    """One successful job's duration. Keyed by its start, so recording it twice is one sample; the first
    observation stands (a retried or redriven poll sees the job later than it ended)."""
    sample = SchedulerItem(_key(model_name), f"{iso_ms(started_at)}#{task_no}", seconds=round(max(0.0, seconds), 3),
                           expires_at=int(time.time()) + KEEP_SECONDS)
    conditional(lambda: sample.save(condition=SchedulerItem.sk.does_not_exist()))
    _cache.pop(model_name, None)


def recent(model_name: str) -> list[float]:
    """The last SAMPLES durations (cached per container for CACHE_SECONDS)."""
    cached = _cache.get(model_name)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    items = SchedulerItem.query(_key(model_name), scan_index_forward=False, limit=SAMPLES)
    values = [float(item.seconds) for item in items if item.seconds is not None]
    _cache[model_name] = (time.monotonic(), values)
    return values


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def estimate(model: ModelSpec, samples: list[float]) -> Window:
    """The window from samples; with too few, the catalog's expected duration is the prior."""
    if len(samples) < MIN_SAMPLES:
        expected = float(model.expected_seconds)
        return Window(start=max(1.0, expected * 0.25), typical=expected, samples=len(samples))
    # Start a little before the fastest 5 %: a job ending earlier is seen at most that much late.
    start = max(1.0, 0.8 * _quantile(samples, 0.05) - 1.0)
    return Window(start=start, typical=_quantile(samples, 0.5), samples=len(samples))


def window(model: ModelSpec) -> Window:
    return estimate(model, recent(model.name))
