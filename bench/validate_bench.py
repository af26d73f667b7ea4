"""Benchmark: `bulksend validate` and `bulksend estimate` against the naive pandas + phonenumbers baseline.

Generates a realistic recipient CSV (mixed countries and formats, ~5% invalid, ~10% without consent,
some duplicates), then in one run times, as whole processes: the baseline a user would write (pandas
read_csv, then per row phonenumbers.parse + is_valid_number + format_number), `bulksend validate` and
`bulksend estimate`. Prints rows per second, the ratio to the baseline, and each process's peak RSS.

    python bench/validate_bench.py                # 1,000,000 rows
    python bench/validate_bench.py --rows 10000000 --only validate
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = r'''
import sys, pandas as pd, phonenumbers as pn
df = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
valid = 0
for raw, country in zip(df["phone"], df["country"]):
    try:
        p = pn.parse(raw, country or "GB")
    except pn.NumberParseException:
        continue
    if pn.is_valid_number(p):
        pn.format_number(p, pn.PhoneNumberFormat.E164)
        valid += 1
print(valid)
'''

NAMES = ["Olivia", "Jack", "Amelia", "Noah", "Zoë", "Siobhán", "José", "Łukasz", "Mia", "Leon", "Chloé", "Aarav"]


def _numbers(rng: random.Random):
    """Yield (phone, country) pairs in the shapes real exports have."""
    while True:
        r = rng.random()
        if r < 0.05:  # invalid: too short, garbage, bad prefix
            yield rng.choice([f"07400 {rng.randint(0, 99999):05d}", "n/a", f"+999{rng.randint(0, 10**8)}", "12345"]), "GB"
        elif r < 0.25:
            yield f"+4474{rng.randint(0, 10**8 - 1):08d}", ""
        elif r < 0.40:
            yield f"074{rng.randint(0, 99):02d} {rng.randint(0, 999999):06d}", "GB"
        elif r < 0.55:
            yield f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}", "US"
        elif r < 0.65:
            yield f"+1 {rng.randint(201, 989)} {rng.randint(200, 999)} {rng.randint(0, 9999):04d}", ""
        elif r < 0.73:
            yield f"+49 15{rng.randint(1, 9)} {rng.randint(0, 10**8 - 1):08d}", ""
        elif r < 0.80:
            yield f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}", "FR"
        elif r < 0.86:
            yield f"+34 6{rng.randint(0, 10**8 - 1):08d}", ""
        elif r < 0.91:
            yield f"0{rng.randint(20, 40)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}", "GB"  # landline
        elif r < 0.96:
            yield f"+91 9{rng.randint(0, 10**9 - 1):09d}", ""
        else:
            yield f"0412 {rng.randint(0, 999):03d} {rng.randint(0, 999):03d}", "AU"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    numbers = _numbers(rng)
    recent: list[tuple[str, str]] = []
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("first_name,phone,country,consent,code\n")
        for i in range(rows):
            if recent and rng.random() < 0.02:  # duplicates, often in another format
                phone, country = rng.choice(recent)
            else:
                phone, country = next(numbers)
                if len(recent) < 5000:
                    recent.append((phone, country))
                else:
                    recent[rng.randrange(5000)] = (phone, country)
            c = rng.random()
            consent = "yes" if c < 0.85 else ("" if c < 0.92 else ("no" if c < 0.95 else "2025-06-01"))
            name = rng.choice(NAMES) if rng.random() < 0.97 else ""
            out.write(f"{name},{phone},{country},{consent},SAVE{i % 97}\n")


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (bulksend's workers included), from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS of its whole process tree in MiB, stdout).

    The peak is the largest *sum* over the process and its workers, sampled every 20 ms (wait4's
    ru_maxrss would give only the largest single process), and never less than wait4's figure.
    """
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
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
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return elapsed, max(peak, usage.ru_maxrss) // 1024, ""


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["baseline", "validate", "estimate"], action="append")
    parser.add_argument("--keep", type=Path, help="write the generated CSV here and keep it (reused when it exists)")
    parser.add_argument(
        "--workers", choices=["auto", "on", "off"], default="auto",
        help="pass one in worker processes: as bulksend decides (auto), or forced on or off",
    )
    args = parser.parse_args()
    jobs = args.only or ["baseline", "validate", "estimate"]

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = args.keep or Path(tmp) / "recipients.csv"
        if not csv_path.exists():
            t = time.perf_counter()
            generate(csv_path, args.rows)
            print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")
        template = Path(tmp) / "message.txt"
        template.write_text("Hi {first_name|there}, use {code} for 15% off this weekend. Reply STOP to opt out.")
        env = {**os.environ, "BULKSEND_HOME": str(Path(tmp) / "home")}
        py = sys.executable
        bulksend = [py, "-m", "bulksend"]
        if args.workers != "auto":
            forced = "True" if args.workers == "on" else "False"
            bulksend = [py, "-c", "import bulksend.recipients as r; r._worth_parallel = lambda path: "
                        f"{forced}; from bulksend.cli import main; main()"]
        commands = {
            "baseline": [py, "-c", BASELINE, str(csv_path)],
            "validate": [*bulksend, "validate", str(csv_path), "--region", "GB", "--json"],
            "estimate": [*bulksend, "estimate", str(csv_path), "--region", "GB", "--json",
                         "--template", str(template)],
        }
        print(f"load average before: {_loadavg()}  (workers: {args.workers})")
        results = {}
        for job in jobs:
            seconds, rss, _ = run(commands[job], env)
            results[job] = (seconds, rss)
            print(f"{job:9s} {seconds:7.2f} s  {args.rows / seconds:10,.0f} rows/s  peak RSS {rss:6,} MiB")
        print(f"load average after:  {_loadavg()}")
        if "baseline" in results:
            base = results["baseline"][0]
            for job in ("validate", "estimate"):
                if job in results:
                    print(f"{job} is {base / results[job][0]:.2f}x the baseline's throughput")


if __name__ == "__main__":
    main()
