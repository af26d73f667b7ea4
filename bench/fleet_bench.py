"""Many senders, one campaign: messages/s for 1, 2 and 4 senders on PostgreSQL against 1 sender on SQLite.

    BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/fleet_bench.py [--messages 2000] [--latency 0.05] [--concurrency 4] \\
        [--repeat 3] [--cases sqlite:1,postgresql:1,postgresql:2,postgresql:4] [--spy]

Each case: a fresh ledger (a SQLite file, or a new schema on the server, dropped afterwards), a campaign of
``--messages`` recipients queued by a first ``send --limit 1`` (so the measurement is sending, not
validation), then N ``bulksend send campaign.toml --yes`` processes from N homes started together. The rate
is the messages the fake accepted over the window from its first to its last acceptance. The fake provider
(bench/fake_twilio.py) answers after ``--latency`` seconds and the profile rate is high enough not to bind.

One sender's ceiling is ``--concurrency / --latency`` (4 / 50 ms = 80 messages/s): keep it well under what
the machine can do, or one sender saturates the machine and a second has nothing left to add. The cases run
back to back, ``--repeat`` times, each line with the load average; the fake's CPU share over the window is
printed (it must not be the bottleneck). ``--spy`` samples every sender with ``py-spy dump`` (pip install
py-spy; needs ptrace rights) and prints where its send threads were: waiting for a rate slot, in the
provider request, or elsewhere.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from send_bench import ACCOUNT_SID, accepted, start_fake  # noqa: E402

BULKSEND = [sys.executable, "-m", "bulksend"]
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def schema_url(base: str, schema: str) -> str:
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Spy:
    """Samples the send threads of some processes with ``py-spy dump``: where each one was, counted."""

    PLACES = (("SharedRate._lease", "leasing rate slots (a ledger statement)"),
              ("Event.wait", "sleeping until its rate slot"),
              ("SharedRate.acquire", "waiting for a thread that leases"),
              ("Provider.send", "in the provider request"), ("Engine._attempt", "elsewhere in the attempt"))

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.counts: collections.Counter = collections.Counter()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.3):
            for pid in self.pids:
                dump = subprocess.run([PY_SPY, "dump", "--pid", str(pid)], capture_output=True, text=True).stdout
                for thread in dump.split("\nThread ")[1:]:
                    if '"send-' not in thread.splitlines()[0]:
                        continue
                    frames = "\n".join(thread.splitlines()[1:])
                    self.counts[next((name for key, name in self.PLACES if key in frames), "waiting for a row")] += 1

    def stop(self) -> str:
        self.done.set()
        self.thread.join()
        total = sum(self.counts.values()) or 1
        return ", ".join(f"{n * 100 / total:.0f}% {place}" for place, n in self.counts.most_common())


def one_case(directory: Path, fake: subprocess.Popen, fake_url: str, messages: int, concurrency: int, senders: int,
             ledger_url: str | None, spy: bool, code: Path | None) -> float:
    config = (
        '[compliance]\nquiet_hours = "off"\n\n'  # sending is measured, whatever the hour (21:00-08:00 by default)
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
        if code is not None:  # another version of bulksend (--against): first on the path
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
        if ledger_url:
            env["BULKSEND_LEDGER_URL"] = ledger_url
        envs.append(env)
    run = dict(capture_output=True, text=True, check=True, cwd=directory)  # not this checkout's bulksend via cwd
    subprocess.run([*BULKSEND, "credits", "topup", str(max(messages * 2, 1000)), "--channel", "sms"], env=envs[0], **run)
    subprocess.run([*BULKSEND, "send", str(campaign), "--yes", "--quiet", "--json", "--limit", "1"],
                   env=envs[0], **run)
    before = accepted(fake_url)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen([*BULKSEND, "send", str(campaign), "--yes", "--quiet", "--json"], env=env, cwd=directory,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for env in envs]
    spying = Spy([proc.pid for proc in procs]) if spy else None
    # The sending window: from the first message the fake accepted to the last (process start-up, the same
    # for every case, is left out), sampled every 20 ms.
    first = last = None
    fake_cpu = None
    while any(proc.poll() is None for proc in procs):
        count, now = accepted(fake_url) - before, time.perf_counter()
        if count and first is None:
            first = (count, now)
            fake_cpu = cpu_seconds(fake.pid)
        if count and (last is None or count > last[0]):
            last = (count, now)
        time.sleep(0.02)
    fake_cpu = cpu_seconds(fake.pid) - (fake_cpu or 0.0)
    shares = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"a sender failed ({proc.returncode}): {err}")
        run = json.loads(out).get("run") or {}
        shares.append(f"{run.get('sent', '?')} in {run.get('seconds', '?')}s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    print(f"    senders: {'; '.join(shares)}; their CPU: {used * 1000 / max(1, messages - 1):.1f} ms per message")
    sent = accepted(fake_url) - before
    if sent != messages - 1:
        sys.exit(f"the fake accepted {sent}, expected {messages - 1}")
    if first is None or last is None or last[1] <= first[1]:
        sys.exit("the run was too short to measure: use more --messages")
    window = last[1] - first[1]
    print(f"    the fake used {fake_cpu / window * 100:.0f}% of a CPU over the window")
    if spying:
        print(f"    send threads: {spying.stop()}")
    return (last[0] - first[0]) / window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per sender (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="run the cases this many times, back to back")
    parser.add_argument("--cases", default="sqlite:1,postgresql:1,postgresql:2,postgresql:4",
                        help="backend:senders, comma-separated (postgresql:1 is the base of the scaling)")
    parser.add_argument("--against", metavar="GIT_REF",
                        help="also run every case with bulksend as of this commit (e.g. main), right after ours")
    parser.add_argument("--spy", action="store_true", help="sample the senders with py-spy dump")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a file
    base = os.environ.get("BULKSEND_BENCH_POSTGRES") or os.environ.get("BULKSEND_TEST_POSTGRES")
    if not base:
        sys.exit("set BULKSEND_BENCH_POSTGRES=postgresql://postgres@127.0.0.1:5432/test")
    if args.spy and not Path(PY_SPY).exists():
        sys.exit("--spy needs py-spy on the PATH: pip install py-spy")
    cases = [(backend, int(n)) for backend, n in (case.split(":") for case in args.cases.split(","))]
    import psycopg

    versions: list[tuple[str, Path | None]] = [("this checkout", None)]
    holder = tempfile.TemporaryDirectory()
    if args.against:
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.against, "bulksend"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", holder.name], input=archive, check=True)
        versions.append((args.against, Path(holder.name)))
    fake, url = start_fake(args.latency)
    print(f"{args.messages:,} messages, {args.latency * 1000:.0f} ms provider latency, "
          f"{args.concurrency} requests in flight per sender (ceiling {args.concurrency / args.latency:,.0f}/s "
          f"per sender), {os.cpu_count()} CPUs")
    results: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)
    try:
        for round_ in range(args.repeat):
            print(f"round {round_ + 1} of {args.repeat}")
            one: dict[str, float] = {}
            for backend, senders in cases:
                for version, code in versions:
                    server = backend == "postgresql"
                    schema = f"bulksend_bench_{secrets.token_hex(4)}" if server else None
                    if schema:
                        with psycopg.connect(base, autocommit=True) as conn:
                            conn.execute(f"CREATE SCHEMA {schema}")
                    try:
                        with tempfile.TemporaryDirectory() as tmp:
                            rate = one_case(Path(tmp), fake, url, args.messages, args.concurrency, senders,
                                            schema_url(base, schema) if schema else None,
                                            args.spy and senders > 1, code)
                    finally:
                        if schema:
                            with psycopg.connect(base, autocommit=True) as conn:
                                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    results[(version, backend, senders)].append(rate)
                    if (backend, senders) == ("postgresql", 1):
                        one[version] = rate
                    scaling = f" ({rate / one[version]:.2f}x one sender)" if server and version in one and senders > 1 else ""
                    label = f" [{version}]" if args.against else ""
                    print(f"  {backend}, {senders} sender{'s' if senders > 1 else ''}{label}: {rate:8,.0f} messages/s"
                          f"{scaling}   [load {load()}]")
    finally:
        fake.terminate()
        fake.wait()
        holder.cleanup()
    for version, _ in versions:
        base_runs = results.get((version, "postgresql", 1))
        if not base_runs:
            continue
        for (of, backend, senders), rates in results.items():
            if of == version and backend == "postgresql" and senders > 1:
                ratios = ", ".join(f"{r / b:.2f}x" for r, b in zip(rates, base_runs))
                label = f" [{version}]" if args.against else ""
                print(f"scaling on PostgreSQL{label}, {senders} senders: {ratios} one sender (per round)")


if __name__ == "__main__":
    main()
