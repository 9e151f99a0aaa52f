"""Issue 20: a user's reference image that cannot be fetched is the user's failure, never our outage.

OpenAIImagesProvider.prepare fetches the images (the workflow calls it before a provider slot is
taken) against a real local server that misbehaves, within one total deadline: every failure is
InputUnavailable (InvalidParameter.FileDownload, a ProviderRejected: refunded, not retried), and
the provider's API is never called."""
from __future__ import annotations

import socket
import time

import pytest
import responses

from aigc.core.errors import ProviderRejected, ProviderUnavailable
from aigc.providers.base import INPUT_DOWNLOAD_CODE, InputUnavailable, ProviderRequest
from aigc.providers.openai_images import OpenAIImagesProvider
from tests.hostile_http import HostileServer, closed_port, elapsed

BASE = "https://images.example.com"
DEADLINE = 1.0
SLACK = 1.0  # scheduling on a loaded machine


@pytest.fixture
def host():
    server = HostileServer()
    yield server
    server.stop()


def _provider(**kwargs) -> OpenAIImagesProvider:
    return OpenAIImagesProvider(BASE, "sk-test", allow_private_hosts=True, input_deadline=DEADLINE, **kwargs)


def _request(*urls) -> ProviderRequest:
    return ProviderRequest(model="sora-image", task_type="image_to_image", prompt="p", image_urls=list(urls))


def _refused_within_deadline(provider, *urls) -> InputUnavailable:
    took, error = elapsed(lambda: provider.prepare(_request(*urls)))
    assert isinstance(error, InputUnavailable), repr(error)
    assert isinstance(error, ProviderRejected) and not isinstance(error, ProviderUnavailable)
    assert error.code == INPUT_DOWNLOAD_CODE
    assert took < DEADLINE + SLACK, f"took {took:.2f} s, past the {DEADLINE} s deadline"
    return error


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 404, 403])
def test_an_error_status_from_the_users_host_is_the_users_failure(host, status):
    error = _refused_within_deadline(_provider(), f"{host.url}/status/{status}")
    assert error.http_status == status


def test_a_host_that_refuses_connections_is_the_users_failure():
    _refused_within_deadline(_provider(), f"http://127.0.0.1:{closed_port()}/a.png")


def test_a_name_that_does_not_resolve_is_the_users_failure(monkeypatch):
    def nxdomain(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    _refused_within_deadline(_provider(), "https://no-such-host.example.com/a.png")


def test_a_resolver_that_never_answers_is_bounded_by_the_deadline(monkeypatch):
    def hangs(host, *args, **kwargs):
        time.sleep(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hangs)
    _refused_within_deadline(_provider(), "https://slow-dns.example.com/a.png")


def test_a_host_that_never_answers_is_bounded_by_the_deadline(host):
    _refused_within_deadline(_provider(), f"{host.url}/hang")


def test_a_body_dripped_past_the_deadline_is_refused_at_the_deadline(host):
    """Every byte comes well within any per-read timeout (0.2 s apart); only a total deadline stops it."""
    _refused_within_deadline(_provider(), f"{host.url}/drip?n=15&every=0.2")


def test_the_deadline_is_for_all_references_together(host):
    # each alone fits the deadline (0.6 s), the two together do not
    _refused_within_deadline(_provider(), f"{host.url}/drip?n=3&every=0.2", f"{host.url}/drip?n=3&every=0.2")


def test_redirect_loops_are_the_users_failure(host):
    loop = f"{host.url}/redirect?to={host.url}/redirect%3Fto%3D{host.url}/redirect"
    _refused_within_deadline(_provider(), f"{host.url}/redirect?to={loop}")


@responses.activate(assert_all_requests_are_fired=False)
def test_a_failed_fetch_never_reaches_the_provider(host):
    responses.add_passthru(host.url)
    responses.post(BASE + "/v1/images/edits", json={"data": [{"url": "https://cdn.example.com/x.png"}]})
    with pytest.raises(InputUnavailable):
        _provider().submit(_request(f"{host.url}/status/503"))
    assert not any(call.request.url.startswith(BASE) for call in responses.calls)


@responses.activate(assert_all_requests_are_fired=False)
def test_prepared_images_are_sent_without_a_second_fetch(host):
    responses.add_passthru(host.url)
    responses.post(BASE + "/v1/images/edits", json={"data": [{"url": "https://cdn.example.com/x.png"}]})
    provider = _provider()
    prepared = provider.prepare(_request(f"{host.url}/a.png"))
    assert [image.data for image in prepared.images] == [host.png]
    assert prepared.images[0].content_type == "image/png"
    fetched = list(host.requests)
    job = provider.submit(prepared)
    assert job.output_urls == ["https://cdn.example.com/x.png"]
    assert host.requests == fetched  # the submit sent what prepare fetched
    assert host.png in responses.calls[-1].request.body
