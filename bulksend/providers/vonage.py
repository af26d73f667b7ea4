"""The ``vonage`` provider: Vonage's SMS API (``POST /sms/json``), whose errors arrive inside HTTP 200 bodies."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import requests

from bulksend import hints
from bulksend.codes import Code, CodeTable
from bulksend.errors import ConfigError, ProviderError
from bulksend.providers import http_common
from bulksend.providers.base import (
    Delivery,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    WebhookRequest,
    WebhookSecrets,
    register,
)
from bulksend.receipts import Fault, InboundMessage, Receipt, ReceiptState

DEFAULT_BASE_URL = "https://rest.nexmo.com"
STATUS_DOCS = "https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms#sms-api-error-codes"
DLR_DOCS = "https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts#dlr-error-codes"

ACCEPTED, RETRYABLE, AMBIGUOUS, PERMANENT, FATAL = (
    OutcomeKind.ACCEPTED,
    OutcomeKind.RETRYABLE,
    OutcomeKind.AMBIGUOUS,
    OutcomeKind.PERMANENT,
    OutcomeKind.FATAL,
)

PROVIDER, RECIPIENT, SENDER = Fault.PROVIDER, Fault.RECIPIENT, Fault.SENDER

# Every non-zero ``messages[].status`` Vonage documents: what it means, and what it means for the run.
# docs/providers.md gives the reasoning of every row (a test keeps the two in step). A status not listed here is
# permanent with Vonage's own code and text: the message was refused, and a new code shows up by number.
VONAGE_SEND_CODES = CodeTable(STATUS_DOCS, {
    # Not accepted, and worth trying again later.
    1: Code("throttled: sending faster than the account's limit", RETRYABLE),
    10: Code("too many existing binds", RETRYABLE),
    # May have been accepted: Vonage's platform failed while processing it.
    5: Code("internal error at Vonage", AMBIGUOUS),
    # This recipient (or this message) will never work.
    2: Code("missing parameters", PERMANENT),
    3: Code("invalid parameters", PERMANENT),
    6: Code("invalid message: the number is not routable", PERMANENT),
    7: Code("the number is barred", PERMANENT),
    12: Code("message too long", PERMANENT),
    15: Code("sender ID not authorised for this destination", PERMANENT),
    22: Code("invalid network code", PERMANENT),
    23: Code("invalid callback URL", PERMANENT),
    33: Code("the number is de-activated", PERMANENT),
    # Nothing will work until the account or profile is fixed: stop the run, keep the rest queued.
    4: Code("invalid credentials", FATAL),
    8: Code("the account is barred (suspended)", FATAL),
    9: Code("partner quota exceeded: not enough credit", FATAL),
    11: Code("the account is not enabled for the HTTP SMS API", FATAL),
    14: Code("invalid signature", FATAL),
    29: Code("non-whitelisted destination (demo account)", FATAL),
    32: Code("a signed request may not also carry api_secret", FATAL),
})

# A delivery receipt's err-code (another code space: 9 here is an opt-out) and whose fault each is: only
# PROVIDER is refunded. Sources: Vonage, "SMS API delivery receipt error codes", and its support article "SMS
# Delivery Error Codes" (api.support.vonage.com, article 204014733); docs/webhooks.md gives the reasoning.
VONAGE_RECEIPT_CODES = CodeTable(DLR_DOCS, {
    0: Code("delivered"),
    1: Code("unknown: not delivered and no cause could be determined", fault=PROVIDER),
    5: Code("portability error", fault=PROVIDER),
    8: Code("network error", fault=PROVIDER),
    11: Code("unroutable: Vonage found no route for this message", fault=PROVIDER),
    16: Code("gateway quota exceeded", fault=PROVIDER),
    99: Code("general error", fault=PROVIDER),
    2: Code("absent subscriber (temporary): the handset was unavailable", fault=RECIPIENT),
    3: Code("absent subscriber (permanent): the number is no longer active", fault=RECIPIENT),
    4: Code("call barred by the user", fault=RECIPIENT),
    7: Code("handset busy", fault=RECIPIENT),
    9: Code("illegal number: the user asked not to receive messages from this service", fault=RECIPIENT),
    12: Code("destination unreachable", fault=RECIPIENT),
    13: Code("subscriber age restriction", fault=RECIPIENT),
    14: Code("number blocked by the carrier", fault=RECIPIENT),
    15: Code("prepaid subscriber with insufficient funds", fault=RECIPIENT),
    6: Code("anti-spam rejection by the carrier", fault=SENDER),
    10: Code("illegal message: error in a message parameter (e.g. the encoding)", fault=SENDER),
    50: Code("entity filter (10DLC / sender registration)", fault=SENDER),
    51: Code("header filter (sender ID)", fault=SENDER),
    52: Code("content filter", fault=SENDER),
    53: Code("consent filter", fault=SENDER),
    54: Code("regulation error", fault=SENDER),
})

# When every part of a message failed, the part whose class weighs most decides: a part that may have gone
# out (ambiguous) above all, since a row that is requeued or failed could then be sent twice or hidden.
_WEIGHT = {AMBIGUOUS: 5, FATAL: 4, OutcomeKind.OPTED_OUT: 3, PERMANENT: 2, RETRYABLE: 1}


def _number(value: Any) -> int | None:
    """A non-negative whole number sent as text ("0", "12") or as a JSON number; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


@register
class VonageProvider(Provider):
    """Sends SMS through Vonage's SMS API: one form-encoded POST per message, credentials in the form.

    Profile settings:
        api_key: the account's API key (public; it names the account).
        sender: the ``from``: an alphanumeric sender ID, or a Vonage number (a leading ``+`` is dropped).
        base_url: default https://rest.nexmo.com (a proxy, a test server).
        concurrency, timeout, connect_timeout: as for every HTTP provider.
    The secret is the API secret (``VONAGE_API_SECRET``, ``BULKSEND_<PROFILE>_SECRET`` or the keyring).

    A long message is split by Vonage, which answers with one entry per part; it counts as sent only when
    every part has status 0, and its provider id is the first part's ``message-id``. Vonage cannot be asked
    whether it holds a message (no lookup by recipient), so an unknown row waits for the user.
    """

    type_name: ClassVar[str] = "vonage"
    channels: ClassVar[frozenset[str]] = frozenset({"sms"})
    default_rate: ClassVar[float] = 30.0  # Vonage's default SMS API throughput per API key
    max_body: ClassVar[int] = 1600
    needs_secret: ClassVar[bool] = True
    secret_env: ClassVar[str | None] = "VONAGE_API_SECRET"
    can_lookup: ClassVar[bool] = False
    send_codes: ClassVar[CodeTable] = VONAGE_SEND_CODES
    receipt_codes: ClassVar[CodeTable] = VONAGE_RECEIPT_CODES

    def __init__(self, profile, secret, home) -> None:
        super().__init__(profile, secret, home)
        if not secret:
            raise ConfigError(f"provider profile {profile.name!r} has no secret.")
        self.api_key = str(profile.require("api_key")).strip()
        sender = str(profile.require("sender")).strip()
        # Vonage wants numbers without the "+"; an alphanumeric sender ID is sent as it is.
        self.sender = sender[1:] if sender.startswith("+") and sender[1:].isdigit() else sender
        base_url = str(profile.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"provider profile {profile.name!r}: base_url must start with https://.")
        self.base_url = base_url
        self._send_url = f"{base_url}/sms/json"
        self._balance_url = f"{base_url}/account/get-balance"
        self._timeouts = http_common.timeouts(profile)
        # The secret travels in a form body and a query string: scrub it as it is and as either encodes it.
        self._scrub = http_common.Scrubber([secret, quote_plus(secret), quote(secret, safe="")])
        self._session = http_common.make_session(
            http_common.pool_size(profile), deadline=http_common.deadline(profile)
        )

    # -- sending ---------------------------------------------------------------------------------------------

    def form(self, delivery: Delivery) -> dict[str, str]:
        """The form fields of the send request for one delivery (the secret included: never log this)."""
        fields = {
            "api_key": self.api_key,
            "api_secret": self.secret or "",
            "from": self.sender,
            "to": delivery.to.removeprefix("+"),
            "text": delivery.text,
            "client-ref": str(delivery.transmission_id),
        }
        if delivery.encoding == "UCS-2":
            fields["type"] = "unicode"
        return fields

    def send(self, delivery: Delivery) -> Outcome:
        if delivery.channel not in self.channels:
            return Outcome(PERMANENT, code="unsupported_channel", text=f"no {delivery.channel} channel")
        try:
            response = self._session.post(
                self._send_url, data=self.form(delivery), timeout=self._timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            return http_common.classify_transport_error(exc, self._scrub, self._timeouts[1])
        return self.classify(response)

    def classify(self, response: requests.Response) -> Outcome:
        """The outcome of one send request that got an HTTP answer."""
        status = response.status_code
        retry_after = http_common.parse_retry_after(response.headers.get("Retry-After"))
        if not 200 <= status < 300:
            text = self._scrub(f"HTTP {status}: {http_common.body_excerpt(response)}")
            return http_common.classify_http_status(status, f"http_{status}", text, retry_after)
        return self._classify_parts(http_common.json_body(response), status, retry_after)

    def _classify_parts(self, body: Any, status: int, retry_after: float | None) -> Outcome:
        def unclear(why: str) -> Outcome:
            # Vonage may well have taken it: never count it as sent, never send it blindly again.
            text = http_common.short(f"HTTP {status} with {why}; it may have been sent")
            return Outcome(AMBIGUOUS, code=f"http_{status}", text=self._scrub(text))

        if not isinstance(body, dict):
            return unclear("a body that is not a JSON object" if body is not None else "a body that is not JSON")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return unclear("no messages in the body")
        if not all(isinstance(part, dict) for part in messages):
            return unclear("a message entry that is not an object")
        statuses = [_number(part.get("status")) for part in messages]
        if None in statuses:
            return unclear("a message entry without a numeric status")
        count = _number(body.get("message-count"))
        if count != len(messages):
            return unclear(f"message-count {body.get('message-count')!r} but {len(messages)} message entries")

        numbered = enumerate(zip(messages, statuses, strict=True), 1)
        failed = [(n, part, code) for n, (part, code) in numbered if code != 0]
        if not failed:
            ids = [part.get("message-id") for part in messages]
            if not all(isinstance(i, str) and i.strip() for i in ids):
                return unclear("an accepted part without a message-id")
            return Outcome(ACCEPTED, provider_id=ids[0].strip())

        if len(failed) < len(messages):
            # Some parts went out: the recipient may hold a fragment, and sending again would repeat it.
            n, part, code = failed[0]
            return Outcome(
                AMBIGUOUS,
                code="partial",
                text=self._scrub(
                    http_common.short(
                        f"Vonage accepted {len(messages) - len(failed)} of {len(messages)} parts; part {n} got "
                        f"status {code} ({self._part_text(part, code)}); the recipient may have a fragment"
                    )
                ),
            )

        n, part, code = max(failed, key=lambda item: _WEIGHT[self._kind(item[2])])
        kind = self._kind(code)
        text = self._part_text(part, code)
        if len(messages) > 1:
            text = f"{text} (part {n} of {len(messages)}; no part was accepted)"
        return Outcome(
            kind,
            code=str(code),
            text=self._scrub(http_common.short(text)),
            retry_after=retry_after if kind is RETRYABLE else None,
        )

    @staticmethod
    def _kind(code: int) -> OutcomeKind:
        return VONAGE_SEND_CODES.send(code) or PERMANENT

    @staticmethod
    def _part_text(part: dict[str, Any], code: int) -> str:
        text = part.get("error-text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        return VONAGE_SEND_CODES.meaning(code) or f"status {code}, not documented by Vonage"

    # -- checking --------------------------------------------------------------------------------------------

    def check(self) -> str:
        """Read the account balance: ``GET /account/get-balance`` with the key and secret in the query."""
        params = {"api_key": self.api_key, "api_secret": self.secret or ""}
        try:
            response = self._session.get(
                self._balance_url, params=params, timeout=self._timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            detail = http_common.describe(exc, self._scrub)
            raise ProviderError(f"cannot reach Vonage at {self._scrub(self.base_url)} ({detail}).") from None
        body = http_common.json_body(response)
        answer = body if isinstance(body, dict) else {}
        value = answer.get("value")
        if response.status_code == 200 and isinstance(value, int | float) and not isinstance(value, bool):
            reload = " (auto-reload on)" if answer.get("autoReload") is True else ""
            return f"vonage account {self.api_key}: balance {value} EUR{reload}"
        where = f"HTTP {response.status_code}"
        text = self._scrub(http_common.body_excerpt(response))
        if response.status_code in (401, 403):
            raise ConfigError(
                f"Vonage refused the credentials of profile {self.profile.name!r} ({where}: {text}).",
                hint=(
                    "Check api_key in config.toml and the API secret "
                    f"(where it comes from: {hints.current().providers()}; "
                    f"to store it: {hints.current().login(self.profile.name)})."
                ),
            )
        raise ProviderError(f"Vonage balance check failed ({where}: {text}).")

    def interrupt(self) -> None:
        self._session.interrupt()

    def close(self) -> None:
        self._session.close()

    # -- webhooks (docs/webhooks.md) -------------------------------------------------------------------------

    webhook_verified_by: ClassVar[str] = "Vonage's signature (sig) with the signature secret"

    @classmethod
    def webhook_signed(cls, profile: Profile, secrets: WebhookSecrets) -> bool:
        return bool(secrets.webhook_secret)

    @classmethod
    def signature(cls, secret: str, fields: dict[str, str], method: str = "md5hash") -> str:
        """Vonage's ``sig`` (https://developer.vonage.com/en/getting-started/concepts/signing-messages): every
        field but ``sig``, sorted by name, as ``&name=value`` with ``&`` and ``=`` in values turned into ``_``;
        then MD5 of that text followed by the secret ("MD5 hash", the default), or an HMAC keyed with it."""
        text = "".join(
            f"&{name}={fields[name].replace('&', '_').replace('=', '_')}" for name in sorted(fields) if name != "sig"
        )
        if method == "md5hash":
            return hashlib.md5((text + secret).encode("utf-8")).hexdigest()
        return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), SIGNATURE_METHODS[method]).hexdigest()

    @classmethod
    def verify_webhook(cls, profile: Profile, request: WebhookRequest, secrets: WebhookSecrets) -> bool:
        fields = request.fields()
        key = fields.get("api-key")
        if key and profile.get("api_key") and key != str(profile.get("api_key")).strip():
            return False  # another account's request
        if not cls.webhook_signed(profile, secrets):
            return Provider.verify_webhook.__func__(cls, profile, request, secrets)
        given = fields.get("sig", "").strip().lower()
        method = str(profile.get("signature_method") or "md5hash").strip().lower()
        if not given or method not in ("md5hash", *SIGNATURE_METHODS):
            return False
        expected = cls.signature(secrets.webhook_secret or "", fields, method)
        return hmac.compare_digest(expected.encode(), given.encode())

    @classmethod
    def parse_report(cls, profile: Profile, request: WebhookRequest) -> list:
        fields = request.fields()
        status = (fields.get("status") or "").strip().lower()
        if not status or "text" in fields:
            return []
        state = VONAGE_RECEIPT_STATES.get(status, ReceiptState.ACCEPTED)
        code = (fields.get("err-code") or "").strip() or None
        fault = text = None
        if state is ReceiptState.UNDELIVERED or (code not in (None, "0") and state is not ReceiptState.DELIVERED):
            state = ReceiptState.UNDELIVERED
            fault, text = VONAGE_RECEIPT_CODES.failure(code)
            text = text or (f"Vonage err-code {code}" if code else status)
        reference = (fields.get("client-ref") or "").strip()
        return [
            Receipt(
                profile=profile.name,
                state=state,
                provider_id=(fields.get("messageId") or "").strip() or None,
                transmission_id=int(reference) if reference.isdigit() else None,
                status=status,
                code=code,
                text=text,
                fault=fault,
                opt_out=code == "9",
                reported_at=_scts(fields.get("scts")) or _vonage_time(fields.get("message-timestamp")),
                exact_id=False,  # one receipt per part, each with the part's own id
            )
        ]

    @classmethod
    def parse_inbound(cls, profile: Profile, request: WebhookRequest) -> list:
        fields = request.fields()
        if "text" not in fields or not fields.get("msisdn"):
            return []
        digits = fields["msisdn"].strip().lstrip("+")
        return [
            InboundMessage(
                profile=profile.name,
                sender=f"+{digits}" if digits.isdigit() else digits,
                text=fields.get("text") or "",
                provider_id=(fields.get("messageId") or "").strip() or None,
                channel="sms",
                received_at=_vonage_time(fields.get("message-timestamp")),
            )
        ]


SIGNATURE_METHODS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

VONAGE_RECEIPT_STATES: dict[str, ReceiptState] = {
    "accepted": ReceiptState.ACCEPTED,
    "buffered": ReceiptState.ACCEPTED,
    "unknown": ReceiptState.ACCEPTED,  # Vonage has it; the carrier gave no final word
    "delivered": ReceiptState.DELIVERED,
    "expired": ReceiptState.UNDELIVERED,
    "failed": ReceiptState.UNDELIVERED,
    "rejected": ReceiptState.UNDELIVERED,
}

def _scts(value: str | None) -> str | None:
    """A DLR's ``scts`` (YYMMDDHHMM, the carrier's UTC time of the event) in the ledger's timestamp format."""
    text = (value or "").strip()
    if len(text) != 10 or not text.isdigit():
        return None
    try:
        moment = datetime.strptime(text, "%y%m%d%H%M")
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _vonage_time(value: str | None) -> str | None:
    """``message-timestamp`` (``2020-01-01 12:00:00``, UTC) in the ledger's timestamp format."""
    try:
        moment = datetime.strptime((value or "").strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
