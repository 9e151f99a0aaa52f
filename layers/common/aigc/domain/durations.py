"""How long a model's jobs take at the provider, learned from recent real durations.

The poll step waits (a Wait state: one transition, no Lambda time) until the job could
plausibly have ended, then polls about every second inside one invocation. Where "plausibly"
starts is learned per model from the last `SAMPLES` successful jobs; until there are `MIN_SAMPLES`
of them the catalog's `expectedSeconds` is the prior. The median also feeds the queue's estimated
start times and the admission rule (aigc.domain.capacity).

The samples are a bounded ring: one item per model (`DUR#<model>` / `RING`) holding the last `SAMPLES`
durations and the jobs they are of. A job appends its duration once (the condition "not already one of
them": a retried or redriven poll sees the job later than it ended, and the first observation stands);
past `SAMPLES`, the oldest is dropped. Storage never grows with the number of jobs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aigc.core.catalog import ModelSpec
from aigc.store.db import SchedulerItem
from aigc.store.dynamo import conditional, get_or_none, size

SAMPLES = 30
MIN_SAMPLES = 5
KEEP_SECONDS = 30 * 24 * 3600  # a model nobody used for this long forgets what it learned (TTL)
CACHE_SECONDS = 30.0
RING = "RING"
_cache: dict[str, tuple[float, list[float]]] = {}


@dataclass(frozen=True)
class Window:
    start: float  # seconds after the job reached the provider before which it rarely ends
    typical: float  # median duration
    samples: int


def _key(model_name: str) -> str:
    return f"DUR#{model_name}"


def record(model_name: str, task_no: str, seconds: float) -> None:
    """One successful job's duration: appended once per job, the oldest dropped past SAMPLES."""
    ring = SchedulerItem(_key(model_name), RING)
    appended = conditional(lambda: ring.update(
        actions=[SchedulerItem.samples.set((SchedulerItem.samples | []).append([round(max(0.0, seconds), 3)])),
                 SchedulerItem.sample_tasks.set((SchedulerItem.sample_tasks | []).append([task_no])),
                 SchedulerItem.expires_at.set(int(time.time()) + KEEP_SECONDS)],
        condition=~SchedulerItem.sample_tasks.contains(task_no)))
    if appended and len(ring.samples or []) > SAMPLES:
        # One trim per append past the bound; two racing appends trim once each, never below SAMPLES.
        conditional(lambda: ring.update(actions=[SchedulerItem.samples[0].remove(), SchedulerItem.sample_tasks[0].remove()],
                                        condition=size(SchedulerItem.samples) > SAMPLES))
    _cache.pop(model_name, None)


def recent(model_name: str) -> list[float]:
    """The last SAMPLES durations, newest first (cached per container for CACHE_SECONDS)."""
    cached = _cache.get(model_name)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    ring = get_or_none(SchedulerItem, _key(model_name), RING, consistent_read=False)
    values = [float(value) for value in reversed(ring.samples or [])][:SAMPLES] if ring else []
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
