"""The cost estimate: totals by channel, encoding and segment count, in credits, from a recipient table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from bulksend.recipients import ENCODINGS, RecipientTable, ValidationReport

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.schedule import Scheduler, SendRules


@dataclass(frozen=True)
class CostlyRow:
    row: int
    e164: str
    segments: int
    credits: int


@dataclass(frozen=True)
class QuietHoursWait:
    """How many accepted rows a send started at ``at`` would hold back for quiet hours, and until when."""

    range: str
    at: datetime
    waiting: int  # due after ``at``: a send queues them not before their due time
    first_due: datetime | None
    last_due: datetime | None
    no_shared_hours: int  # zones with no common allowed hour within the horizon (settled when claimed)

    def as_json(self) -> dict:
        def iso(moment: datetime | None) -> str | None:
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None

        return {"range": self.range, "at": iso(self.at), "waiting_now": self.waiting,
                "first_due": iso(self.first_due), "last_due": iso(self.last_due),
                "no_shared_hours": self.no_shared_hours}


@dataclass
class Estimate:
    """What a campaign would cost, in the brief's terms, plus what the human summary shows."""

    report: ValidationReport
    recipients: int
    messages: int
    segments: int
    credits: int
    channel: str
    encodings: dict[str, int]
    by_segments: dict[int, int]
    most_expensive: list[CostlyRow]
    smart_encoding: bool
    smart_segments_delta: int  # segments saved by smart encoding (or that it would save, when off)
    smart_credits_delta: int
    details_written: int | None = None
    extra: dict = field(default_factory=dict)
    rules: "SendRules | None" = None  # the quiet hours and frequency cap a send would follow
    quiet: QuietHoursWait | None = None  # None: quiet hours off

    @property
    def table(self) -> RecipientTable:
        return self.report.table

    def as_json(self) -> dict:
        table = self.table
        return {
            "file": str(table.csv.path),
            "recipients": self.recipients,
            "messages": self.messages,
            "segments": self.segments,
            "credits": self.credits,
            "channel": self.channel,
            "encodings": self.encodings,
            "rejected": table.rejected,
            "reasons": table.reasons(),
            "rows": table.rows,
            "examples": [p.as_json() for p in self.report.previews],
            "segments_per_message": {str(k): v for k, v in self.by_segments.items()},
            "smart_encoding": {
                "enabled": self.smart_encoding,
                "segments_saved" if self.smart_encoding else "would_save_segments": self.smart_segments_delta,
                "credits_saved" if self.smart_encoding else "would_save_credits": self.smart_credits_delta,
            },
            "content": table.content_report(),
            "compliance": table.plan.compliance.as_json() if table.plan.compliance is not None else None,
            "frequency_cap": self._cap_json(),
            "quiet_hours": self.quiet.as_json() if self.quiet is not None else None,
        }

    def _cap_json(self) -> dict | None:
        cap = self.rules.cap if self.rules is not None else None
        if cap is None:
            return None
        return {"cap": str(cap), "capped": self.table.reasons().get("frequency_capped", 0)}


def quiet_hours_summary(table: RecipientTable, rules: "SendRules", now: datetime) -> QuietHoursWait | None:
    """Which accepted rows a send started at ``now`` would queue for later, as ``send`` queues them.

    The zones of each row (``schedule.zones_many``: ``row_zones`` for a whole column) and its due time
    (``Scheduler.due``, once per distinct zone set) are the ones ``send`` uses when it queues a row.
    """
    if rules.quiet is None and rules.send_at is None:
        return None
    anchor = rules.anchor or now
    ids, dues = due_times(table, rules.scheduler(), anchor)
    per_set = np.bincount(ids, minlength=len(dues)) if ids.size else np.zeros(len(dues), dtype=np.int64)
    later = [(due, int(per_set[i])) for i, due in enumerate(dues) if due is not None and due > anchor and per_set[i]]
    never = sum(int(per_set[i]) for i, due in enumerate(dues) if due is None)
    return QuietHoursWait(
        range=str(rules.quiet) if rules.quiet is not None else "off",
        at=anchor,
        waiting=sum(count for _, count in later),
        first_due=min((due for due, _ in later), default=None),
        last_due=max((due for due, _ in later), default=None),
        no_shared_hours=never,
    )


def due_times(table: RecipientTable, scheduler: "Scheduler", anchor: datetime) -> tuple[np.ndarray, list]:
    """When each accepted row (in file order) may first go: (each row's index into the second, the due time of
    each distinct zone set, None where its zones share no allowed hour). ``estimate`` counts them; ``send``
    queues each row with its own. The zones of every row at once (``schedule.zones_many``: ``row_zones`` for a
    whole column), then ``Scheduler.due`` once per zone set."""
    from bulksend.schedule import zones_many

    rows = np.flatnonzero(table.accepted_mask)
    cells = _column_cells(table, table.columns.timezone, rows) if table.columns.timezone is not None else None
    ids, sets = zones_many(table.e164[rows], table.region[rows], table.regions, cells)
    return ids, [scheduler.due(anchor, zones) for zones in sets]


def _column_cells(table: RecipientTable, column: int, rows: np.ndarray) -> list[str]:
    """The cells of one column for ``rows`` (sorted row indexes), read in one streaming pass."""
    cells: list[str] = []
    for chunk in table.csv.chunks([column]):
        if chunk.empty:
            continue
        start = int(chunk.index[0])
        lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
        if lo < hi:
            cells.extend(chunk[column].to_numpy()[rows[lo:hi] - start].tolist())
    return cells


def summarize(report: ValidationReport, top: int = 5) -> Estimate:
    table = report.table
    assert table.plan is not None and table.units is not None and table.credits is not None
    accepted = table.accepted_mask
    units = table.units[accepted]
    credits = table.credits[accepted]
    channel = table.options.channel
    recipients = int(accepted.sum())
    if channel == "sms":
        enc_counts = np.bincount(table.encoding[accepted].astype(np.int64), minlength=len(ENCODINGS))
        encodings = {name: int(enc_counts[i]) for i, name in enumerate(ENCODINGS)}
        hist = np.bincount(units.astype(np.int64)) if units.size else np.zeros(0, dtype=np.int64)
        by_segments = {int(k): int(v) for k, v in enumerate(hist) if v}
    else:
        encodings = {}
        by_segments = {1: recipients} if recipients else {}
    alt_units = table.alt_units[accepted]
    alt_credits = table.alt_credits[accepted]
    if table.plan.smart_encoding:
        seg_delta = int(alt_units.sum() - units.sum())
        cred_delta = int(alt_credits.sum() - credits.sum())
    else:
        seg_delta = int(units.sum() - alt_units.sum())
        cred_delta = int(credits.sum() - alt_credits.sum())
    costly: list[CostlyRow] = []
    if credits.size:
        rows = np.flatnonzero(accepted)
        order = np.argsort(-credits, kind="stable")[:top]
        costly = [
            CostlyRow(int(rows[i]) + 1, table.e164_text(int(rows[i])), int(units[i]), int(credits[i])) for i in order
        ]
    return Estimate(
        report=report,
        recipients=recipients,
        messages=recipients,
        segments=int(units.sum()),
        credits=int(credits.sum()),
        channel=channel,
        encodings=encodings,
        by_segments=by_segments,
        most_expensive=costly,
        smart_encoding=table.plan.smart_encoding,
        smart_segments_delta=max(seg_delta, 0),
        smart_credits_delta=max(cred_delta, 0),
    )
