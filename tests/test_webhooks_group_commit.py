"""Receipts are committed in groups: requests that arrive while a commit is under way wait for the next one,
which takes them all in one transaction; none is lost."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bulksend.config import Config
from bulksend.inbound import ReceiptWriter
from bulksend.ledger_guard import open_for_write
from webhook_helpers import PUBLIC, ledger_backend_fixture, receiver, sent_rows, urls  # noqa: F401 - the ledger_backend fixture


def test_many_requests_share_one_commit_and_are_answered_after_it(ledger_backend, cli, home, monkeypatch):
    (home / "config.toml").write_text(f'[webhooks]\npublic_url = "{PUBLIC}"\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    url = urls(cli)["outbox"]["url"]
    batches: list[int] = []
    real_commit = ReceiptWriter._commit

    def slow_first_commit(self, batch):
        if not batches:
            time.sleep(0.5)  # the others arrive meanwhile and queue up for the next commit
        real_commit(self, batch)
        batches.append(len(batch))

    monkeypatch.setattr(ReceiptWriter, "_commit", slow_first_commit)
    n = 40
    with receiver(home) as running:
        # receipts for rows the ledger does not know (yet): each is kept, one row per receipt
        receipt = lambda i: {"reference": str(10_000 + i), "id": f"outbox-{10_000 + i}", "status": "delivered"}  # noqa: E731
        first = threading.Thread(target=lambda: running.post(url, json=receipt(0)))
        first.start()
        time.sleep(0.1)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: running.post(url, json=receipt(i)), range(1, n)))
        first.join(30)
    assert [a.status_code for a in answers] == [200] * (n - 1)
    assert sum(batches) == n and max(batches) > 1 and len(batches) < n  # grouped, nothing lost
    with open_for_write(Config.load(home)) as ledger:
        assert ledger.pending_receipt_count() == n


def test_a_group_as_large_as_the_last_one_commits_without_waiting_out_the_gather(tmp_path):
    """The requests one commit answered come back together: once the next group has as many, the writer commits
    at once instead of waiting out the rest of its gather (here an hour: the old writer would wait it out)."""
    from bulksend.ledger import SqliteLedger
    from bulksend.receipts import Receipt, ReceiptState

    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        ids = sent_rows(ledger, 8, "gather")
        writer = ReceiptWriter(ledger, gather=0.05)

        def one(tid):
            return writer.submit([Receipt("outbox", ReceiptState.DELIVERED, transmission_id=tid)], [])

        first = [one(tid) for tid in ids[:4]]  # queued before the writer starts: one group of 4
        writer.start()
        assert [f.result(timeout=30) for f in first] == [(["applied"], [])] * 4
        assert writer.commits == 1
        writer.gather = 3600.0
        second = []
        for tid in ids[4:]:
            second.append(one(tid))
            time.sleep(0.01)  # one by one, as answered requests come back
        assert [f.result(timeout=30) for f in second] == [(["applied"], [])] * 4
        assert writer.commits == 2, "the four came back as one group"
        writer.close()
        assert [ledger.transmission(t).state for t in ids] == ["delivered"] * 8
