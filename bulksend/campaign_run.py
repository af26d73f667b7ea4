"""A campaign's run: from the lock and the estimate to the hold, the engine, the release and the report.

A run goes: lock the campaign (exit 5 when another run holds it) → check the inputs are the ones the
campaign was started with → validate, render and price the list (a new campaign only; a started one
already has every message in the ledger) → check the balance (exit 3) → the caller confirms → queue
every accepted row (idempotent) → hold the outstanding cost → the engine → release what is left of the
hold, whatever happened → a report with counts, failures, credits, the exit code and the next command.
Also the dry run, cancel and reconcile, which hold the same lock.

Nothing here knows about Typer or rich; ``commands/send.py`` and ``commands/campaigns.py`` render it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulksend.campaign_file import SCHEDULE_FLAGS, CampaignSpec, RowParams, RunOptions, check_template_provider, fingerprint
from bulksend.campaign_status import (
    OPEN_STATES,
    CancelReport,
    DryRunReport,
    ReconcileReport,
    SendReport,
    find_campaign,
    status_of,
    utc_iso,
)
from bulksend.config import Config
from bulksend.engine import Engine, EngineResult, EngineSettings, Progress, StopReason, reconcile_campaign
from bulksend.errors import ConfigError, InputError, InsufficientCredits
from bulksend.hints import Invocation
from bulksend.ledger import Campaign, SqliteLedger
from bulksend.ledger_guard import open_for_write
from bulksend.locks import CampaignLock

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.estimate import Estimate
    from bulksend.providers.base import Provider
    from bulksend.schedule import SendRules

DEFAULT_PROVIDER = "outbox"
QUEUE_CHUNK = 5000  # rows per transaction while queueing: other campaigns' writes never wait long

# ------------------------------------------------------------------------------------- preparing a run


@dataclass
class Prepared:
    """A run ready to go: the lock held, the ledger open, the provider open, what it will cost.

    ``status`` is ``new`` (validated, nothing in the ledger yet), ``resume`` (messages already queued),
    ``done`` (nothing left to send) or ``cancelled``. Close it (``with``) to release the lock.
    """

    config: Config
    name: str
    channel: str
    provider_name: str
    status: str
    ledger: SqliteLedger
    lock: CampaignLock
    run: RunOptions
    limit: int | None = None
    campaign: Campaign | None = None
    spec: CampaignSpec | None = None
    fingerprint: str | None = None
    estimate: "Estimate | None" = None
    provider: "Provider | None" = None
    messages: int = 0  # rows this run would send (queued and unknown)
    credits: int = 0  # their cost: what the run holds
    available: int = 0  # credits of the channel available to this campaign now
    counts: dict[str, int] = field(default_factory=dict)
    sender: str | None = None  # the From this run uses (None: the provider decides, e.g. a messaging service)
    rules: "SendRules | None" = None  # quiet hours, send time, frequency cap (bulksend/schedule.py)

    def close(self) -> None:
        if self.provider is not None:
            self.provider.close()
            self.provider = None
        self.ledger.close()
        self.lock.release()

    def __enter__(self) -> "Prepared":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_options(spec: CampaignSpec):
    from bulksend.pipeline import read_options

    return read_options(
        phone_column=spec.phone_column,
        consent_column=spec.consent_column,
        assume_consent=spec.assume_consent,
        region=spec.region,
        countries=spec.countries,
        allow_landline=spec.allow_landline,
        channel=spec.channel,
        encoding=spec.encoding,
        delimiter=spec.delimiter,
    )


def _provider_overrides(run: RunOptions) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if run.sender:
        overrides["sender"] = run.sender
    if run.rate is not None:
        overrides["rate"] = run.rate
    if run.concurrency is not None:
        overrides["concurrency"] = run.concurrency
    return overrides


def open_campaign_provider(config: Config, name: str, channel: str, run: RunOptions) -> "Provider":
    """The provider profile opened for this run (credentials resolved: exit 6 when missing)."""
    from bulksend.profiles import open_provider

    provider = open_provider(config, name, _provider_overrides(run))
    if channel not in provider.channels:
        provider.close()
        raise ConfigError(
            f"provider profile {name!r} ({provider.type_name}) cannot send {channel}.",
            hint=f"It sends: {', '.join(sorted(provider.channels))}.",
        )
    return provider


def checked_sender(provider: "Provider", channel: str, run: RunOptions) -> str | None:
    """The sender this run's messages go out from, checked (exit 2 naming the rule) before anything is held."""
    from bulksend.senders import check_sender, sender_for

    sender, key = sender_for(provider, channel)
    if sender is None:
        return None
    if run.sender and sender == run.sender:
        where = "sender (--sender, or sender in the campaign file)"
    else:
        where = f"{key} of provider profile {provider.profile.name!r}"
    return check_sender(sender, channel, where)


def _refresh(prepared: Prepared) -> None:
    """Counts, outstanding cost and availability of a campaign already in the ledger."""
    ledger = prepared.ledger
    campaign = prepared.campaign
    assert campaign is not None
    prepared.counts = ledger.counts(campaign.id)
    prepared.messages = sum(prepared.counts.get(s, 0) for s in OPEN_STATES)
    prepared.credits = ledger.outstanding_cost(campaign.id)
    prepared.available = ledger.balance(campaign.channel)[campaign.channel].available + ledger.held(campaign.id)


def _check_credits(prepared: Prepared) -> None:
    if prepared.credits > prepared.available:
        short = prepared.credits - prepared.available
        raise InsufficientCredits(
            f"campaign {prepared.name!r} needs {prepared.credits:,} {prepared.channel} credits but "
            f"{prepared.available:,} are available: {short:,} short. Nothing was sent.",
            hint=f"Top up with: {_topup_hint(prepared.config, short, prepared.channel)}",
        )


def _topup_hint(config: Config, short: int, channel: str) -> str:
    from bulksend.credits import minimum_topup

    return config.invocation.topup(max(short, minimum_topup(config, channel)), channel)


def prepare_send(config: Config, spec: CampaignSpec, *, limit: int | None = None, dry_run: bool = False) -> Prepared:
    """Lock, identify, validate and price a ``send``; raises before anything is sent or written to the ledger."""
    lock = CampaignLock.acquire(config.home, spec.name)  # first: an overlapping run must exit within a second
    try:
        ledger = open_for_write(config, own_lock=lock.path if lock.created else None)
    except BaseException:
        lock.release()
        raise
    provider_name = spec.provider or str(config.defaults.get("provider") or DEFAULT_PROVIDER)
    prepared = Prepared(
        config, spec.name, spec.channel, provider_name, "new", ledger, lock, spec.run, limit=limit, spec=spec
    )
    try:
        from bulksend.pipeline import read_message

        options = _read_options(spec)  # flags first: a bad flag is exit 2 before any file is read
        prepared.channel = options.channel
        text, _ = read_message(spec.message, spec.template)
        prepared.fingerprint = fingerprint(spec.recipients, text, options.channel)
        existing = ledger.get_campaign(spec.name)
        if existing is not None:
            _check_same(existing, prepared.fingerprint, options.channel, spec, config.invocation)
            prepared.campaign = existing
            if spec.provider is not None and spec.provider != existing.provider:
                # Unknown outcomes can only be looked up where they were sent: a switch could send twice.
                raise InputError(
                    f"campaign {existing.name!r} sends through provider profile {existing.provider!r}, "
                    f"not {spec.provider!r}; nothing was sent.",
                    hint="Finish or cancel it first, or start a new campaign (--name) on the other provider.",
                )
            prepared.provider_name = existing.provider
            if existing.state == "cancelled":
                prepared.status = "cancelled"
                _refresh(prepared)
                return prepared
            if ledger.campaign_settings(existing.id).get("queued"):
                _refresh(prepared)
                if not prepared.messages:
                    prepared.status = "done"
                    if existing.state != "done" and not dry_run:
                        ledger.set_campaign_state(existing.id, "done")
                    return prepared
                prepared.status = "resume"
        prepared.provider = open_campaign_provider(config, prepared.provider_name, options.channel, spec.run)
        prepared.sender = checked_sender(prepared.provider, options.channel, spec.run)
        check_template_provider(spec, prepared.provider)
        stored = ledger.campaign_settings(existing.id).get("schedule") if existing is not None else None
        prepared.rules = send_rules(config, spec, stored)
        if prepared.status == "new":
            _validate(prepared, spec, options)
        _check_credits(prepared)
        return prepared
    except BaseException:
        prepared.close()
        raise


def send_rules(config: Config, spec: CampaignSpec | None, stored: dict[str, Any] | None) -> "SendRules":
    """The campaign's quiet hours, send time and cap: flags and file, else as stored, else config.toml.

    ``send-one`` (one person writing to another) follows neither quiet hours nor a cap.
    """
    from bulksend.schedule import SendRules, configured_rules

    now = datetime.now(timezone.utc)
    if spec is not None and spec.send_one:
        return SendRules(anchor=now)
    given = {key: getattr(spec, key) for key in SCHEDULE_FLAGS} if spec is not None else {}
    return configured_rules(config, given, stored, now)


def _capped(prepared: Prepared) -> dict[str, str] | None:
    """Numbers at the frequency cap now (any campaign), with when each is eligible again."""
    from bulksend.schedule import capped_numbers

    cap = prepared.rules.cap if prepared.rules is not None else None
    if cap is None:
        return None
    now = datetime.now(timezone.utc)
    return capped_numbers(cap, prepared.channel, prepared.ledger.recent_sends(None, prepared.channel, now - cap.window),
                          now)


def _check_same(existing: Campaign, fp: str, channel: str, spec: CampaignSpec, hints: Invocation) -> None:
    if existing.channel != channel:
        raise InputError(
            f"campaign {existing.name!r} sends on {existing.channel}, not {channel}; nothing was sent.",
            hint="Give this campaign another name with --name.",
        )
    if existing.fingerprint != fp:
        raise InputError(
            f"campaign {existing.name!r} was started on {existing.created_at[:10]} with a different recipient "
            "file or message; sending these under the same name would mix two campaigns. Nothing was sent.",
            hint=f"Give the new one another name (--name), or see the old one: {hints.show(existing.id)}",
        )


def _validate(prepared: Prepared, spec: CampaignSpec, options) -> None:
    from bulksend.compliance import missing_optout_error
    from bulksend.estimate import summarize
    from bulksend.pipeline import read_message, read_plan, run_validation, template_findings

    plan = read_plan(
        message=spec.message,
        template=spec.template,
        rates=spec.rates,
        max_segments=spec.max_segments,
        smart_encoding=spec.smart_encoding,
        category=spec.category,
        config=prepared.config,
        channel=options.channel,
        purpose="transactional" if spec.send_one else spec.purpose,  # send-one is person to person
        allow_content=spec.allow_content or (),
    )
    # The message itself: refused before the list is read and before anything is held.
    found = template_findings(plan)
    if found:
        _, origin = read_message(spec.message, spec.template)
        words = ", ".join(f"{f.word!r} ({f.category})" for f in found)
        categories = sorted({f.category for f in found})
        raise InputError(
            f"the message in {origin} has content findings: {words}; nothing was sent.",
            hint="Change the message, or, when it is meant, send with "
            + " ".join(f"--allow-content {c}" for c in categories)
            + " (recorded on the campaign).",
        )
    if plan.compliance is not None and plan.compliance.missing_optout:
        raise missing_optout_error(read_message(spec.message, spec.template)[1])
    report = run_validation(prepared.config, spec.recipients, options, plan=plan, previews=True,
                            capped=_capped(prepared))
    estimate = summarize(report)
    prepared.estimate = estimate
    if not estimate.recipients:
        table = report.table
        if spec.send_one:
            from bulksend.recipients import iter_rejects

            for reject in iter_rejects(table, stop_after=1):
                raise InputError(f"{reject.value!r}: {reject.reason} ({reject.detail}); nothing was sent.")
        reasons = ", ".join(f"{code} {n:,}" for code, n in table.reasons().items()) or "no data rows"
        raise InputError(
            f"{spec.recipients}: no row can be messaged ({reasons}); nothing was sent.",
            hint="See every reject with: "
            + prepared.config.invocation.validate_rejects(spec.recipients, _read_values(spec)),
        )
    if spec.params:  # a parameter column the message does not use is an input error, before anything is sent
        RowParams(spec.params, report.table.bound.columns, spec.category)
    prepared.messages = estimate.recipients
    prepared.credits = estimate.credits
    balance = prepared.ledger.balance(options.channel)[options.channel]
    own = prepared.ledger.held(prepared.campaign.id) if prepared.campaign else 0
    prepared.available = balance.available + own


def _read_values(spec: CampaignSpec) -> dict[str, Any]:
    """The spec's list-reading options, by parameter name (for a hint that reads the list the same way)."""
    from bulksend.hints import READ_FLAGS

    return {key: getattr(spec, key) for key in READ_FLAGS}


def prepare_resume(config: Config, key: str, run: RunOptions, *, limit: int | None = None) -> Prepared:
    """``campaigns resume ID``: the campaign's stored settings (flags on top), from the ledger alone."""
    ledger, campaign = find_campaign(config, key)
    try:
        lock = CampaignLock.acquire(config.home, campaign.name)
    except BaseException:
        ledger.close()
        raise
    stored = ledger.campaign_settings(campaign.id)
    base = RunOptions(**{k: v for k, v in stored.get("run", {}).items() if k in RunOptions.__dataclass_fields__})
    prepared = Prepared(
        config, campaign.name, campaign.channel, campaign.provider, "resume", ledger, lock, base.merged(run),
        limit=limit, campaign=campaign,
    )
    try:
        _refresh(prepared)
        if campaign.state == "cancelled":
            prepared.status = "cancelled"
            return prepared
        if not stored.get("queued"):
            raise InputError(
                f"campaign {campaign.name!r} was never fully queued; run the send that started it again.",
                hint="Running that send again, with the same file and message, queues the rest and sends.",
            )
        if not prepared.messages:
            prepared.status = "done"
            if campaign.state != "done":
                ledger.set_campaign_state(campaign.id, "done")
            return prepared
        prepared.provider = open_campaign_provider(config, campaign.provider, campaign.channel, prepared.run)
        prepared.sender = checked_sender(prepared.provider, campaign.channel, prepared.run)
        prepared.rules = send_rules(config, None, stored.get("schedule"))
        _check_credits(prepared)
        return prepared
    except BaseException:
        prepared.close()
        raise


# ------------------------------------------------------------------------------------------- running


def engine_settings(provider: "Provider", run: RunOptions, limit: int | None) -> EngineSettings:
    """The engine's settings: flags and campaign file first, then the profile, then the defaults."""
    profile = provider.profile

    def number(key: str, value: Any, default: Any, cast, minimum) -> Any:
        if value is None:
            value = profile.get(key, default)
        try:
            value = cast(value)
        except (TypeError, ValueError):
            raise ConfigError(f"provider profile {profile.name!r}: {key} must be a number, not {value!r}.") from None
        if value < minimum:
            raise ConfigError(f"{key} must be at least {minimum}, not {value}.")
        return value

    rate = number("rate", run.rate, provider.default_rate, float, 0)
    return EngineSettings(
        rate=rate or None,
        concurrency=number("concurrency", run.concurrency, 16, int, 1),
        batch_size=number("batch_size", run.batch_size, 0, int, 0) or None,
        max_attempts=number("max_attempts", run.max_attempts, 5, int, 1),
        retry_unknown=run.retry_unknown or bool(profile.get("retry_unknown", False)),
        limit=limit,
        breaker=number("circuit_breaker", None, 20, int, 0),
        max_wait=number("max_wait", None, 600, float, 0),
        reconcile_after=number("reconcile_after", None, 30, float, 0),
        backoff_base=number("backoff_base", None, 1.0, float, 0),
        backoff_cap=number("backoff_cap", None, 300.0, float, 0),
    )


def _queue(prepared: Prepared) -> int:
    """Put every accepted row in the ledger (idempotent), then mark the campaign fully queued.

    The rows go as columns (``Ledger.add_transmission_columns``), QUEUE_CHUNK rows per transaction, with no
    object per row: the same rows ``add_transmissions`` of one ``NewTransmission`` each would write."""
    from bulksend.recipients import iter_message_columns

    ledger = prepared.ledger
    spec = prepared.spec
    assert prepared.estimate is not None and spec is not None and prepared.fingerprint is not None
    campaign = prepared.campaign or ledger.open_campaign(
        prepared.name, prepared.channel, prepared.provider_name, prepared.fingerprint, spec.assume_consent
    )
    prepared.campaign = campaign
    table = prepared.estimate.table
    row_params = RowParams(spec.params, table.bound.columns, spec.category) if spec.params else None
    rules = prepared.rules
    scheduler = rules.scheduler() if rules is not None and (rules.quiet or rules.send_at) else None
    anchor = rules.anchor if rules is not None and rules.anchor else datetime.now(timezone.utc)
    not_before: list[datetime | None] | None = None
    if scheduler is not None:  # each row's first allowed time, as estimate finds it (zones of all rows at once)
        from bulksend.estimate import due_times

        ids, per_set = due_times(table, scheduler, anchor)
        # Due at its first allowed time; None (zones with no common allowed hour) is settled at claim time.
        per_set = [due if due is not None and due > anchor else None for due in per_set]
        not_before = [per_set[i] for i in ids.tolist()]
    held: dict[str, list] = {name: [] for name in ("e164", "message", "units", "cost", "row_number", "country",
                                                   "timezone", "params")}
    added = queued = 0  # queued: rows handed to the ledger so far (their place in not_before)

    def write(count: int) -> None:
        nonlocal added, queued
        part = {name: column[:count] for name, column in held.items()}
        for column in held.values():
            del column[:count]
        added += ledger.add_transmission_columns(
            campaign.id, part["e164"], part["message"], part["units"], part["cost"],
            row_number=part["row_number"], country=part["country"], timezone=part["timezone"],
            params=part["params"] if row_params is not None else None,
            not_before=not_before[queued:queued + count] if not_before is not None else None,
        )
        queued += count

    for columns in iter_message_columns(table, fields=row_params is not None):
        held["e164"] += columns.e164
        held["message"] += columns.text
        held["units"] += columns.units
        held["cost"] += columns.credits
        held["row_number"] += columns.row
        held["country"] += columns.country
        held["timezone"] += columns.timezone
        if row_params is not None:
            assert columns.fields is not None
            held["params"] += map(row_params, columns.fields)
        while len(held["e164"]) >= QUEUE_CHUNK:
            write(QUEUE_CHUNK)
    if held["e164"]:
        write(len(held["e164"]))
    ledger.save_campaign_settings(campaign.id, _stored_settings(prepared))
    return added


def _stored_settings(prepared: Prepared) -> dict[str, Any]:
    spec = prepared.spec
    assert spec is not None
    return {
        "queued": True,
        "source": str(spec.source) if spec.source else None,
        "recipients": None if spec.send_one else str(spec.recipients),
        "template": str(spec.template) if spec.template else None,
        "send_one": spec.send_one,
        "params": spec.params,
        "sender": prepared.sender,
        "rejected": prepared.estimate.table.rejected if prepared.estimate else None,
        "reasons": prepared.estimate.table.reasons() if prepared.estimate else None,
        "run": {k: v for k, v in spec.run.as_dict().items() if v not in (None, False)},
        "schedule": prepared.rules.as_stored() if prepared.rules is not None else None,
        **_compliance_settings(prepared),
    }


def _compliance_settings(prepared: Prepared) -> dict[str, Any]:
    """What the content and opt-out checks decided for this campaign (``campaigns show``)."""
    plan = prepared.estimate.table.plan if prepared.estimate is not None else None
    decided = plan.compliance if plan is not None else None
    return {
        "purpose": decided.purpose if decided is not None else None,
        "footer": decided.footer if decided is not None else None,
        "allow_content": sorted(plan.lexicon.allowed) if plan is not None and plan.lexicon is not None else [],
    }


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM (the run then stops after the batch in flight).

    A second Ctrl-C raises KeyboardInterrupt as usual: the engine still records what came back.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_signal(signum, frame) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sleep_until_due(stop: threading.Event, seconds: float) -> bool:
    """``send --wait`` between runs: sleep until the next row is due; True when Ctrl-C / SIGTERM came first."""
    return stop.wait(seconds)


def execute(
    prepared: Prepared,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    wait: bool = False,
    sleep=None,
) -> SendReport:
    """Queue (a new campaign), hold, send, release: the part of a run that talks to the provider.

    When only rows not yet due are left (quiet hours, a send time, a long retry) the run ends ``waiting``
    and the hold stays, so the next run (the same cron line) has the credits; with ``wait`` it sleeps
    until the next row is due instead (``sleep(seconds)`` returns True when stopped) and carries on.
    """
    ledger = prepared.ledger
    if prepared.status in ("done", "cancelled"):
        assert prepared.campaign is not None
        return _report(prepared, None, 0, 0)
    queued = _queue(prepared) if prepared.status == "new" else 0
    campaign = prepared.campaign
    assert campaign is not None and prepared.provider is not None
    stored = ledger.campaign_settings(campaign.id)
    if stored.get("sender") != prepared.sender:  # the profile's sender changed since: record the one used now
        ledger.save_campaign_settings(campaign.id, {**stored, "sender": prepared.sender})
    if campaign.state == "done":  # a finished campaign reopened by a lookup that found nothing
        ledger.set_campaign_state(campaign.id, "open")
    from bulksend.fleet import lease_seconds, shared_rate

    ledger.hold_shortfall(campaign.id)  # only what is not held yet: senders joining one campaign hold it once
    settings = replace(engine_settings(prepared.provider, prepared.run, prepared.limit), rules=prepared.rules,
                       lease=lease_seconds(prepared.config))
    stop = stop or threading.Event()

    limiter = shared_rate(ledger, prepared.provider.profile.name, settings.rate)  # one rate per account
    released = 0
    result: EngineResult | None = None
    engine: Engine | None = None
    try:
        while True:
            engine = Engine(ledger, prepared.provider, campaign, settings, progress=progress, stop=stop,
                            limiter=limiter)
            if result is not None:  # a run that waited: its totals go on
                engine.stats = result.stats
            result = engine.run()
            if not (wait and result.reason is StopReason.WAITING and result.next_due is not None):
                break
            seconds = max(0.0, (result.next_due - datetime.now(timezone.utc)).total_seconds())
            if (sleep or (lambda wait_for: sleep_until_due(stop, wait_for)))(seconds):
                result.reason = StopReason.INTERRUPTED
                break
    finally:
        if limiter is not None:
            limiter.close()
        if result is None or result.reason is not StopReason.WAITING:
            if engine is not None and ledger.live_leases_of_others(campaign.id, engine.sender):
                released = ledger.trim_hold(campaign.id)  # other senders still pay from it: keep their share
            else:
                released = ledger.release(campaign.id)
        if not _any_open(ledger, campaign.id):
            ledger.set_campaign_state(campaign.id, "done")
    return _report(prepared, result, queued, released)


def _any_open(ledger: SqliteLedger, campaign_id: int) -> bool:
    """Whether any row of the campaign is still open (queued, sending, unknown…): one read of the counts (not
    one per state: on PostgreSQL each is a round trip that counts the campaign's rows)."""
    counts = ledger.counts(campaign_id)
    return any(counts.get(state) for state in OPEN_STATES)


def _report(prepared: Prepared, result: EngineResult | None, queued: int, released: int) -> SendReport:
    ledger = prepared.ledger
    campaign = ledger.get_campaign(prepared.campaign.id)
    assert campaign is not None
    debited, refunded = ledger.campaign_credits(campaign.id)
    return SendReport(
        campaign=campaign,
        state=campaign.state,
        counts=ledger.counts(campaign.id),
        failures=ledger.failure_codes(campaign.id),
        credits_debited=debited,
        credits_refunded=refunded,
        status=prepared.status,
        result=result,
        queued=queued,
        released=released,
        limit=prepared.limit,
        source=prepared.spec.source if prepared.spec else None,
        rows=ledger.transmissions(campaign.id) if prepared.spec is not None and prepared.spec.send_one else [],
        hints=prepared.config.invocation,
        examples=prepared.estimate.report.previews if prepared.estimate is not None else [],
        **_rejects(prepared, ledger.campaign_settings(campaign.id)),
    )


def _rejects(prepared: Prepared, settings: dict[str, Any]) -> dict[str, Any]:
    """The list's rejects: from this run's validation, else as recorded when the campaign was queued."""
    if prepared.estimate is not None:
        table = prepared.estimate.table
        return {"rejected": table.rejected, "reasons": table.reasons()}
    return {"rejected": settings.get("rejected"), "reasons": settings.get("reasons")}


# ------------------------------------------------------------------------------------------- dry run


def dry_run_path(home: Path, campaign: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", campaign).lstrip(".") or "_"
    return home / "outbox" / f"{safe}.dry-run.jsonl"


def dry_run(prepared: Prepared) -> DryRunReport:
    """Write what a real run would send now, one JSON line per message. No ledger write, no provider call."""
    path = dry_run_path(prepared.config.home, prepared.name)
    from bulksend.private import FILE_MODE, private_dir

    private_dir(path.parent, root=prepared.config.home)
    limit = prepared.limit
    written = credits = suppressed = unknown = waiting = 0
    from bulksend.engine import _encoding

    now = datetime.now(timezone.utc)
    rules = prepared.rules
    scheduler = rules.scheduler() if rules is not None and (rules.quiet or rules.send_at) else None
    anchor = rules.anchor if rules is not None and rules.anchor else now

    tmp = path.with_suffix(".jsonl.tmp")
    # Each line is what json.dumps(record, ensure_ascii=False) writes, with the constant keys encoded once
    # and each string through the encoder's own escaping (tests/test_rendering.py compares the two).
    string = json.encoder.encode_basestring
    head = f'{{"campaign": {string(prepared.name)}, "to": '
    channel = f', "channel": {string(prepared.channel)}, "encoding": '
    due_text: dict[datetime, str] = {}  # a list has few distinct due times
    with open(tmp, "w", encoding="utf-8", opener=lambda p, flags: os.open(p, flags, FILE_MODE)) as out:

        def write(to: str, text: str, units: int, cost: int, row: int | None, encoding: str,
                  params: str | None, due: datetime | None = None) -> None:
            nonlocal waiting
            line = (f'{head}{string(to)}{channel}{string(encoding)}, "units": {int(units)}, "credits": {int(cost)}, '
                    f'"row": {"null" if row is None else int(row)}, "text": {string(text)}')
            if due is not None and due > now:  # a real run would defer it until then
                line += due_text.get(due) or due_text.setdefault(due, f', "due": {string(utc_iso(due))}')
                waiting += 1
            if params:
                line += f', "params": {json.dumps(json.loads(params), ensure_ascii=False)}'
            out.write(line + "}\n")

        if prepared.status == "new":
            from bulksend.recipients import iter_messages

            assert prepared.estimate is not None and prepared.spec is not None
            spec = prepared.spec
            table = prepared.estimate.table
            row_params = RowParams(spec.params, table.bound.columns, spec.category) if spec.params else None
            for message in iter_messages(table):
                if limit is not None and written >= limit:
                    break
                due = scheduler.due(anchor, scheduler.zones(message.e164, message.country, message.timezone)) \
                    if scheduler is not None else None
                write(message.e164, message.text, message.units, message.credits, message.row, message.encoding,
                      row_params(message.fields) if row_params else None, due)
                written += 1
                credits += message.credits
        elif prepared.status == "resume":
            assert prepared.campaign is not None
            rows = prepared.ledger.transmissions(prepared.campaign.id, ("queued",))
            blocked = prepared.ledger.suppressed_among(r.e164 for r in rows)
            unknown = prepared.counts.get("unknown", 0) + prepared.counts.get("sending", 0)
            for row in rows:
                if row.e164 in blocked:
                    suppressed += 1
                    continue
                if limit is not None and written >= limit:
                    continue
                due = datetime.strptime(row.not_before, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc) \
                    if row.not_before else None
                write(row.e164, row.message, row.units, row.cost, row.row_number, _encoding(row.message),
                      row.params, due)
                written += 1
                credits += row.cost
    os.replace(tmp, path)
    return DryRunReport(
        prepared.name, prepared.status, path, written, credits, suppressed, unknown, prepared.available,
        prepared.channel, limit, waiting,
    )


# ------------------------------------------------------------------------------------------ cancel, reconcile


def cancel_campaign(config: Config, key: str) -> CancelReport:
    """Cancel: queued rows are never sent, the hold is released. Refused (exit 5) while a run is sending."""
    ledger, campaign = find_campaign(config, key)
    with ledger:
        with CampaignLock.acquire(config.home, campaign.name):
            if campaign.state in ("done", "cancelled"):
                return CancelReport(status_of(ledger, campaign, config.invocation), 0, campaign.state)
            with ledger.transaction():
                ledger.set_campaign_state(campaign.id, "cancelled")
                released = ledger.trim_hold(campaign.id)  # all of it, but what another home's sender has in flight
            return CancelReport(status_of(ledger, ledger.get_campaign(campaign.id), config.invocation), released, None)


def reconcile(config: Config, key: str, *, assume: str | None = None, wait: bool = True) -> ReconcileReport:
    """``campaigns reconcile``: ask the provider about every ``unknown`` row, or apply the user's decision."""
    if assume not in (None, "sent", "failed", "queued"):
        raise InputError(f"--assume {assume!r}: choose sent, failed or queued.")
    ledger, campaign = find_campaign(config, key)
    with ledger, CampaignLock.acquire(config.home, campaign.name):
        provider = open_campaign_provider(config, campaign.provider, campaign.channel, RunOptions())
        try:
            # Only rows the provider may have accepted can be debited here: hold what they cost.
            maybe = sum(r.cost for r in ledger.transmissions(campaign.id, ("unknown", "sending")))
            need = maybe - ledger.held(campaign.id)
            if need > 0 and assume != "failed":
                ledger.hold(campaign.id, campaign.channel, need)
            try:
                settings = replace(engine_settings(provider, RunOptions(), None), retry_unknown=False)
                result, recovered = reconcile_campaign(ledger, provider, campaign, settings, assume=assume, wait=wait)
            finally:
                ledger.release(campaign.id)
            if campaign.state == "open" and not _any_open(ledger, campaign.id):
                ledger.set_campaign_state(campaign.id, "done")
            return ReconcileReport(status_of(ledger, ledger.get_campaign(campaign.id), config.invocation), result, recovered,
                                   provider.can_lookup)
        finally:
            provider.close()
