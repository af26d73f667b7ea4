"""`estimate` follows a send's frequency cap and quiet hours, with send's own rules, on a pinned clock.

An estimate prices what a send started at the same instant would send: numbers at the cap (counted in
the ledger, which estimate only reads) are rejected ``frequency_capped`` as in send's pass one, and the
rows quiet hours would hold back are counted with their due times. ``send --dry-run`` is the reference.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import time_machine

from ledger_backends import BACKENDS, Backend

UTC = timezone.utc
GB, NY, AU = "+447400000001", "+12125550100", "+61412345678"
GB_IN_TOKYO = "+447400000002"
NOON = datetime(2026, 6, 1, 12, tzinfo=UTC)  # 13:00 London, 08:00 New York, 21:00 Tokyo, 22:30 Lord Howe


@pytest.fixture(params=BACKENDS)
def backend(request):
    found = Backend(request.param)
    yield found
    found.drop()


@pytest.fixture
def funded(cli, home, backend):
    (home / "config.toml").write_text(f'[ledger]\nurl = "{backend.url}"\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def world(tmp_path: Path) -> Path:
    path = tmp_path / "world.csv"
    path.write_text(
        "name,phone,consent,timezone\n"
        f"Ann,{GB},yes,\nBob,{NY},yes,\nCat,{AU},yes,\nDan,{GB_IN_TOKYO},yes,Asia/Tokyo\n"
    )
    return path


def compliance(home: Path, backend: Backend, **settings: str) -> None:
    lines = [f'[ledger]\nurl = "{backend.url}"', "[compliance]"]
    lines += [f'{key} = "{value}"' for key, value in settings.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def send_first(funded, tmp_path: Path, *numbers: str) -> None:
    """A campaign sent at 10:00 to ``numbers``: two hours before the tests' instant."""
    (tmp_path / "first.csv").write_text("phone,consent\n" + "".join(f"{n},yes\n" for n in numbers))
    with time_machine.travel(datetime(2026, 6, 1, 10, tzinfo=UTC), tick=False):
        result = funded("send", tmp_path / "first.csv", "--message", "Hi", "--quiet-hours", "off", "--yes",
                        "--json", "--quiet")
    assert result.exit_code == 0, result.stderr


def estimate(funded, path: Path, *args: str) -> dict:
    result = funded("estimate", path, "--message", "Hi {name}", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def ledger_rows(backend: Backend) -> dict[str, list[tuple]]:
    """Every row of every table of the ledger, in order: what "nothing was written" is compared on."""
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.path)
        try:
            tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (backend.schema,))]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}


def test_estimate_and_a_dry_run_agree_on_the_cap_and_on_who_waits(funded, home, backend, tmp_path):
    send_first(funded, tmp_path, GB)
    compliance(home, backend, frequency_cap="1/24h", quiet_hours="21:00-08:00")
    path = world(tmp_path)
    with time_machine.travel(NOON, tick=False):
        before = ledger_rows(backend)
        doc = estimate(funded, path)
        assert ledger_rows(backend) == before  # estimate only reads the ledger
        result = funded("send", path, "--message", "Hi {name}", "--dry-run", "--json", "--name", "world")
    assert result.exit_code == 0, result.stderr
    dry = json.loads(result.stdout)
    lines = [json.loads(line) for line in Path(dry["file"]).read_text().splitlines()]
    waiting = sorted(line["due"] for line in lines if "due" in line)

    assert doc["reasons"] == {"frequency_capped": 1}  # Ann (GB): one message today already
    assert doc["frequency_cap"] == {"cap": "1/1d", "capped": 1}
    assert doc["recipients"] == dry["messages"] == 3 and doc["credits"] == dry["credits"]
    assert doc["quiet_hours"] == {
        "range": "21:00-08:00", "at": "2026-06-01T12:00:00Z", "waiting_now": 2,
        "first_due": "2026-06-01T23:00:00Z", "last_due": "2026-06-02T01:30:00Z", "no_shared_hours": 0,
    }
    assert dry["waiting"] == 2 and waiting == ["2026-06-01T23:00:00Z", "2026-06-02T01:30:00Z"]
    assert sorted(line["to"] for line in lines) == sorted([NY, AU, GB_IN_TOKYO])


def test_the_flags_override_config(funded, home, backend, tmp_path):
    send_first(funded, tmp_path, GB)
    compliance(home, backend, frequency_cap="1/24h", quiet_hours="21:00-08:00")
    path = world(tmp_path)
    with time_machine.travel(NOON, tick=False):
        off = estimate(funded, path, "--frequency-cap", "off", "--quiet-hours", "off")
        other = estimate(funded, path, "--frequency-cap", "2/24h", "--quiet-hours", "13:30-12:30")
    assert off["reasons"] == {} and off["frequency_cap"] is None and off["quiet_hours"] is None
    assert off["recipients"] == 4
    # Two a day: one sent today is under the cap. Quiet 13:30-12:30 leaves 12:30-13:30 local: London (13:00) only;
    assert other["reasons"] == {} and other["frequency_cap"] == {"cap": "2/1d", "capped": 0}
    assert other["quiet_hours"]["range"] == "13:30-12:30" and other["quiet_hours"]["waiting_now"] == 2
    assert other["quiet_hours"]["no_shared_hours"] == 1  # an Australian mobile: Cocos to Lord Howe is 4 hours wide


def test_a_bad_cap_flag_is_exit_2_and_a_bad_config_value_exit_6(funded, home, backend, tmp_path):
    path = world(tmp_path)
    result = funded("estimate", path, "--message", "Hi", "--frequency-cap", "lots")
    assert result.exit_code == 2 and "frequency_cap: 'lots' is not a cap" in result.stderr
    compliance(home, backend, quiet_hours="9pm-8am")
    result = funded("estimate", path, "--message", "Hi")
    assert result.exit_code == 6 and "compliance.quiet_hours" in result.stderr


def test_the_human_summary_says_how_many_would_wait(funded, home, backend, tmp_path):
    compliance(home, backend, quiet_hours="21:00-08:00")
    with time_machine.travel(NOON, tick=False):
        result = funded("estimate", world(tmp_path), "--message", "Hi {name}")
    assert result.exit_code == 0, result.stderr
    assert ("Quiet hours (21:00-08:00, each recipient's own zone): sent at 2026-06-01 12:00 UTC, 2 rows would "
            "wait until 2026-06-01 23:00 UTC to 2026-06-02 01:30 UTC.") in " ".join(result.stdout.split())


def test_without_a_ledger_nobody_is_capped_and_none_is_made(cli, home, tmp_path):
    (home / "config.toml").write_text('[compliance]\nfrequency_cap = "1/24h"\nquiet_hours = "off"\n')
    doc = estimate(cli, world(tmp_path))
    assert doc["reasons"] == {} and doc["frequency_cap"] == {"cap": "1/1d", "capped": 0}
    assert not (home / "ledger.db").exists()


def test_zones_of_a_whole_column_are_row_zones_row_by_row():
    """schedule.zones_many against row_zones: numbers of many countries and types, with and without cells."""
    import phonenumbers

    from bulksend.schedule import row_zones, zones_many

    numbers, regions = [], []
    for region in ("GB", "US", "CA", "AU", "RU", "BR", "IT", "DE", "IN", "MX", "ID", "KZ", "NZ", "FR", "JP"):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
                regions.append(region)
    numbers += ["+12125550100", "+13105550100", "+61412345678", "+390612345678"]
    regions += ["US", "US", "AU", "IT"]
    names = sorted(set(regions))
    index = np.array([names.index(r) for r in regions])
    digits = np.array([int(n[1:]) for n in numbers], dtype=np.int64)
    cells = [["", " Asia/Tokyo ", "Not/AZone", None][i % 4] for i in range(len(numbers))]
    ids, sets = zones_many(digits, index, names, cells)
    for i, number in enumerate(numbers):
        cell = (cells[i] or "").strip() or None
        assert sets[ids[i]] == row_zones(number, regions[i], cell), number
    ids, sets = zones_many(digits, index, names)
    assert [sets[i] for i in ids] == [row_zones(n, r) for n, r in zip(numbers, regions)]


def test_estimate_help_names_the_rules(cli):
    result = cli("estimate", "--help")
    text = " ".join(result.stdout.split())
    assert result.exit_code == 0
    assert "--quiet-hours" in text and "--frequency-cap" in text
    assert "[compliance] quiet_hours" in text and "frequency_capped" in text
