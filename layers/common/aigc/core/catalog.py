"""The model catalog: models, providers and prices, as data (`catalog.json`).

Adding a model to an existing provider is a new entry in catalog.json, not code.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from aigc.core.errors import NotFound

TaskType = Literal["outpainting", "text_to_image", "image_to_image"]


class PriceMultiplier(BaseModel):
    parameter: str
    equals: Any
    factor: float = Field(gt=0)


class Pricing(BaseModel):
    points: int = Field(gt=0)
    per_image: bool = Field(False, alias="perImage")
    multipliers: list[PriceMultiplier] = Field(default_factory=list)


class PollSchedule(BaseModel):
    """Inside the window where a job is likely to end (aigc.domain.durations), poll this often."""

    interval_seconds: float = Field(1.0, alias="intervalSeconds", gt=0, le=10)


class PoolSpec(BaseModel):
    """What one provider account (or model group) accepts from us: jobs at once, submits a second."""

    concurrency: int = Field(ge=1)
    submits_per_second: float = Field(alias="submitsPerSecond", gt=0)


class Inputs(BaseModel):
    prompt: Literal["required", "optional", "none"] = "optional"
    min_images: int = Field(0, alias="minImages", ge=0)
    max_images: int = Field(0, alias="maxImages", ge=0)


class ModelSpec(BaseModel):
    name: str
    description: str
    task_type: TaskType = Field(alias="taskType")
    provider: Literal["dashscope", "openai"]
    provider_model: str = Field(alias="providerModel")
    parameter_schema: str = Field(alias="parameterSchema")
    aspect_ratio: str | None = Field(None, alias="aspectRatio")
    inputs: Inputs
    pricing: Pricing
    expected_seconds: int = Field(alias="expectedSeconds", ge=1)
    deadline_seconds: int = Field(alias="deadlineSeconds", ge=30)
    poll: PollSchedule
    pool_name: str | None = Field(None, alias="pool")

    @property
    def pool(self) -> str:
        """The capacity pool (aigc.domain.capacity): by default one per provider model, as DashScope counts."""
        return self.pool_name or f"{self.provider}:{self.provider_model}"

    def price(self, provider_parameters: dict, image_count: int = 1) -> int:
        """Points for one task with these (provider-shaped) parameters."""
        cost = float(self.pricing.points)
        for rule in self.pricing.multipliers:
            if provider_parameters.get(rule.parameter) == rule.equals:
                cost *= rule.factor
        if self.pricing.per_image:
            cost *= max(1, image_count)
        return int(math.ceil(cost))


def _merge(defaults: dict, entry: dict) -> dict:
    merged = {**defaults, **entry}
    merged["poll"] = {**defaults.get("poll", {}), **entry.get("poll", {})}
    return merged


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, ModelSpec]:
    raw = json.loads((Path(__file__).with_name("catalog.json")).read_text(encoding="utf-8"))
    models = [ModelSpec.model_validate(_merge(raw["defaults"], entry)) for entry in raw["models"]]
    return {m.name: m for m in models}


@lru_cache(maxsize=1)
def load_pools() -> tuple[PoolSpec, dict[str, PoolSpec]]:
    """catalog.json "capacity": the default pool and the declared ones (template overrides: aigc.domain.capacity)."""
    raw = json.loads((Path(__file__).with_name("catalog.json")).read_text(encoding="utf-8"))["capacity"]
    return PoolSpec.model_validate(raw["default"]), {
        name: PoolSpec.model_validate(spec) for name, spec in raw.get("pools", {}).items()
    }


def get_model(name: str) -> ModelSpec:
    try:
        return load_catalog()[name]
    except KeyError:
        raise NotFound(f"unknown model '{name}'; GET /models lists the available models") from None
