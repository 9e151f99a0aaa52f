"""Issue 19 on the local stack over real HTTP, as a user of the `aigc` CLI: the templates and a quote, a
template video submitted with --template/--input that completes with a playable MP4 (read back) and is
charged its quote, and a text-to-video task downloaded as an .mp4."""
from __future__ import annotations

import json

import av
import pytest
import requests

from tests.e2e.conftest import new_user
from tests.e2e.test_client_cli import aigc


@pytest.fixture
def small_clips(stack):
    """The simulator's clips at a quarter of the size asked for, 4 frames a second (the stack's default
    config is restored after)."""
    before = requests.get(f"{stack.sim_url}/_sim/config", timeout=5).json()
    response = requests.post(f"{stack.sim_url}/_sim/config", json={"video_scale": 0.25, "video_fps": 4}, timeout=5)
    assert response.status_code == 200, response.text
    yield
    requests.post(f"{stack.sim_url}/_sim/config",
                  json={"video_scale": before["video_scale"], "video_fps": before["video_fps"]}, timeout=5)


def _clip(path) -> tuple[float, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base), (stream.width, stream.height)


def test_a_template_clip_from_the_cli_is_charged_its_quote(stack, small_clips, tmp_path):
    user = new_user("vid")
    stack.grant(user, 200)
    listed = aigc(stack, "--json", "templates", "--category", "video")
    assert listed.returncode == 0, listed.stderr
    assert {t["code"] for t in json.loads(listed.stdout)} == {"photo-to-clip", "cinematic-clip"}
    image = f"{stack.sim_url}/samples/harbour.png?w=640&h=480"
    quoted = aigc(stack, "--json", "quote", "--template", "photo-to-clip", "--input", "seconds=4", "--image", image,
                  user=user)
    assert quoted.returncode == 0, quoted.stderr
    price = json.loads(quoted.stdout)["pricing"]["total"]
    assert price == 48
    done = aigc(stack, "--json", "submit", "--template", "photo-to-clip", "--input", "seconds=4",
                "--input", "motion=boats rock gently", "--image", image, "--wait", "--download", "out/",
                user=user, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert (task["status"], task["pointsCost"], task["templateCode"], task["templateVersion"]) == (
        "completed", price, "photo-to-clip", 1)
    [clip] = task["files"]
    assert clip.endswith(".mp4")
    seconds, (width, height) = _clip(tmp_path / clip)
    assert seconds == pytest.approx(4.0, abs=0.01) and width / height == pytest.approx(4 / 3, rel=0.03)
    assert (task["resultType"], task["resolution"]) == ("video", f"{width}x{height}")
    assert stack.balance(user) == 200 - price


def test_a_text_to_video_task_downloads_as_an_mp4(stack, small_clips, tmp_path):
    user = new_user("vid")
    stack.grant(user, 100)
    done = aigc(stack, "submit", "wanx2.1-t2v-turbo", "--prompt", "a paper boat on a rainy street",
                "--param", "size=832*480", "--wait", "--download", "out/", user=user, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    [clip] = (tmp_path / "out").iterdir()
    assert clip.suffix == ".mp4"
    assert _clip(clip) == (pytest.approx(5.0, abs=0.01), (208, 120))
    assert stack.balance(user) == 50
