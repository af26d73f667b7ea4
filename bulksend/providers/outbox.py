"""The ``outbox`` provider: each message becomes one JSON line in a file; the default for rehearsals and demos."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from bulksend.errors import ConfigError
from bulksend.private import open_private
from bulksend.providers import generic_hooks
from bulksend.providers.base import (
    Delivery,
    LookupResult,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    WebhookRequest,
    register,
)

DEFAULT_DIR = "outbox"


def _file_safe(campaign: str) -> str:
    """A campaign name made safe as a file name: no separators, no leading dot, never empty."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", campaign).lstrip(".")
    return name or "_"


@register
class OutboxProvider(Provider):
    """Appends every message to ``outbox/<campaign>.jsonl`` in the home, one JSON object per line.

    Profile settings:
        path: where to write, relative to the home unless absolute. A directory (one file per campaign),
            or a file name ending in ``.jsonl`` (every campaign in one file); ``{campaign}`` is replaced.

    Each line holds transmission_id, campaign, to, channel, encoding, text, params and at (UTC, ISO 8601).
    A line is written with one unbuffered append, so a crash never leaves half a line for the next run to
    glue onto, and ``lookup`` can tell from the file which messages were written before the crash.
    """

    type_name: ClassVar[str] = "outbox"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "whatsapp"})
    default_rate: ClassVar[float] = 1000.0  # a file is never the bottleneck; a rehearsal should be quick
    needs_secret: ClassVar[bool] = False
    can_lookup: ClassVar[bool] = True

    def __init__(self, profile, secret, home: Path) -> None:
        super().__init__(profile, secret, home)
        self._lock = threading.Lock()
        self._fds: dict[Path, int] = {}
        # Per file: how far it has been read, and the (campaign, transmission id) pairs seen so far.
        self._index: dict[Path, tuple[int, set[tuple[str, int]]]] = {}

    def path_for(self, campaign: str) -> Path:
        """The file that messages of ``campaign`` are appended to."""
        return self._resolve(_file_safe(campaign))

    def _resolve(self, file_stem: str) -> Path:
        configured = str(self.profile.get("path") or DEFAULT_DIR)
        base = Path(configured.replace("{campaign}", file_stem)).expanduser()
        if not base.is_absolute():
            base = self.home / base
        if base.suffix == ".jsonl":
            return base
        return base / f"{file_stem}.jsonl"

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            # Phone numbers and message text: owner-only, like the ledger.
            fd = open_private(path, os.O_WRONLY | os.O_APPEND, root=self.home)
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as existing:
                    existing.seek(size - 1)
                    if existing.read(1) != b"\n":  # a line cut short by a crash: end it before appending
                        os.write(fd, b"\n")
            self._fds[path] = fd
        return fd

    def send(self, delivery: Delivery) -> Outcome:
        if delivery.channel not in self.channels:
            return Outcome(OutcomeKind.PERMANENT, code="unsupported_channel", text=f"no {delivery.channel} channel")
        record = {
            "transmission_id": delivery.transmission_id,
            "campaign": delivery.campaign,
            "to": delivery.to,
            "channel": delivery.channel,
            "encoding": delivery.encoding,
            "text": delivery.text,
            "params": delivery.params,
            "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        path = self.path_for(delivery.campaign)
        try:
            with self._lock:
                os.write(self._fd(path), line)
        except OSError as exc:
            # A full disk or a read-only directory stops every message alike: stop the run, keep the rest queued.
            return Outcome(OutcomeKind.FATAL, code="outbox_write_failed", text=f"cannot write {path}: {exc.strerror}")
        return Outcome(OutcomeKind.ACCEPTED, provider_id=f"outbox-{delivery.transmission_id}")

    def lookup(self, delivery: Delivery, sent_after: datetime) -> tuple[LookupResult, str | None]:
        path = self.path_for(delivery.campaign)
        try:
            with self._lock:
                seen = self._scan(path)
        except OSError:
            return LookupResult.CANNOT_TELL, None
        if (delivery.campaign, delivery.transmission_id) in seen:
            return LookupResult.FOUND, f"outbox-{delivery.transmission_id}"
        return LookupResult.NOT_FOUND, None

    def _scan(self, path: Path) -> set[tuple[str, int]]:
        """Read what was appended since the last scan (the file only grows), and return every line seen."""
        offset, seen = self._index.get(path, (0, set()))
        if not path.exists():
            return seen
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # an unfinished last line is read again next time
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
                seen.add((str(record["campaign"]), int(record["transmission_id"])))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line proves nothing either way
        self._index[path] = (offset + end, seen)
        return seen

    def check(self) -> str:
        target = self._resolve("<campaign>")
        existing = target.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"the outbox cannot write to {target.parent}: {existing} is not a writable directory.",
                hint=f"Fix the permissions, or set path = \"…\" under [providers.{self.profile.name}].",
            )
        return f"outbox: writes each message as a JSON line to {target}"

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    # -- webhooks (docs/webhooks.md): fields read where the profile says (bulksend/providers/generic_hooks.py) --

    @classmethod
    def parse_report(cls, profile: Profile, request: WebhookRequest) -> list:
        return generic_hooks.parse_report(profile, request)

    @classmethod
    def parse_inbound(cls, profile: Profile, request: WebhookRequest) -> list:
        return generic_hooks.parse_inbound(profile, request)
