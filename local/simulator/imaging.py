"""Real (if modest) image work for the simulator: outpainting, t2i, i2i, sample pictures."""
from __future__ import annotations

import hashlib
import io
import math

import cv2
import numpy as np
from PIL import Image

MAX_OUTPUT_PIXELS = 40_000_000  # above this the simulated job fails with InvalidParameter.DataInspection


class ImageReadError(Exception):
    """The bytes are not a readable image."""


class OutputTooLarge(Exception):
    """The output would exceed the provider's size limit."""


# --- codecs -----------------------------------------------------------------------------------


def decode_image(data: bytes) -> np.ndarray:
    """Bytes -> RGB uint8 array (H, W, 3)."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # any decoder failure means "read image error"
        raise ImageReadError(str(e)) from e
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _ascii(text: str, limit: int) -> str:
    out = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text.strip())
    return out[:limit]


def draw_label(rgb: np.ndarray, text: str, corner: str = "br", scale_ref: int | None = None) -> None:
    """Draw `text` in a corner with a dark backing box (in place)."""
    h, w = rgb.shape[:2]
    ref = scale_ref or min(h, w)
    font_scale = max(0.35, ref / 1400)
    thickness = max(1, int(round(font_scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    pad = max(4, int(6 * font_scale))
    x = pad if corner[1] == "l" else w - tw - 2 * pad
    y = pad if corner[0] == "t" else h - th - base - 2 * pad
    x, y = max(0, x), max(0, y)
    x2, y2 = min(w, x + tw + 2 * pad), min(h, y + th + base + 2 * pad)
    box = rgb[y:y2, x:x2].astype(np.float32)
    rgb[y:y2, x:x2] = (box * 0.45).astype(np.uint8)
    cv2.putText(rgb, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (255, 255, 255), thickness, cv2.LINE_AA)


def label_box_size(rgb_shape, text: str) -> tuple[int, int]:
    h, w = rgb_shape[:2]
    font_scale = max(0.35, min(h, w) / 1400)
    thickness = max(1, int(round(font_scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    pad = max(4, int(6 * font_scale))
    return tw + 2 * pad, th + base + 2 * pad


# --- outpainting -----------------------------------------------------------------------------


def outpaint_geometry(w: int, h: int, params: dict) -> tuple[int, int, int, int, str]:
    """Canvas (W, H) and the placement (x0, y0) of a w*h picture, by seed 003's priority rules.

    Priority: output_ratio > x_scale/y_scale > *_offset. Returns (W, H, x0, y0, mode).
    """
    ratio = params.get("output_ratio") or ""
    xs = float(params.get("x_scale", 1.0) or 1.0)
    ys = float(params.get("y_scale", 1.0) or 1.0)
    left = int(params.get("left_offset", 0) or 0)
    right = int(params.get("right_offset", 0) or 0)
    top = int(params.get("top_offset", 0) or 0)
    bottom = int(params.get("bottom_offset", 0) or 0)
    if ratio:
        a, b = (int(v) for v in ratio.split(":"))
        target = a / b
        if w / h < target:
            W, H = max(w, int(round(h * target))), h
        else:
            W, H = w, max(h, int(round(w / target)))
        return W, H, (W - w) // 2, (H - h) // 2, "output_ratio"
    if xs > 1.0 or ys > 1.0:
        W, H = int(round(w * xs)), int(round(h * ys))
        return W, H, (W - w) // 2, (H - h) // 2, "scale"
    if left or right or top or bottom:
        return w + left + right, h + top + bottom, left, top, "offset"
    return w, h, 0, 0, "none"


def rotate_expand(rgb: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise by `angle` degrees on an expanded canvas; returns (image, known-mask)."""
    h, w = rgb.shape[:2]
    if not angle % 360:
        return rgb, np.ones((h, w), dtype=bool)
    center = (w / 2.0, h / 2.0)
    m = cv2.getRotationMatrix2D(center, angle, 1.0)  # positive angle = counter-clockwise
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw = int(math.ceil(h * sin + w * cos))
    nh = int(math.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2.0 - center[0]
    m[1, 2] += nh / 2.0 - center[1]
    out = cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (nw, nh), flags=cv2.INTER_NEAREST, borderValue=0)
    # drop the anti-aliased rim so no dark seam is treated as "known"
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    return out, mask > 0


def _fill_unknown(canvas: np.ndarray, known: np.ndarray, seed_key: str, reflect: np.ndarray | None) -> np.ndarray:
    """A plausible fill for the unknown area: low-res inpaint + mirrored texture + blur + grain."""
    H, W = known.shape
    scale = min(1.0, 256.0 / max(H, W))
    sw, sh = max(8, int(round(W * scale))), max(8, int(round(H * scale)))
    small = cv2.resize(canvas, (sw, sh), interpolation=cv2.INTER_AREA)
    small_known = cv2.resize(known.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST)
    small_mask = (small_known == 0).astype(np.uint8) * 255
    small_mask = cv2.dilate(small_mask, np.ones((3, 3), np.uint8))
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    filled_small = cv2.inpaint(bgr, small_mask, 5, cv2.INPAINT_TELEA)
    filled_small = cv2.cvtColor(filled_small, cv2.COLOR_BGR2RGB)
    base = cv2.resize(filled_small, (W, H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    k = max(3, int(max(H, W) * 0.02) | 1)
    base = cv2.GaussianBlur(base, (k, k), 0)

    # distance (pixels) from the known area, for blending texture near the seam into smooth colour far away
    dist = cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 3)
    falloff = max(8.0, 0.25 * min(H, W))
    alpha = np.clip(dist / falloff, 0.0, 1.0)[..., None]
    if reflect is not None:
        soft = cv2.GaussianBlur(reflect.astype(np.float32), (0, 0), sigmaX=1.5)
        fill = (1.0 - alpha) * soft + alpha * base
    else:
        fill = base
    # blur more with distance so the far field looks like an out-of-focus extension
    far = cv2.GaussianBlur(fill, (0, 0), sigmaX=max(2.0, min(H, W) / 64))
    fill = (1.0 - alpha) * fill + alpha * far
    grain = _rng("grain", seed_key).normal(0.0, 3.0, size=(H, W, 1)).astype(np.float32)
    fill = np.clip(fill + grain * alpha, 0, 255)
    return fill.astype(np.uint8)


def outpaint(rgb: np.ndarray, params: dict, seed_key: str = "") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Rotate, then expand by the highest-priority mode, filling the new area plausibly.

    Returns (output, (x0, y0, w, h)): where the (rotated) input sits unchanged in the output.
    """
    angle = float(params.get("angle", 0) or 0)
    rotated, known_rot = rotate_expand(rgb, angle)
    h, w = rotated.shape[:2]
    W, H, x0, y0, mode = outpaint_geometry(w, h, params)
    if W * H > MAX_OUTPUT_PIXELS:
        raise OutputTooLarge(f"{W}x{H}")
    canvas = np.zeros((H, W, 3), np.uint8)
    known = np.zeros((H, W), bool)
    canvas[y0:y0 + h, x0:x0 + w] = rotated
    known[y0:y0 + h, x0:x0 + w] = known_rot
    reflect = None
    if angle % 360 == 0 and (W, H) != (w, h):
        reflect = np.pad(rotated, ((y0, H - h - y0), (x0, W - w - x0), (0, 0)), mode="symmetric")
    if known.all():
        out = canvas
    else:
        fill = _fill_unknown(canvas, known, seed_key, reflect)
        out = np.where(known[..., None], canvas, fill)
    if params.get("add_watermark", True):
        _watermark_outside(out, known)
    return out, (x0, y0, w, h)


def _watermark_outside(out: np.ndarray, known: np.ndarray, text: str = "Generated by AI") -> None:
    """Draw the watermark in the first corner whose box is entirely outside the original pixels."""
    bw, bh = label_box_size(out.shape, text)
    H, W = known.shape
    for corner in ("br", "bl", "tr", "tl"):
        ys = slice(H - bh, H) if corner[0] == "b" else slice(0, bh)
        xs = slice(W - bw, W) if corner[1] == "r" else slice(0, bw)
        if bw <= W and bh <= H and not known[ys, xs].any():
            draw_label(out, text, corner)
            return
    # No free corner (e.g. no expansion): a real provider overlays the original; we do the same.
    draw_label(out, text, "br")


# --- text-to-image ---------------------------------------------------------------------------


def generate_picture(width: int, height: int, prompt: str, seed: int | str, label: bool = True) -> np.ndarray:
    """A deterministic picture for (prompt, seed): gradient sky, sun, hills, shapes, caption."""
    rng = _rng("t2i", prompt, seed)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    c1, c2, c3 = (rng.integers(20, 236, size=3).astype(np.float32) for _ in range(3))
    tilt = float(rng.uniform(-0.4, 0.4))
    t = np.clip(yy + tilt * (xx - 0.5), 0.0, 1.0)
    img = (c1 * (1 - t) + c2 * t) * (1 - 0.25 * xx) + c3 * 0.25 * xx
    img = img.astype(np.float32)
    overlay = img.copy()
    ref = min(width, height)
    # sun / moon
    cx, cy = int(rng.uniform(0.15, 0.85) * width), int(rng.uniform(0.1, 0.4) * height)
    cv2.circle(overlay, (cx, cy), int(ref * rng.uniform(0.06, 0.14)), tuple(float(v) for v in rng.integers(180, 256, 3)), -1, cv2.LINE_AA)
    # hills
    for layer in range(3):
        base_y = height * (0.55 + 0.13 * layer)
        amp = height * rng.uniform(0.03, 0.09)
        freq = rng.uniform(1.0, 3.5)
        phase = rng.uniform(0, 2 * math.pi)
        xs = np.arange(0, width + 8, 8)
        ys = base_y + amp * np.sin(xs / width * 2 * math.pi * freq + phase)
        pts = np.concatenate([np.stack([xs, ys], 1), [[width, height], [0, height]]]).astype(np.int32)
        colour = tuple(float(v) for v in (rng.integers(10, 200, 3) * (1 - 0.2 * layer)))
        cv2.fillPoly(overlay, [pts], colour, cv2.LINE_AA)
    # a few shapes
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(float(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        s = int(ref * rng.uniform(0.03, 0.12))
        if rng.random() < 0.5:
            cv2.rectangle(overlay, (x - s, y - s), (x + s, y + s), colour, -1, cv2.LINE_AA)
        else:
            cv2.circle(overlay, (x, y), s, colour, -1, cv2.LINE_AA)
    img = cv2.addWeighted(overlay, 0.85, img, 0.15, 0)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if label and prompt:
        draw_label(out, _ascii(prompt, 28) or "#", "tl")
    return out


def parse_size(size: str, sep: str) -> tuple[int, int] | None:
    parts = str(size).lower().split(sep)
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


# --- image-to-image --------------------------------------------------------------------------


def stylize(rgb: np.ndarray, prompt: str, seed: int | str, function: str = "stylization_all",
            strength: float = 0.5, size: tuple[int, int] | None = None) -> np.ndarray:
    """Deterministic transformation of `rgb` guided by (prompt, seed, function)."""
    src = rgb
    if size and (src.shape[1], src.shape[0]) != size:
        src = _cover_resize(src, size)
    rng = _rng("i2i", prompt, seed, function)
    f = src.astype(np.float32)
    if function == "super_resolution":
        up = cv2.resize(src, (src.shape[1] * 2, src.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        blur = cv2.GaussianBlur(up, (0, 0), 1.2)
        return cv2.addWeighted(up, 1.6, blur, -0.6, 0)
    if function == "colorization":
        grey = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
        cmap = [cv2.COLORMAP_AUTUMN, cv2.COLORMAP_OCEAN, cv2.COLORMAP_SPRING, cv2.COLORMAP_SUMMER][int(rng.integers(0, 4))]
        coloured = cv2.cvtColor(cv2.applyColorMap(grey, cmap), cv2.COLOR_BGR2RGB).astype(np.float32)
        return np.clip(0.6 * coloured + 0.4 * grey[..., None], 0, 255).astype(np.uint8)
    # default: posterize + cartoon edges + hue shift, blended by strength
    levels = int(rng.integers(3, 7))
    step = 256 / levels
    smooth = cv2.bilateralFilter(src, 7, 60, 60)
    poster = (np.floor(smooth.astype(np.float32) / step) * step + step / 2).clip(0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(poster, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(rng.integers(0, 180))) % 180).astype(np.uint8)
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * 1.25, 0, 255).astype(np.uint8)
    styled = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    edges = cv2.adaptiveThreshold(cv2.medianBlur(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), 5), 255,
                                  cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 3)
    styled *= (edges[..., None].astype(np.float32) / 255.0) * 0.7 + 0.3
    s = float(min(1.0, max(0.0, strength)))
    out = (1 - (0.35 + 0.65 * s)) * f + (0.35 + 0.65 * s) * styled
    return np.clip(out, 0, 255).astype(np.uint8)


def _cover_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to cover `size` (w, h) then centre-crop."""
    tw, th = size
    h, w = rgb.shape[:2]
    s = max(tw / w, th / h)
    nw, nh = max(tw, int(math.ceil(w * s))), max(th, int(math.ceil(h * s)))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = (nw - tw) // 2, (nh - th) // 2
    return resized[y0:y0 + th, x0:x0 + tw].copy()


def blend_references(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Several reference images -> one base picture of `size` (first dominates)."""
    base = _cover_resize(images[0], size).astype(np.float32)
    for i, other in enumerate(images[1:], start=1):
        base = base * (1 - 0.25 / i) + _cover_resize(other, size).astype(np.float32) * (0.25 / i)
    return base.clip(0, 255).astype(np.uint8)


# --- samples ---------------------------------------------------------------------------------


def sample_picture(name: str, width: int, height: int) -> np.ndarray:
    """A deterministic test picture (no caption, rich texture) for examples and tests."""
    img = generate_picture(width, height, f"sample:{name}", 0, label=False)
    # checker texture so tests can detect shifts precisely
    rng = _rng("sample", name)
    cell = max(8, min(width, height) // 16)
    yy, xx = np.mgrid[0:height, 0:width]
    checker = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)[..., None]
    tint = rng.integers(-30, 30, 3).astype(np.float32)
    out = img.astype(np.float32) + checker * tint
    return np.clip(out, 0, 255).astype(np.uint8)
