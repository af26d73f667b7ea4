"""Profiles from config.toml: the built-in outbox, unknown names and types, secrets refused, opening adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulksend import profiles
from bulksend.config import Config
from bulksend.errors import ConfigError, ExitCode
from bulksend.providers.base import Profile
from bulksend.providers.outbox import OutboxProvider
from bulksend.providers.twilio import TwilioProvider

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


def config(tmp_path: Path, text: str) -> Config:
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return Config.load(tmp_path)


TWO_PROFILES = f"""
[providers.twilio]
type = "twilio"
account_sid = "{ACCOUNT_SID}"
sender = "+15005550006"
concurrency = 32

[providers.rehearsal]
type = "outbox"
path = "rehearsals"
"""


def test_the_outbox_exists_without_configuration(tmp_path):
    assert profiles.load_profile(Config(home=tmp_path), "outbox") == Profile("outbox", "outbox", {})
    assert profiles.list_profiles(Config(home=tmp_path)) == [Profile("outbox", "outbox", {})]


def test_profiles_come_from_the_file_in_order_then_the_outbox(tmp_path):
    listed = profiles.list_profiles(config(tmp_path, TWO_PROFILES))
    assert [(p.name, p.type) for p in listed] == [("twilio", "twilio"), ("rehearsal", "outbox"), ("outbox", "outbox")]
    assert listed[0].settings == {"account_sid": ACCOUNT_SID, "sender": "+15005550006", "concurrency": 32}


def test_a_configured_outbox_replaces_the_built_in_one(tmp_path):
    cfg = config(tmp_path, '[providers.outbox]\npath = "elsewhere"\n')
    assert profiles.load_profile(cfg, "outbox") == Profile("outbox", "outbox", {"path": "elsewhere"})
    assert [p.name for p in profiles.list_profiles(cfg)] == ["outbox"]
    assert profiles.describe_profiles(cfg)[0].builtin is False


def test_an_unknown_profile_lists_the_configured_ones(tmp_path):
    with pytest.raises(ConfigError) as raised:
        profiles.load_profile(config(tmp_path, TWO_PROFILES), "vonage")
    assert raised.value.exit_code == ExitCode.CONFIG
    assert raised.value.message == "no provider profile named 'vonage'."
    assert "Profiles: twilio, rehearsal, outbox." in raised.value.hint


def test_a_profile_named_after_a_type_needs_no_type_key(tmp_path):
    cfg = config(tmp_path, f'[providers.twilio]\naccount_sid = "{ACCOUNT_SID}"\nsender = "+15005550006"\n')
    assert profiles.load_profile(cfg, "twilio").type == "twilio"


def test_a_profile_without_a_type_or_with_an_unknown_one(tmp_path):
    cfg = config(tmp_path, '[providers.main]\nsender = "x"\n[providers.sms-co]\ntype = "smsco"\n')
    with pytest.raises(ConfigError, match="has no type"):
        profiles.load_profile(cfg, "main")
    with pytest.raises(ConfigError, match="unknown provider type 'smsco'"):
        profiles.load_profile(cfg.__class__(home=tmp_path, providers={"sms-co": {"type": "smsco"}}), "sms-co")


def test_list_shows_a_profile_of_an_unknown_type(tmp_path):
    cfg = config(tmp_path, '[providers.sms-co]\ntype = "smsco"\n')
    assert [(s.name, s.secret) for s in profiles.describe_profiles(cfg)][0] == ("sms-co", "unknown type")


@pytest.mark.parametrize(
    "key",
    ["auth_token", "api_secret", "token", "password", "secret", "access_token", "AuthToken", "client-secret"],
)
def test_a_secret_looking_key_is_refused_without_echoing_its_value(tmp_path, key):
    cfg = config(tmp_path, f'[providers.twilio]\ntype = "twilio"\naccount_sid = "{ACCOUNT_SID}"\n{key} = "hunter22"\n')
    for attempt in (lambda: profiles.load_profile(cfg, "twilio"), lambda: profiles.list_profiles(cfg)):
        with pytest.raises(ConfigError) as raised:
            attempt()
        assert f"contains {key!r}: secrets never go in the config file" in raised.value.message
        assert "BULKSEND_TWILIO_SECRET or TWILIO_AUTH_TOKEN" in raised.value.hint
        assert "bulksend provider login twilio" in raised.value.hint
        assert "hunter22" not in raised.value.message + raised.value.hint


def test_identifiers_are_not_secrets_and_nested_tables_are_searched(tmp_path):
    allowed = config(
        tmp_path,
        '[providers.gw]\ntype = "outbox"\napi_key_sid = "SK1"\napi_key = "public-key"\n'
        '[providers.gw.headers]\nAuthorization = "Bearer {secret}"\n',
    )
    assert profiles.load_profile(allowed, "gw").settings["api_key_sid"] == "SK1"
    refused = config(
        tmp_path, '[providers.gw]\ntype = "outbox"\n[providers.gw.headers]\nAuthorization = "Bearer abc"\n'
    )
    with pytest.raises(ConfigError, match="'headers.Authorization'"):
        profiles.load_profile(refused, "gw")


def test_open_provider_resolves_the_secret_and_builds_the_adapter(tmp_path, monkeypatch):
    monkeypatch.delenv("BULKSEND_TWILIO_SECRET", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token-from-env")
    cfg = config(tmp_path, TWO_PROFILES)
    provider = profiles.open_provider(cfg, "twilio")
    try:
        assert isinstance(provider, TwilioProvider)
        assert provider.secret == "token-from-env" and provider.home == tmp_path
        assert provider.profile.get("concurrency") == 32
    finally:
        provider.close()
    rehearsal = profiles.open_provider(cfg, "rehearsal")
    assert isinstance(rehearsal, OutboxProvider) and rehearsal.secret is None
    assert rehearsal.path_for("c") == tmp_path / "rehearsals" / "c.jsonl"


def test_open_provider_overrides_settings_for_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BULKSEND_TWILIO_SECRET", "s3cret")
    overrides = {"concurrency": 64, "rate": 50}
    provider = profiles.open_provider(config(tmp_path, TWO_PROFILES), "twilio", overrides=overrides)
    try:
        assert provider.profile.get("concurrency") == 64 and provider.rate == 50.0
        assert provider._session.get_adapter("https://api.twilio.com")._pool_maxsize == 64
    finally:
        provider.close()
    with pytest.raises(ConfigError, match="secrets never go"):
        profiles.open_provider(config(tmp_path, TWO_PROFILES), "twilio", overrides={"auth_token": "x"})


def test_secret_target_refuses_the_outbox(tmp_path):
    with pytest.raises(ConfigError, match="needs no secret"):
        profiles.secret_target(Config(home=tmp_path), "outbox")
