"""The home directory (config, ledger, locks, outbox) and the settings read from its config.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulksend.errors import ConfigError

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
    ledger: dict[str, Any] = field(default_factory=dict)
    #: ``--ledger URL`` on the command line (wins over the environment and the file).
    ledger_url_option: str | None = None

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
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}).", hint="Fix the file or move it away.") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
        return cls(
            home=home,
            defaults=dict(data.get("defaults", {})),
            credits=dict(data.get("credits", {})),
            providers={str(k): dict(v) for k, v in data.get("providers", {}).items()},
            ledger=dict(data.get("ledger", {})),
            ledger_url_option=ledger_url,
        )
