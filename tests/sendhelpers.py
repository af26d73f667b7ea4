"""Shared by the send tests: recipient files, campaign files, and reading the ledger after a run."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def mobile(i: int) -> str:
    """The i-th of a block of valid UK mobile numbers."""
    return f"+447400{i:06d}"


def write_recipients(path: Path, n: int, *, start: int = 0, consent: str = "yes") -> list[str]:
    numbers = [mobile(start + i) for i in range(n)]
    path.write_text("name,phone,consent\n" + "".join(f"R{i},{num},{consent}\n" for i, num in enumerate(numbers)))
    return numbers


def write_campaign(
    directory: Path, name: str, n: int, *, provider: str = "outbox", start: int = 0, message: str = "Hi {name}",
    **extra,
) -> tuple[Path, list[str]]:
    """A campaign file and its recipients CSV in ``directory``; returns the file and the numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    numbers = write_recipients(directory / f"{name}.csv", n, start=start)
    lines = [
        f'name = "{name}"',
        f'recipients = "{name}.csv"',
        f'message = "{message}"',
        f'provider = "{provider}"',
        'region = "GB"',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, numbers


def ledger_rows(home: Path, campaign: str) -> dict[str, tuple[str, int, str | None]]:
    """number → (state, debited, error_code) for one campaign, read straight from the ledger file."""
    conn = sqlite3.connect(home / "ledger.db")
    try:
        rows = conn.execute(
            "SELECT t.e164, t.state, t.debited, t.error_code FROM transmissions t "
            "JOIN campaigns c ON c.id = t.campaign_id WHERE c.name = ?",
            (campaign,),
        ).fetchall()
    finally:
        conn.close()
    return {e164: (state, debited, code) for e164, state, debited, code in rows}


def states(nonzero: dict[str, int]) -> dict[str, int]:
    """``counts`` as --json gives it: every transmission state, zeros included."""
    from bulksend.ledger import STATES

    return {state: nonzero.get(state, 0) for state in sorted(STATES)}
