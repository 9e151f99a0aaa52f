"""Issue 19 on moto's DynamoDB: a quote is what the submit charges, for every model and every template of
the catalogs; a template task charges the template's price and keeps its code and version whatever later
versions say; bad template requests change nothing and name what is wrong; video tasks get the video
deadline and their own counters."""
from __future__ import annotations

from datetime import timedelta

import pytest

from aigc.api.schemas import SubmitTaskRequest
from aigc.core import templates as catalog_templates
from aigc.core.catalog import get_model, load_catalog
from aigc.core.errors import BadRequest, InsufficientPoints, NotFound
from aigc.core.templates import TemplateSpec, load_templates
from aigc.core.vocab import TaskStatus
from aigc.domain import points, settlement, tasks
from aigc.flows import submission
from aigc.store.db import PointsItem, TaskItem
from tests.domain.support import grant, reload, snapshot

IMAGE = "https://example.com/picture.png"


def request(**body) -> SubmitTaskRequest:
    return SubmitTaskRequest.model_validate(body)


def submit(user: str = "alice", **body):
    return submission.submit_task(user, request(**body), None, member_group="members")


def _model_bodies() -> list[tuple[str, dict]]:
    """Every model of the catalog with its defaults and with the parameters that move its price."""
    richer = {"outpainting": {"outputRatio": "16:9", "bestQuality": True}, "wanx-v1": {"n": 3},
              "wanx2.1-imageedit": {"function": "super_resolution", "upscaleFactor": 4, "n": 2},
              "wanx2.1-t2v-turbo": {"size": "832*480"}, "wanx2.1-i2v-turbo": {"duration": 3, "resolution": "480P"}}
    bodies = []
    for name, model in load_catalog().items():
        body: dict = {"modelName": name}
        if model.inputs.prompt != "none":
            body["prompt"] = "a lighthouse at dusk"
        if model.inputs.min_images:
            body["imageUrl"] = IMAGE
        plain = {"outputRatio": "16:9"} if model.task_type == "outpainting" else {}
        bodies.append((f"{name}-defaults", {**body, "parameters": plain}))
        extra = richer.get(name) or (richer["outpainting"] if model.task_type == "outpainting" else None)
        if extra:
            bodies.append((f"{name}-priced-up", {**body, "parameters": extra}))
    return bodies


def _template_bodies() -> list[tuple[str, dict]]:
    bodies = []
    for spec in load_templates():
        body = {"templateCode": spec.code, "templateVersion": spec.version, "inputs": spec.example}
        if get_model(spec.model_name).inputs.min_images:
            body["imageUrl"] = IMAGE
        bodies.append((f"{spec.code}-v{spec.version}", body))
    return bodies


@pytest.mark.parametrize("body", [body for _, body in _model_bodies() + _template_bodies()],
                         ids=[name for name, _ in _model_bodies() + _template_bodies()])
def test_the_quote_is_what_the_submit_charges(body):
    before = snapshot()
    quoted = submission.quote(request(**body))
    assert snapshot() == before, "a quote writes nothing"
    grant("alice", 1000)
    task = submit(**body)
    assert task.points_cost == quoted["pricing"]["total"]
    assert task.pricing.model_dump(exclude_none=True) == quoted["pricing"]
    assert points.ledger_entries("alice", task.task_no)[0].amount == -task.points_cost
    assert points.get_balance("alice") == 1000 - task.points_cost
    assert quoted["parameters"] == task.parameters
    stored = tasks.get_task(task.task_no)
    assert tasks.plain_map(stored.pricing) == quoted["pricing"]


def test_a_template_task_charges_the_templates_price_and_records_what_made_it():
    grant("alice", 100)
    task = submit(templateCode="watercolour-portrait", inputs={"subject": "a lighthouse keeper"})
    assert task.points_cost == 15  # the template's price, not wanx-v1's 20
    assert (task.template_code, task.template_version, task.model_name) == ("watercolour-portrait", 1, "wanx-v1")
    assert task.pricing.total == 15 and task.pricing.factors == []
    stored = tasks.get_task(task.task_no)
    assert stored.prompt == "a lighthouse keeper, watercolour portrait, soft light, loose brush strokes, textured paper"
    assert stored.negative_prompt == "photo, harsh shadows, text, watermark"
    assert tasks.plain_map(stored.template_inputs) == {"subject": "a lighthouse keeper"}
    assert tasks.plain_map(stored.parameters) == {"size": "768*1152", "n": 1}


def test_a_later_version_changes_new_tasks_never_the_old_ones(monkeypatch):
    grant("alice", 500)
    old = submit(templateCode="watercolour-portrait", inputs={"subject": "a fox"})
    v1 = catalog_templates.get_template("watercolour-portrait", 1)
    v2 = TemplateSpec.model_validate({**v1.model_dump(by_alias=True), "version": 2,
                                      "promptTemplate": "{subject}, wet-on-wet watercolour, golden hour",
                                      "pricing": {"points": 18}})
    monkeypatch.setattr(catalog_templates, "load_templates", lambda: (*load_templates(), v2))

    new = submit(templateCode="watercolour-portrait", inputs={"subject": "a fox"})
    assert (new.template_version, new.points_cost) == (2, 18)
    assert tasks.get_task(new.task_no).prompt == "a fox, wet-on-wet watercolour, golden hour"
    kept = tasks.get_task(old.task_no)  # the earlier task is as it was made
    assert (int(kept.template_version), int(kept.points_cost), tasks.plain_map(kept.pricing)["total"]) == (1, 15, 15)
    assert kept.prompt.startswith("a fox, watercolour portrait")
    pinned = submit(templateCode="watercolour-portrait", templateVersion=1, inputs={"subject": "a fox"})
    assert (pinned.template_version, pinned.points_cost) == (1, 15)

    # re-running the old task runs its version again, at that version's price
    settlement.cancel_task("alice", old.task_no)
    again = submission.retry_task("alice", old.task_no, None)
    assert (again.template_code, again.template_version, again.points_cost) == ("watercolour-portrait", 1, 15)
    assert tasks.get_task(again.task_no).prompt == kept.prompt


def test_retrying_a_task_whose_template_version_was_disabled_is_a_404_naming_it(monkeypatch):
    grant("alice", 100)
    old = submit(templateCode="restyle", inputs={"style": "anime"}, imageUrl=IMAGE)
    settlement.cancel_task("alice", old.task_no)
    disabled = tuple(spec.model_copy(update={"enabled": False}) if spec.code == "restyle" else spec
                     for spec in load_templates())
    monkeypatch.setattr(catalog_templates, "load_templates", lambda: disabled)
    before = snapshot()
    with pytest.raises(NotFound, match="'restyle' version 1"):
        submission.retry_task("alice", old.task_no, None)
    assert snapshot() == before


@pytest.mark.parametrize("body, error, message", [
    ({"templateCode": "no-such-template", "inputs": {}}, NotFound, "template 'no-such-template' is unknown or disabled"),
    ({"templateCode": "restyle", "templateVersion": 7, "inputs": {"style": "anime"}, "imageUrl": IMAGE}, NotFound,
     "template 'restyle' version 7"),
    ({"templateCode": "watercolour-portrait", "inputs": {"subject": ""}}, BadRequest, "inputs.subject"),
    ({"templateCode": "watercolour-portrait", "inputs": {}}, BadRequest, "inputs.subject: required"),
    ({"templateCode": "photo-to-clip", "inputs": {"seconds": 9}, "imageUrl": IMAGE}, BadRequest, "inputs.seconds"),
    ({"templateCode": "photo-to-clip", "inputs": {}}, BadRequest, "imageUrl: template photo-to-clip needs 1"),
    ({"templateCode": "watercolour-portrait", "inputs": {"subject": "x"}, "imageUrl": IMAGE}, BadRequest,
     "imageUrl: template watercolour-portrait takes no image"),
    ({"templateCode": "watercolour-portrait", "modelName": "wanx-v1", "inputs": {"subject": "x"}}, BadRequest,
     "modelName or templateCode"),
    ({"prompt": "x"}, BadRequest, "modelName or templateCode"),
    ({"templateCode": "watercolour-portrait", "inputs": {"subject": "x"}, "prompt": "mine"}, BadRequest, "prompt: not"),
    ({"templateCode": "watercolour-portrait", "inputs": {"subject": "x"}, "parameters": {"n": 4}}, BadRequest,
     "parameters: not"),
    ({"modelName": "wanx-v1", "prompt": "x", "inputs": {"a": 1}}, BadRequest, "inputs: only with templateCode"),
    ({"modelName": "wanx2.1-t2v-plus", "prompt": "x", "parameters": {"size": "832*480"}}, BadRequest,
     "parameters.size"),
])
def test_a_bad_template_or_video_request_changes_nothing_and_says_what_is_wrong(body, error, message):
    grant("alice", 100)
    before = snapshot()
    with pytest.raises(error) as refused:
        submit(**body)
    assert message in str(refused.value.message)
    with pytest.raises(error):
        submission.quote(request(**body))
    assert snapshot() == before


def test_not_enough_points_for_the_template_is_a_402_before_anything_is_written():
    grant("alice", 30)  # cinematic-clip: 12 points a second x 5 s = 60
    before = snapshot()
    with pytest.raises(InsufficientPoints, match="costs 60"):
        submit(templateCode="cinematic-clip", inputs={"subject": "a paper boat"})
    assert snapshot() == before


def test_a_video_task_gets_the_video_deadline_and_its_own_counter(monkeypatch):
    grant("alice", 200)
    task = submit(modelName="wanx2.1-i2v-turbo", imageUrl=IMAGE, parameters={"duration": 4})
    assert (task.points_cost, task.task_type) == (40, "image_to_video")
    stored = tasks.get_task(task.task_no)
    assert tasks.deadline_seconds(stored) == 1800  # VideoTaskDeadlineSeconds; images keep TaskDeadlineSeconds
    image = submit(modelName="wanx-v1", prompt="x")
    assert tasks.deadline_seconds(tasks.get_task(image.task_no)) == 600
    created = stored.deadline_at - timedelta(seconds=1800)
    assert abs((created - tasks.get_task(image.task_no).deadline_at + timedelta(seconds=600)).total_seconds()) < 5
    monkeypatch.setenv("VIDEO_TASK_DEADLINE_SECONDS", "900")
    from aigc.core.config import get_settings

    get_settings.cache_clear()
    assert tasks.deadline_seconds(stored) == 900
    assert points.task_total("alice", "image_to_video") == 1
    assert points.task_total("alice", None) == 2
    assert PointsItem.get("alice", points.BALANCE).image_to_video_count == 1


def test_the_task_view_says_what_the_result_is_and_how_it_was_priced():
    grant("alice", 200)
    task = submit(modelName="wanx2.1-t2v-turbo", prompt="a kite", parameters={"size": "832*480"})
    assert (task.result_type, task.duration_seconds, task.resolution) == ("video", 5.0, "832x480")
    assert task.pricing.model_dump(exclude_none=True) == {
        "base": 10, "factors": [{"kind": "perSecond", "label": "5 seconds", "factor": 5}], "total": 50}
    stored = tasks.get_task(task.task_no)
    assert tasks.complete(stored, ["results/alice/x/1.mp4"], "results/alice/x/thumbnail.jpg",
                          {"width": 208, "height": 120, "durationSeconds": 4.97, "codec": "h264", "frames": 20})
    from aigc.api.views import task_view

    view = task_view(reload(stored), presign=False, queue=False)
    assert (view.status, view.duration_seconds, view.resolution) == (TaskStatus.COMPLETED, 4.97, "208x120")
    image = submit(modelName="wanx-v1", prompt="x", parameters={"size": "720*1280"})
    assert (image.result_type, image.duration_seconds, image.resolution) == ("image", None, "720x1280")
    assert TaskItem.get(image.task_no).template_code is None
