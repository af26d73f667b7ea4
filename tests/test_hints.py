"""Every next step bulksend prints runs as printed: each hint is pasted back (shlex.split) and does what it says.

The runs use ``--home`` on the command line (no BULKSEND_HOME), a home and a list whose names need
quoting, and the options that decide what a command does (--region, --message, --rates, --countries,
--assume-consent, --limit…): a hint that dropped any of them would fail or do something else.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulksend.cli import app
from bulksend.hints import Invocation
from fake_twilio import AUTH_TOKEN, FakeTwilio, twilio_config

HOME = "my home"
LIST = "nat list.csv"
H = ["--home", HOME]

# A hint's kind is its command words; every hint Invocation can build must be run by some test below.
KIND_OF_HINT = {
    "validate_rejects": "validate",
    "estimate": "estimate",
    "send": "send",
    "help": "send --help",
    "resume": "campaigns resume",
    "reconcile": "campaigns reconcile",
    "show": "campaigns show",
    "campaigns": "campaigns list",
    "topup": "credits topup",
    "login": "provider login",
    "providers": "provider list",
    "ledger_check": "ledger check",
    "ledger_restore": "ledger restore",
    "ledger_adopt": "ledger adopt",
}
KINDS_RUN = {
    "validate", "estimate", "send", "send --help", "campaigns resume", "campaigns reconcile", "campaigns show",
    "campaigns list", "credits topup", "provider login", "provider list", "ledger check", "ledger restore",
    "ledger adopt",
}  # the kinds the scenarios below assert they printed and ran


@pytest.fixture
def bulksend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``bulksend ARGS…`` in-process, from ``tmp_path``, with the home given only as --home."""
    monkeypatch.delenv("BULKSEND_HOME", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: object, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


def hints(result) -> list[str]:
    """Every command a run suggested, on stdout or stderr, as printed."""
    found = []
    for line in (result.stdout + result.stderr).splitlines():
        for match in re.finditer(r"bulksend (?:--home '[^']*' )?[a-z][^;()]*?(?=\s{3}\(|[;()]|, then |\s*$)", line):
            found.append(match.group(0).strip())
    return found


def kind(command: str) -> str:
    words = shlex.split(command)[1:]
    if words[:2] == ["--home", HOME]:
        words = words[2:]
    if words[-1] == "--help":
        return f"{words[0]} --help"
    return " ".join(words[:2]) if words[0] in ("campaigns", "credits", "provider", "ledger") else words[0]


def paste(bulksend, command: str, input: str | None = None):
    """Run a printed hint exactly as a user pasting it into a shell would."""
    words = shlex.split(command)
    assert words[0] == "bulksend" and words[1:3] == H, command
    return bulksend(*words[1:], input=input)


def ledger(tmp_path: Path, campaign: str) -> dict[str, tuple[str, int]]:
    conn = sqlite3.connect(tmp_path / HOME / "ledger.db")
    try:
        rows = conn.execute(
            "SELECT t.e164, t.state, t.debited FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id "
            "WHERE c.name = ?", (campaign,)
        ).fetchall()
    finally:
        conn.close()
    return {e164: (state, debited) for e164, state, debited in rows}


def write_list(tmp_path: Path, *, consent: bool = True, bad: bool = True) -> None:
    header = "phone,consent,first_name\n" if consent else "phone,first_name\n"
    rows = [("07400000001", "Ann"), ("07400000002", "Bob")] + ([("0740000000x", "Bad")] if bad else [])
    body = "".join(f"{p},yes,{n}\n" if consent else f"{p},{n}\n" for p, n in rows)
    (tmp_path / LIST).write_text(header + body)


def topup(bulksend, amount: int = 1000) -> None:
    assert bulksend(*H, "credits", "topup", amount, "--channel", "sms").exit_code == 0


# --- the table above is complete --------------------------------------------------------------------------


def test_every_kind_of_hint_is_run_by_a_test_here():
    methods = {name for name in vars(Invocation) if not name.startswith("_") and callable(getattr(Invocation, name))}
    assert methods - {"command"} == set(KIND_OF_HINT)
    assert set(KIND_OF_HINT.values()) == KINDS_RUN


# --- validate and estimate --------------------------------------------------------------------------------


def test_validate_suggests_listing_the_rejects_and_pricing_a_message(bulksend, tmp_path):
    write_list(tmp_path)
    result = bulksend(*H, "validate", LIST, "--region", "GB")
    assert hints(result) == [
        "bulksend --home 'my home' validate 'nat list.csv' --region GB --rejects rejects.csv",
        "bulksend --home 'my home' estimate 'nat list.csv' --region GB --message 'Your message'",
    ]
    rejects, estimate = hints(result)
    assert paste(bulksend, rejects).exit_code == 0
    assert (tmp_path / "rejects.csv").read_text().splitlines()[1].startswith("3,0740000000x,invalid_number")
    priced = paste(bulksend, estimate, )
    assert priced.exit_code == 0 and "2 recipients" in priced.stdout


def test_estimate_suggests_the_send_that_sends_what_it_priced(bulksend, tmp_path, monkeypatch):
    write_list(tmp_path)
    (tmp_path / "rates.csv").write_text("country,channel,credits\nGB,sms,7\n")
    topup(bulksend)
    result = bulksend(*H, "estimate", LIST, "--region", "GB", "-m", "Hi {first_name}", "--rates", "rates.csv")
    assert "14 credits" in result.stdout
    [send] = hints(result)
    assert send == "bulksend --home 'my home' send 'nat list.csv' --region GB --message 'Hi {first_name}' --rates rates.csv"
    monkeypatch.setattr("bulksend.output.is_terminal", lambda: True)  # a person at a terminal answers y
    sent = paste(bulksend, send, input="y\n")
    assert sent.exit_code == 0, sent.stderr
    assert ledger(tmp_path, "nat list") == {"+447400000001": ("sent", 7), "+447400000002": ("sent", 7)}


def test_a_whatsapp_estimate_points_to_the_send_help(bulksend, tmp_path):
    write_list(tmp_path)
    result = bulksend(*H, "estimate", LIST, "--region", "GB", "-m", "Hi", "--channel", "whatsapp")
    [help_] = hints(result)
    assert help_ == "bulksend --home 'my home' send --help"
    shown = paste(bulksend, help_)
    assert shown.exit_code == 0 and "Send a campaign" in shown.stdout


# --- send: dry run, canary, resume, done ------------------------------------------------------------------


def test_dry_run_then_canary_then_resume_then_done(bulksend, tmp_path):
    write_list(tmp_path, consent=False, bad=False)
    topup(bulksend)
    options = ["--region", "GB", "-m", "Hi {first_name}", "--assume-consent", "customers of record", "--limit", 1]
    dry = bulksend(*H, "send", LIST, *options, "--dry-run")
    [to_send] = hints(dry)
    assert dry.stdout.splitlines()[-1] == (
        "To send it: bulksend --home 'my home' send 'nat list.csv' --assume-consent 'customers of record' "
        "--region GB --message 'Hi {first_name}' --limit 1 --yes"
    )
    as_json = bulksend(*H, "send", LIST, *options, "--dry-run", "--json")
    assert json.loads(as_json.stdout)["next"] == to_send
    canary = paste(bulksend, to_send)
    assert canary.exit_code == 0 and ledger(tmp_path, "nat list") == {
        "+447400000001": ("sent", 1), "+447400000002": ("queued", 0)
    }
    [resume] = hints(canary)
    assert resume == "bulksend --home 'my home' campaigns resume 'nat list' --yes"
    shown = bulksend(*H, "campaigns", "show", "nat list")
    assert hints(shown) == [resume]
    rest = paste(bulksend, resume)
    assert rest.exit_code == 0 and ledger(tmp_path, "nat list")["+447400000002"] == ("sent", 1)
    [show] = hints(rest)
    assert show == "bulksend --home 'my home' campaigns show 'nat list'"
    shown = paste(bulksend, show)
    assert shown.exit_code == 0 and "Campaign 'nat list' (#1): done" in shown.stdout


def test_an_interrupted_send_suggests_the_resume_that_finishes_it(bulksend, tmp_path, monkeypatch):
    write_list(tmp_path, bad=False)
    topup(bulksend)

    @contextlib.contextmanager
    def ctrl_c_at_once():
        event = threading.Event()
        event.set()
        yield event

    with monkeypatch.context() as patched:
        patched.setattr("bulksend.campaign_run.stop_on_signals", ctrl_c_at_once)
        stopped = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi {first_name}", "--yes")
    assert stopped.exit_code == 130 and "Interrupted" in stopped.stdout
    [resume] = hints(stopped)
    assert kind(resume) == "campaigns resume"
    done = paste(bulksend, resume)
    assert done.exit_code == 0
    assert {state for state, _ in ledger(tmp_path, "nat list").values()} == {"sent"}


# --- refusals that name the command to run ----------------------------------------------------------------


def test_not_enough_credits_suggests_a_topup_that_is_enough_and_allowed(bulksend, tmp_path):
    write_list(tmp_path, bad=False)
    (tmp_path / "rates.csv").write_text("country,channel,credits\n*,sms,600\n")
    topup(bulksend)
    send = [*H, "send", LIST, "--region", "GB", "-m", "Hi", "--rates", "rates.csv", "--yes"]
    refused = bulksend(*send)
    assert refused.exit_code == 3
    [top] = hints(refused)
    assert top == "bulksend --home 'my home' credits topup 1000 --channel sms"  # 200 short; the minimum is 1000
    assert paste(bulksend, top).exit_code == 0
    assert bulksend(*send).exit_code == 0


def test_credits_history_of_a_new_home_suggests_a_topup(bulksend):
    result = bulksend(*H, "credits", "history")
    [top] = hints(result)
    assert top == "bulksend --home 'my home' credits topup 1000 --channel sms"
    assert paste(bulksend, top).exit_code == 0
    assert json.loads(bulksend(*H, "balance", "--json").stdout)["sms"]["available"] == 1000


def test_an_unknown_campaign_or_none_at_all_point_to_commands_that_run(bulksend):
    [help_] = hints(bulksend(*H, "campaigns", "list"))
    assert help_ == "bulksend --home 'my home' send --help" and paste(bulksend, help_).exit_code == 0
    missing = bulksend(*H, "campaigns", "show", "nope")
    assert missing.exit_code == 2
    [listing] = hints(missing)
    assert listing == "bulksend --home 'my home' campaigns list" and paste(bulksend, listing).exit_code == 0


def test_a_list_nobody_can_be_messaged_suggests_the_rejects_of_that_list_read_that_way(bulksend, tmp_path):
    (tmp_path / LIST).write_text("phone,consent\n07400000001,no\n07400000002,no\n")
    topup(bulksend)
    refused = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi", "--yes")
    assert refused.exit_code == 2
    [rejects] = hints(refused)
    assert rejects == "bulksend --home 'my home' validate 'nat list.csv' --region GB --rejects rejects.csv"
    assert paste(bulksend, rejects).exit_code == 0
    assert (tmp_path / "rejects.csv").read_text().count("no_consent") == 2


def test_another_list_under_a_used_name_points_to_the_old_campaign(bulksend, tmp_path):
    write_list(tmp_path, bad=False)
    topup(bulksend)
    assert bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi", "--yes").exit_code == 0
    refused = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hello", "--yes")
    assert refused.exit_code == 2
    [show] = hints(refused)
    assert show == "bulksend --home 'my home' campaigns show 1"
    shown = paste(bulksend, show)
    assert shown.exit_code == 0 and "Campaign 'nat list' (#1)" in shown.stdout


# --- unknown outcomes: resume, cancel, reconcile ----------------------------------------------------------


def test_unknown_outcomes_lead_to_a_reconcile_that_settles_them(bulksend, tmp_path, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    write_list(tmp_path, bad=False)
    topup(bulksend)
    with FakeTwilio(fault=lambda to, attempt: "500") as twilio:
        (tmp_path / HOME / "config.toml").write_text(
            twilio_config(twilio.url, rate=0, concurrency=1, circuit_breaker=1, reconcile_after=600)
        )
        stopped = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi", "--provider", "fake", "--yes")
        assert stopped.exit_code == 1
        [resume] = hints(stopped)
        assert resume == "bulksend --home 'my home' campaigns resume 'nat list' --yes"
        cancelled = bulksend(*H, "campaigns", "cancel", "nat list")
        [reconcile] = hints(cancelled)
        assert reconcile == "bulksend --home 'my home' campaigns reconcile 'nat list'"
        (tmp_path / HOME / "config.toml").write_text(twilio_config(twilio.url, reconcile_after=0))  # no settle wait
        settled = paste(bulksend, reconcile)
    assert settled.exit_code == 0, settled.stdout
    assert "unknown" not in {state for state, _ in ledger(tmp_path, "nat list").values()}


# --- credentials: provider login and provider list ---------------------------------------------------------


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch):
    """No secret in the environment and a keyring that lives in a dict (never the machine's)."""
    import keyring
    import keyring.core

    from test_credentials import MemoryKeyring

    for name in ("TWILIO_AUTH_TOKEN", "BULKSEND_TW_SECRET", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    backend = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)  # restored afterwards
    keyring.set_keyring(backend)
    return backend


TW_PROFILE = '[providers.tw]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\nsender = "+15005550006"\n'


def test_a_missing_secret_suggests_the_login_of_that_home(bulksend, tmp_path, memory_keyring):
    write_list(tmp_path, bad=False)
    topup(bulksend)
    (tmp_path / HOME / "config.toml").write_text(TW_PROFILE)
    refused = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi", "--provider", "tw", "--dry-run")
    assert refused.exit_code == 6
    [login] = hints(refused)
    assert login == "bulksend --home 'my home' provider login tw"
    assert paste(bulksend, login, input="tok-123\n").exit_code == 0
    assert memory_keyring.passwords == {("bulksend", "tw"): "tok-123"}
    shown = bulksend(*H, "config", "show")
    assert "secret: keyring" in shown.stdout


def test_a_secret_in_the_config_file_suggests_a_login_that_runs_once_it_is_removed(bulksend, tmp_path, memory_keyring):
    topup(bulksend)
    (tmp_path / HOME / "config.toml").write_text(TW_PROFILE + 'auth_token = "in-the-file"\n')
    refused = bulksend(*H, "provider", "list")
    assert refused.exit_code == 6
    [login] = hints(refused)
    assert login == "bulksend --home 'my home' provider login tw"
    (tmp_path / HOME / "config.toml").write_text(TW_PROFILE)  # what the hint's first half says to do
    assert paste(bulksend, login, input="tok-456\n").exit_code == 0
    assert memory_keyring.passwords == {("bulksend", "tw"): "tok-456"}


def test_refused_credentials_point_to_the_list_and_the_login_of_that_home(bulksend, tmp_path, memory_keyring, httpserver):
    httpserver.expect_request("/2010-04-01/Accounts/AC" + "0" * 32 + "/Balance.json").respond_with_json(
        {"code": 20003, "message": "Authenticate", "status": 401}, status=401
    )
    (tmp_path / HOME).mkdir()
    (tmp_path / HOME / "config.toml").write_text(TW_PROFILE + f'base_url = "{httpserver.url_for("/")[:-1]}"\n')
    memory_keyring.set_password("bulksend", "tw", "wrong-token")
    refused = bulksend(*H, "provider", "check", "tw")
    assert refused.exit_code == 6, refused.stderr
    listing, login = hints(refused)
    assert (listing, login) == ("bulksend --home 'my home' provider list", "bulksend --home 'my home' provider login tw")
    listed = paste(bulksend, listing)
    assert listed.exit_code == 0 and "tw" in listed.stdout and "keyring" in listed.stdout
    assert paste(bulksend, login, input="right-token\n").exit_code == 0
    assert memory_keyring.passwords[("bulksend", "tw")] == "right-token"


# --- the ledger: backup, check, restore, adopt --------------------------------------------------------------


def test_a_backup_names_the_check_and_the_restore_of_that_file(bulksend, tmp_path):
    topup(bulksend)
    backed = bulksend(*H, "ledger", "backup", "my backups")
    assert backed.exit_code == 0, backed.stderr
    check, restore = hints(backed)
    assert check == "bulksend --home 'my home' ledger check"
    assert kind(restore) == "ledger restore" and restore.endswith(" --yes")
    assert paste(bulksend, check).exit_code == 0
    topup(bulksend, 2000)  # after the backup: the restore takes it back, and says the ledger is behind
    restored = paste(bulksend, restore)
    assert restored.exit_code == 0, restored.stderr
    [adopt] = [h for h in hints(restored) if kind(h) == "ledger adopt"]
    assert adopt == "bulksend --home 'my home' ledger adopt --yes"
    assert bulksend(*H, "credits", "topup", 1000, "--channel", "sms").exit_code == 1  # behind: refused
    assert paste(bulksend, adopt).exit_code == 0
    assert json.loads(bulksend(*H, "balance", "--json").stdout)["sms"]["available"] == 1000


def test_an_emptied_ledger_names_the_restore_the_check_and_the_adopt_of_that_home(bulksend, tmp_path):
    topup(bulksend)
    backup = tmp_path / "ledger copy.db"
    assert bulksend(*H, "ledger", "backup", backup).exit_code == 0
    (tmp_path / HOME / "ledger.db").write_bytes(b"")
    refused = bulksend(*H, "credits", "topup", 1000, "--channel", "sms")
    assert refused.exit_code == 1
    restore, check, adopt = hints(refused)
    assert restore == "bulksend --home 'my home' ledger restore FILE --yes"  # FILE: the user's newest backup
    assert check == "bulksend --home 'my home' ledger check"
    assert adopt == "bulksend --home 'my home' ledger adopt --yes"
    restored = paste(bulksend, restore.replace("FILE", shlex.quote(str(backup))))
    assert restored.exit_code == 0, restored.stderr
    checked = paste(bulksend, check)
    assert checked.exit_code == 0 and checked.stdout.startswith("ok:")
    assert json.loads(bulksend(*H, "balance", "--json").stdout)["sms"]["available"] == 1000
    assert paste(bulksend, adopt).exit_code == 0


def test_restore_and_adopt_without_yes_print_the_command_that_does_it(bulksend, tmp_path):
    topup(bulksend)
    assert bulksend(*H, "ledger", "backup", "copy.db").exit_code == 0
    refused = bulksend(*H, "ledger", "restore", "copy.db")
    assert refused.exit_code == 2
    [restore] = hints(refused)
    assert restore == "bulksend --home 'my home' ledger restore copy.db --yes"
    assert paste(bulksend, restore).exit_code == 0
    refused = bulksend(*H, "ledger", "adopt")
    assert refused.exit_code == 2
    adopt, restore_first = hints(refused)
    assert adopt == "bulksend --home 'my home' ledger adopt --yes"
    assert restore_first == "bulksend --home 'my home' ledger restore FILE --yes"
    assert paste(bulksend, adopt).exit_code == 0


# --- not on a terminal: the command with --yes, and the rehearsal -------------------------------------------


def test_off_a_terminal_a_send_without_yes_prints_the_send_with_yes_and_the_rehearsal(bulksend, tmp_path, monkeypatch):
    monkeypatch.setattr("bulksend.output.is_terminal", lambda: False)
    write_list(tmp_path, bad=False)
    topup(bulksend)
    refused = bulksend(*H, "send", LIST, "--region", "GB", "-m", "Hi {first_name}", "--limit", 1)
    assert refused.exit_code == 2
    with_yes, rehearse = hints(refused)
    assert with_yes == "bulksend --home 'my home' send 'nat list.csv' --region GB --message 'Hi {first_name}' --limit 1 --yes"
    assert rehearse == (
        "bulksend --home 'my home' send 'nat list.csv' --region GB --message 'Hi {first_name}' --limit 1 --dry-run"
    )
    rehearsed = paste(bulksend, rehearse)
    assert rehearsed.exit_code == 0 and ledger(tmp_path, "nat list") == {}
    assert paste(bulksend, with_yes).exit_code == 0
    assert sorted(ledger(tmp_path, "nat list").values()) == [("queued", 0), ("sent", 1)]
    refused = bulksend(*H, "campaigns", "resume", "nat list", "--limit", 1)
    assert refused.exit_code == 2
    [resume] = hints(refused)
    assert resume == "bulksend --home 'my home' campaigns resume 'nat list' --limit 1 --yes"
    assert paste(bulksend, resume).exit_code == 0
    assert sorted(ledger(tmp_path, "nat list").values()) == [("sent", 1), ("sent", 1)]


# --- a list read from stdin cannot be read again ------------------------------------------------------------


def test_a_list_from_stdin_is_saved_to_a_file_before_the_hints_read_it_again(bulksend, tmp_path):
    write_list(tmp_path)
    text = (tmp_path / LIST).read_text()
    result = bulksend(*H, "validate", "-", "--region", "GB", input=text)
    assert result.exit_code == 0, result.stderr
    assert "bulksend --home 'my home' validate - " not in result.stdout
    assert "Next: save the list as list.csv (it was read from a pipe and cannot be read again), then" in result.stdout
    rejects, estimate = hints(result)
    assert rejects == "bulksend --home 'my home' validate list.csv --region GB --rejects rejects.csv"
    (tmp_path / "list.csv").write_text(text)  # what the hint says to do first
    assert paste(bulksend, rejects).exit_code == 0
    assert (tmp_path / "rejects.csv").read_text().count("invalid_number") == 1
    priced = bulksend(*H, "estimate", "-", "--region", "GB", "-m", "Hi", input=text)
    [send] = hints(priced)
    assert send == "bulksend --home 'my home' send list.csv --region GB --message Hi"


def test_a_free_form_whatsapp_dry_run_suggests_the_send_with_the_service_window(bulksend, tmp_path):
    write_list(tmp_path, bad=False)
    assert bulksend(*H, "credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    options = ["--region", "GB", "-m", "Hi", "--channel", "whatsapp", "--service-window"]
    dry = bulksend(*H, "send", LIST, *options, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    [to_send] = hints(dry)
    assert to_send == (
        "bulksend --home 'my home' send 'nat list.csv' --region GB --channel whatsapp --message Hi --service-window --yes"
    )
    assert paste(bulksend, to_send).exit_code == 0
    assert ledger(tmp_path, "nat list") == {"+447400000001": ("sent", 1), "+447400000002": ("sent", 1)}
