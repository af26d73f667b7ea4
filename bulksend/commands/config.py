"""``bulksend config show``: where the home, the config file, the ledger and each profile's secret come from."""

from __future__ import annotations

import typer

from bulksend.commands.options import JsonOutput

app = typer.Typer(help="The configuration: where each setting and secret comes from.", no_args_is_help=True)

_HOME_FROM = {"COMMANDLINE": "--home", "ENVIRONMENT": "BULKSEND_HOME"}


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


@app.command("show")
def show(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """Show the home, the config file, the ledger, and each profile with where its secret would come from.

    Secrets are never shown: only the environment variable that holds one, "keyring", or "not set".

    Example: bulksend config show --json
    """
    from bulksend import configinfo, output

    source = ctx.find_root().get_parameter_source("home")
    home_from = _HOME_FROM.get(getattr(source, "name", ""), "platform default")
    report = configinfo.report(ctx.obj.config(), home_from)
    if json_output:
        output.emit_json(report.as_json())
        return
    _line(f"home:        {report.home}  (from {report.home_from})")
    present = "" if report.config_exists else "  (not present: every setting has its default)"
    _line(f"config file: {report.config_file}{present}")
    where = "" if report.ledger_from == "home" else f"  (from {report.ledger_from})"
    _line(f"ledger:      {report.ledger}{where}")
    _line("profiles:")
    width = max(len(p.name) for p in report.profiles)
    type_width = max(len(p.type) for p in report.profiles)
    for p in report.profiles:
        secret = p.secret
        if secret == "not set":
            secret += f" (set {' or '.join(p.secret_vars)}, or run: {ctx.obj.invocation.login(p.name)})"
        extra = [f"{key} from {var}" for key, var in p.from_env.items()]
        if p.builtin:
            extra.append("built in")
        tail = f"  ({'; '.join(extra)})" if extra else ""
        _line(f"  {p.name:<{width}}  {p.type:<{type_width}}  secret: {secret}{tail}")
