"""Secrets: environment before keyring, the headless machine without a keyring, and `bulksend provider` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.core
import keyring.errors
import pytest
from keyring.backends import fail

from bulksend import credentials
from bulksend.errors import ConfigError, ExitCode
from bulksend.providers.base import Profile, provider_types
from bulksend.providers.outbox import OutboxProvider
from bulksend.providers.twilio import TwilioProvider

CANARY = "canary-K3YR1NG-5ecret-9d2e"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
PROJECT = Path(__file__).resolve().parent.parent


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring back end that lives in a dict, so that no test touches the machine's real keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BULKSEND_") and name.endswith("_SECRET") or name == "TWILIO_AUTH_TOKEN":
            monkeypatch.delenv(name)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch, no_secret_env) -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)  # restored afterwards
    keyring.set_keyring(backend)
    yield backend


@pytest.fixture
def no_keyring(monkeypatch: pytest.MonkeyPatch, no_secret_env) -> None:
    """A headless server: keyring finds no usable back end."""
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    keyring.set_keyring(fail.Keyring())


TWILIO = Profile("twilio-eu", "twilio", {"account_sid": ACCOUNT_SID, "sender": "+15005550006"})


# -- resolve_secret / secret_source ----------------------------------------------------------------------------


def test_the_profile_variable_is_named_after_the_profile():
    assert credentials.profile_env_var("twilio") == "BULKSEND_TWILIO_SECRET"
    assert credentials.profile_env_var("twilio-eu.prod") == "BULKSEND_TWILIO_EU_PROD_SECRET"
    assert credentials.profile_env_var("zoë") == "BULKSEND_ZO__SECRET"
    assert credentials.env_vars_for(TWILIO, TwilioProvider) == ["BULKSEND_TWILIO_EU_SECRET", "TWILIO_AUTH_TOKEN"]


def test_precedence_profile_variable_then_provider_variable_then_keyring(memory_keyring, monkeypatch):
    memory_keyring.set_password("bulksend", "twilio-eu", "from-keyring")
    assert credentials.resolve_secret(TWILIO, TwilioProvider) == "from-keyring"
    assert credentials.secret_source(TWILIO, TwilioProvider) == "keyring"

    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "from-twilio-env")
    assert credentials.resolve_secret(TWILIO, TwilioProvider) == "from-twilio-env"
    assert credentials.secret_source(TWILIO, TwilioProvider) == "env TWILIO_AUTH_TOKEN"

    monkeypatch.setenv("BULKSEND_TWILIO_EU_SECRET", "from-profile-env")
    assert credentials.resolve_secret(TWILIO, TwilioProvider) == "from-profile-env"
    assert credentials.secret_source(TWILIO, TwilioProvider) == "env BULKSEND_TWILIO_EU_SECRET"


def test_empty_variables_count_as_unset_and_whitespace_is_trimmed(memory_keyring, monkeypatch):
    monkeypatch.setenv("BULKSEND_TWILIO_EU_SECRET", "   ")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", " token-with-newline\n")
    assert credentials.resolve_secret(TWILIO, TwilioProvider) == "token-with-newline"


def test_missing_secret_names_the_variables_and_the_login_command(memory_keyring):
    with pytest.raises(ConfigError) as raised:
        credentials.resolve_secret(TWILIO, TwilioProvider)
    assert raised.value.exit_code == ExitCode.CONFIG
    assert "BULKSEND_TWILIO_EU_SECRET or TWILIO_AUTH_TOKEN" in raised.value.hint
    assert "bulksend provider login twilio-eu" in raised.value.hint
    assert credentials.secret_source(TWILIO, TwilioProvider) == "missing"


def test_without_a_keyring_the_error_says_so_and_names_the_variables(no_keyring):
    with pytest.raises(ConfigError) as raised:
        credentials.resolve_secret(TWILIO, TwilioProvider)
    assert "no system keyring is available" in raised.value.message
    assert "BULKSEND_TWILIO_EU_SECRET or TWILIO_AUTH_TOKEN" in raised.value.hint
    assert credentials.secret_source(TWILIO, TwilioProvider) == "missing"
    assert credentials.keyring_problem() == "no system keyring is available on this machine"


def test_without_a_keyring_the_environment_still_works(no_keyring, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", CANARY)
    assert credentials.resolve_secret(TWILIO, TwilioProvider) == CANARY


def test_a_provider_without_a_secret_needs_none(no_keyring):
    assert credentials.secret_source(Profile("outbox", "outbox"), OutboxProvider) == "not needed"


def test_store_and_delete(memory_keyring):
    credentials.store_secret("twilio-eu", f"  {CANARY}\n")
    assert memory_keyring.passwords == {("bulksend", "twilio-eu"): CANARY}
    assert credentials.delete_secret("twilio-eu") is True
    assert credentials.delete_secret("twilio-eu") is False
    assert memory_keyring.passwords == {}


def test_storing_without_a_keyring_names_the_variable(no_keyring):
    with pytest.raises(ConfigError) as raised:
        credentials.store_secret("twilio-eu", CANARY, env_vars=["BULKSEND_TWILIO_EU_SECRET", "TWILIO_AUTH_TOKEN"])
    assert "no system keyring is available" in raised.value.message
    assert "BULKSEND_TWILIO_EU_SECRET or TWILIO_AUTH_TOKEN" in raised.value.hint
    assert CANARY not in raised.value.message + raised.value.hint


# -- bulksend provider login | logout | list ------------------------------------------------------------------


@pytest.fixture
def twilio_config(home: Path) -> Path:
    (home / "config.toml").write_text(
        "[providers.twilio-eu]\n"
        'type = "twilio"\n'
        f'account_sid = "{ACCOUNT_SID}"\n'
        'sender = "+15005550006"\n'
        'base_url = "https://api.dublin.ie1.twilio.com"\n',
        encoding="utf-8",
    )
    return home


def assert_no_canary(*results) -> None:
    for result in results:
        assert CANARY not in result.stdout and CANARY not in result.stderr


def test_login_from_stdin_then_list_shows_keyring_and_never_the_secret(memory_keyring, twilio_config, cli):
    login = cli("provider", "login", "twilio-eu", "--stdin", input=f"{CANARY}\nignored second line\n")
    assert login.exit_code == 0, login.stderr
    assert memory_keyring.passwords == {("bulksend", "twilio-eu"): CANARY}
    listing = cli("provider", "list")
    assert listing.exit_code == 0, listing.stderr
    assert listing.stdout.splitlines() == [
        f"Provider types: {', '.join(provider_types())}",  # other tests may register test doubles
        "PROFILE            TYPE    SECRET",
        "twilio-eu          twilio  keyring",
        "outbox (built in)  outbox  not needed",
    ]
    as_json = cli("provider", "list", "--json")
    document = json.loads(as_json.stdout)
    assert document["types"] == provider_types() and {"outbox", "twilio"} <= set(document["types"])
    assert [(p["name"], p["type"], p["secret"], p["builtin"]) for p in document["profiles"]] == [
        ("twilio-eu", "twilio", "keyring", False),
        ("outbox", "outbox", "not needed", True),
    ]
    assert document["profiles"][0]["settings"]["account_sid"] == ACCOUNT_SID
    assert_no_canary(login, listing, as_json)


def test_login_with_the_hidden_prompt(memory_keyring, twilio_config, cli):
    result = cli("provider", "login", "twilio-eu", input=f"{CANARY}\n")
    assert result.exit_code == 0, result.stderr
    assert memory_keyring.passwords[("bulksend", "twilio-eu")] == CANARY
    assert_no_canary(result)


def test_login_warns_when_an_environment_variable_wins(memory_keyring, twilio_config, cli, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "another")
    result = cli("provider", "login", "twilio-eu", "--stdin", input=f"{CANARY}\n")
    assert result.exit_code == 0
    assert "TWILIO_AUTH_TOKEN is set in this environment and takes precedence" in result.stderr
    assert cli("provider", "list").stdout.splitlines()[2].endswith("env TWILIO_AUTH_TOKEN")


def test_login_refuses_an_empty_secret_an_unknown_profile_and_the_outbox(memory_keyring, twilio_config, cli):
    empty = cli("provider", "login", "twilio-eu", "--stdin", input="\n")
    unknown = cli("provider", "login", "twilio-us", "--stdin", input=f"{CANARY}\n")
    outbox = cli("provider", "login", "outbox", "--stdin", input=f"{CANARY}\n")
    assert empty.exit_code == ExitCode.USAGE
    assert unknown.exit_code == ExitCode.CONFIG
    assert "no provider profile named 'twilio-us'" in unknown.stderr and "twilio-eu" in unknown.stderr
    assert outbox.exit_code == ExitCode.CONFIG and "needs no secret" in outbox.stderr
    assert memory_keyring.passwords == {}
    assert_no_canary(empty, unknown, outbox)


def test_login_without_a_keyring_exits_6_naming_the_variable(no_keyring, twilio_config, cli):
    result = cli("provider", "login", "twilio-eu", "--stdin", input=f"{CANARY}\n")
    assert result.exit_code == ExitCode.CONFIG
    assert "no system keyring is available" in result.stderr
    assert "BULKSEND_TWILIO_EU_SECRET" in result.stderr and "TWILIO_AUTH_TOKEN" in result.stderr
    assert_no_canary(result)


def test_logout(memory_keyring, twilio_config, cli):
    memory_keyring.set_password("bulksend", "twilio-eu", CANARY)
    first = cli("provider", "logout", "twilio-eu")
    second = cli("provider", "logout", "twilio-eu")
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "Removed the secret for 'twilio-eu'" in first.stderr
    assert "No secret for 'twilio-eu' was stored" in second.stderr
    assert cli("provider", "list", "--json").stdout.count('"missing"') == 1


def test_list_without_a_keyring_says_what_to_do(no_keyring, twilio_config, cli):
    result = cli("provider", "list")
    assert result.exit_code == 0
    assert "twilio-eu          twilio  missing" in result.stdout
    assert "no system keyring is available on this machine; set the environment variables" in result.stderr


def test_a_secret_in_the_config_file_is_refused_everywhere(memory_keyring, home, cli):
    (home / "config.toml").write_text(
        f'[providers.twilio]\ntype = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{CANARY}"\n',
        encoding="utf-8",
    )
    for args in (["provider", "list"], ["provider", "check", "twilio"], ["provider", "login", "twilio", "--stdin"]):
        result = cli(*args, input=f"{CANARY}\n")
        assert result.exit_code == ExitCode.CONFIG, args
        assert "contains 'auth_token': secrets never go in the config file" in result.stderr
        assert "BULKSEND_TWILIO_SECRET or TWILIO_AUTH_TOKEN" in result.stderr
        assert_no_canary(result)


def test_check_without_any_secret_exits_6(memory_keyring, twilio_config, cli):
    result = cli("provider", "check", "twilio-eu")
    assert result.exit_code == ExitCode.CONFIG
    assert "bulksend provider login twilio-eu" in result.stderr


def test_a_headless_machine_gets_exit_6_naming_the_variable(twilio_config, tmp_path):
    """The real thing in a subprocess: keyring's own fail back end, as on a server without a keyring daemon."""
    env = {k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN" and not k.startswith("BULKSEND_")}
    env.update(BULKSEND_HOME=str(twilio_config), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    result = subprocess.run(
        [sys.executable, "-m", "bulksend", "provider", "check", "twilio-eu"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=60,
    )
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "no system keyring is available" in result.stderr
    assert "BULKSEND_TWILIO_EU_SECRET or TWILIO_AUTH_TOKEN" in result.stderr


@pytest.mark.parametrize("flags", [(), ("--webhook-secret",)])
def test_an_empty_secret_stores_nothing(memory_keyring, twilio_config, cli, flags):
    result = cli("provider", "login", "twilio-eu", "--stdin", *flags, input="   \n")
    assert result.exit_code == 2
    assert "no secret given; nothing was stored." in result.stderr
    assert memory_keyring.passwords == {}
