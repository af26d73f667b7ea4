"""The root command, its global options, and main(): the single boundary that maps errors to exit codes."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bulksend import __version__
from bulksend.errors import BulksendError, ExitCode


@dataclass
class AppState:
    """What the root options decide for every command (kept on ``ctx.obj``)."""

    home_option: Path | None = None
    debug: bool = False
    warned: bool = False  # config.toml's warnings are said once per command
    home_flag: bool = False  # --home was given on the command line (not through BULKSEND_HOME)
    ledger_option: str | None = None

    @property
    def home(self) -> Path:
        from bulksend.config import resolve_home

        return resolve_home(self.home_option)

    @property
    def invocation(self):
        """What the commands this run suggests must repeat (see bulksend/hints.py)."""
        from bulksend.hints import Invocation

        from bulksend.stores.base import scrub_url

        ledger = self.ledger_option.strip() if self.ledger_option else None
        return Invocation(
            home=str(self.home_option) if self.home_flag and self.home_option else None,
            ledger=ledger if ledger and scrub_url(ledger) == ledger else None,  # a password stays out of hints
        )

    def config(self):
        from dataclasses import replace

        from bulksend.config import Config

        config = replace(Config.load(self.home, ledger_url=self.ledger_option), invocation=self.invocation)
        if config.warnings and not self.warned:
            from bulksend import output

            self.warned = True
            for warning in config.warnings:
                output.warn(f"{config.home / 'config.toml'}: {warning}")
        return config


# Typer's own control flow (usage errors, --help, typer.Exit) passes through the boundary untouched.
# Typer >= 0.26 vendors Click; its usage errors derive from typer.TyperException. A closed pipe
# (`bulksend … | head`) is Typer's to handle too: it silences the stream and exits 1.
_PASS_THROUGH = (typer.TyperException, typer.Exit, typer.Abort, BrokenPipeError)


class BulksendGroup(TyperGroup):
    """Turns domain errors into one line on stderr and the brief's exit code.

    ``--debug`` adds the traceback on stderr and changes nothing else: the same message, the same exit
    code, the same stdout (a monitoring probe run with --debug must still see exit 3).
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BulksendError as exc:
            from bulksend import output

            if _debugging(ctx):
                _print_traceback()
            output.error(exc.message, exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        except _PASS_THROUGH:
            raise
        except Exception as exc:  # a bug: say so plainly, never dress it up as a user error
            from bulksend import output

            if _debugging(ctx):
                _print_traceback()

            output.error(
                f"unexpected {type(exc).__name__} — this is a bug in bulksend.",
                "Run the same command with --debug for the traceback, and report it.",
            )
            raise typer.Exit(int(ExitCode.ERROR)) from None
        finally:
            from bulksend import hints

            hints.use(None)  # the next command (in the same process, as in tests) says how it was started


def _print_traceback() -> None:
    import traceback

    sys.stderr.write(traceback.format_exc())
    sys.stderr.flush()


def _debugging(ctx: typer.Context) -> bool:
    state = ctx.find_root().obj
    return bool(getattr(state, "debug", False))


app = typer.Typer(
    cls=BulksendGroup,
    name="bulksend",
    help="Bulk SMS and WhatsApp campaigns from a CSV: validated, priced, sent once, accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # costs `balance --json` under 10 ms (bench/completion_bench.py, README.md)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"bulksend {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="BULKSEND_HOME",
            help="Where the config, ledger, locks and outbox live (default: the platform's user data dir).",
            file_okay=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Also print the traceback of an error (exit codes and output stay the same).")] = False,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            metavar="URL",
            help="The ledger server, e.g. postgresql://host/db (default: $BULKSEND_LEDGER_URL, [ledger] url, "
            "else ledger.db in the home).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """bulksend: check a recipient list, price it, send it once, and keep the books."""
    source = ctx.get_parameter_source("home")
    ctx.obj = AppState(
        home_option=home, debug=debug, home_flag=getattr(source, "name", "") == "COMMANDLINE",
        ledger_option=ledger,
    )
    from bulksend import hints

    hints.use(ctx.obj.invocation)  # for the hints of code that has no Config at hand


def _register() -> None:
    """Mount every command. Command modules import their heavy dependencies lazily, inside the command."""
    from bulksend.commands import estimate, validate

    app.command("validate")(validate.validate)
    app.command("estimate")(estimate.estimate)

    from bulksend.commands import balance, credits, optout

    app.command("balance")(balance.balance)
    app.add_typer(credits.app, name="credits")
    app.add_typer(optout.app, name="optout")

    from bulksend.commands import provider

    app.add_typer(provider.app, name="provider")

    from bulksend.commands import campaigns, send

    app.command("send")(send.send)
    app.command("send-one")(send.send_one)
    app.add_typer(campaigns.app, name="campaigns")

    from bulksend.commands import config

    app.add_typer(config.app, name="config")

    from bulksend.commands import ledger

    app.add_typer(ledger.app, name="ledger")

    from bulksend.commands import webhooks

    app.add_typer(webhooks.app, name="webhooks")


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(standalone_mode=True))  # pragma: no cover - typer exits itself
