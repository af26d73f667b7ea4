"""Campaigns: the campaign file, a campaign's identity, and a run from estimate to summary (send, resume, send-one).

A run goes: lock the campaign (exit 5 when another run holds it) → check the inputs are the ones the
campaign was started with → validate, render and price the list (a new campaign only; a started one
already has every message in the ledger) → check the balance (exit 3) → the caller confirms → queue
every accepted row (idempotent) → hold the outstanding cost → the engine → release what is left of the
hold, whatever happened → a report with counts, failures, credits, the exit code and the next command.

Nothing here knows about Typer or rich; ``commands/send.py`` and ``commands/campaigns.py`` render it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import secrets
import signal
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulksend.config import Config
from bulksend.engine import Engine, EngineResult, EngineSettings, Progress, StopReason, reconcile_campaign
from bulksend.errors import ConfigError, ExitCode, InputError, InsufficientCredits
from bulksend.hints import Invocation
from bulksend.ledger import STATES, Campaign, NewTransmission, SqliteLedger
from bulksend.ledger_guard import open_for_read, open_for_write
from bulksend.locks import CampaignLock
from bulksend.schema import RUN_LIMITS, TYPO_CUTOFF, clip

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.engine import ReconcileResult
    from bulksend.schedule import SendRules
    from bulksend.estimate import Estimate
    from bulksend.providers.base import Provider

DEFAULT_PROVIDER = "outbox"
QUEUE_CHUNK = 5000  # rows per transaction while queueing: other campaigns' writes never wait long
#: States in which a transmission still needs something from a run.
OPEN_STATES = ("queued", "sending", "unknown")

# Campaign file keys → (type, what it is). Paths are relative to the file.
CAMPAIGN_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "the campaign's name"),
    "recipients": (str, "the recipient CSV"),
    "template": (str, "a file holding the message"),
    "message": (str, "the message text"),
    "channel": (str, "sms or whatsapp"),
    "provider": (str, "the provider profile"),
    "sender": (str, "the sender, overriding the profile's"),
    "region": (str, "ISO code for numbers without a country prefix"),
    "rates": (str, "a rate card CSV"),
    "countries": ((str, list), "ISO codes allowed"),
    "max_segments": (int, "the longest message, in SMS segments"),
    "smart_encoding": (bool, "replace look-alike characters with GSM ones"),
    "assume_consent": (str, "the attestation for a file without a consent column"),
    "category": (str, "the WhatsApp pricing category"),
    "phone_column": (str, "the phone column"),
    "consent_column": (str, "the consent column"),
    "allow_landline": (bool, "accept numbers that cannot receive SMS"),
    "encoding": (str, "the CSV's text encoding"),
    "delimiter": (str, "the CSV's delimiter"),
    "rate": ((int, float), "messages per second"),
    "concurrency": (int, "requests in flight"),
    "batch_size": (int, "rows per claim and commit"),
    "max_attempts": (int, "attempts before a retryable failure is final"),
    "retry_unknown": (bool, "send unknown rows again when the provider cannot tell"),
    # Templates the provider fills itself (DESIGN.md, "Providers"); the message is still what is validated,
    # priced and shown, so every column named here must be one of its merge fields.
    "whatsapp_template": (str, "the approved WhatsApp template's name (Meta Cloud API)"),
    "template_language": (str, "the WhatsApp template's language code, e.g. en_US"),
    "body_params": (list, "columns for the WhatsApp template body's {{1}}, {{2}}…, in order"),
    "header_params": (list, "columns for the WhatsApp template header's variables, in order"),
    "content_sid": (str, "a Twilio Content template (HX…) for every message"),
    "content_variables": (list, "columns for the Twilio Content template's variables 1, 2…, in order"),
    "service_window": (bool, "every recipient wrote to us in the last 24 hours: WhatsApp free-form text is allowed"),
    # When rows may go (bulksend/schedule.py, docs/schedule.md); they override [compliance] in config.toml.
    "quiet_hours": ((str, bool), "local hours in which nothing is sent, like \"21:00-08:00\", or \"off\""),
    "send_at": (str, "when to send: an instant with an offset, or HH:MM with local = true"),
    "local": (bool, "send_at is a wall time in each recipient's own zone"),
    "frequency_cap": ((str, bool), "the most messages a number gets per window, like \"2/24h\", or \"off\""),
    "purpose": (str, "marketing or transactional (a marketing SMS must say how to opt out)"),
    "allow_content": (list, "content categories to send despite findings, like [\"violence\"]"),
}
# Where each schedule setting comes from on the command line (for errors naming what to fix).
SCHEDULE_FLAGS = {"quiet_hours": "--quiet-hours", "send_at": "--at", "local": "--local",
                  "frequency_cap": "--frequency-cap"}
# The [whatsapp] table (issue 5's spelling, which scripts and examples share) maps onto the keys above.
WHATSAPP_TABLE = {
    "template": "whatsapp_template",
    "language": "template_language",
    "category": "category",
    "body_params": "body_params",
    "header_params": "header_params",
    "service_window": "service_window",
}
_PARAM_KEYS = ("whatsapp_template", "template_language", "body_params", "header_params", "content_sid",
               "content_variables")
_PATH_KEYS = ("recipients", "template", "rates")


# ------------------------------------------------------------------------------------------ the inputs


@dataclass(frozen=True)
class RunOptions:
    """How to send, from flags, the campaign file, or what a campaign stored; None: the profile decides."""

    sender: str | None = None
    rate: float | None = None
    concurrency: int | None = None
    batch_size: int | None = None
    max_attempts: int | None = None
    retry_unknown: bool = False

    def __post_init__(self) -> None:
        for name in ("rate", "concurrency", "batch_size", "max_attempts"):
            value = getattr(self, name)
            problem = RUN_LIMITS[name].problem(value) if value is not None else None
            if problem is not None:
                raise InputError(f"--{name.replace('_', '-')} ({RUN_LIMITS[name].what}) {problem}.")

    def merged(self, other: "RunOptions") -> "RunOptions":
        """These options, with every value ``other`` sets taking precedence."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for f in fields(other):
            value = getattr(other, f.name)
            if value is not None and value is not False:
                values[f.name] = value
        return RunOptions(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CampaignSpec:
    """Everything a ``send`` was asked to do: the list, the message, how to read and price it, how to send."""

    name: str
    recipients: Path
    message: str | None = None
    template: Path | None = None
    channel: str = "sms"
    provider: str | None = None
    region: str | None = None
    rates: Path | None = None
    countries: str | None = None
    max_segments: int = 10
    smart_encoding: bool = False
    assume_consent: str | None = None
    category: str | None = None
    phone_column: str | None = None
    consent_column: str | None = None
    allow_landline: bool = False
    encoding: str | None = None
    delimiter: str | None = None
    run: RunOptions = field(default_factory=RunOptions)
    source: Path | None = None  # the file given to send (CSV or campaign file)
    send_one: bool = False
    params: dict[str, Any] | None = None  # provider template settings (the _PARAM_KEYS), when given
    service_window: bool = False  # WhatsApp: every recipient is inside the 24-hour customer service window
    # When rows may go, as given by the campaign file or flags (None: [compliance] in config.toml decides).
    quiet_hours: str | bool | None = None
    send_at: str | None = None
    local: bool = False
    frequency_cap: str | bool | None = None
    purpose: str | None = None  # marketing (None: the default) or transactional
    allow_content: tuple[str, ...] | list[str] | None = None  # content categories allowed despite findings


def _check_value(key: str, value: Any, where: str) -> Any:
    kind, what = CAMPAIGN_KEYS[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    wrong_bool = isinstance(value, bool) and bool not in kinds  # true/false where a number belongs
    if wrong_bool or not isinstance(value, kinds):
        expected = " or ".join({str: "text", int: "a whole number", float: "a number", bool: "true or false",
                                list: "a list"}[k] for k in kinds)
        raise InputError(f"{where}: {key} ({what}) must be {expected}, not {value!r}.")
    limit = RUN_LIMITS.get(key)
    problem = limit.problem(value) if limit is not None else None
    if problem is not None:
        raise InputError(f"{where}: {key} ({what}) {problem}.")
    if isinstance(value, str) and not value.strip():
        raise InputError(f"{where}: {key} ({what}) is empty.", hint=f"Give it a value, or remove the {key} line.")
    if key == "countries" and isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: countries must be ISO codes, like [\"GB\", \"IE\"].")
        value = ",".join(value)
    if key == "purpose":
        from bulksend.compliance import check_purpose

        return check_purpose(value, f"{where}: purpose")
    if key == "allow_content":
        from bulksend.content import check_categories

        if not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: allow_content must list content categories, like [\"violence\"].")
        return list(check_categories(value, f"{where}: allow_content"))
    if isinstance(value, list) and not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where}: {key} ({what}) must list column names, like [\"first_name\", \"code\"].")
    return value


def read_campaign_file(path: Path) -> dict[str, Any]:
    """The keys of a campaign file, checked, with paths made relative to the file's own directory."""
    try:
        from bulksend.files import read_small

        data = tomllib.loads(read_small(path, "the campaign file").decode("utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such campaign file.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a campaign file.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid campaign file ({exc}).") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    _unfold_whatsapp_table(data, path)
    unknown = sorted(set(data) - set(CAMPAIGN_KEYS))
    if unknown:
        # Strict, unlike config.toml: a campaign file says what to send to whom; an ignored key could send
        # something other than what its author meant (docs/configuration.md).
        close = difflib.get_close_matches(unknown[0], list(CAMPAIGN_KEYS), n=1, cutoff=TYPO_CUTOFF)
        raise InputError(
            f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {clip(', '.join(unknown))}"
            + (f" (did you mean {close[0]}?)." if close else "."),
            hint="A campaign file may set: " + ", ".join(CAMPAIGN_KEYS) + ".",
        )
    values = {key: _check_value(key, value, str(path)) for key, value in data.items()}
    _check_schedule(values, lambda key: f"{path}: {key}", send_at=False)  # send_at may need --local: build_spec
    for key in _PATH_KEYS:
        if key in values:
            values[key] = (path.parent / Path(values[key]).expanduser()).resolve()
    if "recipients" not in values:
        raise InputError(f"{path}: the campaign file needs recipients = \"FILE.csv\".")
    if "whatsapp_template" in values and "message" not in values and "template" not in values:
        # The approved template's text lives at Meta. What is validated (missing_field), priced and
        # recorded is a readable stand-in that names every parameter column as a merge field.
        columns = [*values.get("header_params", []), *values.get("body_params", [])]
        values["message"] = f"[WhatsApp template {values['whatsapp_template']}] " + " · ".join(
            "{" + c + "}" for c in columns
        )
    if "content_sid" in values and "message" not in values and "template" not in values:
        if values.get("channel", "sms") != "whatsapp":
            # An SMS is priced by its segments: only the template's own text can say how many.
            raise InputError(
                f"{path}: an SMS campaign with content_sid needs the Content template's text as message "
                "(or template = FILE), so that its segments and credits are right.",
                hint='For example: message = "Hi {first_name}, use {code}" with content_variables = ["first_name", "code"].',
            )
        # WhatsApp: one message each, whatever the text; the same readable stand-in as above.
        columns = values.get("content_variables", [])
        values["message"] = f"[Twilio Content {values['content_sid']}] " + " · ".join("{" + c + "}" for c in columns)
    return values


def _check_schedule(values: dict[str, Any], where, *, send_at: bool = True) -> None:
    """Quiet hours, send time and frequency cap parse (exit 2 naming the key or flag), before anything is read."""
    from bulksend.schedule import parse_frequency_cap, parse_quiet_hours, parse_send_at

    if values.get("quiet_hours") is not None:
        parse_quiet_hours(values["quiet_hours"], where("quiet_hours"))
    if send_at and values.get("send_at") is not None:
        parse_send_at(values["send_at"], bool(values.get("local")), where("send_at"))
    if values.get("frequency_cap") is not None:
        parse_frequency_cap(values["frequency_cap"], where("frequency_cap"))


def _unfold_whatsapp_table(data: dict[str, Any], path: Path) -> None:
    """Move the keys of a [whatsapp] table to the top level, refusing unknown or doubled keys."""
    table = data.pop("whatsapp", None)
    if table is None:
        return
    if not isinstance(table, dict):
        raise InputError(f"{path}: whatsapp must be a table ([whatsapp] with template, language, …).")
    unknown = sorted(set(table) - set(WHATSAPP_TABLE))
    if unknown:
        raise InputError(
            f"{path}: unknown key{'s' if len(unknown) > 1 else ''} in [whatsapp]: {', '.join(unknown)}.",
            hint="[whatsapp] may set: " + ", ".join(WHATSAPP_TABLE) + ".",
        )
    for key, value in table.items():
        target = WHATSAPP_TABLE[key]
        if target in data:
            raise InputError(f"{path}: {target} is set twice (at the top level and as [whatsapp] {key}).")
        data[target] = value


def is_campaign_file(path: Path) -> bool:
    return path.suffix.lower() == ".toml"


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise InputError(f"campaign name {name!r}: use 1 to 200 printable characters.")
    return name


def build_spec(path: Path, flags: dict[str, Any], run: RunOptions) -> CampaignSpec:
    """The campaign a ``send PATH`` means: a campaign file's keys (or a bare CSV), then the flags on top."""
    values: dict[str, Any] = {}
    if is_campaign_file(path):
        values = read_campaign_file(path)
        recipients = values.pop("recipients")
    else:
        recipients = path
    if flags.get("message") is not None or flags.get("template") is not None:
        values.pop("message", None)
        values.pop("template", None)
    file_run = RunOptions(**{k: values.pop(k) for k in list(values) if k in RunOptions.__dataclass_fields__})
    params = {k: values.pop(k) for k in _PARAM_KEYS if k in values} or None
    if params is not None:
        _check_params(params, path)
    for key, value in flags.items():
        if value is not None and value is not False:
            values[key] = value
    _check_schedule(values, lambda key: SCHEDULE_FLAGS[key] if flags.get(key) not in (None, False) else f"{path}: {key}")
    name = check_name(str(values.pop("name", None) or Path(path).stem))
    if "template" in values and values["template"] is not None:
        values["template"] = Path(values["template"])
    if "rates" in values and values["rates"] is not None:
        values["rates"] = Path(values["rates"])
    spec_fields = set(CampaignSpec.__dataclass_fields__)
    extra = set(values) - spec_fields
    if extra:  # pragma: no cover - flags and keys are both checked before this
        raise InputError(f"unexpected campaign settings: {', '.join(sorted(extra))}.")
    spec = CampaignSpec(
        name=name, recipients=Path(recipients), run=file_run.merged(run), source=path, params=params, **values
    )
    _check_whatsapp_window(spec, path)
    return spec


def _check_whatsapp_window(spec: CampaignSpec, path: Path) -> None:
    """Business-initiated WhatsApp messages must use an approved template (Meta's 24-hour rule)."""
    if spec.channel != "whatsapp" or spec.send_one or spec.service_window:
        return
    if spec.params and ("whatsapp_template" in spec.params or "content_sid" in spec.params):
        return
    if is_campaign_file(path):
        hint = (
            'In the campaign file: [whatsapp] template = "NAME", language = "en_US", body_params = ["column", …] '
            '(the whatsapp provider); or content_sid = "HX…", content_variables = ["column", …] (twilio); or, '
            "when every recipient wrote to you in the last 24 hours, [whatsapp] service_window = true "
            "(or --service-window) to send free-form text."
        )
    else:
        hint = (
            "Add --service-window when every recipient wrote to you in the last 24 hours; otherwise send an "
            "approved template from a campaign file (docs/sending.md, \"Provider templates\")."
        )
    raise InputError(
        f"{path}: a WhatsApp campaign needs an approved template, or must say its recipients are inside "
        "the 24-hour service window.",
        hint=hint,
    )


# Which provider types fill which template settings (the others would send the stand-in text instead).
_TEMPLATE_PROVIDERS = {"whatsapp_template": ("whatsapp", "outbox"), "content_sid": ("twilio", "outbox")}


def _check_template_provider(spec: CampaignSpec, provider: "Provider") -> None:
    for key, types in _TEMPLATE_PROVIDERS.items():
        if spec.params and key in spec.params and provider.type_name not in types:
            raise InputError(
                f"{key} is a template of the {types[0]} provider; provider profile {provider.profile.name!r} is "
                f"{provider.type_name} and would send the message text instead. Nothing was sent.",
                hint=f"Send it through a {types[0]} profile (provider = \"…\" in the campaign file, or --provider).",
            )


def _check_params(params: dict[str, Any], path: Path) -> None:
    if "whatsapp_template" in params and "template_language" not in params:
        raise InputError(f"{path}: whatsapp_template needs template_language (the template's code, e.g. \"en_US\").")
    for key, needs in (("template_language", "whatsapp_template"), ("body_params", "whatsapp_template"),
                       ("header_params", "whatsapp_template"), ("content_variables", "content_sid")):
        if key in params and needs not in params:
            raise InputError(f"{path}: {key} only goes with {needs}.")


class RowParams:
    """Builds each row's ``Delivery.params`` from the campaign's template settings and the row's merge fields.

    The shapes are the adapters' contracts: ``{"template", "language", "category", "body", "header"}`` for
    the WhatsApp Cloud API, ``{"content_sid", "variables": {"1": …}}`` for Twilio Content templates.
    """

    def __init__(self, settings: dict[str, Any], columns: tuple[str, ...], category: str | None) -> None:
        by_key = {c.strip().lower(): c for c in columns}

        def column(name: str) -> str:
            found = by_key.get(name.strip().lower())
            if found is None:
                used = ", ".join("{" + c + "}" for c in columns) or "no merge fields"
                raise InputError(
                    f"template parameter column {name!r} is not a merge field of the message (it uses {used}).",
                    hint="The message is what is validated and priced: use every parameter column in it.",
                )
            return found

        self.fixed: dict[str, Any] = {}
        if "whatsapp_template" in settings:
            self.fixed["template"] = settings["whatsapp_template"]
            self.fixed["language"] = settings["template_language"]
            if category:
                self.fixed["category"] = category
        if "content_sid" in settings:
            self.fixed["content_sid"] = settings["content_sid"]
        self.lists = {
            target: [column(c) for c in settings[key]]
            for key, target in (("body_params", "body"), ("header_params", "header"))
            if key in settings
        }
        self.variables = [column(c) for c in settings.get("content_variables", [])]

    def __call__(self, fields: dict[str, str]) -> str:
        params = dict(self.fixed)
        for target, names in self.lists.items():
            params[target] = [fields[c] for c in names]
        if self.variables:
            params["variables"] = {str(i): fields[c] for i, c in enumerate(self.variables, 1)}
        return json.dumps(params, ensure_ascii=False)


def fingerprint(recipients: Path, message: str, channel: str) -> str:
    """What makes two runs the same campaign: the recipient file's bytes, the message as written, the channel."""
    digest = hashlib.sha256()
    digest.update(f"bulksend-campaign-v1\0{channel}\0{len(message)}\0{message}\0".encode("utf-8"))
    from bulksend.files import is_stream

    if is_stream(recipients):
        # A campaign is resumed by reading its list again, and its identity is the list's bytes.
        raise InputError(
            f"{recipients}: send needs the recipient list as a regular file, not a pipe or standard input.",
            hint="Save the list to a file first (validate and estimate can read a pipe).",
        )
    try:
        with open(recipients, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise InputError(f"{recipients}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{recipients}: is a directory, not a CSV file.") from None
    except OSError as exc:
        raise InputError(f"{recipients}: cannot be read ({exc.strerror}).") from None
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- preparing a run


@dataclass
class Prepared:
    """A run ready to go: the lock held, the ledger open, the provider open, what it will cost.

    ``status`` is ``new`` (validated, nothing in the ledger yet), ``resume`` (messages already queued),
    ``done`` (nothing left to send) or ``cancelled``. Close it (``with``) to release the lock.
    """

    config: Config
    name: str
    channel: str
    provider_name: str
    status: str
    ledger: SqliteLedger
    lock: CampaignLock
    run: RunOptions
    limit: int | None = None
    campaign: Campaign | None = None
    spec: CampaignSpec | None = None
    fingerprint: str | None = None
    estimate: "Estimate | None" = None
    provider: "Provider | None" = None
    messages: int = 0  # rows this run would send (queued and unknown)
    credits: int = 0  # their cost: what the run holds
    available: int = 0  # credits of the channel available to this campaign now
    counts: dict[str, int] = field(default_factory=dict)
    sender: str | None = None  # the From this run uses (None: the provider decides, e.g. a messaging service)
    rules: "SendRules | None" = None  # quiet hours, send time, frequency cap (bulksend/schedule.py)

    def close(self) -> None:
        if self.provider is not None:
            self.provider.close()
            self.provider = None
        self.ledger.close()
        self.lock.release()

    def __enter__(self) -> "Prepared":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_options(spec: CampaignSpec):
    from bulksend.pipeline import read_options

    return read_options(
        phone_column=spec.phone_column,
        consent_column=spec.consent_column,
        assume_consent=spec.assume_consent,
        region=spec.region,
        countries=spec.countries,
        allow_landline=spec.allow_landline,
        channel=spec.channel,
        encoding=spec.encoding,
        delimiter=spec.delimiter,
    )


def _provider_overrides(run: RunOptions) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if run.sender:
        overrides["sender"] = run.sender
    if run.rate is not None:
        overrides["rate"] = run.rate
    if run.concurrency is not None:
        overrides["concurrency"] = run.concurrency
    return overrides


def open_campaign_provider(config: Config, name: str, channel: str, run: RunOptions) -> "Provider":
    """The provider profile opened for this run (credentials resolved: exit 6 when missing)."""
    from bulksend.profiles import open_provider

    provider = open_provider(config, name, _provider_overrides(run))
    if channel not in provider.channels:
        provider.close()
        raise ConfigError(
            f"provider profile {name!r} ({provider.type_name}) cannot send {channel}.",
            hint=f"It sends: {', '.join(sorted(provider.channels))}.",
        )
    return provider


def checked_sender(provider: "Provider", channel: str, run: RunOptions) -> str | None:
    """The sender this run's messages go out from, checked (exit 2 naming the rule) before anything is held."""
    from bulksend.senders import check_sender, sender_for

    sender, key = sender_for(provider, channel)
    if sender is None:
        return None
    if run.sender and sender == run.sender:
        where = "sender (--sender, or sender in the campaign file)"
    else:
        where = f"{key} of provider profile {provider.profile.name!r}"
    return check_sender(sender, channel, where)


def _refresh(prepared: Prepared) -> None:
    """Counts, outstanding cost and availability of a campaign already in the ledger."""
    ledger = prepared.ledger
    campaign = prepared.campaign
    assert campaign is not None
    prepared.counts = ledger.counts(campaign.id)
    prepared.messages = sum(prepared.counts.get(s, 0) for s in OPEN_STATES)
    prepared.credits = ledger.outstanding_cost(campaign.id)
    prepared.available = ledger.balance(campaign.channel)[campaign.channel].available + ledger.held(campaign.id)


def _check_credits(prepared: Prepared) -> None:
    if prepared.credits > prepared.available:
        short = prepared.credits - prepared.available
        raise InsufficientCredits(
            f"campaign {prepared.name!r} needs {prepared.credits:,} {prepared.channel} credits but "
            f"{prepared.available:,} are available: {short:,} short. Nothing was sent.",
            hint=f"Top up with: {_topup_hint(prepared.config, short, prepared.channel)}",
        )


def _topup_hint(config: Config, short: int, channel: str) -> str:
    from bulksend.credits import minimum_topup

    return config.invocation.topup(max(short, minimum_topup(config, channel)), channel)


def prepare_send(config: Config, spec: CampaignSpec, *, limit: int | None = None, dry_run: bool = False) -> Prepared:
    """Lock, identify, validate and price a ``send``; raises before anything is sent or written to the ledger."""
    lock = CampaignLock.acquire(config.home, spec.name)  # first: an overlapping run must exit within a second
    try:
        ledger = open_for_write(config, own_lock=lock.path if lock.created else None)
    except BaseException:
        lock.release()
        raise
    provider_name = spec.provider or str(config.defaults.get("provider") or DEFAULT_PROVIDER)
    prepared = Prepared(
        config, spec.name, spec.channel, provider_name, "new", ledger, lock, spec.run, limit=limit, spec=spec
    )
    try:
        from bulksend.pipeline import read_message

        options = _read_options(spec)  # flags first: a bad flag is exit 2 before any file is read
        prepared.channel = options.channel
        text, _ = read_message(spec.message, spec.template)
        prepared.fingerprint = fingerprint(spec.recipients, text, options.channel)
        existing = ledger.get_campaign(spec.name)
        if existing is not None:
            _check_same(existing, prepared.fingerprint, options.channel, spec, config.invocation)
            prepared.campaign = existing
            if spec.provider is not None and spec.provider != existing.provider:
                # Unknown outcomes can only be looked up where they were sent: a switch could send twice.
                raise InputError(
                    f"campaign {existing.name!r} sends through provider profile {existing.provider!r}, "
                    f"not {spec.provider!r}; nothing was sent.",
                    hint="Finish or cancel it first, or start a new campaign (--name) on the other provider.",
                )
            prepared.provider_name = existing.provider
            if existing.state == "cancelled":
                prepared.status = "cancelled"
                _refresh(prepared)
                return prepared
            if ledger.campaign_settings(existing.id).get("queued"):
                _refresh(prepared)
                if not prepared.messages:
                    prepared.status = "done"
                    if existing.state != "done" and not dry_run:
                        ledger.set_campaign_state(existing.id, "done")
                    return prepared
                prepared.status = "resume"
        prepared.provider = open_campaign_provider(config, prepared.provider_name, options.channel, spec.run)
        prepared.sender = checked_sender(prepared.provider, options.channel, spec.run)
        _check_template_provider(spec, prepared.provider)
        stored = ledger.campaign_settings(existing.id).get("schedule") if existing is not None else None
        prepared.rules = send_rules(config, spec, stored)
        if prepared.status == "new":
            _validate(prepared, spec, options)
        _check_credits(prepared)
        return prepared
    except BaseException:
        prepared.close()
        raise


def send_rules(config: Config, spec: CampaignSpec | None, stored: dict[str, Any] | None) -> "SendRules":
    """The campaign's quiet hours, send time and cap: flags and file, else as stored, else config.toml.

    ``send-one`` (one person writing to another) follows neither quiet hours nor a cap.
    """
    from bulksend.config import CONFIG_FILE
    from bulksend.schedule import SendRules, resolve_rules

    now = datetime.now(timezone.utc)
    if spec is not None and spec.send_one:
        return SendRules(anchor=now)
    given = {key: getattr(spec, key) for key in SCHEDULE_FLAGS} if spec is not None else {}
    where = f"{config.home / CONFIG_FILE}: [compliance]"
    try:
        return resolve_rules(config.compliance, given, stored, now, config_where=where)
    except InputError as exc:
        if exc.message.startswith(where):
            raise ConfigError(exc.message, hint=exc.hint) from None
        raise


def _capped(prepared: Prepared) -> dict[str, str] | None:
    """Numbers at the frequency cap now (any campaign), with when each is eligible again."""
    from bulksend.schedule import cap_detail

    cap = prepared.rules.cap if prepared.rules is not None else None
    if cap is None:
        return None
    now = datetime.now(timezone.utc)
    sends = prepared.ledger.recent_sends(None, prepared.channel, now - cap.window)
    capped = {}
    for e164, times in sends.items():
        eligible = cap.eligible_at(times, now)
        if eligible is not None:
            capped[e164] = cap_detail(cap, prepared.channel, eligible)
    return capped


def _check_same(existing: Campaign, fp: str, channel: str, spec: CampaignSpec, hints: Invocation) -> None:
    if existing.channel != channel:
        raise InputError(
            f"campaign {existing.name!r} sends on {existing.channel}, not {channel}; nothing was sent.",
            hint="Give this campaign another name with --name.",
        )
    if existing.fingerprint != fp:
        raise InputError(
            f"campaign {existing.name!r} was started on {existing.created_at[:10]} with a different recipient "
            "file or message; sending these under the same name would mix two campaigns. Nothing was sent.",
            hint=f"Give the new one another name (--name), or see the old one: {hints.show(existing.id)}",
        )


def _validate(prepared: Prepared, spec: CampaignSpec, options) -> None:
    from bulksend.compliance import missing_optout_error
    from bulksend.estimate import summarize
    from bulksend.pipeline import read_message, read_plan, run_validation, template_findings

    plan = read_plan(
        message=spec.message,
        template=spec.template,
        rates=spec.rates,
        max_segments=spec.max_segments,
        smart_encoding=spec.smart_encoding,
        category=spec.category,
        config=prepared.config,
        channel=options.channel,
        purpose="transactional" if spec.send_one else spec.purpose,  # send-one is person to person
        allow_content=spec.allow_content or (),
    )
    # The message itself: refused before the list is read and before anything is held.
    found = template_findings(plan)
    if found:
        _, origin = read_message(spec.message, spec.template)
        words = ", ".join(f"{f.word!r} ({f.category})" for f in found)
        categories = sorted({f.category for f in found})
        raise InputError(
            f"the message in {origin} has content findings: {words}; nothing was sent.",
            hint="Change the message, or, when it is meant, send with "
            + " ".join(f"--allow-content {c}" for c in categories)
            + " (recorded on the campaign).",
        )
    if plan.compliance is not None and plan.compliance.missing_optout:
        raise missing_optout_error(read_message(spec.message, spec.template)[1])
    report = run_validation(prepared.config, spec.recipients, options, plan=plan, previews=True,
                            capped=_capped(prepared))
    estimate = summarize(report)
    prepared.estimate = estimate
    if not estimate.recipients:
        table = report.table
        if spec.send_one:
            from bulksend.recipients import iter_rejects

            for reject in iter_rejects(table, stop_after=1):
                raise InputError(f"{reject.value!r}: {reject.reason} ({reject.detail}); nothing was sent.")
        reasons = ", ".join(f"{code} {n:,}" for code, n in table.reasons().items()) or "no data rows"
        raise InputError(
            f"{spec.recipients}: no row can be messaged ({reasons}); nothing was sent.",
            hint="See every reject with: "
            + prepared.config.invocation.validate_rejects(spec.recipients, _read_values(spec)),
        )
    if spec.params:  # a parameter column the message does not use is an input error, before anything is sent
        RowParams(spec.params, report.table.bound.columns, spec.category)
    prepared.messages = estimate.recipients
    prepared.credits = estimate.credits
    balance = prepared.ledger.balance(options.channel)[options.channel]
    own = prepared.ledger.held(prepared.campaign.id) if prepared.campaign else 0
    prepared.available = balance.available + own


def _read_values(spec: CampaignSpec) -> dict[str, Any]:
    """The spec's list-reading options, by parameter name (for a hint that reads the list the same way)."""
    from bulksend.hints import READ_FLAGS

    return {key: getattr(spec, key) for key in READ_FLAGS}


def prepare_resume(config: Config, key: str, run: RunOptions, *, limit: int | None = None) -> Prepared:
    """``campaigns resume ID``: the campaign's stored settings (flags on top), from the ledger alone."""
    ledger, campaign = _find(config, key)
    try:
        lock = CampaignLock.acquire(config.home, campaign.name)
    except BaseException:
        ledger.close()
        raise
    stored = ledger.campaign_settings(campaign.id)
    base = RunOptions(**{k: v for k, v in stored.get("run", {}).items() if k in RunOptions.__dataclass_fields__})
    prepared = Prepared(
        config, campaign.name, campaign.channel, campaign.provider, "resume", ledger, lock, base.merged(run),
        limit=limit, campaign=campaign,
    )
    try:
        _refresh(prepared)
        if campaign.state == "cancelled":
            prepared.status = "cancelled"
            return prepared
        if not stored.get("queued"):
            raise InputError(
                f"campaign {campaign.name!r} was never fully queued; run the send that started it again.",
                hint="Running that send again, with the same file and message, queues the rest and sends.",
            )
        if not prepared.messages:
            prepared.status = "done"
            if campaign.state != "done":
                ledger.set_campaign_state(campaign.id, "done")
            return prepared
        prepared.provider = open_campaign_provider(config, campaign.provider, campaign.channel, prepared.run)
        prepared.sender = checked_sender(prepared.provider, campaign.channel, prepared.run)
        prepared.rules = send_rules(config, None, stored.get("schedule"))
        _check_credits(prepared)
        return prepared
    except BaseException:
        prepared.close()
        raise


# ------------------------------------------------------------------------------------------- running


@dataclass
class SendReport:
    """What a run did and where the campaign stands: the ``send --json`` document and the summary."""

    campaign: Campaign
    state: str  # the campaign's state after the run: open, done or cancelled
    counts: dict[str, int]
    failures: dict[str, int]
    credits_debited: int
    credits_refunded: int
    status: str  # what this invocation found: new, resume, done, cancelled
    result: EngineResult | None = None
    queued: int = 0  # rows added to the ledger by this run
    released: int = 0  # credits of the hold given back at the end
    limit: int | None = None
    source: Path | None = None  # the file a `send` was given (for the next command)
    rows: list = field(default_factory=list)  # the transmissions themselves, for send-one's one-line answer
    hints: Invocation = field(default_factory=Invocation)
    examples: list = field(default_factory=list)  # the messages previewed before sending (a new campaign only)
    rejected: int | None = None  # rows of the list that are not messaged (None: queued by an older bulksend)
    reasons: dict[str, int] | None = None

    @property
    def open_rows(self) -> int:
        return sum(self.counts.get(s, 0) for s in OPEN_STATES)

    @property
    def exit_code(self) -> ExitCode:
        reason = self.result.reason if self.result else None
        if reason in (StopReason.FATAL, StopReason.BREAKER):
            return ExitCode.ERROR
        if reason is StopReason.INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.result is None:  # nothing ran: done or cancelled before
            return ExitCode.OK
        if self.counts.get("failed") or self.counts.get("unknown"):
            return ExitCode.INCOMPLETE
        return ExitCode.OK  # waiting too: the same command sends the rest when it is due (DESIGN.md)

    @property
    def waiting(self) -> bool:
        """Only rows not yet due are left: the run ended to let a later one (or --wait) send them."""
        return self.result is not None and self.result.reason is StopReason.WAITING and self.state == "open"

    def next_command(self) -> str:
        """The command to run next, for the summary (and the JSON ``next`` field)."""
        name = self.campaign.name
        if self.status == "cancelled" or self.state == "cancelled":
            return self.hints.show(name)
        if self.counts.get("queued") or self.counts.get("sending"):
            return self.hints.resume(name)
        if self.counts.get("unknown"):
            return self.hints.reconcile(name)
        return self.hints.show(name)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "campaign": self.campaign.name,
            "id": self.campaign.id,
            "state": "waiting" if self.waiting else self.state,
            "counts": every_state(self.counts),
            "credits_debited": self.credits_debited,
            "credits_refunded": self.credits_refunded,
            "rejected": self.rejected,
            "reasons": self.reasons,
            "channel": self.campaign.channel,
            "provider": self.campaign.provider,
            "found": self.status,  # what this invocation found: new, resume, done, cancelled
            "failures": self.failures,
            "queued_now": self.queued,
            "hold_released": self.released,
            "exit_code": int(self.exit_code),
            "next": self.next_command(),
            "examples": [p.as_json() for p in self.examples],
        }
        if self.result is not None:
            stats = self.result.stats
            doc["stopped"] = self.result.reason.value
            doc["run"] = {
                "attempts": stats.attempts,
                "sent": stats.sent,
                "failed": stats.failed,
                "retried": stats.retried,
                "unknown": stats.unknown,
                "suppressed": stats.suppressed,
                "opted_out": stats.opted_out,
                "recovered": stats.recovered,
                "reconciled": {"found": stats.found, "not_found": stats.not_found, "cannot_tell": stats.undecided},
                "credits": stats.credits,
                "seconds": round(stats.elapsed, 3),
                "waited_seconds": round(stats.waited, 3),
                "per_second": round(stats.per_second, 1),
            }
            if self.result.fatal is not None:
                doc["error"] = {"code": self.result.fatal.code, "text": self.result.fatal.text}
            elif self.result.tripped_by is not None:
                doc["error"] = {"code": self.result.tripped_by.code, "text": self.result.tripped_by.text}
            doc["run"]["deferred"] = stats.deferred
            doc["run"]["frequency_capped"] = stats.capped
            if self.result.next_due is not None:
                doc["next_due"] = _utc_iso(self.result.next_due)
        return doc


def _utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, to the second: 2026-06-02T07:00:00Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def every_state(counts: dict[str, int]) -> dict[str, int]:
    """Counts by transmission state for --json: every state, zeros included, so scripts never miss a key."""
    return {state: counts.get(state, 0) for state in sorted(STATES)}


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def engine_settings(provider: "Provider", run: RunOptions, limit: int | None) -> EngineSettings:
    """The engine's settings: flags and campaign file first, then the profile, then the defaults."""
    profile = provider.profile

    def number(key: str, value: Any, default: Any, cast, minimum) -> Any:
        if value is None:
            value = profile.get(key, default)
        try:
            value = cast(value)
        except (TypeError, ValueError):
            raise ConfigError(f"provider profile {profile.name!r}: {key} must be a number, not {value!r}.") from None
        if value < minimum:
            raise ConfigError(f"{key} must be at least {minimum}, not {value}.")
        return value

    rate = number("rate", run.rate, provider.default_rate, float, 0)
    return EngineSettings(
        rate=rate or None,
        concurrency=number("concurrency", run.concurrency, 16, int, 1),
        batch_size=number("batch_size", run.batch_size, 0, int, 0) or None,
        max_attempts=number("max_attempts", run.max_attempts, 5, int, 1),
        retry_unknown=run.retry_unknown or bool(profile.get("retry_unknown", False)),
        limit=limit,
        breaker=number("circuit_breaker", None, 20, int, 0),
        max_wait=number("max_wait", None, 600, float, 0),
        reconcile_after=number("reconcile_after", None, 30, float, 0),
        backoff_base=number("backoff_base", None, 1.0, float, 0),
        backoff_cap=number("backoff_cap", None, 300.0, float, 0),
    )


def _queue(prepared: Prepared) -> int:
    """Put every accepted row in the ledger (idempotent), then mark the campaign fully queued."""
    from bulksend.recipients import iter_messages

    ledger = prepared.ledger
    spec = prepared.spec
    assert prepared.estimate is not None and spec is not None and prepared.fingerprint is not None
    campaign = prepared.campaign or ledger.open_campaign(
        prepared.name, prepared.channel, prepared.provider_name, prepared.fingerprint, spec.assume_consent
    )
    prepared.campaign = campaign
    table = prepared.estimate.table
    row_params = RowParams(spec.params, table.bound.columns, spec.category) if spec.params else None
    added = 0
    chunk: list[NewTransmission] = []
    rules = prepared.rules
    scheduler = rules.scheduler() if rules is not None and (rules.quiet or rules.send_at) else None
    anchor = rules.anchor if rules is not None and rules.anchor else datetime.now(timezone.utc)
    for message in iter_messages(table):
        not_before = None
        if scheduler is not None:
            # Due at its first allowed time; None (zones with no common allowed hour) is settled at claim time.
            due = scheduler.due(anchor, scheduler.zones(message.e164, message.country, message.timezone))
            not_before = due if due is not None and due > anchor else None
        chunk.append(
            NewTransmission(
                message.e164,
                message.text,
                message.units,
                message.credits,
                row_number=message.row,
                country=message.country,
                params=row_params(message.fields) if row_params else None,
                not_before=not_before,
                timezone=message.timezone,
            )
        )
        if len(chunk) >= QUEUE_CHUNK:
            added += ledger.add_transmissions(campaign.id, chunk)
            chunk = []
    if chunk:
        added += ledger.add_transmissions(campaign.id, chunk)
    ledger.save_campaign_settings(campaign.id, _stored_settings(prepared))
    return added


def _stored_settings(prepared: Prepared) -> dict[str, Any]:
    spec = prepared.spec
    assert spec is not None
    return {
        "queued": True,
        "source": str(spec.source) if spec.source else None,
        "recipients": None if spec.send_one else str(spec.recipients),
        "template": str(spec.template) if spec.template else None,
        "send_one": spec.send_one,
        "params": spec.params,
        "sender": prepared.sender,
        "rejected": prepared.estimate.table.rejected if prepared.estimate else None,
        "reasons": prepared.estimate.table.reasons() if prepared.estimate else None,
        "run": {k: v for k, v in spec.run.as_dict().items() if v not in (None, False)},
        "schedule": prepared.rules.as_stored() if prepared.rules is not None else None,
        **_compliance_settings(prepared),
    }


def _compliance_settings(prepared: Prepared) -> dict[str, Any]:
    """What the content and opt-out checks decided for this campaign (``campaigns show``)."""
    plan = prepared.estimate.table.plan if prepared.estimate is not None else None
    decided = plan.compliance if plan is not None else None
    return {
        "purpose": decided.purpose if decided is not None else None,
        "footer": decided.footer if decided is not None else None,
        "allow_content": sorted(plan.lexicon.allowed) if plan is not None and plan.lexicon is not None else [],
    }


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C or SIGTERM (the run then stops after the batch in flight).

    A second Ctrl-C raises KeyboardInterrupt as usual: the engine still records what came back.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_signal(signum, frame) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sleep_until_due(stop: threading.Event, seconds: float) -> bool:
    """``send --wait`` between runs: sleep until the next row is due; True when Ctrl-C / SIGTERM came first."""
    return stop.wait(seconds)


def execute(
    prepared: Prepared,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    wait: bool = False,
    sleep=None,
) -> SendReport:
    """Queue (a new campaign), hold, send, release: the part of a run that talks to the provider.

    When only rows not yet due are left (quiet hours, a send time, a long retry) the run ends ``waiting``
    and the hold stays, so the next run (the same cron line) has the credits; with ``wait`` it sleeps
    until the next row is due instead (``sleep(seconds)`` returns True when stopped) and carries on.
    """
    ledger = prepared.ledger
    if prepared.status in ("done", "cancelled"):
        assert prepared.campaign is not None
        return _report(prepared, None, 0, 0)
    queued = _queue(prepared) if prepared.status == "new" else 0
    campaign = prepared.campaign
    assert campaign is not None and prepared.provider is not None
    stored = ledger.campaign_settings(campaign.id)
    if stored.get("sender") != prepared.sender:  # the profile's sender changed since: record the one used now
        ledger.save_campaign_settings(campaign.id, {**stored, "sender": prepared.sender})
    if campaign.state == "done":  # a finished campaign reopened by a lookup that found nothing
        ledger.set_campaign_state(campaign.id, "open")
    from bulksend.fleet import lease_seconds, shared_rate

    ledger.hold_shortfall(campaign.id)  # only what is not held yet: senders joining one campaign hold it once
    settings = replace(engine_settings(prepared.provider, prepared.run, prepared.limit), rules=prepared.rules,
                       lease=lease_seconds(prepared.config))
    stop = stop or threading.Event()

    limiter = shared_rate(ledger, prepared.provider.profile.name, settings.rate)  # one rate per account
    released = 0
    result: EngineResult | None = None
    engine: Engine | None = None
    try:
        while True:
            engine = Engine(ledger, prepared.provider, campaign, settings, progress=progress, stop=stop,
                            limiter=limiter)
            if result is not None:  # a run that waited: its totals go on
                engine.stats = result.stats
            result = engine.run()
            if not (wait and result.reason is StopReason.WAITING and result.next_due is not None):
                break
            seconds = max(0.0, (result.next_due - datetime.now(timezone.utc)).total_seconds())
            if (sleep or (lambda wait_for: sleep_until_due(stop, wait_for)))(seconds):
                result.reason = StopReason.INTERRUPTED
                break
    finally:
        if limiter is not None:
            limiter.close()
        if result is None or result.reason is not StopReason.WAITING:
            if engine is not None and ledger.live_leases_of_others(campaign.id, engine.sender):
                released = ledger.trim_hold(campaign.id)  # other senders still pay from it: keep their share
            else:
                released = ledger.release(campaign.id)
        if not any(ledger.counts(campaign.id).get(s) for s in OPEN_STATES):
            ledger.set_campaign_state(campaign.id, "done")
    return _report(prepared, result, queued, released)


def _report(prepared: Prepared, result: EngineResult | None, queued: int, released: int) -> SendReport:
    ledger = prepared.ledger
    campaign = ledger.get_campaign(prepared.campaign.id)
    assert campaign is not None
    debited, refunded = ledger.campaign_credits(campaign.id)
    return SendReport(
        campaign=campaign,
        state=campaign.state,
        counts=ledger.counts(campaign.id),
        failures=ledger.failure_codes(campaign.id),
        credits_debited=debited,
        credits_refunded=refunded,
        status=prepared.status,
        result=result,
        queued=queued,
        released=released,
        limit=prepared.limit,
        source=prepared.spec.source if prepared.spec else None,
        rows=ledger.transmissions(campaign.id) if prepared.spec is not None and prepared.spec.send_one else [],
        hints=prepared.config.invocation,
        examples=prepared.estimate.report.previews if prepared.estimate is not None else [],
        **_rejects(prepared, ledger.campaign_settings(campaign.id)),
    )


def _rejects(prepared: Prepared, settings: dict[str, Any]) -> dict[str, Any]:
    """The list's rejects: from this run's validation, else as recorded when the campaign was queued."""
    if prepared.estimate is not None:
        table = prepared.estimate.table
        return {"rejected": table.rejected, "reasons": table.reasons()}
    return {"rejected": settings.get("rejected"), "reasons": settings.get("reasons")}


# ------------------------------------------------------------------------------------------- dry run


@dataclass
class DryRunReport:
    """What a run would send now, written to ``<home>/outbox/<campaign>.dry-run.jsonl``; nothing else changed."""

    campaign: str
    status: str
    path: Path
    messages: int
    credits: int
    suppressed: int  # queued rows on the opt-out list now: a real run fails them as suppressed
    unknown: int  # rows a real run would reconcile first
    available: int
    channel: str
    limit: int | None
    waiting: int = 0  # of ``messages``, those not due yet (quiet hours, a send time): each has a "due" in the file

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "state": "dry-run",
            "found": self.status,
            "dry_run": True,
            "file": str(self.path),
            "messages": self.messages,
            "credits": self.credits,
            "channel": self.channel,
            "available": self.available,
            "suppressed": self.suppressed,
            "unknown": self.unknown,
            "waiting": self.waiting,
            "counts": {"would_send": self.messages},
            "credits_debited": 0,
            "credits_refunded": 0,
        }


def dry_run_path(home: Path, campaign: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", campaign).lstrip(".") or "_"
    return home / "outbox" / f"{safe}.dry-run.jsonl"


def dry_run(prepared: Prepared) -> DryRunReport:
    """Write what a real run would send now, one JSON line per message. No ledger write, no provider call."""
    path = dry_run_path(prepared.config.home, prepared.name)
    from bulksend.private import FILE_MODE, private_dir

    private_dir(path.parent, root=prepared.config.home)
    limit = prepared.limit
    written = credits = suppressed = unknown = waiting = 0
    from bulksend.engine import _encoding

    now = datetime.now(timezone.utc)
    rules = prepared.rules
    scheduler = rules.scheduler() if rules is not None and (rules.quiet or rules.send_at) else None
    anchor = rules.anchor if rules is not None and rules.anchor else now

    tmp = path.with_suffix(".jsonl.tmp")
    # Each line is what json.dumps(record, ensure_ascii=False) writes, with the constant keys encoded once
    # and each string through the encoder's own escaping (tests/test_rendering.py compares the two).
    string = json.encoder.encode_basestring
    head = f'{{"campaign": {string(prepared.name)}, "to": '
    channel = f', "channel": {string(prepared.channel)}, "encoding": '
    due_text: dict[datetime, str] = {}  # a list has few distinct due times
    with open(tmp, "w", encoding="utf-8", opener=lambda p, flags: os.open(p, flags, FILE_MODE)) as out:

        def write(to: str, text: str, units: int, cost: int, row: int | None, encoding: str,
                  params: str | None, due: datetime | None = None) -> None:
            nonlocal waiting
            line = (f'{head}{string(to)}{channel}{string(encoding)}, "units": {int(units)}, "credits": {int(cost)}, '
                    f'"row": {"null" if row is None else int(row)}, "text": {string(text)}')
            if due is not None and due > now:  # a real run would defer it until then
                line += due_text.get(due) or due_text.setdefault(due, f', "due": {string(_utc_iso(due))}')
                waiting += 1
            if params:
                line += f', "params": {json.dumps(json.loads(params), ensure_ascii=False)}'
            out.write(line + "}\n")

        if prepared.status == "new":
            from bulksend.recipients import iter_messages

            assert prepared.estimate is not None and prepared.spec is not None
            spec = prepared.spec
            table = prepared.estimate.table
            row_params = RowParams(spec.params, table.bound.columns, spec.category) if spec.params else None
            for message in iter_messages(table):
                if limit is not None and written >= limit:
                    break
                due = scheduler.due(anchor, scheduler.zones(message.e164, message.country, message.timezone)) \
                    if scheduler is not None else None
                write(message.e164, message.text, message.units, message.credits, message.row, message.encoding,
                      row_params(message.fields) if row_params else None, due)
                written += 1
                credits += message.credits
        elif prepared.status == "resume":
            assert prepared.campaign is not None
            rows = prepared.ledger.transmissions(prepared.campaign.id, ("queued",))
            blocked = prepared.ledger.suppressed_among(r.e164 for r in rows)
            unknown = prepared.counts.get("unknown", 0) + prepared.counts.get("sending", 0)
            for row in rows:
                if row.e164 in blocked:
                    suppressed += 1
                    continue
                if limit is not None and written >= limit:
                    continue
                due = datetime.strptime(row.not_before, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc) \
                    if row.not_before else None
                write(row.e164, row.message, row.units, row.cost, row.row_number, _encoding(row.message),
                      row.params, due)
                written += 1
                credits += row.cost
    os.replace(tmp, path)
    return DryRunReport(
        prepared.name, prepared.status, path, written, credits, suppressed, unknown, prepared.available,
        prepared.channel, limit, waiting,
    )


# ------------------------------------------------------------------------------------------- send-one


def send_one_spec(
    number: str, message: str, *, provider: str | None, channel: str, region: str | None, run: RunOptions
) -> tuple[CampaignSpec, Path]:
    """A one-row campaign for ``send-one``: the number in a private temporary CSV, the text taken literally.

    The row goes through the same validation as a list (number, country, length; consent is the sender's
    own word, recorded as the attestation), and the same accounting. Returns the spec and the temporary file.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"send-one-{stamp}-{secrets.token_hex(3)}"
    handle, tmp = tempfile.mkstemp(prefix="bulksend-send-one-", suffix=".csv")
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
        import csv

        writer = csv.writer(out)
        writer.writerow(["phone"])
        writer.writerow([number])
    literal = message.replace("{", "{{").replace("}", "}}")  # a person's text: braces are just braces
    spec = CampaignSpec(
        name=name,
        recipients=Path(tmp),
        message=literal,
        channel=channel,
        provider=provider,
        region=region,
        assume_consent="person-to-person message (send-one)",
        phone_column="phone",
        delimiter=",",
        max_segments=10,
        run=run,
        source=None,
        send_one=True,
    )
    return spec, Path(tmp)


# ------------------------------------------------------------------------------------------ campaigns


@dataclass
class CampaignStatus:
    """A campaign as ``campaigns list`` and ``campaigns show`` present it."""

    campaign: Campaign
    counts: dict[str, int]
    failures: dict[str, int]
    credits_debited: int
    credits_refunded: int
    held: int
    settings: dict[str, Any]
    hints: Invocation = field(default_factory=Invocation)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def next_command(self) -> str | None:
        name = self.campaign.name
        if self.campaign.state == "cancelled":
            return self.hints.reconcile(name) if self.counts.get("unknown") else None
        if self.counts.get("queued") or self.counts.get("sending"):
            return self.hints.resume(name)
        if self.counts.get("unknown"):
            return self.hints.reconcile(name)
        return None

    def as_json(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "id": c.id,
            "campaign": c.name,
            "state": c.state,
            "channel": c.channel,
            "provider": c.provider,
            "created_at": c.created_at,
            "counts": every_state(self.counts),
            "total": self.total,
            "failures": self.failures,
            "credits_debited": self.credits_debited,
            "credits_refunded": self.credits_refunded,
            "held": self.held,
            "attestation": c.attestation,
            "source": self.settings.get("source"),
            "sender": self.settings.get("sender"),
            "next": self.next_command(),
            "purpose": self.settings.get("purpose"),
            "allow_content": self.settings.get("allow_content", []),
        }


def _status(ledger: SqliteLedger, campaign: Campaign, hints: Invocation = Invocation()) -> CampaignStatus:
    debited, refunded = ledger.campaign_credits(campaign.id)
    return CampaignStatus(
        campaign,
        ledger.counts(campaign.id),
        ledger.failure_codes(campaign.id),
        debited,
        refunded,
        ledger.held(campaign.id),
        ledger.campaign_settings(campaign.id),
        hints,
    )


def _find(config: Config, key: str, *, write: bool = True) -> tuple[SqliteLedger, Campaign]:
    """The ledger and the campaign named or numbered ``key`` (a name wins over an id that looks the same)."""
    ledger = open_for_write(config, create=False) if write else open_for_read(config)
    campaign = None
    if ledger is not None:
        campaign = ledger.get_campaign(key)
        if campaign is None and key.isdigit():
            campaign = ledger.get_campaign(int(key))
    if campaign is None:
        if ledger is not None:
            ledger.close()
        raise InputError(f"no campaign {key!r} in the ledger.", hint=f"List them with: {config.invocation.campaigns()}")
    return ledger, campaign


def list_campaigns(config: Config) -> list[CampaignStatus]:
    ledger = open_for_read(config)
    if ledger is None:
        return []
    with ledger:
        return [_status(ledger, c, config.invocation) for c in ledger.campaigns()]


def show_campaign(config: Config, key: str) -> CampaignStatus:
    ledger, campaign = _find(config, key, write=False)
    with ledger:
        return _status(ledger, campaign, config.invocation)


@dataclass(frozen=True)
class CancelReport:
    status: CampaignStatus
    released: int
    already: str | None  # "done" or "cancelled" when nothing changed


def cancel_campaign(config: Config, key: str) -> CancelReport:
    """Cancel: queued rows are never sent, the hold is released. Refused (exit 5) while a run is sending."""
    ledger, campaign = _find(config, key)
    with ledger:
        with CampaignLock.acquire(config.home, campaign.name):
            if campaign.state in ("done", "cancelled"):
                return CancelReport(_status(ledger, campaign, config.invocation), 0, campaign.state)
            with ledger.transaction():
                ledger.set_campaign_state(campaign.id, "cancelled")
                released = ledger.release(campaign.id)
            return CancelReport(_status(ledger, ledger.get_campaign(campaign.id), config.invocation), released, None)


@dataclass(frozen=True)
class ReconcileReport:
    status: CampaignStatus
    result: "ReconcileResult"
    recovered: int
    can_lookup: bool

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.INCOMPLETE if self.status.counts.get("unknown") else ExitCode.OK

    def as_json(self) -> dict[str, int]:
        """The ``reconciled`` object: looked_up = found + not_found + cannot_tell
        = found + assumed_sent + requeued + failed + still_unknown."""
        r = self.result
        return {
            "looked_up": r.looked_up,
            "found": r.found,
            "not_found": r.not_found,
            "cannot_tell": r.undecided,
            "assumed_sent": r.assumed_sent,
            "requeued": r.requeued,
            "failed": r.failed,
            "still_unknown": r.still_unknown,
            "recovered": self.recovered,
        }

    def summary(self) -> str:
        """One line whose two lists of counts each add up to the rows looked up (or decided)."""
        r = self.result
        name = self.status.campaign.name
        if not r.looked_up:
            return f"Campaign {name!r}: no message with an unknown outcome."
        if self.can_lookup:
            asked = (
                f"{r.looked_up:,} looked up: {r.found:,} found, {r.not_found:,} not found, "
                f"{r.undecided:,} the provider cannot tell"
            )
        else:
            asked = f"{r.looked_up:,} with an unknown outcome (the provider cannot look messages up)"
        became = [
            (r.found, "sent"),
            (r.assumed_sent, "sent on your word"),
            (r.requeued, "queued again"),
            (r.failed, "failed"),
            (r.still_unknown, "still unknown"),
        ]
        now = ", ".join(f"{n:,} {what}" for n, what in became if n)
        return f"Campaign {name!r}: {asked}; now {now}."


def reconcile(config: Config, key: str, *, assume: str | None = None, wait: bool = True) -> ReconcileReport:
    """``campaigns reconcile``: ask the provider about every ``unknown`` row, or apply the user's decision."""
    if assume not in (None, "sent", "failed", "queued"):
        raise InputError(f"--assume {assume!r}: choose sent, failed or queued.")
    ledger, campaign = _find(config, key)
    with ledger, CampaignLock.acquire(config.home, campaign.name):
        provider = open_campaign_provider(config, campaign.provider, campaign.channel, RunOptions())
        try:
            # Only rows the provider may have accepted can be debited here: hold what they cost.
            maybe = sum(r.cost for r in ledger.transmissions(campaign.id, ("unknown", "sending")))
            need = maybe - ledger.held(campaign.id)
            if need > 0 and assume != "failed":
                ledger.hold(campaign.id, campaign.channel, need)
            try:
                settings = replace(engine_settings(provider, RunOptions(), None), retry_unknown=False)
                result, recovered = reconcile_campaign(ledger, provider, campaign, settings, assume=assume, wait=wait)
            finally:
                ledger.release(campaign.id)
            if campaign.state == "open" and not any(ledger.counts(campaign.id).get(s) for s in OPEN_STATES):
                ledger.set_campaign_state(campaign.id, "done")
            return ReconcileReport(_status(ledger, ledger.get_campaign(campaign.id), config.invocation), result, recovered,
                                   provider.can_lookup)
        finally:
            provider.close()
