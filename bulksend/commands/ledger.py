"""``bulksend ledger``: back up, check, restore and adopt the ledger (see docs/ledger.md, "Backup and recovery");
migrate its schema and copy it to a server (``ledger_admin.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput

app = typer.Typer(
    help="The ledger itself: backup, check, restore, adopt; migrate its schema, copy it to a server.",
    no_args_is_help=True,
)

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it: this changes which ledger the home uses.")]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


@app.command("backup")
def backup(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Argument(metavar="FILE", help="The backup file, or a directory for a dated file in it.")
    ],
    json_output: JsonOutput = False,
) -> None:
    """Write a consistent copy of the ledger, even while campaigns are sending (owner-only file).

    Example (cron, nightly): 15 2 * * * bulksend ledger backup /var/backups/bulksend/
    """
    from bulksend import ledger_care, output

    written = ledger_care.backup(ctx.obj.config(), target)
    if json_output:
        output.emit_json({"backup": str(written)})
    else:
        _line(f"Backed up the ledger to {written}")
        inv = ctx.obj.invocation
        output.note(f"Check it with: {inv.ledger_check()}; restore it with: {inv.ledger_restore(written)}")


@app.command("check")
def check(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Check the ledger's integrity, its credit audit, and that it is this home's ledger; exit 1 on any problem.

    Example (cron, hourly): 0 * * * * bulksend ledger check --json > /dev/null || mail -s bulksend ops
    """
    from bulksend import ledger_care, output
    from bulksend.errors import LedgerError

    report = ledger_care.check(ctx.obj.config())
    if json_output:
        output.emit_json(report.as_json())
    elif report.state != "present" and report.ok:
        _line(f"No ledger yet at {report.location}.")
    elif report.ok:
        mark = report.high_water
        _line(f"ok: {report.location} (ledger {report.ledger_id}; campaigns {mark.campaigns:,}, transmissions "
              f"{mark.transmissions:,}, movements {mark.movements:,}): integrity ok, audit consistent, this home's ledger.")
    else:
        for problem in report.problems:
            _line(problem)
    if not report.ok:
        n = len(report.problems)
        raise LedgerError(
            f"{report.location}: {n} problem{'s' if n != 1 else ''} found.",
            hint='See docs/ledger.md, "Backup and recovery".',
        )


@app.command("restore")
def restore(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(metavar="FILE", help="A file written by bulksend ledger backup.")],
    yes: Yes = False,
    json_output: JsonOutput = False,
) -> None:
    """Replace the ledger with a backup (the current one is kept beside it); refused while a run holds a lock.

    Example: bulksend ledger restore /var/backups/bulksend/ledger-20261130T021500Z.db --yes
    """
    from bulksend import ledger_care, output
    from bulksend.errors import InputError

    if not yes:
        raise InputError(f"ledger restore replaces the ledger: to do it, run: {ctx.obj.invocation.ledger_restore(source)}")
    report = ledger_care.restore(ctx.obj.config(), source)
    if json_output:
        output.emit_json({"restored": str(report.source), "previous": str(report.aside) if report.aside else None,
                          "check": report.check.as_json()})
    else:
        _line(f"Restored the ledger from {report.source}.")
        if report.aside:
            _line(f"The ledger it replaced is kept as {report.aside}.")
        for problem in report.check.problems:
            _line(problem)
    if not report.check.ok:
        output.warn("the restored ledger is behind or not this home's: writing commands refuse it until you accept "
                    f"it with: {ctx.obj.invocation.ledger_adopt()} (work recorded after the backup may then be done "
                    "again).")


@app.command("adopt")
def adopt(ctx: typer.Context, yes: Yes = False, json_output: JsonOutput = False) -> None:
    """Accept the ledger as it is (or start a new, empty one) as this home's ledger.

    Use after restoring an older backup, or to start afresh on purpose: campaigns and messages recorded
    only in the lost ledger may then be sent again. Attempt journals are moved aside.

    Example: bulksend ledger adopt --yes
    """
    from bulksend import ledger_care, output
    from bulksend.errors import InputError

    if not yes:
        raise InputError(
            "ledger adopt makes this home trust the ledger as it is; what only the lost ledger recorded may be "
            f"sent again. To do it, run: {ctx.obj.invocation.ledger_adopt()}",
            hint=f"Restoring the newest backup first ({ctx.obj.invocation.ledger_restore()}) loses the least.",
        )
    report = ledger_care.adopt(ctx.obj.config())
    mark = report.high_water
    if json_output:
        output.emit_json({
            "ledger_id": report.ledger_id, "created": report.created,
            "high_water": {"campaigns": mark.campaigns, "transmissions": mark.transmissions,
                           "movements": mark.movements},
            "previous": report.previous.ledger_id if report.previous else None,
            "journals_moved_to": str(report.journals_moved_to) if report.journals_moved_to else None,
        })
        return
    what = "a new, empty ledger" if report.created else f"ledger {report.ledger_id}"
    _line(f"This home now uses {what} (campaigns up to #{mark.campaigns}, transmissions up to "
          f"#{mark.transmissions}, movements up to #{mark.movements}).")
    if report.previous is not None:
        _line(f"It replaces the record of {report.previous.describe()}.")
    if report.journals_moved_to:
        _line(f"Attempt journals moved to {report.journals_moved_to}.")


def _mount_admin() -> None:
    from bulksend.commands import ledger_admin

    app.command("migrate")(ledger_admin.migrate)
    app.command("copy")(ledger_admin.copy)


_mount_admin()
