"""The webhook receiver under its real server (uvicorn on port 0, in a thread), and the providers' signatures
computed as their docs say (independently of bulksend's own code), for the webhook tests and the bench."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from bulksend.config import LEDGER_URL_ENV, Config
from bulksend.inbound import Receiver, ReceiptWriter, ReceiverServer
from bulksend.ledger_guard import open_for_write
from ledger_backends import BACKENDS, Backend

PUBLIC = "https://hooks.example.test/bulk"  # behind a reverse proxy that keeps the /bulk prefix


@dataclass
class Running:
    local: str  # http://127.0.0.1:PORT
    app: Receiver
    writer: ReceiptWriter
    server: ReceiverServer

    def url(self, public_url: str) -> str:
        """Where a request the provider sends to ``public_url`` arrives (the proxy forwards path and query)."""
        parts = urlsplit(public_url)
        return self.local + parts.path + (f"?{parts.query}" if parts.query else "")

    def post(self, public_url: str, **kwargs) -> requests.Response:
        return requests.post(self.url(public_url), timeout=30, **kwargs)

    def get(self, public_url: str, **kwargs) -> requests.Response:
        return requests.get(self.url(public_url), timeout=30, **kwargs)


@contextmanager
def receiver(home: Path, *, retry_every: float = 0.2, app_factory=None):
    """``webhooks serve``'s app under uvicorn on a free port; stopped (cleanly) on exit."""
    config = Config.load(home)
    ledger = open_for_write(config)
    writer = ReceiptWriter(ledger, retry_every=retry_every).start()
    app = Receiver(config, writer, None) if app_factory is None else app_factory(config, writer)
    server = ReceiverServer(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{server.port}", app, writer, server)
    finally:
        server.stop()
        thread.join(60)
        writer.close()
        ledger.close()


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """https://www.twilio.com/docs/usage/webhooks/webhooks-security: base64(HMAC-SHA1(token, url + sorted k+v))."""
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def vonage_sig(secret: str, fields: dict[str, str]) -> str:
    """Vonage's "MD5 hash" signature: md5 of the sorted &k=v pairs ('&' and '=' in values as '_') + secret."""
    text = "".join(f"&{k}={str(fields[k]).replace('&', '_').replace('=', '_')}" for k in sorted(fields) if k != "sig")
    return hashlib.md5((text + secret).encode()).hexdigest()


def rows(home: Path, campaign: str) -> dict[str, dict]:
    """number → the campaign's transmission as a dict, read through the ledger (SQLite or PostgreSQL, as the
    home's config and BULKSEND_LEDGER_URL say)."""
    from dataclasses import asdict

    from bulksend.ledger import open_existing

    with open_existing(Config.load(home)) as ledger:
        found = ledger.get_campaign(campaign)
        return {t.e164: asdict(t) for t in ledger.transmissions(found.id)}


@pytest.fixture(name="ledger_backend", params=BACKENDS)
def ledger_backend_fixture(request, home, monkeypatch):
    """The ledger the commands and ``webhooks serve`` share: the home's SQLite file, or a fresh PostgreSQL schema
    (BULKSEND_LEDGER_URL; skipped without BULKSEND_TEST_POSTGRES)."""
    if request.param == "sqlite":
        yield None
        return
    backend = Backend("postgresql")
    monkeypatch.setenv(LEDGER_URL_ENV, backend.url)
    try:
        yield backend
        assert not (home / "ledger.db").exists(), "a PostgreSQL test wrote to the home's SQLite file"
    finally:
        backend.drop()


def snapshot(home: Path) -> dict[str, list[tuple]]:
    """Every row of every table but ``meta`` (the ledger's identity), read through the store as ``ledger copy``
    reads it: on SQLite or PostgreSQL, as the home's config and BULKSEND_LEDGER_URL say."""
    from bulksend.ledger import TABLES, open_existing

    with open_existing(Config.load(home)) as ledger:
        return {table: list(ledger.store.export_rows(table)) for table in TABLES if table != "meta"}


def urls(cli) -> dict:
    result = cli("webhooks", "urls", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def sent_rows(ledger, count: int, name: str = "bulk") -> list[int]:
    """A campaign of ``count`` transmissions through the outbox profile, all ``sent`` (each with a provider id):
    the ids, in order, of rows a receipt can be about."""
    from bulksend.ledger import NewTransmission

    ledger.topup("sms", max(10, count))
    campaign = ledger.open_campaign(name, "sms", "outbox", f"fp-{name}")
    ledger.add_transmissions(campaign.id, [NewTransmission(f"+4479111{i:05d}", "hi", 1, 1) for i in range(count)])
    ledger.hold(campaign.id, "sms", count)
    with ledger.transaction():
        ids = [r.id for r in ledger.claim(campaign.id, count)]
        for tid in ids:
            ledger.mark_sent(tid, f"SM{tid}")
    return ids
