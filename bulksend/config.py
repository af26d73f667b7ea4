"""The home directory (config, ledger, locks, outbox) and the settings read from its config.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulksend.errors import ConfigError, InputError
from bulksend.hints import Invocation
from bulksend.schema import (
    CONFIG_SECTIONS,
    PROFILE_KEYS,
    PROFILE_TYPE_KEYS,
    Problem,
    SchemaError,
    check_table,
    clip,
    shown,
    unknown,
)

HOME_ENV = "BULKSEND_HOME"
LEDGER_URL_ENV = "BULKSEND_LEDGER_URL"
CONFIG_FILE = "config.toml"


def resolve_home(explicit: Path | None = None) -> Path:
    """The home directory: ``--home``, else ``$BULKSEND_HOME``, else the platform's user data dir."""
    if explicit is not None:
        return explicit.expanduser()
    from_env = os.environ.get(HOME_ENV)
    if from_env:
        return Path(from_env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("bulksend", appauthor=False))


@dataclass(frozen=True)
class Config:
    """Settings from ``<home>/config.toml``; every key is optional."""

    home: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    credits: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)  # [ledger] url
    #: ``--ledger URL`` on the command line (wins over the environment and the file).
    ledger_url_option: str | None = None
    consent: dict[str, Any] = field(default_factory=dict)  # [consent] positive, negative: extra consent values
    webhooks: dict[str, Any] = field(default_factory=dict)  # [webhooks] public_url, stop_words (docs/webhooks.md)
    content: dict[str, Any] = field(default_factory=dict)  # [content] deny, allow: the user's own words
    compliance: dict[str, Any] = field(default_factory=dict)  # [compliance] footer, optout_pattern, quiet_hours, frequency_cap
    warnings: tuple[str, ...] = ()  # unknown keys, said once by the CLI (docs/configuration.md)
    invocation: Invocation = field(default_factory=Invocation)  # what every suggested command repeats (--home)

    @property
    def ledger_url(self) -> str | None:
        """The ledger server: ``--ledger``, else ``$BULKSEND_LEDGER_URL``, else ``[ledger] url``; None: the
        SQLite file in the home. A password belongs in PGPASSWORD or ~/.pgpass, never in config.toml."""
        if self.ledger_url_option:
            return self.ledger_url_option.strip()
        if os.environ.get(LEDGER_URL_ENV, "").strip():
            return os.environ[LEDGER_URL_ENV].strip()
        url = self.ledger.get("url")
        if url is None or url == "":
            return None
        if not isinstance(url, str):
            raise ConfigError(f"config.toml: [ledger] url must be a string such as \"postgresql://host/db\", not {url!r}.")
        from urllib.parse import urlsplit

        try:
            has_password = urlsplit(url).password is not None or "password=" in url.lower()
        except ValueError:
            raise ConfigError("config.toml: [ledger] url is not a valid URL.") from None
        if has_password:
            raise ConfigError(
                "config.toml: [ledger] url contains a password; config.toml is no place for secrets.",
                hint="Remove it from the URL and put it in PGPASSWORD or ~/.pgpass.",
            )
        return url.strip()

    @property
    def default_region(self) -> str | None:
        region = self.defaults.get("region")
        return str(region).upper() if region else None

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.db"

    @classmethod
    def load(cls, home: Path, ledger_url: str | None = None) -> "Config":
        path = home / CONFIG_FILE
        if not path.exists():
            return cls(home=home, ledger_url_option=ledger_url)
        from bulksend.files import read_small  # a FIFO or a huge file is refused, never waited on

        try:
            data = tomllib.loads(read_small(path, "config.toml").decode("utf-8"))
        except InputError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}).", hint="Fix the file or move it away.") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
        warnings: list[str] = []
        try:
            _check(data, warnings.append)
        except SchemaError as exc:
            raise ConfigError(
                f"{path}: {exc.problem.text}" + ("" if exc.problem.text.endswith("?") else "."),
                hint=exc.problem.hint or "Fix that key in config.toml (docs/configuration.md lists every key).",
            ) from None
        return cls(
            home=home,
            defaults=dict(data.get("defaults", {})),
            credits=dict(data.get("credits", {})),
            providers={str(k): dict(v) for k, v in data.get("providers", {}).items()},
            consent=_table(data, "consent", path),
            webhooks=_table(data, "webhooks", path),
            content=_table(data, "content", path),
            compliance=_table(data, "compliance", path),
            warnings=tuple(warnings),
            ledger=_table(data, "ledger", path),
            ledger_url_option=ledger_url,
        )


def _check(data: dict[str, Any], warn) -> None:
    """Check config.toml's shape and every known key's type and range (bulksend/schema.py has the tables)."""
    for section, value in data.items():
        if section == "providers":
            _check_providers(value, warn)
        elif section in CONFIG_SECTIONS:
            if not isinstance(value, dict):
                raise SchemaError(Problem(section, f"{section} must be a table ([{section}] with keys under it), "
                                                   f"not {shown(value)}"))
            check_table(value, CONFIG_SECTIONS[section], prefix=f"{section}.", warn=warn)
        else:
            unknown(section, section, {**CONFIG_SECTIONS, "providers": None}, warn)


def _check_providers(value: Any, warn) -> None:
    if not isinstance(value, dict):
        raise SchemaError(
            Problem("providers", f"providers must be a table of profiles ([providers.NAME] with type = \"…\"), "
                                 f"not {shown(value)}",
                    hint='Write each profile as its own table: [providers.twilio] then type = "twilio" and its keys.')
        )
    for name, settings in value.items():
        where = f"providers.{clip(str(name), 40)}"
        if not isinstance(settings, dict):
            raise SchemaError(
                Problem(where, f"{where} must be a table of settings ([{where}]), not {shown(settings)}")
            )
        type_name = settings.get("type", name)
        keys = {**PROFILE_KEYS, **PROFILE_TYPE_KEYS.get(type_name, {})} if isinstance(type_name, str) else PROFILE_KEYS
        known_type = isinstance(type_name, str) and type_name in PROFILE_TYPE_KEYS
        check_table(
            settings,
            keys,
            prefix=f"{where}.",
            # An unknown type's keys cannot be judged; secrets are refused by profiles.py with their own message.
            warn=warn if known_type else None,
            ignore=_secret_name,
        )


def _secret_name(key: str) -> bool:
    from bulksend.profiles import _looks_secret  # only when a profile has a key nothing reads

    return _looks_secret(key)


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table ([{name}]), not {value!r}.")
    return dict(value)
