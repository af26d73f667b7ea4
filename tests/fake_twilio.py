"""A fake Twilio Messages API on localhost for the send tests: records every accepted message, injects faults.

It speaks just enough of the 2010-04-01 API for the ``twilio`` adapter: ``POST …/Messages.json`` creates a
message (201 with a sid) and ``GET …/Messages.json?To=…`` lists what it accepted for a number (the lookup
the engine uses to reconcile). Faults are decided per request by ``fault`` and are the ones the design
names: 429 with Retry-After in seconds or as an HTTP date, 500, a connection dropped after the request
was read (the message may or may not have been accepted), and an answer that comes too late (accepted,
but after the client's read timeout).

Ground truth for the assertions: ``accepted`` (every message the "provider" took, in order) and
``throttled`` (for every 429: when it answered and until when it asked the client to wait).
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FAULTS = ("429_seconds", "429_date", "500", "drop", "timeout")
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-token-for-tests"  # not a secret: the fake server accepts anything


def random_faults(rate: float = 0.2, seed: int = 4) -> Callable[[str, int], str | None]:
    """A fault for ``rate`` of the requests, each kind equally likely (seeded: the same run every time)."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def fault(to: str, attempt: int) -> str | None:
        with lock:
            if rng.random() < rate:
                return rng.choice(FAULTS)
        return None

    return fault


class FakeTwilio:
    """The server and its records; start with ``with FakeTwilio(...) as twilio:`` and use ``twilio.url``."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fault: Callable[[str, int], str | None] | None = None,
        retry_after: float = 1.0,
        late_by: float = 1.0,
    ) -> None:
        self.latency = latency
        self.fault = fault
        self.retry_after = retry_after
        self.late_by = late_by  # how long a "timeout" answer takes (more than the client's read timeout)
        self.lock = threading.Lock()
        self.accepted: list[dict] = []  # every message accepted, in order
        self.by_number: dict[str, list[dict]] = {}
        self.posts: Counter = Counter()  # create requests per number
        self.post_times: dict[str, list[float]] = {}  # arrival times (time.time()) per number
        self.throttled: list[tuple[str, float, float]] = []  # (number, answered at, wait until)
        self.faults: Counter = Counter()
        self.lookups = 0
        self.lookup_times: dict[str, list[float]] = {}  # when each number was looked up (time.time())
        self.accept_times: dict[str, list[float]] = {}  # when each message was accepted (time.time())
        self._seq = 0
        server = _QuietServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.request_queue_size = 256
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeTwilio":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted_counts(self) -> Counter:
        with self.lock:
            return Counter(m["to"] for m in self.accepted)

    def accept(self, to: str, body: str) -> dict:
        with self.lock:
            self._seq += 1
            now = datetime.now(timezone.utc)
            message = {
                "sid": f"SM{self._seq:032x}",
                "account_sid": ACCOUNT_SID,
                "to": to,
                "from": "+15005550006",
                "body": body,
                "status": "queued",
                "direction": "outbound-api",
                "date_created": format_datetime(now, usegmt=True),
                "date_sent": None,
                "error_code": None,
                "error_message": None,
                "num_segments": "1",
            }
            self.accepted.append(message)
            self.accept_times.setdefault(to, []).append(time.time())
            self.by_number.setdefault(to, []).append(message)
            return message


class _QuietServer(ThreadingHTTPServer):
    """Clients that die mid-request (the crash tests kill them) are expected: no traceback for those."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler(twilio: FakeTwilio):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the adapter's pooled session expects
        # One write per response, sent at once: headers and body in two small writes would meet the client's
        # delayed ACK (Nagle), adding ~40 ms to every request and making the fake, not bulksend, the bottleneck.
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, *args) -> None:  # quiet
            pass

        def _reply(self, status: int, document: dict, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:  # the client gave up (read timeout) or was killed
                self.close_connection = True

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.endswith("/Messages.json"):
                self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                return
            query = parse_qs(parts.query)
            to = query.get("To", [""])[0]
            with twilio.lock:
                twilio.lookups += 1
                twilio.lookup_times.setdefault(to, []).append(time.time())
                messages = list(reversed(twilio.by_number.get(to, [])))
            self._reply(200, {"messages": messages, "next_page_uri": None, "page": 0, "page_size": 100})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                raw = self.rfile.read(length)
            except OSError:
                raw = b""
            if len(raw) < length or not length:  # the client died mid-request: nothing is created
                self.close_connection = True
                return
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            to = form.get("To", "")
            with twilio.lock:
                twilio.posts[to] += 1
                attempt = twilio.posts[to]
                twilio.post_times.setdefault(to, []).append(time.time())
            fault = twilio.fault(to, attempt) if twilio.fault else None
            if fault:
                with twilio.lock:
                    twilio.faults[fault] += 1
            if twilio.latency:
                time.sleep(twilio.latency)
            if fault in ("429_seconds", "429_date"):
                now = time.time()
                if fault == "429_seconds":
                    header, until = f"{twilio.retry_after:g}", now + twilio.retry_after
                else:  # an HTTP date has whole seconds: ask for the next whole second after retry_after
                    until = math.ceil(now + twilio.retry_after)
                    header = format_datetime(datetime.fromtimestamp(until, timezone.utc), usegmt=True)
                with twilio.lock:
                    twilio.throttled.append((to, now, until))
                self._reply(
                    429,
                    {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429},
                    {"Retry-After": header},
                )
                return
            if fault == "401":  # bad credentials: the same for every message
                self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            if fault == "21211":
                self._reply(400, {"code": 21211, "message": f"The 'To' number {to} is not valid.", "status": 400})
                return
            if fault == "21610":
                self._reply(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400})
                return
            if fault == "500":
                self._reply(500, {"code": 20500, "message": "Internal Server Error", "status": 500})
                return
            if fault == "drop":
                if random.random() < 0.5:  # it may have been created before the connection died
                    twilio.accept(to, form.get("Body", ""))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault == "timeout":
                time.sleep(twilio.late_by)
            message = twilio.accept(to, form.get("Body", ""))
            self._reply(201, message)

    return Handler


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any one-second window [t, t + 1) that starts at an arrival."""
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def twilio_config(url: str, **settings) -> str:
    """A config.toml with a ``fake`` twilio profile pointing at ``url``."""
    lines = [
        "[providers.fake]",
        'type = "twilio"',
        f'account_sid = "{ACCOUNT_SID}"',
        'sender = "+15005550006"',
        f'base_url = "{url}"',
    ]
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
