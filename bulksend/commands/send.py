"""`bulksend send` and `bulksend send-one`: confirm, send with progress, and summarize (also used by resume)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bulksend.commands import options as opt

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.campaign_run import Prepared
    from bulksend.campaign_status import DryRunReport, SendReport
    from bulksend.engine import RunStats

# --- options shared by send, send-one and campaigns resume ------------------------------------------------

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Send without asking (required when not on a terminal).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr; the summary only.")]
Rate = Annotated[
    float | None, typer.Option("--rate", min=0, help="Messages per second (0: no limit; default: the profile's).")
]
Concurrency = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Requests in flight (default: the profile's, else 16).")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", min=1, help="Rows claimed and recorded per ledger commit.")
]
MaxAttempts = Annotated[
    int | None, typer.Option("--max-attempts", min=1, help="Attempts before a retryable failure is final (5).")
]
RetryUnknown = Annotated[
    bool,
    typer.Option(
        "--retry-unknown",
        help="Send rows whose outcome is unknown again when the provider cannot say (risks a duplicate).",
    ),
]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Send only N more messages (a canary).")]
Provider = Annotated[str | None, typer.Option("--provider", "-p", help="Provider profile (default: outbox).")]
Sender = Annotated[str | None, typer.Option("--sender", help="Sender number or ID, instead of the profile's.")]
QuietHoursOption = Annotated[
    str | None,
    typer.Option("--quiet-hours", metavar="HH:MM-HH:MM|off",
                 help="Hours in each recipient's own zone when nothing is sent (default: [compliance], 21:00-08:00)."),
]
At = Annotated[
    str | None,
    typer.Option("--at", help="Send not before this instant (2026-12-01T09:00:00+01:00), or HH:MM with --local."),
]
Local = Annotated[bool, typer.Option("--local", help="--at is a wall time in each recipient's own zone.")]
FrequencyCapOption = Annotated[
    str | None,
    typer.Option("--frequency-cap", metavar="N/WINDOW|off",
                 help="At most N messages per number and channel per window, across campaigns (like 2/24h)."),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="When only rows not yet due are left, sleep until they are, instead of exiting."),
]


def send(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A recipient CSV, or a campaign file (.toml).", show_default=False)],
    message: opt.Message = None,
    template: opt.TemplateFile = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The campaign's name (default: the file's `name`, else its stem).")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="sms or whatsapp (default: sms).")] = None,
    provider: Provider = None,
    sender: Sender = None,
    yes: Yes = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Do everything but contact the provider and debit; write what would be sent."),
    ] = False,
    limit: Limit = None,
    rate: Rate = None,
    concurrency: Concurrency = None,
    batch_size: BatchSize = None,
    max_attempts: MaxAttempts = None,
    retry_unknown: RetryUnknown = False,
    max_segments: opt.MaxSegments = None,
    smart_encoding: opt.SmartEncoding = False,
    rates: opt.Rates = None,
    purpose: opt.Purpose = None,
    allow_content: opt.AllowContent = None,
    phone_column: opt.PhoneColumn = None,
    consent_column: opt.ConsentColumn = None,
    assume_consent: opt.AssumeConsent = None,
    region: opt.Region = None,
    countries: opt.Countries = None,
    allow_landline: opt.AllowLandline = False,
    encoding: opt.Encoding = None,
    delimiter: opt.Delimiter = None,
    service_window: Annotated[
        bool,
        typer.Option(
            "--service-window",
            help="WhatsApp: every recipient wrote to you in the last 24 hours, so free-form text may be sent.",
        ),
    ] = False,
    quiet_hours: QuietHoursOption = None,
    at: At = None,
    local: Local = False,
    frequency_cap: FrequencyCapOption = None,
    wait: Wait = False,
    quiet: Quiet = False,
    json_output: opt.JsonOutput = False,
) -> None:
    """Send a campaign: validate, price, confirm, hold the credits, send, and summarize.

    Running the same campaign again resumes it; once everything is final it says so and exits 0,
    so a cron line can simply repeat. Exit codes: 0 done, 4 some failed or unknown, 1 provider
    error or circuit breaker, 3 not enough credits, 5 already running, 6 configuration, 130 interrupted.

    Example: bulksend send campaign.toml --yes
    """
    from bulksend.campaign_file import RunOptions, build_spec
    from bulksend.campaign_run import prepare_send

    _require_confirmation_or_yes(
        yes or dry_run,
        ctx.obj.invocation.send(path, ctx.params, yes=True),
        rehearse=ctx.obj.invocation.send(path, ctx.params, dry_run=True),
    )
    run = RunOptions(sender, rate, concurrency, batch_size, max_attempts, retry_unknown)
    flags = {
        "message": message, "template": template, "name": name, "channel": channel, "provider": provider,
        "max_segments": max_segments, "smart_encoding": smart_encoding, "rates": rates,
        "phone_column": phone_column, "consent_column": consent_column, "assume_consent": assume_consent,
        "region": region, "countries": countries, "allow_landline": allow_landline, "encoding": encoding,
        "delimiter": delimiter, "service_window": service_window, "purpose": purpose,
        "allow_content": allow_content or None,
        "quiet_hours": quiet_hours, "send_at": at, "local": local, "frequency_cap": frequency_cap,
    }
    config = ctx.obj.config()
    spec = build_spec(path, flags, run)
    with _interrupts_exit_130():
        with prepare_send(config, spec, limit=limit, dry_run=dry_run) as prepared:
            if dry_run:
                to_send = ctx.obj.invocation.send(path, ctx.params, yes=True)  # the same options, for real
                _finish_dry_run(prepared, path, json_output=json_output, next_command=to_send)
                return
            _show_plan(prepared, quiet=quiet and yes)
            if prepared.status in ("done", "cancelled"):
                report = _execute(prepared, quiet=True)
            else:
                _confirm(prepared, yes)
                report = _execute(prepared, quiet=quiet, wait=wait)
    _finish(report, json_output=json_output, path=path)


def send_one(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The recipient's number (E.164, or national with --region).")],
    message: Annotated[str, typer.Option("--message", "-m", help="The text, sent as written.")],
    provider: Provider = None,
    channel: Annotated[str, typer.Option("--channel", help="sms or whatsapp.")] = "sms",
    region: opt.Region = None,
    sender: Sender = None,
    max_attempts: MaxAttempts = None,
    quiet: Quiet = False,
    json_output: opt.JsonOutput = False,
) -> None:
    """Send one person-to-person message, with the same number checks, opt-out list and accounting.

    It is recorded as a one-message campaign named send-one-<time>; there is no consent column to
    check (your own word is recorded instead), and the opt-out list is respected.

    Example: bulksend send-one +447700900123 --message "Your table is ready" --provider twilio
    """
    from bulksend.campaign_file import RunOptions, send_one_spec
    from bulksend.campaign_run import prepare_send

    run = RunOptions(sender=sender, max_attempts=max_attempts)
    spec, tmp = send_one_spec(number, message, provider=provider, channel=channel, region=region, run=run)
    try:
        with _interrupts_exit_130(), prepare_send(ctx.obj.config(), spec) as prepared:
            report = _execute(prepared, quiet=True)
    finally:
        tmp.unlink(missing_ok=True)
    if json_output:
        from bulksend import output

        doc = report.as_json()
        row = _only_row(report)
        doc["to"] = row.e164 if row else None
        doc["outcome"] = row.state if row else None
        doc["provider_id"] = row.provider_id if row else None
        doc["error"] = {"code": row.error_code, "text": row.error_text} if row and row.error_code else doc.get("error")
        output.emit_json(doc)
    else:
        _one_line(report)
    if report.exit_code:
        raise typer.Exit(int(report.exit_code))


# --- the parts every sending command shares ------------------------------------------------------------


class _interrupts_exit_130:
    """Ctrl-C before the engine runs (while validating or queueing) exits 130; nothing was sent."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is KeyboardInterrupt:
            from bulksend import output

            output.error("interrupted before sending; nothing was sent. Run the same command again to start.")
            raise typer.Exit(130)
        return False


def _require_confirmation_or_yes(confirmed: bool, with_yes: str, *, rehearse: str | None = None) -> None:
    """Refuse to ask nobody: off a terminal, ``--yes`` is required; ``with_yes`` is the command that has it."""
    from bulksend import output
    from bulksend.errors import InputError

    if not confirmed and not output.is_terminal():
        raise InputError(
            f"not on a terminal, so nobody can confirm this send. To send without asking: {with_yes}",
            hint=f"Rehearse first, sending nothing: {rehearse}" if rehearse else None,
        )


def _show_plan(prepared: "Prepared", *, quiet: bool) -> None:
    """The estimate and the balance, on stderr, before the question."""
    from bulksend import output

    if prepared.status == "new" and prepared.estimate is not None:  # warnings, even when quiet
        from bulksend.commands.render import compliance_warnings

        compliance_warnings(prepared.estimate.table.plan)
    if quiet:
        return
    name = prepared.name
    via = f"{prepared.channel} via {prepared.provider_name}"
    if prepared.status == "done":
        return
    if prepared.status == "cancelled":
        return
    if prepared.status == "new":
        est = prepared.estimate
        assert est is not None
        table = est.table
        if table.csv.encoding_note:
            output.warn(table.csv.encoding_note)
        if table.options.assume_consent and table.columns.consent is None:
            output.note(f"No consent column: consent assumed for every row ({table.options.assume_consent!r}).")
        unit = "segments" if est.channel == "sms" else "messages"
        line = f"{name}: {est.recipients:,} recipients · {est.segments:,} {unit} · {est.credits:,} credits ({via})"
        if table.rejected:
            reasons = ", ".join(f"{code} {n:,}" for code, n in table.reasons().items())
            line += f"; {table.rejected:,} rows rejected ({reasons})"
        output.note(line)
        from bulksend.commands.render import content_lines, footer_line, preview_lines

        for text in preview_lines(table_previews(est)):
            output.note(text)
        for text in [footer_line(table.plan), *content_lines(table)]:
            if text:
                output.note(text)
    else:
        unknown = prepared.counts.get("unknown", 0) + prepared.counts.get("sending", 0)
        done = prepared.counts.get("sent", 0) + prepared.counts.get("delivered", 0) + prepared.counts.get(
            "undelivered", 0
        )
        line = (
            f"{name}: resuming — {prepared.messages:,} messages left ({prepared.credits:,} credits, {via}); "
            f"{done:,} already sent"
        )
        if unknown:
            line += f"; {unknown:,} with an unknown outcome are looked up first"
        output.note(line)
    after = prepared.available - prepared.credits
    output.note(
        f"Balance: {prepared.available:,} {prepared.channel} credits available; {after:,} after this campaign."
    )
    if prepared.limit is not None:
        output.note(f"Canary: only {min(prepared.limit, prepared.messages):,} messages will be sent now.")


def table_previews(estimate) -> list:
    """The messages previewed for a new campaign (none when resuming: the list is not read again)."""
    return estimate.report.previews if estimate is not None else []


def _confirm(prepared: "Prepared", yes: bool) -> None:
    if yes:
        return
    count = prepared.messages if prepared.limit is None else min(prepared.limit, prepared.messages)
    if not typer.confirm(f"Send {count:,} messages now?", default=False, err=True):
        from bulksend import output

        output.note("Nothing was sent.")
        raise typer.Exit(0)


def _execute(prepared: "Prepared", *, quiet: bool, wait: bool = False) -> "SendReport":
    from bulksend.campaign_run import execute, stop_on_signals

    total = prepared.messages if prepared.limit is None else min(prepared.limit, prepared.messages)
    with SendProgress(prepared.name, total, quiet=quiet) as progress, stop_on_signals() as stop:
        return execute(prepared, progress=progress, stop=stop, wait=wait)


class SendProgress:
    """Progress on stderr: a live rich line on a terminal (count and ETA kept at any width), else one
    timestamped plain line at most every ``interval`` seconds of ``clock`` (a cron log, not a flood)."""

    def __init__(
        self,
        name: str,
        total: int,
        *,
        quiet: bool,
        clock: Callable[[], float] = time.time,
        interval: float | None = None,
    ) -> None:
        from bulksend import output
        from bulksend.commands.progress import LOG_INTERVAL, Throttle

        self.name = name
        self.total = total
        self.quiet = quiet
        self.clock = clock
        self.live = not quiet and output.stderr().is_terminal
        self._throttle = Throttle(LOG_INTERVAL if interval is None else interval, clock)
        self._progress = None
        self._task = None

    def __enter__(self) -> "SendProgress":
        if self.live:
            from bulksend import output
            from bulksend.commands.progress import make_progress

            self._progress = make_progress(output.stderr())
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total or None, detail="starting…")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @staticmethod
    def detail(stats: "RunStats") -> str:
        parts = [f"sent {stats.sent:,}", f"failed {stats.failed:,}", f"retrying {len(stats.retrying):,}"]
        if stats.unknown:
            parts.append(f"unknown {stats.unknown - stats.found - stats.not_found:,}")
        parts.append(f"{stats.per_second:,.0f}/s")
        parts.append(f"{stats.credits:,} credits")
        return " · ".join(parts)

    def remaining(self, stats: "RunStats") -> float | None:
        """Seconds left at the run's rate of work (None until there is a rate)."""
        done = stats.finished
        if stats.per_second > 0 and self.total > done:
            return (self.total - done) / stats.per_second
        return None

    def __call__(self, stats: "RunStats") -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.update(
                self._task, completed=stats.finished, detail=self.detail(stats), eta=self.remaining(stats)
            )
            return
        if not self._throttle.ready():
            return
        from bulksend import output

        left = self.remaining(stats)
        eta = f" · ETA {_duration(left)}" if left is not None else ""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        output.note(f"{stamp} {self.name}: {stats.finished:,}/{self.total:,} · {self.detail(stats)}{eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _finish_dry_run(prepared: "Prepared", path: Path, *, json_output: bool, next_command: str) -> None:
    from bulksend import output
    from bulksend.campaign_run import dry_run

    if prepared.status in ("done", "cancelled"):
        report = _execute(prepared, quiet=True)  # nothing runs for these: it only reads the ledger
        _finish(report, json_output=json_output, path=path)
        return
    _show_plan(prepared, quiet=json_output)
    result: DryRunReport = dry_run(prepared)
    if json_output:
        examples = [p.as_json() for p in table_previews(prepared.estimate)]
        output.emit_json({**result.as_json(), "examples": examples, "next": next_command})
        return
    out = output.stdout()
    out.print(
        f"Dry run of {prepared.name!r}: {result.messages:,} messages would be sent now "
        f"({result.credits:,} {result.channel} credits of {result.available:,} available).",
        markup=False,
    )
    if result.suppressed:
        out.print(f"{result.suppressed:,} queued numbers are on the opt-out list now: they would not be sent.",
                  markup=False)
    if result.unknown:
        out.print(f"{result.unknown:,} messages with an unknown outcome would be looked up first.", markup=False)
    if result.waiting:
        out.print(f"{result.waiting:,} of them are not due yet (quiet hours or a send time): a run now would send "
                  "the others and wait; each one's \"due\" in the file says when.", markup=False)
    out.print(f"Wrote every message to {result.path}", markup=False)
    out.print("Nothing was sent, nothing was debited, and the ledger is unchanged.", markup=False)
    out.print(f"To send it: {next_command}", markup=False)


def _finish(report: "SendReport", *, json_output: bool, path: Path | None = None) -> None:
    from bulksend import output

    if json_output:
        output.emit_json(report.as_json())
    else:
        render_summary(report)
    if report.exit_code:
        raise typer.Exit(int(report.exit_code))


def render_summary(report: "SendReport") -> None:
    """The final summary on stdout: counts by state, failures by code, credits, and the next command."""
    from bulksend import output
    from bulksend.engine import StopReason

    out = output.stdout()
    c = report.campaign
    line = lambda text: out.print(text, markup=False, highlight=False)  # noqa: E731
    if report.status == "done":
        line(f"Campaign {c.name!r} is done: nothing left to send.")
    elif report.status == "cancelled":
        line(f"Campaign {c.name!r} was cancelled: nothing is sent for it any more.")
    else:
        line(f"Campaign {c.name!r} (#{c.id}, {c.channel} via {c.provider}): {report.state}")
    order = ("sent", "delivered", "undelivered", "failed", "unknown", "queued", "sending")
    counts = "  ".join(f"{s} {report.counts[s]:,}" for s in order if report.counts.get(s))
    line(f"  {counts or 'no messages'}")
    if report.failures:
        failures = ", ".join(f"{code or 'no code'} ×{n:,}" for code, n in report.failures.items())
        line(f"  failures by code: {failures}")
    credits = f"  credits: {report.credits_debited:,} debited, {report.credits_refunded:,} refunded"
    if report.released:
        credits += f"; {report.released:,} held credits released"
    line(credits)
    result = report.result
    if result is not None:
        stats = result.stats
        this_run = f"  this run: {stats.sent:,} sent, {stats.failed:,} failed"
        if stats.retried:
            this_run += f", {stats.retried:,} retries"
        if stats.found or stats.not_found:
            this_run += f", {stats.found:,} unknown found sent, {stats.not_found:,} not found"
        this_run += f" in {_duration(stats.elapsed)}"
        if stats.waited >= 1:
            this_run += f", {_duration(stats.waited)} of it waiting to look up or retry"
        this_run += f" ({stats.per_second:,.0f} requests/s)"
        line(this_run)
        if result.reason is StopReason.FATAL and result.fatal is not None:
            line(f"Stopped: the provider refused with {result.fatal.code}: {result.fatal.text}. "
                 "The rest stays queued; fix the cause, then resume.")
        elif result.reason is StopReason.BREAKER and result.tripped_by is not None:
            line(f"Stopped by the circuit breaker after repeated failures (last: {result.tripped_by.code}: "
                 f"{result.tripped_by.text}). The rest stays queued.")
        elif result.reason is StopReason.INTERRUPTED:
            line("Interrupted: what was in flight is recorded; the rest stays queued.")
        elif result.reason is StopReason.WAITING and result.next_due is not None:
            if stats.deferred:
                line(f"  {stats.deferred:,} deferred at send time: quiet hours in the recipient's time zone.")
            line(f"{report.counts.get('queued', 0):,} messages wait until {result.next_due:%Y-%m-%d %H:%M:%S} UTC "
                 "(quiet hours, a send time or a retry); their credits stay held. Run the same command again "
                 "after that (a cron line does), or add --wait.")
        elif result.reason is StopReason.LIMIT:
            line(f"Canary of {report.limit:,} done; {report.counts.get('queued', 0):,} messages stay queued.")
    if report.counts.get("unknown"):
        line(f"{report.counts['unknown']:,} messages have an unknown outcome: reconcile them before deciding.")
    line(f"Next: {report.next_command()}")


def _only_row(report: "SendReport"):
    return report.rows[0] if report.rows else None


def _one_line(report: "SendReport") -> None:
    from bulksend import output

    row = _only_row(report)
    out = output.stdout()
    if row is None:  # pragma: no cover - a one-row campaign always has its row
        render_summary(report)
        return
    via = f"{report.campaign.channel} via {report.campaign.provider}"
    if row.state == "sent":
        out.print(
            f"Sent to {row.e164} ({via}, id {row.provider_id or '-'}): {row.units} "
            f"{'segment' if row.units == 1 else 'segments'}, {row.debited} credits.",
            markup=False,
        )
    elif row.state == "failed":
        out.print(f"Not sent to {row.e164}: {row.error_code}: {row.error_text}", markup=False)
    elif row.state == "unknown":
        out.print(
            f"Unknown whether {row.e164} got it ({row.error_code}: {row.error_text}). "
            f"Next: {report.next_command()}",
            markup=False,
        )
    else:
        out.print(f"{row.e164}: {row.state} ({row.error_code or ''} {row.error_text or ''}). "
                  f"Next: {report.next_command()}", markup=False)
