"""Twilio credentials from the environment as twilio-cli reads them: TWILIO_ACCOUNT_SID, and an API key
(TWILIO_API_KEY + TWILIO_API_SECRET) used with basic auth key:secret against the account's URL."""

from __future__ import annotations

import base64
import os

import pytest
from test_provider_contract import ACCOUNT_SID, base_url_of, twilio_message
from test_providers_twilio import api, fake_api_module  # noqa: F401

from bulksend import profiles
from bulksend.config import Config
from bulksend.providers.base import Delivery

KEY_SID = "SK" + "4" * 32
KEY_SECRET = "key-secret-Q7fz1"
AUTH_TOKEN = "auth-token-M2kd8"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
BALANCE = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Balance.json"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def bare_home(home, api, monkeypatch):  # noqa: F811
    """A twilio profile with no account_sid: the environment supplies the identity."""
    (home / "config.toml").write_text(
        f'[providers.twilio]\ntype = "twilio"\nsender = "+15005550006"\nbase_url = "{base_url_of(api)}"\n',
        encoding="utf-8",
    )
    for name in list(os.environ):
        if name.startswith("TWILIO_") or (name.startswith("BULKSEND_") and name.endswith("_SECRET")):
            monkeypatch.delenv(name)
    return home


def send_one(home) -> None:
    provider = profiles.open_provider(Config.load(home), "twilio")
    try:
        provider.send(Delivery(1, "c", "+447700900123", "Hi", "sms"))
    finally:
        provider.close()


def test_an_api_key_from_the_environment_authenticates_against_the_accounts_url(bare_home, api, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_API_KEY", KEY_SID)
    monkeypatch.setenv("TWILIO_API_SECRET", KEY_SECRET)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)  # the API key wins, as with twilio-cli
    api.expect_request(MESSAGES, method="POST").respond_with_json(twilio_message(), status=201)
    send_one(bare_home)
    request = api.log[-1][0]
    assert request.path == MESSAGES
    assert request.headers["Authorization"] == basic(KEY_SID, KEY_SECRET)


def test_the_account_sid_and_auth_token_from_the_environment(bare_home, api, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_API_KEY", KEY_SID)  # a key without its secret is not used
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    api.expect_request(MESSAGES, method="POST").respond_with_json(twilio_message(), status=201)
    send_one(bare_home)
    assert api.log[-1][0].headers["Authorization"] == basic(ACCOUNT_SID, AUTH_TOKEN)


def test_a_profiles_own_api_key_takes_its_secret_from_twilio_api_secret(bare_home, api, monkeypatch, cli):  # noqa: F811
    config = bare_home / "config.toml"
    config.write_text(config.read_text() + f'account_sid = "{ACCOUNT_SID}"\napi_key_sid = "{KEY_SID}"\n')
    monkeypatch.setenv("TWILIO_API_SECRET", KEY_SECRET)
    api.expect_request(BALANCE).respond_with_json({"account_sid": ACCOUNT_SID, "balance": "1.00", "currency": "USD"})
    result = cli("provider", "check", "twilio")
    assert result.exit_code == 0, result.stderr
    assert api.log[-1][0].headers["Authorization"] == basic(KEY_SID, KEY_SECRET)
    assert KEY_SECRET not in result.stdout + result.stderr


def test_without_an_account_sid_anywhere_the_error_names_both_places(bare_home, monkeypatch, cli):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    result = cli("provider", "check", "twilio")
    assert result.exit_code == 6
    assert "provider profile 'twilio' needs 'account_sid'" in result.stderr
    assert "TWILIO_ACCOUNT_SID" in result.stderr
    assert AUTH_TOKEN not in result.stderr


def test_an_api_key_without_its_secret_names_twilio_api_secret(bare_home, monkeypatch, cli):
    config = bare_home / "config.toml"
    config.write_text(config.read_text() + f'account_sid = "{ACCOUNT_SID}"\napi_key_sid = "{KEY_SID}"\n')
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)  # an auth token is not an API key's secret
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr("keyring.core._keyring_backend", fail.Keyring())
    assert isinstance(keyring.get_keyring(), fail.Keyring)
    result = cli("provider", "check", "twilio")
    assert result.exit_code == 6
    assert "TWILIO_API_SECRET" in result.stderr
