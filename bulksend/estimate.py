"""The cost estimate: totals by channel, encoding and segment count, in credits, from a recipient table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bulksend.recipients import ENCODINGS, RecipientTable, ValidationReport


@dataclass(frozen=True)
class CostlyRow:
    row: int
    e164: str
    segments: int
    credits: int


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
        }


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
