"""One rate per provider account (issue 10 item 5): every run through a profile shares its ``rate``.

Two campaigns on one profile at rate R, sent by two processes at once through a fake provider that records
when each request arrived: the provider never sees more than R (+10 %) in any one-second window, on
SQLite and on PostgreSQL. Before the shared rate each run had its own bucket and the provider saw 2R.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, busiest_second, twilio_config
from ledger_backends import BACKENDS, Backend
from sendhelpers import write_campaign

from bulksend.fleet import LATE_SLACK, LEASE_SECONDS, SharedRate, own_store

BULKSEND = [sys.executable, "-m", "bulksend"]


def test_busiest_second_counts_a_sliding_window():
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.4]) == 4  # [0.5, 1.5)
    assert busiest_second([]) == 0


@pytest.fixture(params=BACKENDS)
def backend(request):
    made = Backend(request.param)
    yield made
    made.drop()


def test_two_limiters_on_one_profile_share_its_rate(backend):
    """Two senders (each its own connection and threads) on one profile: slots never closer than 1/rate."""
    ledger = backend.open()
    rate = 50.0
    limiters = [SharedRate(lambda: own_store(ledger), "acme", rate) for _ in range(2)]
    other = SharedRate(lambda: own_store(ledger), "other-account", rate)  # another account: its own rate
    halt = threading.Event()
    lock = threading.Lock()
    got: dict[str, list[float]] = {"acme": [], "other-account": []}

    def work(limiter: SharedRate) -> None:
        while limiter.acquire(halt):
            with lock:
                got[limiter.profile].append(time.monotonic())

    threads = [threading.Thread(target=work, args=(lim,)) for lim in (*limiters, other) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    halt.set()
    for thread in threads:
        thread.join()
    for limiter in (*limiters, other):
        limiter.close()
    ledger.close()

    assert all(lim.error is None for lim in (*limiters, other))
    assert all(lim.leases >= 2 for lim in limiters), "both senders took part"
    assert busiest_second(got["acme"]) <= rate * 1.1
    assert len(got["acme"]) >= rate * 2 * 0.7  # the two share the rate; they do not starve
    assert busiest_second(got["other-account"]) <= rate * 1.1
    assert len(got["other-account"]) >= rate * 2 * 0.7  # not slowed by acme's senders
    # The rate binds (every worker waits for a slot): the leases grew to their largest, LEASE_SECONDS of the rate.
    assert limiters[0].block == limiters[0].most == int(rate * LEASE_SECONDS)


@pytest.mark.slow
def test_two_campaigns_in_two_processes_never_exceed_the_profile_rate(backend, home, tmp_path):
    rate, each = 100, 250
    env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    if backend.name == "postgresql":
        env["BULKSEND_LEDGER_URL"] = backend.url
    with FakeTwilio(latency=0.01) as twilio:
        (home / "config.toml").write_text(twilio_config(twilio.url, rate=rate, concurrency=8))
        subprocess.run([*BULKSEND, "credits", "topup", "1000", "--channel", "sms"], env=env, check=True,
                       capture_output=True)
        spring, first = write_campaign(tmp_path, "spring", each, provider="fake")
        summer, second = write_campaign(tmp_path, "summer", each, provider="fake", start=each)
        # The fake provider stamps arrivals in this process, whose heap holds the whole suite's objects by now: a
        # full garbage collection would stall its threads and stamp the requests that arrived meanwhile together.
        gc.freeze()
        try:
            runs = [
                subprocess.Popen([*BULKSEND, "send", str(path), "--yes", "--json"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for path in (spring, summer)
            ]
            outputs = [run.communicate(timeout=120) for run in runs]
        finally:
            gc.unfreeze()
        for run, (out, err) in zip(runs, outputs):
            assert run.returncode == 0, err
            assert json.loads(out)["counts"]["sent"] == each
        times = [t for arrivals in twilio.post_times.values() for t in arrivals]
        by_campaign = [[t for n in numbers for t in twilio.post_times[n]] for numbers in (first, second)]

    assert len(times) == 2 * each
    assert sorted(twilio.accepted_counts()) == sorted(first + second)
    # The two runs overlapped for most of their time (else this would prove nothing)…
    overlap = min(max(b) for b in by_campaign) - max(min(b) for b in by_campaign)
    assert overlap > (2 * each / rate) * 0.5, f"the runs overlapped for {overlap:.1f}s only"
    # …and together the provider saw the profile's rate, not twice it.
    assert busiest_second(times) <= rate * 1.1, busiest_second(times)
    span = max(times) - min(times)
    assert span >= (2 * each - rate - 1) / rate * 0.95, f"{2 * each} messages in {span:.1f}s"


class _Waits:
    """A halt event whose waits move a clock the test owns (the limiter's monotonic clock) instead of sleeping."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        raise AssertionError("the limiter stopped")

    def wait(self, seconds: float) -> bool:
        self.clock[0] += seconds
        return False


def test_a_lease_grows_while_every_slot_is_used_and_shrinks_to_what_was_used(backend, monkeypatch):
    """A lease is account time no other sender can use: it is as large as what this sender spends, no larger.

    (With a fixed block of 0.2 s of the rate, a sender at rate 100,000 with a few requests in flight held
    20,000 slots, used a handful, and every other sender waited out the 0.2 s: two senders sent as fast as one.)
    """
    import bulksend.fleet as fleet

    clock = [1000.0]
    monkeypatch.setattr(fleet.time, "monotonic", lambda: clock[0])
    ledger = backend.open()
    limiter = SharedRate(lambda: own_store(ledger), "acme", 100.0)
    waits = _Waits(clock)
    sizes = []  # the size of each lease, in order
    lease = limiter._lease
    monkeypatch.setattr(limiter, "_lease", lambda span, block, halt: (sizes.append(block), lease(span, block, halt)))
    for _ in range(1 + 2 + 4 + 8 + 16 + 20):  # the rate binds: each slot is taken the moment it comes
        assert limiter.acquire(waits)
    # The next block is leased while half of the last one is left, so the workers never wait for the ledger.
    assert sizes[:6] == [1, 2, 4, 8, 16, 20] and limiter.most == int(100.0 * LEASE_SECONDS)
    assert set(sizes[6:]) <= {20} and limiter.leases == len(sizes)

    assert limiter.acquire(waits)  # one more slot used…
    clock[0] += 1.0  # …then every worker is busy for a second: every slot left passes unused
    before = len(sizes)
    assert limiter.acquire(waits)
    assert sizes[before] == 1, "the next lease takes only what was used since the last one"
    limiter.close()
    ledger.close()


class _Server:
    """A ledger whose clock is the test's monotonic clock plus an offset; each lease's round trip takes the next
    of ``delays`` (seconds the clock moves after the statement read it: a wait for the row lock, the commit)."""

    dialect = "postgresql"

    def __init__(self, clock: list[float], delays) -> None:
        self.clock = clock
        self.delays = delays
        self.next_at = 0.0

    def execute(self, name: str, **params) -> None:
        pass

    def write(self):
        import contextlib

        return contextlib.nullcontext()

    def one(self, name: str, *, profile: str, span: float, now: str):
        read = self.clock[0] + 5_000.0  # the server's clock, which this machine's monotonic clock knows nothing of
        self.next_at = max(self.next_at, read) + span
        self.clock[0] += next(self.delays)
        return self.next_at, read

    def close(self) -> None:
        pass


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_leases_whose_round_trips_differ_never_put_slots_closer_than_the_rate(monkeypatch):
    """A slow lease (its slots translated late by the whole round trip) followed by a fast one used to put the
    fast lease's first slots onto the slow one's last: two sends 11 ms apart at rate 20 (50 ms)."""
    import itertools

    import bulksend.fleet as fleet

    clock = [1000.0]
    monkeypatch.setattr(fleet.time, "monotonic", lambda: clock[0])
    limiter = SharedRate(lambda: _Server(clock, itertools.cycle([0.001, 0.04])), "acme", 20.0)
    sent = []
    for _ in range(60):
        assert limiter.acquire(_Waits(clock))
        sent.append(clock[0])
    # A slot may be used up to LATE_SLACK late (its worker was leasing), never earlier than 1/rate after the last.
    assert min(_gaps(sent)) >= limiter.interval - LATE_SLACK - 1e-9, min(_gaps(sent))
    assert limiter.leases >= 8 and len(sent) == 60


class _Oversleeps(_Waits):
    """Waits that wake ``late`` seconds after they should, every ``every``th time (a stalled process)."""

    def __init__(self, clock: list[float], late: float, every: int) -> None:
        super().__init__(clock)
        self.late, self.every, self.count = late, every, 0

    def wait(self, seconds: float) -> bool:
        self.count += 1
        self.clock[0] += seconds + (self.late if self.count % self.every == 0 else 0.0)
        return False


def test_a_worker_that_wakes_too_late_gives_up_its_slot(monkeypatch):
    """A worker that wakes 50 ms after its slot (rate 10: 100 ms apart) takes the next slot instead of sending
    late; sending late put two sends 50 ms apart, twice the rate for that moment."""
    import itertools

    import bulksend.fleet as fleet

    clock = [1000.0]
    monkeypatch.setattr(fleet.time, "monotonic", lambda: clock[0])
    limiter = SharedRate(lambda: _Server(clock, itertools.repeat(0.0)), "acme", 10.0)
    waits = _Oversleeps(clock, late=0.05, every=4)
    sent = []
    for _ in range(40):
        assert limiter.acquire(waits)
        sent.append(clock[0])
    assert min(_gaps(sent)) >= limiter.interval - LATE_SLACK - 1e-9, min(_gaps(sent))
    assert limiter.late >= 5, "the worker overslept and gave its slots up"


def test_a_lease_that_fails_with_a_bug_leaves_no_worker_waiting_for_it():
    """A lease runs outside the limiter's lock: one that raises something other than a ledger error (a bug)
    reaches its worker, and the next worker leases again instead of waiting for it forever."""
    calls = []

    def opener():
        calls.append(1)
        raise RuntimeError("a bug in the store")

    limiter = SharedRate(opener, "acme", 100.0)
    raised: list[BaseException] = []

    def worker() -> None:
        try:
            limiter.acquire(threading.Event())
        except RuntimeError as exc:
            raised.append(exc)

    for _ in range(2):
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        thread.join(10)  # a bound against hanging: each call fails at once
        assert not thread.is_alive(), "a worker waits for a lease that will never end"
    assert len(raised) == len(calls) == 2
