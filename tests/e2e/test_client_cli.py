"""The `aigc` command line against the local stack: what a user sees, and the exit codes scripts rely on
(0 completed, 1 task failed/cancelled, 2 usage, 3 auth/points/rate, 4 server or network)."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import ROOT, free_port, new_user, start_stack

CLIENT_SRC = ROOT / "clients" / "python" / "src"


def aigc(stack, *args: str, user: str | None = None, token: str | None = None, cwd: Path | None = None,
         timeout: float = 90) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: a new process, configured by AIGC_BASE_URL / AIGC_TOKEN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env.update(PYTHONPATH=str(CLIENT_SRC), AIGC_BASE_URL=stack.url, NO_COLOR="1")
    if user or token:
        env["AIGC_TOKEN"] = token or stack.token(user)
    return subprocess.run([sys.executable, "-m", "aigc_client", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def user(stack):
    name = new_user("cmd")
    stack.grant(name, 200)
    return name


def test_console_script_is_named_aigc():
    [entry] = [e for e in metadata.entry_points(group="console_scripts") if e.name == "aigc"]
    assert entry.value == "aigc_client.cli:main"


def test_submit_wait_download_prints_plain_lines_and_leaves_a_png(stack, user, tmp_path):
    result = aigc(stack, "submit", "wanx-v1", "--prompt", "a red kite", "--wait", "--download", "out/",
                  user=user, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [png] = (tmp_path / "out").iterdir()
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size == (1024, 1024)
    lines = result.stdout.splitlines()
    # Not a terminal: one plain line per change of status/progress, no escape codes, then the file.
    assert "\x1b" not in result.stdout
    assert any(line.split()[2].rstrip(",") in ("queued", "processing") for line in lines[:-2]), lines
    assert not any(line.split()[2].rstrip(",") == "queued" and "%" in line for line in lines[:-1]), lines  # not started
    assert lines[-2].endswith("completed 100%") and png.stem in lines[-2]
    assert lines[-1] == str(Path("out") / png.name)
    assert stack.balance(user) == 180


def test_progress_bar_on_a_terminal(stack, user):
    """On a terminal: a live bar (carriage returns, percentages), then the result URL."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGC_", "NO_COLOR"))}
    env.update(PYTHONPATH=str(CLIENT_SRC), AIGC_BASE_URL=stack.url, AIGC_TOKEN=stack.token(user),
               COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "aigc_client", "submit", "wanx-v1", "--prompt", "a kite",
                             "--wait"], env=env, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        code = proc.wait(timeout=30)
    screen = b"".join(chunks).decode(errors="replace")
    assert code == 0, screen
    assert "\r" in screen and "\x1b[" in screen and "100%" in screen and " completed " in screen
    assert "http://127.0.0.1" in screen


def test_unknown_model_exits_2_with_the_api_message(stack, user):
    message = stack.submit(user, modelName="no-such-model", prompt="x").json()["message"]
    result = aigc(stack, "submit", "no-such-model", "--prompt", "x", user=user)
    assert result.returncode == 2
    assert message in result.stderr and "no-such-model" in message
    assert stack.balance(user) == 200


def test_failed_task_exits_1_and_says_why(stack, user):
    result = aigc(stack, "submit", "wanx-v1", "--prompt", "boom [sim:fail=InternalError.Algo]", "--wait", user=user)
    assert result.returncode == 1
    assert "failed" in result.stderr and "InternalError.Algo" in result.stderr and "refunded" in result.stderr
    assert result.stdout.splitlines()[-1].endswith(" failed")  # no percentage: nothing was made
    assert stack.balance(user) == 200


def test_refusals_exit_3_and_unreachable_exits_4(stack, user, monkeypatch):
    assert aigc(stack, "balance").returncode == 3  # no token
    poor = new_user("poor")
    stack.grant(poor, 5)
    poor_result = aigc(stack, "submit", "wanx-v1", "--prompt", "a kite", user=poor)
    assert poor_result.returncode == 3 and "not enough points" in poor_result.stderr
    gone = aigc(stack, "--base-url", f"http://127.0.0.1:{free_port()}", "balance", user=user)
    assert gone.returncode == 4 and "error" in gone.stderr
    assert stack.balance(poor) == 5


def test_usage_errors_exit_2_and_charge_nothing(stack, user, tmp_path):
    picture = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(picture)
    assert aigc(stack, "submit", "wanx-v1", "--prompt", "x", "--param", "novalue", user=user).returncode == 2
    local_to_text_model = aigc(stack, "submit", "wanx-v1", "--prompt", "x", "--image", str(picture), user=user)
    assert local_to_text_model.returncode == 2 and "outpainting" in local_to_text_model.stderr
    assert aigc(stack, "submit", "image-out-painting", "--image", str(tmp_path / "missing.png"),
                user=user).returncode == 2
    bad_param = aigc(stack, "submit", "wanx-v1", "--prompt", "x", "--param", "n=9", user=user)
    assert bad_param.returncode == 2 and "n" in bad_param.stderr
    assert aigc(stack, "bogus-command", user=user).returncode == 2
    assert stack.balance(user) == 200 and stack.task_count(user) == 0


def test_params_are_json_when_they_parse(stack, user):
    result = aigc(stack, "--json", "submit", "wanx-v1", "--prompt", "two kites", "--param", "n=2",
                  "--param", "seed=7", "--param", "size=720*1280", user=user)
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["parameters"]["n"] == 2 and task["parameters"]["seed"] == 7 and task["pointsCost"] == 40
    assert task["parameters"]["size"] == "720*1280"  # not JSON: kept as the string


def test_local_image_is_uploaded_and_becomes_the_task(stack, user, tmp_path):
    picture = tmp_path / "wide.png"
    Image.new("RGB", (320, 240), (200, 80, 30)).save(picture)
    result = aigc(stack, "submit", "image-out-painting", "--image", str(picture), "--param", "outputRatio=16:9",
                  "--download", str(tmp_path / "out"), user=user)
    assert result.returncode == 0, result.stderr
    [png] = (tmp_path / "out").iterdir()
    with Image.open(png) as out:
        assert abs(out.size[0] / out.size[1] - 16 / 9) < 0.02
    assert stack.balance(user) == 190


def test_read_commands(stack, user):
    submitted = json.loads(aigc(stack, "--json", "submit", "wanx-v1", "--prompt", "a kite", user=user).stdout)
    task_no = submitted["taskNo"]
    waited = aigc(stack, "wait", task_no, user=user)
    assert waited.returncode == 0, waited.stderr
    shown = json.loads(aigc(stack, "get", task_no, user=user).stdout)
    assert shown["taskNo"] == task_no and shown["status"] == "completed"
    listed = json.loads(aigc(stack, "--json", "tasks", "--limit", "0", user=user).stdout)
    assert [t["taskNo"] for t in listed] == [task_no]
    header, row = aigc(stack, "tasks", user=user).stdout.splitlines()  # not a terminal: tab-separated
    assert header.split("\t")[:3] == ["taskNo", "model", "status"] and row.split("\t")[:3] == [
        task_no, "wanx-v1", "completed"]
    balance = aigc(stack, "balance", user=user).stdout.splitlines()  # the total, then its lots
    assert balance[0] == "180 points" and balance[1].split("\t")[:4] == ["lot", "category", "source", "remaining"]
    assert balance[2].split("\t")[1:5] == ["promotional", "grant", "180", "200"]
    ledger = json.loads(aigc(stack, "--json", "records", user=user).stdout)
    assert [(e["type"], e["amount"]) for e in ledger] == [("debit", -20), ("grant", 200)]
    catalog = json.loads(aigc(stack, "--json", "models").stdout)
    assert {"wanx-v1", "image-out-painting"} <= {m["modelName"] for m in catalog}
    again = aigc(stack, "cancel", task_no, user=user)
    assert again.returncode == 2 and "409" in again.stderr


def test_webhook_from_the_cli_verifies_with_the_secret_it_prints(stack, user):
    from standardwebhooks import Webhook

    from local.webhook_receiver import Receiver

    receiver = Receiver()
    try:
        result = aigc(stack, "submit", "wanx-v1", "--prompt", "a kite", "--webhook", receiver.url,
                      "--webhook-event", "completed", "--wait", user=user)
        assert result.returncode == 0, result.stderr
        (headers, raw), = receiver.wait_for(1, timeout=30)
        secret = aigc(stack, "webhook-secret", user=user).stdout.strip()
        assert secret.startswith("whsec_")
        payload = Webhook(secret).verify(raw, headers)
        assert payload["event"] == "completed" and payload["data"]["status"] == "completed"
        rotated = aigc(stack, "webhook-secret", "--rotate", user=user).stdout.strip()
        assert rotated.startswith("whsec_") and rotated != secret
    finally:
        receiver.stop()


def test_an_upload_refused_for_points_says_so_and_exits_3(stack, tmp_path):
    poor = new_user("poorup")
    stack.grant(poor, 5)
    picture = tmp_path / "in.png"
    Image.new("RGB", (320, 240), (10, 20, 30)).save(picture)
    result = aigc(stack, "submit", "image-out-painting", "--image", str(picture), "--wait", user=poor)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Rejected.InsufficientPoints" in result.stderr and "10" in result.stderr
    assert stack.balance(poor) == 5


def test_retry_from_the_cli(stack, user):
    failed = aigc(stack, "--json", "submit", "wanx-v1", "--prompt", "boom [sim:fail=InternalError.Algo]", "--wait",
                  user=user)
    assert failed.returncode == 1
    task_no = json.loads(failed.stdout)["taskNo"]
    retried = aigc(stack, "--json", "retry", task_no, user=user)
    assert retried.returncode == 0, retried.stderr
    new = json.loads(retried.stdout)
    assert new["taskNo"] != task_no and new["modelName"] == "wanx-v1"
    refused = aigc(stack, "retry", "TASK-20200101000000000-0000000000000000", user=user)
    assert refused.returncode == 2 and "404" in refused.stderr


def test_waiting_shows_the_queue_position_while_the_provider_is_full(log_dir):
    """A provider that runs one job at a time (its own stack): a third task waits in the fair queue,
    and the plain progress lines say where it stands."""
    busy = start_stack(log_dir, "--sim", "max_concurrency=1", name="queue")
    try:
        user = new_user("queue")
        busy.grant(user, 100)
        for n in (1, 2):
            assert aigc(busy, "submit", "wanx-v1", "--prompt", f"busy {n} [sim:seconds=3]", user=user).returncode == 0
        result = aigc(busy, "submit", "wanx-v1", "--prompt", "third [sim:seconds=1]", "--wait", user=user)
        assert result.returncode == 0, result.stderr
        waiting = [line for line in result.stdout.splitlines() if "queue position" in line]
        assert waiting and all(" queued, queue position " in line for line in waiting), result.stdout
        assert result.stdout.splitlines()[-2].endswith("completed 100%")
    finally:
        busy.stop()
