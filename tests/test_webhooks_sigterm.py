"""`webhooks serve` stopped by SIGTERM while receipts keep coming, on each ledger backend and with `--workers 2`
on PostgreSQL: it exits 0 and every receipt it answered 200 is in the ledger (a receipt it did not answer, the
provider sends again). `--workers` above 1 is refused on SQLite."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from bulksend.ledger import NewTransmission
from ledger_backends import Backend

pytestmark = pytest.mark.slow

SERVE = [sys.executable, "-m", "bulksend", "webhooks"]


@pytest.fixture(params=[("sqlite", 1), ("postgresql", 1), ("postgresql", 2)], ids=lambda p: f"{p[0]}-workers{p[1]}")
def served(request):
    """(a fresh ledger backend, the --workers to serve it with)."""
    name, workers = request.param
    found = Backend(name)
    yield found, workers
    found.drop()


@pytest.fixture
def postgres():
    found = Backend("postgresql")
    yield found
    found.drop()


def sent_rows(ledger, n: int, queued: int = 0) -> tuple[list[int], list[int]]:
    """``n`` rows of one campaign made `sent`, and ``queued`` more left queued (not known as sent yet)."""
    ledger.topup("sms", n + queued)
    campaign = ledger.open_campaign("lanes", "sms", "outbox", "fp-lanes")
    ledger.add_transmissions(
        campaign.id, [NewTransmission(f"+4479112{i:05d}", "hi", 1, 1) for i in range(n + queued)]
    )
    ledger.hold(campaign.id, "sms", n + queued)
    with ledger.transaction():
        rows = ledger.claim(campaign.id, n + queued)
        ids = [row.id for row in rows[:n]]
        for tid in ids:
            ledger.mark_sent(tid, f"SM{tid}")
    return ids, [row.id for row in rows[n:]]


def configure(home, monkeypatch, backend: Backend) -> dict:
    (home / "config.toml").write_text('[webhooks]\npublic_url = "https://hooks.example.test"\n')
    if backend.name == "postgresql":
        monkeypatch.setenv("BULKSEND_LEDGER_URL", backend.url)
    else:
        monkeypatch.delenv("BULKSEND_LEDGER_URL", raising=False)
    return {**os.environ, "NO_COLOR": "1"}


def start(env: dict, workers: int) -> tuple[subprocess.Popen, str]:
    """The real server on a free port; (its process, the outbox endpoint's local URL) once every worker serves."""
    url = json.loads(subprocess.run([*SERVE, "urls", "--json"], env=env, capture_output=True, text=True,
                                    check=True).stdout)["outbox"]["url"]
    proc = subprocess.Popen([*SERVE, "serve", "--port", "0", "--workers", str(workers)], env=env,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if found is None:
        proc.kill()
        pytest.fail(f"the server did not start: {line}{proc.communicate(timeout=60)[1]}")
    return proc, url.replace("https://hooks.example.test", f"http://127.0.0.1:{found.group(1)}")


def receipt(tid: int) -> dict:
    return {"reference": str(tid), "id": f"SM{tid}", "status": "delivered"}


def test_sigterm_under_load_every_answered_receipt_is_recorded_and_the_server_exits_0(served, home, monkeypatch):
    """The real `webhooks serve` stopped while receipts keep coming: it exits 0, and
    every receipt answered 200 is in the ledger (those not answered the provider would send again)."""
    import requests

    from bulksend.config import Config
    from bulksend.ledger_guard import open_for_read, open_for_write

    backend, workers = served
    env = configure(home, monkeypatch, backend)
    with open_for_write(Config.load(home)) as ledger:
        ids, _ = sent_rows(ledger, 300)
    proc, local = start(env, workers)
    answered: dict[int, int] = {}
    enough = threading.Event()

    def client(mine: list[int]) -> None:
        with requests.Session() as session:
            for tid in mine:
                try:
                    reply = session.post(local, json=receipt(tid), timeout=60)
                except requests.ConnectionError:
                    return  # the server has stopped: the provider would retry the rest
                answered[tid] = reply.status_code
                if len(answered) >= 60:
                    enough.set()

    try:
        threads = [threading.Thread(target=client, args=(ids[i::12],)) for i in range(12)]
        for t in threads:
            t.start()
        assert enough.wait(120)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    for t in threads:
        t.join(120)
    assert proc.returncode == 0, err
    assert "Error" not in err
    ok = {tid for tid, status in answered.items() if status == 200}
    assert len(ok) >= 60 and set(answered.values()) <= {200, 503}
    with open_for_read(Config.load(home)) as ledger:
        delivered = {t for t in ids if ledger.transmission(t).state == "delivered"}
        assert ok <= delivered  # never a 200 for a receipt that was not committed
        assert ledger.audit().consistent


def test_two_workers_record_every_receipt_share_the_port_and_apply_an_early_receipt(postgres, home, monkeypatch):
    """`--workers 2` on PostgreSQL: every receipt is answered 200 and recorded, both workers answered some
    (the per-worker counts of the stop line), and a receipt that came before its row was sent is kept by
    whichever worker took it and applied (by worker 0's retry, at the latest when it stops)."""
    import requests

    from bulksend.config import Config
    from bulksend.ledger_guard import open_for_read, open_for_write

    env = configure(home, monkeypatch, postgres)
    with open_for_write(Config.load(home)) as ledger:
        ids, (early,) = sent_rows(ledger, 200, queued=1)
    proc, local = start(env, 2)
    answered: dict[int, int] = {}
    try:
        kept = requests.post(local, json=receipt(early), timeout=60)
        assert kept.status_code == 200  # committed as kept: the row is still `sending`
        with open_for_write(Config.load(home)) as ledger:
            assert ledger.pending_receipt_count() == 1
            ledger.mark_sent(early, f"SM{early}")

        def client(mine: list[int]) -> None:
            for tid in mine:  # a new connection each time: the kernel hands each to either worker
                answered[tid] = requests.post(local, json=receipt(tid), timeout=60).status_code

        threads = [threading.Thread(target=client, args=(ids[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert answered == dict.fromkeys(ids, 200)
    shares = re.search(r"Stopped\. (\d+) request\(s\) \(per worker: (\d+), (\d+)\)", err)
    assert shares is not None, err
    total, first, second = map(int, shares.groups())
    assert total == first + second == len(ids) + 1 and first > 0 and second > 0
    assert "0 receipt(s) kept for rows not known yet" in err
    with open_for_read(Config.load(home)) as ledger:
        assert {ledger.transmission(t).state for t in [*ids, early]} == {"delivered"}
        assert ledger.pending_receipt_count() == 0
        assert ledger.audit().consistent


def test_workers_are_refused_on_a_sqlite_ledger_before_anything_is_done(cli, home, monkeypatch):
    """On SQLite the workers would all queue for its one writer: exit 2, said plainly, nothing created."""
    from bulksend.config import Config

    monkeypatch.delenv("BULKSEND_LEDGER_URL", raising=False)
    (home / "config.toml").write_text('[webhooks]\npublic_url = "https://hooks.example.test"\n')
    refused = cli("webhooks", "serve", "--port", "0", "--workers", "2")
    assert refused.exit_code == 2, refused.stderr
    assert "--workers 2 needs a PostgreSQL ledger" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not Config.load(home).ledger_path.exists()
    assert not (home / "webhooks").exists()
