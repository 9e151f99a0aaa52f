"""`python -m ops.dlq` (make dlq) in a shell without AWS credentials: --local signs with the local stack's
dummy credentials; against AWS, or a local stack that is not running, it says why in one line and
exits 2, never with a botocore traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from local import cfn
from local.stack import TEMPLATE, _physical

ROOT = Path(__file__).resolve().parents[2]


def _dlq(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(PYTHONPATH=os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)]),
                 AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
                 **env)
    return subprocess.run([sys.executable, "-m", "ops.dlq", *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_endpoint():
    """A moto server with the template's queues, as make dev creates them."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._port}"
    try:
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
        template = cfn.load_template(TEMPLATE)
        names, _ = _physical(template, "aigc-local")
        for logical in cfn.resources_of_type(template, "AWS::SQS::Queue"):
            sqs.create_queue(QueueName=names[logical])
        yield url
    finally:
        server.stop()


def test_local_list_without_credentials_uses_the_local_stacks(local_endpoint):
    result = _dlq("--local", "list", AWS_ENDPOINT_URL=local_endpoint)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert {q["queue"] for q in json.loads(result.stdout)} == {"upload", "reconcile", "events", "webhook", "stats"}


def test_local_list_when_the_stack_is_not_running_says_so_in_one_line():
    result = _dlq("--local", "--endpoint-url", f"http://127.0.0.1:{_free_port()}", "list")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: cannot reach") and "make dev" in result.stderr


def test_a_stack_without_credentials_is_one_clear_line():
    result = _dlq("--stack", "aigc-prod", "list", AWS_DEFAULT_REGION="us-east-1")
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr and "NoCredentialsError" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: no AWS credentials: configure a profile (AWS_PROFILE) or set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY; for the local stack use --local"]
