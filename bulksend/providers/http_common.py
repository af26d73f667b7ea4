"""What every HTTP adapter shares: a pooled session, Retry-After parsing, transport-error classes, secret scrubbing."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError

from bulksend import __version__
from bulksend.errors import ConfigError
from bulksend.providers.base import Outcome, OutcomeKind, Profile

USER_AGENT = f"bulksend/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 16
MAX_TEXT = 500  # longest provider text kept in an Outcome


class StaticAuth(AuthBase):
    """An Authorization header computed once (one b64 per adapter, not per request) and never shown in a repr."""

    def __init__(self, header_value: str) -> None:
        self._header_value = header_value

    @classmethod
    def basic(cls, username: str, password: str) -> "StaticAuth":
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return cls(f"Basic {token}")

    @classmethod
    def bearer(cls, token: str) -> "StaticAuth":
        return cls(f"Bearer {token}")

    @property
    def header_value(self) -> str:
        return self._header_value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header_value
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ***>"


def make_session(pool_size: int, auth: AuthBase | None = None) -> requests.Session:
    """A session whose pool keeps ``pool_size`` connections alive per host, and that never retries by itself.

    Retrying is the engine's decision (DESIGN.md, "Providers"): urllib3 retrying a POST behind our back could
    send a message twice. Setting ``auth`` on the session also keeps requests from reading ~/.netrc.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0, pool_block=False)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    session.auth = auth
    return session


def timeouts(profile: Profile, default_read: float = DEFAULT_READ_TIMEOUT) -> tuple[float, float]:
    """(connect, read) seconds from a profile's ``connect_timeout`` and ``timeout`` keys."""
    try:
        connect = float(profile.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        read = float(profile.get("timeout", default_read))
    except (TypeError, ValueError):
        raise ConfigError(
            f"provider profile {profile.name!r}: timeout and connect_timeout must be numbers of seconds."
        ) from None
    return connect, read


def pool_size(profile: Profile) -> int:
    """Connections to keep alive: the profile's ``concurrency`` (requests in flight), default 16."""
    try:
        size = int(profile.get("concurrency", DEFAULT_CONCURRENCY))
    except (TypeError, ValueError):
        raise ConfigError(f"provider profile {profile.name!r}: concurrency must be a whole number.") from None
    return max(1, size)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).

    A date in the past gives 0; anything unparseable gives None (the engine then uses its own backoff).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class Scrubber:
    """Removes secrets from any text an adapter passes on (provider messages, transport errors, URLs)."""

    _AUTH_HEADER = re.compile(r"\b(Basic|Bearer|Token)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)
    _URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so that a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = self._AUTH_HEADER.sub(lambda m: f"{m.group(1)} ***", text)
        text = self._URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
        return text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} secrets={len(self._secrets)}>"


def short(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost meaningful cause inside requests' and urllib3's wrappers."""
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = None
        if isinstance(current, MaxRetryError) and current.reason is not None:
            inner = current.reason
        elif current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        elif current.__cause__ is not None:
            inner = current.__cause__
        elif current.__context__ is not None:
            inner = current.__context__
        if inner is None:
            break
        current = inner
    return current


def describe(exc: BaseException, scrub: Scrubber) -> str:
    """A short, secret-free description of a transport error ("connection refused", "read timed out"…)."""
    return scrub(short(_describe(exc), 200)) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    root = _root_cause(exc)
    if isinstance(root, OSError) and root.strerror:
        return root.strerror.lower()
    name = type(root).__name__
    message = str(root)
    # urllib3 messages look like "<HTTPConnection object at 0x…>: Failed to establish a new connection: …"
    message = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", message)
    return f"{name}: {message}" if message else name


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request certainly never reached the server (refused, DNS, connect timeout, TLS handshake).

    With retries off, urllib3 reports failures while connecting as MaxRetryError whose reason is the connect
    error; failures after the request went out (reset, remote disconnect) come through as ProtocolError.
    """
    wrapped = exc.args[0] if exc.args else None
    if not isinstance(wrapped, MaxRetryError):
        return False
    return isinstance(wrapped.reason, NewConnectionError | ConnectTimeoutError | Urllib3SSLError | ProxyError)


def classify_transport_error(exc: requests.RequestException, scrub: Scrubber, read_timeout: float) -> Outcome:
    """The outcome of a request that got no HTTP response: not sent (retryable) or maybe sent (ambiguous)."""
    detail = describe(exc, scrub)
    if isinstance(exc, requests.ConnectTimeout):
        return Outcome(OutcomeKind.RETRYABLE, code="connect_timeout", text=f"connect timeout ({detail}); not sent")
    if isinstance(exc, requests.ReadTimeout):
        return Outcome(
            OutcomeKind.AMBIGUOUS,
            code="read_timeout",
            text=f"no answer within {read_timeout:g}s after sending; the provider may have accepted it",
        )
    if isinstance(exc, requests.ConnectionError):
        if _never_connected(exc):
            return Outcome(OutcomeKind.RETRYABLE, code="connect_error", text=f"could not connect ({detail}); not sent")
        return Outcome(
            OutcomeKind.AMBIGUOUS,
            code="connection_dropped",
            text=f"connection lost after sending ({detail}); the provider may have accepted it",
        )
    if isinstance(exc, InvalidURL | MissingSchema | InvalidSchema):
        return Outcome(OutcomeKind.FATAL, code="bad_base_url", text=f"the provider URL is not usable ({detail})")
    # Anything else broke while the request or response was in flight: it may have been accepted.
    return Outcome(OutcomeKind.AMBIGUOUS, code="transport_error", text=f"request failed ({detail})")


def json_body(response: requests.Response):
    """The decoded JSON body, or None when there is none or it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def body_excerpt(response: requests.Response, limit: int = 200) -> str:
    text = response.text if response.content else ""
    return short(text, limit) if text else f"HTTP {response.status_code} with an empty body"


def classify_http_status(
    status: int,
    code: str,
    text: str,
    retry_after: float | None,
    otherwise: OutcomeKind = OutcomeKind.PERMANENT,
) -> Outcome:
    """The outcome of a non-2xx answer that no provider-specific error code explains (DESIGN.md, "Transmissions").

    429 and 408 → retryable (not accepted); 5xx → ambiguous (it may have been); an unexpected redirect, 401,
    403 and 404 → fatal (credentials, account or URL: the same for every message); any other → ``otherwise``.
    ``retry_after`` is kept for retryable and ambiguous outcomes, where the engine waits before acting again.
    """
    if status in (408, 429):
        kind = OutcomeKind.RETRYABLE
    elif status >= 500:
        kind = OutcomeKind.AMBIGUOUS
    elif 300 <= status < 400:
        return Outcome(OutcomeKind.FATAL, code=code, text=f"unexpected redirect ({text}); check the URL")
    elif status in (401, 403, 404):
        kind = OutcomeKind.FATAL
    else:
        kind = otherwise
    keep = kind in (OutcomeKind.RETRYABLE, OutcomeKind.AMBIGUOUS)
    return Outcome(kind, code=code, text=text, retry_after=retry_after if keep else None)
