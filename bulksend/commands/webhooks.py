"""``bulksend webhooks``: receive delivery receipts and replies (STOP → opt-out), and the URLs to give providers."""

from __future__ import annotations

from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput

app = typer.Typer(
    help="Delivery receipts and replies: serve the webhook endpoints, list their URLs, read the replies.",
    no_args_is_help=True,
)

PublicUrl = Annotated[
    str | None,
    typer.Option("--public-url", help="The base URL providers reach this server at (default: [webhooks] public_url)."),
]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port to listen on (0: any free one).")] = 8080,
    public_url: PublicUrl = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Server processes sharing the port (above 1: PostgreSQL ledgers only).",
    )] = 1,
) -> None:
    """Receive signed delivery receipts and inbound replies for every provider profile, until Ctrl-C or SIGTERM.

    Each request is verified (the provider's signature, or a secret token in the URL) and answered only once
    what it carries is in the ledger. Put it behind your HTTPS reverse proxy at the public URL.

    With a PostgreSQL ledger, --workers N runs N processes on the one port (each its own ledger connection),
    for more receipts per second than one process can record.

    Example: bulksend webhooks serve --port 8080 --public-url https://hooks.example.com
    """
    from bulksend import inbound, output

    summary = inbound.serve(ctx.obj.config(), host, port, public_url, workers=workers, announce=output.note,
                            log=output.warn)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)  # the worker that failed said why
    receipts = sum(n for fate, n in summary.fates.items() if not fate.startswith("later_"))
    shares = f" (per worker: {', '.join(map(str, summary.per_worker))})" if summary.per_worker else ""
    output.note(
        f"Stopped. {sum(summary.requests.values())} request(s){shares}, {receipts} receipt(s), {summary.inbound} "
        f"repl(ies), {summary.opt_outs} opt-out(s); {summary.pending} receipt(s) kept for rows not known yet."
    )


@app.command("urls")
def urls(ctx: typer.Context, public_url: PublicUrl = None, json_output: JsonOutput = False) -> None:
    """Print each profile's webhook URL (what to paste into the provider's console) and what verifies it.

    Example: bulksend webhooks urls --public-url https://hooks.example.com --json
    """
    from bulksend import inbound, output

    shown = inbound.webhook_urls(ctx.obj.config(), public_url)
    if json_output:
        output.emit_json(shown)
        return
    for name, entry in shown.items():
        _line(f"{name}: {entry['url']}")
        _line(f"  verified by {entry['verified_by']}")
        if "verify_token" in entry:
            _line(f"  verify token: {entry['verify_token']}")
        if "problem" in entry:
            output.warn(f"{name}: {entry['problem']}")


@app.command("replies")
def replies(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N replies.")] = 50,
    json_output: JsonOutput = False,
) -> None:
    """Show the newest inbound replies (opt-out keywords marked), as `webhooks serve` recorded them.

    Example: bulksend webhooks replies --limit 20
    """
    from bulksend import output
    from bulksend.ledger_guard import open_for_read

    ledger = open_for_read(ctx.obj.config())
    rows = [] if ledger is None else ledger.inbound_messages(limit)
    if ledger is not None:
        ledger.close()
    if json_output:
        output.emit_json({"replies": rows})
        return
    from bulksend.safetext import printable

    for row in rows:
        mark = f" [opt-out: {row['keyword']}]" if row["opt_out"] else ""
        _line(f"{row['received_at']}  {row['profile']}  {row['sender']}: {printable(row['text'])}{mark}")
