"""Provider profiles: ``[providers.NAME]`` in config.toml, the built-in ``outbox``, and opening an adapter on one."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bulksend import credentials, hints
from bulksend.config import Config
from bulksend.errors import ConfigError
from bulksend.providers.base import Profile, Provider, provider_class, provider_types
from bulksend.safetext import scrub_urls

BUILTIN_PROFILE = "outbox"

# Key names that hold credentials. Identifiers that merely name an account or key (account_sid, api_key_sid,
# Vonage's api_key, phone_number_id) are not secrets and stay allowed.
_SECRET_NAMES = {
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "auth_token",
    "authtoken",
    "access_token",
    "api_secret",
    "apisecret",
    "client_secret",
    "private_key",
    "bearer",
    "authorization",
    "credentials",
}
_SECRET_SUFFIXES = ("_secret", "_token", "_password", "_passwd", "_private_key")


def _looks_secret(key: str) -> bool:
    normal = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    return normal in _SECRET_NAMES or normal.endswith(_SECRET_SUFFIXES)


def _secret_keys(settings: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _secret_keys(value, f"{path}.")
        elif _looks_secret(str(key)) and not (isinstance(value, str) and "{secret}" in value):
            # A template that only refers to the secret ("Bearer {secret}") holds none itself.
            yield path


def _refuse_secrets(name: str, type_name: str | None, settings: Mapping[str, Any]) -> None:
    found = list(_secret_keys(settings))
    if not found:
        return
    env_vars = [credentials.profile_env_var(name)]
    if type_name in provider_types():
        env_vars = credentials.env_vars_for(Profile(name, type_name), provider_class(type_name))
    keys = ", ".join(repr(k) for k in found)
    raise ConfigError(
        f"provider profile {name!r} in config.toml contains {keys}: secrets never go in the config file.",
        hint=(
            f"Remove it from [providers.{name}], then set {' or '.join(env_vars)} in the environment "
            f"or run: {hints.current().login(name)}"
        ),
    )


def _profile_from(name: str, raw: Mapping[str, Any]) -> Profile:
    settings = dict(raw)
    type_name = settings.pop("type", None)
    if type_name is None and name in provider_types():
        type_name = name  # [providers.twilio] without a type is a twilio profile
    _refuse_secrets(name, type_name, settings)
    if not type_name:
        raise ConfigError(
            f"provider profile {name!r} has no type.",
            hint=f'Add type = "…" under [providers.{name}] (one of: {", ".join(provider_types())}).',
        )
    return Profile(name=name, type=str(type_name), settings=settings)


def list_profiles(config: Config) -> list[Profile]:
    """Every configured profile in file order, then the built-in ``outbox`` unless the file redefines it.

    Types are not checked here (``provider list`` must show a profile whose type is unknown); secrets are.
    """
    profiles = [_profile_from(name, raw) for name, raw in config.providers.items()]
    if BUILTIN_PROFILE not in config.providers:
        profiles.append(Profile(name=BUILTIN_PROFILE, type="outbox"))
    return profiles


def load_profile(config: Config, name: str) -> Profile:
    """The profile called ``name``, with a known type; ConfigError (exit 6) when there is no such profile."""
    if name in config.providers:
        profile = _profile_from(name, config.providers[name])
    elif name == BUILTIN_PROFILE:
        profile = Profile(name=BUILTIN_PROFILE, type="outbox")
    else:
        known = ", ".join(p.name for p in list_profiles(config))
        raise ConfigError(
            f"no provider profile named {name!r}.",
            hint=f"Profiles: {known}. Add [providers.{name}] with a type to {config.home / 'config.toml'}.",
        )
    provider_class(profile.type)  # an unknown type is a configuration error, named now
    return profile


def open_provider(config: Config, name: str, overrides: Mapping[str, Any] | None = None) -> Provider:
    """Load the profile, resolve its secret when the type needs one, and create the adapter.

    ``overrides`` replace profile settings for this run (``--rate``, ``--concurrency``… from the command line
    or a campaign file), so that the adapter sizes its connection pool to what the engine will really use.
    """
    profile = load_profile(config, name)
    if overrides:
        _refuse_secrets(name, profile.type, overrides)
        profile = Profile(profile.name, profile.type, {**profile.settings, **overrides})
    cls = provider_class(profile.type)
    profile, _sources = credentials.from_environment(profile, cls)
    secret = credentials.resolve_secret(profile, cls) if cls.needs_secret else None
    from bulksend.inbound import with_callback  # receipts come back to `webhooks serve` (docs/webhooks.md)

    return cls(with_callback(config, profile), secret, config.home)


@dataclass(frozen=True)
class ProfileSummary:
    """What ``provider list`` shows for one profile: never a secret, only where it comes from."""

    name: str
    type: str
    secret: str  # "env NAME", "keyring", "missing", "not needed", or "unknown type"
    builtin: bool
    settings: dict[str, Any]


def describe_profiles(config: Config) -> list[ProfileSummary]:
    summaries = []
    for profile in list_profiles(config):
        if profile.type in provider_types():
            cls = provider_class(profile.type)
            source = credentials.secret_source(credentials.from_environment(profile, cls)[0], cls)
        else:
            source = "unknown type"
        summaries.append(
            ProfileSummary(
                name=profile.name,
                type=profile.type,
                secret=source,
                builtin=profile.name == BUILTIN_PROFILE and BUILTIN_PROFILE not in config.providers,
                settings=scrub_urls(dict(profile.settings)),  # a base_url may carry user:password
            )
        )
    return summaries


def secret_target(config: Config, name: str) -> tuple[Profile, type[Provider]]:
    """The profile a secret is being stored for, refusing one whose type needs no secret (``outbox``)."""
    profile = load_profile(config, name)
    cls = provider_class(profile.type)
    if not cls.needs_secret:
        raise ConfigError(f"provider profile {name!r} (type {profile.type}) needs no secret.")
    return credentials.from_environment(profile, cls)[0], cls
