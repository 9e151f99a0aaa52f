"""Issue 19 through the real ASL, the real handlers and the simulator's real MP4s: text-to-video and
image-to-video complete with a playable clip in S3 (read back: its length and size) and a poster JPEG;
a video past its deadline, a damaged clip, a clip over the maximum and an image DashScope refuses are all
refunded with a clear code while the execution itself succeeds; a template task over HTTP is charged its
quoted price and keeps its version."""
from __future__ import annotations

import io
import tempfile
from datetime import timedelta

import av
import boto3
import pytest
import requests
from PIL import Image

from aigc.core.timeutil import utcnow
from aigc.store.db import TaskItem

SCALE, FPS = 0.25, 4  # the simulator's clips: a quarter of the size asked for, 4 frames a second


@pytest.fixture
def small_clips(simulator):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)
    response = requests.post(f"{simulator.url}/_sim/config", json={"video_scale": SCALE, "video_fps": FPS}, timeout=5)
    assert response.status_code == 200, response.text
    yield
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)
    requests.post(f"{simulator.url}/_sim/config", json={"latency_min": 0.3, "latency_max": 0.5,
                                                        "max_concurrency": 50}, timeout=5)


def _clip(url: str) -> dict:
    """The MP4 at `url`, read back with PyAV."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    with tempfile.NamedTemporaryFile(suffix=".mp4") as spool:
        spool.write(response.content)
        spool.flush()
        with av.open(spool.name) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            return {"seconds": float(stream.duration * stream.time_base), "size": (stream.width, stream.height),
                    "codec": stream.codec_context.name, "frames": frames, "bytes": len(response.content)}


def _poster(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def _objects(task_no: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=_bucket(), Prefix=f"results/alice/{task_no}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _bucket() -> str:
    from aigc.core.config import get_settings

    return get_settings().results_bucket


def test_text_to_video_completes_with_a_playable_mp4_and_a_poster(app, small_clips):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx2.1-t2v-turbo", prompt="a paper boat drifting down a rainy street",
                              parameters={"size": "832*480", "seed": 3})
    assert status == 200, body
    accepted = body["data"]
    assert (accepted["pointsCost"], accepted["resultType"], accepted["durationSeconds"]) == (50, "video", 5.0)
    assert accepted["pricing"] == {"base": 10, "total": 50, "factors": [
        {"kind": "perSecond", "label": "5 seconds", "factor": 5.0, "points": None}]}
    task_no = accepted["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert f"results/alice/{task_no}/1.mp4" in task["resultUrl"]
    clip = _clip(task["resultUrl"])
    assert clip["codec"] == "h264" and clip["frames"] == 5 * FPS
    assert clip["seconds"] == pytest.approx(5.0, abs=0.01)
    assert clip["size"] == (208, 120)  # 832x480 at the simulator's scale
    assert (task["durationSeconds"], task["resolution"]) == (pytest.approx(5.0, abs=0.01), "208x120")
    poster = _poster(task["thumbnailUrl"])
    assert poster.format == "JPEG" and poster.size == (208, 120)
    assert _objects(task_no) == [f"results/alice/{task_no}/1.mp4", f"results/alice/{task_no}/thumbnail.jpg"]
    head = boto3.client("s3").head_object(Bucket=_bucket(), Key=f"results/alice/{task_no}/1.mp4")
    assert (head["ContentType"], head["ContentLength"]) == ("video/mp4", clip["bytes"])
    assert app.ledger("alice", task_no) == [("DEBIT", -50)]
    assert app.balance("alice") == 50


def test_image_to_video_starts_from_the_image_and_keeps_its_aspect(app, small_clips):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx2.1-i2v-turbo", imageUrl=app.sample_url(640, 480),
                              prompt="the hills come to life", parameters={"duration": 3, "resolution": "480P"})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert body["data"]["pointsCost"] == 30
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    clip = _clip(task["resultUrl"])
    assert clip["seconds"] == pytest.approx(3.0, abs=0.01) and clip["frames"] == 3 * FPS
    width, height = clip["size"]
    assert width / height == pytest.approx(640 / 480, rel=0.03)  # the tier's area at the image's 4:3
    assert task["resolution"] == f"{width}x{height}"
    poster = _poster(task["thumbnailUrl"])
    assert poster.size == (width, height)
    assert app.balance("alice") == 70


def test_a_video_past_its_deadline_is_refunded_as_timed_out(app, small_clips):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx2.1-t2v-turbo", prompt="a very slow sunrise [sim:seconds=3600]")
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    item = TaskItem.get(task_no)
    # video tasks get VideoTaskDeadlineSeconds (30 minutes), not the images' 10, plus the queue's 30
    assert (item.deadline_at - utcnow()).total_seconds() == pytest.approx(1800 + 1800, abs=30)
    item.update(actions=[TaskItem.deadline_at.set(utcnow() - timedelta(seconds=1))])  # rather than wait for it
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert (task["status"], task["errorCode"], task["refunded"]) == ("failed", "Timeout", True)
    assert "30 minutes" in task["errorMessage"]
    assert app.ledger("alice", task_no) == [("DEBIT", -50), ("REFUND", 50)]
    assert _objects(task_no) == []


def test_a_damaged_clip_fails_the_task_not_the_execution(app, small_clips):
    app.grant("alice", 100)
    task_no = app.submit(modelName="wanx2.1-t2v-turbo", prompt="a storm [sim:corrupt_video=1]")[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    assert "Refunded" in app.states_visited(task_no)
    task = app.task(task_no)
    assert (task["status"], task["errorCode"], task["refunded"]) == ("failed", "ResultCorrupt", True)
    assert task["errorMessage"] == "The video service returned a file that is not a playable video. Please try again."
    assert app.balance("alice") == 100
    assert _objects(task_no) == []


def test_a_clip_over_the_maximum_is_refused_before_the_copy_and_refunded(app, small_clips, monkeypatch):
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "max_video_bytes", 2000)  # MAX_VIDEO_BYTES; the clips are about 10 KB
    app.grant("alice", 100)
    task_no = app.submit(modelName="wanx2.1-t2v-turbo", prompt="a long take")[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert (task["status"], task["errorCode"], task["refunded"]) == ("failed", "VideoTooLarge", True)
    assert "larger than we can store" in task["errorMessage"]
    assert app.balance("alice") == 100
    assert _objects(task_no) == []


@pytest.mark.parametrize("image, code, says", [
    ((200, 200), "InvalidParameter", "360 to 2000 pixels"),  # too small a first frame
    (None, "InvalidParameter.DataInspection", "could not use your image"),  # not an image at all
])
def test_an_image_dashscope_refuses_for_a_video_is_refunded_with_a_clear_message(app, small_clips, image, code, says):
    app.grant("alice", 100)
    url = app.sample_url(*image) if image else f"{app.sim.url}/samples/_corrupt.png"
    task_no = app.submit(modelName="wanx2.1-i2v-turbo", imageUrl=url)[1]["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert (task["status"], task["errorCode"], task["refunded"]) == ("failed", code, True)
    assert says in task["errorMessage"]
    assert app.balance("alice") == 100


def test_a_template_video_over_http_charges_its_quote_and_keeps_its_version(app, small_clips):
    status, listed = app.api("GET", "/templates", user=None, query={"category": "video"})
    assert status == 200, listed
    clip_template = next(t for t in listed["data"] if t["code"] == "photo-to-clip")
    assert (clip_template["version"], clip_template["resultType"], clip_template["examplePrice"]) == (1, "video", 36)
    body = {"templateCode": "photo-to-clip", "inputs": {"seconds": 4, "motion": "leaves drift in the wind"},
            "imageUrl": app.sample_url(480, 480)}
    status, quoted = app.api("POST", "/user/ai/tasks/quote", body=body)
    assert status == 200, quoted
    assert quoted["data"]["pricing"]["total"] == 48  # 12 points a second x 4 s
    app.grant("alice", 100)
    status, accepted = app.submit(**body)
    assert status == 200, accepted
    task_no = accepted["data"]["taskNo"]
    assert accepted["data"]["pointsCost"] == 48 and accepted["data"]["pricing"] == quoted["data"]["pricing"]
    assert (accepted["data"]["templateCode"], accepted["data"]["templateVersion"]) == ("photo-to-clip", 1)
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert _clip(task["resultUrl"])["seconds"] == pytest.approx(4.0, abs=0.01)
    assert app.balance("alice") == 52
    status, refused = app.submit(templateCode="photo-to-clip", inputs={"seconds": 9}, imageUrl=app.sample_url())
    assert (status, refused["message"].split(":")[0]) == (400, "inputs.seconds")
    status, missing = app.submit(templateCode="no-such-template", inputs={})
    assert status == 404 and "no-such-template" in missing["message"]
    assert app.balance("alice") == 52
