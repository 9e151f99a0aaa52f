"""Provider simulator: DashScope async image APIs + OpenAI-compatible Images API, doing real image work.

See README.md in this folder for the protocol, the control endpoints and the test directives.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import parse_qs, urlparse

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from . import imaging, video
from . import stripe as stripe_routes

log = logging.getLogger("local.simulator")

# --- error catalogue ---------------------------------------------------------------------------

# (HTTP status, message) per DashScope code. Seed 003's table, plus the platform-wide codes.
DASHSCOPE_ERRORS: dict[str, tuple[int, str]] = {
    "InvalidParameter.JsonPhrase": (400, "input json error"),
    "InvalidParameter.FileDownload": (400, "oss download error"),
    "InvalidParameter.ImageFormat": (400, "read image error"),
    "InvalidParameter.ImageContent": (400, "The image content does not comply with green network verification"),
    "InvalidParameter": (400, "the parameters must conform to the specification: xxx"),
    "InvalidParameter.DataInspection": (400, "The image size is not supported for the data inspection."),
    "InternalError.Algo": (500, "algorithm process error"),
    "InternalError.FileUpload": (500, "oss upload error"),
    "InternalError": (500, "InternalError"),
    "DataInspectionFailed": (400, "Input data may contain inappropriate content."),
    "IPInfringementSuspect": (400, "Input data is suspected of being involved in IP infringement."),
    "InvalidApiKey": (401, "Invalid API-key provided."),
    "AccessDenied": (403, "current user api does not support synchronous calls"),
    "Throttling": (429, "Requests throttling triggered."),
    "Throttling.RateQuota": (429, "Requests rate limit exceeded, please try again later."),
    "Throttling.AllocationQuota": (429, "Allocated quota exceeded, please increase your quota limit."),
    "UnsupportedOperation": (400, "Failed to cancel the task, please confirm if the task is in PENDING status."),
}

OUTPUT_RATIOS = {"", "1:1", "3:4", "4:3", "9:16", "16:9"}
IMAGEEDIT_FUNCTIONS = {
    "stylization_all", "stylization_local", "description_edit", "description_edit_with_mask",
    "remove_watermark", "expand", "super_resolution", "colorization", "doodle", "control_cartoon_feature",
}
OPENAI_SIZES = {"1024x1024": (1024, 1024), "1024x1536": (1024, 1536), "1536x1024": (1536, 1024),
                "auto": (1024, 1024)}
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

_DIRECTIVE_RE = re.compile(r"\[sim:([^\]]*)\]", re.IGNORECASE)


@dataclasses.dataclass
class SimConfig:
    dashscope_api_key: str = "sim-dashscope-key"
    # DashScope accounts: this many keys, `dashscope_api_key` then `<dashscope_api_key>-2`, `-3`...; each one
    # runs max_concurrency jobs per model and sees only its own jobs, as DashScope's accounts do
    dashscope_keys: int = 1
    openai_api_key: str = "sim-openai-key"
    latency_min: float = 2.0
    latency_max: float = 4.0
    failure_rate: float = 0.0
    max_concurrency: int = 2
    result_ttl_seconds: float = 3600.0
    pending_fraction: float = 0.3  # share of a job's duration spent PENDING before RUNNING
    public_url: str | None = None  # base for result links; default: the Host the request came to
    video_fps: float = 8.0  # frames a second of the clips made (DashScope's are 30; tests want few frames)
    video_scale: float = 1.0  # the clips' size relative to the size asked for (tests: 0.25)
    # Stripe (local/simulator/stripe.py): the secret key the app must send, the webhook signing secret,
    # and where signed events go (the local stack's POST /payments/stripe/webhook; None: not sent)
    stripe_api_key: str = "sk_test_aigc_local_simulator"
    stripe_webhook_secret: str = "whsec_aigcLocalStackTestSigningSecretNotForProduction"
    stripe_webhook_url: str | None = None

    def update(self, changes: dict) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        new = dataclasses.replace(self)
        for k, v in changes.items():
            cur = getattr(self, k)
            if k in ("public_url", "stripe_webhook_url"):
                setattr(new, k, None if v in (None, "") else str(v).rstrip("/"))
            elif isinstance(cur, bool) or isinstance(v, bool):
                raise ValueError(f"{k}: bad value")
            elif isinstance(cur, int) and not isinstance(cur, bool) and k in ("max_concurrency", "dashscope_keys"):
                setattr(new, k, int(v))
            elif isinstance(cur, float):
                setattr(new, k, float(v))
            else:
                setattr(new, k, str(v))
        if new.latency_min < 0 or new.latency_max < new.latency_min:
            raise ValueError("need 0 <= latency_min <= latency_max")
        if not 0.0 <= new.failure_rate <= 1.0:
            raise ValueError("failure_rate must be within 0..1")
        if new.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if new.dashscope_keys < 1:
            raise ValueError("dashscope_keys must be >= 1")
        if not 0.0 <= new.pending_fraction < 1.0:
            raise ValueError("pending_fraction must be within 0..1")
        if not (1.0 <= new.video_fps <= 30.0 and float(new.video_fps).is_integer()):
            raise ValueError("video_fps must be a whole number within 1..30")
        if not 0.05 <= new.video_scale <= 1.0:
            raise ValueError("video_scale must be within 0.05..1")
        for f in fields:
            setattr(self, f, getattr(new, f))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def dashscope_api_keys(self) -> list[str]:
        """The DashScope accounts' keys: the first is `dashscope_api_key` itself."""
        return [self.dashscope_api_key] + [f"{self.dashscope_api_key}-{n}" for n in range(2, self.dashscope_keys + 1)]


@dataclasses.dataclass
class Job:
    task_id: str
    api_key: str
    model: str
    kind: str  # outpainting | t2i | i2i | t2v | i2v
    submit: float
    pending: float
    duration: float
    base_url: str
    n: int = 1
    fail_code: str | None = None  # forced failure (directive / failure_rate)
    canceled_at: float | None = None
    done_at: float | None = None  # when the image work finished
    outcome_code: str | None = None  # failure found by the work (download, format...)
    outcome_message: str | None = None
    outputs: list[bytes] = dataclasses.field(default_factory=list)
    usage: dict = dataclasses.field(default_factory=dict)  # video: video_duration, video_ratio
    prompt: str | None = None

    @property
    def end(self) -> float:
        return max(self.submit + self.duration, self.done_at or 0.0)


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.") + f"{int((t % 1) * 1000):03d}"


def parse_directives(*sources: str | None) -> dict[str, str]:
    """`[sim:key=value,key2=value2]` in text, or `sim_key=value` query parameters in a URL."""
    out: dict[str, str] = {}
    for src in sources:
        if not src:
            continue
        if src.startswith(("http://", "https://")):
            for k, vals in parse_qs(urlparse(src).query).items():
                if k.lower().startswith("sim_") and vals:
                    out.setdefault(k[4:].lower(), vals[0])
            continue
        for block in _DIRECTIVE_RE.findall(src):
            for part in re.split(r"[,;\s]+", block.strip()):
                if "=" in part:
                    k, v = part.split("=", 1)
                    out[k.strip().lower()] = v.strip()
                elif part:
                    out[part.strip().lower()] = "1"
    return out


def strip_directives(text: str | None) -> str:
    return _DIRECTIVE_RE.sub("", text or "").strip()


def _float(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


class Simulator:
    """The simulator's state and its WSGI app. Use `start_simulator()` to serve it."""

    def __init__(self, **config):
        self._initial = SimConfig()
        self._initial.update(config)
        self.config = dataclasses.replace(self._initial)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._sync_results: dict[str, tuple[float, list[bytes]]] = {}
        self._inflight_sync: dict[tuple[str, str], int] = {}
        self._secret = uuid.uuid4().bytes
        self.stats = self._new_stats()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-work")
        self._http = requests.Session()
        self.stripe = None  # set by local.simulator.stripe.register, in _build_app
        self.app = self._build_app()

    # --- control -----------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._sync_results.clear()
            self._inflight_sync.clear()
            self.config = dataclasses.replace(self._initial)
            self.stats = self._new_stats()
            self.stripe.reset()

    @staticmethod
    def _new_stats() -> dict:
        """What the simulator accepted and refused since start or reset (GET /_sim/stats)."""
        return {"created": 0, "refused": 0, "queries": 0, "peak_concurrency": 0, "by_key": {}}

    def _count_created(self, active_after: int, key: str | None = None) -> None:
        self.stats["created"] += 1
        self.stats["peak_concurrency"] = max(self.stats["peak_concurrency"], active_after)
        if key is not None:  # per DashScope account (its position: 1 = dashscope_api_key)
            account = self.stats["by_key"].setdefault(str(self.config.dashscope_api_keys().index(key) + 1),
                                                      {"created": 0, "refused": 0, "peak_concurrency": 0})
            account["created"] += 1
            account["peak_concurrency"] = max(account["peak_concurrency"], active_after)

    def _count_refused(self, key: str) -> None:
        self.stats["refused"] += 1
        account = self.stats["by_key"].setdefault(str(self.config.dashscope_api_keys().index(key) + 1),
                                                  {"created": 0, "refused": 0, "peak_concurrency": 0})
        account["refused"] += 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        self.stripe.close()

    # --- job state ---------------------------------------------------------------------------

    def _status(self, job: Job, now: float) -> str:
        if job.canceled_at is not None:
            if now > job.canceled_at + self.config.result_ttl_seconds:
                return "UNKNOWN"
            return "CANCELED"
        if now < job.submit + job.pending:
            return "PENDING"
        if now < job.submit + job.duration or job.done_at is None:
            return "RUNNING"
        if now > job.end + self.config.result_ttl_seconds:
            return "UNKNOWN"
        if job.fail_code or job.outcome_code:
            return "FAILED"
        return "SUCCEEDED"

    def _active(self, api_key: str, model: str, now: float) -> int:
        return sum(
            1 for j in self._jobs.values()
            if j.api_key == api_key and j.model == model and self._status(j, now) in ("PENDING", "RUNNING")
        )

    def _duration(self, directives: dict) -> float:
        seconds = _float(directives.get("seconds"))
        if seconds is not None and seconds >= 0:
            return seconds
        return random.uniform(self.config.latency_min, self.config.latency_max)

    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _result_url(self, base: str, key: str, n: int, expires: float, ext: str = "png") -> str:
        path = f"/results/{key}/{n}.{ext}"
        exp = int(math.ceil(expires))  # OSS-style whole epoch seconds, never before the real expiry
        return f"{base}{path}?Expires={exp}&Signature={self._sign(path, exp)}"

    def _base_url(self) -> str:
        return self.config.public_url or request.host_url.rstrip("/")

    # --- downloads ---------------------------------------------------------------------------

    def _download(self, url: str) -> bytes:
        """Fetch an input image; raises LookupError on any download failure."""
        if urlparse(url).scheme not in ("http", "https"):
            raise LookupError("unsupported scheme")
        try:
            with self._http.get(url, stream=True, timeout=10) as resp:
                if resp.status_code != 200:
                    raise LookupError(f"HTTP {resp.status_code}")
                data = b""
                for chunk in resp.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > MAX_DOWNLOAD_BYTES:
                        raise LookupError("too large")
                return data
        except requests.RequestException as e:
            raise LookupError(type(e).__name__) from e

    # --- the work ----------------------------------------------------------------------------

    def _run_job(self, job: Job, work) -> None:
        try:
            outputs = work()
            with self._lock:
                job.outputs = outputs
        except LookupError:
            job.outcome_code = "InvalidParameter.FileDownload"
        except imaging.ImageReadError:
            job.outcome_code = "InvalidParameter.ImageFormat"
        except imaging.OutputTooLarge:
            job.outcome_code = "InvalidParameter.DataInspection"
        except video.ImageRejected as rejected:
            job.outcome_code, job.outcome_message = rejected.code, rejected.message
        except Exception:
            log.exception("simulated job %s crashed", job.task_id)
            job.outcome_code = "InternalError.Algo"
        finally:
            with self._lock:
                if job.outcome_code and not job.outcome_message:
                    job.outcome_message = DASHSCOPE_ERRORS[job.outcome_code][1]
                job.done_at = time.time()

    # --- Flask app ---------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("local.simulator")
        sim = self
        stripe_routes.register(app, sim)  # the part of Stripe the app calls (local/simulator/stripe.py)

        def ds_error(code: str, message: str | None = None, status: int | None = None):
            st, msg = DASHSCOPE_ERRORS.get(code, (400, code))
            return jsonify({"code": code, "message": message or msg, "request_id": str(uuid.uuid4())}), status or st

        def ds_auth():
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:].strip() not in sim.config.dashscope_api_keys():
                return ds_error("InvalidApiKey", "Invalid API-key provided." if header else "No API-key provided.")
            return None

        def ds_key() -> str:
            return request.headers["Authorization"][7:].strip()

        def oa_error(status: int, message: str, etype: str, code: str | None, param: str | None = None):
            return jsonify({"error": {"message": message, "type": etype, "param": param, "code": code}}), status

        def oa_auth():
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:].strip() != sim.config.openai_api_key:
                return oa_error(401, "Incorrect API key provided. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                                "invalid_api_key")
            return None

        # ---- control endpoints ----
        @app.get("/_sim/config")
        def get_config():
            return jsonify(sim.config.as_dict())

        @app.post("/_sim/config")
        def post_config():
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return jsonify({"error": "JSON object expected"}), 400
            try:
                with sim._lock:
                    sim.config.update(body)
            except (ValueError, TypeError) as e:
                return jsonify({"error": str(e)}), 400
            return jsonify(sim.config.as_dict())

        @app.post("/_sim/reset")
        def post_reset():
            sim.reset()
            return jsonify({"ok": True, "config": sim.config.as_dict()})

        @app.get("/_sim/stats")
        def get_stats():
            with sim._lock:
                return jsonify(dict(sim.stats))

        @app.get("/_sim/health")
        def health():
            return jsonify({"ok": True})

        # ---- samples and results ----
        @app.get("/samples/<name>.<ext>")
        def sample(name: str, ext: str):
            if name == "_corrupt":
                return Response(b"this is not an image", mimetype="image/png")
            if ext.lower() != "png":
                return Response("not found", status=404)
            w = request.args.get("w", "512")
            h = request.args.get("h", "512")
            if not (w.isdigit() and h.isdigit()) or not (16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
                return Response("w and h must be integers within 16..4096", status=400)
            png = imaging.encode_png(imaging.sample_picture(name, int(w), int(h)))
            return Response(png, mimetype="image/png", headers={"Cache-Control": "public, max-age=3600"})

        @app.get("/results/<key>/<int:n>.mp4")
        def video_result(key: str, n: int):
            return result(key, n, "mp4")

        @app.get("/results/<key>/<int:n>.png")
        def result(key: str, n: int, ext: str = "png"):
            exp_s, sig = request.args.get("Expires", ""), request.args.get("Signature", "")
            path = f"/results/{key}/{n}.{ext}"
            if not exp_s.isdigit() or not hmac.compare_digest(sig, sim._sign(path, int(exp_s))):
                return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
            if time.time() > int(exp_s):
                return _oss_error(403, "AccessDenied", "Request has expired.")
            with sim._lock:
                job = sim._jobs.get(key)
                if job is not None:
                    outputs, real_expiry = job.outputs, job.end + sim.config.result_ttl_seconds
                else:
                    real_expiry, outputs = sim._sync_results.get(key, (0.0, []))
            if outputs and time.time() > real_expiry:
                return _oss_error(403, "AccessDenied", "Request has expired.")
            if n >= len(outputs):
                return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
            return Response(outputs[n], mimetype="video/mp4" if ext == "mp4" else "image/png")

        # ---- DashScope: create ----
        def ds_create(kind: str):
            err = ds_auth()
            if err:
                return err
            if request.headers.get("X-DashScope-Async", "").lower() != "enable":
                return ds_error("AccessDenied")
            try:
                body = json.loads(request.get_data(as_text=True) or "")
            except ValueError:
                return ds_error("InvalidParameter.JsonPhrase")
            if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
                return ds_error("InvalidParameter.JsonPhrase")
            model = body.get("model")
            inp = body["input"]
            params = body.get("parameters") or {}
            if not isinstance(params, dict):
                return ds_error("InvalidParameter.JsonPhrase")
            if not isinstance(model, str) or not model:
                return ds_error("InvalidParameter", "Model not exist.")
            prompt = inp.get("prompt")
            image_url = inp.get({"outpainting": "image_url", "i2v": "img_url"}.get(kind, "base_image_url"))
            directives = parse_directives(prompt if isinstance(prompt, str) else None,
                                          image_url if isinstance(image_url, str) else None)
            if directives.get("submit_error"):
                code = directives["submit_error"]
                return ds_error(code)

            bad = (video.validate(model, kind, inp, params) if kind in ("t2v", "i2v")
                   else _validate_dashscope(kind, model, inp, params))
            if bad:
                return ds_error("InvalidParameter", bad if bad == "Model not exist."
                                else f"the parameters must conform to the specification: {bad}")

            now = time.time()
            with sim._lock:
                active = sim._active(ds_key(), model, now)
                if active >= sim.config.max_concurrency:
                    sim._count_refused(ds_key())
                    return ds_error("Throttling.RateQuota")
                sim._count_created(active + 1, ds_key())
                duration = sim._duration(directives)
                if params.get("best_quality") is True:
                    duration *= 2
                pending = _float(directives.get("pending"))
                if pending is None or pending < 0:
                    pending = duration * sim.config.pending_fraction
                fail_code = directives.get("fail")
                if not fail_code and sim.config.failure_rate and random.random() < sim.config.failure_rate:
                    fail_code = "InternalError.Algo"
                job = Job(
                    task_id=str(uuid.uuid4()), api_key=ds_key(), model=model, kind=kind,
                    submit=now, pending=min(pending, duration), duration=max(duration, pending),
                    base_url=sim._base_url(), n=int(params.get("n", 1)) if kind != "outpainting" else 1,
                    fail_code=fail_code, prompt=prompt if isinstance(prompt, str) else None,
                )
                if fail_code:
                    job.outcome_message = DASHSCOPE_ERRORS.get(fail_code, (500, "simulated failure"))[1]
                    job.done_at = now
                sim._jobs[job.task_id] = job
            if not fail_code:
                work = (_video_work(sim, kind, job, inp, params, directives) if kind in ("t2v", "i2v")
                        else _work_for(sim, kind, job, inp, params))
                sim._executor.submit(sim._run_job, job, work)
            return jsonify({"output": {"task_status": "PENDING", "task_id": job.task_id},
                            "request_id": str(uuid.uuid4())})

        @app.post("/api/v1/services/aigc/image2image/out-painting")
        def create_outpainting():
            return ds_create("outpainting")

        @app.post("/api/v1/services/aigc/text2image/image-synthesis")
        def create_t2i():
            return ds_create("t2i")

        @app.post("/api/v1/services/aigc/image2image/image-synthesis")
        def create_i2i():
            return ds_create("i2i")

        @app.post("/api/v1/services/aigc/video-generation/video-synthesis")
        def create_video():
            body = request.get_json(silent=True)
            model = body.get("model") if isinstance(body, dict) else None
            return ds_create("i2v" if isinstance(model, str) and "i2v" in model else "t2v")

        # ---- DashScope: query / cancel ----
        @app.get("/api/v1/tasks/<task_id>")
        def query(task_id: str):
            err = ds_auth()
            if err:
                return err
            now = time.time()
            with sim._lock:
                sim.stats["queries"] += 1
                job = sim._jobs.get(task_id)
                if job is None or job.api_key != ds_key():  # a task id is its account's only
                    return jsonify({"request_id": str(uuid.uuid4()),
                                    "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
                status = sim._status(job, now)
                body = _task_body(sim, job, status)
            return jsonify(body)

        @app.post("/api/v1/tasks/<task_id>/cancel")
        def cancel(task_id: str):
            err = ds_auth()
            if err:
                return err
            now = time.time()
            with sim._lock:
                job = sim._jobs.get(task_id)
                if job is None or job.api_key != ds_key() or sim._status(job, now) != "PENDING":
                    return ds_error("UnsupportedOperation")
                job.canceled_at = now
            return jsonify({"request_id": str(uuid.uuid4())})

        # ---- OpenAI-compatible Images API ----
        def oa_images(edit: bool):
            err = oa_auth()
            if err:
                return err
            if edit:
                form = request.form
                fields = {k: form.get(k) for k in form.keys()}
                uploads = request.files.getlist("image[]") + request.files.getlist("image")
                if not uploads:
                    return oa_error(400, "Missing required parameter: 'image'.", "invalid_request_error",
                                    "missing_required_parameter", "image")
            else:
                fields = request.get_json(silent=True)
                if not isinstance(fields, dict):
                    return oa_error(400, "We could not parse the JSON body of your request.",
                                    "invalid_request_error", None)
                uploads = []
            prompt = fields.get("prompt")
            model = fields.get("model") or "gpt-image-1"
            if not isinstance(prompt, str) or not prompt.strip():
                return oa_error(400, "Missing required parameter: 'prompt'.", "invalid_request_error",
                                "missing_required_parameter", "prompt")
            size = str(fields.get("size") or "auto")
            if size not in OPENAI_SIZES:
                return oa_error(400, f"Invalid value: '{size}'. Supported values are: 'auto', '1024x1024', "
                                "'1024x1536', and '1536x1024'.", "invalid_request_error", "invalid_value", "size")
            try:
                n = int(fields.get("n") or 1)
            except (TypeError, ValueError):
                n = 0
            if not 1 <= n <= 10:
                return oa_error(400, "Invalid 'n': must be within 1..10.", "invalid_request_error",
                                "invalid_value", "n")
            fmt = str(fields.get("response_format") or "url")
            if fmt not in ("url", "b64_json"):
                return oa_error(400, f"Invalid value: '{fmt}'. Supported values are: 'url' and 'b64_json'.",
                                "invalid_request_error", "invalid_value", "response_format")
            directives = parse_directives(prompt)
            if directives.get("submit_error"):
                return _oa_coded_error(directives["submit_error"])
            sources = []
            for up in uploads:
                try:
                    sources.append(imaging.decode_image(up.read()))
                except imaging.ImageReadError:
                    return oa_error(400, "Invalid image file or mode for image, please check your image file.",
                                    "invalid_request_error", "invalid_image_format", "image")
            key = (sim.config.openai_api_key, model)
            with sim._lock:
                if sim._inflight_sync.get(key, 0) >= sim.config.max_concurrency:
                    sim.stats["refused"] += 1
                    return oa_error(429, "Rate limit reached for images per minute. Please try again later.",
                                    "requests", "rate_limit_exceeded")
                sim._inflight_sync[key] = sim._inflight_sync.get(key, 0) + 1
                sim._count_created(sim._inflight_sync[key])
            try:
                time.sleep(sim._duration(directives))
                fail = directives.get("fail")
                if not fail and sim.config.failure_rate and random.random() < sim.config.failure_rate:
                    fail = "server_error"
                if fail:
                    return _oa_coded_error(fail)
                w, h = OPENAI_SIZES[size]
                clean = strip_directives(prompt)
                seed = fields.get("seed", 0)
                images = []
                for i in range(n):
                    if sources:
                        base = imaging.blend_references(sources, (w, h))
                        arr = imaging.stylize(base, clean, f"{seed}:{i}", "stylization_all", 0.6)
                    else:
                        arr = imaging.generate_picture(w, h, clean, f"{seed}:{i}")
                    images.append(imaging.encode_png(arr))
            finally:
                with sim._lock:
                    sim._inflight_sync[key] = max(0, sim._inflight_sync.get(key, 1) - 1)
            created = int(time.time())
            if fmt == "b64_json":
                data = [{"b64_json": base64.b64encode(png).decode("ascii")} for png in images]
            else:
                rid = f"img-{uuid.uuid4().hex}"
                expires = time.time() + sim.config.result_ttl_seconds
                with sim._lock:
                    sim._sync_results[rid] = (expires, images)
                    for k in [k for k, (exp, _) in sim._sync_results.items() if exp < time.time()]:
                        del sim._sync_results[k]
                base = sim._base_url()
                data = [{"url": sim._result_url(base, rid, i, expires)} for i in range(len(images))]
            return jsonify({"created": created, "data": data})

        @app.post("/v1/images/generations")
        def oa_generations():
            return oa_images(False)

        @app.post("/v1/images/edits")
        def oa_edits():
            return oa_images(True)

        return app


# --- helpers used by the app --------------------------------------------------------------------


def _oss_error(status: int, code: str, message: str) -> Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>{code}</Code>\n'
           f"  <Message>{message}</Message>\n  <RequestId>{uuid.uuid4().hex.upper()}</RequestId>\n</Error>\n")
    return Response(xml, status=status, mimetype="application/xml")


def _oa_coded_error(code: str):
    low = code.lower()
    if low.startswith("throttling") or low in ("rate_limit_exceeded", "429"):
        status, etype, oacode = 429, "requests", "rate_limit_exceeded"
    elif low.startswith("internalerror") or low in ("server_error", "500"):
        status, etype, oacode = 500, "server_error", "server_error"
    elif low in ("content_policy_violation", "datainspectionfailed", "moderation_blocked"):
        status, etype, oacode = 400, "invalid_request_error", "content_policy_violation"
    else:
        status, etype, oacode = 400, "invalid_request_error", code
    body = {"error": {"message": f"Simulated error: {code}", "type": etype, "param": None, "code": oacode}}
    return jsonify(body), status


def _is_int(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _validate_dashscope(kind: str, model: str, inp: dict, params: dict) -> str | None:
    """Name of the first out-of-spec field, or None."""
    if kind == "outpainting":
        if model != "image-out-painting":
            return "Model not exist."
        if not isinstance(inp.get("image_url"), str) or not inp["image_url"]:
            return "image_url"
        if "angle" in params and not (_is_int(params["angle"]) and 0 <= params["angle"] <= 359):
            return "angle"
        if "output_ratio" in params and params["output_ratio"] not in OUTPUT_RATIOS:
            return "output_ratio"
        for f in ("x_scale", "y_scale"):
            if f in params and not (_is_num(params[f]) and 1.0 <= params[f] <= 3.0):
                return f
        for f in ("left_offset", "right_offset", "top_offset", "bottom_offset"):
            if f in params and not (_is_int(params[f]) and params[f] >= 0):
                return f
        for f in ("best_quality", "limit_image_size", "add_watermark"):
            if f in params and not isinstance(params[f], bool):
                return f
        return None
    if not isinstance(inp.get("prompt"), str) or not inp["prompt"].strip():
        return "prompt"
    if len(inp["prompt"]) > 2000:
        return "prompt"
    if "n" in params and not (_is_int(params["n"]) and 1 <= params["n"] <= 4):
        return "n"
    if "seed" in params and not (_is_int(params["seed"]) and 0 <= params["seed"] <= 2147483647):
        return "seed"
    for f in ("watermark", "prompt_extend"):
        if f in params and not isinstance(params[f], bool):
            return f
    if kind == "t2i":
        if not model.startswith(("wanx", "wan2")):
            return "Model not exist."
        size = imaging.parse_size(params.get("size", "1024*1024"), "*")
        if size is None or not all(512 <= s <= 1440 for s in size):
            return "size"
        if "negative_prompt" in inp and not isinstance(inp["negative_prompt"], str):
            return "negative_prompt"
        return None
    # i2i: wanx2.1-imageedit
    if model != "wanx2.1-imageedit":
        return "Model not exist."
    if inp.get("function") not in IMAGEEDIT_FUNCTIONS:
        return "function"
    if not isinstance(inp.get("base_image_url"), str) or not inp["base_image_url"]:
        return "base_image_url"
    if "strength" in params and not (_is_num(params["strength"]) and 0.0 <= params["strength"] <= 1.0):
        return "strength"
    return None


def _work_for(sim: Simulator, kind: str, job: Job, inp: dict, params: dict):
    """A closure that does the job's image work and returns the output PNGs."""
    prompt = strip_directives(inp.get("prompt"))
    if kind == "outpainting":
        def work():
            rgb = imaging.decode_image(sim._download(inp["image_url"]))
            out, _ = imaging.outpaint(rgb, params, seed_key=job.task_id)
            return [imaging.encode_png(out)]
    elif kind == "t2i":
        def work():
            w, h = imaging.parse_size(params.get("size", "1024*1024"), "*")
            seed = params.get("seed", random.randint(0, 2147483647))
            outs = []
            for i in range(job.n):
                arr = imaging.generate_picture(w, h, prompt, int(seed) + i)
                if params.get("watermark"):
                    imaging.draw_label(arr, "AI-generated", "br")
                outs.append(imaging.encode_png(arr))
            return outs
    else:
        def work():
            rgb = imaging.decode_image(sim._download(inp["base_image_url"]))
            seed = params.get("seed", random.randint(0, 2147483647))
            strength = float(params.get("strength", 0.5))
            outs = []
            for i in range(job.n):
                arr = imaging.stylize(rgb, prompt, int(seed) + i, inp["function"], strength)
                if params.get("watermark"):
                    imaging.draw_label(arr, "AI-generated", "br")
                outs.append(imaging.encode_png(arr))
            return outs
    return work


def _video_work(sim: Simulator, kind: str, job: Job, inp: dict, params: dict, directives: dict):
    """A closure that makes the job's clip (an MP4) and returns it."""
    prompt = strip_directives(inp.get("prompt"))
    config = sim.config

    def work():
        first = video.check_first_frame(sim._download(inp["img_url"])) if kind == "i2v" else None
        if directives.get("corrupt_video"):
            clip = video.corrupt_clip(job.task_id)
            width, height = video.output_size(kind, params, first, config.video_scale)
        else:
            clip = video.make_clip(kind, prompt, params, first_frame=first, fps=config.video_fps,
                                   scale=config.video_scale, seed=job.task_id)
            width, height = video.output_size(kind, params, first, config.video_scale)
        job.usage = {"video_duration": int(params.get("duration", 5)), "video_ratio": f"{width}*{height}",
                     "video_count": 1}
        return [clip]
    return work


def _task_body(sim: Simulator, job: Job, status: str) -> dict:
    rid = str(uuid.uuid4())
    if status == "UNKNOWN":
        return {"request_id": rid, "output": {"task_id": job.task_id, "task_status": "UNKNOWN"}}
    out: dict = {"task_id": job.task_id, "task_status": status, "submit_time": _ts(job.submit)}
    wanx = job.kind in ("t2i", "i2i")
    is_video = job.kind in ("t2v", "i2v")
    if status != "PENDING" and status != "CANCELED":
        out["scheduled_time"] = _ts(job.submit + job.pending)
    if status in ("SUCCEEDED", "FAILED"):
        out["end_time"] = _ts(job.end)
    if status == "CANCELED":
        out["end_time"] = _ts(job.canceled_at or job.submit)
    body: dict = {"request_id": rid, "output": out}
    if status == "SUCCEEDED":
        expires = job.end + sim.config.result_ttl_seconds
        urls = [sim._result_url(job.base_url, job.task_id, i, expires, "mp4" if is_video else "png")
                for i in range(len(job.outputs))]
        if is_video:
            out["video_url"] = urls[0]
            out["orig_prompt"] = strip_directives(job.prompt) if job.prompt else ""
            out["actual_prompt"] = out["orig_prompt"]
            body["usage"] = dict(job.usage)
            return body
        if wanx:
            out["results"] = [{"url": u} for u in urls]
            out["task_metrics"] = {"TOTAL": job.n, "SUCCEEDED": len(urls), "FAILED": job.n - len(urls)}
        else:
            out["output_image_url"] = urls[0]
        body["usage"] = {"image_count": len(urls)}
    elif status == "FAILED":
        code = job.fail_code or job.outcome_code
        out["code"] = code
        out["message"] = job.outcome_message or DASHSCOPE_ERRORS.get(code, (500, "simulated failure"))[1]
        if wanx:
            out["task_metrics"] = {"TOTAL": job.n, "SUCCEEDED": 0, "FAILED": job.n}
    elif status in ("PENDING", "RUNNING") and wanx:
        out["task_metrics"] = {"TOTAL": job.n, "SUCCEEDED": 0, "FAILED": 0}
    return body


# --- serving ----------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


class RunningSimulator:
    """A simulator served in a background thread."""

    def __init__(self, sim: Simulator, host: str, port: int, quiet: bool = True):
        self.sim = sim
        handler = _QuietHandler if quiet else WSGIRequestHandler
        self._server = make_server(host, port, sim.app, threaded=True, request_handler=handler)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator", daemon=True)
        self._thread.start()

    @property
    def config(self) -> SimConfig:
        return self.sim.config

    def configure(self, **changes) -> None:
        self.sim.config.update(changes)

    def reset(self) -> None:
        self.sim.reset()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.sim.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_simulator(host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True, **config) -> RunningSimulator:
    """Start the simulator on (host, port) in a thread; port 0 picks a free port.

    `config` are SimConfig fields (dashscope_api_key, openai_api_key, latency_min, latency_max,
    failure_rate, max_concurrency, result_ttl_seconds, pending_fraction, public_url).
    `quiet=False` logs every request (werkzeug style).
    """
    return RunningSimulator(Simulator(**config), host, port, quiet=quiet)
