"""Real (if short) video work for the simulator: DashScope Wan text-to-video and image-to-video.

Clips are H.264 MP4s made with PyAV (FFmpeg in its wheel), as DashScope's are: a picture of the same
synthetic style as the simulator's images (or the user's image as the first frame) with a slow
camera push-in and pan, the prompt as a caption. The clip has the length asked for; its frame rate
and scale are the simulator's config (`video_fps`, `video_scale`), so tests make a few small frames.
"""
from __future__ import annotations

import math
import tempfile

import av
import cv2
import numpy as np

from . import imaging

# DashScope's documented tiers (wanx2.1): text-to-video sizes, image-to-video resolutions (their area).
T2V_SIZES = {"832*480", "480*832", "624*624", "1280*720", "720*1280", "960*960", "1088*832", "832*1088"}
T2V_SIZES_BY_MODEL = {
    "wanx2.1-t2v-turbo": T2V_SIZES,
    "wanx2.1-t2v-plus": {"1280*720", "720*1280", "960*960", "1088*832", "832*1088"},
}
I2V_RESOLUTIONS_BY_MODEL = {"wanx2.1-i2v-turbo": {"480P", "720P"}, "wanx2.1-i2v-plus": {"720P"}}
DURATIONS_BY_MODEL = {"wanx2.1-t2v-turbo": {5}, "wanx2.1-t2v-plus": {5}, "wanx2.1-i2v-turbo": {3, 4, 5},
                      "wanx2.1-i2v-plus": {5}}
TIER_AREA = {"480P": 832 * 480, "720P": 1280 * 720}
IMAGE_SIDE = (360, 2000)  # image-to-video: each side of the first frame, in pixels
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class ImageRejected(Exception):
    """The first frame breaks DashScope's image rules (code, message)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def validate(model: str, kind: str, inp: dict, params: dict) -> str | None:
    """Name of the first out-of-spec field (DashScope answers 400 InvalidParameter naming it), or None."""
    if model not in DURATIONS_BY_MODEL or (kind == "t2v") != (model in T2V_SIZES_BY_MODEL):
        return "Model not exist."
    prompt = inp.get("prompt")
    if kind == "t2v" and (not isinstance(prompt, str) or not prompt.strip()):
        return "prompt"
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 800):
        return "prompt"
    if "negative_prompt" in inp and (not isinstance(inp["negative_prompt"], str) or len(inp["negative_prompt"]) > 500):
        return "negative_prompt"
    if kind == "i2v" and (not isinstance(inp.get("img_url"), str) or not inp["img_url"]):
        return "img_url"
    duration = params.get("duration", 5)
    if not (isinstance(duration, int) and not isinstance(duration, bool)) or duration not in DURATIONS_BY_MODEL[model]:
        return "duration"
    if kind == "t2v" and params.get("size", "1280*720") not in T2V_SIZES_BY_MODEL[model]:
        return "size"
    if kind == "i2v" and params.get("resolution", "720P") not in I2V_RESOLUTIONS_BY_MODEL[model]:
        return "resolution"
    if "seed" in params and not (isinstance(params["seed"], int) and 0 <= params["seed"] <= 2147483647):
        return "seed"
    for flag in ("prompt_extend", "watermark"):
        if flag in params and not isinstance(params[flag], bool):
            return flag
    return None


def _even(value: float) -> int:
    return max(16, int(round(value / 2)) * 2)


def output_size(kind: str, params: dict, first_frame: np.ndarray | None, scale: float) -> tuple[int, int]:
    """(width, height) of the clip: the size asked for (t2v), or the tier's area at the image's aspect ratio
    (i2v); times the simulator's `video_scale`."""
    if kind == "t2v":
        width, height = imaging.parse_size(params.get("size", "1280*720"), "*")
    else:
        h, w = first_frame.shape[:2]
        area = TIER_AREA[params.get("resolution", "720P")]
        width = math.sqrt(area * w / h)
        height = area / width
    return _even(width * scale), _even(height * scale)


def check_first_frame(data: bytes) -> np.ndarray:
    """The image-to-video input as RGB, or ImageRejected with DashScope's code."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected("InvalidParameter.DataInspection", "The image size is not supported for the data inspection.")
    try:
        rgb = imaging.decode_image(data)
    except imaging.ImageReadError:
        raise ImageRejected("InvalidParameter.DataInspection",
                            "The media format is not supported or incorrect for the data inspection.") from None
    h, w = rgb.shape[:2]
    if not (IMAGE_SIDE[0] <= w <= IMAGE_SIDE[1] and IMAGE_SIDE[0] <= h <= IMAGE_SIDE[1]):
        raise ImageRejected("InvalidParameter", f"The image resolution is invalid: each side must be within "
                                                f"[{IMAGE_SIDE[0]}, {IMAGE_SIDE[1]}], got {w}x{h}.")
    return rgb


def _frames(base: np.ndarray, size: tuple[int, int], count: int, seed: str):
    """A slow push-in with a little pan over `base` (larger than the frame), `count` frames of `size`."""
    width, height = size
    bh, bw = base.shape[:2]
    rng = imaging._rng("video", seed)
    pan_x, pan_y = float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05))
    for index in range(count):
        t = index / max(1, count - 1)
        zoom = 1.0 + 0.18 * t  # the crop shrinks: the camera moves in
        cw, ch = bw / zoom, bh / zoom
        cx = bw / 2 + pan_x * bw * t
        cy = bh / 2 + pan_y * bh * t
        x0 = int(min(max(0.0, cx - cw / 2), bw - cw))
        y0 = int(min(max(0.0, cy - ch / 2), bh - ch))
        crop = base[y0:y0 + int(ch), x0:x0 + int(cw)]
        yield cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def make_clip(kind: str, prompt: str, params: dict, *, first_frame: np.ndarray | None, fps: float, scale: float,
              seed: str) -> bytes:
    """An H.264 MP4 (yuv420p, moov first) of `duration` seconds at `fps`."""
    width, height = output_size(kind, params, first_frame, scale)
    duration = int(params.get("duration", 5))
    count = max(2, int(round(duration * fps)))
    if kind == "i2v":
        base = imaging._cover_resize(first_frame, (width, height))  # the image is the first frame
    else:
        base = imaging.generate_picture(_even(width * 1.25), _even(height * 1.25), prompt,
                                        params.get("seed", seed), label=False)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/clip.mp4"
        _encode(path, base, (width, height), count, fps, prompt, params, seed)
        with open(path, "rb") as clip:
            return clip.read()


def _encode(path: str, base: np.ndarray, size: tuple[int, int], count: int, fps: float, prompt: str, params: dict,
            seed: str) -> None:
    width, height = size
    # faststart: the index (moov) before the frames, as a streamed clip has it (it rewrites the file by name)
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "stillimage", "crf": "28"}
        for rgb in _frames(base, (width, height), count, seed):
            rgb = np.ascontiguousarray(rgb)
            if prompt:
                imaging.draw_label(rgb, imaging._ascii(prompt, 28) or "#", "tl")
            if params.get("watermark"):
                imaging.draw_label(rgb, "AI-generated", "br")
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def corrupt_clip(seed: str) -> bytes:
    """Bytes that start like an MP4 and are not one (the `corrupt_video` directive)."""
    rng = imaging._rng("corrupt", seed)
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
