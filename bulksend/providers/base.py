"""The provider interface every adapter implements, its outcome types, and the registry by type name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from bulksend.codes import NO_CODES, CodeTable
from bulksend.errors import ConfigError


class OutcomeKind(StrEnum):
    """How the engine must treat one send attempt (DESIGN.md, "Transmissions")."""

    ACCEPTED = "accepted"  # the provider took it: debit, state sent
    RETRYABLE = "retryable"  # certainly not accepted (connect error, 429, throttling): queue again with backoff
    AMBIGUOUS = "ambiguous"  # may have been accepted (read timeout, dropped after sending, 5xx): state unknown
    PERMANENT = "permanent"  # this recipient will never work (invalid number, landline, filtered): failed
    OPTED_OUT = "opted_out"  # the recipient opted out at the provider: failed, and added to the opt-out list
    FATAL = "fatal"  # nothing will work (bad credentials, suspended, out of funds): stop the run


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classified result of one send attempt. Adapters return it; they never raise for a recipient."""

    kind: OutcomeKind
    provider_id: str | None = None
    code: str | None = None  # the provider's own error code, as text
    text: str | None = None  # the provider's message, or ours for transport errors (never a secret)
    retry_after: float | None = None  # seconds the provider asked us to wait (Retry-After), if any


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to hand to a provider: what the engine claimed from the ledger."""

    transmission_id: int
    campaign: str
    to: str  # E.164
    text: str
    channel: str  # "sms" or "whatsapp"
    encoding: str = "GSM-7"  # "GSM-7" or "UCS-2" (some APIs need to be told)
    params: dict[str, Any] = field(default_factory=dict)  # template parameters (WhatsApp, Twilio ContentSid)


class LookupResult(StrEnum):
    """What a provider's records say about a message whose fate is unknown."""

    FOUND = "found"  # the provider has it: it was accepted
    NOT_FOUND = "not_found"  # the provider certainly does not have it: safe to send again
    CANNOT_TELL = "cannot_tell"  # the provider cannot be asked, or did not answer: leave it unknown


class StatusKind(StrEnum):
    """Where an accepted message is, as the provider's records say (``campaigns refresh``)."""

    DELIVERED = "delivered"  # final: it reached the handset (or the channel says read)
    UNDELIVERED = "undelivered"  # final: it will not arrive (code and text say why)
    PENDING = "pending"  # not final yet: queued, sending, sent to the carrier… ask again later
    CANNOT = "cannot"  # the provider cannot be asked, or did not answer usefully: nothing to record


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """The answer of ``Provider.fetch_status`` for one message."""

    kind: StatusKind
    status: str | None = None  # the provider's own word (Twilio: queued, sent, delivered, undelivered…)
    code: str | None = None
    text: str | None = None
    at: datetime | None = None  # when the provider last changed it, if it says
    retry_after: float | None = None  # the provider asked us to slow down (HTTP 429)


@dataclass(frozen=True)
class Profile:
    """A provider profile from config.toml ([providers.NAME]); never holds a secret."""

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    def require(self, key: str) -> Any:
        value = self.settings.get(key)
        if value in (None, ""):
            raise ConfigError(
                f"provider profile {self.name!r} needs {key!r}.",
                hint=f"Add {key} = \"…\" under [providers.{self.name}] in config.toml.",
            )
        return value


class Provider(ABC):
    """Base of every adapter. Subclasses state their limits as class attributes and implement send.

    Attributes:
        type_name: the registry name used as ``type`` in a profile.
        channels: the channels this provider can send on.
        default_rate: messages per second when the profile does not set ``rate``.
        max_body: the longest text body the API accepts, in characters.
        needs_secret: whether ``secret`` must be given (from the environment or the keyring).
        secret_env: the provider-specific environment variable for the secret, if any.
        send_codes: the provider's documented codes on a send answer: meaning and class (``bulksend.codes``).
        receipt_codes: its documented codes in a delivery receipt: meaning and whose fault (only the
            provider's is refunded). The same table as ``send_codes`` where the provider has one set of codes.
    """

    type_name: ClassVar[str]
    channels: ClassVar[frozenset[str]]
    default_rate: ClassVar[float] = 10.0
    max_body: ClassVar[int] = 1600
    needs_secret: ClassVar[bool] = True
    secret_env: ClassVar[str | None] = None
    can_lookup: ClassVar[bool] = False
    can_fetch_status: ClassVar[bool] = False
    send_codes: ClassVar[CodeTable] = NO_CODES
    receipt_codes: ClassVar[CodeTable] = NO_CODES

    @classmethod
    def secret_env_vars(cls, profile: Profile) -> tuple[str, ...]:
        """The provider's own environment variables that may hold this profile's secret, in order."""
        return (cls.secret_env,) if cls.secret_env else ()

    @classmethod
    def settings_from_env(cls, profile: Profile, environ: Mapping[str, str]) -> dict[str, str]:
        """Settings the profile lacks that the provider's usual environment variables supply: {key: variable}.

        Only identifiers (an account or key id), never the secret. None by default.
        """
        return {}

    def __init__(self, profile: Profile, secret: str | None, home: Path) -> None:
        self.profile = profile
        self.secret = secret
        self.home = home

    @property
    def rate(self) -> float:
        return float(self.profile.get("rate", self.default_rate))

    @abstractmethod
    def send(self, delivery: Delivery) -> Outcome:
        """Send one message and classify the outcome. Must be thread-safe; must not raise for a recipient."""

    def lookup(self, delivery: Delivery, sent_after: datetime) -> tuple[LookupResult, str | None]:
        """Ask the provider whether it holds this message (for reconciliation): (result, provider id)."""
        return LookupResult.CANNOT_TELL, None

    def fetch_status(self, provider_id: str) -> MessageStatus:
        """The delivery status of one accepted message, by the provider's id for it (polling receipts).

        Providers that cannot be asked (``can_fetch_status`` false) answer CANNOT: their receipts come
        by webhook. Must not raise for one message; may raise ConfigError when the credentials are refused.
        """
        return MessageStatus(StatusKind.CANNOT)

    @abstractmethod
    def check(self) -> str:
        """A harmless live call proving the profile works; returns a one-line summary or raises ConfigError."""

    def interrupt(self) -> None:
        """Cut the requests in flight short (the run is stopping); called from another thread. Optional."""

    def close(self) -> None:
        """Release pooled connections and open files."""

    def __repr__(self) -> str:  # never show the secret, whatever a subclass stores
        return f"<{type(self).__name__} profile={self.profile.name!r}>"

    # -- webhooks (docs/webhooks.md): class methods, so the receiver needs no API session ---------------------

    #: What ``webhooks urls`` says verifies this provider's requests.
    webhook_verified_by: ClassVar[str] = "secret token in the URL path"
    #: The body the provider expects as an acknowledgement (content type, bytes).
    webhook_ack: ClassVar[tuple[str, bytes]] = ("text/plain; charset=utf-8", b"ok\n")

    @classmethod
    def webhook_signed(cls, profile: Profile, secrets: "WebhookSecrets") -> bool:
        """Whether the provider signs this profile's requests (else a secret token in the URL path guards it)."""
        return False

    @classmethod
    def verify_webhook(cls, profile: Profile, request: "WebhookRequest", secrets: "WebhookSecrets") -> bool:
        """Whether ``request`` certainly comes from the provider. By default: the path token matches."""
        import hmac

        return bool(secrets.token) and hmac.compare_digest(request.path_token.encode(), secrets.token.encode())

    @classmethod
    def webhook_handshake(cls, profile: Profile, request: "WebhookRequest", secrets: "WebhookSecrets") -> bytes | None:
        """The answer to a subscription handshake (Meta's GET ``hub.challenge``), or None when it is not one."""
        return None

    @classmethod
    def parse_report(cls, profile: Profile, request: "WebhookRequest") -> list:
        """The delivery receipts (``bulksend.receipts.Receipt``) a verified request carries; [] when none."""
        return []

    @classmethod
    def parse_inbound(cls, profile: Profile, request: "WebhookRequest") -> list:
        """The inbound messages (``bulksend.receipts.InboundMessage``) a verified request carries; [] when none."""
        return []

    @classmethod
    def status_receipt(cls, profile: Profile, transmission_id: int, provider_id: str | None,
                       status: MessageStatus):
        """A final answer of ``fetch_status`` (``campaigns refresh``) as a ``Receipt``, classified as the
        adapter classifies its webhooks; by default whose fault a failure is stays unknown (never refunded)."""
        from bulksend.ledger import utc_timestamp
        from bulksend.receipts import Fault, Receipt, ReceiptState

        delivered = status.kind is StatusKind.DELIVERED
        return Receipt(
            profile.name, ReceiptState.DELIVERED if delivered else ReceiptState.UNDELIVERED, provider_id,
            transmission_id, status.status, None if delivered else status.code,
            None if delivered else status.text, None if delivered else Fault.UNKNOWN,
            reported_at=utc_timestamp(status.at) if status.at else None,
        )


_REGISTRY: dict[str, type[Provider]] = {}
# Adapters live in their own modules and register on import; listed here so lookup by name is lazy.
_MODULES = {
    "outbox": "bulksend.providers.outbox",
    "twilio": "bulksend.providers.twilio",
    "vonage": "bulksend.providers.vonage",
    "whatsapp": "bulksend.providers.whatsapp",
    "http": "bulksend.providers.http",
}


def register(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make an adapter available under its ``type_name``."""
    _REGISTRY[cls.type_name] = cls
    return cls


def provider_class(type_name: str) -> type[Provider]:
    if type_name not in _REGISTRY and type_name in _MODULES:
        try:
            importlib.import_module(_MODULES[type_name])
        except ModuleNotFoundError as exc:
            if exc.name != _MODULES[type_name]:
                raise
    if type_name not in _REGISTRY:
        known = ", ".join(provider_types())
        raise ConfigError(f"unknown provider type {type_name!r}.", hint=f"Known types: {known}.")
    return _REGISTRY[type_name]


def provider_types() -> list[str]:
    """Every provider type that is implemented (importing each adapter module that exists)."""
    for name, module in _MODULES.items():
        if name not in _REGISTRY:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
    return sorted(_REGISTRY)


def create_provider(profile: Profile, secret: str | None, home: Path) -> Provider:
    return provider_class(profile.type)(profile, secret, home)


@dataclass(frozen=True)
class WebhookSecrets:
    """What verifies one profile's webhooks; never printed. ``token``: the URL path token (and Meta's verify
    token); ``secret``: the profile's API secret (Twilio's auth token); ``webhook_secret``: Meta's app secret,
    Vonage's signature secret, or Twilio's auth token when the profile sends with an API key."""

    token: str = ""
    secret: str | None = None
    webhook_secret: str | None = None

    def __repr__(self) -> str:
        return "<WebhookSecrets ***>"


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request to a profile's endpoint, as the provider made it.

    ``url`` is the public URL the provider called (``[webhooks] public_url`` + path + query), which is what
    Twilio signs; ``body`` the raw bytes (what Meta signs); ``form`` the decoded form fields, in order.
    """

    method: str
    url: str
    path_token: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    form: tuple[tuple[str, str], ...] = ()
    json: Any = None

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def query_value(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def form_value(self, name: str) -> str | None:
        return next((v for k, v in self.form if k == name), None)

    def fields(self) -> dict[str, str]:
        """Query, form and top-level JSON fields merged (the last wins): how Vonage's GET/POST/JSON look alike."""
        merged = {k: v for k, v in self.query}
        merged.update({k: v for k, v in self.form})
        if isinstance(self.json, dict):
            merged.update({str(k): v if isinstance(v, str) else json_text(v) for k, v in self.json.items()})
        return merged


def json_text(value: Any) -> str:
    """A JSON scalar as the text a form would have carried."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
