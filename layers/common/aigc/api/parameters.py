"""Per-model parameter schemas: validate what the user sent, turn it into provider parameters.

Every schema accepts camelCase and snake_case names (`xScale` and `x_scale`), rejects unknown
names, and says which settings took effect (`effect`). Types are strict and every number is bounded
(what DynamoDB and the provider can take): no booleans or strings as numbers, no 2.0 for an integer,
at most 4 decimal places for a fraction.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AliasChoices, AliasGenerator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat
from pydantic import StrictInt as Int
from pydantic.alias_generators import to_camel

from aigc.api.schemas import Text
from aigc.core.catalog import ModelSpec
from aigc.core.errors import BadRequest
from aigc.core.i18n import Message, _

MAX_OFFSET_PIXELS = 10000
MAX_SEED = 2147483647


def _at_most_4_decimals(value: float) -> float:
    if value != round(value, 4):
        raise ValueError(_("at most 4 decimal places"))
    return value


# A float that also takes an integer (2 = 2.0), never a bool or a string.
Fraction = Annotated[StrictFloat, Field(allow_inf_nan=False), AfterValidator(_at_most_4_decimals)]


def _both_spellings(field_name: str) -> AliasChoices:
    return AliasChoices(field_name, to_camel(field_name))


class _Parameters(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=_both_spellings),
        populate_by_name=True,
        strict=True,
    )

    def provider_parameters(self, model: ModelSpec) -> dict:
        raise NotImplementedError

    def effect(self) -> Message | None:
        """A sentence for the user about which settings took effect, when that is not obvious."""
        return None

    @property
    def image_count(self) -> int:
        return 1


OutputRatio = Literal["", "1:1", "3:4", "4:3", "9:16", "16:9"]


class OutpaintingParameters(_Parameters):
    """DashScope image-out-painting. Priority (seed 003): output_ratio > x/y_scale > offsets; angle always."""

    angle: Int = Field(0, ge=0, le=359)
    output_ratio: OutputRatio = ""
    x_scale: Fraction = Field(1.0, ge=1.0, le=3.0)
    y_scale: Fraction = Field(1.0, ge=1.0, le=3.0)
    left_offset: Int = Field(0, ge=0, le=MAX_OFFSET_PIXELS)
    right_offset: Int = Field(0, ge=0, le=MAX_OFFSET_PIXELS)
    top_offset: Int = Field(0, ge=0, le=MAX_OFFSET_PIXELS)
    bottom_offset: Int = Field(0, ge=0, le=MAX_OFFSET_PIXELS)
    best_quality: StrictBool = False
    limit_image_size: StrictBool = True
    add_watermark: StrictBool = False

    OFFSETS: ClassVar[tuple[str, ...]] = ("left_offset", "right_offset", "top_offset", "bottom_offset")

    @property
    def mode(self) -> str:
        if self.output_ratio:
            return "output_ratio"
        if self.x_scale > 1.0 or self.y_scale > 1.0:
            return "scale"
        if any(getattr(self, name) > 0 for name in self.OFFSETS):
            return "offsets"
        return "rotate_only" if self.angle else "none"

    def _ignored(self) -> list[str]:
        ignored = []
        mode = self.mode
        if mode == "output_ratio" and (self.x_scale > 1.0 or self.y_scale > 1.0):
            ignored.append("xScale/yScale")
        if mode in ("output_ratio", "scale") and any(getattr(self, n) > 0 for n in self.OFFSETS):
            ignored.append("offsets")
        return ignored

    def provider_parameters(self, model: ModelSpec) -> dict:
        if self.mode == "none":
            raise BadRequest(_(
                "parameters: outpainting needs an expansion: set outputRatio, xScale/yScale above 1.0, "
                "an offset above 0, or an angle between 1 and 359"
            ))
        params: dict = {
            "angle": self.angle,
            "best_quality": self.best_quality,
            "limit_image_size": self.limit_image_size,
            "add_watermark": self.add_watermark,
        }
        if self.mode == "output_ratio":
            params["output_ratio"] = self.output_ratio
        elif self.mode == "scale":
            params["x_scale"] = self.x_scale
            params["y_scale"] = self.y_scale
        elif self.mode == "offsets":
            params.update({name: getattr(self, name) for name in self.OFFSETS})
        return params

    def effect(self) -> Message:
        mode = self.mode
        described = {
            "output_ratio": _("outputRatio {ratio}", ratio=self.output_ratio),
            "scale": _("xScale {x} / yScale {y}", x=f"{self.x_scale:g}", y=f"{self.y_scale:g}"),
            "offsets": _("offsets (left {left}, right {right}, top {top}, bottom {bottom})",
                         **{n.removesuffix("_offset"): getattr(self, n) for n in self.OFFSETS}),
            "rotate_only": _("rotation only"),
        }[mode]
        text = _("expansion by {described}", described=described)
        if self.angle and mode != "rotate_only":
            text = _("rotation by {angle} degrees, then {expansion}", angle=self.angle, expansion=text)
        ignored = self._ignored()
        if ignored:
            text = _("{effect}; ignored (lower priority): {ignored}", effect=text, ignored=", ".join(ignored))
        return text


class DashScopeText2ImageParameters(_Parameters):
    """DashScope wanx text-to-image."""

    size: Literal["1024*1024", "720*1280", "1280*720", "768*1152"] = "1024*1024"
    n: Int = Field(1, ge=1, le=4)
    seed: Int | None = Field(None, ge=0, le=MAX_SEED)
    negative_prompt: Text | None = Field(None, max_length=500)

    def provider_parameters(self, model: ModelSpec) -> dict:
        params: dict = {"size": self.size, "n": self.n}
        if self.seed is not None:
            params["seed"] = self.seed
        return params

    @property
    def image_count(self) -> int:
        return self.n


class DashScopeImageEditParameters(_Parameters):
    """DashScope wanx2.1-imageedit (functions that need no mask)."""

    function: Literal[
        "description_edit", "stylization_all", "stylization_local", "remove_watermark", "colorization",
        "super_resolution",
    ] = "description_edit"
    n: Int = Field(1, ge=1, le=4)
    seed: Int | None = Field(None, ge=0, le=MAX_SEED)
    strength: Fraction | None = Field(None, ge=0.0, le=1.0)
    upscale_factor: Int | None = Field(None, ge=1, le=4)

    def provider_parameters(self, model: ModelSpec) -> dict:
        # `function` travels with the parameters; the DashScope adapter moves it into `input`.
        params: dict = {"function": self.function, "n": self.n}
        for name in ("seed", "strength", "upscale_factor"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        return params

    @property
    def image_count(self) -> int:
        return self.n


class OpenAIImagesParameters(_Parameters):
    """Sora-image models: the aspect ratio is the model's; nothing for the user to set."""

    SIZES: ClassVar[dict[str, str]] = {
        "auto": "auto", "1:1": "1024x1024", "2:3": "1024x1536", "3:2": "1536x1024",
    }

    def provider_parameters(self, model: ModelSpec) -> dict:
        return {"size": self.SIZES[model.aspect_ratio or "auto"], "n": 1}


VideoSize = Literal["832*480", "480*832", "624*624", "1280*720", "720*1280", "960*960", "1088*832", "832*1088"]


class _VideoParameters(_Parameters):
    """DashScope Wan video synthesis: what every video model takes. Which durations, sizes and resolutions
    a model accepts is the catalog's (`video`), checked in provider_parameters."""

    duration: Int | None = Field(None, ge=1, le=10, description="seconds; the model's allowed values (GET /models)")
    prompt_extend: StrictBool = Field(True, description="let the provider rewrite the prompt with more detail")
    seed: Int | None = Field(None, ge=0, le=MAX_SEED)
    negative_prompt: Text | None = Field(None, max_length=500)
    watermark: StrictBool = Field(False, description="an 'AI generated' mark in a corner")

    def _common(self, model: ModelSpec) -> dict:
        options = model.video
        duration = self.duration if self.duration is not None else (
            5 if 5 in options.durations else max(options.durations))
        if duration not in options.durations:
            raise BadRequest(_("parameters.duration: model {model} makes clips of {durations} seconds",
                               model=model.name, durations=", ".join(map(str, options.durations))))
        params: dict = {"duration": duration, "prompt_extend": self.prompt_extend, "watermark": self.watermark}
        if self.seed is not None:
            params["seed"] = self.seed
        return params


class DashScopeText2VideoParameters(_VideoParameters):
    """DashScope Wan text-to-video (wanx2.1-t2v-*): `size` is width*height of one of the model's tiers."""

    size: VideoSize | None = Field(None, description="width*height; the model's allowed sizes (GET /models)")

    def provider_parameters(self, model: ModelSpec) -> dict:
        size = self.size or model.video.default_size
        if size not in (model.video.sizes or []):
            raise BadRequest(_("parameters.size: model {model} takes one of {sizes}", model=model.name,
                               sizes=", ".join(model.video.sizes or [])))
        return {"size": size, **self._common(model)}


class DashScopeImage2VideoParameters(_VideoParameters):
    """DashScope Wan image-to-video (wanx2.1-i2v-*): the image is the first frame; `resolution` is the tier
    (the clip keeps the image's aspect ratio)."""

    resolution: Literal["480P", "720P"] | None = Field(None, description="the model's allowed tiers (GET /models)")

    def provider_parameters(self, model: ModelSpec) -> dict:
        resolution = self.resolution or model.video.default_resolution
        if resolution not in (model.video.resolutions or []):
            raise BadRequest(_("parameters.resolution: model {model} takes one of {resolutions}", model=model.name,
                               resolutions=", ".join(model.video.resolutions or [])))
        return {"resolution": resolution, **self._common(model)}


SCHEMAS: dict[str, type[_Parameters]] = {
    "outpainting": OutpaintingParameters,
    "dashscope_text2image": DashScopeText2ImageParameters,
    "dashscope_imageedit": DashScopeImageEditParameters,
    "openai_images": OpenAIImagesParameters,
    "dashscope_text2video": DashScopeText2VideoParameters,
    "dashscope_image2video": DashScopeImage2VideoParameters,
}


def describe_schema(name: str) -> dict:
    """JSON schema of a parameter set, for GET /models."""
    schema = SCHEMAS[name].model_json_schema(by_alias=False)
    return {"properties": schema.get("properties", {}), "additionalProperties": False}
