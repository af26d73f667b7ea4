"""Where a whole `bulksend send` process spends the time outside its send loop, phase by phase.

    .venv/bin/python bench/send_phases.py [--messages 20000] [--runs 3] [--postgres URL] [--only sqlite|postgresql]
        [--rate 0] [--source] [--profile PHASE [--sort cumulative] [--keep FILE]]

The campaign, fake Twilio and profile are send_bench.py's (20,000 British numbers, quiet hours on, 64 requests
in flight, the durable ledger and the attempt journal). ``bulksend send campaign.toml --yes --quiet --json`` runs
in a child process that wraps a few functions to note the CPU (user + system of the whole process) and the wall
time at each phase's boundaries, then calls ``bulksend.cli.main()`` as ``python -m bulksend`` does:

    start-up     interpreter start to the command's first line (imports of the CLI, Typer, options, config)
    prepare      prepare_send: the lock, the ledger, the provider, validating every row (validate below)
    validate       of which _validate: reading, checking, rendering and pricing the list
    queue        _queue: the accepted rows into the ledger
    before loop  execute's hold, settings, limiter and the engine's start (recovery, the journal)
    loop         the send loop (workers' CPU included)
    after loop   the last commit, release, counts, report and JSON
    exit         the interpreter's shutdown, until the parent sees the process end

The CPU of start-up is the child's CPU at its first line (ru_utime + ru_stime), its wall time the child's
(time since the parent started it). ``--profile PHASE`` (prepare, queue, before, after) runs cProfile over that
phase alone (the main thread) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("start-up", "prepare", "validate", "queue", "before loop", "loop", "after loop", "exit", "outside loop",
          "total")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(out: Path, started: float, profile: str | None, sort: str) -> None:
    """Runs in the child: `bulksend send` with marks at each phase (``started`` is the parent's clock)."""
    marks: dict[str, tuple[float, float]] = {"start": (0.0, started), "main": (_cpu(), time.time())}

    def mark(name: str) -> None:
        marks[name] = (_cpu(), time.time())

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()

    def wrap(owner, attr: str, before: str, after: str, phase: str | None = None) -> None:
        inner = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            mark(before)
            if profiler is not None and phase == profile:
                profiler.enable()
            try:
                return inner(*args, **kwargs)
            finally:
                if profiler is not None and phase == profile:
                    profiler.disable()
                mark(after)

        setattr(owner, attr, wrapped)

    import bulksend.cli
    from bulksend import campaign_run, engine

    mark("imported")
    wrap(campaign_run, "prepare_send", "prepare", "prepared", "prepare")
    wrap(campaign_run, "_validate", "validate", "validated")
    wrap(campaign_run, "_queue", "queue", "queued", "queue")
    wrap(engine.Engine, "_loop", "loop", "looped")
    # before loop: from queued to loop; after loop: from looped to the end.
    if profiler is not None and profile in ("before", "after"):
        original_loop = engine.Engine._loop
        original_queue = campaign_run._queue

        def queue_then_profile(*args, **kwargs):
            result = original_queue(*args, **kwargs)
            if profile == "before":
                profiler.enable()
            return result

        def loop_between(*args, **kwargs):
            if profile == "before":
                profiler.disable()
            try:
                return original_loop(*args, **kwargs)
            finally:
                if profile == "after":
                    profiler.enable()

        campaign_run._queue = queue_then_profile
        engine.Engine._loop = loop_between
    sys.argv = ["bulksend", *sys.argv[sys.argv.index("--") + 1:]]
    code = 0
    try:
        bulksend.cli.main()
    except SystemExit as exit:
        code = exit.code or 0
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(out) + ".prof")
        mark("end")
        out.write_text(json.dumps({"marks": marks, "code": code}))
    sys.exit(code)


def phases(marks: dict[str, list[float]], ended: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """(CPU, wall) seconds of each phase from the child's marks and ``ended``: the child's CPU seen by the parent
    (RUSAGE_CHILDREN) and the parent's clock when it ended."""

    def between(a: str, b: str) -> tuple[float, float]:
        return marks[b][0] - marks[a][0], marks[b][1] - marks[a][1]

    start_cpu, start_wall = marks["main"][0], marks["main"][1] - marks["start"][1]
    loop = between("loop", "looped")
    total = (ended[0], ended[1] - marks["start"][1])
    return {
        "start-up": (start_cpu + between("main", "prepare")[0], start_wall + between("main", "prepare")[1]),
        "prepare": between("prepare", "prepared"),
        "validate": between("validate", "validated"),
        "queue": between("queue", "queued"),
        "before loop": between("queued", "loop"),
        "loop": loop,
        "after loop": between("looped", "end"),
        "exit": (ended[0] - marks["end"][0], ended[1] - marks["end"][1]),
        "outside loop": (total[0] - loop[0], total[1] - loop[1]),
        "total": total,
    }


def main() -> None:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(Path(sys.argv[i + 1]), float(sys.argv[i + 2]), sys.argv[i + 3] or None, sys.argv[i + 4])
        return
    sys.path.insert(0, str(HERE))
    import send_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("BULKSEND_TEST_POSTGRES"))
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--profile", choices=("prepare", "queue", "before", "after"))
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--source", action="store_true",
                        help="remove bulksend's bytecode first: with PYTHONDONTWRITEBYTECODE=1, every run compiles it")
    parser.add_argument("--record", metavar="FILE", help="append each run's phases to FILE (one JSON line per backend)")
    parser.add_argument("--keep", metavar="FILE", help="with --profile: also save the profile there (pstats)")
    args = parser.parse_args()

    if args.source:  # bulksend's source compiled by every run: the bytecode removed, none written
        import shutil

        import bulksend

        for cache in Path(bulksend.__file__).parent.rglob("__pycache__"):
            shutil.rmtree(cache)
    else:
        send_bench.byte_compile_bulksend()  # as installed; see there
    fake, url = send_bench.start_fake(args.latency)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{args.messages:,} messages, {args.runs} runs per backend; load average {load}")
    try:
        for backend in ("sqlite", "postgresql"):
            if args.only not in (None, backend) or (backend == "postgresql" and not args.postgres):
                continue
            results: list[dict[str, tuple[float, float]]] = []
            for run in range(args.runs):
                with tempfile.TemporaryDirectory() as tmp:
                    directory = Path(tmp)
                    if backend == "sqlite":
                        results.append(one_run(args, url, directory, None))
                    else:
                        with send_bench.postgres_schema(args.postgres) as ledger_url:
                            results.append(one_run(args, url, directory, ledger_url))
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            if args.record:
                with open(args.record, "a") as out:
                    out.write(json.dumps({"backend": backend, "load": load, "runs": results}) + "\n")
            print(f"== {backend} (load average after: {load}); seconds, median of {args.runs} "
                  "(each run's CPU in brackets)")
            print(f"{'phase':<14}{'CPU':>8}{'wall':>8}   CPU of each run")
            for name in PHASES:
                cpus = [r[name][0] for r in results]
                walls = [r[name][1] for r in results]
                print(f"{name:<14}{statistics.median(cpus):8.3f}{statistics.median(walls):8.3f}   "
                      + " ".join(f"{c:.3f}" for c in cpus))
    finally:
        fake.terminate()
        fake.wait()


def one_run(args, url: str, directory: Path, ledger_url: str | None) -> dict[str, tuple[float, float]]:
    import send_bench

    campaign, env = send_bench.prepare_campaign(directory, url, args.messages, args.concurrency, ledger_url,
                                                args.rate)
    out = directory / "marks.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(out), repr(time.time()),
               args.profile or "", args.sort, "--", "send", str(campaign), "--yes", "--quiet", "--json"]
    command[4] = repr(time.time())
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    if done.returncode != 0:
        sys.exit(f"bulksend send failed ({done.returncode}): {done.stderr}")
    sent = json.loads(done.stdout)["counts"].get("sent", 0)
    if sent != args.messages:
        sys.exit(f"bulksend sent {sent}, expected {args.messages}")
    if args.profile:
        import pstats

        stats = pstats.Stats(str(out) + ".prof")
        stats.sort_stats(args.sort).print_stats(40)
        if args.keep:
            stats.dump_stats(args.keep)
    return phases(json.loads(out.read_text())["marks"], (child_cpu, ended))


if __name__ == "__main__":
    main()
