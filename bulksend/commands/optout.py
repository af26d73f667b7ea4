"""``bulksend optout``: the opt-out (suppression) list shared by every campaign and provider."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput, Region

app = typer.Typer(
    help="The opt-out list: numbers no campaign, channel or provider will ever message.",
    no_args_is_help=True,
)

Numbers = Annotated[list[str], typer.Argument(metavar="NUMBER...", help="Phone numbers, ideally in +E.164 form.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (kept with each entry).")]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


@app.command("add")
def add(
    ctx: typer.Context, numbers: Numbers, reason: Reason = None, region: Region = None, json_output: JsonOutput = False
) -> None:
    """Add numbers to the opt-out list; an invalid number refuses the whole command.

    Example: bulksend optout add +447700900123 07700900456 --region GB --reason "replied STOP by email"
    """
    from bulksend import optouts, output

    change = optouts.add(ctx.obj.config(), numbers, reason, region)
    if json_output:
        output.emit_json({"added": change.changed, "already_present": change.unchanged})
        return
    for number in change.changed:
        _line(f"{number} added")
    for number in change.unchanged:
        _line(f"{number} already on the list")


@app.command("remove")
def remove(ctx: typer.Context, numbers: Numbers, region: Region = None, json_output: JsonOutput = False) -> None:
    """Take numbers off the opt-out list (only with the person's renewed consent).

    Example: bulksend optout remove +447700900123
    """
    from bulksend import optouts, output

    change = optouts.remove(ctx.obj.config(), numbers, region)
    if json_output:
        output.emit_json({"removed": change.changed, "not_present": change.unchanged})
        return
    for number in change.changed:
        _line(f"{number} removed")
    for number in change.unchanged:
        _line(f"{number} was not on the list")


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """List every opted-out number with when, why and from where it was added.

    Example: bulksend optout list --json
    """
    from bulksend import optouts, output

    entries = optouts.listing(ctx.obj.config())
    if json_output:
        output.emit_json(
            {
                "optouts": [
                    {"e164": e.e164, "added_at": e.added_at, "reason": e.reason, "source": e.source} for e in entries
                ]
            }
        )
        return
    if not entries:
        output.note("The opt-out list is empty.")
    for e in entries:
        _line(f"{e.e164}  {e.added_at}  {e.source}  {e.reason or ''}".rstrip())


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A CSV with a phone column, or one number a line.")],
    region: Region = None,
    reason: Reason = None,
    json_output: JsonOutput = False,
) -> None:
    """Import numbers from a CSV (its phone-like column) or a plain list; report added, present, invalid.

    Example: bulksend optout import unsubscribed.csv --region GB --reason "old CRM export"
    """
    from bulksend import optouts, output

    change = optouts.import_file(ctx.obj.config(), file, region, reason)
    if json_output:
        output.emit_json(
            {
                "added": len(change.changed),
                "already_present": len(change.unchanged),
                "invalid": len(change.invalid),
                "invalid_values": change.invalid,
            }
        )
        return
    for value in change.invalid:
        output.note(f"invalid number skipped: {value}")
    _line(f"{len(change.changed)} added, {len(change.unchanged)} already present, {len(change.invalid)} invalid")
