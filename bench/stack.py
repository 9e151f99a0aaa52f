"""The local stack (`python -m local`) as a subprocess, driven over HTTP like `make dev`, for benches.

Reads what the API does not show (precise completion times, the provider's job id, execution
histories) from the stack's own moto endpoint.
"""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import boto3
import requests

from local import auth
from local.history import execution_costs

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "aigc-local"
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStack:
    def __init__(self, *, params: dict | None = None, sim: dict | None = None, ports: tuple | None = None,
                 wait_scale: float | None = None, provider_keys: int | None = None):
        self.port, self.moto_port, self.sim_port = ports or (free_port(), free_port(), free_port())
        self.ws_port = free_port()
        args = [sys.executable, "-m", "local", "--port", str(self.port), "--moto-port", str(self.moto_port),
                "--sim-port", str(self.sim_port), "--ws-port", str(self.ws_port), "--quiet"]
        if wait_scale is not None:
            args += ["--wait-scale", str(wait_scale)]
        for key, value in (params or {}).items():
            args += ["--param", f"{key}={value}"]
        for key, value in (sim or {}).items():
            args += ["--sim", f"{key}={value}"]
        if provider_keys:  # simulated DashScope accounts (make dev --provider-keys dashscope=N)
            args += ["--provider-keys", f"dashscope={provider_keys}"]
        self.log = open(f"/tmp/bench-stack-{self.port}.log", "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = requests.Session()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/"
        aws = dict(endpoint_url=f"http://127.0.0.1:{self.moto_port}", region_name="us-east-1",
                   aws_access_key_id="x", aws_secret_access_key="x")
        self.sfn = boto3.client("stepfunctions", **aws)
        self.tasks_table = boto3.resource("dynamodb", **aws).Table(f"{PREFIX}-TasksTable")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the local stack exited; see {self.log.name}")
            try:
                if self.http.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.close()
        raise RuntimeError("the local stack did not become healthy in 90 s")

    def close(self) -> float | None:
        """SIGTERM, then SIGKILL after 20 s; returns the seconds the stack took to stop on SIGTERM (None: killed)."""
        started = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
            stopped: float | None = time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stopped = None
        self.log.close()
        return stopped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, path: str, user: str, admin: bool = False, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {auth.mint(user, admin=admin)}"}
        response = self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {body}")
        return body["data"]

    def grant(self, user: str, amount: int) -> None:
        self.call("POST", "/admin/points/grant", "bench-admin", admin=True,
                  json={"userId": user, "amount": amount, "reason": "bench"})

    def outpaint(self, user: str, seconds: float) -> str:
        url = f"{self.sim_url}/samples/bench.png?w=64&h=64&sim_seconds={seconds}"
        data = self.call("POST", "/user/ai/tasks/submit", user,
                         json={"modelName": "image-out-painting", "imageUrl": url, "parameters": {"xScale": 1.5}})
        return data["taskNo"]

    def task(self, user: str, task_no: str) -> dict:
        return self.call("GET", f"/user/ai/tasks/{task_no}", user)

    def record(self, task_no: str) -> dict:
        return self.tasks_table.get_item(Key={"task_no": task_no}, ConsistentRead=True)["Item"]

    def provider_job(self, provider_task_id: str) -> dict:
        return self.http.get(f"{self.sim_url}/api/v1/tasks/{provider_task_id}", timeout=10,
                             headers={"Authorization": "Bearer sim-dashscope-key"}).json()["output"]

    def provider_seconds(self, provider_task_id: str) -> tuple[float, float]:
        """(submit, end) of the provider's job, epoch seconds (the simulator's own clock: this machine's)."""
        out = self.provider_job(provider_task_id)
        parse = lambda text: datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        return parse(out["submit_time"]), parse(out["end_time"])

    def costs(self, task_no: str) -> dict:
        arn = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{PREFIX}-TaskStateMachine:{task_no}"
        return execution_costs(self.sfn, arn)

    def sim_stats(self) -> dict:
        return self.http.get(f"{self.sim_url}/_sim/stats", timeout=5).json()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
