"""Personal data stays private: the home, locks, journal and outbox are owner-only (0700 / 0600), tightened with
one warning when found looser; a URL that carries a password is never shown whole (issue 9, item 6)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bulksend.journal import AttemptJournal
from bulksend.locks import CampaignLock
from bulksend.private import open_private, private_dir
from bulksend.safetext import scrub_url, scrub_urls
from sendhelpers import write_campaign

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_send_leaves_the_home_and_everything_in_it_owner_only(cli, home, tmp_path):
    os.chmod(home, 0o700)
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path / "c", "private", 3)
    result = cli("send", campaign, "--yes", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr
    for directory in (home, home / "locks", home / "outbox"):
        assert mode(directory) == 0o700, directory
    for file in (home / "ledger.db", home / "outbox" / "private.jsonl", *(home / "locks").iterdir()):
        assert mode(file) == 0o600, file


def test_the_dry_run_file_is_owner_only(cli, home, tmp_path):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path / "c", "rehearsal", 3)
    assert cli("send", campaign, "--dry-run").exit_code == 0
    assert mode(home / "outbox") == 0o700
    assert mode(home / "outbox" / "rehearsal.dry-run.jsonl") == 0o600


def test_a_looser_home_and_outbox_are_tightened_with_one_warning_each(cli, home, tmp_path):
    (home / "outbox").mkdir()
    (home / "outbox" / "loose.jsonl").write_text("")
    os.chmod(home, 0o755)
    os.chmod(home / "outbox", 0o755)
    os.chmod(home / "outbox" / "loose.jsonl", 0o644)
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path / "c", "loose", 2)
    result = cli("send", campaign, "--yes", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert mode(home) == 0o700 and mode(home / "outbox") == 0o700
    assert mode(home / "outbox" / "loose.jsonl") == 0o600
    for path in (home / "outbox", home / "outbox" / "loose.jsonl"):
        assert result.stderr.count(f"{path} was open to other users") == 1, result.stderr
    again = cli("send", campaign, "--yes", "--quiet")
    assert "was open to other users" not in again.stderr  # once: it is owner-only now


def test_locks_and_journal_directories_are_created_owner_only(tmp_path):
    home = tmp_path / "h"
    with CampaignLock.acquire(home, "spring"):
        assert mode(home) == 0o700 and mode(home / "locks") == 0o700
        assert mode(home / "locks" / "spring.lock") == 0o600
    journal = AttemptJournal(home / "journal" / "1.attempts", "boot")
    journal.open()
    journal.close()
    assert mode(home / "journal") == 0o700 and mode(home / "journal" / "1.attempts") == 0o600


def test_a_looser_journal_file_is_tightened(tmp_path, capsys):
    path = tmp_path / "j" / "1.attempts"
    path.parent.mkdir(mode=0o700)
    path.write_text("old")
    os.chmod(path, 0o644)
    journal = AttemptJournal(path, "boot")
    journal.open()
    journal.close()
    assert mode(path) == 0o600
    assert f"{path} was open to other users (mode 644)" in capsys.readouterr().err


def test_private_dir_creates_missing_parents_owner_only_and_tightens_from_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    private_dir(root / "a" / "b", root=root)
    assert [mode(p) for p in (root, root / "a", root / "a" / "b")] == [0o700] * 3
    fd = open_private(root / "a" / "f.txt", os.O_WRONLY)
    os.close(fd)
    assert mode(root / "a" / "f.txt") == 0o600


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:pa55@gw.example.com/v1", "https://***@gw.example.com/v1"),
        ("https://user:p@ss@gw.example.com", "https://***@gw.example.com"),
        ("postgresql://bulk:s3cret@db.internal:5432/ledger", "postgresql://***@db.internal:5432/ledger"),
        ("https://gw.example.com/v1?to=a@b", "https://gw.example.com/v1?to=a@b"),
        ("see https://a:b@x.io and mailto me@example.com", "see https://***@x.io and mailto me@example.com"),
    ],
)
def test_scrub_url_hides_the_user_and_password(url, shown):
    assert scrub_url(url) == shown


def test_scrub_urls_walks_settings():
    settings = {"base_url": "https://u:pw@h", "headers": {"X": "https://u:pw@h"}, "list": ["https://u:pw@h"], "n": 3}
    assert "pw" not in json.dumps(scrub_urls(settings))
    assert scrub_urls(settings)["n"] == 3


def test_provider_list_json_never_prints_a_password_in_a_url(cli, home):
    (home / "config.toml").write_text(
        '[providers.gw]\ntype = "http"\nbase_url = "https://acme:Hunter2pass@gw.example.com"\n'
        'url = "https://acme:Hunter2pass@gw.example.com/send"\n'
    )
    for args in (("provider", "list", "--json"), ("provider", "list")):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "Hunter2pass" not in result.stdout + result.stderr
    doc = json.loads(cli("provider", "list", "--json").stdout)
    gw = next(p for p in doc["profiles"] if p["name"] == "gw")
    assert gw["settings"]["base_url"] == "https://***@gw.example.com"
