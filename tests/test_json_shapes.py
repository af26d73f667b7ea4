"""docs/json.md is the JSON contract: every command runs with --json here and its keys are checked against the page.

The page is parsed (one ``### `COMMAND --json` `` section per command, with its ``keys:`` and
``sometimes:`` lines), so the documentation cannot drift from the code: a key added, renamed or removed
without the page fails here, and so does a command that takes --json but is not on the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import keyring
import keyring.core
import pytest
import typer

from bulksend.cli import app
from bulksend.ledger import STATES
from test_credentials import MemoryKeyring

DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """Section title (``send CSV|CAMPAIGN --dry-run``) → (keys always there, keys sometimes there)."""
    shapes: dict[str, tuple[set[str], set[str]]] = {}
    title = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(.+) --json`", line)
        if heading:
            title = heading.group(1)
            shapes[title] = (set(), set())
        elif title and line.startswith(("keys:", "sometimes:")):
            # `key` (when…), …: the backticked words outside parentheses are the keys
            keys = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", line.split(":", 1)[1])))
            shapes[title][0 if line.startswith("keys:") else 1].update(keys)
    return shapes


def command_of(title: str) -> str:
    """``campaigns show ID`` → ``campaigns show``: the words before the first placeholder or flag."""
    words = []
    for word in title.split():
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return " ".join(words)


def commands_with_json() -> set[str]:
    root = typer.main.get_command(app)
    found = set()

    def walk(group, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])
            elif any("--json" in getattr(p, "opts", ()) for p in command.params):
                found.add(" ".join([*prefix, name]))

    walk(root, [])
    return found


def test_every_command_that_takes_json_is_documented():
    assert {command_of(title) for title in documented()} == commands_with_json()


def test_every_documented_section_has_keys():
    for title, (keys, _) in documented().items():
        assert keys, title


@pytest.fixture
def memory_keyring(monkeypatch):
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)  # restored afterwards
    keyring.set_keyring(MemoryKeyring())
    for name in ("TWILIO_AUTH_TOKEN", "BULKSEND_FAKE_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_every_command_prints_the_keys_the_page_documents(cli, home, tmp_path, memory_keyring):
    (home / "config.toml").write_text(
        '[providers.fake]\ntype = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\nsender = "+15005550006"\n'
    )
    recipients = tmp_path / "list.csv"
    recipients.write_text("phone,consent\n07400000001,yes\n07400000002,yes\n07400000003,yes\n0740000000x,yes\n")
    optouts = tmp_path / "stop.csv"
    optouts.write_text("phone\n+447400000007\nnot a number\n")
    listing = (recipients, "--region", "GB")
    runs = [  # (section title, argv, stdin); in order: later ones need what earlier ones did
        ("credits topup N", ("credits", "topup", 1000, "--channel", "sms"), None),
        ("validate CSV", ("validate", *listing), None),
        ("estimate CSV", ("estimate", *listing, "-m", "Hi"), None),
        ("send CSV|CAMPAIGN --dry-run", ("send", *listing, "-m", "Hi", "--dry-run"), None),
        ("send CSV|CAMPAIGN", ("send", *listing, "-m", "Hi", "--limit", 1, "--yes"), None),
        ("campaigns resume ID", ("campaigns", "resume", "list", "--limit", 1, "--yes"), None),
        ("campaigns show ID", ("campaigns", "show", "list"), None),
        ("campaigns refresh ID", ("campaigns", "refresh", "list"), None),
        ("campaigns export ID", ("campaigns", "export", "list"), None),
        ("campaigns report ID --html FILE", ("campaigns", "report", "list", "--html", tmp_path / "r.html"), None),
        ("campaigns list", ("campaigns", "list"), None),
        ("campaigns reconcile ID", ("campaigns", "reconcile", "list"), None),
        ("campaigns cancel ID", ("campaigns", "cancel", "list"), None),
        ("send-one NUMBER", ("send-one", "+447400000009", "-m", "Hi"), None),
        ("balance", ("balance",), None),
        ("credits history", ("credits", "history"), None),
        ("credits audit", ("credits", "audit"), None),
        ("optout add NUMBER...", ("optout", "add", "+447400000008"), None),
        ("optout remove NUMBER...", ("optout", "remove", "+447400000008"), None),
        ("optout import FILE", ("optout", "import", optouts), None),
        ("optout list", ("optout", "list"), None),
        ("provider login NAME", ("provider", "login", "fake", "--stdin"), "not-a-real-token\n"),
        ("provider list", ("provider", "list"), None),
        ("provider logout NAME", ("provider", "logout", "fake"), None),
        ("provider check NAME", ("provider", "check", "outbox"), None),
        ("config show", ("config", "show"), None),
        ("ledger check", ("ledger", "check"), None),
        ("ledger backup FILE", ("ledger", "backup", tmp_path / "copy.db"), None),
        ("ledger restore FILE", ("ledger", "restore", tmp_path / "copy.db", "--yes"), None),
        ("ledger adopt", ("ledger", "adopt", "--yes"), None),
        ("webhooks urls", ("webhooks", "urls", "--public-url", "https://hooks.example.test"), None),
        ("webhooks replies", ("webhooks", "replies"), None),
        ("ledger migrate", ("ledger", "migrate"), None),
        ("ledger copy --to URL", ("ledger", "copy", "--to", f"sqlite:///{tmp_path / 'copied.db'}"), None),
    ]
    shapes = documented()
    assert {title for title, _, _ in runs} == set(shapes)
    for title, argv, stdin in runs:
        result = cli(*argv, "--json", input=stdin)
        assert result.exit_code == 0, (title, result.stderr)
        doc = json.loads(result.stdout)
        assert isinstance(doc, dict), title
        always, sometimes = shapes[title]
        if title == "webhooks urls":  # one entry per profile, named by the profile: the keys are the entry's
            assert set(doc) == {"fake", "outbox"}
            for entry in doc.values():
                assert always <= set(entry) <= always | sometimes, (title, entry)
            continue
        assert always <= set(doc), (title, always - set(doc))
        assert set(doc) <= always | sometimes, (title, set(doc) - always - sometimes)
        if "counts" in doc and "dry_run" not in doc:
            assert set(doc["counts"]) == set(STATES), title  # every state, zeros included
        if title in ("send CSV|CAMPAIGN", "send CSV|CAMPAIGN --dry-run"):
            assert [e["row"] for e in doc["examples"]] == [1]
        if title == "send CSV|CAMPAIGN":
            assert (doc["rejected"], doc["reasons"]) == (1, {"invalid_number": 1})
            assert doc["counts"] == {"delivered": 0, "failed": 0, "queued": 2, "sending": 0, "sent": 1,
                                     "undelivered": 0, "unknown": 0}
        if title == "campaigns resume ID":  # the list is not read again, its rejects were recorded
            assert (doc["rejected"], doc["reasons"], doc["examples"]) == (1, {"invalid_number": 1}, [])
        if title == "campaigns list":
            assert [c["campaign"] for c in doc["campaigns"]] == ["list"]
        if title == "provider login NAME":
            assert doc == {"profile": "fake", "stored": True, "overridden_by": None}
        if title == "provider logout NAME":
            assert doc == {"profile": "fake", "removed": True}
        assert "not-a-real-token" not in result.stdout + result.stderr
