"""``bulksend balance``: available and held credits per channel and what expires when (the monitoring probe)."""

from __future__ import annotations

from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput

OptionalChannel = Annotated[str | None, typer.Option("--channel", help="sms or whatsapp (default: both).")]


def balance(
    ctx: typer.Context,
    channel: OptionalChannel = None,
    json_output: JsonOutput = False,
    fail_below: Annotated[
        int | None,
        typer.Option(
            "--fail-below",
            metavar="N",
            help="Exit 3 when the available balance of --channel, else of any channel ever topped up "
            "(every channel if none was), is under N.",
        ),
    ] = None,
) -> None:
    """Show each channel's available and held credits, and what expires when.

    Dates are days in the ledger's own time zone (recorded in it when it was created).

    Example, from a monitoring cron: bulksend balance --channel sms --fail-below 5000
    """
    # Scripts call this in loops: only the ledger's own imports, no rich on the --json path.
    from bulksend import credits, output

    config = ctx.obj.config()
    view = credits.balance_view(config, channel)
    balances = view.balances
    if json_output:
        output.emit_json(
            {
                name: {
                    "available": b.available,
                    "held": b.held,
                    "total": b.total,
                    "expiring": [{"amount": e.amount, "expires_at": e.expires_at.isoformat()} for e in b.expiring],
                }
                for name, b in balances.items()
            }
        )
    else:
        console = output.stdout()
        for b in balances.values():
            console.print(f"{b.channel}: {b.available} available, {b.held} held", markup=False, highlight=False)
            for e in b.expiring:
                console.print(f"  {e.amount} expire on {e.expires_at}", markup=False, highlight=False)
        if any(b.expiring for b in balances.values()):
            console.print(f"Dates are days in the ledger's time zone, {view.zone}.", markup=False, highlight=False)
    if fail_below is not None:
        credits.check_floor({name: b for name, b in balances.items() if name in view.watched}, fail_below)
