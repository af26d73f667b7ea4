"""``bulksend campaigns``: list, show, resume, cancel and reconcile the campaigns in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bulksend.commands import send as sending
from bulksend.commands.options import JsonOutput

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.campaign_status import CampaignStatus

app = typer.Typer(
    help="Campaigns in the ledger: list, show, resume, cancel, reconcile, refresh, export, report.",
    no_args_is_help=True,
)

CampaignId = Annotated[str, typer.Argument(metavar="ID", help="The campaign's id or name.", show_default=False)]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


def _counts(status: "CampaignStatus") -> str:
    order = ("sent", "delivered", "undelivered", "failed", "unknown", "queued", "sending")
    return "  ".join(f"{s} {status.counts[s]:,}" for s in order if status.counts.get(s)) or "no messages"


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """List every campaign with its state and its messages by state.

    Example: bulksend campaigns list --json
    """
    from bulksend import output
    from bulksend.campaign_status import list_campaigns

    statuses = list_campaigns(ctx.obj.config())
    if json_output:
        output.emit_json({"campaigns": [s.as_json() for s in statuses]})
        return
    if not statuses:
        _line(f"No campaigns yet. To start one, see: {ctx.obj.invocation.help('send')}")
        return
    header = ("id", "name", "state", "via", "sent", "failed", "unknown", "queued", "credits", "started")
    rows = [header]
    for s in statuses:
        c, n = s.campaign, s.counts
        sent = n.get("sent", 0) + n.get("delivered", 0) + n.get("undelivered", 0)
        rows.append((
            str(c.id), c.name, c.state, f"{c.channel}/{c.provider}", f"{sent:,}", f"{n.get('failed', 0):,}",
            f"{n.get('unknown', 0) + n.get('sending', 0):,}", f"{n.get('queued', 0):,}", f"{s.credits_debited:,}",
            c.created_at[:10],
        ))
    # Plain aligned columns: a name is never cut, whatever the width of the terminal (or of no terminal).
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = {1, 2, 3, 9}
    for row in rows:
        cells = [cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        _line("  ".join(cells).rstrip())


@app.command("show")
def show(ctx: typer.Context, campaign: CampaignId, json_output: JsonOutput = False) -> None:
    """Show one campaign: messages by state, failures by code, credits, and what to do next.

    Example: bulksend campaigns show spring-sale
    """
    from bulksend import output
    from bulksend.reports import breakdown

    shown = breakdown(ctx.obj.config(), campaign)
    status = shown.status
    if json_output:
        doc = status.as_json()
        doc["delivery"] = shown.delivery.as_json()
        doc["failures_explained"] = [group.as_json() for group in shown.failures]
        doc["next_due"] = f"{shown.next_due:%Y-%m-%dT%H:%M:%SZ}" if shown.next_due else None
        output.emit_json(doc)
        return
    c = status.campaign
    _line(f"Campaign {c.name!r} (#{c.id}): {c.state}")
    _line(f"  {c.channel} via {c.provider}, started {c.created_at}")
    if status.settings.get("source"):
        _line(f"  from {status.settings['source']}")
    if status.settings.get("sender"):
        _line(f"  sender: {status.settings['sender']}")
    if c.attestation:
        _line(f"  consent attested: {c.attestation}")
    if status.settings.get("purpose"):
        footer = status.settings.get("footer")
        _line(f"  purpose: {status.settings['purpose']}" + (f"; opt-out footer {footer!r}" if footer else ""))
    if status.settings.get("allow_content"):
        _line(f"  content allowed despite findings: {', '.join(status.settings['allow_content'])}")
    _line(f"  {status.total:,} messages: {_counts(status)}")
    if shown.next_due:
        _line(f"  {status.counts['queued']:,} queued; the first is due at {shown.next_due:%Y-%m-%d %H:%M:%S} UTC "
              "(quiet hours, a send time or a retry)")
    d = shown.delivery
    if d.accepted:
        _line(f"  delivery: {d.delivered:,} delivered, {d.undelivered:,} undelivered, {d.awaiting:,} awaiting a "
              f"receipt (of {d.accepted:,} accepted)")
    if shown.failures:
        _line("  failures by code:")
        for group in shown.failures:
            meaning = f": {group.meaning}" if group.meaning else ""
            _line(f"    {group.code or 'no code'} ×{group.count:,} ({group.state}){meaning}")
    held = f"; {status.held:,} held" if status.held else ""
    _line(f"  credits: {status.credits_debited:,} debited, {status.credits_refunded:,} refunded{held}")
    nxt = status.next_command()
    if nxt:
        _line(f"Next: {nxt}")


@app.command("resume")
def resume(
    ctx: typer.Context,
    campaign: CampaignId,
    yes: sending.Yes = False,
    limit: sending.Limit = None,
    rate: sending.Rate = None,
    concurrency: sending.Concurrency = None,
    batch_size: sending.BatchSize = None,
    max_attempts: sending.MaxAttempts = None,
    retry_unknown: sending.RetryUnknown = False,
    quiet: sending.Quiet = False,
    json_output: JsonOutput = False,
) -> None:
    """Send what is left of a campaign, from the ledger alone (the CSV is not needed any more).

    It uses the provider and settings the campaign was started with; flags override them for this run.

    Example, from cron: bulksend campaigns resume spring-sale --yes
    """
    from bulksend.campaign_file import RunOptions
    from bulksend.campaign_run import prepare_resume

    sending._require_confirmation_or_yes(yes, ctx.obj.invocation.resume(campaign, ctx.params))
    run = RunOptions(None, rate, concurrency, batch_size, max_attempts, retry_unknown)
    with sending._interrupts_exit_130():
        with prepare_resume(ctx.obj.config(), campaign, run, limit=limit) as prepared:
            sending._show_plan(prepared, quiet=quiet and yes)
            if prepared.status not in ("done", "cancelled"):
                sending._confirm(prepared, yes)
            report = sending._execute(prepared, quiet=quiet or prepared.status in ("done", "cancelled"))
    sending._finish(report, json_output=json_output)


@app.command("cancel")
def cancel(ctx: typer.Context, campaign: CampaignId, json_output: JsonOutput = False) -> None:
    """Cancel a campaign: messages still queued are never sent, and its credit hold is released.

    Messages already sent stay sent (and debited). A campaign being sent right now from this home
    cannot be cancelled (exit 5): stop that run first. On a shared (PostgreSQL) ledger, a sender of
    another home stops once what it has in flight is recorded.

    Example: bulksend campaigns cancel spring-sale
    """
    from bulksend import output
    from bulksend.campaign_run import cancel_campaign

    report = cancel_campaign(ctx.obj.config(), campaign)
    status = report.status
    if json_output:
        doc = status.as_json()
        doc["released"] = report.released
        doc["changed"] = report.already is None
        output.emit_json(doc)
        return
    c = status.campaign
    if report.already:
        _line(f"Campaign {c.name!r} is already {report.already}; nothing changed.")
        return
    queued = status.counts.get("queued", 0)
    _line(f"Cancelled {c.name!r}: {queued:,} queued messages will never be sent; {report.released:,} held "
          "credits released.")
    _line(f"  {_counts(status)}")
    if status.counts.get("unknown"):
        _line(f"Next: {status.hints.reconcile(c.name)}   ({status.counts['unknown']:,} outcomes unknown)")


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    campaign: CampaignId,
    assume: Annotated[
        str | None,
        typer.Option(
            "--assume",
            metavar="sent|failed|queued",
            help="For messages the provider cannot tell about: count them as sent (and debit), give them up "
            "as failed, or queue them to be sent again (risking a duplicate).",
        ),
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Find out what happened to messages whose outcome is unknown, by asking the provider.

    Found ones become sent (and are debited); ones the provider does not have go back to the queue
    for the next run; the rest stay unknown until you decide with --assume. Exit 4 while any remain.

    Example: bulksend campaigns reconcile spring-sale
    """
    from bulksend import output
    from bulksend.campaign_run import reconcile as run_reconcile

    report = run_reconcile(ctx.obj.config(), campaign, assume=assume)
    status = report.status
    if json_output:
        doc = status.as_json()
        doc["reconciled"] = report.as_json()
        output.emit_json(doc)
    else:
        if report.recovered:
            _line(f"{report.recovered:,} messages left in flight by an interrupted run are now unknown.")
        _line(report.summary())
        _line(f"  {_counts(status)}")
        if status.counts.get("unknown"):
            _line(
                f"{status.counts['unknown']:,} still unknown. Decide with --assume sent|failed|queued, "
                "or try again later."
            )
        nxt = status.next_command()
        if nxt:
            _line(f"Next: {nxt}")
    if report.exit_code:
        raise typer.Exit(int(report.exit_code))


# -- after the send: receipts by polling, the export, the report (docs/reports.md) ----------------------


@app.command("refresh")
def refresh(ctx: typer.Context, campaign: CampaignId, json_output: JsonOutput = False) -> None:
    """Ask the provider what became of every accepted message that has no delivery receipt yet.

    Works with providers that can look a message up (twilio), at the profile's rate. Final answers are
    recorded as they come (delivered / undelivered): Ctrl-C keeps them, and running it again asks only
    about what is left. Other providers send receipts to `bulksend webhooks serve` instead.

    Example: bulksend campaigns refresh spring-sale
    """
    import time

    from bulksend import output
    from bulksend.campaign_run import stop_on_signals
    from bulksend.refresh import refresh as run_refresh

    last = [time.monotonic()]

    def progress(report) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            output.note(f"asked about {report.asked:,}: {report.delivered:,} delivered, "
                        f"{report.undelivered:,} undelivered, {report.pending:,} not final yet")

    with stop_on_signals() as stop:
        report = run_refresh(ctx.obj.config(), campaign, stop=stop, progress=progress)
    if json_output:
        output.emit_json(report.as_json())
    elif report.provider_type == "outbox":
        _line(f"Campaign {report.campaign!r} was written to the outbox: no provider delivers it, so no receipt "
              "will ever come. Nothing to refresh.")
    elif not report.can_fetch_status:
        _line(f"Campaign {report.campaign!r} was sent with {report.provider!r} ({report.provider_type}), which "
              "cannot be asked for delivery status: its receipts arrive by webhook.")
        _line("Run `bulksend webhooks serve` where the provider can reach it (docs/reports.md).")
    else:
        _line(f"Campaign {report.campaign!r}: asked about {report.asked:,}: {report.delivered:,} delivered, "
              f"{report.undelivered:,} undelivered ({report.refunded:,} refunded), {report.pending:,} not final yet, "
              f"{report.cannot_tell:,} the provider could not tell.")
        if report.interrupted:
            _line(f"Interrupted: {report.awaiting:,} still await a receipt; run it again to continue.")
        elif report.awaiting:
            _line(f"{report.awaiting:,} still await a receipt; run it again later.")
    if report.interrupted:
        raise typer.Exit(130)


@app.command("export")
def export(
    ctx: typer.Context,
    campaign: CampaignId,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE (default: stdout).", show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="A JSON document {campaign, columns, rows} instead of CSV.")
    ] = False,
) -> None:
    """One row per recipient: state, provider id, error code and its meaning, credits, times.

    CSV (spreadsheet-safe) by default, or JSON with --json; to stdout, or to --output FILE.

    Example: bulksend campaigns export spring-sale --output spring-sale.csv
    """
    import sys

    from bulksend import output
    from bulksend.reports import export_campaign

    if output_file is None and not json_output:
        try:  # the CSV's CR LF line ends go out as written (no newline translation, e.g. on Windows)
            sys.stdout.reconfigure(newline="")
        except (AttributeError, ValueError):
            pass
    result = export_campaign(ctx.obj.config(), campaign, output=output_file, as_json=json_output, stdout=sys.stdout)
    if result.output is not None:
        output.note(f"Wrote {result.rows:,} rows of {result.campaign!r} to {result.output}.")


@app.command("report")
def report(
    ctx: typer.Context,
    campaign: CampaignId,
    html_file: Annotated[
        Path,
        typer.Option("--html", metavar="FILE", help="The HTML file to write.", show_default=False),
    ],
    json_output: JsonOutput = False,
) -> None:
    """Write a one-file HTML report with charts: delivery funnel, failures and their meaning, countries,
    sends and deliveries over time, credits. It opens offline and shares as one file.

    Example: bulksend campaigns report spring-sale --html spring-sale.html
    """
    from bulksend import output
    from bulksend.reports import report_campaign

    result = report_campaign(ctx.obj.config(), campaign, html=html_file)
    if json_output:
        output.emit_json({"campaign": result.campaign, "html": str(result.html), "bytes": result.bytes,
                          "charts": result.charts})
        return
    _line(f"Wrote the report of {result.campaign!r} to {result.html} ({result.charts} charts).")
