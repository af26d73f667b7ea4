"""``bulksend credits``: record purchases, list the movement history, check the ledger's consistency."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from typer.core import TyperCommand

from bulksend.commands.options import Channel, JsonOutput

app = typer.Typer(
    help="Credits: record purchases, list every movement, check the ledger adds up.",
    no_args_is_help=True,
)

OptionalChannel = Annotated[str | None, typer.Option("--channel", help="sms or whatsapp (default: both).")]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


class _TakesNegativeNumbers(TyperCommand):
    """Lets ``-5`` reach the command as a number (Click would read it as an unknown option ``-5``).

    Unknown options are let through only when a negative number is among the arguments, so that a
    mistyped option elsewhere is still reported as "No such option".
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if any(re.fullmatch(r"-\d+", arg) for arg in args):
            ctx.ignore_unknown_options = True
        return super().parse_args(ctx, args)


@app.command("topup", cls=_TakesNegativeNumbers)
def topup(
    ctx: typer.Context,
    amount: Annotated[int, typer.Argument(metavar="N", help="Credits bought (a whole number).", show_default=False)],
    channel: Channel,
    on: Annotated[
        str | None,
        typer.Option("--date", metavar="YYYY-MM-DD", help="Purchase (invoice) date, if not today; never in the future."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Your reference (invoice number); a reference is used once.")
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Record a purchase of N credits, valid for one year from its date.

    It brings every unexpired credit of the channel forward to its own expiry. Minimums: 1000 SMS,
    5000 WhatsApp (config.toml \\[credits] min_topup_sms, min_topup_whatsapp).

    Example: bulksend credits topup 10000 --channel sms --date 2026-11-20 --ref INV-2026-118
    """
    from bulksend import credits, output

    config = ctx.obj.config()
    result = credits.topup(config, amount, channel, credits.parse_date(on, "--date") if on else None, ref)
    lot = result.lot
    after = credits.balance(config, lot.channel)[lot.channel]
    if json_output:
        output.emit_json(
            {
                "channel": lot.channel,
                "amount": lot.amount,
                "lot": lot.id,
                "purchased_on": lot.purchased_on.isoformat(),
                "expires_at": lot.expires_on.isoformat(),
                "ref": lot.ref,
                "brought_forward": result.brought_forward,
                "reinstated": result.reinstated,
                "available": after.available,
            }
        )
        return
    _line(f"Recorded {lot.amount} {lot.channel} credits bought on {lot.purchased_on}, expiring {lot.expires_on}.")
    if result.brought_forward:
        _line(f"Brought {result.brought_forward} credits forward to {lot.expires_on}.")
    if result.reinstated:
        _line(f"({result.reinstated} of them had expired after {lot.purchased_on} and are back.)")
    _line(f"{lot.channel}: {after.available} available.")


@app.command("history")
def history(
    ctx: typer.Context,
    channel: OptionalChannel = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="Only movements on or after this date.")
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """List every credit movement, newest first: top-ups, debits, refunds, holds, releases, expiries.

    Dates are days in the ledger's own time zone (--json: "timezone").

    Example: bulksend credits history --channel whatsapp --since 2026-01-01
    """
    from bulksend import credits, output

    config = ctx.obj.config()
    movements = credits.history(config, channel, credits.parse_date(since, "--since") if since else None)
    if json_output:
        output.emit_json(
            {
                "timezone": credits.ledger_zone(config),  # the zone every "date" below is a day in
                "movements": [
                    {
                        "id": m.id,
                        "date": m.on.isoformat(),
                        "kind": m.kind,
                        "channel": m.channel,
                        "amount": m.amount,
                        "change": m.change,
                        "lot": m.lot_id,
                        "campaign": m.campaign_id,
                        "transmission": m.transmission_id,
                        "ref": m.ref,
                        "note": m.note,
                        "recorded_at": m.recorded_at,
                    }
                    for m in movements
                ]
            }
        )
        return
    if not movements:
        config = ctx.obj.config()
        first = (channel or "sms").strip().lower()
        hint = config.invocation.topup(credits.minimum_topup(config, first), first)
        output.note(f"No credit movements yet. Record a purchase (the smallest allowed) with: {hint}")
        return
    for m in movements:
        shown = f"{m.change:+d}" if m.kind not in ("hold", "release") else str(m.amount)
        details = []
        if m.transmission_id is not None:
            details.append(f"transmission {m.transmission_id}")
        elif m.campaign_id is not None:
            details.append(f"campaign {m.campaign_id}")
        if m.ref:
            details.append(f"ref {m.ref}")
        if m.note:
            details.append(m.note)
        _line(f"{m.on}  {m.kind:<9} {m.channel:<8} {shown:>8}  {' · '.join(details)}".rstrip())


@app.command("audit")
def audit(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Recompute every balance from top-ups, expiries and the transmission log; exit 1 on any difference.

    Example: bulksend credits audit
    """
    from bulksend import credits, output

    report = credits.audit(ctx.obj.config())
    if json_output:
        output.emit_json(
            {"consistent": report.consistent, "differences": list(report.differences), "channels": report.channels}
        )
    elif report.consistent:
        _line("consistent")
    else:
        for difference in report.differences:
            _line(difference)
    credits.require_consistent(report)
