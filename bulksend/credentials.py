"""Where a provider profile's secret comes from: the environment first, then the system keyring; never a file."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from bulksend import hints
from bulksend.errors import ConfigError
from bulksend.providers.base import Profile, Provider

KEYRING_SERVICE = "bulksend"


def profile_env_var(profile_name: str) -> str:
    """``BULKSEND_<PROFILE>_SECRET``: the profile name upper-cased, every non-alphanumeric turned into ``_``."""
    return f"BULKSEND_{re.sub(r'[^A-Za-z0-9]', '_', profile_name).upper()}_SECRET"


def env_vars_for(profile: Profile, provider_cls: type[Provider]) -> list[str]:
    """The environment variables consulted for this profile, in order of precedence."""
    names = [profile_env_var(profile.name)]
    for name in provider_cls.secret_env_vars(profile):
        if name not in names:
            names.append(name)
    return names


def from_environment(profile: Profile, provider_cls: type[Provider]) -> tuple[Profile, dict[str, str]]:
    """The profile completed with the identifiers its provider reads from the environment (as twilio-cli does
    with ``TWILIO_ACCOUNT_SID`` and ``TWILIO_API_KEY``), and which setting came from which variable."""
    sources = provider_cls.settings_from_env(profile, os.environ)
    if not sources:
        return profile, {}
    filled = {key: os.environ[name].strip() for key, name in sources.items()}
    return Profile(profile.name, profile.type, {**profile.settings, **filled}), sources


def _from_env(names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


def keyring_problem() -> str | None:
    """None when a usable keyring back end exists; otherwise why there is none (for error messages)."""
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        return "no system keyring is available on this machine"
    return None


def _keyring_get(profile_name: str) -> tuple[str | None, str | None]:
    """(secret, problem): the stored secret if any, or why the keyring could not be asked."""
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(KEYRING_SERVICE, profile_name)
    except KeyringError as exc:
        return None, _keyring_failure(exc)
    return (value.strip() or None) if value else None, None


def _keyring_failure(exc: Exception) -> str:
    from keyring.errors import NoKeyringError

    if isinstance(exc, NoKeyringError):
        return "no system keyring is available on this machine"
    return f"the system keyring could not be used ({type(exc).__name__})"


def _env_hint(env_vars: Sequence[str]) -> str:
    return " or ".join(env_vars) if env_vars else "the provider's environment variable"


def resolve_secret(profile: Profile, provider_cls: type[Provider]) -> str:
    """The profile's secret: ``BULKSEND_<PROFILE>_SECRET``, then the provider's own variable, then the keyring.

    Raises ConfigError (exit 6) naming what to set when there is none; never includes a secret in any message.
    """
    names = env_vars_for(profile, provider_cls)
    found = _from_env(names)
    if found:
        return found[1]
    secret, problem = _keyring_get(profile.name)
    if secret:
        return secret
    if problem:
        raise ConfigError(
            f"no secret for provider profile {profile.name!r}, and {problem} to look in.",
            hint=f"Set {_env_hint(names)} in the environment (for cron jobs and servers, that is the way).",
        )
    raise ConfigError(
        f"no secret for provider profile {profile.name!r}.",
        hint=f"Set {_env_hint(names)} in the environment, or run: {hints.current().login(profile.name)}",
    )


def secret_source(profile: Profile, provider_cls: type[Provider]) -> str:
    """Where the secret would come from — "env NAME", "keyring", "missing" or "not needed" — never the value."""
    if not provider_cls.needs_secret:
        return "not needed"
    found = _from_env(env_vars_for(profile, provider_cls))
    if found:
        return f"env {found[0]}"
    secret, _problem = _keyring_get(profile.name)
    return "keyring" if secret else "missing"


def store_secret(name: str, secret: str, *, env_vars: Sequence[str] = ()) -> None:
    """Keep ``secret`` in the system keyring under service "bulksend", username ``name``.

    ``env_vars`` only serve the error message when there is no keyring: they name what to set instead.
    """
    import keyring
    from keyring.errors import KeyringError

    secret = secret.strip()
    if not secret:
        raise ConfigError("the secret is empty; nothing was stored.")
    try:
        keyring.set_password(KEYRING_SERVICE, name, secret)
    except KeyringError as exc:
        raise ConfigError(
            f"cannot store the secret for {name!r}: {_keyring_failure(exc)}.",
            hint=f"Set {_env_hint(list(env_vars) or [profile_env_var(name)])} in the environment instead.",
        ) from None


def delete_secret(name: str) -> bool:
    """Remove the stored secret for ``name``; False when there was none."""
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        if keyring.get_password(KEYRING_SERVICE, name) is None:
            return False
        keyring.delete_password(KEYRING_SERVICE, name)
    except PasswordDeleteError:
        return False
    except KeyringError as exc:
        raise ConfigError(f"cannot remove the secret for {name!r}: {_keyring_failure(exc)}.") from None
    return True


# -- webhook secrets (docs/webhooks.md) ---------------------------------------------------------------------
# Meta's app secret, Vonage's signature secret, or Twilio's auth token for a profile that sends with an API key:
# what checks a provider's signature on the webhooks of one profile. Like every secret: never in the config file.


def webhook_env_var(profile_name: str) -> str:
    """``BULKSEND_<PROFILE>_WEBHOOK_SECRET``."""
    return profile_env_var(profile_name).removesuffix("_SECRET") + "_WEBHOOK_SECRET"


def webhook_keyring_name(profile_name: str) -> str:
    """The keyring user name a profile's webhook secret is kept under (service "bulksend")."""
    return f"{profile_name}:webhook"


def resolve_webhook_secret(profile: Profile) -> tuple[str | None, str]:
    """(the webhook secret or None, where it came from: "env NAME", "keyring" or "missing")."""
    name = webhook_env_var(profile.name)
    found = _from_env([name])
    if found:
        return found[1], f"env {name}"
    secret, _problem = _keyring_get(webhook_keyring_name(profile.name))
    return (secret, "keyring") if secret else (None, "missing")
