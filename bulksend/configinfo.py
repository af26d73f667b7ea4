"""What ``config show`` reports: where the home, the config file, the ledger and each profile's secret come from."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from bulksend import credentials, profiles
from bulksend.config import CONFIG_FILE, Config
from bulksend.providers.base import provider_class, provider_types

LEDGER_URL_ENV = "BULKSEND_LEDGER_URL"
HIDDEN = "***"
# Query parameters of a database URL that carry a credential (libpq's and the usual drivers' names).
_SECRET_QUERY = {"password", "passwd", "pass", "sslpassword", "secret", "token", "access_token"}


@dataclass(frozen=True)
class ProfileSource:
    """One profile: its type, where its secret would come from, and settings read from the environment."""

    name: str
    type: str
    secret: str  # "env NAME", "keyring", "not set", "not needed", "unknown type"
    secret_vars: list[str]  # the environment variables looked at, in order (then the keyring)
    from_env: dict[str, str] = field(default_factory=dict)  # setting -> environment variable
    builtin: bool = False


@dataclass(frozen=True)
class ConfigReport:
    home: str
    home_from: str  # "--home", "BULKSEND_HOME" or "platform default"
    config_file: str
    config_exists: bool
    ledger: str  # a path, or a URL without its password
    ledger_from: str  # "--ledger", "BULKSEND_LEDGER_URL", "config.toml [ledger] url", or "home"
    profiles: list[ProfileSource]

    def as_json(self) -> dict[str, Any]:
        return {
            "home": self.home,
            "home_from": self.home_from,
            "config_file": self.config_file,
            "config_exists": self.config_exists,
            "ledger": self.ledger,
            "ledger_from": self.ledger_from,
            "profiles": [
                {
                    "name": p.name,
                    "type": p.type,
                    "secret": p.secret,
                    "secret_vars": p.secret_vars,
                    "from_env": p.from_env,
                    "builtin": p.builtin,
                }
                for p in self.profiles
            ],
        }


def scrub_url(url: str) -> str:
    """A URL without its password (in the user info or the query string), fit to print; the rest as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN  # not a URL we can take apart: show nothing rather than a secret
    shown = url
    if parts.password is not None:
        user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
        host = parts.netloc.rsplit("@", 1)[1]
        shown = shown.replace(parts.netloc, f"{user}:{HIDDEN}@{host}", 1)
    if parts.query:
        pairs = []
        for pair in parts.query.split("&"):
            key, eq, _value = pair.partition("=")
            pairs.append(f"{key}={HIDDEN}" if eq and unquote(key).lower() in _SECRET_QUERY else pair)
        head, _, rest = shown.partition("?")
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        shown = f"{head}?{'&'.join(pairs)}{fragment}"
    return shown


def _ledger_url_in_file(config: Config) -> str | None:
    path = config.home / CONFIG_FILE
    if not path.exists():
        return None
    # Config.load has already proved the file readable TOML; only the [ledger] table is wanted here.
    table = tomllib.loads(path.read_text(encoding="utf-8")).get("ledger")
    url = table.get("url") if isinstance(table, dict) else None
    return str(url) if url else None


def _ledger(config: Config) -> tuple[str, str]:
    if (config.ledger_url_option or "").strip():
        return scrub_url(config.ledger_url_option.strip()), "--ledger"
    from_env = os.environ.get(LEDGER_URL_ENV, "").strip()
    if from_env:
        return scrub_url(from_env), LEDGER_URL_ENV
    in_file = _ledger_url_in_file(config)
    if in_file:
        return scrub_url(in_file), f"{CONFIG_FILE} [ledger] url"
    return str(config.ledger_path), "home"


def _profile(profile, builtin: bool) -> ProfileSource:
    if profile.type not in provider_types():
        return ProfileSource(profile.name, profile.type, "unknown type", [], builtin=builtin)
    cls = provider_class(profile.type)
    completed, from_env = credentials.from_environment(profile, cls)
    if not cls.needs_secret:
        return ProfileSource(profile.name, profile.type, "not needed", [], from_env, builtin)
    source = credentials.secret_source(completed, cls)
    return ProfileSource(
        profile.name,
        profile.type,
        "not set" if source == "missing" else source,
        credentials.env_vars_for(completed, cls),
        from_env,
        builtin,
    )


def report(config: Config, home_from: str) -> ConfigReport:
    """Where everything comes from; never a secret's value (only the name of the variable that holds it)."""
    ledger, ledger_from = _ledger(config)
    builtin = profiles.BUILTIN_PROFILE not in config.providers
    return ConfigReport(
        home=str(config.home),
        home_from=home_from,
        config_file=str(config.home / CONFIG_FILE),
        config_exists=(config.home / CONFIG_FILE).is_file(),
        ledger=ledger,
        ledger_from=ledger_from,
        profiles=[
            _profile(p, builtin and p.name == profiles.BUILTIN_PROFILE) for p in profiles.list_profiles(config)
        ],
    )
