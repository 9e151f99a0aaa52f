"""Issue 20: copying a provider's output goes through aigc.store.outbound (public addresses only) and
RESULT_HOST_ALLOWLIST patterns match the host on the default https port only (a pattern may name a
port); s3:// outputs are accepted only under the task's own results/<user>/<task>/."""
from __future__ import annotations

import io
import socket

import boto3
import pytest
from moto import mock_aws

from aigc.store import storage
from tests.hostile_http import HostileServer

BUCKET = "results-bucket"


@pytest.fixture
def host():
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture
def s3():
    storage._s3.cache_clear()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")
    storage._s3.cache_clear()


@pytest.mark.parametrize("url,allowed", [
    ("https://out.oss-cn-beijing.aliyuncs.com/a.png?Expires=1", True),
    ("https://out.oss-cn-beijing.aliyuncs.com:443/a.png", True),
    ("https://out.oss-cn-beijing.aliyuncs.com:8443/a.png", False),  # the same host, another port
    ("https://out.oss-cn-beijing.aliyuncs.com:22/a.png", False),
    ("http://out.oss-cn-beijing.aliyuncs.com/a.png", False),  # not https
    ("https://user:pw@out.oss-cn-beijing.aliyuncs.com/a.png", False),
    ("https://out.oss-cn-beijing.aliyuncs.com.evil.example/a.png", False),
    ("https://aliyuncs.com/a.png", False),
    ("https://out.oss-cn-beijing.aliyuncs.com:99999/a.png", False),  # not a port
    ("http://127.0.0.1:8090/results/x/0.png", True),  # a pattern naming its port: that port only
    ("http://127.0.0.1:8091/results/x/0.png", False),
    ("http://127.0.0.1/results/x/0.png", False),
    ("ftp://out.oss-cn-beijing.aliyuncs.com/a.png", False),
])
def test_result_hosts_match_the_default_https_port_unless_a_pattern_names_one(url, allowed):
    assert storage.host_allowed(url, ["*.aliyuncs.com", "127.0.0.1:8090"]) is allowed


def _copy(url: str, patterns: list[str], *, allow_private: bool) -> str:
    return storage.copy_url_to_s3(url, BUCKET, "results/alice/TASK-1/1", allowed_hosts=patterns,
                                  max_bytes=10_000_000, spool=io.BytesIO(), allow_private=allow_private)


def test_an_allowed_host_on_another_port_is_refused_before_any_connection(host, s3):
    with pytest.raises(storage.HostNotAllowed) as refused:
        _copy(f"{host.url}/a.png", ["127.0.0.1"], allow_private=True)
    assert refused.value.code == "ResultHostNotAllowed"
    assert host.requests == []


def test_a_private_address_is_refused_without_the_local_setting(host, s3):
    with pytest.raises(storage.HostNotAllowed) as refused:
        _copy(f"{host.url}/a.png", [f"127.0.0.1:{host.port}"], allow_private=False)
    assert refused.value.code == "ResultAddressNotAllowed"
    assert host.requests == []


def test_an_allowed_name_that_resolves_to_a_private_address_is_refused(host, s3, monkeypatch):
    def resolves_inside(name, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_inside)
    with pytest.raises(storage.HostNotAllowed) as refused:
        _copy(f"http://cdn.oss.example.com:{host.port}/a.png", [f"*.oss.example.com:{host.port}"],
              allow_private=False)
    assert refused.value.code == "ResultAddressNotAllowed"
    assert host.requests == []


def test_a_redirect_to_another_port_is_refused(host, s3):
    other = f"http://127.0.0.1:{host.port + 1}/a.png"
    with pytest.raises(storage.HostNotAllowed):
        _copy(f"{host.url}/redirect?to={other}", [f"127.0.0.1:{host.port}"], allow_private=True)
    assert [path.split("?")[0] for path in host.requests] == ["/redirect"]


def test_the_local_stack_copies_from_its_loopback_host(host, s3):
    key = _copy(f"{host.url}/a.png", [f"127.0.0.1:{host.port}"], allow_private=True)
    assert key == "results/alice/TASK-1/1.png"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == host.png


@pytest.mark.parametrize("ref,key", [
    ("s3://results-bucket/results/alice/TASK-1/1.png", "results/alice/TASK-1/1.png"),
    ("s3://results-bucket/results/alice/TASK-1/sub/2.png", "results/alice/TASK-1/sub/2.png"),
    ("s3://results-bucket/results/bob/TASK-9/1.png", None),  # another user's task
    ("s3://results-bucket/results/alice/TASK-2/1.png", None),  # another task of the same user
    ("s3://results-bucket/results/alice/TASK-10/1.png", None),  # a task whose number starts alike
    ("s3://results-bucket/uploads/alice/cat.png", None),
    ("s3://results-bucket/results/alice/TASK-1/", None),
    ("s3://results-bucket/results/alice/TASK-1/../../bob/TASK-9/1.png", None),
    ("s3://results-bucket/results/alice/TASK-1//1.png", None),
    ("s3://other-bucket/results/alice/TASK-1/1.png", None),
    ("s3://results-bucket/results/alice/TASK-1/1.png?versionId=x", None),
    ("https://results-bucket/results/alice/TASK-1/1.png", None),
])
def test_s3_outputs_only_under_the_tasks_own_prefix(ref, key):
    assert storage.result_location_allowed(ref, BUCKET, "results/alice/TASK-1/") == key
