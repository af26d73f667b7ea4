"""The ``http`` provider: a generic HTTP gateway (most bulk-SMS resellers), described entirely by its profile."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, quote_plus

import requests
from requests.auth import AuthBase

from bulksend import hints
from bulksend.errors import ConfigError, ProviderError
from bulksend.providers import generic_hooks, http_common
from bulksend.providers.base import Delivery, Outcome, OutcomeKind, Profile, Provider, WebhookRequest, register

METHODS = ("POST", "PUT", "PATCH", "GET")
AUTH_TYPES = ("basic", "bearer", "header", "body", "query")
CONTENT_TYPES = ("json", "form")
# The classes an error code may be mapped to: every outcome but acceptance.
ERROR_CLASSES = {
    "retryable": OutcomeKind.RETRYABLE,
    "ambiguous": OutcomeKind.AMBIGUOUS,
    "permanent": OutcomeKind.PERMANENT,
    "opted_out": OutcomeKind.OPTED_OUT,
    "fatal": OutcomeKind.FATAL,
}
# What a template may refer to, per message. ``secret`` is allowed only where the profile says so.
MESSAGE_FIELDS = ("to", "to_digits", "sender", "text", "id", "campaign", "channel", "encoding")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MISSING = object()


class Template:
    """A text with ``{name}`` placeholders, parsed once; ``{{`` and ``}}`` stand for literal braces."""

    def __init__(self, text: str, where: str, allowed: set[str], profile: str) -> None:
        self.parts: list[tuple[str, bool]] = []  # (literal text, False) or (placeholder name, True)
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            self.parts.append((text[position : match.start()], False))
            token = match.group(0)
            if token in ("{{", "}}"):
                self.parts.append((token[0], False))
            else:
                name = match.group(1)
                if name not in allowed:
                    known = ", ".join(f"{{{n}}}" for n in sorted(allowed))
                    raise ConfigError(
                        f"provider profile {profile!r}: {where} uses {{{name}}}, which is not available there.",
                        hint=f"Placeholders allowed in {where}: {known}. Write {{{{ and }}}} for literal braces.",
                    )
                self.parts.append((name, True))
            position = match.end()
        self.parts.append((text[position:], False))
        self.names = {value for value, is_name in self.parts if is_name}

    def render(self, values: Mapping[str, str], encode=None) -> str:
        pieces = []
        for value, is_name in self.parts:
            if is_name:
                value = values[value]
                pieces.append(encode(value) if encode else value)
            else:
                pieces.append(value)
        return "".join(pieces)


def _compile(value: Any, where: str, allowed: set[str], profile: str) -> Any:
    """A body template as a data structure: tables, arrays and scalars, with every string a Template."""
    if isinstance(value, str):
        return Template(value, where, allowed, profile)
    if isinstance(value, Mapping):
        return {str(key): _compile(item, f"{where}.{key}", allowed, profile) for key, item in value.items()}
    if isinstance(value, list):
        return [_compile(item, f"{where}.{n}", allowed, profile) for n, item in enumerate(value)]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ConfigError(f"provider profile {profile!r}: {where} holds a {type(value).__name__}, not a JSON value.")


def _render(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, Template):
        return value.render(values)
    if isinstance(value, dict):
        return {key: _render(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, values) for item in value]
    return value


def _names(value: Any) -> set[str]:
    if isinstance(value, Template):
        return set(value.names)
    if isinstance(value, dict):
        return set().union(*(_names(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_names(item) for item in value)) if value else set()
    return set()


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def lookup_path(document: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path ("messages.0.id") in decoded JSON, or ``_MISSING``."""
    current = document
    for step in path:
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", step) and -len(current) <= int(step) < len(current):
            current = current[int(step)]
        else:
            return _MISSING
    return current


def _canonical(value: Any) -> str:
    """How values are compared: true/false/null as in JSON, numbers as written, text trimmed and case-folded."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def _code_text(value: Any) -> str | None:
    """An error code as the outcome stores it; None when the answer holds none."""
    if value is _MISSING or value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _form_text(value).strip()
    return text or None


class _HeaderAuth(AuthBase):
    """One header carrying the secret, set on every request and never shown in a repr."""

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._name] = self._value
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}: ***>"


@dataclass(frozen=True)
class _Prepared:
    """Everything a request needs besides the session (which carries the header auth)."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    data: Any


@register
class HttpGatewayProvider(Provider):
    """Sends through any HTTP gateway whose request and answers the profile describes.

    Profile settings (docs/providers.md, "Generic HTTP gateway", has the full list and two worked examples):
        url: where messages go: absolute, or a path under ``base_url``; may hold placeholders.
        method: POST (default), PUT, PATCH or GET (GET sends the body as query parameters).
        auth: {type = "basic" | "bearer" | "header" | "body" | "query", …}; the secret is never in the file.
        headers: extra static headers (values may use ``{secret}`` and per-message placeholders but {text}).
        body: a table, or a string (JSON text for ``content_type = "json"``, ``a=1&b=2`` for "form").
        content_type: "json" (default) or "form".
        sender, whatsapp_sender, channels: who sends, and on which of sms/whatsapp (default both).
        success_path, success_values, id_path, error_code_path, error_text_path, errors, default_error_class:
            how to read an answer.
        check_url, check_path: an optional harmless GET for ``provider check``.
    """

    type_name: ClassVar[str] = "http"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "whatsapp"})
    default_rate: ClassVar[float] = 10.0
    max_body: ClassVar[int] = 1600
    needs_secret: ClassVar[bool] = True
    secret_env: ClassVar[str | None] = None  # only BULKSEND_<PROFILE>_SECRET or the keyring: no vendor to name
    can_lookup: ClassVar[bool] = False

    def __init__(self, profile: Profile, secret: str | None, home) -> None:
        super().__init__(profile, secret, home)
        if not secret:
            raise ConfigError(f"provider profile {profile.name!r} has no secret.")
        self._name = profile.name
        base_url = str(profile.get("base_url") or "").rstrip("/")
        self.method = self._choice("method", "POST", METHODS, upper=True)
        self.content_type = self._choice("content_type", "json", CONTENT_TYPES)
        self.allowed_channels = self._channels()
        self.sender = profile.get("sender")
        self.whatsapp_sender = profile.get("whatsapp_sender") or self.sender

        auth = profile.get("auth")
        if not isinstance(auth, Mapping):
            raise ConfigError(
                f"provider profile {profile.name!r} needs 'auth' (how the secret is sent).",
                hint=(
                    f'Add auth = {{ type = "bearer" }} (or basic, header, body, query) '
                    f"under [providers.{profile.name}]."
                ),
            )
        self.auth_type = str(auth.get("type") or "").strip().lower()
        if self.auth_type not in AUTH_TYPES:
            raise ConfigError(
                f"provider profile {profile.name!r}: auth.type {auth.get('type')!r} is not one of "
                f"{', '.join(AUTH_TYPES)}."
            )
        secret_in_body = self.auth_type == "body"

        fields = set(MESSAGE_FIELDS)
        self._url = Template(self._url_of("url", base_url, required=True), "url", fields, profile.name)
        headers = profile.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ConfigError(f"provider profile {profile.name!r}: headers must be a table of header = \"value\".")
        self._headers = {}
        for name, value in headers.items():
            if not isinstance(value, str):
                raise ConfigError(f"provider profile {profile.name!r}: headers.{name} must be text.")
            # A message's text may hold line breaks, which no header value can.
            allowed = (fields - {"text"}) | {"secret"}
            self._headers[str(name)] = Template(value, f"headers.{name}", allowed, profile.name)
        self._body = self._compile_body(fields | ({"secret"} if secret_in_body else set()))

        self._auth_field = None
        session_auth: AuthBase | None = None
        if self.auth_type == "basic":
            username = self._auth_key(auth, "username")
            session_auth = http_common.StaticAuth.basic(username, secret)
        elif self.auth_type == "bearer":
            session_auth = http_common.StaticAuth.bearer(secret)
        elif self.auth_type == "header":
            session_auth = _HeaderAuth(self._auth_key(auth, "header"), f"{auth.get('prefix') or ''}{secret}")
        elif self.auth_type == "query":
            self._auth_field = self._auth_key(auth, "param")
        else:  # body
            self._auth_field = auth.get("field") or None
            if self._auth_field is None and "secret" not in _names(self._body):
                raise ConfigError(
                    f"provider profile {profile.name!r}: auth type \"body\" needs auth.field (the body field that "
                    "carries the secret) or a {secret} placeholder in body.",
                    hint='For example: auth = { type = "body", field = "apikey" }',
                )
            if self._auth_field is not None and not self._form and not isinstance(self._body, dict):
                raise ConfigError(f"provider profile {profile.name!r}: auth.field needs body to be a table.")

        uses = self._url.names | _names(self._body) | set().union(*(t.names for t in self._headers.values()))
        if "sender" in uses and not (self.sender or profile.get("whatsapp_sender")):
            raise ConfigError(
                f"provider profile {profile.name!r} uses {{sender}} but has no sender.",
                hint=f'Add sender = "…" under [providers.{profile.name}].',
            )

        self.success_path = self._path("success_path")
        values = profile.get("success_values", [True])
        if not isinstance(values, list) or not values:
            raise ConfigError(f"provider profile {profile.name!r}: success_values must be a list of values.")
        if "success_values" in profile.settings and self.success_path is None:
            raise ConfigError(f"provider profile {profile.name!r}: success_values needs success_path.")
        self.success_values = {_canonical(v) for v in values}
        self.id_path = self._path("id_path")
        self.error_code_paths = self._paths("error_code_path")
        self.error_text_paths = self._paths("error_text_path")
        self.errors = self._error_table()
        default = profile.get("default_error_class", "permanent")
        self.default_error_class = self._error_class(default, "default_error_class")
        check_url = self._url_of("check_url", base_url, required=False)
        self._check_url = Template(check_url, "check_url", set(), profile.name).render({}) if check_url else None
        self.check_path = self._path("check_path")

        self._timeouts = http_common.timeouts(profile)
        scrubbed = [secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]]
        if isinstance(session_auth, http_common.StaticAuth):
            scrubbed.append(session_auth.header_value.split(" ", 1)[1])
        self._scrub = http_common.Scrubber(scrubbed)
        self._session = http_common.make_session(
            http_common.pool_size(profile), session_auth, deadline=http_common.deadline(profile)
        )

    # -- reading the profile ---------------------------------------------------------------------------------

    def _choice(self, key: str, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
        raw = self.profile.get(key, default)
        value = str(raw).strip()
        value = value.upper() if upper else value.lower()
        if value not in choices:
            raise ConfigError(
                f"provider profile {self.profile.name!r}: {key} {raw!r} is not one of {', '.join(choices)}."
            )
        return value

    def _channels(self) -> frozenset[str]:
        raw = self.profile.get("channels", sorted(self.channels))
        listed = [raw] if isinstance(raw, str) else raw
        if not isinstance(listed, list) or not listed or not set(listed) <= self.channels:
            raise ConfigError(
                f"provider profile {self.profile.name!r}: channels {raw!r} must list some of: sms, whatsapp."
            )
        return frozenset(listed)

    def _url_of(self, key: str, base_url: str, *, required: bool) -> str | None:
        raw = self.profile.get(key)
        if raw in (None, ""):
            if required:
                self.profile.require(key)  # raises, naming the key
            return None
        url = str(raw).strip()
        if url.startswith("/") and base_url:
            url = base_url + url
        if not url.startswith(("https://", "http://")):
            raise ConfigError(
                f"provider profile {self.profile.name!r}: {key} {raw!r} must start with https:// "
                "(or be a path starting with / under base_url).",
            )
        return url

    def _compile_body(self, allowed: set[str]) -> Any:
        raw = self.profile.get("body")
        self._form = self.content_type == "form" or self.method == "GET"
        if raw is None:
            if self.method == "GET":
                return []
            self.profile.require("body")
        form = self._form
        if isinstance(raw, str):
            if form:
                try:
                    pairs = parse_qsl(raw.strip(), keep_blank_values=True, strict_parsing=True)
                except ValueError:
                    raise ConfigError(
                        f"provider profile {self.profile.name!r}: body is not form text (name=value&name=value)."
                    ) from None
                return [(key, Template(value, f"body.{key}", allowed, self.profile.name)) for key, value in pairs]
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"provider profile {self.profile.name!r}: body is not valid JSON ({exc}).") from None
        if form:
            if not isinstance(raw, Mapping):
                raise ConfigError(f"provider profile {self.profile.name!r}: a form body must be a table.")
            pairs = []
            for key, value in raw.items():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, Mapping | list):
                        raise ConfigError(
                            f"provider profile {self.profile.name!r}: body.{key} is nested, which a form cannot carry.",
                            hint='Use content_type = "json" for nested bodies.',
                        )
                    pairs.append((str(key), _compile(item, f"body.{key}", allowed, self.profile.name)))
            return pairs
        if not isinstance(raw, Mapping | list):
            raise ConfigError(f"provider profile {self.profile.name!r}: body must be a table, an array or JSON text.")
        return _compile(raw, "body", allowed, self.profile.name)

    def _auth_key(self, auth: Mapping[str, Any], key: str) -> str:
        value = auth.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"provider profile {self.profile.name!r}: auth type {self.auth_type!r} needs auth.{key}.",
            )
        return value.strip()

    def _path(self, key: str) -> tuple[str, ...] | None:
        raw = self.profile.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str | int) or not str(raw).strip() or "" in str(raw).split("."):
            raise ConfigError(
                f"provider profile {self.profile.name!r}: {key} {raw!r} is not a dotted path like \"messages.0.id\"."
            )
        return tuple(str(raw).strip().split("."))

    def _paths(self, key: str) -> list[tuple[str, ...]]:
        raw = self.profile.get(key)
        if raw is None:
            return []
        listed = raw if isinstance(raw, list) else [raw]
        paths = []
        for item in listed:
            if not isinstance(item, str) or not item.strip() or "" in item.split("."):
                raise ConfigError(
                    f"provider profile {self.profile.name!r}: {key} {item!r} is not a dotted path like \"error.code\"."
                )
            paths.append(tuple(item.strip().split(".")))
        return paths

    def _error_class(self, raw: Any, where: str) -> OutcomeKind:
        name = str(raw).strip().lower().replace("-", "_")
        if name not in ERROR_CLASSES:
            raise ConfigError(
                f"provider profile {self.profile.name!r}: {where} = {raw!r} is not a class.",
                hint=f"Use one of: {', '.join(ERROR_CLASSES)}.",
            )
        return ERROR_CLASSES[name]

    def _error_table(self) -> dict[str, OutcomeKind]:
        raw = self.profile.get("errors") or {}
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"provider profile {self.profile.name!r}: errors must be a table of \"code\" = \"class\"."
            )
        return {_canonical(code): self._error_class(name, f"errors.{code}") for code, name in raw.items()}

    # -- sending ---------------------------------------------------------------------------------------------

    def values(self, delivery: Delivery) -> dict[str, str]:
        """What each placeholder stands for in this delivery (never the secret)."""
        sender = self.whatsapp_sender if delivery.channel == "whatsapp" else self.sender
        return {
            "to": delivery.to,
            "to_digits": delivery.to.removeprefix("+"),
            "sender": "" if sender is None else str(sender),
            "text": delivery.text,
            "id": str(delivery.transmission_id),
            "campaign": delivery.campaign,
            "channel": delivery.channel,
            "encoding": delivery.encoding,
        }

    def prepare(self, delivery: Delivery) -> _Prepared:
        """The request for one delivery, built as data (so that any text gives a valid JSON or form body)."""
        values = self.values(delivery)
        with_secret = {**values, "secret": self.secret or ""}
        url = self._url.render(values, encode=lambda v: quote(v, safe=""))
        headers = {name: template.render(with_secret) for name, template in self._headers.items()}
        params: dict[str, str] = {}
        if self.auth_type == "query":
            params[self._auth_field] = self.secret or ""
        body_values = with_secret if self.auth_type == "body" else values
        if self._form:
            pairs = [(key, _form_text(_render(value, body_values))) for key, value in self._body]
            if self.auth_type == "body" and self._auth_field:
                pairs.append((self._auth_field, self.secret or ""))
            if self.method == "GET":
                return _Prepared(self.method, url, headers, {**dict(pairs), **params}, None)
            return _Prepared(self.method, url, headers, params, pairs)
        document = _render(self._body, body_values)
        if self.auth_type == "body" and self._auth_field and isinstance(document, dict):
            document[self._auth_field] = self.secret or ""
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json; charset=utf-8"
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return _Prepared(self.method, url, headers, params, data)

    def send(self, delivery: Delivery) -> Outcome:
        if delivery.channel not in self.allowed_channels:
            return Outcome(
                OutcomeKind.PERMANENT,
                code="unsupported_channel",
                text=f"profile {self._name!r} does not send on {delivery.channel}",
            )
        request = self.prepare(delivery)
        try:
            response = self._session.request(
                request.method,
                request.url,
                params=request.params or None,
                data=request.data,
                headers=request.headers,
                timeout=self._timeouts,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return http_common.classify_transport_error(exc, self._scrub, self._timeouts[1])
        return self.classify(response, delivery)

    def classify(self, response: requests.Response, delivery: Delivery) -> Outcome:
        """The outcome of one send request that got an HTTP answer, read as the profile says."""
        status = response.status_code
        retry_after = http_common.parse_retry_after(response.headers.get("Retry-After"))
        body = http_common.json_body(response)
        code = self._first(body, self.error_code_paths, _code_text)

        if 300 <= status < 400:
            return http_common.classify_http_status(status, f"http_{status}", self._text(response, body), retry_after)
        if not 200 <= status < 300:
            if code is not None and _canonical(code) in self.errors:
                return self._mapped(code, response, body, retry_after)
            return http_common.classify_http_status(
                status, code or f"http_{status}", self._text(response, body), retry_after, self.default_error_class
            )

        if self.success_path is not None:
            verdict = lookup_path(body, self.success_path)
            if verdict is _MISSING or verdict is None:
                if code is not None:  # no success field, but an error code: the gateway said no
                    return self._mapped(code, response, body, retry_after)
                return self._unclear(status, f"no {'.'.join(self.success_path)} in the answer", body)
            if _canonical(verdict) not in self.success_values:
                return self._mapped(code or _code_text(verdict) or f"http_{status}", response, body, retry_after)

        if self.id_path is None:
            return Outcome(OutcomeKind.ACCEPTED, provider_id=f"http-{delivery.transmission_id}")
        provider_id = _code_text(lookup_path(body, self.id_path))
        if provider_id is None:
            return self._unclear(status, f"no message id at {'.'.join(self.id_path)}", body)
        return Outcome(OutcomeKind.ACCEPTED, provider_id=provider_id)

    def _unclear(self, status: int, why: str, body: Any) -> Outcome:
        # The answer is not in the shape the profile describes: the gateway may have taken the message.
        shape = "" if body is not None else " (the body is not JSON)"
        return Outcome(
            OutcomeKind.AMBIGUOUS,
            code=f"http_{status}",
            text=f"HTTP {status} with {why}{shape}; it may have been sent",
        )

    def _mapped(self, code: str, response: requests.Response, body: Any, retry_after: float | None) -> Outcome:
        kind = self.errors.get(_canonical(code), self.default_error_class)
        keep = kind in (OutcomeKind.RETRYABLE, OutcomeKind.AMBIGUOUS)
        return Outcome(
            kind, code=self._scrub(code), text=self._text(response, body), retry_after=retry_after if keep else None
        )

    def _text(self, response: requests.Response, body: Any) -> str:
        text = self._first(
            body, self.error_text_paths, lambda v: v.strip() if isinstance(v, str) and v.strip() else None
        )
        if text is None:
            text = f"HTTP {response.status_code}: {http_common.body_excerpt(response)}"
        return self._scrub(http_common.short(text))

    @staticmethod
    def _first(body: Any, paths: list[tuple[str, ...]], read) -> Any:
        for path in paths:
            value = read(lookup_path(body, path))
            if value is not None:
                return value
        return None

    # -- checking --------------------------------------------------------------------------------------------

    def check(self) -> str:
        if self._check_url is None:
            return (
                f"http profile {self._name!r}: no check_url is configured, so nothing was checked "
                f"(messages go to {self.method} {self._scrub(self._url.render(dict.fromkeys(MESSAGE_FIELDS, '…')))})"
            )
        params = {self._auth_field: self.secret or ""} if self._auth_field else None
        # Only the headers that do not depend on a message make sense without one.
        headers = {
            name: template.render({"secret": self.secret or "", "sender": str(self.sender or "")})
            for name, template in self._headers.items()
            if template.names <= {"secret", "sender"}
        }
        where = self._scrub(self._check_url)
        try:
            response = self._session.get(
                self._check_url, params=params, headers=headers, timeout=self._timeouts, allow_redirects=False
            )
        except requests.RequestException as exc:
            detail = http_common.describe(exc, self._scrub)
            raise ProviderError(f"cannot reach the gateway at {where} ({detail}).") from None
        status = response.status_code
        body = http_common.json_body(response)
        if status in (401, 403):
            raise ConfigError(
                f"the gateway refused the credentials of profile {self._name!r} "
                f"(HTTP {status}: {self._text(response, body)}).",
                hint=(
                    f"Check auth under [providers.{self._name}] and the secret (where it comes from: "
                    f"{hints.current().providers()}; to store it: {hints.current().login(self._name)})."
                ),
            )
        if not 200 <= status < 300:
            raise ProviderError(
                f"gateway check failed: GET {where} answered HTTP {status}: {self._text(response, body)}"
            )
        verdict = lookup_path(body, self.success_path) if self.success_path else _MISSING
        if verdict is not _MISSING and _canonical(verdict) not in self.success_values:
            code = self._first(body, self.error_code_paths, _code_text) or _code_text(verdict) or ""
            failure = self._mapped(code, response, body, None)
            message = f"gateway check failed: GET {where} answered {code or 'an error'}: {failure.text}"
            if failure.kind is OutcomeKind.FATAL:
                raise ConfigError(message, hint=f"Check the credentials and account of profile {self._name!r}.")
            raise ProviderError(message)
        summary = f"http profile {self._name!r}: GET {where} answered HTTP {status}"
        if self.check_path is not None:
            value = lookup_path(body, self.check_path)
            if value is _MISSING or isinstance(value, dict | list):
                raise ProviderError(f"gateway check: GET {where} answered without {'.'.join(self.check_path)}.")
            summary += f"; {'.'.join(self.check_path)} = {self._scrub(_form_text(value))}"
        return summary

    def interrupt(self) -> None:
        self._session.interrupt()

    def close(self) -> None:
        self._session.close()

    # -- webhooks (docs/webhooks.md): fields read where the profile says (bulksend/providers/generic_hooks.py) --

    @classmethod
    def parse_report(cls, profile: Profile, request: WebhookRequest) -> list:
        return generic_hooks.parse_report(profile, request)

    @classmethod
    def parse_inbound(cls, profile: Profile, request: WebhookRequest) -> list:
        return generic_hooks.parse_inbound(profile, request)
