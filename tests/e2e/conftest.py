"""End-to-end: `python -m local` as a subprocess on free ports, driven over real HTTP like a client.

One stack serves the whole session (`stack`). Its workflow Wait/Retry sleeps are scaled (x0.05)
and the simulator's jobs take 0.3-0.6 s, so a task completes in about a second. Tests use their
own user ids, so they share the stack without seeing each other.

The deadline test needs a stack whose TaskDeadlineSeconds (minimum 30, wall clock) passes: when
that test is selected, a second stack is started and its long job submitted in the background by
the first e2e test's session fixture, and the test runs after the other e2e tests, so its 30 s
overlap theirs. Stacks run in their own process group; session finalizers stop them on success,
failure or Ctrl-C, and an atexit guard stops any left over.
"""
from __future__ import annotations

import atexit
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from local import auth

ROOT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 60
WAIT_SCALE = "0.05"
FAST_SIM = ["--sim", "latency_min=0.3", "--sim", "latency_max=0.6", "--sim", "max_concurrency=50"]
# The API stage's throttle (template: 50 a second, bursts of 100) would refuse the parallel clients of
# these tests as API Gateway would; test_front_http.py checks the throttle itself with low limits.
STAGE_THROTTLE_RAISED = ["--param", "ApiThrottleRateLimit=100000", "--param", "ApiThrottleBurstLimit=100000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Stack:
    proc: subprocess.Popen
    port: int
    moto_port: int
    sim_port: int
    log_path: Path
    ws_port: int = 0
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    # ------------------------------------------------------------ a client of the API
    def token(self, user: str, admin: bool = False, **kwargs) -> str:
        return auth.mint(user, admin=admin, **kwargs)

    def call(self, method: str, path: str, *, user: str | None = None, admin: bool = False, token: str | None = None,
             **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is None and user is not None:
            token = self.token(user, admin)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def grant(self, user: str, amount: int) -> None:
        response = self.call("POST", "/admin/points/grant", user="e2e-admin", admin=True,
                             json={"userId": user, "amount": amount, "reason": "e2e"})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["balance"] >= amount

    def submit(self, user: str, headers: dict | None = None, **request) -> requests.Response:
        return self.call("POST", "/user/ai/tasks/submit", user=user, json=request, headers=headers)

    def task(self, user: str, task_no: str) -> dict:
        response = self.call("GET", f"/user/ai/tasks/{task_no}", user=user)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def wait_task(self, user: str, task_no: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(user, task_no)
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_no} still {task['status']} after {timeout} s\n{self.log()}")
            time.sleep(0.2)

    def balance(self, user: str) -> int:
        response = self.call("GET", "/user/points/consumption/balance", user=user)
        assert response.status_code == 200, response.text
        return response.json()["data"]["balance"]

    def records(self, user: str, task_no: str | None = None) -> list[tuple[str, int]]:
        """The user's ledger as (type, amount), oldest first; only the task's entries when given."""
        response = self.call("GET", "/user/points/consumption/records", user=user, params={"size": 100})
        assert response.status_code == 200, response.text
        entries = response.json()["data"]["records"]
        return [(e["type"], e["amount"]) for e in reversed(entries) if task_no is None or e["taskNo"] == task_no]

    def task_count(self, user: str) -> int:
        response = self.call("GET", "/user/ai/tasks/list", user=user)
        assert response.status_code == 200, response.text
        return response.json()["data"]["total"]

    def sample_url(self, w: int = 512, h: int = 512, name: str = "e2e", **directives) -> str:
        extra = "".join(f"&{k}={v}" for k, v in directives.items())
        return f"{self.sim_url}/samples/{name}.png?w={w}&h={h}{extra}"

    def download(self, url: str):
        from PIL import Image

        response = requests.get(url, timeout=30)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        return Image.open(io.BytesIO(response.content))

    def stop(self) -> None:
        _stop_process(self.proc)
        self.http.close()


_STARTED: set[subprocess.Popen] = set()


def _stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to the stack's process group, SIGKILL if it has not stopped 10 s later."""
    _STARTED.discard(proc)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


@atexit.register
def _stop_leftovers() -> None:
    """Last guard: a stack a fixture could not stop (an interrupted session) dies with pytest."""
    for proc in list(_STARTED):
        _stop_process(proc)


def start_stack(log_dir: Path, *extra: str, name: str = "stack") -> Stack:
    port, moto_port, sim_port, ws_port = free_port(), free_port(), free_port(), free_port()
    log_path = log_dir / f"{name}-{port}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])
    env.pop("PORT", None)
    command = [sys.executable, "-m", "local", "--port", str(port), "--moto-port", str(moto_port),
               "--sim-port", str(sim_port), "--ws-port", str(ws_port), "--wait-scale", WAIT_SCALE, "--quiet",
               "--param", "SubmitRateLimitPerMinute=1000", *STAGE_THROTTLE_RAISED, *FAST_SIM, *extra]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _STARTED.add(proc)
    stack = Stack(proc, port, moto_port, sim_port, log_path, ws_port=ws_port)
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the local stack exited with {proc.returncode}:\n{stack.log()}")
            try:
                if requests.get(f"{stack.url}/health", timeout=2).status_code == 200:
                    return stack
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy booting
                pass
            time.sleep(0.2)
    except BaseException:  # Ctrl-C while it boots
        stack.stop()
        raise
    stack.stop()
    raise RuntimeError(f"the local stack was not healthy after {BOOT_TIMEOUT} s:\n{stack.log()}")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="session")
def stack(log_dir, deadline_background):
    running = start_stack(log_dir)
    try:
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------- the deadline job (background)

DEADLINE_SECONDS = 30


def _start_deadline_job(log_dir: Path, job: dict) -> None:
    try:
        deadline_stack = start_stack(log_dir, "--param", f"TaskDeadlineSeconds={DEADLINE_SECONDS}", name="deadline")
        job["stack"] = deadline_stack
        user = new_user("late")
        deadline_stack.grant(user, 100)
        response = deadline_stack.submit(user, modelName="image-out-painting",
                                         imageUrl=deadline_stack.sample_url(sim_seconds=3600),
                                         parameters={"xScale": 1.5})
        assert response.status_code == 200, response.text
        job.update(user=user, task_no=response.json()["data"]["taskNo"], submitted_at=time.monotonic())
    except BaseException as error:  # re-raised in the test
        job["error"] = error


def pytest_collection_modifyitems(session, config, items):
    """The deadline test runs last among the e2e tests, so the others overlap its 30 s."""
    late = [item for item in items if "deadline_job" in getattr(item, "fixturenames", ())]
    if not late:
        return
    rest = [item for item in items if item not in late]
    here = Path(__file__).parent
    last_e2e = max((i for i, item in enumerate(rest) if Path(item.path).parent == here), default=len(rest) - 1)
    items[:] = rest[:last_e2e + 1] + late + rest[last_e2e + 1:]


@pytest.fixture(scope="session")
def deadline_background(request, log_dir):
    """The deadline stack and its long job, started with the first e2e test when the deadline test is
    selected (not at collection), stopped at the end of the session whatever happens."""
    if not any("deadline_job" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    job: dict = {}
    thread = threading.Thread(target=_start_deadline_job, args=(log_dir, job), name="deadline-stack", daemon=True)
    thread.start()
    job["thread"] = thread
    try:
        yield job
    finally:
        thread.join(BOOT_TIMEOUT + 30)
        if "stack" in job:
            job["stack"].stop()


@pytest.fixture
def deadline_job(deadline_background):
    deadline_background["thread"].join(BOOT_TIMEOUT + 30)
    if "error" in deadline_background:
        raise deadline_background["error"]
    return deadline_background
