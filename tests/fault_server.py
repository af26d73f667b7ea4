"""A provider that misbehaves at the socket level: drips, floods, garbles (for the limits tests).

A plain TCP server, not an HTTP framework, so that it can do what a framework would not: send headers or a
body one byte at a time, announce 60 MB and push them, answer with raw bytes that are not text. Each
connection reads one request and answers it as ``mode`` says (``mode`` may be changed between requests).
"""

from __future__ import annotations

import socket
import threading
import time

VONAGE_OK = b'{"message-count": "1", "messages": [{"status": "0", "message-id": "m-%d"}]}'


class FaultServer:
    """``with FaultServer("drip") as server:`` → ``server.url``; ``server.requests``, ``server.bytes_sent``."""

    def __init__(self, mode: str, *, huge: int = 60 * 1024 * 1024, drip_every: float = 0.2,
                 retry_after: bytes = b"99999999999999999999999999", garbage: bytes = b"") -> None:
        self.mode = mode
        self.huge = huge
        self.drip_every = drip_every
        self.retry_after = retry_after
        self.garbage = garbage
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0  # body bytes the kernel took from the server across all answers
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "FaultServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(30)
                while self._read_request(conn):
                    with self.lock:
                        self.requests += 1
                        n = self.requests
                    if not self._reply(conn, n):
                        return
        except OSError:
            pass  # the client cut the connection: that is the point of most of these answers

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _send_body(self, conn: socket.socket, body: bytes) -> None:
        conn.sendall(body)
        with self.lock:
            self.bytes_sent += len(body)

    def _reply(self, conn: socket.socket, n: int) -> bool:
        mode = self.mode
        if mode == "ok":
            body = VONAGE_OK % n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            self._send_body(conn, body)
            return True
        if mode == "unauthorized":  # bad credentials: fatal for the whole run
            body = b'{"error-code": "401", "error-code-label": "Unauthorized"}'
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n" % len(body))
            self._send_body(conn, body)
            return True
        if mode == "drip":  # a complete-looking start, then the body one byte at a time
            body = VONAGE_OK % n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                time.sleep(self.drip_every)
                self._send_body(conn, bytes([byte]))
            return False
        if mode == "drip_headers":  # even the status line comes one byte at a time
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10000:
                time.sleep(self.drip_every)
                conn.sendall(bytes([byte]))
            return False
        if mode in ("huge_200", "huge_500"):
            status = b"200 OK" if mode == "huge_200" else b"500 Internal Server Error"
            conn.sendall(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, self.huge))
            block = b"[" * 65536
            left = self.huge
            while left > 0:
                piece = block[: min(left, len(block))]
                self._send_body(conn, piece)
                left -= len(piece)
            return False
        if mode == "retry_after":
            body = b'{"message-count": "1", "messages": [{"status": "1", "error-text": "Throttled"}]}'
            conn.sendall(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\nContent-Length: %d\r\n\r\n"
                % (self.retry_after, len(body))
            )
            self._send_body(conn, body)
            return True
        if mode == "garbage":
            body = self.garbage
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body))
            self._send_body(conn, body)
            return True
        raise AssertionError(f"unknown mode {mode!r}")
