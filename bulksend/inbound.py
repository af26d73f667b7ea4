"""The webhook receiver: one endpoint per provider profile, verified, committed in groups (docs/webhooks.md).

``webhooks serve`` runs ``Receiver`` (an ASGI app) on uvicorn. A request is verified by its provider's own
means (a signature, or a secret token in the URL path) before anything is read from it; what it carries
(delivery receipts, replies) is handed to one ``ReceiptWriter`` thread, which commits many requests together
(one ledger transaction for a group's plain receipts, one for the rest); the request is answered 2xx only once
its transaction has committed, so that a provider retries whatever was not recorded. A receipt the ledger
cannot apply yet is kept and retried. The event loop parses and verifies; only the writer thread touches the
ledger.
``--workers N`` (PostgreSQL ledgers): N forked processes, each all of the above, accepting from one socket.
"""

from __future__ import annotations

import json
import queue
import secrets as _secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from bulksend import credentials
from bulksend.config import Config
from bulksend.errors import ConfigError, InputError, LedgerError
from bulksend.ledger import Ledger
from bulksend.providers.base import Profile, Provider, WebhookRequest, WebhookSecrets, provider_class
from bulksend.receipts import InboundMessage, Receipt, StopWords

HOOKS = "/hooks/"
HEALTH = "/healthz"
TOKENS_FILE = Path("webhooks") / "tokens.json"
MAX_BODY = 1024 * 1024  # a receipt is a few hundred bytes; Meta batches at most a few hundred KB
COMMIT_WAIT = 60.0  # seconds a request waits for its commit before answering 503 (the provider retries)
GRACE = 30.0  # seconds a stopping server lets the requests in progress finish; then it cuts them (unanswered)
RETRY_PENDING_EVERY = 2.0  # seconds between two passes over the kept receipts
# Once the queue is empty, the writer waits up to this long (seconds) for more requests before committing: under
# load the requests answered by one commit come back together, and small groups become a few large ones (bench/).
# It stops waiting as soon as the group is as large as the last one (the requests it answered are all back).
GATHER = 0.003
DEFAULT_PORT = 8080


# ------------------------------------------------------------------------------------------ endpoints


def path_tokens(home: Path, names: Iterable[str]) -> dict[str, str]:
    """Each profile's URL path token, created (random, 32 characters) the first time and kept in
    ``<home>/webhooks/tokens.json`` (owner-only, like the ledger): a URL that has been pasted into a provider's
    console must not change from one run to the next."""
    import os

    from filelock import FileLock

    from bulksend.private import open_private, private_dir

    path = home / TOKENS_FILE
    private_dir(path.parent, root=home)
    with FileLock(str(path.with_suffix(".lock"))):
        try:
            tokens = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path}: cannot be read ({exc}).", hint="Move it away: new URLs are made (paste them again)."
            ) from None
        if not isinstance(tokens, dict):
            raise ConfigError(f"{path}: not a table of tokens.", hint="Move it away: new URLs are made.")
        missing = [name for name in names if not isinstance(tokens.get(name), str)]
        if missing:
            for name in missing:
                tokens[name] = _secrets.token_urlsafe(24)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
            with open(fd, "w", encoding="utf-8") as handle:
                json.dump(tokens, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    return {name: tokens[name] for name in names}


@dataclass(frozen=True)
class Endpoint:
    """One profile's endpoint: where it is, what verifies it, and whether it can verify anything at all."""

    profile: Profile
    cls: type[Provider]
    secrets: WebhookSecrets = field(repr=False)
    signed: bool
    path: str  # e.g. /hooks/twilio, or /hooks/vonage/<token> for a provider that cannot sign
    verified_by: str
    problem: str | None = None  # why every request will be refused (a missing secret), said by `webhooks urls`

    @property
    def name(self) -> str:
        return self.profile.name


def endpoints(config: Config) -> list[Endpoint]:
    """Every profile's endpoint (the built-in outbox too), with the secrets that verify it."""
    from bulksend import profiles

    listed = profiles.list_profiles(config)
    tokens = path_tokens(config.home, [p.name for p in listed])
    found = []
    for profile in listed:
        cls = provider_class(profile.type)
        profile, _ = credentials.from_environment(profile, cls)
        webhook_secret, _source = credentials.resolve_webhook_secret(profile)
        secret = None
        problem = None
        if cls.type_name == "twilio" and not webhook_secret and not profile.get("api_key_sid"):
            try:
                secret = credentials.resolve_secret(profile, cls)
            except ConfigError as exc:
                problem = f"no auth token to check signatures with ({exc.message})"
        secrets = WebhookSecrets(token=tokens[profile.name], secret=secret, webhook_secret=webhook_secret)
        signed = cls.webhook_signed(profile, secrets)
        env = credentials.webhook_env_var(profile.name)
        if cls.type_name == "twilio" and profile.get("api_key_sid") and not webhook_secret:
            problem = f"a profile that sends with an API key needs the auth token as its webhook secret ({env})"
        if cls.type_name == "whatsapp" and not webhook_secret:
            problem = f"no app secret: set {env} or run bulksend provider login {profile.name} --webhook-secret"
        path = HOOKS + quote(profile.name, safe="")
        if not signed:
            path += "/" + secrets.token
        verified_by = cls.webhook_verified_by if signed else Provider.webhook_verified_by
        found.append(Endpoint(profile, cls, secrets, signed, path, verified_by, problem))
    return found


def public_base(config: Config, public_url: str | None) -> str:
    """The public base URL: ``--public-url``, else ``[webhooks] public_url``; exit 6 when there is neither."""
    url = (public_url or config.webhooks.get("public_url") or "").strip().rstrip("/")
    if not url:
        raise ConfigError(
            "no public URL for the webhooks: providers must know where to reach this server.",
            hint='Add public_url = "https://hooks.example.com" under [webhooks] in config.toml, or give --public-url.',
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InputError(f"public URL {url!r} must be an http(s) URL without a query, like https://hooks.example.com.")
    return url


def webhook_urls(config: Config, public_url: str | None) -> dict[str, dict[str, Any]]:
    """What ``webhooks urls`` prints: per profile, the URL to paste and what verifies it (never a secret)."""
    base = public_base(config, public_url)
    shown: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints(config):
        entry: dict[str, Any] = {"url": base + endpoint.path, "verified_by": endpoint.verified_by}
        if endpoint.cls.type_name == "whatsapp":
            entry["verify_token"] = endpoint.secrets.token  # pasted into Meta's console with the URL
        if endpoint.problem:
            entry["problem"] = endpoint.problem
        shown[endpoint.name] = entry
    return shown


def with_callback(config: Config, profile: Profile) -> Profile:
    """A Twilio profile without ``status_callback`` gets its webhook URL as one when ``[webhooks] public_url`` is
    set: every message then asks Twilio for receipts, with our transmission id in the URL."""
    base = str(config.webhooks.get("public_url") or "").strip().rstrip("/")
    if profile.type != "twilio" or profile.get("status_callback") or not base:
        return profile
    url = base + HOOKS + quote(profile.name, safe="")
    return Profile(profile.name, profile.type, {**profile.settings, "status_callback": url})


# --------------------------------------------------------------------------------------- the writer


@dataclass
class _Work:
    receipts: list[Receipt]
    inbound: list[InboundMessage]
    future: Any = field(default_factory=Future)  # a concurrent Future, or an asyncio one of ``loop``
    loop: Any = None  # the event loop of an asyncio future (``submit_async``)


_STOP = object()


class ReceiptWriter:
    """One thread that owns the ledger: takes what the requests hand it, commits many at once, and tells
    each request when its part is committed (group commit). Between requests it retries the kept receipts."""

    def __init__(self, ledger: Ledger, *, max_batch: int = 2000, retry_every: float = RETRY_PENDING_EVERY,
                 gather: float = GATHER, retry_pending: bool = True, log: Callable[[str], None] | None = None) -> None:
        self.ledger = ledger
        self.retry_pending = retry_pending  # False in every worker of `serve --workers N` but the first
        self.max_batch = max_batch
        self.gather = gather
        self.retry_every = retry_every
        self.log = log or (lambda message: None)
        self.fates: Counter[str] = Counter()
        self.inbound = 0
        self.opt_outs = 0
        self.commits = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bulksend-receipt-writer", daemon=True)
        self._last_retry = 0.0
        self._last_group = max_batch  # the size of the last group committed: gathering stops when this one reaches it

    def start(self) -> "ReceiptWriter":
        self._thread.start()
        return self

    def submit(self, receipts: list[Receipt], inbound: list[InboundMessage]) -> Future:
        """From any thread: a Future told once what ``receipts`` and ``inbound`` carry is committed."""
        work = _Work(receipts, inbound)
        work.future.set_running_or_notify_cancel()  # it cannot be cancelled: the writer always settles it
        self._queue.put(work)
        return work.future

    def submit_async(self, receipts: list[Receipt], inbound: list[InboundMessage]) -> "asyncio.Future":
        """From an event loop (the server's): an asyncio future of that loop, settled like ``submit``'s. The
        requests one commit answers are settled by one call into their loop, not one wake-up each."""
        import asyncio

        loop = asyncio.get_running_loop()
        work = _Work(receipts, inbound, loop.create_future(), loop)
        self._queue.put(work)
        return work.future

    def close(self, timeout: float = 60.0) -> None:
        """Commit everything already handed over, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.retry_every)
            except queue.Empty:
                first = None
            batch: list[_Work] = []
            if first is _STOP:
                stopping = True
            elif first is not None:
                batch.append(first)
            deadline = None  # a request waits at most one gather longer than its commit
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    if not batch or stopping or self.gather <= 0 or len(batch) >= self._last_group:
                        break
                    now = time.monotonic()
                    deadline = deadline or now + self.gather
                    if now >= deadline:
                        break
                    try:
                        item = self._queue.get(timeout=deadline - now)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stopping = True
                    continue
                batch.append(item)
            if batch:
                self._last_group = len(batch)
                self._commit(batch)
            if self.retry_pending and (time.monotonic() - self._last_retry >= self.retry_every or stopping):
                self._retry_pending()

    def _commit(self, batch: list[_Work]) -> None:
        """Commit a group and tell each of its requests: the plain receipts in one transaction of their own (the
        bulk path), then what is left one request at a time in a second (none in the common case)."""
        try:
            done = self._bulk(batch)
        except BaseException as exc:  # not a ledger error (those fall back): nothing committed
            self._fail([], batch, exc)
            return
        if done:
            self.commits += 1
        committed = [(work, ([done[id(work)]], []), None) for work in batch if id(work) in done]
        rest = [work for work in batch if id(work) not in done]
        applied = []
        if rest:
            try:
                with self.ledger.transaction():
                    applied = [self._apply_one(work) for work in rest]
            except BaseException as exc:  # nothing of ``rest`` committed
                self._fail(committed, rest, exc)
                return
            self.commits += 1
        self._finish(committed + applied)

    def _apply_one(self, work: _Work) -> tuple[_Work, Any, BaseException | None]:
        """One request inside the caller's transaction: its (fates, kept), or the error it alone failed with
        (answered 500; the provider retries)."""
        try:
            if len(work.receipts) + len(work.inbound) == 1:  # atomic on its own already
                fates = [self.ledger.record_receipt(r) for r in work.receipts]
                kept = [self.ledger.record_inbound(m) for m in work.inbound]
            else:
                with self.ledger.transaction():  # a savepoint: one bad request cannot sink the others
                    fates = [self.ledger.record_receipt(r) for r in work.receipts]
                    kept = [self.ledger.record_inbound(m) for m in work.inbound]
            return work, (fates, kept), None
        except Exception as exc:  # noqa: BLE001
            return work, None, exc

    def _fail(self, committed: list, failed: list[_Work], exc: BaseException) -> None:
        """Nothing of ``failed`` was committed: each is answered 503, ``committed`` as it went. Anything but an
        Exception (an interrupt) goes on up once every request is told."""
        self.log(f"webhooks: could not commit {len(failed)} request(s): {getattr(exc, 'message', exc)}")
        self._finish(committed + [(work, None, exc) for work in failed])
        if not isinstance(exc, Exception):
            raise exc

    def _finish(self, results: list[tuple[_Work, Any, BaseException | None]]) -> None:
        """Count what the requests carried, then tell each its outcome."""
        for work, value, error in results:
            if error is None:
                fates, kept = value
                self.fates.update(str(f) for f in fates)
                self.inbound += sum(kept)
                self.opt_outs += sum(1 for m, k in zip(work.inbound, kept) if k and m.opt_out)
        self._settle(results)

    @staticmethod
    def _settle(results: list[tuple[_Work, Any, BaseException | None]]) -> None:
        """Tell each request its outcome: a concurrent Future at once, asyncio futures in one call per loop."""
        by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for work, value, error in results:
            if work.loop is not None:
                by_loop.setdefault(work.loop, []).append((work.future, value, error))
            elif error is not None:
                work.future.set_exception(error)
            else:
                work.future.set_result(value)
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_in_loop, outcomes)
            except RuntimeError:
                pass  # that loop has closed: its requests were cut off unanswered, and the provider retries

    def _bulk(self, batch: list[_Work]) -> dict[int, Any]:
        """The common case at once, committed: requests that carry one receipt each go through
        ``Ledger.record_receipts`` in a transaction of their own (no savepoint: two round trips fewer on
        PostgreSQL); returns the fate of each request it applied, by ``id(work)``. The others, and all of them
        if the bulk path fails (its transaction rolled back), are applied one at a time after it."""
        single = [work for work in batch if len(work.receipts) == 1 and not work.inbound]
        if len(single) < 2:
            return {}
        try:
            fates = self.ledger.record_receipts([work.receipts[0] for work in single])
        except LedgerError as exc:
            self.log(f"webhooks: the bulk path failed, applying one at a time: {exc.message}")
            return {}
        return {id(work): fate for work, fate in zip(single, fates) if fate is not None}

    def _retry_pending(self) -> None:
        self._last_retry = time.monotonic()
        try:
            if not self.ledger.pending_receipt_count():
                return
            for fate, n in self.ledger.apply_pending_receipts().items():
                if fate != "pending":
                    self.fates[f"later_{fate}"] += n
        except LedgerError as exc:
            self.log(f"webhooks: could not apply the kept receipts now: {exc.message}")


def _settle_in_loop(outcomes: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():
            continue  # the request stopped waiting (it timed out, or the server was stopped past its grace)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


# ----------------------------------------------------------------------------------------- the app


class Receiver:
    """The ASGI application: ``GET /healthz``, and ``/hooks/<profile>[/<token>]`` for each profile."""

    def __init__(self, config: Config, writer: ReceiptWriter, public_url: str | None,
                 found: list[Endpoint] | None = None) -> None:
        self.base = public_base(config, public_url)
        self.prefix = urlsplit(self.base).path.rstrip("/")  # a reverse proxy may or may not strip it
        self.writer = writer
        self.stop_words = StopWords(config.webhooks.get("stop_words") or ())
        self.by_name = {e.name: e for e in (found if found is not None else endpoints(config))}
        self.requests: Counter[int] = Counter()

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket: the server is configured without them
        status, content_type, body = await self._handle(scope, receive)
        self.requests[status] += 1
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict, receive) -> tuple[int, str, bytes]:
        text = "text/plain; charset=utf-8"
        path = scope.get("path") or "/"
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix):]
        method = scope.get("method", "GET").upper()
        if path == HEALTH:
            return (200, text, b"ok\n") if method in ("GET", "HEAD") else (405, text, b"GET only\n")
        if not path.startswith(HOOKS):
            return 404, text, b"not found\n"
        name, _, token = path[len(HOOKS):].partition("/")
        endpoint = self.by_name.get(name)
        if endpoint is None:
            return 404, text, b"not found\n"
        if method not in ("GET", "POST"):
            return 405, text, b"GET or POST\n"
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:  # repeated headers joined as a WSGI server would
            header, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[header] = f"{headers[header]}, {value}" if header in headers else value
        try:
            length = int(headers.pop("content-length", "") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return 413, text, b"too large\n"
        chunks: list[bytes] = []
        size = 0
        while True:  # chunked bodies have no length: the limit holds as they come
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, text, b"incomplete\n"  # nobody to answer; nothing recorded
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return 413, text, b"too large\n"
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        request = self._request(scope, headers, endpoint, method, token, body)
        if endpoint.signed and token:
            return 403, text, b"forbidden\n"
        challenge = endpoint.cls.webhook_handshake(endpoint.profile, request, endpoint.secrets)
        if challenge is not None:
            return 200, text, challenge
        if endpoint.problem or not endpoint.cls.verify_webhook(endpoint.profile, request, endpoint.secrets):
            return 403, text, b"forbidden\n"
        # Verified: from here on the request is the provider's word.
        receipts = endpoint.cls.parse_report(endpoint.profile, request)
        inbound = [self._classified(m) for m in endpoint.cls.parse_inbound(endpoint.profile, request)]
        if receipts or inbound:
            import asyncio

            try:
                await asyncio.wait_for(self.writer.submit_async(receipts, inbound), COMMIT_WAIT)
            except (LedgerError, TimeoutError):
                return 503, text, b"not recorded; try again\n"
            except Exception:  # noqa: BLE001 - not recorded: the provider retries; the writer logged it
                return 500, text, b"not recorded\n"
        return (200, *endpoint.cls.webhook_ack)

    def _request(self, scope: dict, headers: dict[str, str], endpoint: Endpoint, method: str, token: str,
                 body: bytes) -> WebhookRequest:
        query_string = scope.get("query_string", b"").decode("latin-1")
        url = self.base + endpoint.path + (f"?{query_string}" if query_string else "")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        headers["content-type"] = content_type
        form: tuple[tuple[str, str], ...] = ()
        document = None
        try:
            if content_type == "application/x-www-form-urlencoded":
                form = tuple(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            elif content_type.endswith("json") and body:
                document = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            pass  # unreadable: verification fails on it, or the parse finds nothing
        query = tuple(parse_qsl(query_string, keep_blank_values=True))
        return WebhookRequest(method, url, token, query, headers, body, form, document)

    def _classified(self, message: InboundMessage) -> InboundMessage:
        """The sender as E.164 when it is a valid number, and STOP keywords marked as opt-outs."""
        from bulksend.optouts import normalize

        number = normalize(message.sender, None) if message.sender else None
        if number is not None and number != message.sender:
            message = replace(message, sender=number)
        if not message.opt_out:
            keyword = self.stop_words.match(message.text)
            if keyword is not None:
                message = replace(message, opt_out=True, keyword=keyword)
        return message


# -------------------------------------------------------------------------------------- the server


class ReceiverServer:
    """uvicorn serving one ASGI app, stopped cleanly: no new connection, requests in progress finished and
    answered, then the sockets closed. ``serve()`` blocks until ``stop()`` (from any thread or a signal).

    httptools parses HTTP and uvloop runs the event loop where they are installed (uvicorn's "auto"), else
    h11 and asyncio: the same behaviour, more CPU per request. No access log: a path token is a secret."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = DEFAULT_PORT, sock=None,
                 log: Callable[[str], None] | None = None) -> None:
        """``sock``: a listening socket bound already (the parent's, shared by the workers of ``--workers N``)
        instead of ``host`` and ``port``. ``log``: where uvicorn's warnings and errors go."""
        import uvicorn

        self._owned = sock is None
        self._sock = _listen(host, port) if sock is None else sock
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self._log = log
        config = uvicorn.Config(
            app, loop="auto", http="auto", ws="none", lifespan="off", interface="asgi3",
            log_config=None, access_log=False, proxy_headers=False, server_header=False,
            headers=[("server", "bulksend")], timeout_keep_alive=30, timeout_graceful_shutdown=int(GRACE),
        )
        self._server = _uvicorn_server(config)
        self.stopped = threading.Event()

    def serve(self) -> None:
        import logging

        logger = logging.getLogger("uvicorn")
        handler = None
        if self._log is not None:
            log = self._log

            class Handler(logging.Handler):  # uvicorn's warnings and errors (never a request line)
                def emit(self, record: logging.LogRecord) -> None:
                    try:
                        log(f"webhooks: {self.format(record)}")
                    except Exception:  # noqa: BLE001 - logging must never stop the server
                        self.handleError(record)

            handler = Handler(logging.WARNING)
            logger.addHandler(handler)
            logger.propagate = False
        try:
            self._server.run(sockets=[self._sock])
        finally:
            if handler is not None:
                logger.removeHandler(handler)
                logger.propagate = True
            if self._owned:
                self._sock.close()
            self.stopped.set()

    def stop(self) -> None:
        """Stop taking connections and drain. Idempotent: Ctrl-C on ``--workers N`` reaches each worker twice
        (the terminal's SIGINT and the parent's SIGTERM), and neither cuts the requests in progress."""
        self._server.should_exit = True


def _uvicorn_server(config):
    """uvicorn's server without its own signal handling: ``_serve_one`` (or a test) stops it through
    ``ReceiverServer.stop``, and uvicorn's handlers would raise the signal again once it has stopped."""
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    return Server(config)


@dataclass
class ServeSummary:
    """What a ``webhooks serve`` run recorded, said when it stops (with ``--workers N``: all of them)."""

    requests: dict[int, int]
    fates: dict[str, int]
    inbound: int
    opt_outs: int
    pending: int
    per_worker: list[int] = field(default_factory=list)  # requests answered by each worker (--workers N > 1)
    exit_code: int = 0  # not 0: a worker failed (it said why); the others were stopped


def serve(config: Config, host: str, port: int, public_url: str | None, *, workers: int = 1,
          announce: Callable[[str], None], log: Callable[[str], None]) -> ServeSummary:
    """``webhooks serve``: until SIGTERM or Ctrl-C; then the requests in progress finish and are committed.
    ``workers`` > 1: that many processes on one listening socket (PostgreSQL only; see ``_serve_workers``)."""
    if workers > 1:
        _can_fork_workers(config, workers)
    found = endpoints(config)
    base = public_base(config, public_url)
    if workers > 1:
        return _serve_workers(config, found, base, host, port, public_url, workers, announce, log)

    def listening(server: ReceiverServer) -> None:
        announce(f"Listening on http://{host}:{server.port} for {base} "
                 f"({len(found)} profile(s); bulksend webhooks urls lists them). Ctrl-C stops.")
        _warn_problems(found, log)

    return _serve_one(config, found, public_url, lambda app: ReceiverServer(app, host, port, log=log), listening,
                      log)


def _warn_problems(found: list[Endpoint], log: Callable[[str], None]) -> None:
    for endpoint in found:
        if endpoint.problem:
            log(f"webhooks: profile {endpoint.name!r} refuses every request: {endpoint.problem}")


def _serve_one(config: Config, found: list[Endpoint], public_url: str | None,
               make_server: Callable[[Receiver], ReceiverServer], listening: Callable[[ReceiverServer], None],
               log: Callable[[str], None], *, retry_pending: bool = True,
               stop_requested: threading.Event | None = None) -> ServeSummary:
    """One server process: its own ledger connection, writer thread and uvicorn, until SIGTERM or SIGINT."""
    import signal

    from bulksend.ledger_guard import open_for_write

    with open_for_write(config) as ledger:
        writer = ReceiptWriter(ledger, retry_pending=retry_pending, log=log).start()
        try:
            app = Receiver(config, writer, public_url, found)
            server = make_server(app)
            previous = {}

            def on_signal(signum, frame) -> None:  # noqa: ARG001
                server.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
            try:
                if stop_requested is not None and stop_requested.is_set():
                    server.stop()  # a signal came while this worker was starting
                listening(server)
                server.serve()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            writer.close()
        return ServeSummary(dict(app.requests), dict(writer.fates), writer.inbound, writer.opt_outs,
                            ledger.pending_receipt_count())


def _listen(host: str, port: int, backlog: int = 1024):
    """The listening socket the workers share (bound once, here: every worker accepts from it)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}).",
                         hint="Choose another --port, or stop what uses that one.") from None


def _can_fork_workers(config: Config, workers: int) -> None:
    """``--workers`` above 1 needs a PostgreSQL ledger and fork(); exit 2 otherwise, before anything is done."""
    import os

    from bulksend import ledger as ledgers

    if not ledgers.server_url(config):
        raise InputError(
            f"--workers {workers} needs a PostgreSQL ledger: on SQLite the workers would all wait for its one "
            "writer, so they cannot record receipts faster than one process.",
            hint="Leave out --workers (one process), or move the ledger to PostgreSQL (docs/ledger.md).",
        )
    if not hasattr(os, "fork"):
        raise InputError(f"--workers {workers} needs fork(), which this system lacks.",
                         hint="Leave out --workers: one process serves every profile.")


def _serve_workers(config: Config, found: list[Endpoint], base: str, host: str, port: int,
                   public_url: str | None, workers: int, announce: Callable[[str], None],
                   log: Callable[[str], None]) -> ServeSummary:
    """``--workers N``: this process binds the port, forks N workers that all accept from it (each its own
    ledger connection, writer thread and uvicorn: N GILs), forwards SIGTERM and SIGINT to them and waits for
    each to finish what it acknowledged. Only worker 0 retries the kept receipts (any worker may keep one:
    they are rows of the ledger). PostgreSQL only: on SQLite the workers would all queue for its one writer."""
    import os
    import signal
    import sys

    from bulksend import ledger as ledgers
    from bulksend.ledger_guard import open_for_write

    with open_for_write(config):
        pass  # the home's and the ledger's checks (and migrations) once, before any worker starts
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    parent = os.getpid()
    stop_requested = threading.Event()
    children: dict[int, tuple[int, int]] = {}  # pid -> (worker index, the read end of its pipe)

    def forward(signum, frame) -> None:  # noqa: ARG001
        stop_requested.set()
        if os.getpid() != parent:
            return  # a worker not yet serving: it stops as soon as it is
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(workers):
            sys.stdout.flush()
            sys.stderr.flush()
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the parent's code
                os.close(read_end)
                for _, other in children.values():
                    os.close(other)
                os._exit(_worker(config, found, public_url, sock, index, write_end, stop_requested, log))
            os.close(write_end)
            children[pid] = (index, read_end)
        sock.close()  # the workers hold it now: when the last one stops, the port is closed
        if stop_requested.is_set():
            forward(signal.SIGTERM, None)  # a signal came while a worker was being forked: it is told now
        ready = [os.read(read_end, 1) == b"r" for read_end in (r for _, r in children.values())]
        if all(ready):
            announce(f"Listening on http://{host}:{bound} for {base} with {workers} workers "
                     f"({len(found)} profile(s); bulksend webhooks urls lists them). Ctrl-C stops.")
            _warn_problems(found, log)
        else:
            forward(signal.SIGTERM, None)
        summaries: dict[int, dict] = {}
        codes: dict[int, int] = {}
        while len(codes) < len(children):
            pid, status = os.waitpid(-1, 0)
            if pid not in children:
                continue
            index, read_end = children[pid]
            codes[index] = os.waitstatus_to_exitcode(status)
            report = b""
            while chunk := os.read(read_end, 65536):
                report += chunk
            os.close(read_end)
            if report:
                summaries[index] = json.loads(report)
            if codes[index] != 0 and not stop_requested.is_set():
                log(f"webhooks: worker {index} stopped (exit code {codes[index]}); stopping the others.")
                forward(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    requests: Counter[int] = Counter()
    fates: Counter[str] = Counter()
    for summary in summaries.values():
        requests.update({int(k): v for k, v in summary["requests"].items()})
        fates.update(summary["fates"])
    try:  # counted once every worker has stopped: any of them may have kept one
        ledger = ledgers.open_existing(config)
        pending = 0 if ledger is None else ledger.pending_receipt_count()
        if ledger is not None:
            ledger.close()
    except LedgerError:
        pending = max((s["pending"] for s in summaries.values()), default=0)
    exit_code = next((code if code > 0 else 1 for code in codes.values() if code != 0), 0)
    return ServeSummary(
        dict(requests), dict(fates), sum(s["inbound"] for s in summaries.values()),
        sum(s["opt_outs"] for s in summaries.values()), pending,
        [sum(summaries[i]["requests"].values()) if i in summaries else 0 for i in range(workers)], exit_code,
    )


def _worker(config: Config, found: list[Endpoint], public_url: str | None, sock, index: int, report: int,
            stop_requested: threading.Event, log: Callable[[str], None]) -> int:
    """One worker of ``--workers N`` (a forked process): ``b"r"`` on ``report`` once it serves, then its
    summary as JSON when it has stopped; returns its exit code (an error is said as the command would)."""
    import os
    import sys
    from dataclasses import asdict

    from bulksend import output
    from bulksend.errors import BulksendError

    code = 0
    try:
        summary = _serve_one(
            config, found, public_url, lambda app: ReceiverServer(app, sock=sock, log=log),
            lambda server: os.write(report, b"r"), log, retry_pending=index == 0, stop_requested=stop_requested,
        )
        os.write(report, json.dumps(asdict(summary)).encode())
    except BulksendError as exc:
        output.error(f"webhooks worker {index}: {exc.message}", exc.hint)
        code = int(exc.exit_code)
    except BaseException:  # noqa: BLE001 - a bug: said plainly, and the parent stops the other workers
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os.close(report)
        sys.stdout.flush()
        sys.stderr.flush()
    return code
