"""The HTTP layer alone: what one request costs waitress (as `webhooks serve` ran it before) and uvicorn.

    .venv/bin/python bench/http_servers_bench.py [--requests 6000] [--rounds 2] [--clients 32] [--processes 2]

Why `webhooks serve` moved from waitress to uvicorn (docs/benchmarks.md, "Webhook receipts"). Each server runs
as its own process serving an equivalent trivial app (WSGI for waitress, ASGI for uvicorn), no ledger:
(a) ``GET /healthz`` answered ``ok``; (b) a POST of a Twilio-like status callback (a form of 5 fields), parsed
and checked against its ``X-Twilio-Signature`` (HMAC-SHA1 over URL + sorted fields), answered 200. Load is
``bench/webhooks_bench.py``'s own client (``--processes`` processes, ``--clients`` keep-alive connections in
all). Prints requests/s and the server's CPU time per request (from /proc: steadier than rates on a loaded
machine). Servers: waitress with 32 threads as `webhooks serve` configured it (needs ``pip install waitress``:
no longer a dependency; skipped without it), uvicorn with httptools on asyncio, and on uvloop when installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import webhooks_bench  # noqa: E402 - the client and the /proc readings, shared

KEY = b"bench-auth-token"
URL = "https://hooks.example.test/hooks/twilio"
FORM = [("MessageSid", "SM" + "0" * 32), ("MessageStatus", "delivered"), ("To", "+447400000001"),
        ("AccountSid", "AC" + "1" * 32), ("ErrorCode", "")]


def signature(fields) -> str:
    data = URL + "".join(k + v for k, v in sorted(fields))
    return base64.b64encode(hmac.new(KEY, data.encode(), hashlib.sha1).digest()).decode()


def verified(body: bytes, given: str) -> bool:
    return hmac.compare_digest(signature(parse_qsl(body.decode(), keep_blank_values=True)), given)


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        status, body = "200 OK", b"ok\n"
    else:
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        ok = verified(raw, environ.get("HTTP_X_TWILIO_SIGNATURE", ""))
        status, body = ("200 OK", b"<Response/>") if ok else ("403 Forbidden", b"forbidden\n")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["path"] == "/healthz":
        status, body = 200, b"ok\n"
    else:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        given = dict(scope["headers"]).get(b"x-twilio-signature", b"").decode()
        status, body = (200, b"<Response/>") if verified(b"".join(chunks), given) else (403, b"forbidden\n")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def serve(kind: str, port: int) -> None:
    if kind == "waitress":
        import logging

        from waitress.server import create_server

        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        create_server(wsgi_app, host="127.0.0.1", port=port, threads=32, connection_limit=1000,
                      channel_timeout=30, asyncore_use_poll=True).run()
    else:
        import uvicorn

        uvicorn.run(asgi_app, host="127.0.0.1", port=port, http="httptools", loop=kind.split("-")[1],
                    ws="none", lifespan="off", interface="asgi3", access_log=False, log_level="warning")


def _client(port: int, jobs, out: list[int]) -> None:
    """webhooks_bench's client, sending the form and its signature with each POST."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature(FORM)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ok = 0
    for method, path, body in jobs:
        conn.request(method, path, body=body, headers=headers if body is not None else {})
        response = conn.getresponse()
        response.read()
        ok += response.status == 200
    conn.close()
    out.append(ok)


def measure(kind: str, args) -> dict[str, tuple[float, float]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        got = {}
        for label, job in (("noop", ("GET", "/healthz", None)), ("post", ("POST", "/hooks/twilio",
                                                                           urlencode(FORM).encode()))):
            cpu0 = webhooks_bench.cpu_seconds(server.pid)
            elapsed, ok = webhooks_bench.blast(port, [job] * args.requests, args.clients, args.processes)
            cpu1 = webhooks_bench.cpu_seconds(server.pid)
            assert ok == args.requests, (kind, label, ok)
            got[label] = (args.requests / elapsed, (cpu1 - cpu0) / args.requests * 1e6)
        return got
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    webhooks_bench._client = _client
    kinds = []
    for kind, module in (("waitress", "waitress"), ("uvicorn-asyncio", "uvicorn"), ("uvicorn-uvloop", "uvloop")):
        try:
            __import__(module)
            kinds.append(kind)
        except ImportError:
            print(f"{kind}: skipped ({module} is not installed)")
    print(f"load average: {Path('/proc/loadavg').read_text().split(' ', 3)[:3]}")
    for _ in range(args.rounds):
        for kind in kinds:
            got = measure(kind, args)
            print(f"{kind:16} (a) no-op GET {got['noop'][0]:7.0f}/s {got['noop'][1]:4.0f} us CPU each | "
                  f"(b) signed form POST {got['post'][0]:7.0f}/s {got['post'][1]:4.0f} us CPU each", flush=True)
    print(f"load average: {Path('/proc/loadavg').read_text().split(' ', 3)[:3]}")


if __name__ == "__main__":
    main()
