"""``campaigns refresh``: polling delivery receipts from providers that can look a message up (Twilio).

Every ``sent`` row (accepted, no final status yet) is asked about by its provider id, at the profile's
rate, a page of rows at a time. A final answer is committed at once, row by row, as a receipt
(``Provider.status_receipt``, classified as the adapter classifies its webhooks, then the ledger's
``record_receipt``: a provider's fault is refunded once, as for a webhook receipt): a stopped refresh (Ctrl-C, SIGTERM, a lost connection) keeps what it learned, and the
next one asks only about the rows still ``sent``. An answer that is not final yet (queued, sent to the
carrier…) changes nothing. Providers that cannot be asked report their receipts by webhook instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bulksend.config import Config
from bulksend.engine import TokenBucket
from bulksend.ledger import SqliteLedger, Transmission
from bulksend.safetext import printable

PAGE = 200  # rows read per query: a refresh of any size holds one page
MAX_CODE = 100
THROTTLE_RETRIES = 3  # a 429 is waited out and the same row asked again, this many times


@dataclass
class RefreshReport:
    """What one refresh asked and learned."""

    campaign: str
    campaign_id: int
    provider: str
    provider_type: str
    can_fetch_status: bool
    asked: int = 0
    delivered: int = 0
    undelivered: int = 0
    refunded: int = 0  # undelivered through the provider's or the network's fault: credits given back
    pending: int = 0
    cannot_tell: int = 0
    interrupted: bool = False
    awaiting: int = 0  # rows still ``sent`` after this refresh
    counts: dict[str, int] = field(default_factory=dict)
    pending_statuses: dict[str, int] = field(default_factory=dict)  # the provider's word for what is not final

    def as_json(self) -> dict[str, Any]:
        from bulksend.campaign_status import every_state

        return {
            "campaign": self.campaign,
            "id": self.campaign_id,
            "provider": self.provider,
            "provider_type": self.provider_type,
            "can_fetch_status": self.can_fetch_status,
            "asked": self.asked,
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "refunded": self.refunded,
            "pending": self.pending,
            "cannot_tell": self.cannot_tell,
            "awaiting": self.awaiting,
            "interrupted": self.interrupted,
            "counts": every_state(self.counts),
        }


Progress = Callable[[RefreshReport], None]


def provider_type_of(config: Config, profile_name: str) -> str | None:
    """The type of the profile a campaign was sent with; None when the profile is gone from config.toml."""
    from bulksend.errors import ConfigError
    from bulksend.profiles import load_profile

    try:
        return load_profile(config, profile_name).type
    except ConfigError:
        return None


def refresh(
    config: Config,
    key: str,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> RefreshReport:
    """Ask the provider about every ``sent`` row of campaign ``key`` and record the final answers."""
    from bulksend.campaign_status import find_campaign
    from bulksend.profiles import load_profile, open_provider
    from bulksend.providers.base import provider_class

    stop = stop or threading.Event()
    ledger, campaign = find_campaign(config, key)
    with ledger:
        profile = load_profile(config, campaign.provider)
        report = RefreshReport(
            campaign.name, campaign.id, campaign.provider, profile.type,
            provider_class(profile.type).can_fetch_status,
        )
        if report.can_fetch_status:  # credentials are resolved only for a provider we will ask
            provider = open_provider(config, campaign.provider)
            try:
                _poll(ledger, provider, campaign.id, report, stop, progress)
            finally:
                provider.close()
        report.counts = ledger.counts(campaign.id)
        report.awaiting = report.counts.get("sent", 0)
        return report


def _poll(ledger: SqliteLedger, provider, campaign_id: int, report: RefreshReport, stop: threading.Event,
          progress: Progress | None) -> None:
    from bulksend.providers.base import StatusKind

    bucket = TokenBucket(provider.rate)
    after = 0
    while not stop.is_set():
        page = ledger.transmission_page(campaign_id, after, PAGE, states=("sent",))
        if not page:
            return
        for row in page:
            if stop.is_set() or not bucket.acquire(stop):
                report.interrupted = True
                return
            after = row.id
            if not row.provider_id:  # accepted without an id (a provider that gives none): nothing to ask
                report.cannot_tell += 1
                continue
            status = _ask(provider, row, stop)
            report.asked += 1
            if status is None:  # stopped while waiting out a 429
                report.interrupted = True
                return
            if status.kind in (StatusKind.DELIVERED, StatusKind.UNDELIVERED):
                fate = _record(ledger, provider, row, status)
                if fate is not None:
                    if status.kind is StatusKind.DELIVERED:
                        report.delivered += 1
                    else:
                        report.undelivered += 1
                    if fate == "refunded":
                        report.refunded += 1
            elif status.kind is StatusKind.PENDING:
                report.pending += 1
                word = status.status or "pending"
                report.pending_statuses[word] = report.pending_statuses.get(word, 0) + 1
            else:
                report.cannot_tell += 1
            if progress is not None:
                progress(report)
    report.interrupted = True


def _ask(provider, row: Transmission, stop: threading.Event):
    from bulksend.providers.base import StatusKind

    for _ in range(THROTTLE_RETRIES):
        status = provider.fetch_status(row.provider_id)
        if status.kind is not StatusKind.CANNOT or not status.retry_after:
            return status
        if stop.wait(min(status.retry_after, 60.0)):
            return None
    return status


def _record(ledger: SqliteLedger, provider, row: Transmission, status) -> str | None:
    """Commit one final answer as a receipt, unless the row moved meanwhile (a webhook receipt, a concurrent
    refresh); returns the receipt's fate (``applied``, ``refunded``), None when nothing changed."""
    from bulksend.providers.base import StatusKind
    from bulksend.receipts import ReceiptFate

    if status.kind is not StatusKind.DELIVERED:
        status = replace(status, code=printable(status.code, MAX_CODE) or None, text=printable(status.text) or None)
    receipt = provider.status_receipt(provider.profile, row.id, row.provider_id, status)
    with ledger.transaction():
        now = ledger.transmission(row.id)
        if now is None or now.state != "sent":
            return None
        fate = ledger.record_receipt(receipt)
    return str(fate) if fate in (ReceiptFate.APPLIED, ReceiptFate.REFUNDED) else None
