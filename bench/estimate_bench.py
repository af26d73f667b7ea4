"""Benchmark: `estimate` and `send --dry-run` with quiet hours, a frequency cap and content checks on.

Reuses bench/validate_bench.py's list generator, baseline and RSS sampler, in one run: the baseline a
user would write (pandas + phonenumbers, per row parse + is_valid_number + format_number), then
`bulksend estimate` and `bulksend send --dry-run`, as whole processes, on the same file.

What is measured (docs/benchmarks.md, "Estimate with quiet hours, caps and content checks"): both
`estimate` and `send --dry-run` apply the rules a send follows. The home has `[compliance] quiet_hours =
"21:00-08:00"` and `frequency_cap = "1/24h"`, and its ledger has recent sends to some of the list's numbers
(a real `send` of the list's first rows through the outbox, before the timed runs), so the cap rejects
rows. `estimate` runs validation, rendering, pricing and content checks in pass one, the frequency cap
counted against the ledger's recent sends (read only), and counts the rows quiet hours would hold back
now (every accepted row's zones, a column at a time, and a due time per distinct zone set).
`send --dry-run` does the whole preparation of a send without sending: the same pass one and cap, then
per row the quiet-hours zone lookup and due time, and the dry-run file with every message.

Every row gets a unique discount code (the costly case for content checks: no memo hit).

    python bench/estimate_bench.py                        # 1,000,000 rows
    python bench/estimate_bench.py --rows 100000 --reference /work/main   # also check the verdicts
                                                          # against another checkout, row for row

``--reference DIR`` runs the same commands with another checkout of bulksend (PYTHONPATH=DIR) and
checks that the JSON reports and the dry-run files are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_bench import BASELINE, _tree_rss_kib, generate  # noqa: E402

TEMPLATE = "Hi {first_name|there}, use {code} for 15% off this weekend. Reply STOP to opt out."
CONFIG = """\
[compliance]
quiet_hours = "21:00-08:00"
frequency_cap = "1/24h"
"""
CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generate_unique_codes(path: Path, rows: int, seed: int = 7) -> None:
    """validate_bench's list, with the code column made unique per row (8 random characters)."""
    plain = path.with_suffix(".plain.csv")
    generate(plain, rows, seed)
    rng = random.Random(seed + 1)
    with plain.open(encoding="utf-8") as src, path.open("w", encoding="utf-8", newline="") as out:
        out.write(next(src))
        for line in src:
            head, _ = line.rsplit(",", 1)
            out.write(f"{head},{''.join(rng.choices(CODE_CHARS, k=8))}\n")
    plain.unlink()


def run(cmd: list[str], env: dict[str, str], stdout: Path | None = None) -> tuple[float, int, float]:
    """Run a command; (wall seconds, peak RSS of its process tree in MiB, CPU seconds). Exits on failure.

    The CPU seconds (user + system, the process and its reaped workers) move less than the wall time on a
    shared machine: another engineer's job slows the wall clock, not the work done.
    """
    start = time.perf_counter()
    with open(stdout or os.devnull, "wb") as out:
        # Not from the checkout: ``python -m`` puts the working directory first on sys.path, which would shadow
        # PYTHONPATH (--reference) with this checkout's bulksend.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.02):
                peak = max(peak, _tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed ({code}):\n{err.decode()[-2000:]}")
    return elapsed, max(peak, usage.ru_maxrss) // 1024, usage.ru_utime + usage.ru_stime


def prepare_home(home: Path, csv_path: Path, template: Path, warm_rows: int, env: dict[str, str]) -> None:
    """Config with quiet hours and a cap, credits, and recent sends to the list's first ``warm_rows`` rows."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    py = sys.executable
    subprocess.run([py, "-m", "bulksend", "credits", "topup", "1000000000", "--channel", "sms", "--json"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    if warm_rows:
        warm = csv_path.with_name("warm.csv")
        with csv_path.open(encoding="utf-8") as src, warm.open("w", encoding="utf-8") as out:
            for i, line in enumerate(src):
                if i > warm_rows:
                    break
                out.write(line)
        t = time.perf_counter()
        subprocess.run([py, "-m", "bulksend", "send", str(warm), "--template", str(template), "--region", "GB",
                        "--name", "warm", "--quiet-hours", "off", "--yes", "--quiet", "--json", "--rate", "0",
                        "--concurrency", "64"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"sent {warm_rows:,} rows through the outbox for the frequency cap in {time.perf_counter() - t:.1f}s")


def commands(csv_path: Path, template: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "baseline": [py, "-c", BASELINE, str(csv_path)],
        "validate": [py, "-m", "bulksend", "validate", str(csv_path), "--region", "GB", "--json"],
        "estimate": [py, "-m", "bulksend", "estimate", str(csv_path), "--region", "GB", "--json",
                     "--template", str(template)],
        "dry-run": [py, "-m", "bulksend", "send", str(csv_path), "--region", "GB", "--json", "--dry-run",
                    "--template", str(template), "--name", "bench"],
    }


def _comparable(job: str, out: Path, home: Path) -> object:
    doc = json.loads(out.read_text())
    if job == "dry-run":
        lines = (home / "outbox" / "bench.dry-run.jsonl").read_text(encoding="utf-8")
        doc["file"] = lines  # the path differs between runs, the content must not
    return doc


def _summary(job: str, out: Path) -> str:
    if job == "baseline":
        return f"valid {out.read_text().strip()}"
    doc = json.loads(out.read_text())
    if job == "dry-run":
        return f"messages {doc['messages']:,}, waiting {doc['waiting']:,}"
    quiet = doc.get("quiet_hours") or {}
    waiting = f", waiting {quiet['waiting_now']:,}" if quiet else ""
    return f"accepted {doc.get('valid', doc.get('recipients')):,}, reasons {doc['reasons']}{waiting}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["baseline", "validate", "estimate", "dry-run"], action="append")
    parser.add_argument("--warm", type=int, default=20_000, help="rows sent before the timed runs (for the cap)")
    parser.add_argument("--reference", type=Path, help="another checkout: check its reports are identical")
    parser.add_argument("--keep", type=Path, help="write the generated CSV here and keep it")
    args = parser.parse_args()
    jobs = args.only or ["baseline", "estimate", "dry-run"]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        csv_path = args.keep.resolve() if args.keep else tmp_path / "recipients.csv"
        if not csv_path.exists():
            t = time.perf_counter()
            generate_unique_codes(csv_path, args.rows)
            print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) "
                  f"in {time.perf_counter() - t:.1f}s")
        template = tmp_path / "message.txt"
        template.write_text(TEMPLATE)
        home = tmp_path / "home"
        env = {**os.environ, "BULKSEND_HOME": str(home)}
        if "dry-run" in jobs or "estimate" in jobs:
            prepare_home(home, csv_path, template, args.warm, env)
        print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
        cmds = commands(csv_path, template)
        results = {}
        for job in jobs:
            out = tmp_path / f"{job}.json"
            seconds, rss, cpu = run(cmds[job], env, out)
            results[job] = (seconds, rss, cpu)
            print(f"{job:9s} {seconds:7.2f} s (CPU {cpu:6.2f} s)  {args.rows / seconds:10,.0f} rows/s  "
                  f"peak RSS {rss:6,} MiB  {_summary(job, out)}")
            if args.reference is not None and job != "baseline":
                mine = _comparable(job, out, home)
                ref_env = {**env, "PYTHONPATH": str(args.reference.resolve())}
                ref_out = tmp_path / f"{job}.reference.json"
                ref_seconds, _, ref_cpu = run(cmds[job], ref_env, ref_out)
                same = _comparable(job, ref_out, home) == mine
                print(f"{'':9s} reference {ref_seconds:7.2f} s (CPU {ref_cpu:6.2f} s); "
                      f"reports {'IDENTICAL' if same else 'DIFFER'}")
                if not same:
                    sys.exit(f"{job}: the report differs from {args.reference}'s")
        print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
        if "baseline" in results:
            base, _, base_cpu = results["baseline"]
            for job in ("validate", "estimate", "dry-run"):
                if job in results:
                    print(f"{job} is {base / results[job][0]:.2f}x the baseline's throughput "
                          f"({base_cpu / results[job][2]:.2f}x in CPU time)")


if __name__ == "__main__":
    main()
