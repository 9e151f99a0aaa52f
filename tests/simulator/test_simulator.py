"""The simulator driven over real HTTP with the real adapters."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from aigc.core.errors import ProviderRejected, ProviderThrottled
from aigc.providers.base import ProviderRequest
from aigc.providers.dashscope import DashScopeProvider
from aigc.providers.openai_images import OpenAIImagesProvider

DS_KEY = "sim-dashscope-key"
OA_KEY = "sim-openai-key"


def _img(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _fetch(url: str) -> np.ndarray:
    r = requests.get(url, timeout=10)
    r.raise_for_status()
    return _img(r.content)


def _ds(sim) -> DashScopeProvider:
    return DashScopeProvider(sim.url, DS_KEY)


def _wait(provider, task_id, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        job = provider.poll(task_id)
        if job.status not in ("PENDING", "RUNNING", "SUSPENDED"):
            return job
        if time.time() > deadline:
            raise AssertionError(f"waited {timeout} s for simulator job {task_id} to end; it is {job.status}")
        time.sleep(0.05)


def _outpaint(sim, params, image_url=None, w=512, h=512):
    url = image_url or f"{sim.url}/samples/cat.png?w={w}&h={h}"
    p = _ds(sim)
    job = p.submit(ProviderRequest(model="image-out-painting", task_type="outpainting",
                                   image_urls=[url], parameters=params))
    assert job.status == "PENDING" and job.provider_task_id
    return _wait(p, job.provider_task_id)


def test_outpainting_scale_keeps_original_in_centre(sim):
    original = _fetch(f"{sim.url}/samples/cat.png?w=512&h=512")
    done = _outpaint(sim, {"x_scale": 2.0, "y_scale": 2.0})
    assert done.status == "SUCCEEDED", done
    out = _fetch(done.output_urls[0])
    assert out.shape == (1024, 1024, 3)
    assert np.array_equal(out[256:768, 256:768], original)
    # the new area is not a flat colour
    assert out[:200, :200].std() > 1.0


def test_outpainting_output_ratio_16_9(sim):
    original = _fetch(f"{sim.url}/samples/cat.png?w=512&h=512")
    done = _outpaint(sim, {"output_ratio": "16:9"})
    out = _fetch(done.output_urls[0])
    h, w = out.shape[:2]
    assert h == 512 and abs(w / h - 16 / 9) < 0.01
    x0 = (w - 512) // 2
    assert np.array_equal(out[:, x0:x0 + 512], original)


def test_outpainting_offsets(sim):
    original = _fetch(f"{sim.url}/samples/cat.png?w=512&h=512")
    done = _outpaint(sim, {"left_offset": 100, "right_offset": 20, "top_offset": 50, "bottom_offset": 0,
                           "add_watermark": False})
    out = _fetch(done.output_urls[0])
    assert out.shape == (562, 632, 3)
    assert np.array_equal(out[50:562, 100:612], original)


def test_outpainting_priority_ratio_beats_scale_and_scale_beats_offsets(sim):
    done = _outpaint(sim, {"output_ratio": "4:3", "x_scale": 2.0, "left_offset": 100})
    out = _fetch(done.output_urls[0])
    assert out.shape[:2] == (512, 683)  # 4:3 from 512x512, x_scale and offsets ignored
    done = _outpaint(sim, {"x_scale": 1.5, "left_offset": 300})
    out = _fetch(done.output_urls[0])
    assert out.shape[:2] == (512, 768)  # x_scale wins over left_offset


def test_outpainting_angle_then_scale(sim):
    done = _outpaint(sim, {"angle": 45, "x_scale": 1.5, "y_scale": 1.5})
    out = _fetch(done.output_urls[0])
    rotated = int(np.ceil(512 * np.sqrt(2)))  # 45 degrees expands the canvas to the bounding box
    assert abs(out.shape[0] - round(rotated * 1.5)) <= 2 and abs(out.shape[1] - round(rotated * 1.5)) <= 2


def test_outpainting_invalid_parameters_rejected_at_submit(sim):
    p = _ds(sim)
    for params, field in [({"angle": 360}, "angle"), ({"output_ratio": "2:1"}, "output_ratio"),
                          ({"x_scale": 3.5}, "x_scale"), ({"left_offset": -1}, "left_offset"),
                          ({"add_watermark": "yes"}, "add_watermark")]:
        with pytest.raises(ProviderRejected) as e:
            p.submit(ProviderRequest(model="image-out-painting", task_type="outpainting",
                                     image_urls=[f"{sim.url}/samples/a.png"], parameters=params))
        assert e.value.code == "InvalidParameter" and e.value.http_status == 400
        assert f"the parameters must conform to the specification: {field}" in e.value.message


def test_protocol_errors(sim):
    body = {"model": "image-out-painting", "input": {"image_url": f"{sim.url}/samples/a.png"}}
    url = sim.url + "/api/v1/services/aigc/image2image/out-painting"
    r = requests.post(url, json=body, headers={"Authorization": f"Bearer {DS_KEY}"})
    assert r.status_code == 403 and r.json()["code"] == "AccessDenied"
    r = requests.post(url, json=body, headers={"Authorization": "Bearer nope", "X-DashScope-Async": "enable"})
    assert r.status_code == 401 and r.json()["code"] == "InvalidApiKey" and r.json()["request_id"]
    r = requests.post(url, data="{not json", headers={"Authorization": f"Bearer {DS_KEY}",
                                                       "X-DashScope-Async": "enable"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter.JsonPhrase"
    with pytest.raises(ProviderRejected) as e:
        DashScopeProvider(sim.url, "wrong-key").poll("x")
    assert e.value.code == "InvalidApiKey" and "wrong-key" not in str(e.value)


def test_download_and_format_failures_end_the_job(sim):
    done = _outpaint(sim, {}, image_url=f"{sim.url}/samples/missing.jpg")
    assert (done.status, done.error_code, done.error_message) == (
        "FAILED", "InvalidParameter.FileDownload", "oss download error")
    done = _outpaint(sim, {}, image_url=f"{sim.url}/samples/_corrupt.png")
    assert (done.status, done.error_code) == ("FAILED", "InvalidParameter.ImageFormat")


def test_fail_directive(sim):
    done = _outpaint(sim, {}, image_url=f"{sim.url}/samples/a.png?sim_fail=InternalError.Algo")
    assert (done.status, done.error_code, done.error_message) == (
        "FAILED", "InternalError.Algo", "algorithm process error")
    p = _ds(sim)
    job = p.submit(ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image",
                                   prompt="a cat [sim:fail=DataInspectionFailed]"))
    done = _wait(p, job.provider_task_id)
    assert (done.status, done.error_code) == ("FAILED", "DataInspectionFailed")


def test_submit_error_directive(sim):
    with pytest.raises(ProviderRejected) as e:
        _ds(sim).submit(ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image",
                                        prompt="x [sim:submit_error=InvalidParameter]"))
    assert e.value.code == "InvalidParameter" and e.value.http_status == 400


def test_throttling_at_max_concurrency(sim):
    p = _ds(sim)
    req = ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image", prompt="slow [sim:seconds=3]")
    ids = [p.submit(req).provider_task_id for _ in range(2)]
    with pytest.raises(ProviderThrottled) as e:
        p.submit(req)
    assert e.value.http_status == 429 and e.value.code.startswith("Throttling")
    # another model has its own budget
    other = ProviderRequest(model="wanx2.1-t2i-plus", task_type="text_to_image", prompt="other [sim:seconds=3]")
    assert p.submit(other).status == "PENDING"
    assert all(p.cancel(i) for i in ids)
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["refused"] == 1 and stats["created"] == 3 and stats["peak_concurrency"] == 2
    requests.post(sim.url + "/_sim/reset", timeout=5).raise_for_status()
    assert requests.get(sim.url + "/_sim/stats", timeout=5).json()["refused"] == 0


def test_cancel_pending_ok_running_refused(sim):
    p = _ds(sim)
    req = ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image",
                          prompt="c [sim:seconds=2,pending=0.3]")
    first = p.submit(req).provider_task_id
    assert p.cancel(first) is True
    assert p.poll(first).status == "CANCELED"
    second = p.submit(req).provider_task_id
    time.sleep(0.4)
    assert p.poll(second).status == "RUNNING"
    assert p.cancel(second) is False
    assert p.cancel("00000000-0000-0000-0000-000000000000") is False


def test_unknown_and_expired_tasks_answer_unknown(sim):
    p = _ds(sim)
    assert p.poll("00000000-0000-0000-0000-000000000000").status == "UNKNOWN"
    requests.post(sim.url + "/_sim/config", json={"result_ttl_seconds": 0.5}).raise_for_status()
    done = _outpaint(sim, {"x_scale": 1.2})
    assert done.status == "SUCCEEDED"
    url = done.output_urls[0]
    assert requests.get(url).status_code == 200
    time.sleep(0.6)
    assert p.poll(done.provider_task_id).status == "UNKNOWN"
    r = requests.get(url)
    assert r.status_code == 403 and b"expired" in r.content


def test_result_url_signature_checked(sim):
    done = _outpaint(sim, {"x_scale": 1.1})
    assert "Expires=" in done.output_urls[0] and "Signature=" in done.output_urls[0]
    assert requests.get(done.output_urls[0].replace("Signature=", "Signature=0")).status_code == 403


def test_text_to_image_deterministic_and_sized(sim):
    p = _ds(sim)

    def run(prompt, seed, size="768*512", n=1):
        job = p.submit(ProviderRequest(model="wanx2.1-t2i-turbo", task_type="text_to_image", prompt=prompt,
                                       parameters={"size": size, "n": n, "seed": seed}))
        done = _wait(p, job.provider_task_id)
        assert done.status == "SUCCEEDED", done
        return [_fetch(u) for u in done.output_urls]

    a, b = run("a red fox", 7), run("a red fox", 7)
    assert a[0].shape == (512, 768, 3) and np.array_equal(a[0], b[0])
    assert not np.array_equal(run("a red fox", 8)[0], a[0])
    two = run("two foxes", 1, size="1024*1024", n=2)
    assert len(two) == 2 and two[0].shape == (1024, 1024, 3)
    with pytest.raises(ProviderRejected) as e:
        run("x", 1, size="100*100")
    assert "size" in e.value.message


def test_image_to_image_wanx_imageedit(sim):
    p = _ds(sim)
    src = f"{sim.url}/samples/house.png?w=640&h=512"
    job = p.submit(ProviderRequest(model="wanx2.1-imageedit", task_type="image_to_image",
                                   prompt="watercolor", image_urls=[src],
                                   parameters={"function": "stylization_all", "seed": 3, "strength": 0.7}))
    done = _wait(p, job.provider_task_id)
    assert done.status == "SUCCEEDED", done
    out, original = _fetch(done.output_urls[0]), _fetch(src)
    assert out.shape == original.shape and not np.array_equal(out, original)


def test_openai_generations_url_and_b64(sim):
    p = OpenAIImagesProvider(sim.url, OA_KEY, allow_private_hosts=True)
    job = p.submit(ProviderRequest(model="sora-image", task_type="text_to_image", prompt="a lighthouse",
                                   parameters={"size": "1536x1024"}))
    assert job.status == "SUCCEEDED" and len(job.output_urls) == 1 and not job.b64_outputs
    assert _fetch(job.output_urls[0]).shape == (1024, 1536, 3)
    job = p.submit(ProviderRequest(model="sora-image", task_type="text_to_image", prompt="a lighthouse",
                                   parameters={"size": "auto", "n": 2, "response_format": "b64_json"}))
    assert len(job.b64_outputs) == 2 and not job.output_urls
    assert _img(base64.b64decode(job.b64_outputs[0])).shape == (1024, 1024, 3)


def test_openai_edits_with_reference_images(sim):
    p = OpenAIImagesProvider(sim.url, OA_KEY, allow_private_hosts=True)
    refs = [f"{sim.url}/samples/a.png?w=300&h=200", f"{sim.url}/samples/b.png?w=256&h=256"]
    job = p.submit(ProviderRequest(model="sora-image", task_type="image_to_image", prompt="make it pop",
                                   image_urls=refs, parameters={"size": "1024x1536"}))
    assert _fetch(job.output_urls[0]).shape == (1536, 1024, 3)
    with pytest.raises(ProviderRejected) as e:
        p.submit(ProviderRequest(model="sora-image", task_type="image_to_image", prompt="x",
                                 image_urls=[f"{sim.url}/samples/missing.jpg"]))
    assert e.value.code == "InvalidParameter.FileDownload"


def test_openai_errors(sim):
    with pytest.raises(ProviderRejected) as e:
        OpenAIImagesProvider(sim.url, "bad-openai-key").submit(
            ProviderRequest(model="m", task_type="text_to_image", prompt="x"))
    assert e.value.code == "invalid_api_key" and e.value.http_status == 401
    assert "bad-openai-key" not in str(e.value)
    p = OpenAIImagesProvider(sim.url, OA_KEY, allow_private_hosts=True)
    with pytest.raises(ProviderRejected) as e:
        p.submit(ProviderRequest(model="m", task_type="text_to_image", prompt="x", parameters={"size": "9x9"}))
    assert e.value.code == "invalid_value"
    from aigc.core.errors import ProviderUnavailable
    with pytest.raises(ProviderUnavailable):
        p.submit(ProviderRequest(model="m", task_type="text_to_image", prompt="x [sim:fail=InternalError]"))


def test_control_endpoints(sim):
    cfg = requests.get(sim.url + "/_sim/config").json()
    assert cfg["max_concurrency"] == 2 and cfg["latency_min"] == 0.2
    r = requests.post(sim.url + "/_sim/config", json={"max_concurrency": 5})
    assert r.json()["max_concurrency"] == 5
    assert requests.post(sim.url + "/_sim/config", json={"nope": 1}).status_code == 400
    requests.post(sim.url + "/_sim/reset").raise_for_status()
    assert requests.get(sim.url + "/_sim/config").json()["max_concurrency"] == 2
