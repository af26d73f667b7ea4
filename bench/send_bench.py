"""Send throughput: bulksend against the raw ceiling of plain `requests`, on the same fake Twilio, in one run.

    .venv/bin/python bench/send_bench.py [--messages 20000] [--latency 0.05] [--concurrency 64]
        [--postgres URL] [--only sqlite|postgresql] [--rate 0 100000] [--profile [--sort cumulative]]

For each ledger backend in turn (SQLite, then PostgreSQL when ``--postgres`` or ``BULKSEND_TEST_POSTGRES``
names a server: a fresh schema, dropped afterwards), back to back:
(a) the raw ceiling: plain ``requests`` (one pooled session, N threads) posting the messages, no ledger;
(b) ``python -m bulksend send campaign.toml --yes`` of the same number of recipients through the
``twilio`` provider (base_url pointing at the fake), with the durable ledger and the attempt journal, timed
as a whole process: start-up, validation, queueing, sending, summary. Prints both rates, the CPU each
used per message (user + system: steadier than rates on a shared machine), and the ratio (target ≥ 1.0).
Each pair runs once per ``--rate``: the profile's rate in (b), 0 (none, like the raw client) and then 100,000
(far above what is sent, so it never binds: what is left is the cost of the account-wide limiter of
bulksend/fleet.py, a ledger statement per few tens of milliseconds of sending).
bulksend's bytecode is written first, as installing it does (see ``byte_compile_bulksend``).
``--profile`` runs (b) under cProfile (the main thread) and prints where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

HERE = Path(__file__).resolve().parent
ACCOUNT_SID = "AC" + "0" * 32  # fake: the bench server accepts anything


def byte_compile_bulksend() -> None:
    """Write bulksend's bytecode (``__pycache__``), as installing it does. This machine's environment sets
    PYTHONDONTWRITEBYTECODE=1, so an editable checkout is otherwise compiled from source by every ``bulksend
    send`` the bench times (some 60-80 ms of CPU that no installed bulksend spends)."""
    import compileall

    import bulksend

    compileall.compile_dir(str(Path(bulksend.__file__).parent), quiet=1)


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "fake_twilio.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )
    line = fake.stdout.readline().split()
    return fake, f"http://127.0.0.1:{line[1]}"


def accepted(url: str) -> int:
    return requests.get(f"{url}/stats", timeout=5).json()["accepted"]


def raw_ceiling(url: str, messages: int, concurrency: int) -> tuple[float, float]:
    """Messages per second that plain requests reaches with ``concurrency`` threads and one pooled session,
    and the CPU seconds it used."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    session.auth = (ACCOUNT_SID, "fake")
    endpoint = f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    counter = iter(range(messages))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            response = session.post(
                endpoint, data={"To": f"+4474{i:08d}", "From": "+15005550006", "Body": f"Hi R{i}, our sale"}
            )
            response.raise_for_status()

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    cpu = _cpu(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return messages / (time.perf_counter() - started), _cpu(resource.RUSAGE_SELF) - cpu


def _cpu(who: int) -> float:
    """CPU seconds (user + system) used so far by this process (RUSAGE_SELF) or its finished children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def quiet_hours_elsewhere(zone: str = "Europe/London") -> str:
    """Quiet hours that are on (every row is checked against them) but do not hold this run back: the hour
    from two to three hours from now in the recipients' zone (the bench's numbers are all British). With the
    default 21:00-08:00 the bench would send nothing when run in the evening."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    start = datetime.now(ZoneInfo(zone)) + timedelta(hours=2)
    return f"{start:%H}:00-{(start + timedelta(hours=1)):%H}:00"


def prepare_campaign(
    directory: Path, url: str, messages: int, concurrency: int, ledger_url: str | None = None, rate: int = 100_000
) -> tuple[Path, dict]:
    home = directory / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[compliance]\nquiet_hours = "{quiet_hours_elsewhere()}"\n\n'
        "[providers.bench]\n"
        'type = "twilio"\n'
        f'account_sid = "{ACCOUNT_SID}"\n'
        'sender = "+15005550006"\n'
        f'base_url = "{url}"\n'
        f"rate = {rate}\n"
        f"concurrency = {concurrency}\n"
    )
    with open(directory / "recipients.csv", "w") as out:
        out.write("name,phone,consent\n")
        for i in range(messages):
            out.write(f"R{i},+4474{i:08d},yes\n")
    campaign = directory / "campaign.toml"
    campaign.write_text(
        'name = "bench"\nrecipients = "recipients.csv"\nmessage = "Hi {name}, our sale"\nprovider = "bench"\n'
    )
    env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": "fake"}
    env.pop("BULKSEND_LEDGER_URL", None)
    if ledger_url:
        env["BULKSEND_LEDGER_URL"] = ledger_url
    subprocess.run(
        [sys.executable, "-m", "bulksend", "credits", "topup", str(max(messages, 1000)), "--channel", "sms"],
        env=env, check=True, capture_output=True,
    )
    return campaign, env


def bulksend_send(campaign: Path, env: dict, profile: Path | None) -> tuple[float, dict]:
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "bulksend", "send", str(campaign), "--yes", "--quiet", "--json"]
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bulksend send failed ({done.returncode}): {done.stderr}")
    return elapsed, _cpu(resource.RUSAGE_CHILDREN) - cpu, json.loads(done.stdout)


def postgres_schema(base: str):
    """A fresh schema on the server ``base`` names, reached through the URL's search_path; dropped afterwards."""
    import contextlib
    import secrets
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    import psycopg

    @contextlib.contextmanager
    def made():
        schema = f"bulksend_bench_{secrets.token_hex(6)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        parts = urlsplit(base)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
        try:
            yield urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")

    return made()


def one_backend(args, url: str, directory: Path, ledger_url: str | None, rate: int) -> float:
    """(a) then (b) on one ledger backend, back to back; prints both and returns the ratio."""
    campaign, env = prepare_campaign(directory, url, args.messages, args.concurrency, ledger_url, rate)
    raw, raw_cpu = raw_ceiling(url, args.messages, args.concurrency)
    print(f"(a) raw ceiling, plain requests:        {raw:8,.0f} messages/s  "
          f"(CPU {raw_cpu / args.messages * 1e6:,.0f} µs per message)")
    before = accepted(url)
    profile = directory / "send.prof" if args.profile else None
    elapsed, cpu, summary = bulksend_send(campaign, env, profile)
    sent = summary["counts"].get("sent", 0)
    if sent != args.messages or accepted(url) - before != args.messages:
        sys.exit(f"bulksend sent {sent}, the fake accepted {accepted(url) - before}: expected {args.messages}")
    rate = args.messages / elapsed
    run = summary["run"]
    print(f"(b) bulksend send, whole process:       {rate:8,.0f} messages/s  "
          f"(CPU {cpu / args.messages * 1e6:,.0f} µs per message; {elapsed:.1f} s, of which the send loop "
          f"{run['seconds']:.1f} s at {run['per_second']:,.0f}/s)")
    print(f"ratio (b)/(a): {rate / raw:.2f}   (target ≥ 1.0)")
    if profile is not None:
        import pstats

        print()
        pstats.Stats(str(profile)).sort_stats(args.sort).print_stats(25)
    return rate / raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("BULKSEND_TEST_POSTGRES"),
                        help="also measure a PostgreSQL ledger, in a fresh schema dropped afterwards "
                             "(default: $BULKSEND_TEST_POSTGRES)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--rate", type=int, nargs="+", default=[0, 100_000], metavar="PER_SECOND",
                        help="the profile's rate for (b), each in turn (default: 0 = none, like the raw client; then "
                             "100000, a shared rate that does not bind: its cost is the limiter's)")
    parser.add_argument("--profile", action="store_true", help="profile the bulksend run with cProfile")
    parser.add_argument("--sort", default="tottime", help="the order of --profile's table (a pstats key)")
    args = parser.parse_args()

    byte_compile_bulksend()
    fake, url = start_fake(args.latency)
    print(f"{args.messages:,} messages, {args.latency * 1000:.0f} ms provider latency, "
          f"{args.concurrency} requests in flight ({os.cpu_count()} CPUs); load average "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3]) if Path('/proc/loadavg').exists() else '?'}")
    try:
        for backend in ("sqlite", "postgresql"):
            if args.only not in (None, backend):
                continue
            if backend == "postgresql" and not args.postgres:
                print("postgresql: skipped (give --postgres URL or set BULKSEND_TEST_POSTGRES)")
                continue
            for rate in args.rate:
                print(f"== {backend}, profile rate {rate or 'none'}"
                      f"{' (the shared rate of every run of the profile, far above what is sent)' if rate else ''}")
                with tempfile.TemporaryDirectory() as tmp:
                    if backend == "sqlite":
                        one_backend(args, url, Path(tmp), None, rate)
                    else:
                        with postgres_schema(args.postgres) as ledger_url:
                            one_backend(args, url, Path(tmp), ledger_url, rate)
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
