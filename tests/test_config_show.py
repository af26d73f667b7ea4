"""`bulksend config show`: where the home, config, ledger and each profile's secret come from; never a secret."""

from __future__ import annotations

import json

import pytest
from test_credentials import MemoryKeyring, memory_keyring, no_secret_env  # noqa: F401

from bulksend.configinfo import scrub_url

ENV_SECRET = "env-S3CRET-tw1lio-77"
KEYRING_SECRET = "keyring-S3CRET-wa-42"
DB_PASSWORD = "db-S3CRET-pw-19"

CONFIG = (
    "[providers.twilio]\n"
    'type = "twilio"\n'
    'sender = "+15005550006"\n'
    "[providers.wa]\n"
    'type = "whatsapp"\n'
    'phone_number_id = "1234"\n'
    "[providers.gw]\n"
    'type = "vonage"\n'
    'api_key = "abc"\n'
    'sender = "Shop"\n'
)


@pytest.fixture
def configured(home, monkeypatch, memory_keyring):  # noqa: F811
    (home / "config.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", ENV_SECRET)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.delenv("BULKSEND_LEDGER_URL", raising=False)
    monkeypatch.delenv("VONAGE_API_SECRET", raising=False)
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    memory_keyring.set_password("bulksend", "wa", KEYRING_SECRET)
    return home


def test_show_names_every_source_and_no_secret(cli, configured):
    result = cli("config", "show")
    assert result.exit_code == 0, result.stderr
    home = configured
    assert result.stdout.splitlines() == [
        f"home:        {home}  (from BULKSEND_HOME)",
        f"config file: {home / 'config.toml'}",
        f"ledger:      {home / 'ledger.db'}",
        "profiles:",
        "  twilio  twilio    secret: env TWILIO_AUTH_TOKEN  (account_sid from TWILIO_ACCOUNT_SID)",
        "  wa      whatsapp  secret: keyring",
        "  gw      vonage    secret: not set (set BULKSEND_GW_SECRET or VONAGE_API_SECRET, "
        "or run: bulksend provider login gw)",
        "  outbox  outbox    secret: not needed  (built in)",
    ]
    assert ENV_SECRET not in result.stdout + result.stderr
    assert KEYRING_SECRET not in result.stdout + result.stderr


def test_show_json_and_a_ledger_url_without_its_password(cli, configured, monkeypatch):
    monkeypatch.setenv("BULKSEND_LEDGER_URL", f"postgresql://bulk:{DB_PASSWORD}@db.example:5432/bulk?sslmode=require")
    result = cli("config", "show", "--json")
    assert result.exit_code == 0, result.stderr
    for secret in (ENV_SECRET, KEYRING_SECRET, DB_PASSWORD):
        assert secret not in result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ledger"] == "postgresql://bulk:***@db.example:5432/bulk?sslmode=require"
    assert doc["ledger_from"] == "BULKSEND_LEDGER_URL"
    assert doc["home"] == str(configured) and doc["config_exists"] is True
    assert [(p["name"], p["type"], p["secret"]) for p in doc["profiles"]] == [
        ("twilio", "twilio", "env TWILIO_AUTH_TOKEN"),
        ("wa", "whatsapp", "keyring"),
        ("gw", "vonage", "not set"),
        ("outbox", "outbox", "not needed"),
    ]
    assert doc["profiles"][0]["from_env"] == {"account_sid": "TWILIO_ACCOUNT_SID"}
    assert doc["profiles"][2]["secret_vars"] == ["BULKSEND_GW_SECRET", "VONAGE_API_SECRET"]


def test_show_with_home_option_and_no_config_file(cli, tmp_path, no_secret_env):  # noqa: F811
    other = tmp_path / "elsewhere"
    result = cli("--home", other, "config", "show")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        f"home:        {other}  (from --home)",
        f"config file: {other / 'config.toml'}  (not present: every setting has its default)",
        f"ledger:      {other / 'ledger.db'}",
    ]
    assert not other.exists(), "showing the configuration creates nothing"


def test_a_ledger_url_in_the_config_file(cli, configured):
    (configured / "config.toml").write_text(
        CONFIG + f'[ledger]\nurl = "postgresql://bulk:{DB_PASSWORD}@db/bulk?password={DB_PASSWORD}"\n'
    )
    doc = json.loads(cli("config", "show", "--json").stdout)
    assert (doc["ledger"], doc["ledger_from"]) == (
        "postgresql://bulk:***@db/bulk?password=***", "config.toml [ledger] url"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://db.example/bulk", "postgresql://db.example/bulk"),
        ("postgresql://bulk@db.example/bulk", "postgresql://bulk@db.example/bulk"),
        ("postgresql://bulk:p%40ss@db.example/bulk", "postgresql://bulk:***@db.example/bulk"),
        ("postgresql://u:pw@h/d?password=pw#frag", "postgresql://u:***@h/d?password=***#frag"),
        ("postgresql:///bulk?host=/run/pg&sslpassword=k", "postgresql:///bulk?host=/run/pg&sslpassword=***"),
    ],
)
def test_scrub_url(url, shown):
    assert scrub_url(url) == shown
