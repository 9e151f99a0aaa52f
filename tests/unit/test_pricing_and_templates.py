"""Issue 19's rules without AWS: pricing rules as data (seed 000's HD mode x2, seed 002's 4k x1.5 and
video points per second, rounded up), the template catalog (versions, JSON-schema inputs, prompts),
the video models' parameters, and the video wording of provider codes."""
from __future__ import annotations

import pytest
from aigc.api.parameters import SCHEMAS
from aigc.core import templates as catalog_templates
from aigc.core.catalog import Pricing, get_model, load_catalog
from aigc.core.errors import BadRequest, NotFound
from aigc.core.templates import TemplateSpec, latest_templates, load_templates
from aigc.domain import pricing, templates
from aigc.providers.error_messages import task_message, user_message


def _pricing(**data) -> Pricing:
    return Pricing.model_validate(data)


# ----------------------------------------------------------------------------- pricing rules


def test_a_price_is_the_base_times_units_times_multipliers_plus_surcharges_rounded_up():
    rules = _pricing(points=10, perSecond="duration",
                     multipliers=[{"parameter": "quality", "equals": "high", "factor": 1.5, "label": "high quality"},
                                  {"parameter": "resolution", "in": ["4k", "2160P"], "factor": 1.5, "label": "4k"}],
                     surcharges=[{"parameter": "watermark", "equals": False, "points": 3, "label": "no watermark"}])
    price = pricing.quote(rules, {"duration": 5, "quality": "high", "resolution": "4k", "watermark": False})
    # 10 x 5 s x 1.5 x 1.5 + 3 = 115.5 -> 116
    assert price.total == 116
    assert price.as_dict() == {"base": 10, "total": 116, "factors": [
        {"kind": "perSecond", "label": "5 seconds", "factor": 5},
        {"kind": "multiplier", "label": "high quality", "factor": 1.5},
        {"kind": "multiplier", "label": "4k", "factor": 1.5},
        {"kind": "surcharge", "label": "no watermark", "points": 3},
    ]}
    assert pricing.quote(rules, {"duration": 3, "quality": "low", "watermark": True}).total == 30


def test_rounding_is_up_and_exact_in_decimal():
    assert pricing.quote(_pricing(points=25, multipliers=[{"parameter": "x", "equals": 4, "factor": 1.5}]),
                         {"x": 4}).total == 38  # 37.5 -> 38 (seed 002: Math.ceil)
    # 10 x 1.1 x 3 is 33.000000000000004 in binary floating point: still 33 points
    assert pricing.quote(_pricing(points=10, perImage=True, multipliers=[{"parameter": "x", "equals": 1, "factor": 1.1}]),
                         {"x": 1, "n": 3}).total == 33


def test_seed_prices_hold_for_the_catalog():
    outpaint = get_model("image-out-painting").pricing
    assert pricing.quote(outpaint, {"best_quality": False}).total == 10
    assert pricing.quote(outpaint, {"best_quality": True}).total == 20  # seed 000: HD mode costs double
    hd = pricing.quote(outpaint, {"best_quality": True}).as_dict()["factors"]
    assert hd == [{"kind": "multiplier", "label": "HD mode (bestQuality)", "factor": 2}]
    edit = get_model("wanx2.1-imageedit").pricing
    assert pricing.quote(edit, {"n": 1, "upscale_factor": 4}).total == 38  # 25 x 1.5 (seed 002: 4k x1.5)
    assert pricing.quote(get_model("wanx2.1-t2v-turbo").pricing, {"duration": 5}).total == 50  # seed 002: video 50
    assert pricing.quote(get_model("wanx2.1-t2v-plus").pricing, {"duration": 5}).total == 75  # high quality 75
    assert pricing.quote(get_model("wanx2.1-i2v-turbo").pricing, {"duration": 3}).total == 30


def test_rules_are_described_in_words():
    assert pricing.describe(get_model("image-out-painting").pricing) == [
        "10 points per task", "x2 when best_quality is true: HD mode (bestQuality)", "rounded up to whole points"]
    assert pricing.describe(get_model("wanx2.1-i2v-turbo").pricing)[0] == "10 points per second of video (duration)"


def test_a_rule_without_its_number_is_refused_and_per_second_needs_its_parameter():
    with pytest.raises(ValueError):
        _pricing(points=1, multipliers=[{"parameter": "x", "equals": 1}])
    with pytest.raises(ValueError, match="duration"):
        pricing.quote(_pricing(points=1, perSecond="duration"), {})


@pytest.mark.parametrize("name", sorted(load_catalog()))
def test_every_model_prices_its_default_parameters(name):
    model = get_model(name)
    defaults = {"outpainting": {"outputRatio": "16:9"}}.get(model.task_type, {})
    provider_parameters = SCHEMAS[model.parameter_schema].model_validate(defaults).provider_parameters(model)
    assert pricing.quote(model.pricing, provider_parameters).total >= model.pricing.points


# ----------------------------------------------------------------------------- video parameters


def _video(name: str, given: dict) -> dict:
    model = get_model(name)
    return SCHEMAS[model.parameter_schema].model_validate(given).provider_parameters(model)


def test_video_parameters_default_to_the_models_documented_values():
    assert _video("wanx2.1-t2v-turbo", {}) == {"size": "1280*720", "duration": 5, "prompt_extend": True,
                                               "watermark": False}
    assert _video("wanx2.1-i2v-turbo", {"duration": 3, "resolution": "480P", "promptExtend": False, "seed": 7}) == {
        "resolution": "480P", "duration": 3, "prompt_extend": False, "watermark": False, "seed": 7}
    assert get_model("wanx2.1-i2v-turbo").result_type == "video"
    assert get_model("wanx-v1").result_type == "image"


@pytest.mark.parametrize("name, given, named", [
    ("wanx2.1-t2v-plus", {"size": "832*480"}, "parameters.size"),  # plus makes 720P only
    ("wanx2.1-t2v-turbo", {"duration": 4}, "parameters.duration"),  # text-to-video: 5 s
    ("wanx2.1-i2v-turbo", {"duration": 6}, "parameters.duration"),
    ("wanx2.1-i2v-plus", {"resolution": "480P"}, "parameters.resolution"),
])
def test_a_value_the_model_does_not_take_is_a_400_naming_the_parameter(name, given, named):
    with pytest.raises(BadRequest, match=f"^{named}"):
        _video(name, given)


@pytest.mark.parametrize("given", [{"size": "1920*1080"}, {"duration": "5"}, {"resolution": "1080P"},
                                   {"duration": 0}, {"frames": 10}, {"promptExtend": "yes"}])
def test_video_parameters_are_strict(given):
    name = "wanx2.1-i2v-turbo" if "resolution" in given else "wanx2.1-t2v-turbo"
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError or our BadRequest
        _video(name, given)


# ----------------------------------------------------------------------------- templates


def test_the_catalog_ships_at_least_six_templates_across_images_and_video():
    latest = latest_templates()
    assert len(latest) >= 6
    assert {spec.result_type for spec in latest} == {"image", "video"}
    assert len({spec.category for spec in latest}) >= 4
    assert {spec.model_name for spec in latest} >= {"image-out-painting", "wanx2.1-i2v-turbo", "wanx2.1-t2v-turbo"}


def test_the_latest_enabled_version_is_listed_and_an_older_one_can_still_be_asked_for():
    listed = {spec.code: spec.version for spec in latest_templates()}
    assert listed["product-shot-white"] == 2
    assert catalog_templates.get_template("product-shot-white").version == 2
    assert catalog_templates.get_template("product-shot-white", 1).version == 1
    assert [spec.code for spec in latest_templates("video")] == ["photo-to-clip", "cinematic-clip"]


def test_unknown_or_disabled_templates_are_404s_naming_them(monkeypatch):
    with pytest.raises(NotFound, match="template 'nope' is unknown or disabled"):
        catalog_templates.get_template("nope")
    with pytest.raises(NotFound, match="template 'product-shot-white' version 9 is unknown or disabled"):
        catalog_templates.get_template("product-shot-white", 9)
    disabled = [spec.model_copy(update={"enabled": False}) if spec.code == "restyle" else spec
                for spec in load_templates()]
    monkeypatch.setattr(catalog_templates, "load_templates", lambda: tuple(disabled))
    with pytest.raises(NotFound, match="'restyle'"):
        catalog_templates.get_template("restyle")
    with pytest.raises(NotFound, match="'restyle' version 1"):
        catalog_templates.get_template("restyle", 1)
    assert "restyle" not in {spec.code for spec in latest_templates()}


def test_inputs_render_the_prompt_with_defaults_and_set_mapped_parameters():
    v2 = catalog_templates.get_template("product-shot-white", 2)
    resolved = templates.resolve(v2, {"product": "a teapot"})
    assert resolved.prompt.startswith("a teapot, three-quarter view, e-commerce product photo")
    assert resolved.inputs == {"product": "a teapot", "angle": "three-quarter"}
    assert resolved.parameters["size"] == "1024*1024"
    clip = templates.resolve(catalog_templates.get_template("photo-to-clip"), {"seconds": 4})
    assert clip.parameters["duration"] == 4 and clip.prompt.startswith("the scene comes to life")
    banner = templates.resolve(catalog_templates.get_template("banner-16x9"), {"hd": True})
    assert banner.prompt is None and banner.parameters["bestQuality"] is True


@pytest.mark.parametrize("code, inputs, message", [
    ("watercolour-portrait", {}, "inputs.subject: required"),
    ("watercolour-portrait", {"subject": ""}, "inputs.subject: '' should be non-empty"),
    ("watercolour-portrait", {"subject": 7}, "inputs.subject: 7 is not of type 'string'"),
    ("watercolour-portrait", {"subject": "a cat", "mood": "sad"}, "inputs.mood: not an input of this template"),
    ("photo-to-clip", {"seconds": 7}, "inputs.seconds: 7 is greater than the maximum of 5"),
    ("product-shot-white", {"product": "mug", "angle": "side"}, "inputs.angle: 'side' is not one of"),
])
def test_inputs_are_checked_against_the_schema_naming_the_input(code, inputs, message):
    with pytest.raises(BadRequest) as refused:
        templates.resolve(catalog_templates.get_template(code), inputs)
    assert str(refused.value.message).startswith(message)


@pytest.mark.parametrize("spec", load_templates(), ids=lambda spec: f"{spec.code}-v{spec.version}")
def test_every_template_and_its_example_make_a_valid_priced_request(spec):
    templates.validator(spec)  # the inputs' schema is a valid JSON schema
    model = get_model(spec.model_name)
    resolved = templates.resolve(spec, spec.example)
    provider_parameters = SCHEMAS[model.parameter_schema].model_validate(resolved.parameters).provider_parameters(model)
    assert pricing.quote(spec.pricing, provider_parameters).total > 0
    if model.inputs.prompt == "required":
        assert resolved.prompt


@pytest.mark.parametrize("change, problem", [
    ({"promptTemplate": "{who} in watercolour"}, "placeholder {who} is not an input"),
    ({"promptTemplate": "{subject.upper} in watercolour"}, "must be a plain name"),
    ({"modelName": "dall-e-9"}, "unknown model"),
    ({"inputParameters": {"nothing": "size"}}, "inputParameters names no input"),
    ({"inputs": {"type": "object", "properties": {"subject": {"type": "string"}}}}, "without additional properties"),
])
def test_a_broken_template_is_refused_when_the_catalog_loads(change, problem):
    entry = catalog_templates.get_template("watercolour-portrait").model_dump(by_alias=True)
    with pytest.raises(ValueError, match=problem):
        TemplateSpec.model_validate({**entry, **change})


def test_an_optional_placeholder_needs_a_default():
    entry = catalog_templates.get_template("watercolour-portrait").model_dump(by_alias=True)
    entry["inputs"] = {**entry["inputs"], "required": []}
    with pytest.raises(ValueError, match="optional input subject needs a default"):
        TemplateSpec.model_validate(entry)


# ----------------------------------------------------------------------------- messages


def test_image_to_video_rejections_read_as_the_video_services():
    assert "360 to 2000 pixels" in task_message("InvalidParameter", "image_to_video")
    assert "could not use your image" in task_message("InvalidParameter.DataInspection", "image_to_video")
    assert "download your image" in task_message("InvalidParameter.FileDownload", "image_to_video")
    assert "not a playable video" in task_message("ResultCorrupt", "text_to_video")
    assert "larger than we can store" in task_message("VideoTooLarge", "text_to_video")
    # an image task keeps seed 003's meaning of the same code
    assert task_message("InvalidParameter.DataInspection", "outpainting") == user_message(
        "InvalidParameter.DataInspection")
    assert str(task_message("Throttling.RateQuota", "image_to_video")) == str(user_message("Throttling"))
