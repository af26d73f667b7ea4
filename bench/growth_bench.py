"""How cost grows with the list: time and peak RSS of validate, estimate and a dry-run send per list size.

Uses bench/estimate_bench.py's list (validate_bench's generator, a unique code per row), home (quiet hours
21:00-08:00 and a 1/24h frequency cap in config.toml, recent sends to the list's first rows) and commands,
each job as a whole process. Prints a Markdown table for docs/benchmarks.md: wall time, CPU time (user +
system, steadier than wall time on a shared machine), microseconds of CPU per row, and peak RSS of the
process tree.

    python bench/growth_bench.py                                   # 10k, 100k, 1M
    python bench/growth_bench.py --sizes 10000 100000 1000000 10000000 --dir /var/tmp/growth
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from estimate_bench import TEMPLATE, commands, generate_unique_codes, prepare_home, run  # noqa: E402

JOBS = ("validate", "estimate", "dry-run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--only", choices=JOBS, action="append")
    parser.add_argument("--warm", type=int, default=2_000, help="rows sent before the timed runs (for the cap)")
    parser.add_argument("--dir", type=Path, help="keep the generated lists here (reused when present)")
    args = parser.parse_args()
    jobs = args.only or list(JOBS)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        template = Path(tmp) / "message.txt"
        template.write_text(TEMPLATE)
        rows_out = []
        for size in args.sizes:
            csv_path = work / f"recipients-{size}.csv"
            if not csv_path.exists():
                t = time.perf_counter()
                generate_unique_codes(csv_path, size)
                print(f"generated {size:,} rows ({csv_path.stat().st_size / 2**20:,.0f} MiB) "
                      f"in {time.perf_counter() - t:.1f}s", flush=True)
            home = Path(tmp) / f"home-{size}"
            env = {**os.environ, "BULKSEND_HOME": str(home)}
            if "dry-run" in jobs:
                prepare_home(home, csv_path, template, min(args.warm, size // 5), env)
            cmds = commands(csv_path, template)
            for job in jobs:
                load = open("/proc/loadavg").read().split()[0]
                seconds, rss, cpu = run(cmds[job], env)
                rows_out.append((size, job, seconds, cpu, rss, load))
                print(f"{size:>11,} {job:9s} {seconds:8.2f} s  CPU {cpu:8.2f} s  {cpu / size * 1e6:6.2f} µs/row  "
                      f"peak RSS {rss:6,} MiB  (load {load})", flush=True)

    print()
    print("| rows | job | wall | CPU | CPU µs/row | peak RSS (tree) | load avg |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size, job, seconds, cpu, rss, load in rows_out:
        print(f"| {size:,} | {job} | {seconds:,.1f} s | {cpu:,.1f} s | {cpu / size * 1e6:.2f} | {rss:,} MiB | {load} |")


if __name__ == "__main__":
    main()
