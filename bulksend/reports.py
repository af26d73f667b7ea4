"""Reading a campaign back: the per-recipient export, delivery counts with what each failure code means,
and the figures behind the HTML report (``report_html.py`` draws them).

Every reader goes through the ledger a page at a time (``Ledger.transmission_page``, keyset by id): a
campaign of a million rows never needs a million rows in memory, and a row that changes state while
it is read (a receipt, a run) is neither skipped nor read twice.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timezone
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bulksend import codes
from bulksend.config import Config
from bulksend.ledger import Campaign, Ledger, Transmission

PAGE_SIZE = 1000

#: The export's columns, in order. Scripts depend on these names: add at the end, never rename.
EXPORT_COLUMNS = (
    "row",  # the recipient's 1-based data row in the CSV the campaign was started from
    "e164",
    "state",
    "provider",  # the provider profile the campaign was sent with
    "provider_id",
    "error_code",
    "error_text",
    "segments",  # SMS segments (WhatsApp: 1 per message)
    "credits_debited",
    "credits_refunded",
    "queued_at",
    "sent_at",
    "delivered_at",
    "error_meaning",  # what error_code means for this provider (bulksend/codes.py), empty when unknown
    "country",
    "attempts",
)
ACCEPTED = ("sent", "delivered", "undelivered")


def pages(ledger: Ledger, campaign_id: int, states: Sequence[str] | None = None,
          size: int = PAGE_SIZE) -> Iterator[Transmission]:
    """Every transmission of the campaign (in ``states``), in id order, read ``size`` rows at a time."""
    after = 0
    while True:
        page = ledger.transmission_page(campaign_id, after, size, states=states)
        yield from page
        if len(page) < size:
            return
        after = page[-1].id


def delivered_at(row: Transmission) -> str | None:
    """When the message was delivered: the receipt's ``reported_at`` (the provider's own time when it gives
    one, else when the receipt was recorded); for a row reported before the ledger kept it, ``updated_at``
    (``mark_report`` stamps it, and nothing changes a delivered row afterwards)."""
    if row.state != "delivered":
        return None
    return row.reported_at or row.updated_at


def export_record(row: Transmission, campaign: Campaign, provider_type: str | None) -> dict[str, Any]:
    """One recipient as the export gives it (typed: numbers stay numbers in JSON)."""
    return {
        "row": row.row_number,
        "e164": row.e164,
        "state": row.state,
        "provider": campaign.provider,
        "provider_id": row.provider_id,
        "error_code": row.error_code,
        "error_text": row.error_text,
        "segments": row.units,
        "credits_debited": row.debited,
        "credits_refunded": row.refunded,
        "queued_at": row.created_at,
        "sent_at": row.sent_at,
        "delivered_at": delivered_at(row),
        "error_meaning": codes.meaning(provider_type, row.error_code, row.state),
        "country": row.country,
        "attempts": row.attempts,
    }


@dataclass(frozen=True)
class ExportResult:
    campaign: str
    rows: int
    output: Path | None  # None: written to stdout
    format: str  # "csv" or "json"


def export_campaign(config: Config, key: str, *, output: Path | None, as_json: bool, stdout: IO[str]) -> ExportResult:
    """Write one row per recipient as spreadsheet-safe CSV (or a JSON document) to ``output`` or ``stdout``.

    A file appears only once complete (written aside, then renamed); the ledger is never overwritten.
    """
    from bulksend.campaign_status import find_campaign
    from bulksend.files import refuse_overwrite
    from bulksend.refresh import provider_type_of
    from bulksend.spreadsheet import atomic_text

    ledger, campaign = find_campaign(config, key, write=False)
    with ledger:
        if output is not None:
            refuse_overwrite({"--output": output}, [Path(ledger.location)])
        provider_type = provider_type_of(config, campaign.provider)
        records = (export_record(row, campaign, provider_type) for row in pages(ledger, campaign.id))
        write = _write_json if as_json else _write_csv
        if output is None:
            count = write(stdout, campaign, records)
            stdout.flush()
        else:
            with atomic_text(output) as handle:
                count = write(handle, campaign, records)
    return ExportResult(campaign.name, count, output, "json" if as_json else "csv")


def _write_csv(handle: IO[str], campaign: Campaign, records: Iterator[dict[str, Any]]) -> int:
    from bulksend.spreadsheet import LINE_END, safe_cell

    writer = csv.writer(handle, lineterminator=LINE_END)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for record in records:
        writer.writerow([safe_cell(record[c]) for c in EXPORT_COLUMNS])
        count += 1
    return count


def _write_json(handle: IO[str], campaign: Campaign, records: Iterator[dict[str, Any]]) -> int:
    """One JSON document, ``{"campaign", "columns", "rows": [...]}``, written row by row as it is read."""
    head = {"campaign": campaign.name, "id": campaign.id, "columns": list(EXPORT_COLUMNS)}
    handle.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": [')
    count = 0
    for record in records:
        handle.write(("\n  " if not count else ",\n  ") + json.dumps(record, ensure_ascii=False))
        count += 1
    handle.write("\n]}\n" if count else "]}\n")
    return count


# ------------------------------------------------------------------ delivery counts and what codes mean

@dataclass(frozen=True)
class FailureGroup:
    """Rows that failed (at send time) or were undelivered (by receipt) with one code."""

    state: str  # "failed" or "undelivered"
    code: str | None
    count: int
    meaning: str | None
    example: str | None = None  # one provider text seen with it

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "code": self.code, "count": self.count, "meaning": self.meaning}


@dataclass(frozen=True)
class Delivery:
    """What became of the accepted messages."""

    accepted: int
    delivered: int
    undelivered: int
    awaiting: int  # accepted, no receipt yet

    @classmethod
    def of(cls, counts: dict[str, int]) -> "Delivery":
        delivered, undelivered, sent = (counts.get(s, 0) for s in ("delivered", "undelivered", "sent"))
        return cls(delivered + undelivered + sent, delivered, undelivered, sent)

    def as_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "delivered": self.delivered, "undelivered": self.undelivered,
                "awaiting": self.awaiting}


def _ordered(groups: Counter, examples: dict, provider_type: str | None) -> list[FailureGroup]:
    ordered = sorted(groups.items(), key=lambda item: (-item[1], item[0][0], item[0][1] or ""))
    return [
        FailureGroup(state, code, n, codes.meaning(provider_type, code, state), examples.get((state, code)))
        for (state, code), n in ordered
    ]


@dataclass
class Breakdown:
    """``campaigns show``: the campaign's status, its delivery counts and every failure code explained."""

    status: Any  # campaign.CampaignStatus
    provider_type: str | None
    delivery: Delivery
    failures: list[FailureGroup]
    next_due: datetime | None = None  # when the earliest queued row may be sent, if later than now


def breakdown(config: Config, key: str) -> Breakdown:
    from bulksend.campaign_status import find_campaign, status_of
    from bulksend.refresh import provider_type_of

    ledger, campaign = find_campaign(config, key, write=False)
    with ledger:
        status = status_of(ledger, campaign, config.invocation)
        provider_type = provider_type_of(config, campaign.provider)
        groups: Counter = Counter({("failed", code): n for code, n in status.failures.items()})
        examples: dict = {}
        if status.counts.get("undelivered"):
            for row in pages(ledger, campaign.id, ("undelivered",)):
                groups["undelivered", row.error_code] += 1
                examples.setdefault(("undelivered", row.error_code), row.error_text)
        next_due = ledger.next_due(campaign.id) if campaign.state == "open" else None
        if next_due is not None and next_due <= datetime.now(timezone.utc):
            next_due = None  # a queued row is due now: nothing waits
    return Breakdown(status, provider_type, Delivery.of(status.counts), _ordered(groups, examples, provider_type),
                     next_due)


# ------------------------------------------------------------------------- the HTML report's figures

@dataclass
class ReportData:
    """Everything the HTML report shows, gathered in one pass over the campaign's rows."""

    campaign: Campaign
    provider_type: str | None
    counts: dict[str, int]
    credits_debited: int
    credits_refunded: int
    held: int
    failures: list[FailureGroup]
    countries: dict[str, Counter] = field(default_factory=dict)  # ISO (or "unknown") → rows by state
    sent_by_minute: Counter = field(default_factory=Counter)  # "YYYY-MM-DDTHH:MM" → messages accepted
    delivered_by_minute: Counter = field(default_factory=Counter)  # → delivery receipts recorded

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def delivery(self) -> Delivery:
        return Delivery.of(self.counts)


def gather(ledger: Ledger, campaign: Campaign, provider_type: str | None) -> ReportData:
    debited, refunded = ledger.campaign_credits(campaign.id)
    groups: Counter = Counter()
    examples: dict = {}
    countries: dict[str, Counter] = {}
    sent: Counter = Counter()
    delivered: Counter = Counter()
    counts: Counter = Counter()
    for row in pages(ledger, campaign.id):
        counts[row.state] += 1
        countries.setdefault(row.country or "unknown", Counter())[row.state] += 1
        if row.state in ("failed", "undelivered"):
            groups[row.state, row.error_code] += 1
            examples.setdefault((row.state, row.error_code), row.error_text)
        if row.sent_at and row.state in ACCEPTED:
            sent[row.sent_at[:16]] += 1
        when = delivered_at(row)
        if when:
            delivered[when[:16]] += 1
    return ReportData(
        campaign, provider_type, dict(counts), debited, refunded, ledger.held(campaign.id),
        _ordered(groups, examples, provider_type), countries, sent, delivered,
    )


@dataclass(frozen=True)
class ReportResult:
    campaign: str
    html: Path
    bytes: int
    charts: int


def report_campaign(config: Config, key: str, *, html: Path) -> ReportResult:
    """Write the campaign's self-contained HTML report to ``html`` (atomically)."""
    from bulksend import report_html
    from bulksend.campaign_status import find_campaign
    from bulksend.files import refuse_overwrite
    from bulksend.refresh import provider_type_of
    from bulksend.spreadsheet import atomic_text

    ledger, campaign = find_campaign(config, key, write=False)
    with ledger:
        refuse_overwrite({"--html": html}, [Path(ledger.location)])
        data = gather(ledger, campaign, provider_type_of(config, campaign.provider))
    page, charts = report_html.render(data)
    with atomic_text(html) as handle:
        handle.write(page)
    return ReportResult(campaign.name, html, len(page.encode("utf-8")), charts)
