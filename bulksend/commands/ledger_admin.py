"""``bulksend ledger migrate`` and ``bulksend ledger copy``: bring a ledger's schema up to date, move it to a server.

Mounted on the ``ledger`` group of commands/ledger.py."""

from __future__ import annotations

from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput


def migrate(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Create the ledger, or bring its schema up to this bulksend's version (safe to run at any time).

    Every command migrates the ledger it opens; run this first when several senders share a server, or
    after an upgrade. Example: bulksend --ledger postgresql://db.internal/bulksend ledger migrate
    """
    from bulksend.ledger import migrate as run_migrate
    from bulksend.ledger_guard import refuse_fresh_start

    config = ctx.obj.config()
    refuse_fresh_start(config)  # a new ledger in a home that shows earlier work could send it all again
    result = run_migrate(config)
    if json_output:
        from bulksend.output import emit_json

        emit_json({"ledger": result.location, "migrations_run": result.ran, "schema": result.version})
    elif result.ran:
        print(f"Migrated the ledger at {result.location} to schema {result.version} ({result.ran} migrations).")
    else:
        print(f"The ledger at {result.location} is up to date (schema {result.version}).")


def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="URL", help="The empty ledger to copy into (postgresql://…).")],
    json_output: JsonOutput = False,
) -> None:
    """Copy this home's ledger into an empty one on a server, ids kept; both sides must pass the audit.

    The copy is one transaction: it is all there or not at all. A target that already holds credits,
    campaigns or opt-outs is refused. Example: bulksend ledger copy --to postgresql://db.internal/bulksend
    """
    from bulksend.ledger import copy_to

    report, source, target = copy_to(ctx.obj.config(), to)
    if json_output:
        from bulksend.output import emit_json

        emit_json({"from": source, "to": target, "rows": report.rows, "consistent": report.target_audit.consistent})
        return
    for table, n in report.rows.items():
        print(f"{table}: {n:,} rows")
    print(f"Copied the ledger at {source} to {target}; the audit passes on both sides.")
    print(f'To use it: set [ledger] url = "{target}" in config.toml (or BULKSEND_LEDGER_URL).')

