"""Fake Vonage, WhatsApp Cloud API and Skylark (generic http) servers for the crash tests: threaded, with latency.

Each answers a send the way its real API does and records every message it accepted. A message counts as
accepted only once its request body was read in full: a client killed mid-request creates nothing, as
with a real API. Ground truth for the assertions: ``accepted_counts()``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

SECRET = "fake-api-secret-0000"


def _vonage(body: bytes) -> tuple[str, dict]:
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    to = "+" + form["to"]
    answer = {"message-count": "1", "messages": [{"to": form["to"], "message-id": f"V-{form['to']}", "status": "0",
                                                  "remaining-balance": "10.0", "message-price": "0.03",
                                                  "network": "23410"}]}
    return to, answer


def _whatsapp(body: bytes) -> tuple[str, dict]:
    doc = json.loads(body)
    to = doc["to"] if doc["to"].startswith("+") else "+" + doc["to"]
    digits = to.lstrip("+")
    answer = {"messaging_product": "whatsapp", "contacts": [{"input": doc["to"], "wa_id": digits}],
              "messages": [{"id": f"wamid.{digits}"}]}
    return to, answer


def _skylark(body: bytes) -> tuple[str, dict]:
    message = json.loads(body)["messages"][0]
    answer = {"messages": [{"id": f"sk_{message['to'].lstrip('+')}", "status": "queued", "to": message["to"],
                            "parts": 1}]}
    return message["to"], answer


DIALECTS = {"vonage": _vonage, "whatsapp": _whatsapp, "skylark": _skylark}


class FakeAPI:
    """``with FakeAPI("vonage", latency=0.03) as api:`` — serves on 127.0.0.1, records ``api.accepted``."""

    def __init__(self, dialect: str, latency: float = 0.0) -> None:
        self.dialect = dialect
        self.latency = latency
        self.accepted: list[str] = []
        self.posts = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = self.rfile.read(length)
                except OSError:
                    return
                if len(body) < length:  # the client died mid-request: nothing was created
                    return
                with fake.lock:
                    fake.posts += 1
                if fake.latency:
                    time.sleep(fake.latency)
                to, answer = DIALECTS[fake.dialect](body)
                with fake.lock:
                    fake.accepted.append(to)
                data = json.dumps(answer).encode()
                try:
                    self.wfile.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(data)}\r\n\r\n".encode() + data
                    )
                except OSError:  # the client is gone; the message was created all the same
                    pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:  # a killed client resets its connection
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def accepted_counts(self) -> Counter:
        with self.lock:
            return Counter(self.accepted)

    def __enter__(self) -> "FakeAPI":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def profile(dialect: str, url: str) -> tuple[str, dict[str, str]]:
    """A config.toml profile named ``api`` for the dialect, and the environment that carries its secret."""
    common = "rate = 0\nconcurrency = 8\ntimeout = 5\n"
    if dialect == "vonage":
        return (f'[providers.api]\ntype = "vonage"\napi_key = "k123"\nsender = "ACME"\nbase_url = "{url}"\n{common}',
                {"VONAGE_API_SECRET": SECRET})
    if dialect == "whatsapp":
        return (f'[providers.api]\ntype = "whatsapp"\nphone_number_id = "1234567890"\nbase_url = "{url}"\n{common}',
                {"WHATSAPP_TOKEN": SECRET})
    return (
        f'[providers.api]\ntype = "http"\nbase_url = "{url}"\nurl = "/v2/messages"\ncontent_type = "json"\n'
        'auth = { type = "bearer" }\nsender = "ACME"\nchannels = ["sms", "whatsapp"]\n'
        "body = '''\n{\"messages\": [{\"channel\": \"{channel}\", \"from\": \"{sender}\", \"to\": \"{to}\", "
        "\"text\": \"{text}\", \"client_reference\": \"{id}\"}]}\n'''\n"
        'success_path = "messages.0.status"\nsuccess_values = ["queued"]\nid_path = "messages.0.id"\n' + common,
        {"BULKSEND_API_SECRET": SECRET},
    )
