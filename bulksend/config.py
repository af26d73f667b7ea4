"""The home directory (config, ledger, locks, outbox) and the settings read from its config.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulksend.errors import ConfigError
from bulksend.hints import Invocation

HOME_ENV = "BULKSEND_HOME"
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
    invocation: Invocation = field(default_factory=Invocation)  # what every suggested command repeats (--home)

    @property
    def default_region(self) -> str | None:
        region = self.defaults.get("region")
        return str(region).upper() if region else None

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.db"

    @classmethod
    def load(cls, home: Path) -> "Config":
        path = home / CONFIG_FILE
        if not path.exists():
            return cls(home=home)
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
        )
