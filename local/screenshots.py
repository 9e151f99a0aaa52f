"""`make screenshots`: the web app's pages at phone and desktop widths, into docs/screenshots/.

Starts a local stack of its own (free ports, fast simulated jobs), makes some history through the API
(a purchase through the local Stripe, outpaintings, text-to-image, a failed and a cancelled task), then
Playwright drives the system's Chromium (as tests/browser does: nothing is downloaded) over each page and
saves small PNGs (256-colour). Chinese text needs a CJK font (Debian: fonts-wqy-microhei or fonts-noto-cjk).

    python -m local.screenshots [--out docs/screenshots]
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from local import auth

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--font-render-hinting=none"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
MAX_HEIGHT = {"desktop": 1500, "phone": 1700}
USER, ADMIN = "mei", "ops-lead"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, log: Path):
        self.port, self.moto, self.sim, self.ws = (_free_port() for _ in range(4))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])}
        command = [sys.executable, "-m", "local", "--port", str(self.port), "--moto-port", str(self.moto),
                   "--sim-port", str(self.sim), "--ws-port", str(self.ws), "--wait-scale", "0.05", "--quiet",
                   "--param", "SubmitRateLimitPerMinute=1000", "--sim", "latency_min=0.3", "--sim", "latency_max=0.6",
                   "--sim", "max_concurrency=50"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the local stack exited: see {log}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the local stack did not start: see {log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sample(self, name: str, w: int, h: int, **directives) -> str:
        extra = "".join(f"&{k}={v}" for k, v in directives.items())
        return f"http://127.0.0.1:{self.sim}/samples/{name}.png?w={w}&h={h}{extra}"

    def call(self, method: str, path: str, user: str = USER, admin: bool = False, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {auth.mint(user, admin=admin)}", **kwargs.pop("headers", {})}
        response = requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        if response.status_code != 200:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()["data"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


def make_history(stack: Stack) -> None:
    """What the pages show: a purchase, a grant, finished tasks of several kinds, a failure, a cancel."""
    order = stack.call("POST", "/user/points/checkout", json={"packId": "standard"})
    requests.post(f"http://127.0.0.1:{stack.sim}/_sim/stripe/sessions/{order['providerSessionId']}/pay", json={},
                  timeout=30).raise_for_status()
    stack.call("POST", "/admin/points/grant", user=ADMIN, admin=True,
               json={"userId": USER, "amount": 100, "reason": "welcome", "validDays": 30})
    submits = [
        {"modelName": "image-out-painting", "imageUrl": stack.sample("harbour", 480, 360), "parameters": {"outputRatio": "16:9"}},
        {"modelName": "wanx-v1", "prompt": "a red kite over the sea at dawn", "parameters": {"n": 2}},
        {"modelName": "image-out-painting", "imageUrl": stack.sample("meadow", 360, 480), "parameters": {"xScale": 1.5, "yScale": 1.5}},
        {"modelName": "image-out-painting", "imageUrl": stack.sample("blurry", 300, 300, sim_fail="InvalidParameter.ImageContent"),
         "parameters": {"angle": 30, "xScale": 2}},
        {"modelName": "sc_soraimg_text_3x2", "prompt": "a paper lantern festival, watercolour"},
        {"modelName": "image-out-painting", "imageUrl": stack.sample("portrait", 400, 400), "parameters": {"leftOffset": 120, "rightOffset": 120}},
    ]
    numbers = [stack.call("POST", "/user/ai/tasks/submit", json=body)["taskNo"] for body in submits]
    slow = stack.call("POST", "/user/ai/tasks/submit", json={"modelName": "image-out-painting", "imageUrl": stack.sample(
        "street", 400, 300, sim_seconds=600), "parameters": {"xScale": 2}})["taskNo"]
    stack.call("POST", f"/user/ai/tasks/{slow}/cancel")
    deadline = time.monotonic() + 60
    for number in numbers:
        while stack.call("GET", f"/user/ai/tasks/{number}")["status"] in ("queued", "processing"):
            if time.monotonic() > deadline:
                raise SystemExit(f"task {number} did not finish")
            time.sleep(0.3)
    time.sleep(2)  # the business numbers follow the streams


def save(page, path: Path, kind: str) -> None:
    from PIL import Image

    page.evaluate("document.activeElement && document.activeElement.blur()")
    height = min(page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT[kind])
    png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORTS[kind]["width"], "height": height})
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size // 1024} KB")


def shoot(stack: Stack, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("AIGC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    app = f"{stack.url}/app/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for kind, viewport in VIEWPORTS.items():
            for lang in ("en", "zh-CN") if kind == "desktop" else ("en",):
                context = browser.new_context(viewport=viewport, locale=lang, device_scale_factor=1, bypass_csp=True)
                page = context.new_page()
                suffix = "" if lang == "en" else "-zh"
                page.goto(f"{app}#token={auth.mint(USER, ttl=3600)}")
                page.wait_for_selector("#model-select")
                page.evaluate(f"localStorage.setItem('aigc.lang', '{lang}')")
                page.reload()
                page.wait_for_selector("#model-select")
                page.select_option("#model-select", "image-out-painting")
                page.locator("input[name=imageUrl]").fill(stack.sample("harbour", 480, 360))
                page.select_option("select[name=output_ratio]", "16:9")
                page.locator("input[name=x_scale]").fill("2")
                page.wait_for_selector(".price-box .price")
                if kind == "desktop":  # the task panel with a finished result beside the form
                    page.locator("button.submit").click()
                    page.wait_for_selector('.task-panel[data-status="completed"] img.result-media')
                    page.wait_for_function("document.querySelector('.task-panel img.result-media').complete")
                page.evaluate("window.scrollTo(0, 0)")
                save(page, out / f"create-{kind}{suffix}.png", kind)
                if lang != "en":
                    context.close()
                    continue
                page.goto(f"{app}#/tasks")
                page.wait_for_selector(".task-card")
                page.wait_for_function("[...document.querySelectorAll('.task-card img')].every(i => i.complete)")
                save(page, out / f"tasks-{kind}.png", kind)
                page.goto(f"{app}#/points")
                for selector in (".pack", ".balance-big", "tr[data-type]", "tr[data-order]"):
                    page.wait_for_selector(selector)
                save(page, out / f"points-{kind}.png", kind)
                page.goto(f"{app}#token={auth.mint(ADMIN, admin=True, ttl=3600)}")
                page.wait_for_selector("#model-select")
                page.goto(f"{app}#/console")
                page.wait_for_selector("#chart-points canvas")
                time.sleep(0.5)
                save(page, out / f"console-{kind}.png", kind)
                context.close()
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp) / "stack.log")
        try:
            make_history(stack)
            shoot(stack, out)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
