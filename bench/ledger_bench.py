"""Ledger benchmark: `balance --json` as a whole process on a big ledger, and batched debit throughput.

Builds a ledger with 1,000,000 transmissions and 100,000 credit movements (consistent: `credits audit`
passes on it), then measures

  1. `python -m bulksend balance --json`, start to exit, as separate processes (median of --runs);
  2. debits with their state change, 50 per transaction as the engine commits them (claim → sending
     committed first, then one transaction of 50 `mark_sent`), on that same ledger.

Usage: .venv/bin/python bench/ledger_bench.py [--runs 11] [--debits 20000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bulksend.ledger import NewTransmission, SqliteLedger, add_year, utc_timestamp  # noqa: E402

TRANSMISSIONS = 1_000_000
MOVEMENTS = 100_000
CAMPAIGNS = 100
LOTS = 10
LOT_SIZE = 20_000


def build(path: Path) -> None:
    """Fill a fresh ledger in one transaction with executemany (seconds, not minutes)."""
    ledger = SqliteLedger.open(path)
    conn = ledger._conn  # the bench builds raw rows; the product never does
    today = date.today()
    now = utc_timestamp()
    expires = add_year(today)
    debits = MOVEMENTS - LOTS
    per_campaign = TRANSMISSIONS // CAMPAIGNS
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO credit_lots (id, channel, amount, remaining, purchased_on, expires_on, ref, recorded_at) "
        "VALUES (?, 'sms', ?, ?, ?, ?, ?, ?)",
        [(i + 1, LOT_SIZE, LOT_SIZE, str(today), str(expires), f"BENCH-{i + 1}", now) for i in range(LOTS)],
    )
    conn.executemany(
        "INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, ref) "
        "VALUES ('topup', 'sms', ?, ?, ?, ?, ?)",
        [(LOT_SIZE, str(today), now, i + 1, f"BENCH-{i + 1}") for i in range(LOTS)],
    )
    conn.executemany(
        "INSERT INTO campaigns (id, name, channel, provider, fingerprint, state, created_at, updated_at) "
        "VALUES (?, ?, 'sms', 'outbox', 'bench', 'done', ?, ?)",
        [(c + 1, f"bench-{c + 1}", now, now) for c in range(CAMPAIGNS)],
    )

    def rows():
        for i in range(TRANSMISSIONS):
            sent = i < debits
            yield (
                i + 1, i // per_campaign + 1, f"+4479{i:08d}", "sent" if sent else "queued", "Hello from the bench",
                1, 1, i % per_campaign + 1, "GB", f"SM{i:032x}" if sent else None, 1 if sent else 0, now, now,
                now if sent else None,
            )

    conn.executemany(
        "INSERT INTO transmissions (id, campaign_id, e164, state, message, units, cost, row_number, country, "
        "provider_id, debited, created_at, updated_at, sent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows(),
    )
    conn.executemany(
        "INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id) "
        "VALUES ('debit', 'sms', 1, ?, ?, ?, ?, ?)",
        ((str(today), now, i // LOT_SIZE + 1, i // per_campaign + 1, i + 1) for i in range(debits)),
    )
    for lot in range(LOTS):
        used = min(LOT_SIZE, max(0, debits - lot * LOT_SIZE))
        conn.execute("UPDATE credit_lots SET remaining = ? WHERE id = ?", (LOT_SIZE - used, lot + 1))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()


def _env(home: Path) -> dict:
    """The probe's environment: bytecode caching on, as in any installed bulksend (pip compiles on install)."""
    env = dict(os.environ, BULKSEND_HOME=str(home))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_balance(home: Path, runs: int) -> list[float]:
    env = _env(home)
    command = [sys.executable, "-m", "bulksend", "balance", "--json"]
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def time_debits(path: Path, count: int, batch: int = 50) -> tuple[float, float]:
    """(debits per second counting only the outcome transactions, counting claims too)."""
    with SqliteLedger.open(path) as ledger:
        ledger.topup("sms", max(count, 1000))
        campaign = ledger.open_campaign(f"bench-debits-{time.time_ns()}", "sms", "outbox", "bench")
        ledger.add_transmissions(
            campaign.id, (NewTransmission(f"+4478{i:08d}", "Hello", 1, 1, i + 1) for i in range(count))
        )
        ledger.hold(campaign.id, "sms", count)
        outcomes = 0.0
        start = time.perf_counter()
        done = 0
        while done < count:
            rows = ledger.claim(campaign.id, batch)
            assert rows, "nothing to claim"
            t0 = time.perf_counter()
            with ledger.transaction():
                for row in rows:
                    ledger.mark_sent(row.id, f"SM{row.id}")
            outcomes += time.perf_counter() - t0
            done += len(rows)
        total = time.perf_counter() - start
        assert ledger.counts(campaign.id) == {"sent": count}
        assert ledger.audit().consistent
    return count / outcomes, count / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--debits", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="build the ledger in this home and keep it")
    args = parser.parse_args()

    home = args.keep or Path(tempfile.mkdtemp(prefix="bulksend-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    path = home / "ledger.db"
    if path.exists():
        print(f"using the existing ledger {path}")
    else:
        start = time.perf_counter()
        build(path)
        print(
            f"built {TRANSMISSIONS:,} transmissions and {MOVEMENTS:,} movements in "
            f"{time.perf_counter() - start:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
    try:
        env = _env(home)
        version = time_balance_cmd([sys.executable, "-m", "bulksend", "--version"], env, args.runs)
        floor_script = home / "typer_floor.py"
        floor_script.write_text(TYPER_FLOOR)
        floor = time_balance_cmd([sys.executable, str(floor_script), "balance", "--json"], env, args.runs)
        times = time_balance(home, args.runs)
        print(
            f"balance --json: median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {len(times)} processes "
            f"(bulksend --version: median {statistics.median(version) * 1000:.0f} ms; an empty Typer app with "
            f"one Path option: median {statistics.median(floor) * 1000:.0f} ms)"
        )
        per_tx, overall = time_debits(path, args.debits)
        print(
            f"debits: {per_tx:,.0f}/s in outcome transactions of 50 (debit + move to sent); "
            f"{overall:,.0f}/s counting the claim transactions too ({args.debits:,} debits)"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)


# The framework's own floor: typer 0.29 coerces every non-boolean parameter through pydantic.
TYPER_FLOOR = """
from pathlib import Path
from typing import Annotated
import typer
app = typer.Typer()
@app.callback()
def root(home: Annotated[Path | None, typer.Option("--home", envvar="BULKSEND_HOME", file_okay=False)] = None):
    pass
@app.command()
def balance(json_output: Annotated[bool, typer.Option("--json")] = False):
    print("{}")
app()
"""


def time_balance_cmd(command: list[str], env: dict, runs: int) -> list[float]:
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)  # write the bytecode caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
