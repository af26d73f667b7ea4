"""Benchmark: what typer's shell completion (`add_completion=True`) costs `bulksend balance --json`.

Runs the command as whole processes, alternately with completion off and on (so that load on a shared
machine hits both alike), and prints the median wall time and the median CPU time (user + system) of each,
and the difference of the medians. The budget is 10 ms: above it, completion would be left off.

    python bench/completion_bench.py              # 80 runs of each
    python bench/completion_bench.py --runs 200
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# The app object is the same either way; only the flag typer reads when it builds the command differs.
CODE = (
    "import sys; import bulksend.cli as c; c.app._add_completion = sys.argv[1] == 'on'; "
    "sys.argv = ['bulksend', 'balance', '--json']; c.main()"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=80)
    args = parser.parse_args()
    env = {**os.environ, "BULKSEND_HOME": tempfile.mkdtemp(prefix="bulksend-bench-")}
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(args.runs):
        for mode in ("off", "on") if i % 2 else ("on", "off"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", CODE, mode], env=env, stdout=subprocess.DEVNULL, check=True)
            wall[mode].append((time.perf_counter() - started) * 1000)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[mode].append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    for name, series in (("wall", wall), ("cpu", cpu)):
        off, on = statistics.median(series["off"]), statistics.median(series["on"])
        print(f"{name}: median off {off:.1f} ms, on {on:.1f} ms, difference {on - off:+.1f} ms (n={args.runs} each)")


if __name__ == "__main__":
    main()
