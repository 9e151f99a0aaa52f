"""Seed 003's outpainting rules, per-model validation and pricing, without AWS."""
import pytest
from aigc.api.parameters import SCHEMAS, OutpaintingParameters
from aigc.api.schemas import parse_image_urls
from aigc.core.catalog import get_model, load_catalog
from aigc.core.errors import BadRequest, NotFound
from aigc.domain.pricing import quote
from aigc.domain.tasks import new_task_no
from pydantic import ValidationError

OUTPAINT = get_model("image-out-painting")


@pytest.mark.parametrize("given, mode, sent", [
    ({"output_ratio": "4:3", "x_scale": 2.0}, "output_ratio", {"output_ratio": "4:3"}),
    ({"x_scale": 2.0, "left_offset": 100}, "scale", {"x_scale": 2.0, "y_scale": 1.0}),
    ({"angle": 90, "x_scale": 2.0}, "scale", {"angle": 90, "x_scale": 2.0}),
    ({"angle": 90, "output_ratio": "4:3", "x_scale": 2.0, "left_offset": 100}, "output_ratio",
     {"angle": 90, "output_ratio": "4:3"}),
    ({"top_offset": 64}, "offsets", {"top_offset": 64, "left_offset": 0}),
    ({"angle": 45}, "rotate_only", {"angle": 45}),
])
def test_seed_003_priority_examples(given, mode, sent):
    params = OutpaintingParameters.model_validate(given)
    assert params.mode == mode
    provider = params.provider_parameters(OUTPAINT)
    assert sent.items() <= provider.items()
    losers = {"output_ratio": ("x_scale", "y_scale", "left_offset"), "scale": ("left_offset", "output_ratio"),
              "offsets": ("x_scale", "output_ratio"), "rotate_only": ("x_scale", "output_ratio")}[mode]
    assert not set(losers) & set(provider), "lower-priority parameters must not reach the provider"


def test_effect_names_the_winner_and_what_was_ignored():
    effect = OutpaintingParameters.model_validate({"output_ratio": "16:9", "xScale": 2, "topOffset": 5}).effect()
    assert effect.startswith("expansion by outputRatio 16:9")
    assert "ignored (lower priority): xScale/yScale, offsets" in effect


def test_no_expansion_at_all_is_refused():
    with pytest.raises(BadRequest, match="needs an expansion"):
        OutpaintingParameters.model_validate({}).provider_parameters(OUTPAINT)


@pytest.mark.parametrize("bad", [{"angle": -1}, {"angle": 360}, {"xScale": 0.9}, {"y_scale": 3.01},
                                 {"outputRatio": "5:4"}, {"bottomOffset": -3}, {"bestQuality": "yes"},
                                 {"unknown": 1}])
def test_out_of_range_parameters_are_rejected(bad):
    with pytest.raises(ValidationError):
        OutpaintingParameters.model_validate(bad)


def test_camel_and_snake_case_are_both_accepted():
    assert OutpaintingParameters.model_validate({"xScale": 2}) == OutpaintingParameters.model_validate({"x_scale": 2})


def test_prices_come_from_the_catalog_and_parameters():
    assert quote(OUTPAINT.pricing, {"best_quality": False}).total == 10
    assert quote(OUTPAINT.pricing, {"best_quality": True}).total == 20
    wanx = get_model("wanx-v1")
    assert quote(wanx.pricing, {"n": 3}).total == 60
    catalog = load_catalog()
    assert {m.pricing.points for n, m in catalog.items() if n.startswith("sc_soraimg_text_")} == {30}
    assert {m.pricing.points for n, m in catalog.items() if n.startswith("sc_soraimg_img2img_")} == {35}
    assert all(m.parameter_schema in SCHEMAS for m in catalog.values())


def test_unknown_model_is_not_found():
    with pytest.raises(NotFound, match="GET /models"):
        get_model("dall-e-9")


def test_sora_sizes_follow_the_model_aspect_ratio():
    for name, size in [("sc_soraimg_text_1x1", "1024x1024"), ("sc_soraimg_text_2x3", "1024x1536"),
                       ("sc_soraimg_img2img_3x2", "1536x1024"), ("sc_soraimg_text_auto", "auto")]:
        model = get_model(name)
        assert SCHEMAS[model.parameter_schema].model_validate({}).provider_parameters(model)["size"] == size


@pytest.mark.parametrize("value, expected", [
    ("https://a.test/x.png", ["https://a.test/x.png"]),
    ('["https://a.test/1.png","https://a.test/2.png"]', ["https://a.test/1.png", "https://a.test/2.png"]),
    (["https://a.test/1.png"], ["https://a.test/1.png"]),
    (None, []),
])
def test_image_url_forms(value, expected):
    assert parse_image_urls(value) == expected


@pytest.mark.parametrize("value", ["file:///etc/passwd", '["https://a.test/1.png"', [1, 2], ["https://a"] * 5])
def test_bad_image_urls(value):
    with pytest.raises(BadRequest, match="^imageUrl"):
        parse_image_urls(value)


def test_task_numbers_keep_seed_001_form_and_do_not_collide():
    numbers = {new_task_no() for _ in range(20000)}
    assert len(numbers) == 20000
    sample = next(iter(numbers))
    prefix, stamp, suffix = sample.split("-")
    assert prefix == "TASK" and len(stamp) == 17 and stamp.isdigit() and len(suffix) == 16
