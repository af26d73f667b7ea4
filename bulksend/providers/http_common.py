"""What every HTTP adapter shares: a pooled, bounded session, Retry-After parsing, transport-error classes, scrubbing.

Every request through :func:`make_session`'s session has a whole-request deadline (connect, send, headers and
body together, not per read) and reads at most :data:`MAX_RESPONSE_BYTES` of body; a watchdog thread cuts a
request off at its deadline, or at once when the run stops (:meth:`BoundedSession.interrupt`).
"""

from __future__ import annotations

import base64
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import InvalidHeader as Urllib3InvalidHeader
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util import Timeout as Urllib3Timeout

from bulksend import __version__
from bulksend.errors import ConfigError
from bulksend.providers.base import Outcome, OutcomeKind, Profile
from bulksend.safetext import MAX_TEXT, printable, scrub_url

USER_AGENT = f"bulksend/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 16
#: Seconds a whole request may take, connect to last byte of the body (profile key ``deadline``), and its bounds.
DEFAULT_DEADLINE = 30.0
DEADLINE_RANGE = (0.1, 600.0)
#: The most of a response body that is read: provider answers are a few hundred bytes; more is not an answer.
MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
#: How often the watchdog tries again to cut a request that had no socket yet (still connecting).
_RECHECK = 0.05


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


class DeadlineExceeded(requests.RequestException):
    """A request that did not complete (connect, send, whole answer) within its deadline."""


class RequestInterrupted(requests.RequestException):
    """A request cut short because the run is stopping (Ctrl-C, SIGTERM)."""


class _Ticket:
    """One request in flight: its deadline, the connection it uses, and whether the watchdog cut it."""

    __slots__ = ("deadline", "conn", "reason", "cut")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn = None  # the urllib3 connection, while this request holds it
        self.reason: str | None = None  # "deadline" or "interrupted", once the watchdog acted
        self.cut = False  # its socket was shut down


_current = threading.local()  # the ticket of the request this thread is making


class _Watchdog:
    """One thread per session that shuts down the socket of a request past its deadline (or of every one, on stop).

    Shutting the socket down wakes the worker blocked in recv/send at once, whatever the server drips; the
    worker's request then fails and :meth:`BoundedSession.request` reports why. The per-request cost is a lock
    and a set insert; the thread sleeps until the earliest deadline.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tickets: set[_Ticket] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        self._closed = False

    def start(self, seconds: float) -> _Ticket:
        ticket = _Ticket(time.monotonic() + seconds)
        with self._cond:
            self._tickets.add(ticket)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="bulksend-deadline", daemon=True)
                self._thread.start()
            if ticket.deadline < self._wake_at:
                self._cond.notify()
        _current.ticket = ticket
        return ticket

    def finish(self, ticket: _Ticket) -> None:
        with self._cond:
            self._tickets.discard(ticket)
            ticket.conn = None
        _current.ticket = None

    def attach(self, conn) -> None:
        ticket = getattr(_current, "ticket", None)
        if ticket is not None:
            with self._cond:
                ticket.conn = conn
                if ticket.reason is not None:
                    self._cut(ticket)

    def detach(self, conn) -> None:
        ticket = getattr(_current, "ticket", None)
        if ticket is not None and conn is not None:
            with self._cond:
                if ticket.conn is conn:
                    ticket.conn = None  # back in the pool: another request may use it now

    def interrupt(self) -> None:
        with self._cond:
            for ticket in self._tickets:
                if ticket.reason is None:
                    ticket.reason = "interrupted"
                self._cut(ticket)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    @staticmethod
    def _cut(ticket: _Ticket) -> None:
        """Shut the request's socket down (called with the lock held); False while it has none yet."""
        sock = getattr(ticket.conn, "sock", None)
        if sock is None or ticket.cut:
            return
        try:
            # socket.socket's own shutdown, also for an SSLSocket: its override would drop the SSL object
            # under the worker's feet; a plain shutdown makes the worker's read fail cleanly.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass
        ticket.cut = True

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                wake = math.inf
                for ticket in self._tickets:
                    if ticket.reason is None and ticket.deadline <= now:
                        ticket.reason = "deadline"
                    if ticket.reason is not None:
                        self._cut(ticket)
                        if not ticket.cut:
                            wake = min(wake, now + _RECHECK)  # still connecting: try again shortly
                    else:
                        wake = min(wake, ticket.deadline)
                self._wake_at = wake
                self._cond.wait(None if wake == math.inf else max(0.0, wake - now))


class _OneWrite:
    """A connection that writes a request's head and a body of bytes with one ``send``, as http.client does.

    urllib3 2 writes the head, then the body: two system calls, two packets, and on a busy process two waits
    for the GIL per request. The bytes on the wire are the same.
    """

    _body: bytes | None = None

    def request(self, method, url, body=None, headers=None, *, chunked=False, **kwargs):
        if isinstance(body, bytes) and not chunked and headers and "content-length" in {k.lower() for k in headers}:
            self._body = body
            try:
                return super().request(method, url, None, headers, chunked=False, **kwargs)
            finally:
                self._body = None
        return super().request(method, url, body, headers, chunked=chunked, **kwargs)

    def endheaders(self, message_body=None, *, encode_chunked=False):
        if message_body is None and self._body is not None:
            message_body = self._body
        super().endheaders(message_body, encode_chunked=encode_chunked)


class _OneWriteHTTPConnection(_OneWrite, HTTPConnection):
    pass


class _OneWriteHTTPSConnection(_OneWrite, HTTPSConnection):
    pass


class _TrackedPool(HTTPConnectionPool):
    """A pool that tells the watchdog which connection the current request holds."""

    watchdog: _Watchdog
    ConnectionCls = _OneWriteHTTPConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        self.watchdog.attach(conn)
        return conn

    def _put_conn(self, conn) -> None:
        self.watchdog.detach(conn)
        super()._put_conn(conn)


class _TrackedHTTPSPool(HTTPSConnectionPool, _TrackedPool):
    ConnectionCls = _OneWriteHTTPSConnection


class _BoundedAdapter(HTTPAdapter):
    """requests' adapter, with pools whose connections the watchdog can reach."""

    def __init__(self, watchdog: _Watchdog, **kwargs) -> None:
        self._pools = {
            "http": type("TrackedHTTPPool", (_TrackedPool,), {"watchdog": watchdog}),
            "https": type("TrackedHTTPSPool", (_TrackedHTTPSPool,), {"watchdog": watchdog}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


class _RequestShape:
    """What every request of one shape (method, URL, content type) shares, worked out once per session.

    ``requests`` redoes all of this for every call: merge the session's headers and auth into a new
    PreparedRequest, read the environment's proxies and CA bundle, find the adapter and its urllib3 pool, set
    the pool's TLS verification, work out the request target. Per message, :meth:`send` copies the headers,
    sets the body and its length, and calls the pool exactly as ``HTTPAdapter.send`` does (no redirect, no
    retry, a streamed answer), turning urllib3's errors into the same ``requests`` exceptions.
    """

    __slots__ = ("template", "adapter", "pool", "target", "headers")

    def __init__(self, session: requests.Session, method: str, url: str, content_type: str) -> None:
        template = session.prepare_request(requests.Request(method, url, headers={"Content-Type": content_type}))
        settings = session.merge_environment_settings(template.url, {}, True, None, None)
        verify, cert, proxies = settings["verify"], settings["cert"], settings["proxies"]
        adapter = session.get_adapter(template.url)
        try:
            pool = adapter.get_connection_with_tls_context(template, verify, proxies=proxies, cert=cert)
        except LocationValueError as exc:
            raise InvalidURL(exc, request=template) from None
        adapter.cert_verify(pool, template.url, verify, cert)
        self.template = template
        self.adapter = adapter
        self.pool = pool
        self.target = adapter.request_url(template, proxies)
        self.headers = dict(template.headers)

    def send(self, body: bytes, timeout: tuple[float, float]) -> requests.Response:
        template = self.template
        headers = self.headers.copy()
        headers["Content-Length"] = str(len(body))
        try:
            raw = self.pool.urlopen(
                method=template.method, url=self.target, body=body, headers=headers, redirect=False,
                assert_same_host=False, preload_content=False, decode_content=False,
                retries=self.adapter.max_retries, timeout=Urllib3Timeout(connect=timeout[0], read=timeout[1]),
                chunked=False,
            )
        except Exception as exc:  # the same translation as HTTPAdapter.send
            mapped = _requests_error(exc, template)
            if mapped is exc:
                raise
            raise mapped from exc
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = raw.reason
        response.url = template.url
        response.request = template
        response.connection = self.adapter
        if "set-cookie" in response.headers:
            extract_cookies_to_jar(response.cookies, template, raw)
        return response


def _requests_error(exc: Exception, request: requests.PreparedRequest) -> Exception:
    """The exception ``requests.adapters.HTTPAdapter.send`` raises for an error of ``urlopen`` (else ``exc``)."""
    if isinstance(exc, ProtocolError | OSError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, MaxRetryError):
        reason = exc.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return requests.ConnectTimeout(exc, request=request)
        if isinstance(reason, ResponseError):
            return requests.exceptions.RetryError(exc, request=request)
        if isinstance(reason, ProxyError):
            return requests.exceptions.ProxyError(exc, request=request)
        if isinstance(reason, Urllib3SSLError):
            return requests.exceptions.SSLError(exc, request=request)
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, ClosedPoolError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, ProxyError):
        return requests.exceptions.ProxyError(exc)
    if isinstance(exc, Urllib3SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc, request=request)
    if isinstance(exc, Urllib3InvalidHeader):
        return requests.exceptions.InvalidHeader(exc, request=request)
    return exc


class BoundedSession(requests.Session):
    """A session whose every request ends by its deadline and reads at most ``max_body`` bytes of answer.

    A complete answer is read into the response (``.content``, ``.json()`` work as usual). A longer one is
    not read at all: ``body_over_cap`` is set and ``.content`` is empty, so the adapter classifies it from the
    status code alone. A request past its deadline raises :class:`DeadlineExceeded`; one cut short by
    :meth:`interrupt`, :class:`RequestInterrupted` — unless it never connected (then the usual connect error).
    """

    def __init__(self, deadline: float = DEFAULT_DEADLINE, max_body: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self.deadline = deadline
        self.max_body = max_body
        self._watchdog = _Watchdog()
        self._shapes: dict[tuple[str, str, str], _RequestShape] = {}  # send_body's, by (method, URL, type)

    def request(self, method, url, *args, **kwargs) -> requests.Response:
        kwargs["stream"] = True
        return self._bounded(lambda: super(BoundedSession, self).request(method, url, *args, **kwargs))

    def send_body(
        self, method: str, url: str, body: bytes, content_type: str, timeout: tuple[float, float]
    ) -> requests.Response:
        """One request with an already encoded body, never following a redirect: the hot path of a send.

        The same request on the wire, transport and errors as ``request(method, url, data=…,
        allow_redirects=False)``, without redoing per message what does not change within a run (see
        :class:`_RequestShape`). A session holding cookies or response hooks takes the general path, and
        cookies an answer sets are kept, so nothing a session does is lost.
        """
        if self.cookies or any(self.hooks.values()):
            return self.request(
                method, url, data=body, headers={"Content-Type": content_type}, timeout=timeout,
                allow_redirects=False,
            )
        key = (method, url, content_type)
        shape = self._shapes.get(key)
        if shape is None or shape.pool.pool is None:  # first use, or the pool manager closed the pool
            shape = self._shapes[key] = _RequestShape(self, method, url, content_type)

        def send() -> requests.Response:
            response = shape.send(body, timeout)
            if "set-cookie" in response.headers:
                extract_cookies_to_jar(self.cookies, response.request, response.raw)
            return response

        return self._bounded(send)

    def _bounded(self, make: Callable[[], requests.Response]) -> requests.Response:
        """Run ``make`` (a streamed request) under a deadline ticket and read its body up to the cap."""
        ticket = self._watchdog.start(self.deadline)
        response = None
        try:
            response = make()
            _read_body(response, self.max_body, ticket)
        except requests.RequestException as exc:
            if ticket.reason is not None and not (
                isinstance(exc, requests.ConnectionError) and _never_connected(exc)
            ):
                raise self._overrun(ticket) from None
            raise
        except Exception:
            if ticket.reason is not None:  # whatever the cut socket made the libraries raise
                raise self._overrun(ticket) from None
            raise
        finally:
            self._watchdog.finish(ticket)
        if ticket.reason is not None:  # cut, even if what came before the cut looked complete
            response._content_consumed = False
            response.close()
            raise self._overrun(ticket)
        response.close()  # read to the end (or given up on): release or drop the connection
        return response

    def _overrun(self, ticket: _Ticket) -> requests.RequestException:
        if ticket.reason == "interrupted":
            return RequestInterrupted("the run stopped while the request was in flight")
        return DeadlineExceeded(f"no complete answer within {self.deadline:g}s")

    def interrupt(self) -> None:
        """Cut every request in flight short now (the run is stopping)."""
        self._watchdog.interrupt()

    def close(self) -> None:
        self._watchdog.close()
        super().close()


def _read_body(response: requests.Response, limit: int, ticket: _Ticket) -> None:
    """Read the answer into ``response`` chunk by chunk, giving up past ``limit`` bytes or when cut."""
    body = bytearray()
    over = False
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > limit:
            over = True
            break
        if ticket.reason is not None:
            break
    response.body_over_cap = over
    response.body_bytes_read = len(body)
    if over:
        response._content = b""
        response._content_consumed = False  # so that close() drops the connection with the unread rest
    else:
        response._content = bytes(body)
        response._content_consumed = True


def make_session(
    pool_size: int, auth: AuthBase | None = None, *, deadline: float = DEFAULT_DEADLINE
) -> BoundedSession:
    """A session whose pool keeps ``pool_size`` connections alive per host, and that never retries by itself.

    Retrying is the engine's decision (DESIGN.md, "Providers"): urllib3 retrying a POST behind our back could
    send a message twice. Setting ``auth`` on the session also keeps requests from reading ~/.netrc.
    Every request ends within ``deadline`` seconds and reads at most :data:`MAX_RESPONSE_BYTES` of body.
    """
    session = BoundedSession(deadline)
    adapter = _BoundedAdapter(
        session._watchdog, pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0, pool_block=False
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    # An answer is small; a compressed one could inflate far past what was read off the wire.
    session.headers["Accept-Encoding"] = "identity"
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


def deadline(profile: Profile) -> float:
    """Seconds a whole request may take, from the profile's ``deadline`` key (default 30, 0.1 to 600)."""
    low, high = DEADLINE_RANGE
    value = profile.get("deadline", DEFAULT_DEADLINE)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not low <= seconds <= high:  # NaN fails every comparison
        raise ConfigError(
            f"provider profile {profile.name!r}: deadline must be a number of seconds from {low:g} to {high:g}, "
            f"not {value!r}.",
            hint=f"Set deadline under [providers.{profile.name}] in config.toml (default {DEFAULT_DEADLINE:g}).",
        )
    return seconds


def pool_size(profile: Profile) -> int:
    """Connections to keep alive: the profile's ``concurrency`` (requests in flight), default 16."""
    try:
        size = int(profile.get("concurrency", DEFAULT_CONCURRENCY))
    except (TypeError, ValueError):
        raise ConfigError(f"provider profile {profile.name!r}: concurrency must be a whole number.") from None
    return max(1, size)


#: No Retry-After is taken at more than this (a day; the engine caps every retry at the same).
MAX_RETRY_AFTER = 86400.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).

    A date in the past gives 0; a huge number or a far date gives :data:`MAX_RETRY_AFTER`; anything else
    (negative, garbage, not finite) gives None (the engine then uses its own backoff).
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 100:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)  # a 30-digit number is a float too (1e29), never an error
        return min(seconds, MAX_RETRY_AFTER) if math.isfinite(seconds) else MAX_RETRY_AFTER
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return min(MAX_RETRY_AFTER, max(0.0, (when - now).total_seconds()))


class Scrubber:
    """Removes secrets from any text an adapter passes on (provider messages, transport errors, URLs)."""

    _AUTH_HEADER = re.compile(r"\b(Basic|Bearer|Token)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so that a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = self._AUTH_HEADER.sub(lambda m: f"{m.group(1)} ***", text)
        return scrub_url(text)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} secrets={len(self._secrets)}>"


def short(text: str, limit: int = MAX_TEXT) -> str:
    """Provider text on one line, without control characters or escape sequences, cut to ``limit``."""
    return printable(text, limit) or ""


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
    if isinstance(exc, DeadlineExceeded):
        return Outcome(
            OutcomeKind.AMBIGUOUS,
            code="deadline_exceeded",
            text=f"{exc}; the provider may have accepted it",
        )
    if isinstance(exc, RequestInterrupted):
        return Outcome(
            OutcomeKind.AMBIGUOUS,
            code="interrupted",
            text="the run stopped before the answer came; the provider may have accepted it",
        )
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
    if getattr(response, "body_over_cap", False):
        return f"HTTP {response.status_code} with a body over {MAX_RESPONSE_BYTES:,} bytes (not read)"
    text = response.text if response.content else ""
    text = short(text, limit) if text else ""
    return text or f"HTTP {response.status_code} with an empty body"


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
