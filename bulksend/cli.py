"""The root command, its global options, and main(): the single boundary that maps errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from bulksend import __version__
from bulksend.errors import BulksendError, ExitCode

if TYPE_CHECKING:  # pragma: no cover
    from typer import _click as click  # the Click that Typer vendors (annotations only)


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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the names only: listing them builds nothing

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


#: Every command and group, in the order ``--help`` lists them: its name → (module, attribute). A function is a
#: command, a ``typer.Typer`` a group. A module is imported, and its command built, only when that command is
#: run, or when ``--help`` or shell completion lists them all: ``balance`` never imports ``send``.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("bulksend.commands.validate", "validate"),
    "estimate": ("bulksend.commands.estimate", "estimate"),
    "balance": ("bulksend.commands.balance", "balance"),
    "send": ("bulksend.commands.send", "send"),
    "send-one": ("bulksend.commands.send", "send_one"),
    "credits": ("bulksend.commands.credits", "app"),
    "optout": ("bulksend.commands.optout", "app"),
    "provider": ("bulksend.commands.provider", "app"),
    "campaigns": ("bulksend.commands.campaigns", "app"),
    "config": ("bulksend.commands.config", "app"),
    "ledger": ("bulksend.commands.ledger", "app"),
    "webhooks": ("bulksend.commands.webhooks", "app"),
}


def _build(name: str) -> click.Command:
    """The Click command of ``COMMANDS[name]``, built as ``app.command(name)`` / ``app.add_typer`` would build it."""
    import importlib

    from typer.main import get_command_from_info, get_group_from_info

    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer()  # registers it exactly as the root app would
    settings = {"pretty_exceptions_short": app.pretty_exceptions_short, "rich_markup_mode": app.rich_markup_mode}
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
        return get_group_from_info(holder.registered_groups[0], suggest_commands=app.suggest_commands, **settings)
    holder.command(name)(target)
    return get_command_from_info(holder.registered_commands[0], **settings)


class _Commands(MutableMapping):
    """The root's subcommands: every name known at once, each command built on first use (see ``COMMANDS``)."""

    def __init__(self, built: MutableMapping[str, click.Command]) -> None:
        self._built = dict(built)  # commands registered on the app itself (tests add some)
        self._names = [*self._built, *(n for n in COMMANDS if n not in self._built)]

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = _build(name)
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command
        if name not in self._names:
            self._names.append(name)

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


def main() -> None:
    """Console-script entry point."""
    import gc
    import os

    # numpy's OpenBLAS starts a thread per core when numpy is imported; bulksend does no linear algebra, and
    # starting them cost validate, estimate and send about 40 ms of CPU (docs/benchmarks.md, "Start-up").
    # A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        sys.exit(app(standalone_mode=True))  # pragma: no cover - typer exits itself
    finally:
        # The command is done and its files are closed. Frozen, the objects of pandas and numpy are not walked
        # again and again by the collector while the interpreter tears its modules down: that walk cost validate
        # 70 ms or more at exit (docs/benchmarks.md, "Start-up"). Nothing of ours waits for it: every file and
        # connection is closed by its `with`, and atexit handlers still run.
        gc.freeze()
