"""The client's API key: sent as X-API-Key beside (or instead of) the bearer token; AIGC_API_KEY when neither
is given; the CLI's `aigc keys` commands."""
from __future__ import annotations

from aigc_client import Client
from aigc_client.cli import app
from typer.testing import CliRunner


def _headers(client: Client) -> dict:
    headers = dict(client._http.headers)
    client.close()
    return {k.lower(): v for k, v in headers.items()}


def test_the_key_goes_in_x_api_key(monkeypatch):
    monkeypatch.delenv("AIGC_API_KEY", raising=False)
    assert "x-api-key" not in _headers(Client("http://api.test", "jwt"))
    only_key = _headers(Client("http://api.test", api_key="aigc_abc"))
    assert only_key["x-api-key"] == "aigc_abc" and "authorization" not in only_key
    both = _headers(Client("http://api.test", "jwt", api_key="aigc_abc"))
    assert both["authorization"] == "Bearer jwt" and both["x-api-key"] == "aigc_abc"


def test_aigc_api_key_is_read_when_no_credential_is_given(monkeypatch):
    monkeypatch.setenv("AIGC_API_KEY", "aigc_env")
    assert _headers(Client("http://api.test"))["x-api-key"] == "aigc_env"
    assert "x-api-key" not in _headers(Client("http://api.test", "jwt"))  # a token given: the env is not used
    assert _headers(Client("http://api.test", api_key="aigc_given"))["x-api-key"] == "aigc_given"


def test_the_cli_has_keys_create_list_revoke(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten long option names on a narrow terminal
    runner = CliRunner()
    help_text = runner.invoke(app, ["keys", "--help"]).output
    assert all(command in help_text for command in ("create", "list", "revoke"))
    create = runner.invoke(app, ["keys", "create", "--help"]).output
    for option in ("--scope", "--expires-in-days", "--daily-points-limit", "--model"):
        assert option in create
    assert "--api-key" in runner.invoke(app, ["--help"]).output
