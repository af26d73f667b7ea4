"""Receipts per second that `bulksend webhooks serve` records, against the same server answering a no-op endpoint.

    .venv/bin/python bench/webhooks_bench.py [--receipts 6000] [--clients 32] [--processes 2] [--postgres URL]
                                             [--engine 20000 | --engine 0] [--only postgresql]
                                             [--workers 1 2 ...]

Each backend in turn: SQLite, then PostgreSQL when ``--postgres`` (or ``BULKSEND_TEST_POSTGRES``) names a server
(a fresh schema, dropped afterwards). A temporary home gets a ledger with one campaign of ``--receipts`` transmissions, all ``sent``.
``bulksend webhooks serve`` runs as its own process (uvicorn, the real command), once per ``--workers`` value
(above 1: ``--workers N`` worker processes on one port, PostgreSQL only). Load comes from
``--processes`` processes of ``--clients`` keep-alive connections in all:
(a) the no-op ceiling: ``GET /healthz`` as many times, on the same server;
(b) one ``delivered`` receipt per transmission, POSTed to the outbox profile's URL (the path token
    verifies it), each answered only once committed (group commit).
Prints both rates, the server's CPU time per request in each (all its processes, from /proc: steadier than
rates on a loaded machine), how busy the machine's CPUs were during (b) (near 100%, no server design can go
faster), and (b)'s receipts per message at the engine's send rate, measured first in the same run:
``bench/send_bench.py``'s (b), ``bulksend send`` of ``--engine`` messages through a fake Twilio as a whole process
(``--engine 0``: the documented 937 messages/s instead).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ENGINE_RATE = 937  # messages/s, `bulksend send` as a whole process (docs/benchmarks.md, "Sending"), 2026-11-25


def engine_rate(messages: int) -> float:
    """Messages per second of ``bulksend send`` as a whole process: send_bench.py's (b), with its defaults."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import send_bench

    fake, url = send_bench.start_fake(0.05)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            campaign, env = send_bench.prepare_campaign(Path(tmp), url, messages, 64)
            env.pop("BULKSEND_LEDGER_URL", None)
            elapsed, _cpu, summary = send_bench.bulksend_send(campaign, env, None)
            assert summary["counts"].get("sent") == messages, summary["counts"]
            return messages / elapsed
    finally:
        fake.terminate()
        fake.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its running children (``--workers``; Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (Linux /proc/stat): is the machine itself the limit?"""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def prepare(home: Path, n: int) -> list[int]:
    from bulksend.config import Config
    from bulksend.ledger import NewTransmission
    from bulksend.ledger_guard import open_for_write

    config = Config.load(home)
    with open_for_write(config) as ledger:
        ledger.topup("sms", max(1000, n))
        campaign = ledger.open_campaign("bench", "sms", "outbox", "bench")
        ledger.add_transmissions(
            campaign.id, (NewTransmission(f"+4474{i:08d}", "hi", 1, 1) for i in range(n))
        )
        ledger.hold(campaign.id, "sms", n)
        ids = []
        while True:
            with ledger.transaction():
                rows = ledger.claim(campaign.id, 1000)
                for row in rows:
                    ledger.mark_sent(row.id, f"outbox-{row.id}")
            if not rows:
                break
            ids.extend(r.id for r in rows)
    return ids


def _client(port: int, jobs: list[tuple[str, str, bytes | None]], out: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ok = 0
    for method, path, body in jobs:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        ok += response.status == 200
    conn.close()
    out.append(ok)


def _process(port: int, jobs: list, threads: int, queue) -> None:
    results: list[int] = []
    workers = [threading.Thread(target=_client, args=(port, jobs[i::threads], results)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(sum(results))


def blast(port: int, jobs: list, clients: int, processes: int) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per = max(1, clients // processes)
    procs = [ctx.Process(target=_process, args=(port, jobs[i::processes], per, queue)) for i in range(processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    ok = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return time.perf_counter() - start, ok


def run(args, ledger_url: str | None, workers: int = 1) -> dict[str, float]:
    """One backend: the no-op and the receipt rates and the server's CPU per request in each, on a fresh home
    (and a fresh PostgreSQL schema)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text('[webhooks]\npublic_url = "https://hooks.example.test"\n')
        env = {**os.environ, "BULKSEND_HOME": str(home), "NO_COLOR": "1"}
        env.pop("BULKSEND_LEDGER_URL", None)
        if ledger_url:
            env["BULKSEND_LEDGER_URL"] = ledger_url
        os.environ.clear()
        os.environ.update(env)
        ids = prepare(home, args.receipts)
        cmd = [sys.executable, "-m", "bulksend"]
        url = json.loads(subprocess.run([*cmd, "webhooks", "urls", "--json"], env=env, capture_output=True,
                                        text=True, check=True).stdout)["outbox"]["url"]
        path = url.removeprefix("https://hooks.example.test")
        server = subprocess.Popen([*cmd, "webhooks", "serve", "--port", "0", "--workers", str(workers)], env=env,
                                  stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        try:
            port = int(re.search(r":(\d+) for", server.stderr.readline()).group(1))
            reader = threading.Thread(target=lambda: lines.extend(server.stderr), daemon=True)
            reader.start()  # a full pipe would block the server's logging
            noop = [("GET", "/healthz", None)] * len(ids)
            receipts = [
                ("POST", path, json.dumps({"reference": str(i), "id": f"outbox-{i}", "status": "delivered"}).encode())
                for i in ids
            ]
            cpu0 = cpu_seconds(server.pid)
            noop_time, noop_ok = blast(port, noop, args.clients, args.processes)
            cpu1 = cpu_seconds(server.pid)
            busy1, total1 = machine_cpu()
            hook_time, hook_ok = blast(port, receipts, args.clients, args.processes)
            busy2, total2 = machine_cpu()
            cpu2 = cpu_seconds(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        time.sleep(0.2)
        print("".join(lines).strip().splitlines()[-1])
        from bulksend.config import Config
        from bulksend.ledger_guard import open_for_read

        with open_for_read(Config.load(home)) as ledger:
            counts = ledger.counts(ledger.get_campaign("bench").id)
        assert noop_ok == len(ids) and hook_ok == len(ids) and counts == {"delivered": len(ids)}, (noop_ok, hook_ok,
                                                                                                 counts)
        n = len(ids)
        return {"noop": n / noop_time, "hook": n / hook_time, "noop_cpu": (cpu1 - cpu0) / n * 1e6,
                "hook_cpu": (cpu2 - cpu1) / n * 1e6,
                "busy": (busy2 - busy1) / max(1, total2 - total1), "cores": os.cpu_count() or 1}


def postgres_schema(base: str):
    """A fresh schema on ``base``'s server, dropped afterwards (send_bench's, one copy for both benches)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from send_bench import postgres_schema as made

    return made(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("BULKSEND_TEST_POSTGRES"),
                        help="also measure a PostgreSQL ledger (default: $BULKSEND_TEST_POSTGRES)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1], metavar="N",
                        help="serve with each of these --workers values in turn (above 1: PostgreSQL only)")
    parser.add_argument("--engine", type=int, default=20_000, metavar="MESSAGES",
                        help="measure the engine's send rate first with this many messages (0: use 937/s)")
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().split(' ', 3)[:3]}")
    if args.engine:
        engine = engine_rate(args.engine)
        print(f"engine: bulksend send of {args.engine} messages, whole process: {engine:8.0f} messages/s")
    else:
        engine = ENGINE_RATE
    backends = [b for b in ("sqlite", "postgresql") if args.only in (None, b)]
    for backend in backends:
        if backend == "postgresql" and not args.postgres:
            print("postgresql: skipped (give --postgres URL or set BULKSEND_TEST_POSTGRES)")
            continue
        for workers in args.workers:
            if workers > 1 and backend == "sqlite":
                continue  # refused: see docs/webhooks.md
            report(args, backend, workers, engine)
    print(f"load average: {Path('/proc/loadavg').read_text().split(' ', 3)[:3]}")


def report(args, backend: str, workers: int, engine: float) -> None:
    print(f"== {backend}, --workers {workers}")
    if backend == "sqlite":
        got = run(args, None, workers)
    else:
        with postgres_schema(args.postgres) as url:
            got = run(args, url, workers)
    print(f"(a) no-op GET /healthz:        {got['noop']:8.0f} requests/s  (server CPU {got['noop_cpu']:4.0f} us each)")
    print(f"(b) receipts recorded:         {got['hook']:8.0f} receipts/s  (server CPU {got['hook_cpu']:4.0f} us each)"
          f" ({got['hook'] / got['noop']:.2f} of (a)); the machine's {got['cores']} CPUs"
          f" {got['busy']:.0%} busy meanwhile (this bench's clients and PostgreSQL included)")
    print(f"    at the engine's {engine:.0f} messages/s: {got['hook'] / engine:.2f} receipts per message"
          f" (target >= 3)")


if __name__ == "__main__":
    main()
