"""Stopping the local stack: SIGTERM ends it quickly even with work in flight."""
import os
import signal
import subprocess
import time

from tests.e2e.conftest import new_user, start_stack


def test_sigterm_stops_a_busy_stack_within_5_s(log_dir):
    busy = start_stack(log_dir, name="sigterm")
    try:
        user = new_user("stop")
        busy.grant(user, 100)
        for _ in range(3):  # executions waiting on the provider, in moto's threads
            response = busy.submit(user, modelName="image-out-painting",
                                   imageUrl=busy.sample_url(64, 64, sim_seconds=120), parameters={"xScale": 1.5})
            assert response.status_code == 200, response.text
        started = time.monotonic()
        os.killpg(busy.proc.pid, signal.SIGTERM)
        try:
            busy.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 5 s after SIGTERM\n{busy.log()}") from None
        assert time.monotonic() - started < 5
        assert busy.proc.returncode == 0, busy.log()
    finally:
        busy.stop()
