"""The ``twilio`` provider: the Programmable Messaging API (2010-04-01 Messages resource), SMS and WhatsApp."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests

from bulksend import hints
from bulksend.codes import Code, CodeTable
from bulksend.errors import ConfigError, ProviderError
from bulksend.providers import http_common
from bulksend.providers.base import (
    Delivery,
    LookupResult,
    MessageStatus,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    StatusKind,
    WebhookRequest,
    WebhookSecrets,
    register,
)
from bulksend.receipts import Fault, InboundMessage, Receipt, ReceiptState

DEFAULT_BASE_URL = "https://api.twilio.com"
# The environment variables twilio-cli and Twilio's SDKs read (https://www.twilio.com/docs/twilio-cli/general-usage).
ACCOUNT_SID_ENV = "TWILIO_ACCOUNT_SID"
AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
API_KEY_ENV = "TWILIO_API_KEY"
API_SECRET_ENV = "TWILIO_API_SECRET"
ERROR_DOCS = "https://www.twilio.com/docs/api/errors/{code}"
FORM = "application/x-www-form-urlencoded"

RETRYABLE, PERMANENT, OPTED_OUT, FATAL = (
    OutcomeKind.RETRYABLE,
    OutcomeKind.PERMANENT,
    OutcomeKind.OPTED_OUT,
    OutcomeKind.FATAL,
)

PROVIDER, RECIPIENT, SENDER = Fault.PROVIDER, Fault.RECIPIENT, Fault.SENDER

# Twilio's error codes, one set for both moments: on create (an HTTP 400 body: the send class) and in a
# Message's error_code or a status callback (whose fault: only PROVIDER is refunded). Reports print the meaning.
# Source of every row: https://www.twilio.com/docs/api/errors/<code>; docs/providers.md gives why each is classed
# so on create, docs/webhooks.md why each fault. Codes not listed here: on create, HTTP 5xx → ambiguous,
# 401/403/404 → fatal, any other 4xx → permanent with Twilio's code and message; in a receipt, fault unknown.
TWILIO_CODES = CodeTable(ERROR_DOCS, {
    # Not accepted, and worth trying again later.
    20429: Code("too many concurrent requests", RETRYABLE),
    21611: Code("the sender's queue is full", RETRYABLE),
    21730: Code("Twilio is under maintenance", RETRYABLE),
    30001: Code("queue overflow", RETRYABLE, PROVIDER),
    63017: Code("account message rate limit exceeded", RETRYABLE),
    # The recipient said no.
    21610: Code("the recipient unsubscribed (replied STOP)", OPTED_OUT, RECIPIENT),
    63014: Code("the recipient blocked this sender", OPTED_OUT),
    # This recipient (or this message) will never work.
    21211: Code("invalid 'To' phone number", PERMANENT),
    21265: Code("'To' is a short code", PERMANENT),
    21408: Code("sending to this region is not enabled (Geo Permissions)", PERMANENT),
    21602: Code("message body is required", PERMANENT),
    21604: Code("'To' number is required", PERMANENT),
    21612: Code("the 'To' number cannot be reached from this sender", PERMANENT),
    21614: Code("'To' is not a mobile number", PERMANENT, RECIPIENT),
    21617: Code("message body exceeds 1600 characters", PERMANENT),
    21635: Code("'To' is a landline", PERMANENT),
    30003: Code("unreachable destination handset (off, out of coverage, or no service)", PERMANENT, RECIPIENT),
    30004: Code("message blocked (the recipient blocked it, or the number cannot receive it)", PERMANENT, RECIPIENT),
    30005: Code("unknown destination handset (the number does not exist)", PERMANENT, RECIPIENT),
    30006: Code("landline or unreachable carrier", PERMANENT, RECIPIENT),
    30007: Code("message filtered by the carrier (spam or content rules)", PERMANENT, SENDER),
    30008: Code("unknown error (from the carrier or Twilio)", PERMANENT, PROVIDER),
    63003: Code("the channel could not find the 'To' address", PERMANENT, RECIPIENT),
    63016: Code("outside the WhatsApp 24-hour window: only a template may be sent", PERMANENT, SENDER),
    # Nothing will work until the account or profile is fixed: stop the run, keep the rest queued.
    10001: Code("the account is not active", FATAL),
    20003: Code("authentication failed", FATAL),
    20005: Code("the account is not active (out of funds, or trial not activated)", FATAL),
    20403: Code("the account may not use the API (suspended or closed)", FATAL),
    20404: Code("account or messaging service not found", FATAL),
    21606: Code("the 'From' number cannot send messages", FATAL),
    21608: Code("trial account: the recipient is not a verified number", FATAL),
    30002: Code("account suspended", FATAL, SENDER),
    30016: Code("'To' and 'From' are on different channels", FATAL),
    63007: Code("no channel (e.g. WhatsApp sender) for the 'From' address", FATAL),
    63038: Code("the account's daily message limit is reached", FATAL),
    # Only in receipts: the message was accepted, then not delivered.
    30009: Code("missing segment of a long message", fault=PROVIDER),
    30017: Code("carrier network congestion", fault=PROVIDER),
    63024: Code("invalid message recipient", fault=RECIPIENT),
    30010: Code("message price exceeds the max price", fault=SENDER),
    30018: Code("the destination carrier requires sender ID pre-registration", fault=SENDER),
    30019: Code("content size exceeds the carrier's limit", fault=SENDER),
    30022: Code("US A2P 10DLC: rate limit exceeded", fault=SENDER),
    30023: Code("US A2P 10DLC: daily cap reached", fault=SENDER),
    30024: Code("numeric sender ID not provisioned with the carrier", fault=SENDER),
    30027: Code("US A2P 10DLC: T-Mobile daily limit reached", fault=SENDER),
    30032: Code("toll-free number not verified", fault=SENDER),
    30034: Code("US A2P 10DLC: message from an unregistered number", fault=SENDER),
})

LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 10
CLOCK_SKEW = timedelta(minutes=5)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _listed_time(value: Any) -> datetime | None:
    """A listed message's RFC 2822 date in UTC, or None when it is missing or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(moment) if moment is not None else None


class _Undecidable(Exception):
    """Twilio's records could not be read to the end: the lookup cannot tell."""


@register
class TwilioProvider(Provider):
    """Sends through Twilio's Messages API: form-encoded POSTs with HTTP basic auth.

    Profile settings:
        account_sid: the account (AC…); the URL's account and, without an API key, the user name
            (else ``TWILIO_ACCOUNT_SID``).
        api_key_sid: an API key (SK…) to authenticate with instead; the secret is then the key's secret
            (else ``TWILIO_API_KEY`` when ``TWILIO_API_SECRET`` is set too).
        sender: the From number or alphanumeric ID; ``whatsapp_sender`` overrides it on WhatsApp.
        messaging_service_sid: a Messaging Service (MG…), instead of or besides a sender.
        status_callback: a URL Twilio posts delivery reports to.
        content_sid: a Content template (HX…) for every message; ``params["content_sid"]`` overrides it.
        base_url: default https://api.twilio.com (a regional edge, a proxy, a test server).
        concurrency: requests in flight, sizes the connection pool (default 16).
        timeout, connect_timeout: seconds to wait for an answer (30) and for a connection (5).
    The secret is the auth token (``TWILIO_AUTH_TOKEN``), or the API key's secret (``TWILIO_API_SECRET``).
    """

    type_name: ClassVar[str] = "twilio"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "whatsapp"})
    default_rate: ClassVar[float] = 10.0
    max_body: ClassVar[int] = 1600
    needs_secret: ClassVar[bool] = True
    secret_env: ClassVar[str | None] = AUTH_TOKEN_ENV
    can_lookup: ClassVar[bool] = True
    can_fetch_status: ClassVar[bool] = True
    send_codes: ClassVar[CodeTable] = TWILIO_CODES
    receipt_codes: ClassVar[CodeTable] = TWILIO_CODES

    @classmethod
    def settings_from_env(cls, profile: Profile, environ: Mapping[str, str]) -> dict[str, str]:
        """As twilio-cli: ``TWILIO_ACCOUNT_SID``, and an API key (``TWILIO_API_KEY`` with ``TWILIO_API_SECRET``),
        for what the profile does not set itself. An API key in the environment wins over an auth token."""
        found = {}
        if not profile.get("account_sid") and environ.get(ACCOUNT_SID_ENV, "").strip():
            found["account_sid"] = ACCOUNT_SID_ENV
        if (
            not profile.get("api_key_sid")
            and environ.get(API_KEY_ENV, "").strip()
            and environ.get(API_SECRET_ENV, "").strip()
        ):
            found["api_key_sid"] = API_KEY_ENV
        return found

    @classmethod
    def secret_env_vars(cls, profile: Profile) -> tuple[str, ...]:
        """An API key's secret is ``TWILIO_API_SECRET``; the account's auth token is ``TWILIO_AUTH_TOKEN``."""
        return (API_SECRET_ENV,) if profile.get("api_key_sid") else (AUTH_TOKEN_ENV,)

    def __init__(self, profile, secret, home) -> None:
        super().__init__(profile, secret, home)
        if not secret:
            raise ConfigError(f"provider profile {profile.name!r} has no secret.")
        account_sid = profile.get("account_sid")
        if account_sid in (None, ""):
            raise ConfigError(
                f"provider profile {profile.name!r} needs 'account_sid'.",
                hint=f'Add account_sid = "AC…" under [providers.{profile.name}] in config.toml, '
                f"or set {ACCOUNT_SID_ENV} in the environment.",
            )
        self.account_sid = str(account_sid).strip()
        if not self.account_sid.isalnum():
            raise ConfigError(f"provider profile {profile.name!r}: account_sid {self.account_sid!r} is not a SID.")
        self.sender = profile.get("sender")
        self.whatsapp_sender = profile.get("whatsapp_sender") or self.sender
        self.messaging_service_sid = profile.get("messaging_service_sid")
        if not (self.sender or self.messaging_service_sid or profile.get("whatsapp_sender")):
            raise ConfigError(
                f"provider profile {profile.name!r} needs a sender or a messaging_service_sid.",
                hint=f'Add sender = "+1…" or messaging_service_sid = "MG…" under [providers.{profile.name}].',
            )
        self.status_callback = profile.get("status_callback")
        self.content_sid = profile.get("content_sid")
        base_url = str(profile.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"provider profile {profile.name!r}: base_url must start with https://.")
        self.base_url = base_url
        account = f"{base_url}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}"
        self._messages_url = f"{account}/Messages.json"
        self._balance_url = f"{account}/Balance.json"
        self._timeouts = http_common.timeouts(profile)
        username = str(profile.get("api_key_sid") or self.account_sid)
        auth = http_common.StaticAuth.basic(username, secret)
        self._scrub = http_common.Scrubber([secret, auth.header_value.split(" ", 1)[1]])
        self._session = http_common.make_session(
            http_common.pool_size(profile), auth, deadline=http_common.deadline(profile)
        )

    # -- sending ---------------------------------------------------------------------------------------------

    @staticmethod
    def address(number: str, channel: str) -> str:
        """A number as Twilio wants it on this channel: ``whatsapp:+E164`` on WhatsApp, E.164 otherwise."""
        if channel == "whatsapp" and not number.startswith("whatsapp:"):
            return f"whatsapp:{number}"
        return number

    def form(self, delivery: Delivery) -> dict[str, str]:
        """The form fields of the create request for one delivery."""
        fields = {"To": self.address(delivery.to, delivery.channel)}
        sender = self.whatsapp_sender if delivery.channel == "whatsapp" else self.sender
        if sender:
            fields["From"] = self.address(str(sender), delivery.channel)
        if self.messaging_service_sid:
            fields["MessagingServiceSid"] = str(self.messaging_service_sid)
        content_sid = delivery.params.get("content_sid") or self.content_sid
        if content_sid:
            # A Content template replaces the body; Twilio refuses Body with a template outside the window.
            fields["ContentSid"] = str(content_sid)
            variables = delivery.params.get("variables")
            if variables:
                fields["ContentVariables"] = (
                    variables if isinstance(variables, str) else json.dumps(variables, ensure_ascii=False, default=str)
                )
        else:
            fields["Body"] = delivery.text
        if self.status_callback:
            fields["StatusCallback"] = callback_with_id(str(self.status_callback), delivery.transmission_id)
        return fields

    def send(self, delivery: Delivery) -> Outcome:
        if delivery.channel not in self.channels:
            return Outcome(OutcomeKind.PERMANENT, code="unsupported_channel", text=f"no {delivery.channel} channel")
        try:
            response = self._session.send_body(
                "POST", self._messages_url, urlencode(self.form(delivery)).encode("ascii"), FORM, self._timeouts
            )
        except requests.RequestException as exc:
            return http_common.classify_transport_error(exc, self._scrub, self._timeouts[1])
        return self.classify(response)

    def classify(self, response: requests.Response) -> Outcome:
        """The outcome of one create request that got an HTTP answer."""
        status = response.status_code
        body = http_common.json_body(response)
        error = body if isinstance(body, dict) else {}
        code = error.get("code")
        code = code if isinstance(code, int) else (int(code) if isinstance(code, str) and code.isdigit() else None)
        retry_after = http_common.parse_retry_after(response.headers.get("Retry-After"))

        if 200 <= status < 300:
            sid = error.get("sid")
            if isinstance(sid, str) and sid:
                return Outcome(OutcomeKind.ACCEPTED, provider_id=sid)
            # Twilio may well have created it: never count it as sent, never send it blindly again.
            what = "a body without a message sid" if body is not None else "a body that is not JSON"
            return Outcome(OutcomeKind.AMBIGUOUS, code=f"http_{status}", text=f"HTTP {status} with {what}")

        text = self._error_text(response, error, code)
        code_text = str(code) if code is not None else f"http_{status}"
        if status == 429 or code == 20429:
            return Outcome(OutcomeKind.RETRYABLE, code=code_text, text=text, retry_after=retry_after)
        if status >= 500:
            return Outcome(OutcomeKind.AMBIGUOUS, code=code_text, text=text, retry_after=retry_after)
        if 300 <= status < 400:
            return Outcome(OutcomeKind.FATAL, code=code_text, text=f"unexpected redirect ({text}); check base_url")
        if (known := TWILIO_CODES.send(code)) is not None:
            kind = known
        elif status in (401, 403, 404):
            kind = OutcomeKind.FATAL  # credentials, account or URL: the same for every message
        elif status == 408:
            kind = OutcomeKind.RETRYABLE  # the server gave up reading the request: nothing was created
        else:
            kind = OutcomeKind.PERMANENT
        return Outcome(kind, code=code_text, text=text, retry_after=retry_after if kind is RETRYABLE else None)

    def _error_text(self, response: requests.Response, error: dict[str, Any], code: int | None) -> str:
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            text = message
            detail = error.get("detail")
            if isinstance(detail, str) and detail.strip() and detail not in message:
                text = f"{message}: {detail}"
        elif (meaning := TWILIO_CODES.meaning(code)) is not None:
            text = meaning
        else:
            text = f"HTTP {response.status_code}: {http_common.body_excerpt(response)}"
        return self._scrub(http_common.short(text))

    # -- reconciliation --------------------------------------------------------------------------------------

    def lookup(self, delivery: Delivery, sent_after: datetime) -> tuple[LookupResult, str | None]:
        """Find the message in Twilio's log: same To, same body, created since ``sent_after`` (less clock skew).

        First with the ``DateSent>`` filter; then, because a message still in Twilio's queue has no date_sent
        yet and that filter cannot see it, through every message to the number. "Not found" only when every
        listed message was read and each one certainly is another message; a listed message lacking a field
        the match needs (to, direction, body, date_created, sid), or any error, makes it "cannot tell".
        """
        since = _utc(sent_after) - CLOCK_SKEW
        to = self.address(delivery.to, delivery.channel)
        body = None if (delivery.params.get("content_sid") or self.content_sid) else delivery.text
        try:
            date_filter = {"DateSent>": (since - timedelta(days=1)).date().isoformat()}
            sid, doubtful = self._search(to, body, since, date_filter)
            if sid is None:
                sid, doubtful_again = self._search(to, body, since, {})
                doubtful = doubtful or doubtful_again
        except (_Undecidable, requests.RequestException, ValueError):
            return LookupResult.CANNOT_TELL, None
        if sid is not None:
            return LookupResult.FOUND, sid
        if doubtful:
            return LookupResult.CANNOT_TELL, None
        return LookupResult.NOT_FOUND, None

    def _search(self, to: str, body: str | None, since: datetime, extra: dict[str, str]) -> tuple[str | None, bool]:
        """(sid of the matching message or None, whether some listed message might have been it)."""
        url: str | None = self._messages_url
        params: dict[str, Any] | None = {"To": to, "PageSize": LOOKUP_PAGE_SIZE, **extra}
        doubtful = False
        for _page in range(LOOKUP_MAX_PAGES):
            response = self._session.get(url, params=params, timeout=self._timeouts, allow_redirects=False)
            page = http_common.json_body(response)
            if response.status_code != 200 or not isinstance(page, dict) or not isinstance(page.get("messages"), list):
                raise _Undecidable
            for message in page["messages"]:
                match = self._matches(message, to, body, since)
                if match is True:
                    sid = message.get("sid")
                    if isinstance(sid, str) and sid.strip():
                        return sid.strip(), doubtful
                    doubtful = True  # it is ours, but without its sid: record nothing we cannot name
                elif match is None:
                    doubtful = True
            next_page = page.get("next_page_uri")
            if not next_page:
                return None, doubtful
            if not isinstance(next_page, str):
                raise _Undecidable
            url, params = (next_page if next_page.startswith("http") else f"{self.base_url}{next_page}"), None
        raise _Undecidable  # more pages than we are willing to read

    @staticmethod
    def _matches(message: Any, to: str, body: str | None, since: datetime) -> bool | None:
        """True: this is our message; False: certainly another one; None: it lacks what would tell."""
        if not isinstance(message, dict):
            return None
        listed_to, direction = message.get("to"), message.get("direction")
        if isinstance(listed_to, str) and listed_to and listed_to != to:
            return False
        if isinstance(direction, str) and direction and not direction.startswith("outbound"):
            return False
        listed_body = message.get("body")
        if body is not None and isinstance(listed_body, str) and listed_body.strip() != body.strip():
            return False
        created = _listed_time(message.get("date_created"))
        if created is not None and created < since:
            return False  # an older message to the same number
        if not (isinstance(listed_to, str) and listed_to) or not (isinstance(direction, str) and direction):
            return None
        if body is not None and not isinstance(listed_body, str):
            return None
        if created is None:
            return None
        return True

    # -- delivery status (polling) ---------------------------------------------------------------------------

    def fetch_status(self, provider_id: str) -> MessageStatus:
        """Fetch one Message (GET …/Messages/{Sid}.json) and read its status, error_code and date_updated.

        delivered and read are delivered; undelivered, failed and canceled are undelivered (with Twilio's
        code); every other status (accepted, scheduled, queued, sending, sent…) is not final yet.
        """
        url = f"{self._messages_url[: -len('.json')]}/{quote(provider_id, safe='')}.json"
        try:
            response = self._session.get(url, timeout=self._timeouts, allow_redirects=False)
        except requests.RequestException as exc:
            return MessageStatus(StatusKind.CANNOT, text=http_common.describe(exc, self._scrub))
        body = http_common.json_body(response)
        message = body if isinstance(body, dict) else {}
        if response.status_code in (401, 403):
            raise ConfigError(
                f"Twilio refused the credentials of profile {self.profile.name!r} (HTTP {response.status_code}).",
                hint=f"Check account_sid and the secret (bulksend provider check {self.profile.name}).",
            )
        if response.status_code != 200 or not isinstance(message.get("status"), str):
            code = message.get("code")
            return MessageStatus(
                StatusKind.CANNOT,
                code=str(code) if code is not None else f"http_{response.status_code}",
                text=self._error_text(response, message, code if isinstance(code, int) else None),
                retry_after=http_common.parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code == 429 else None,
            )
        status = message["status"].strip().lower()
        at = _listed_time(message.get("date_updated"))
        if status in ("delivered", "read"):
            return MessageStatus(StatusKind.DELIVERED, status, at=at)
        if status in ("undelivered", "failed", "canceled"):
            code = message.get("error_code")
            text = message.get("error_message")
            code_text = str(code) if code not in (None, "") else None
            if not (isinstance(text, str) and text.strip()):
                text = (TWILIO_CODES.meaning(code) if isinstance(code, int) else None) or status
            return MessageStatus(
                StatusKind.UNDELIVERED, status, code=code_text, text=self._scrub(http_common.short(text)), at=at
            )
        return MessageStatus(StatusKind.PENDING, status, at=at)

    # -- checking --------------------------------------------------------------------------------------------

    def check(self) -> str:
        try:
            response = self._session.get(self._balance_url, timeout=self._timeouts, allow_redirects=False)
        except requests.RequestException as exc:
            detail = http_common.describe(exc, self._scrub)
            raise ProviderError(f"cannot reach Twilio at {self._scrub(self.base_url)} ({detail}).") from None
        body = http_common.json_body(response)
        error = body if isinstance(body, dict) else {}
        if response.status_code == 200 and "balance" in error:
            return (
                f"twilio account {self.account_sid}: balance {error.get('balance')} {error.get('currency') or ''}"
            ).rstrip()
        code = error.get("code")
        text = self._error_text(response, error, code if isinstance(code, int) else None)
        where = f"HTTP {response.status_code}" + (f", code {code}" if code else "")
        if response.status_code in (401, 403) or code == 20003:
            raise ConfigError(
                f"Twilio refused the credentials of profile {self.profile.name!r} ({where}: {text}).",
                hint=(
                    f"Check account_sid (and api_key_sid) in config.toml and the secret "
                    f"(where it comes from: {hints.current().providers()}; "
                    f"to store it: {hints.current().login(self.profile.name)})."
                ),
            )
        if response.status_code == 404:
            raise ConfigError(
                f"Twilio does not know account {self.account_sid} at {self._scrub(self.base_url)} ({where}).",
                hint="Check account_sid and base_url in config.toml.",
            )
        raise ProviderError(f"Twilio balance check failed ({where}: {text}).")

    def interrupt(self) -> None:
        self._session.interrupt()

    def close(self) -> None:
        self._session.close()

    # -- webhooks (docs/webhooks.md) -------------------------------------------------------------------------

    webhook_verified_by: ClassVar[str] = "X-Twilio-Signature (HMAC-SHA1 with the account's auth token)"
    webhook_ack: ClassVar[tuple[str, bytes]] = (
        "text/xml; charset=utf-8", b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    )

    @classmethod
    def webhook_signed(cls, profile: Profile, secrets: WebhookSecrets) -> bool:
        return True

    @classmethod
    def signature(cls, auth_token: str, url: str, form: tuple[tuple[str, str], ...]) -> str:
        """Twilio's X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the URL followed by every
        POST parameter name and value, sorted by name (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
        text = url + "".join(name + value for name, value in sorted(form))
        digest = hmac.new(auth_token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")

    @classmethod
    def verify_webhook(cls, profile: Profile, request: WebhookRequest, secrets: WebhookSecrets) -> bool:
        # Requests are signed with the account's auth token, even when messages are sent with an API key: such a
        # profile needs its webhook secret (the auth token) set; the API key's secret cannot check them.
        token = secrets.webhook_secret or (None if profile.get("api_key_sid") else secrets.secret)
        given = request.header("X-Twilio-Signature")
        if not token or not given or request.method != "POST":
            return False
        form = request.form if request.json is None else ()
        for url in _port_variants(request.url):
            if hmac.compare_digest(cls.signature(token, url, form).encode(), given.encode()):
                account = request.form_value("AccountSid")
                expected = profile.get("account_sid")
                return not (account and expected and account != str(expected).strip())
        return False

    @classmethod
    def parse_report(cls, profile: Profile, request: WebhookRequest) -> list:
        status = (request.form_value("MessageStatus") or "").strip().lower()
        if not status or status in ("received", "receiving"):
            return []
        state = TWILIO_RECEIPT_STATES.get(status)
        if state is None:
            return []
        code = (request.form_value("ErrorCode") or "").strip() or None
        fault = None
        text = None
        opt_out = False
        if state is ReceiptState.UNDELIVERED:
            fault, text, opt_out = classify_failure(status, code)
        tid = request.query_value("t")
        return [
            Receipt(
                profile=profile.name,
                state=state,
                provider_id=(request.form_value("MessageSid") or request.form_value("SmsSid") or "").strip() or None,
                transmission_id=int(tid) if tid and tid.isdigit() else None,
                status=status,
                code=code,
                text=text,
                fault=fault,
                opt_out=opt_out,
            )
        ]

    @classmethod
    def parse_inbound(cls, profile: Profile, request: WebhookRequest) -> list:
        status = (request.form_value("SmsStatus") or request.form_value("MessageStatus") or "").strip().lower()
        opt_out_type = (request.form_value("OptOutType") or "").strip().upper()
        if status not in ("received", "receiving") and not opt_out_type:
            return []
        sender = (request.form_value("From") or "").strip()
        channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
        number = sender.removeprefix("whatsapp:")
        return [
            InboundMessage(
                profile=profile.name,
                sender=number,
                text=request.form_value("Body") or "",
                provider_id=(request.form_value("MessageSid") or "").strip() or None,
                channel=channel,
                opt_out=opt_out_type == "STOP",
                keyword="OptOutType=STOP" if opt_out_type == "STOP" else None,
            )
        ]

    @classmethod
    def status_receipt(cls, profile: Profile, transmission_id: int, provider_id: str | None,
                       status: MessageStatus):
        """A looked-up final status, classified as a status callback would be (a provider fault is refunded)."""
        receipt = super().status_receipt(profile, transmission_id, provider_id, status)
        if receipt.state is ReceiptState.UNDELIVERED:
            fault, meaning, opt_out = classify_failure(status.status, status.code)
            return replace(receipt, fault=fault, text=status.text or meaning, opt_out=opt_out)
        return receipt


def classify_failure(status: str | None, code: str | None) -> tuple[Fault, str | None, bool]:
    """Whose fault an undelivered message is (``TWILIO_CODES``), what its code means, and whether it says the
    recipient opted out: one classification for status callbacks and ``campaigns refresh``."""
    fault, text = TWILIO_CODES.failure(code)
    text = text or (f"Twilio error {code}" if code else status)
    if status == "canceled":
        fault, text = Fault.SENDER, "canceled before it was sent"
    return fault, text, code in ("21610",)


def callback_with_id(url: str, transmission_id: int) -> str:
    """The status callback URL with our transmission id as ``t`` (Twilio signs the URL, query included)."""
    return f"{url}{'&' if '?' in url else '?'}t={transmission_id}"


def _port_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (as Twilio's own validators try)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or not parts.hostname:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


TWILIO_RECEIPT_STATES: dict[str, ReceiptState] = {
    "accepted": ReceiptState.ACCEPTED,
    "scheduled": ReceiptState.ACCEPTED,
    "queued": ReceiptState.ACCEPTED,
    "sending": ReceiptState.ACCEPTED,
    "sent": ReceiptState.ACCEPTED,
    "delivered": ReceiptState.DELIVERED,
    "read": ReceiptState.DELIVERED,  # WhatsApp: read implies delivered
    "undelivered": ReceiptState.UNDELIVERED,
    "failed": ReceiptState.UNDELIVERED,
    "canceled": ReceiptState.UNDELIVERED,
}
