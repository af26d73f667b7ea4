"""A fast fake Twilio Messages endpoint for benchmarks: asyncio, keep-alive, answers after a fixed latency.

    python bench/fake_twilio.py --latency 0.05 [--port 0]

Prints ``port N`` on stdout once it listens. ``POST …/Messages.json`` answers 201 with a message sid after
``--latency`` seconds (concurrent requests wait concurrently, as at a real API); ``GET …/Messages.json``
(a reconciliation lookup) answers an empty list; ``GET /stats`` returns how many messages were accepted.
It is deliberately a small hand-written HTTP/1.1 server on asyncio.Protocol: the point is that the fake is
never the bottleneck of the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

ACCEPTED = 0


class TwilioProtocol(asyncio.Protocol):
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.worker = asyncio.get_running_loop().create_task(self.answer())

    def connection_lost(self, exc) -> None:
        if self.worker:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            method, path, _ = head.split(" ", 2)
            self.queue.put_nowait((method, path, body, asyncio.get_running_loop().time()))

    async def answer(self) -> None:
        """Answer this connection's requests in order (HTTP/1.1 pipelining rules), each after the latency."""
        global ACCEPTED
        loop = asyncio.get_running_loop()
        while True:
            method, path, body, arrived = await self.queue.get()
            wait = arrived + self.latency - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if method == "POST":
                ACCEPTED += 1
                payload = json.dumps({"sid": f"SM{ACCEPTED:032x}", "status": "queued"}).encode()
                status = "201 Created"
            elif path.startswith("/stats"):
                payload = json.dumps({"accepted": ACCEPTED}).encode()
                status = "200 OK"
            else:
                payload = b'{"messages": [], "next_page_uri": null}'
                status = "200 OK"
            assert self.transport is not None
            self.transport.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )


async def serve(port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: TwilioProtocol(latency), "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer (default 0.05)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.latency))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
