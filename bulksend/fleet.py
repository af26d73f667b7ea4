"""Many senders, one provider account: the shared rate (and, on PostgreSQL, the senders' identity).

**One rate per provider account.** A profile's ``rate`` is what the provider allows the *account*, so it
is the ceiling for every run, process and machine that sends through that profile at once. The ledger
keeps one row per profile in ``rate_buckets``: ``next_at``, the next free send slot (seconds since the
epoch on the ledger's clock: the PostgreSQL server's, or the machine's for a SQLite file).

A sender leases a block of slots in one short write transaction, the row locked (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``)::

    start   = max(next_at, now)                  # no credit for idle time: nothing to burst with
    next_at = start + block / rate               # block = about LEASE_SECONDS of the rate

and then spends the slots locally: slot *i* is ``start + i / rate``, translated to its own monotonic
clock through the ``now`` the transaction read (so machines whose clocks disagree still share one time
line: the server's). Each worker thread takes the next slot and sleeps until it comes. The next block is
leased when the one in use is half spent, by one worker while the others go on taking slots, so a run
waits for the ledger only when it outpaces two blocks. This is GCRA
("virtual scheduling") with a tolerance of zero, shared through one row: every slot of every sender is
at least ``1/rate`` from every other, so the slots in any one-second window number at most ``rate + 1``.

What the provider sees can still differ from the slots by:

- a slot taken late: a worker that was busy when its slot came. A slot more than ``LATE_SLACK`` in the
  past is thrown away (never used late), so a late send adds at most ``rate × LATE_SLACK`` to a window;
- the path to the provider: a request that leaves on its slot may arrive a little later or earlier than
  its neighbours (thread wake-up, the network, the provider's own queue): ``rate × jitter``.

The bound in any one-second window is therefore ``rate × (1 + LATE_SLACK + jitter) + 1``: at rate 50 on a
loaded test machine (jitter of a few tens of milliseconds) about +6 %, under the +10 % target. Slots a
sender leased and did not use (it stopped, or died) are simply lost: the error is always on the slow side.
Leasing ``LEASE_SECONDS`` at a time keeps the ledger's load to about five short transactions a second
per sender, whatever the rate.

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
from pathlib import Path

from bulksend.errors import LedgerError

#: How much of the rate one lease takes (seconds' worth of slots).
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
        self.block = max(1, math.floor(self.rate * lease))
        # The block in use, as arithmetic rather than a list: slot i is origin + i * interval, for next ≤ i < end;
        # and the block leased ahead (origin, end), taken up when the one in use is spent.
        self._origin = 0.0
        self._next = 0
        self._end = 0
        self._ahead: tuple[float, int] | None = None
        self._lock = threading.Lock()  # the blocks: held for a few arithmetic steps, never across a call
        self._leasing = threading.Lock()  # one lease at a time (a ledger transaction)
        self._store = None
        self._created = False
        self.error: LedgerError | None = None
        self.leases = 0

    def acquire(self, halt: threading.Event) -> bool:
        """Wait for this sender's next slot; False when ``halt`` is set first (or the ledger failed).

        A worker that finds the block in use more than half spent leases the next one ahead, while the
        others go on taking slots: a worker waits for the ledger only when both blocks are spent.
        """
        while True:
            if self.error is not None or halt.is_set():
                return False
            slot, low = self._take(time.monotonic() - LATE_SLACK)
            if slot is None:  # both blocks spent: lease one now (unless another worker just did), in turn
                with self._leasing:
                    slot, _ = self._take(time.monotonic() - LATE_SLACK)
                    if slot is None and self._lease_ahead(halt):
                        slot, _ = self._take(time.monotonic() - LATE_SLACK)
                if slot is None:
                    continue
            elif low and self._leasing.acquire(blocking=False):
                try:
                    if self._ahead is None:
                        self._lease_ahead(halt)
                finally:
                    self._leasing.release()
            if slot >= time.monotonic() - LATE_SLACK:
                break
            # The slot passed while this worker leased or waited: a slot is never used late; take another.
        wait = slot - time.monotonic()
        if wait > 0:
            return not halt.wait(wait)
        return not halt.is_set()

    def _take(self, earliest: float) -> tuple[float | None, bool]:
        """The next slot at or after ``earliest`` (None: every leased slot is spent), and whether the block in
        use is more than half spent with no block leased ahead (time to lease one).

        The lock is held for a few arithmetic steps and no call, so a holder is never switched out by the
        GIL with the lock held while every other worker queues behind it (measured at a thousand messages a
        second: that convoy kept about one worker in thirteen waiting).
        """
        with self._lock:
            while True:
                # Slots whose moment passed while every worker was busy are skipped: never used late.
                index = -((self._origin - earliest) // self.interval)  # the first slot at or after earliest
                if index < self._next:
                    index = self._next
                if index < self._end:
                    self._next = index + 1
                    low = self._ahead is None and (self._end - index) * 2 < self.block
                    return self._origin + index * self.interval, low
                if self._ahead is None:
                    return None, True
                (self._origin, self._end), self._ahead = self._ahead, None
                self._next = 0

    def _lease_ahead(self, halt: threading.Event) -> bool:
        """Lease the next block (under ``_leasing``); False when the ledger failed (the run stops)."""
        try:
            origin = self._lease()
        except LedgerError as exc:
            self.error = exc
            halt.set()
            return False
        with self._lock:
            self._ahead = (origin, self.block)
        return True

    def _lease(self) -> float:
        """Lease a block of ``block`` slots from the ledger's row; returns the monotonic moment of its first."""
        from bulksend.ledger import utc_timestamp

        if self._store is None:
            self._store = self._opener()
        store = self._store
        stamp = utc_timestamp()
        with store.write():
            if not self._created:
                store.execute("rate_bucket_create", profile=self.profile, now=stamp)
            next_at, clock = store.one("rate_bucket_for_update", profile=self.profile)
            start = max(float(next_at), float(clock))
            store.execute(
                "rate_bucket_save", profile=self.profile, next_at=start + self.block * self.interval, now=stamp
            )
        self._created = True
        self.leases += 1
        # The monotonic moment of the ledger's ``clock`` is taken after the commit: slots can only come late.
        return time.monotonic() + (start - float(clock))

    def close(self) -> None:
        with self._leasing:
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
