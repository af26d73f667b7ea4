"""Many senders, one provider account: the shared rate (and, on PostgreSQL, the senders' identity).

**One rate per provider account.** A profile's ``rate`` is what the provider allows the *account*, so it
is the ceiling for every run, process and machine that sends through that profile at once. The ledger
keeps one row per profile in ``rate_buckets``: ``next_at``, the next free send slot (seconds since the
epoch on the ledger's clock: the PostgreSQL server's, or the machine's for a SQLite file).

A sender leases a block of slots in one statement, the row locked while it runs (SQLite: under ``BEGIN
IMMEDIATE``; PostgreSQL: the ``UPDATE``'s row lock, in autocommit: one round trip)::

    start   = max(next_at, now)                  # no credit for idle time: nothing to burst with
    next_at = start + block / rate

and then spends the slots locally: slot *i* is ``start + i / rate``, translated to its own monotonic
clock through the ``now`` the statement read (so machines whose clocks disagree still share one time
line: the server's). The translation is the lowest offset the leases' round trips allow (``_translate``):
one offset for every lease, so a slow round trip (a wait for the row lock, a late wake-up) does not shift
one lease's slots onto the next one's. Each worker thread takes the next slot and sleeps until it comes.
This is GCRA ("virtual scheduling") with a tolerance of zero, shared through one row: every slot of every sender is
at least ``1/rate`` from every other, so the slots in any one-second window number at most ``rate + 1``.

**The block follows what the sender uses.** A lease is a stretch of the account's time that no other
sender can use, so it must not be larger than what this sender will spend. It starts at one slot, doubles
after a lease whose slots were all used (the rate binds: workers wait for slots), up to ``LEASE_SECONDS``
of the rate, and falls back to the number used after a lease that threw slots away. A block of a fixed
``LEASE_SECONDS`` of the rate (the first design) made a rate that does not bind serialize the senders: at
rate 100,000 a lease was 20,000 slots over 0.2 s, a sender with 4 requests in flight used a handful of them,
and every other sender waited for the end of that 0.2 s; two senders sent no faster than one.

What the provider sees can still differ from the slots by:

- a slot taken late: a worker that was busy when its slot came, or woke late from its wait for it. A slot
  more than ``LATE_SLACK`` in the past is thrown away (never used late), whether no worker had taken it yet
  or its worker woke too late (a stalled process: the worker takes the next slot instead), so a late send
  adds at most ``rate × LATE_SLACK`` to a window;
- the path to the provider: a request that leaves on its slot may arrive a little later or earlier than
  its neighbours (thread wake-up, the network, the provider's own queue): ``rate × jitter``.

The bound in any one-second window is therefore ``rate × (1 + LATE_SLACK + jitter) + 1``: at rate 50 on a
loaded test machine (jitter of a few tens of milliseconds) about +6 %, under the +10 % target. Slots a
sender leased and did not use (it stopped, or died) are simply lost: the error is always on the slow side.
Where the rate binds, blocks reach ``LEASE_SECONDS`` of the rate: about five leases a second per sender.
Where it does not, a lease is about what the sender spends in ``LATE_SLACK`` (later slots go stale), one
short statement every 20 ms or so, leased while half of the last block is left so the workers rarely wait; the
limiter's connection commits them without waiting for the disk (``rate_bucket_session``): ``rate_buckets`` is working
state, and a lease lost with a crash of the server or the machine goes with the senders' connections.

A run with a lower ``--rate`` than the profile's leases its slots ``1/its rate`` apart, so it never
pushes the account above the higher of the rates in use; a run with no rate (``rate = 0``) uses no row.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
import time
from collections import deque
from pathlib import Path

from bulksend.errors import LedgerError

#: The most of the rate one lease takes (seconds' worth of slots), once the rate binds.
LEASE_SECONDS = 0.2
#: A slot found this far in the past is thrown away rather than used late (seconds).
LATE_SLACK = 0.02


def home_sender(home: Path | None) -> tuple[str, str]:
    """(the home's key, this sender's id) as claims record them: ``host:home-digest:`` then ``pid:tag``.

    Every sender of one home shares the key (only one runs at a time: the campaign lock is in the home),
    so a sender that starts after one of its home died recognises that run's claims as its own to settle."""
    import hashlib

    host = socket.gethostname().split(".")[0] or "host"
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12] if home is not None else "-"
    key = f"{host}:{digest}:"
    return key, f"{key}{os.getpid()}:{secrets.token_hex(3)}"


class SharedRate:
    """The profile's rate, shared through the ledger's ``rate_buckets`` row (see the module docstring).

    Thread-safe; ``acquire`` has the engine's token-bucket signature. A ledger that fails while leasing
    stops the run: ``error`` holds the reason (the engine raises it once the batch in flight is recorded).
    """

    def __init__(self, opener, profile: str, rate: float, *, lease: float = LEASE_SECONDS) -> None:
        if not rate or rate <= 0:
            raise ValueError("a shared rate needs a positive rate")
        self._opener = opener  # () -> Store: this limiter's own connection to the ledger
        self.profile = profile
        self.rate = float(rate)
        self.interval = 1.0 / self.rate
        self.most = max(1, math.floor(self.rate * lease))  # the largest block
        self.block = 1  # the next lease's size: grows while every slot is used, shrinks when slots go unused
        self._wasted = 0  # slots thrown away (their moment passed) since the last lease
        self._slots: deque[float] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._leasing = False  # one thread at a time talks to the ledger (this limiter's one connection)
        self._store = None
        self._created = False
        self.error: LedgerError | None = None
        self.leases = 0
        self.late = 0  # slots given up because the worker that took them woke too late
        self._offset: float | None = None  # this monotonic clock minus the ledger's clock (see ``_translate``)

    def acquire(self, halt: threading.Event) -> bool:
        """Wait for this sender's next slot; False when ``halt`` is set first (or the ledger failed)."""
        while True:
            slot = self._take(halt)
            if slot is None:
                return False
            wait = slot - time.monotonic()
            if wait > 0 and halt.wait(wait):
                return False
            if time.monotonic() - slot <= LATE_SLACK:
                return not halt.is_set()
            # Woken too late (a stalled process): its moment passed, and a slot is never used late.
            with self._cond:
                self._wasted += 1
                self.late += 1

    def _take(self, halt: threading.Event) -> float | None:
        """The next slot. A thread that would take the slot leaving half a block or less first leases the next
        block (outside the lock: the others go on taking slots meanwhile), then takes a slot; a thread that
        finds none waits for the lease. (The leasing thread holds no slot while it waits on the ledger: a slow
        round trip would make that slot stale.)"""
        while True:
            with self._cond:
                while True:
                    if self.error is not None or halt.is_set():
                        return None
                    now = time.monotonic()
                    while self._slots and self._slots[0] < now - LATE_SLACK:
                        self._slots.popleft()  # its moment passed while every worker was busy: never use it late
                        self._wasted += 1
                    if self._leasing:
                        if self._slots:
                            return self._slots.popleft()
                        self._cond.wait(0.05)  # another thread is leasing
                        continue
                    if (len(self._slots) - 1) * 2 >= self.block:
                        return self._slots.popleft()
                    break
                self._leasing = True
                span, block = self._size()
            self._lease(span, block, halt)

    def _size(self) -> tuple[float, int]:
        """The next lease's (span, slots), sized by how the slots since the last lease went (under the lock)."""
        if self.leases:
            used = self.block - self._wasted
            self.block = min(self.most, self.block * 2) if not self._wasted else max(1, used)
        self._wasted = 0
        return self.block * self.interval, self.block

    def _lease(self, span: float, block: int, halt: threading.Event) -> None:
        """One statement on the ledger (the calling thread alone holds ``_leasing``), then the slots it gave."""
        from bulksend.ledger import utc_timestamp

        before = time.monotonic()
        try:
            if self._store is None:
                self._store = self._opener()
                # This connection only leases: its commits need not wait for the disk (see rate_bucket_session).
                self._store.execute("rate_bucket_session")
            store = self._store
            stamp = utc_timestamp()
            if not self._created:
                with store.write():
                    store.execute("rate_bucket_create", profile=self.profile, now=stamp)
                self._created = True
            if store.dialect == "postgresql":
                # One statement is its own transaction there (autocommit): one round trip, the row locked only
                # while it runs. A SQLite file takes the write lock first (BEGIN IMMEDIATE): a statement that
                # started as a reader could meet a newer snapshot and fail busy without waiting.
                next_at, clock = store.one("rate_bucket_lease", profile=self.profile, span=span, now=stamp)
            else:
                with store.write():
                    next_at, clock = store.one("rate_bucket_lease", profile=self.profile, span=span, now=stamp)
        except LedgerError as exc:
            with self._cond:
                self.error = exc
                self._leasing = False
                self._cond.notify_all()
            halt.set()
            return
        except BaseException:  # a bug: raised in this worker, but the others must not wait for a lease forever
            with self._cond:
                self._leasing = False
                self._cond.notify_all()
            raise
        start = float(next_at) - span
        origin = start + self._translate(before, time.monotonic(), float(clock))
        with self._cond:
            self._slots.extend(origin + i * self.interval for i in range(block))
            self.leases += 1
            self._leasing = False
            self._cond.notify_all()

    def _translate(self, before: float, after: float, clock: float) -> float:
        """The offset from the ledger's clock to this monotonic clock, from a lease's round trip (its one thread).

        The ledger read ``clock`` somewhere between ``before`` and ``after``, so the true offset lies in
        ``[before - clock, after - clock]``. Taking the upper end alone puts the slots late by the whole round
        trip, and by a different amount each lease (a wait for the row lock, the commit, a wake-up): two leases
        translated with different delays overlap, and the account sees more than its rate around them. The
        offset does not change between leases, so the best estimate is the lowest upper end seen, still never
        early; a lower end above it means the clocks moved (a clock stepped or drifted), and it starts again.
        """
        low, high = before - clock, after - clock
        if self._offset is None or low > self._offset or high < self._offset:
            self._offset = high
        return self._offset

    def close(self) -> None:
        with self._cond:
            while self._leasing:  # a lease in progress finishes with the connection first
                self._cond.wait(0.05)
            if self._store is not None:
                self._store.close()
                self._store = None


def shared_rate(ledger, profile: str, rate: float | None) -> SharedRate | None:
    """The shared limiter for ``profile`` at ``rate`` over ``ledger``'s database; None when there is no rate."""
    if not rate or rate <= 0:
        return None
    return SharedRate(lambda: own_store(ledger), profile, rate)


def own_store(ledger):
    """A second connection to the ledger's database, for work done beside the ledger's own (worker threads)."""
    store = ledger.store
    if store.dialect == "postgresql":
        from bulksend.stores.postgres import PostgresStore

        return PostgresStore.connect(store.url)
    from bulksend.stores.sqlite import SqliteStore

    opened = SqliteStore.open(Path(store.path), create=False, migrate=False)
    if opened is None:
        raise LedgerError(f"{store.path}: the ledger is gone.")
    return opened


def lease_seconds(config) -> float:
    """``[ledger] lease_seconds``: how long a claim on a shared ledger outlives a sender that died (default 60)."""
    from bulksend.engine import DEFAULT_LEASE
    from bulksend.errors import ConfigError

    value = (getattr(config, "ledger", None) or {}).get("lease_seconds", DEFAULT_LEASE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86_400:
        raise ConfigError(
            f"[ledger] lease_seconds must be a number of seconds from 1 to 86400, not {value!r}.",
            hint="Set it in config.toml, e.g. lease_seconds = 60.",
        )
    return float(value)
