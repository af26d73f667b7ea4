"""`webhooks serve` stopped by SIGTERM while receipts keep coming, on each ledger backend: it exits 0 and every
receipt it answered 200 is in the ledger (a receipt it did not answer, the provider sends again)."""

from __future__ import annotations

import threading

import pytest

from bulksend.ledger import NewTransmission
from ledger_backends import BACKENDS, Backend

pytestmark = pytest.mark.slow


@pytest.fixture(params=BACKENDS)
def backend(request):
    found = Backend(request.param)
    yield found
    found.drop()


def sent_rows(ledger, n: int) -> list[int]:
    ledger.topup("sms", n)
    campaign = ledger.open_campaign("lanes", "sms", "outbox", "fp-lanes")
    ledger.add_transmissions(campaign.id, [NewTransmission(f"+4479112{i:05d}", "hi", 1, 1) for i in range(n)])
    ledger.hold(campaign.id, "sms", n)
    with ledger.transaction():
        ids = [row.id for row in ledger.claim(campaign.id, n)]
        for tid in ids:
            ledger.mark_sent(tid, f"SM{tid}")
    return ids


def test_sigterm_under_load_every_answered_receipt_is_recorded_and_the_server_exits_0(backend, home, monkeypatch):
    """The real `webhooks serve` stopped while receipts keep coming: it exits 0, and
    every receipt answered 200 is in the ledger (those not answered the provider would send again)."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys

    import requests

    from bulksend.config import Config
    from bulksend.ledger_guard import open_for_read, open_for_write

    (home / "config.toml").write_text('[webhooks]\npublic_url = "https://hooks.example.test"\n')
    if backend.name == "postgresql":
        monkeypatch.setenv("BULKSEND_LEDGER_URL", backend.url)
    else:
        monkeypatch.delenv("BULKSEND_LEDGER_URL", raising=False)
    with open_for_write(Config.load(home)) as ledger:
        ids = sent_rows(ledger, 300)
    env = {**os.environ, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "bulksend", "webhooks"]
    url = json.loads(subprocess.run([*command, "urls", "--json"], env=env, capture_output=True, text=True,
                                    check=True).stdout)["outbox"]["url"]
    proc = subprocess.Popen([*command, "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True)
    answered: dict[int, int] = {}
    enough = threading.Event()

    def client(mine: list[int]) -> None:
        with requests.Session() as session:
            for tid in mine:
                try:
                    reply = session.post(local, json={"reference": str(tid), "id": f"SM{tid}",
                                                      "status": "delivered"}, timeout=60)
                except requests.ConnectionError:
                    return  # the server has stopped: the provider would retry the rest
                answered[tid] = reply.status_code
                if len(answered) >= 60:
                    enough.set()

    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", proc.stderr.readline()).group(1))
        local = url.replace("https://hooks.example.test", f"http://127.0.0.1:{port}")
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
