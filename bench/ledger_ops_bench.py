"""Ledger operations per second on each backend: a SQLite file and a PostgreSQL schema, back to back.

    BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/ledger_ops_bench.py [--messages 2000] [--batch 16] [--writers 2]

On a fresh ledger of each backend, through ``bulksend.ledger.Ledger`` (the rules the commands use):

- ``topup``: one top-up per transaction;
- ``hold + release``: a hold of 1 credit and its release, each its own transaction (counted as 2 operations);
- ``claim + debit``: what a sender's main thread does per message: claim ``--batch`` due rows (committed),
  then one transaction that records them sent and debits them (``mark_sent_many``, as the engine commits a
  batch); then the same with a ``mark_sent`` per row (how the engine committed before);
- ``refund``: one refund per transaction;
- ``balance``: one balance read;
- ``claim + debit, N writers``: ``--writers`` processes doing ``claim + debit`` on one campaign at once, each
  with its own connection (SQLite: its own handle on the file). Every debit locks the channel's credit pool
  row (PostgreSQL) or the whole file (SQLite) until its transaction commits: this is the ledger's share of
  what many senders can do together.

Each line gives operations per second; ``claim + debit`` lines give messages per second.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulksend.ledger import Ledger, NewTransmission, open_url  # noqa: E402
from fleet_bench import schema_url  # noqa: E402


def opened(url: str) -> Ledger:
    ledger = open_url(url)
    assert ledger is not None
    return ledger


def campaign_with_rows(ledger: Ledger, rows: int, start: int = 0) -> int:
    campaign = ledger.open_campaign(f"bench-{secrets.token_hex(4)}", "sms", "outbox", "bench")
    ledger.add_transmissions(
        campaign.id, (NewTransmission(f"+4478{start + i:08d}", "Hello", 1, 1, i + 1) for i in range(rows))
    )
    ledger.hold(campaign.id, "sms", rows)
    return campaign.id


def per_second(count: int, work) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def drain(ledger: Ledger, campaign_id: int, batch: int, sender: str, *, one_by_one: bool = False) -> int:
    """Claim and debit until nothing is left to claim, as the engine commits a batch (``mark_sent_many``), or
    with ``one_by_one`` a ``mark_sent`` per row in the batch's transaction; the messages this ledger debited."""
    done = 0
    while True:
        rows = ledger.claim(campaign_id, batch, sender=sender)
        if not rows:
            return done
        with ledger.transaction():
            if one_by_one:
                for row in rows:
                    ledger.mark_sent(row.id, f"SM{row.id}")
            else:
                ledger.mark_sent_many([(row.id, f"SM{row.id}", None) for row in rows])
        done += len(rows)


def _writer(url: str, campaign_id: int, batch: int, n: int, one_by_one: bool, ready, go, out) -> None:
    ledger = opened(url)
    ready.put(n)
    go.wait()
    out.put(drain(ledger, campaign_id, batch, f"bench:{n}:{os.getpid()}:x", one_by_one=one_by_one))
    ledger.close()


def measure(url: str, messages: int, batch: int, writers: int) -> dict[str, float]:
    ledger = opened(url)
    results: dict[str, float] = {}
    n = max(200, messages // 10)

    def topups() -> None:
        for i in range(n):
            ledger.topup("sms", 1000, ref=f"bench-{i}")

    results["topup"] = per_second(n, topups)

    campaign_id = ledger.open_campaign("bench-holds", "sms", "outbox", "bench").id

    def holds() -> None:
        for _ in range(n):
            ledger.hold(campaign_id, "sms", 1)
            ledger.release(campaign_id)

    results["hold + release"] = per_second(2 * n, holds)

    campaign_id = campaign_with_rows(ledger, messages)
    results[f"claim + debit (batches of {batch})"] = per_second(
        messages, lambda: drain(ledger, campaign_id, batch, "bench:0:0:x")
    )
    campaign_id = campaign_with_rows(ledger, messages, start=2 * messages)
    results["  the same, a mark_sent per row"] = per_second(
        messages, lambda: drain(ledger, campaign_id, batch, "bench:0:0:x", one_by_one=True)
    )

    sent = [row.id for row in ledger.transmissions(campaign_id)][:n]

    def refunds() -> None:
        for row_id in sent:
            ledger.refund(row_id)

    results["refund"] = per_second(len(sent), refunds)
    results["balance"] = per_second(n, lambda: [ledger.balance("sms") for _ in range(n)])

    for one_by_one in (False, True):
        campaign_id = campaign_with_rows(ledger, messages, start=(3 + one_by_one) * messages)
        context = multiprocessing.get_context("spawn")
        ready, out, go = context.Queue(), context.Queue(), context.Event()
        procs = [context.Process(target=_writer, args=(url, campaign_id, batch, i, one_by_one, ready, go, out))
                 for i in range(writers)]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get()
        start = time.perf_counter()
        go.set()
        done = sum(out.get() for _ in procs)
        elapsed = time.perf_counter() - start
        for proc in procs:
            proc.join()
        assert done == messages, done
        name = f"  the same, {writers} writers, a mark_sent per row" if one_by_one else (
            f"claim + debit, {writers} writers at once")
        results[name] = messages / elapsed
    assert ledger.audit().consistent
    ledger.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16, help="rows per claim and per commit (the engine: 4 per worker)")
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a file
    base = os.environ.get("BULKSEND_BENCH_POSTGRES") or os.environ.get("BULKSEND_TEST_POSTGRES")
    if not base:
        sys.exit("set BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test")
    import psycopg

    print(f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}, {os.cpu_count()} CPUs")
    table: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        table["sqlite"] = measure(f"sqlite:///{tmp}/ledger.db", args.messages, args.batch, args.writers)
    schema = f"bulksend_bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        table["postgresql"] = measure(schema_url(base, schema), args.messages, args.batch, args.writers)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"{'operation':44} {'sqlite':>10} {'postgresql':>11}   (per second)")
    for name in table["sqlite"]:
        print(f"{name:44} {table['sqlite'][name]:10,.0f} {table['postgresql'][name]:11,.0f}")
    print(f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
