"""Many senders, one campaign: messages/s for 1, 2 and 4 senders on PostgreSQL against 1 sender on SQLite.

    BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/fleet_bench.py [--messages 4000] [--latency 0.05] [--concurrency 16]

Each case: a fresh ledger (a SQLite file, or a new schema on the server, dropped afterwards), a campaign of
``--messages`` recipients queued by a first ``send --limit 1`` (so the measurement is sending, not
validation), then N ``bulksend send campaign.toml --yes`` processes from N homes started together. The rate
is the messages the fake accepted over the window from its first to its last acceptance. The fake provider
(bench/fake_twilio.py) answers after ``--latency`` seconds and the profile rate is high enough not to bind.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from send_bench import ACCOUNT_SID, accepted, start_fake  # noqa: E402

BULKSEND = [sys.executable, "-m", "bulksend"]


def schema_url(base: str, schema: str) -> str:
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def one_case(directory: Path, fake_url: str, messages: int, concurrency: int, senders: int,
             ledger_url: str | None) -> float:
    config = (
        "[providers.bench]\n"
        'type = "twilio"\n'
        f'account_sid = "{ACCOUNT_SID}"\n'
        'sender = "+15005550006"\n'
        f'base_url = "{fake_url}"\n'
        "rate = 100000\n"
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
    envs = []
    for n in range(senders):
        home = directory / f"home{n}"
        home.mkdir()
        (home / "config.toml").write_text(config)
        env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": "fake"}
        if ledger_url:
            env["BULKSEND_LEDGER_URL"] = ledger_url
        envs.append(env)
    run = dict(capture_output=True, text=True, check=True)
    subprocess.run([*BULKSEND, "credits", "topup", str(max(messages * 2, 1000)), "--channel", "sms"], env=envs[0], **run)
    subprocess.run([*BULKSEND, "send", str(campaign), "--yes", "--quiet", "--json", "--limit", "1"],
                   env=envs[0], **run)
    before = accepted(fake_url)
    procs = [subprocess.Popen([*BULKSEND, "send", str(campaign), "--yes", "--quiet", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for env in envs]
    # The sending window: from the first message the fake accepted to the last (process start-up, the same
    # for every case, is left out), sampled every 20 ms.
    first = last = None
    while any(proc.poll() is None for proc in procs):
        count, now = accepted(fake_url) - before, time.perf_counter()
        if count and first is None:
            first = (count, now)
        if count and (last is None or count > last[0]):
            last = (count, now)
        time.sleep(0.02)
    shares = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"a sender failed ({proc.returncode}): {err}")
        run = json.loads(out).get("run") or {}
        shares.append(f"{run.get('sent', '?')} in {run.get('elapsed_seconds', run.get('elapsed', '?'))}s")
    print(f"    senders: {'; '.join(shares)}")
    sent = accepted(fake_url) - before
    if sent != messages - 1:
        sys.exit(f"the fake accepted {sent}, expected {messages - 1}")
    if first is None or last is None or last[1] <= first[1]:
        sys.exit("the run was too short to measure: use more --messages")
    return (last[0] - first[0]) / (last[1] - first[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    base = os.environ.get("BULKSEND_BENCH_POSTGRES") or os.environ.get("BULKSEND_TEST_POSTGRES")
    if not base:
        sys.exit("set BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test")
    import psycopg

    fake, url = start_fake(args.latency)
    print(f"{args.messages:,} messages, {args.latency * 1000:.0f} ms provider latency, "
          f"{args.concurrency} requests in flight per sender ({os.cpu_count()} CPUs)")
    results: dict[str, float] = {}
    try:
        for name, senders, server in (("sqlite, 1 sender", 1, False), ("postgresql, 1 sender", 1, True),
                                      ("postgresql, 2 senders", 2, True), ("postgresql, 4 senders", 4, True)):
            schema = f"bulksend_bench_{secrets.token_hex(4)}" if server else None
            if schema:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    rate = one_case(Path(tmp), url, args.messages, args.concurrency, senders,
                                    schema_url(base, schema) if schema else None)
            finally:
                if schema:
                    with psycopg.connect(base, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            results[name] = rate
            print(f"{name:24} {rate:8,.0f} messages/s")
    finally:
        fake.terminate()
        fake.wait()
    one = results["postgresql, 1 sender"]
    print(f"scaling on PostgreSQL: 2 senders {results['postgresql, 2 senders'] / one:.2f}x, "
          f"4 senders {results['postgresql, 4 senders'] / one:.2f}x one sender")


if __name__ == "__main__":
    main()
