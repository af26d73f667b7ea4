"""Start-up benchmark: short bulksend commands as whole processes, against a bare ``python -c pass``.

Times, start to exit, as separate processes run round-robin (so that load on a shared machine hits them
alike):

  - ``python -c pass``: the interpreter alone (with this venv's site), the floor;
  - ``bulksend --version``;
  - ``bulksend --help``;
  - ``bulksend balance --json`` on a ledger with real contents (two channels topped up, a campaign of
    --rows messages sent through the outbox, an opt-out, a config.toml);
  - ``bulksend validate`` of a 50-row file (the human report, as a person runs it).

Prints, for each, the median, min and max wall time and the median CPU time (user + system of the
process and its threads), then the load average. Targets (issue 13): balance --json median <= 120 ms,
--help <= 200 ms, validate of 50 rows <= 400 ms.

    .venv/bin/python bench/startup_bench.py              # 21 runs of each
    .venv/bin/python bench/startup_bench.py --runs 41
    .venv/bin/python bench/startup_bench.py --baseline /path/to/other/checkout   # the same, side by side

``--baseline DIR`` also times every command with another checkout's ``bulksend`` package first on
``PYTHONPATH`` (same interpreter and dependencies), interleaved with this one: a before/after in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bulksend(home: Path, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "bulksend", "--home", str(home), *args], env=env,
                          capture_output=True, text=True, cwd=home)
    if done.returncode != 0:
        raise SystemExit(f"setup failed: bulksend {' '.join(args)}\n{done.stdout}{done.stderr}")


def prepare(work: Path, rows: int, env: dict[str, str]) -> tuple[Path, Path]:
    """A home with a ledger that has seen real work, and a 50-row recipient file."""
    home = work / "home"
    home.mkdir()
    (home / "config.toml").write_text('[defaults]\nregion = "GB"\n\n[credits]\ntimezone = "Europe/London"\n')
    bulksend(home, "credits", "topup", str(max(1000, rows)), "--channel", "sms", env=env)
    bulksend(home, "credits", "topup", "5000", "--channel", "whatsapp", "--ref", "INV-1", env=env)
    campaign = work / "spring.csv"
    campaign.write_text("phone,first_name\n" + "".join(f"+447400{i:06d},Ann{i}\n" for i in range(1, rows + 1)))
    bulksend(home, "send", str(campaign), "-m", "Hi {first_name}", "--assume-consent", "signup form", "--yes",
             env=env)
    bulksend(home, "optout", "add", "+447400999999", env=env)
    small = work / "list50.csv"
    small.write_text("phone,consent,first_name\n"
                     + "".join(f"+447400{i:06d},yes,Bo{i}\n" for i in range(100, 150)))
    return home, small


def measure(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int, cwd: Path) -> dict[str, tuple[list, list]]:
    results: dict[str, tuple[list, list]] = {name: ([], []) for name in commands}
    names = list(commands)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:  # rotate the order every round
            argv, env = commands[name]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
            wall = (time.perf_counter() - started) * 1000
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise SystemExit(f"{name} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
            results[name][0].append(wall)
            results[name][1].append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--rows", type=int, default=2000, help="messages sent in the ledger's campaign")
    parser.add_argument("--baseline", type=Path, help="another checkout to time side by side")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bulksend-startup-"))
    try:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BULKSEND_") and k not in ("PYTHONDONTWRITEBYTECODE", "OPENBLAS_NUM_THREADS")}
        # Compiled modules as an installed package has them, kept outside both checkouts (the first,
        # uncounted round writes them): with PYTHONDONTWRITEBYTECODE, every run would compile what changed.
        env.update(PYTHONPATH=str(ROOT), COLUMNS="100", PYTHONPYCACHEPREFIX=str(work / "pycache"))
        home, small = prepare(work, args.rows, env)
        versions = {"": env}
        if args.baseline is not None:
            versions = {"": env, "baseline ": {**env, "PYTHONPATH": str(args.baseline.resolve())}}
        commands: dict[str, tuple[list[str], dict[str, str]]] = {"python -c pass": ([sys.executable, "-c", "pass"], env)}
        cli = [sys.executable, "-m", "bulksend"]
        for label, venv in versions.items():
            commands[f"{label}--version"] = ([*cli, "--version"], venv)
            commands[f"{label}--help"] = ([*cli, "--help"], venv)
            commands[f"{label}balance --json"] = ([*cli, "--home", str(home), "balance", "--json"], venv)
            commands[f"{label}validate (50 rows)"] = (
                [*cli, "--home", str(home), "validate", str(small), "--region", "GB"], venv)
        load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
        # Run outside any checkout: `python -m` looks in the working directory first.
        measure(commands, 1, work)  # warm-up: compiled modules written, files in the page cache
        results = measure(commands, args.runs, work)
        load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(map(len, results))
    print(f"{'command':<{width}}  wall median    min    max   cpu median   (ms, {args.runs} runs each)")
    for name, (wall, cpu) in results.items():
        print(f"{name:<{width}}  {statistics.median(wall):11.1f} {min(wall):6.1f} {max(wall):6.1f} "
              f"{statistics.median(cpu):12.1f}")
    if load_before:
        print(f"load average (1, 5, 15 min): before {' '.join(load_before)}, after {' '.join(load_after)}")


if __name__ == "__main__":
    main()
