"""The model catalog: models, providers, pricing rules and video options, as data (`catalog.json`).

Adding a model to an existing provider is a new entry in catalog.json, not code. Prices are rules
(a base, per image or per second, multipliers and surcharges on parameters), evaluated once at
submit by `aigc.domain.pricing`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigc.core.errors import NotFound
from aigc.core.i18n import _

TaskType = Literal["outpainting", "text_to_image", "image_to_image", "text_to_video", "image_to_video"]
ResultType = Literal["image", "video"]
VIDEO_TASK_TYPES = frozenset({"text_to_video", "image_to_video"})


def result_type(task_type: str) -> ResultType:
    """What a task of this type produces: a video for the *_to_video types, else images."""
    return "video" if task_type in VIDEO_TASK_TYPES else "image"


class PriceRule(BaseModel):
    """One rule on a provider parameter (snake_case, as sent to the provider): when it `equals` a value
    (or is `in` a list), multiply by `factor` (a multiplier) or add `points` (a surcharge)."""

    model_config = ConfigDict(populate_by_name=True)

    parameter: str
    equals: Any = None
    one_of: list[Any] | None = Field(None, alias="in")
    factor: float | None = Field(None, gt=0)
    points: float | None = Field(None, gt=0)
    label: str | None = Field(None, description="what the rule is, for people (GET /models, the submit answer)")

    def matches(self, parameters: dict) -> bool:
        value = parameters.get(self.parameter)
        if self.one_of is not None:
            return value in self.one_of
        return value == self.equals


PriceMultiplier = PriceRule  # the name catalog readers knew


class Pricing(BaseModel):
    """Points for one task: `points` per task, or per image (`perImage`, the parameter `n`) or per second
    (`perSecond` names the duration parameter); then the multipliers, then the surcharges; rounded up."""

    model_config = ConfigDict(populate_by_name=True)

    points: int = Field(gt=0)
    per_image: bool = Field(False, alias="perImage")
    per_second: str | None = Field(None, alias="perSecond")
    multipliers: list[PriceRule] = Field(default_factory=list)
    surcharges: list[PriceRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_have_their_number(self):
        for rule in self.multipliers:
            if rule.factor is None:
                raise ValueError(f"multiplier on {rule.parameter} needs a factor")
        for rule in self.surcharges:
            if rule.points is None:
                raise ValueError(f"surcharge on {rule.parameter} needs points")
        return self


class VideoOptions(BaseModel):
    """What a video model accepts (DashScope's documented values per model)."""

    durations: list[int] = Field(min_length=1)  # seconds
    sizes: list[str] | None = None  # text-to-video: "W*H"
    resolutions: list[str] | None = None  # image-to-video: "480P", "720P"
    default_size: str | None = Field(None, alias="defaultSize")
    default_resolution: str | None = Field(None, alias="defaultResolution")


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
    video: VideoOptions | None = None
    expected_seconds: int = Field(alias="expectedSeconds", ge=1)
    deadline_seconds: int = Field(alias="deadlineSeconds", ge=30)
    poll: PollSchedule
    pool_name: str | None = Field(None, alias="pool")

    @property
    def pool(self) -> str:
        """The capacity pool (aigc.domain.capacity): by default one per provider model, as DashScope counts."""
        return self.pool_name or f"{self.provider}:{self.provider_model}"

    @property
    def result_type(self) -> ResultType:
        return result_type(self.task_type)


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
        raise NotFound(_("unknown model '{name}'; GET /models lists the available models", name=name)) from None
