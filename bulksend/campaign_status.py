"""Where a campaign stands and what a run did: the reports ``send``, ``campaigns list/show/cancel/reconcile`` render.

``find_campaign`` looks a campaign up by name or id; ``status_of`` reads its counts and credits from the ledger.
Nothing here knows about Typer or rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulksend.config import Config
from bulksend.engine import EngineResult, StopReason
from bulksend.errors import ExitCode, InputError
from bulksend.hints import Invocation
from bulksend.ledger import STATES, Campaign, SqliteLedger
from bulksend.ledger_guard import open_for_read, open_for_write

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.engine import ReconcileResult

#: States in which a transmission still needs something from a run.
OPEN_STATES = ("queued", "sending", "unknown")


@dataclass
class SendReport:
    """What a run did and where the campaign stands: the ``send --json`` document and the summary."""

    campaign: Campaign
    state: str  # the campaign's state after the run: open, done or cancelled
    counts: dict[str, int]
    failures: dict[str, int]
    credits_debited: int
    credits_refunded: int
    status: str  # what this invocation found: new, resume, done, cancelled
    result: EngineResult | None = None
    queued: int = 0  # rows added to the ledger by this run
    released: int = 0  # credits of the hold given back at the end
    limit: int | None = None
    source: Path | None = None  # the file a `send` was given (for the next command)
    rows: list = field(default_factory=list)  # the transmissions themselves, for send-one's one-line answer
    hints: Invocation = field(default_factory=Invocation)
    examples: list = field(default_factory=list)  # the messages previewed before sending (a new campaign only)
    rejected: int | None = None  # rows of the list that are not messaged (None: queued by an older bulksend)
    reasons: dict[str, int] | None = None

    @property
    def open_rows(self) -> int:
        return sum(self.counts.get(s, 0) for s in OPEN_STATES)

    @property
    def exit_code(self) -> ExitCode:
        reason = self.result.reason if self.result else None
        if reason in (StopReason.FATAL, StopReason.BREAKER):
            return ExitCode.ERROR
        if reason is StopReason.INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.result is None:  # nothing ran: done or cancelled before
            return ExitCode.OK
        if self.counts.get("failed") or self.counts.get("unknown"):
            return ExitCode.INCOMPLETE
        return ExitCode.OK  # waiting too: the same command sends the rest when it is due (DESIGN.md)

    @property
    def waiting(self) -> bool:
        """Only rows not yet due are left: the run ended to let a later one (or --wait) send them."""
        return self.result is not None and self.result.reason is StopReason.WAITING and self.state == "open"

    def next_command(self) -> str:
        """The command to run next, for the summary (and the JSON ``next`` field)."""
        name = self.campaign.name
        if self.status == "cancelled" or self.state == "cancelled":
            return self.hints.show(name)
        if self.counts.get("queued") or self.counts.get("sending"):
            return self.hints.resume(name)
        if self.counts.get("unknown"):
            return self.hints.reconcile(name)
        return self.hints.show(name)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "campaign": self.campaign.name,
            "id": self.campaign.id,
            "state": "waiting" if self.waiting else self.state,
            "counts": every_state(self.counts),
            "credits_debited": self.credits_debited,
            "credits_refunded": self.credits_refunded,
            "rejected": self.rejected,
            "reasons": self.reasons,
            "channel": self.campaign.channel,
            "provider": self.campaign.provider,
            "found": self.status,  # what this invocation found: new, resume, done, cancelled
            "failures": self.failures,
            "queued_now": self.queued,
            "hold_released": self.released,
            "exit_code": int(self.exit_code),
            "next": self.next_command(),
            "examples": [p.as_json() for p in self.examples],
        }
        if self.result is not None:
            stats = self.result.stats
            doc["stopped"] = self.result.reason.value
            doc["run"] = {
                "attempts": stats.attempts,
                "sent": stats.sent,
                "failed": stats.failed,
                "retried": stats.retried,
                "unknown": stats.unknown,
                "suppressed": stats.suppressed,
                "opted_out": stats.opted_out,
                "recovered": stats.recovered,
                "reconciled": {"found": stats.found, "not_found": stats.not_found, "cannot_tell": stats.undecided},
                "credits": stats.credits,
                "seconds": round(stats.elapsed, 3),
                "waited_seconds": round(stats.waited, 3),
                "per_second": round(stats.per_second, 1),
            }
            if self.result.fatal is not None:
                doc["error"] = {"code": self.result.fatal.code, "text": self.result.fatal.text}
            elif self.result.tripped_by is not None:
                doc["error"] = {"code": self.result.tripped_by.code, "text": self.result.tripped_by.text}
            doc["run"]["deferred"] = stats.deferred
            doc["run"]["frequency_capped"] = stats.capped
            if self.result.next_due is not None:
                doc["next_due"] = utc_iso(self.result.next_due)
        return doc


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, to the second: 2026-06-02T07:00:00Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def every_state(counts: dict[str, int]) -> dict[str, int]:
    """Counts by transmission state for --json: every state, zeros included, so scripts never miss a key."""
    return {state: counts.get(state, 0) for state in sorted(STATES)}


@dataclass
class DryRunReport:
    """What a run would send now, written to ``<home>/outbox/<campaign>.dry-run.jsonl``; nothing else changed."""

    campaign: str
    status: str
    path: Path
    messages: int
    credits: int
    suppressed: int  # queued rows on the opt-out list now: a real run fails them as suppressed
    unknown: int  # rows a real run would reconcile first
    available: int
    channel: str
    limit: int | None
    waiting: int = 0  # of ``messages``, those not due yet (quiet hours, a send time): each has a "due" in the file

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "state": "dry-run",
            "found": self.status,
            "dry_run": True,
            "file": str(self.path),
            "messages": self.messages,
            "credits": self.credits,
            "channel": self.channel,
            "available": self.available,
            "suppressed": self.suppressed,
            "unknown": self.unknown,
            "waiting": self.waiting,
            "counts": {"would_send": self.messages},
            "credits_debited": 0,
            "credits_refunded": 0,
        }


@dataclass
class CampaignStatus:
    """A campaign as ``campaigns list`` and ``campaigns show`` present it."""

    campaign: Campaign
    counts: dict[str, int]
    failures: dict[str, int]
    credits_debited: int
    credits_refunded: int
    held: int
    settings: dict[str, Any]
    hints: Invocation = field(default_factory=Invocation)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def next_command(self) -> str | None:
        name = self.campaign.name
        if self.campaign.state == "cancelled":
            return self.hints.reconcile(name) if self.counts.get("unknown") else None
        if self.counts.get("queued") or self.counts.get("sending"):
            return self.hints.resume(name)
        if self.counts.get("unknown"):
            return self.hints.reconcile(name)
        return None

    def as_json(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "id": c.id,
            "campaign": c.name,
            "state": c.state,
            "channel": c.channel,
            "provider": c.provider,
            "created_at": c.created_at,
            "counts": every_state(self.counts),
            "total": self.total,
            "failures": self.failures,
            "credits_debited": self.credits_debited,
            "credits_refunded": self.credits_refunded,
            "held": self.held,
            "attestation": c.attestation,
            "source": self.settings.get("source"),
            "sender": self.settings.get("sender"),
            "next": self.next_command(),
            "purpose": self.settings.get("purpose"),
            "allow_content": self.settings.get("allow_content", []),
        }


def status_of(ledger: SqliteLedger, campaign: Campaign, hints: Invocation = Invocation()) -> CampaignStatus:
    debited, refunded = ledger.campaign_credits(campaign.id)
    return CampaignStatus(
        campaign,
        ledger.counts(campaign.id),
        ledger.failure_codes(campaign.id),
        debited,
        refunded,
        ledger.held(campaign.id),
        ledger.campaign_settings(campaign.id),
        hints,
    )


def find_campaign(config: Config, key: str, *, write: bool = True) -> tuple[SqliteLedger, Campaign]:
    """The ledger and the campaign named or numbered ``key`` (a name wins over an id that looks the same)."""
    ledger = open_for_write(config, create=False) if write else open_for_read(config)
    campaign = None
    if ledger is not None:
        campaign = ledger.get_campaign(key)
        if campaign is None and key.isdigit():
            campaign = ledger.get_campaign(int(key))
    if campaign is None:
        if ledger is not None:
            ledger.close()
        raise InputError(f"no campaign {key!r} in the ledger.", hint=f"List them with: {config.invocation.campaigns()}")
    return ledger, campaign


def list_campaigns(config: Config) -> list[CampaignStatus]:
    ledger = open_for_read(config)
    if ledger is None:
        return []
    with ledger:
        return [status_of(ledger, c, config.invocation) for c in ledger.campaigns()]


def show_campaign(config: Config, key: str) -> CampaignStatus:
    ledger, campaign = find_campaign(config, key, write=False)
    with ledger:
        return status_of(ledger, campaign, config.invocation)


@dataclass(frozen=True)
class CancelReport:
    status: CampaignStatus
    released: int
    already: str | None  # "done" or "cancelled" when nothing changed


@dataclass(frozen=True)
class ReconcileReport:
    status: CampaignStatus
    result: "ReconcileResult"
    recovered: int
    can_lookup: bool

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.INCOMPLETE if self.status.counts.get("unknown") else ExitCode.OK

    def as_json(self) -> dict[str, int]:
        """The ``reconciled`` object: looked_up = found + not_found + cannot_tell
        = found + assumed_sent + requeued + failed + still_unknown."""
        r = self.result
        return {
            "looked_up": r.looked_up,
            "found": r.found,
            "not_found": r.not_found,
            "cannot_tell": r.undecided,
            "assumed_sent": r.assumed_sent,
            "requeued": r.requeued,
            "failed": r.failed,
            "still_unknown": r.still_unknown,
            "recovered": self.recovered,
        }

    def summary(self) -> str:
        """One line whose two lists of counts each add up to the rows looked up (or decided)."""
        r = self.result
        name = self.status.campaign.name
        if not r.looked_up:
            return f"Campaign {name!r}: no message with an unknown outcome."
        if self.can_lookup:
            asked = (
                f"{r.looked_up:,} looked up: {r.found:,} found, {r.not_found:,} not found, "
                f"{r.undecided:,} the provider cannot tell"
            )
        else:
            asked = f"{r.looked_up:,} with an unknown outcome (the provider cannot look messages up)"
        became = [
            (r.found, "sent"),
            (r.assumed_sent, "sent on your word"),
            (r.requeued, "queued again"),
            (r.failed, "failed"),
            (r.still_unknown, "still unknown"),
        ]
        now = ", ".join(f"{n:,} {what}" for n, what in became if n)
        return f"Campaign {name!r}: {asked}; now {now}."
