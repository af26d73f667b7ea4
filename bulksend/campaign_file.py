"""The campaign file and what a ``send`` was asked to do: its keys, the spec, a row's template parameters, the identity.

A campaign file (TOML, docs/configuration.md) names the list, the message, how to read and price it and how to
send; ``build_spec`` lays the flags on top. ``fingerprint`` is what makes two runs the same campaign.
Nothing here touches the ledger or a provider.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import tempfile
import tomllib
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulksend.errors import InputError
from bulksend.schema import RUN_LIMITS, TYPO_CUTOFF, clip

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.providers.base import Provider

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


def check_template_provider(spec: CampaignSpec, provider: "Provider") -> None:
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
