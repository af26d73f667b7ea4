"""``bulksend provider``: provider profiles, the secrets they use (never shown), and a live check of one."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bulksend.commands.options import JsonOutput

app = typer.Typer(
    help="Provider profiles: store or remove their secrets, list them, check one against the live API.",
    no_args_is_help=True,
)

ProfileName = Annotated[str, typer.Argument(metavar="NAME", help="A profile: \\[providers.NAME] in config.toml.")]


def _line(text: str) -> None:
    from bulksend import output

    output.stdout().print(text, markup=False, highlight=False)


@app.command("login")
def login(
    ctx: typer.Context,
    name: ProfileName,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the secret from the first line of stdin instead of a prompt.")
    ] = False,
    webhook_secret: Annotated[
        bool,
        typer.Option(
            "--webhook-secret",
            help="Store the profile's webhook secret instead (Meta's app secret, Vonage's signature secret).",
        ),
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Store a profile's secret (auth token, API secret) in the system keyring.

    The secret is read from a hidden prompt, or with --stdin from one line of standard input (for scripts).
    An environment variable, when set, still takes precedence over the keyring. With --webhook-secret, the
    secret that checks the provider's webhook signatures (BULKSEND_<PROFILE>_WEBHOOK_SECRET overrides it).

    Example: bulksend provider login twilio

    Example: printf '%s\\n' "$TOKEN" | bulksend provider login twilio --stdin

    Example: bulksend provider login whatsapp --webhook-secret
    """
    from bulksend import credentials, output, profiles

    if webhook_secret:
        _login_webhook_secret(ctx, name, stdin, json_output)
        return
    profile, cls = profiles.secret_target(ctx.obj.config(), name)
    secret = _read_secret(f"Secret for provider profile {profile.name!r}", stdin)
    env_vars = credentials.env_vars_for(profile, cls)
    credentials.store_secret(profile.name, secret, env_vars=env_vars)
    source = credentials.secret_source(profile, cls)
    overridden_by = source[4:] if source.startswith("env ") else None
    if json_output:
        output.emit_json({"profile": profile.name, "stored": True, "overridden_by": overridden_by})
        return
    output.note(f"Stored the secret for {profile.name!r} in the system keyring.")
    if overridden_by:
        output.warn(f"{overridden_by} is set in this environment and takes precedence over the keyring.")


def _read_secret(prompt: str, stdin: bool) -> str:
    """A secret from one line of standard input or a hidden prompt; an empty one stores nothing (exit 2)."""
    from bulksend.errors import InputError

    secret = sys.stdin.readline() if stdin else typer.prompt(prompt, hide_input=True, default="", show_default=False)
    if not secret.strip():
        raise InputError("no secret given; nothing was stored.")
    return secret.strip()


def _login_webhook_secret(ctx: typer.Context, name: str, stdin: bool, json_output: bool) -> None:
    from bulksend import credentials, output, profiles

    profile = profiles.load_profile(ctx.obj.config(), name)
    secret = _read_secret(f"Webhook secret for provider profile {profile.name!r}", stdin)
    env_var = credentials.webhook_env_var(profile.name)
    credentials.store_secret(credentials.webhook_keyring_name(profile.name), secret, env_vars=[env_var])
    _, source = credentials.resolve_webhook_secret(profile)
    overridden_by = source[4:] if source.startswith("env ") else None
    if json_output:
        output.emit_json({"profile": profile.name, "stored": True, "webhook_secret": True, "overridden_by": overridden_by})
        return
    output.note(f"Stored the webhook secret for {profile.name!r} in the system keyring.")
    if overridden_by:
        output.warn(f"{overridden_by} is set in this environment and takes precedence over the keyring.")


@app.command("logout")
def logout(ctx: typer.Context, name: ProfileName, json_output: JsonOutput = False) -> None:
    """Remove a profile's secret from the system keyring.

    Example: bulksend provider logout twilio
    """
    from bulksend import credentials, output

    removed = credentials.delete_secret(name)
    if json_output:
        output.emit_json({"profile": name, "removed": removed})
    elif removed:
        output.note(f"Removed the secret for {name!r} from the system keyring.")
    else:
        output.note(f"No secret for {name!r} was stored in the system keyring.")


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """List the provider types and every profile, with where its secret comes from (never the secret).

    Example: bulksend provider list --json
    """
    from bulksend import credentials, output, profiles
    from bulksend.providers.base import provider_types

    summaries = profiles.describe_profiles(ctx.obj.config())
    types = provider_types()
    if json_output:
        output.emit_json(
            {
                "types": types,
                "profiles": [
                    {"name": s.name, "type": s.type, "secret": s.secret, "builtin": s.builtin, "settings": s.settings}
                    for s in summaries
                ],
            }
        )
        return
    _line(f"Provider types: {', '.join(types)}")
    names = [f"{s.name} (built in)" if s.builtin else s.name for s in summaries]
    width = max(len("PROFILE"), *(len(n) for n in names))
    type_width = max(len("TYPE"), *(len(s.type) for s in summaries))
    _line(f"{'PROFILE':<{width}}  {'TYPE':<{type_width}}  SECRET")
    for name, s in zip(names, summaries):
        _line(f"{name:<{width}}  {s.type:<{type_width}}  {s.secret}")
    if any(s.secret == "missing" for s in summaries):
        problem = credentials.keyring_problem()
        if problem:
            output.note(f"Note: {problem}; set the environment variables instead.")


@app.command("check")
def check(ctx: typer.Context, name: ProfileName, json_output: JsonOutput = False) -> None:
    """Make one harmless live call with a profile (Twilio: read the balance); exit 6 on bad credentials.

    Example: bulksend provider check twilio
    """
    from bulksend import output, profiles

    provider = profiles.open_provider(ctx.obj.config(), name)
    try:
        summary = provider.check()
    finally:
        provider.close()
    if json_output:
        output.emit_json({"profile": provider.profile.name, "type": provider.type_name, "ok": True, "summary": summary})
        return
    _line(summary)
