"""Stopping the local stack: SIGINT stops it as SIGTERM does, sent to `python -m local` itself or to
`make dev`'s own PID (GNU make passes SIGTERM on to its recipe but not SIGINT), and nothing is left
running: no process of its group, no port held."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.conftest import BOOT_TIMEOUT, ROOT, free_port, start_stack

STOP_TIMEOUT = 15


def _group_gone(pgid: int, timeout: float = STOP_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the stack binds: TIME_WAIT is no use
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_sigint_to_python_m_local_stops_everything(log_dir):
    stack = start_stack(log_dir, name="sigint")
    try:
        os.kill(stack.proc.pid, signal.SIGINT)
        assert stack.proc.wait(STOP_TIMEOUT) == 0, stack.log()
        assert _group_gone(stack.proc.pid), "a process of the stack's group is still running"
        assert "stopping the local stack" in stack.log()
        assert all(_port_free(p) for p in (stack.port, stack.moto_port, stack.sim_port, stack.ws_port))
    finally:
        stack.stop()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_sigint_to_make_dev_stops_the_stack(log_dir):
    port, moto_port, sim_port, ws_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "MAKEFLAGS", "MAKELEVEL")}
    dev_args = f"--port {port} --moto-port {moto_port} --sim-port {sim_port} --ws-port {ws_port} --quiet --wait-scale 0.05"
    log_path = log_dir / f"make-dev-{port}.log"
    with open(log_path, "wb") as log_file:
        # The real Makefile's dev target, with this interpreter; -o: never (re)build the virtualenv here.
        make = subprocess.Popen(["make", "-s", "-o", ".venv/.stamp-requirements-dev", "dev", f"PY={sys.executable}",
                                 f"DEV_ARGS={dev_args}"], cwd=ROOT, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            assert make.poll() is None, log_path.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        os.kill(make.pid, signal.SIGINT)  # make's own PID, not its process group
        try:
            make.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make dev still running {STOP_TIMEOUT} s after SIGINT\n{log_path.read_text()[-3000:]}")
        assert _group_gone(make.pid), "a process of make dev's group is still running"
        assert "stopping the local stack" in log_path.read_text()
        assert all(_port_free(p) for p in (port, moto_port, sim_port, ws_port))
    finally:
        if make.poll() is None or not _group_gone(make.pid, 0.1):
            try:
                os.killpg(make.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            make.wait(10)
