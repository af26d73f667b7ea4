"""The ``whatsapp`` provider: Meta's WhatsApp Cloud API (``POST /{version}/{phone_number_id}/messages``).

What ``Delivery.params`` means to this adapter — the contract with the campaign layer, which fills it:

* **No ``"template"`` key: a free-form text message.** ``delivery.text`` is the body, link previews off.
  WhatsApp delivers free-form messages only inside the 24-hour customer service window (the person wrote
  to the business in the last 24 hours); outside it Meta answers 131047 and that row fails. The campaign
  layer sends text only when the campaign says its recipients are inside the window. Any other keys (a
  row's merge fields, for example) are ignored.
* **A ``"template"`` key: a template message** (how business-initiated campaigns are sent)::

      {
          "template": "spring_sale",    # required: the approved template's name
          "language": "en_US",          # required: the template's language (locale) code
          "category": "marketing",      # optional: marketing | utility | authentication; for pricing, never sent
          "body": ["Ann", "SPRING10"],  # optional: the body's variables {{1}}, {{2}}… in order
          "header": ["Spring"],         # optional: the text header's variables, in order
      }

  It is sent as ``"type": "template"`` with ``"template": {"name", "language": {"code"}, "components"}``:
  a ``header`` component, then a ``body`` component, each parameter ``{"type": "text", "text": value}``.
  A component without values is left out (a template without variables sends no ``components``). Values
  are text; numbers are written as text. ``"buttons"`` is not supported yet.

  What the campaign gives every row alike is checked before anything is sent: a template without a name or
  a language, a header or body that is not a list, a value that is not text or a number, or any buttons
  stop the run (FATAL, code ``bad_template_params`` or ``unsupported_params``) with the rest left queued.
  An empty value concerns one row: that row fails (PERMANENT, ``empty_parameter``), without a request.

Every Meta error code this adapter knows is classified in ``WHATSAPP_CODES``; docs/providers.md gives the
source of each and why it is classed so. The Cloud API cannot list sent messages, so ``lookup`` cannot tell:
an ambiguous row stays ``unknown`` until ``campaigns reconcile`` (the user decides) or ``--retry-unknown``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from bulksend import hints
from bulksend.codes import Code, CodeTable
from bulksend.errors import ConfigError, ProviderError
from bulksend.providers import http_common
from bulksend.providers.base import (
    Delivery,
    LookupResult,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    WebhookRequest,
    WebhookSecrets,
    register,
)
from bulksend.receipts import Fault, InboundMessage, Receipt, ReceiptState

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
CHECK_FIELDS = "display_phone_number,verified_name,quality_rating"
ERROR_DOCS = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes"
MAX_TEXT_BODY = 4096  # characters in a text message body (Cloud API limit)

#: Seconds to wait before writing to the same person again after 131056. Meta allows about one message every
#: 6 seconds per (business number, recipient) pair, and a burst borrows from the time after it; a minute
#: covers a burst of ten. A Retry-After header, when Meta sends one, wins.
PAIR_RATE_WAIT = 60.0
#: Seconds to wait after 131057 (maintenance mode): a throughput upgrade makes the number unusable for up
#: to a minute.
MAINTENANCE_WAIT = 60.0

ACCEPTED, RETRYABLE, AMBIGUOUS, PERMANENT, OPTED_OUT, FATAL = (
    OutcomeKind.ACCEPTED,
    OutcomeKind.RETRYABLE,
    OutcomeKind.AMBIGUOUS,
    OutcomeKind.PERMANENT,
    OutcomeKind.OPTED_OUT,
    OutcomeKind.FATAL,
)

PROVIDER, RECIPIENT, SENDER = Fault.PROVIDER, Fault.RECIPIENT, Fault.SENDER

# Meta's error codes, one set for both moments: on the send request (the send class) and in a failed status
# webhook's errors[] (whose fault: only PROVIDER is refunded). Reports print the meaning. docs/providers.md gives
# why each is classed so on send (a test keeps the two in step), docs/webhooks.md why each fault. Besides these:
# 200-299 (API permission) are fatal; 100 with error_subcode 33 (no such phone number id for this token) is fatal;
# an unknown code is permanent, unless the HTTP status says more (429 retryable, 5xx ambiguous, 401/403/404
# fatal); in a receipt, its fault is unknown.
WHATSAPP_CODES = CodeTable(ERROR_DOCS, {
    # Throttled or refused at the door: certainly not accepted, worth trying again later.
    4: Code("the app reached its API call rate limit", RETRYABLE),
    80007: Code("the WhatsApp Business Account reached its rate limit", RETRYABLE),
    130429: Code("Cloud API message throughput reached", RETRYABLE, SENDER),
    131056: Code("pair rate limit: too many messages to this recipient in a short time", RETRYABLE, SENDER),
    131057: Code("the business account is in maintenance mode", RETRYABLE),
    # Failed inside Meta for a reason Meta does not know: the message may or may not exist.
    1: Code("unknown API error", AMBIGUOUS, PROVIDER),
    2: Code("the API is temporarily unavailable", AMBIGUOUS, PROVIDER),
    131000: Code("something went wrong (unknown error)", AMBIGUOUS, PROVIDER),
    131016: Code("a service is temporarily unavailable", AMBIGUOUS, PROVIDER),
    # The recipient said no.
    131050: Code("the recipient stopped marketing messages from this business", OPTED_OUT, RECIPIENT),
    # This recipient, or this one message, will never work.
    100: Code("invalid parameter", PERMANENT),
    130472: Code("the recipient's number is part of an experiment", PERMANENT, PROVIDER),
    130497: Code("the business may not message users in this country", PERMANENT),
    131008: Code("a required parameter is missing", PERMANENT),
    131009: Code("a parameter value is not valid", PERMANENT),
    131021: Code("the recipient is the sender", PERMANENT, SENDER),
    131026: Code("message undeliverable (not on WhatsApp, an old app, or the terms not accepted)", PERMANENT, RECIPIENT),
    131047: Code("more than 24 hours since the recipient last wrote: only a template may be sent", PERMANENT, SENDER),
    131049: Code("Meta did not deliver it to keep engagement healthy (per-user marketing limit)", PERMANENT, PROVIDER),
    131051: Code("unsupported message type", PERMANENT, SENDER),
    132005: Code("the template's text is too long once filled in", PERMANENT, SENDER),
    132007: Code("the filled-in template violates the format character policy", PERMANENT, SENDER),
    132012: Code("a template parameter is not in the template's format", PERMANENT, SENDER),
    # Nothing will work until the token, the account, the number or the template is fixed.
    0: Code("authentication failed (the access token expired or was invalidated)", FATAL),
    3: Code("capability or permission issue", FATAL),
    10: Code("permission denied", FATAL),
    33: Code("the business phone number has been deleted", FATAL),
    190: Code("the access token expired", FATAL),
    368: Code("temporarily blocked for policy violations", FATAL, SENDER),
    131005: Code("access denied", FATAL),
    131031: Code("the business account is locked", FATAL),
    131037: Code("the business number needs display name approval", FATAL),
    131042: Code("business eligibility payment issue", FATAL, SENDER),
    131045: Code("incorrect certificate (phone number registration)", FATAL),
    131048: Code("spam rate limit: sending from this number is restricted", FATAL, SENDER),
    132000: Code("the number of template parameters does not match the template", FATAL, SENDER),
    132001: Code("the template does not exist in this language, or is not approved", FATAL, SENDER),
    132015: Code("the template is paused for low quality", FATAL, SENDER),
    132016: Code("the template is disabled", FATAL, SENDER),
    133010: Code("the business phone number is not registered", FATAL),
    # Only in status webhooks: the message was accepted, then not delivered.
    131052: Code("media download error", fault=SENDER),
    131053: Code("media upload error", fault=SENDER),
})
API_PERMISSION_CODES = range(200, 300)  # "API Permission": permission not granted or removed (fatal)
UNKNOWN_OBJECT_SUBCODE = 33  # with code 100: the phone number id does not exist for this token (fatal)

#: Waits that go with a retryable code when Meta sends no Retry-After.
DEFAULT_WAITS: dict[int, float] = {131056: PAIR_RATE_WAIT, 131057: MAINTENANCE_WAIT}

_API_VERSION = re.compile(r"v\d+\.\d+")


def error_class(code: int | None, subcode: int | None = None) -> OutcomeKind | None:
    """The class of a Meta error code (with its subcode), or None when the code is not one we know."""
    if code is None:
        return None
    if code == 100 and subcode == UNKNOWN_OBJECT_SUBCODE:
        return FATAL
    if (known := WHATSAPP_CODES.send(code)) is not None:
        return known
    if code in API_PERMISSION_CODES:
        return FATAL
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def message_id(body: Any) -> str | None:
    """``messages[0].id`` (the wamid) of a send answer, or None when the answer does not have one."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return None
    wamid = messages[0].get("id")
    return wamid if isinstance(wamid, str) and wamid.strip() else None


class _Unsendable(Exception):
    """The delivery cannot become a request; carries the outcome to report instead of sending."""

    def __init__(self, kind: OutcomeKind, code: str, text: str) -> None:
        super().__init__(text)
        self.outcome = Outcome(kind, code=code, text=text)


def _bad_params(text: str) -> _Unsendable:
    return _Unsendable(FATAL, "bad_template_params", text)


def _text_values(params: dict[str, Any], component: str) -> list[str]:
    """The text values of one template component (``header`` or ``body``), checked."""
    values = params.get(component)
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        raise _bad_params(f"template parameters {component!r} must be a list of values, not {type(values).__name__}")
    texts = []
    for position, value in enumerate(values, start=1):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = ""  # an empty cell, however the CSV reader spelled it
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _bad_params(f"{component} parameter {position} must be text, not {type(value).__name__}")
        text = value if isinstance(value, str) else str(value)
        if not text.strip():
            raise _Unsendable(PERMANENT, "empty_parameter", f"{component} parameter {position} is empty")
        texts.append(text)
    return texts


def template_object(params: dict[str, Any]) -> dict[str, Any]:
    """The ``template`` object of a send request, from the params shape in this module's docstring."""
    name = params.get("template")
    if not isinstance(name, str) or not name.strip():
        raise _bad_params("params['template'] must be the template's name")
    language = params.get("language")
    if not isinstance(language, str) or not language.strip():
        raise _bad_params(f"template {name!r} needs a language code (params['language'], e.g. 'en_US')")
    if params.get("buttons"):
        raise _Unsendable(FATAL, "unsupported_params", "template button parameters are not supported yet")
    components = []
    for component in ("header", "body"):
        texts = _text_values(params, component)
        if texts:
            components.append({"type": component, "parameters": [{"type": "text", "text": t} for t in texts]})
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = components
    return template


@register
class WhatsAppProvider(Provider):
    """Sends through Meta's WhatsApp Cloud API: JSON POSTs with a Bearer access token.

    Profile settings:
        phone_number_id: required; the business phone number's id (not the number itself).
        api_version: the Graph API version in the URL, default v21.0.
        base_url: default https://graph.facebook.com (a proxy, a test server).
        concurrency: requests in flight, sizes the connection pool (default 16).
        timeout, connect_timeout: seconds to wait for an answer (30) and for a connection (5).
    The secret is the access token (``WHATSAPP_TOKEN``): a system user's permanent token in production.
    """

    type_name: ClassVar[str] = "whatsapp"
    channels: ClassVar[frozenset[str]] = frozenset({"whatsapp"})
    #: Meta's default throughput is 80 messages per second per number, inbound messages included;
    #: 60 leaves room for replies coming in while a campaign goes out.
    default_rate: ClassVar[float] = 60.0
    max_body: ClassVar[int] = MAX_TEXT_BODY
    needs_secret: ClassVar[bool] = True
    secret_env: ClassVar[str | None] = "WHATSAPP_TOKEN"
    can_lookup: ClassVar[bool] = False
    send_codes: ClassVar[CodeTable] = WHATSAPP_CODES
    receipt_codes: ClassVar[CodeTable] = WHATSAPP_CODES

    def __init__(self, profile, secret, home) -> None:
        super().__init__(profile, secret, home)
        if not secret:
            raise ConfigError(f"provider profile {profile.name!r} has no secret.")
        self.phone_number_id = str(profile.require("phone_number_id")).strip()
        if not self.phone_number_id.isdigit():
            raise ConfigError(
                f"provider profile {profile.name!r}: phone_number_id {self.phone_number_id!r} is not a phone "
                "number id (digits only).",
                hint="Copy the id from the app dashboard (WhatsApp > API Setup), not the phone number itself.",
            )
        self.api_version = str(profile.get("api_version") or DEFAULT_API_VERSION).strip()
        if not _API_VERSION.fullmatch(self.api_version):
            raise ConfigError(
                f"provider profile {profile.name!r}: api_version {self.api_version!r} is not a Graph API version.",
                hint=f'Use the form api_version = "{DEFAULT_API_VERSION}".',
            )
        base_url = str(profile.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"provider profile {profile.name!r}: base_url must start with https://.")
        self.base_url = base_url
        self._number_url = f"{base_url}/{self.api_version}/{quote(self.phone_number_id, safe='')}"
        self._messages_url = f"{self._number_url}/messages"
        self._timeouts = http_common.timeouts(profile)
        self._scrub = http_common.Scrubber([secret])
        self._session = http_common.make_session(
            http_common.pool_size(profile), http_common.StaticAuth.bearer(secret), deadline=http_common.deadline(profile)
        )

    # -- sending ---------------------------------------------------------------------------------------------

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        """The JSON body of the send request for one delivery (raises _Unsendable when there can be none)."""
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            # E.164 with its "+": Meta advises the plus sign and country code; a number without the "+" may be
            # read as one in the business number's own country.
            "to": delivery.to,
            # Echoed back in every status webhook of this message: a receipt names our row even when the send's
            # answer was lost (docs/webhooks.md).
            "biz_opaque_callback_data": str(delivery.transmission_id),
        }
        params = delivery.params or {}
        if "template" in params:
            message["type"] = "template"
            message["template"] = template_object(params)
            return message
        text = delivery.text
        if not text.strip():
            raise _Unsendable(PERMANENT, "empty_body", "the message is empty")
        if len(text) > MAX_TEXT_BODY:
            raise _Unsendable(
                PERMANENT, "body_too_long", f"the text is {len(text)} characters; WhatsApp takes {MAX_TEXT_BODY}"
            )
        message["type"] = "text"
        message["text"] = {"body": text, "preview_url": False}
        return message

    def send(self, delivery: Delivery) -> Outcome:
        if delivery.channel not in self.channels:
            return Outcome(PERMANENT, code="unsupported_channel", text=f"no {delivery.channel} channel")
        try:
            body = self.payload(delivery)
        except _Unsendable as unsendable:
            return unsendable.outcome
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            response = self._session.post(
                self._messages_url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=self._timeouts,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return http_common.classify_transport_error(exc, self._scrub, self._timeouts[1])
        return self.classify(response)

    def classify(self, response: requests.Response) -> Outcome:
        """The outcome of one send request that got an HTTP answer."""
        status = response.status_code
        body = http_common.json_body(response)
        if 200 <= status < 300:
            wamid = message_id(body)
            if wamid is not None:
                return Outcome(ACCEPTED, provider_id=wamid)
            # Meta may well have taken it: never count it as sent, never send it blindly again.
            what = "an answer without messages[0].id" if body is not None else "an answer that is not JSON"
            return Outcome(AMBIGUOUS, code=f"http_{status}", text=f"HTTP {status} with {what}")

        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        text = self._error_text(response, error, code)
        code_text = str(code) if code is not None else f"http_{status}"
        retry_after = http_common.parse_retry_after(response.headers.get("Retry-After"))

        # A code we know decides, except on 429 (throttled at the door, whatever the code) and on a redirect.
        kind = None if status == 429 or 300 <= status < 400 else error_class(code, subcode)
        if kind is None:
            outcome = http_common.classify_http_status(status, code_text, text, retry_after)
        else:
            keep = kind in (RETRYABLE, AMBIGUOUS)
            outcome = Outcome(kind, code=code_text, text=text, retry_after=retry_after if keep else None)
        if outcome.kind is RETRYABLE and outcome.retry_after is None and code in DEFAULT_WAITS:
            outcome = replace(outcome, retry_after=DEFAULT_WAITS[code])
        return outcome

    def _error_text(self, response: requests.Response, error: dict[str, Any], code: int | None) -> str:
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            text = message.strip()
            data = error.get("error_data")
            details = data.get("details") if isinstance(data, dict) else None
            if isinstance(details, str) and details.strip() and details.strip() not in text:
                text = f"{text}: {details.strip()}"
            trace = error.get("fbtrace_id")
            if isinstance(trace, str) and trace.strip():
                text = f"{text} (fbtrace_id {trace.strip()})"
        elif (meaning := WHATSAPP_CODES.meaning(code)) is not None:
            text = meaning
        else:
            text = f"HTTP {response.status_code}: {http_common.body_excerpt(response)}"
        return self._scrub(http_common.short(text)) or f"HTTP {response.status_code}"

    # -- reconciliation --------------------------------------------------------------------------------------

    def lookup(self, delivery: Delivery, sent_after: datetime) -> tuple[LookupResult, str | None]:
        """The Cloud API has no way to list or search sent messages: this always cannot tell.

        An ambiguous row therefore stays ``unknown`` until the user decides (``campaigns reconcile``, which
        can use what WhatsApp Manager or the business's webhooks show) or accepts the risk with
        ``--retry-unknown``.
        """
        return LookupResult.CANNOT_TELL, None

    # -- checking --------------------------------------------------------------------------------------------

    def check(self) -> str:
        """Read the phone number's details: ``GET /{version}/{phone_number_id}?fields=…``."""
        try:
            response = self._session.get(
                self._number_url, params={"fields": CHECK_FIELDS}, timeout=self._timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            detail = http_common.describe(exc, self._scrub)
            raise ProviderError(
                f"cannot reach the WhatsApp Cloud API at {self._scrub(self.base_url)} ({detail})."
            ) from None
        body = http_common.json_body(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("display_phone_number"):
            return self._summary(body)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        text = self._error_text(response, error, code)
        where = f"HTTP {response.status_code}" + (f", code {code}" if code is not None else "")
        name = self.profile.name
        if response.status_code == 401 or code in (0, 190):
            raise ConfigError(
                f"Meta refused the access token of profile {name!r} ({where}: {text}).",
                hint=(
                    "Use a system user's permanent token with the whatsapp_business_messaging permission "
                    f"(where the token comes from: {hints.current().providers()}; "
                    f"to store it: {hints.current().login(name)})."
                ),
            )
        if response.status_code == 404 or code == 33 or (code == 100 and subcode == UNKNOWN_OBJECT_SUBCODE):
            raise ConfigError(
                f"Meta does not know phone number id {self.phone_number_id} for this token ({where}: {text}).",
                hint="Check phone_number_id (WhatsApp > API Setup in the app dashboard), api_version and base_url.",
            )
        if response.status_code == 403 or code in (10, 131005) or (code is not None and code in API_PERMISSION_CODES):
            raise ConfigError(
                f"the access token of profile {name!r} may not use phone number id {self.phone_number_id} "
                f"({where}: {text}).",
                hint="Give the system user the WhatsApp account as an asset and the whatsapp_business_messaging "
                "permission, then make a new token.",
            )
        raise ProviderError(f"WhatsApp phone number check failed ({where}: {text}).")

    def _summary(self, body: dict[str, Any]) -> str:
        summary = f"whatsapp phone number {self.phone_number_id}: {body.get('display_phone_number')}"
        name = body.get("verified_name")
        if isinstance(name, str) and name.strip():
            summary += f" ({name.strip()})"
        quality = body.get("quality_rating")
        if isinstance(quality, str) and quality.strip():
            summary += f", quality {quality.strip()}"
        return self._scrub(summary) or summary

    def interrupt(self) -> None:
        self._session.interrupt()

    def close(self) -> None:
        self._session.close()

    # -- webhooks (docs/webhooks.md) -------------------------------------------------------------------------

    webhook_verified_by: ClassVar[str] = "X-Hub-Signature-256 (HMAC-SHA256 with the app secret) and the verify token"

    @classmethod
    def webhook_signed(cls, profile: Profile, secrets: WebhookSecrets) -> bool:
        return True

    @classmethod
    def signature(cls, app_secret: str, body: bytes) -> str:
        """Meta's ``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the raw body, keyed with the app
        secret (https://developers.facebook.com/docs/graph-api/webhooks/getting-started)."""
        return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()

    @classmethod
    def verify_webhook(cls, profile: Profile, request: WebhookRequest, secrets: WebhookSecrets) -> bool:
        given = request.header("X-Hub-Signature-256").strip()
        if request.method != "POST" or not secrets.webhook_secret or not given:
            return False
        return hmac.compare_digest(cls.signature(secrets.webhook_secret, request.body).encode(), given.encode())

    @classmethod
    def webhook_handshake(cls, profile: Profile, request: WebhookRequest, secrets: WebhookSecrets) -> bytes | None:
        """Meta's subscription check: a GET with ``hub.mode=subscribe`` and our verify token gets ``hub.challenge``
        back; anything else gets None (and a 403)."""
        if request.method != "GET" or request.query_value("hub.mode") != "subscribe":
            return None
        given = request.query_value("hub.verify_token") or ""
        if not secrets.token or not hmac.compare_digest(given.encode(), secrets.token.encode()):
            return None
        return (request.query_value("hub.challenge") or "").encode("utf-8")

    @classmethod
    def _changes(cls, profile: Profile, request: WebhookRequest, field: str) -> list[dict[str, Any]]:
        """The ``value`` of every change of ``field`` for this profile's phone number (another number's are not ours)."""
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
            return []
        number_id = str(profile.get("phone_number_id") or "").strip()
        values = []
        for entry in body["entry"]:
            for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
                if not isinstance(change, dict) or change.get("field") != field:
                    continue
                value = change.get("value")
                if not isinstance(value, dict):
                    continue
                metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
                if field == "messages" and str(metadata.get("phone_number_id") or "") != number_id:
                    continue
                values.append(value)
        return values

    @classmethod
    def parse_report(cls, profile: Profile, request: WebhookRequest) -> list:
        receipts = []
        for value in cls._changes(profile, request, "messages"):
            for status in value.get("statuses") or []:
                if not isinstance(status, dict):
                    continue
                word = str(status.get("status") or "").strip().lower()
                state = WHATSAPP_RECEIPT_STATES.get(word)
                if state is None:
                    continue
                errors = status.get("errors") if isinstance(status.get("errors"), list) else []
                error = errors[0] if errors and isinstance(errors[0], dict) else {}
                code = _as_int(error.get("code"))
                fault = text = None
                if state is ReceiptState.UNDELIVERED:
                    fault, text = WHATSAPP_CODES.failure(code)
                    text = text or str(error.get("title") or error.get("message") or word)
                reference = str(status.get("biz_opaque_callback_data") or "").strip()
                receipts.append(
                    Receipt(
                        profile=profile.name,
                        state=state,
                        provider_id=str(status.get("id") or "").strip() or None,
                        transmission_id=int(reference) if reference.isdigit() else None,
                        status=word,
                        code=None if code is None else str(code),
                        text=text,
                        fault=fault,
                        opt_out=code == 131050,
                        reported_at=_unix_time(status.get("timestamp")),
                    )
                )
        return receipts

    @classmethod
    def parse_inbound(cls, profile: Profile, request: WebhookRequest) -> list:
        found = []
        for value in cls._changes(profile, request, "messages"):
            for message in value.get("messages") or []:
                if not isinstance(message, dict) or not message.get("from"):
                    continue
                found.append(
                    InboundMessage(
                        profile=profile.name,
                        sender=_wa_number(message["from"]),
                        text=_message_text(message),
                        provider_id=str(message.get("id") or "").strip() or None,
                        channel="whatsapp",
                        received_at=_unix_time(message.get("timestamp")),
                    )
                )
        # A user who stops marketing messages (Meta's user_preferences webhook) is an opt-out without text.
        for value in cls._changes(profile, request, "user_preferences"):
            for preference in value.get("user_preferences") or []:
                if isinstance(preference, dict) and str(preference.get("value") or "").lower() == "stop":
                    found.append(
                        InboundMessage(
                            profile=profile.name,
                            sender=_wa_number(preference.get("wa_id") or ""),
                            provider_id=None,
                            channel="whatsapp",
                            opt_out=True,
                            keyword="user_preferences=stop",
                            received_at=_unix_time(preference.get("timestamp")),
                        )
                    )
        return found


WHATSAPP_RECEIPT_STATES: dict[str, ReceiptState] = {
    "sent": ReceiptState.ACCEPTED,
    "delivered": ReceiptState.DELIVERED,
    "read": ReceiptState.DELIVERED,
    "failed": ReceiptState.UNDELIVERED,
}

def _wa_number(value: Any) -> str:
    """A WhatsApp id (digits, the country code first) as E.164."""
    text = str(value or "").strip().lstrip("+")
    return f"+{text}" if text.isdigit() else text


def _unix_time(value: Any) -> str | None:
    seconds = _as_int(value)
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _message_text(message: dict[str, Any]) -> str:
    """What a person wrote: a text's body, a quick-reply button's text, an interactive reply's title."""
    kind = message.get("type")
    part = message.get(kind) if isinstance(kind, str) else None
    if isinstance(part, dict):
        for key in ("body", "text", "caption"):
            if isinstance(part.get(key), str):
                return part[key]
        for reply in ("button_reply", "list_reply"):
            if isinstance(part.get(reply), dict) and isinstance(part[reply].get("title"), str):
                return part[reply]["title"]
    return ""
