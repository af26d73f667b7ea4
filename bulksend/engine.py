"""The send loop: claim due transmissions, send them concurrently under a rate limit, record every outcome once.

The hot path is claim → HTTP → commit. The main thread is the only one that touches the ledger: it
claims a batch of due ``queued`` rows (the ledger marks them ``sending`` and commits *before* any request
goes out), hands each row to a bounded pool of worker threads that take a token from the rate limiter
and call ``provider.send``, and commits the outcomes that came back in one transaction per batch (the
accepted ones with :meth:`Ledger.mark_sent_many`). It claims the next batch while the current one is
still in flight, so the pool never waits on the ledger.

Before a worker starts a request it appends the row to the campaign's attempt journal (one ``os.write``,
bulksend/journal.py), together with the outcome of its previous request. A crashed run's ``sending`` rows
are settled from it at the start of the next run (:meth:`Engine.recover`): only those whose request may
have been out become ``unknown``.

What each outcome does (DESIGN.md, "Transmissions: the state machine"):

=============  =================================================================================
accepted       ``sent`` with the provider's id, debited in the same transaction
retryable      ``queued`` again after a backoff (exponential, full jitter, never shorter than the
               provider's Retry-After); ``failed`` with the last code once attempts run out
ambiguous      ``unknown``: reconciled with ``provider.lookup`` before it can ever be sent again
permanent      ``failed`` with the provider's code and text
opted_out      ``failed``, and the number joins the opt-out list (source "provider")
fatal          the run stops at once; the row and every unsent claimed row go back to ``queued``
=============  =================================================================================

Nothing here knows about Typer, rich, files or flags: the caller passes a ledger, an open provider and
:class:`EngineSettings`, and gets an :class:`EngineResult` back.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from bulksend.errors import InsufficientCredits, LedgerError
from bulksend.journal import AttemptJournal, Verdict, accepted_record, attempt_record, declined_record
from bulksend.ledger import Campaign, Ledger, Transmission
from bulksend.providers.base import Delivery, LookupResult, Outcome, OutcomeKind, Provider
from bulksend.safetext import printable

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_ATTEMPTS = 5
#: Consecutive failed attempts (retryable, ambiguous or permanent) that stop the run.
DEFAULT_BREAKER = 20
#: Outcomes that count towards the breaker. An accepted message resets the count; an opt-out is the
#: recipient's own choice and says nothing about the provider's health, so it neither counts nor resets.
BREAKER_KINDS = frozenset({OutcomeKind.RETRYABLE, OutcomeKind.AMBIGUOUS, OutcomeKind.PERMANENT})
#: The longest the loop waits for a backoff or for unknown rows to settle before it gives up (seconds).
DEFAULT_MAX_WAIT = 600.0
#: How long an ``unknown`` row rests before it is looked up: a request that timed out on our side may
#: still be working its way through the provider, and a lookup that comes too early would miss it.
DEFAULT_RECONCILE_AFTER = 30.0
BACKOFF_BASE = 1.0  # seconds: the first retry waits up to this, the next up to twice as long…
BACKOFF_CAP = 300.0
#: The longest a retry is put off, whatever the provider's Retry-After says (seconds: one day).
MAX_RETRY_AFTER = 86400.0
#: An outcome waits at most this long for its batch's commit (a slow trickle still reaches the ledger).
COMMIT_INTERVAL = 0.25
#: A shared ledger: how long a claim holds before another sender may settle it (renewed every third of it).
DEFAULT_LEASE = 60.0
#: A shared ledger: claims that found due rows they could not take, before the run gives up on credits.
SHARED_STALLS = 20
#: A shared ledger: a worker starts no request for a row whose claim was last made or renewed more than this
#: share of the lease ago. Renewals come every third of the lease, so a sender that keeps up never reaches
#: it; one that stalled (a starved or paused process) gives the row back rather than race the sender that
#: may settle it when the lease runs out.
LEASE_USABLE = 2 / 3
#: After a claim found nothing due, the next attempt to claim waits this long (while others are in flight).
IDLE_CLAIM_INTERVAL = 0.2
#: A stopping run (Ctrl-C, SIGTERM, an error) waits this long for the answers in flight, then cuts them short
#: (``provider.interrupt``), waits ``CUT_GRACE`` more for the workers, and records what is still out as
#: ``unknown``. A run stopped by the provider (fatal, breaker) waits for every answer: each request has a deadline.
STOP_GRACE = 2.0
CUT_GRACE = 1.0
#: The longest error code kept in the ledger.
MAX_CODE = 100


class StopReason(StrEnum):
    """Why a run ended."""

    DONE = "done"  # nothing is left that this run could send
    LIMIT = "limit"  # --limit rows were attempted
    WAITING = "waiting"  # the rest is queued for later than the longest wait
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: the batch in flight was recorded
    FATAL = "fatal"  # the provider refused everything (credentials, account, funds)
    BREAKER = "breaker"  # too many consecutive failures


@dataclass(frozen=True)
class EngineSettings:
    """How a run sends. ``rate`` ≤ 0 or None means no rate limit (only ``concurrency`` bounds it)."""

    rate: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_unknown: bool = False
    limit: int | None = None
    breaker: int = DEFAULT_BREAKER
    max_wait: float = DEFAULT_MAX_WAIT
    reconcile_after: float = DEFAULT_RECONCILE_AFTER
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    rules: Any = None  # schedule.SendRules: quiet hours and the frequency cap, checked again at claim time
    lease: float = DEFAULT_LEASE  # a shared ledger: seconds a claim holds without renewal ([ledger] lease_seconds)

    @property
    def batch(self) -> int:
        """Rows per claim and per commit: 4 per worker, but no more than ~2 seconds of sending at ``rate``.

        Claimed rows sit in ``sending`` until their outcome is committed; a crash turns them into ``unknown``.
        Keeping a batch to a couple of seconds of work keeps that window small at low rates.
        """
        if self.batch_size:
            return max(1, int(self.batch_size))
        size = self.concurrency * 4
        if self.rate and self.rate > 0:
            size = min(size, max(self.concurrency, math.ceil(self.rate * 2)))
        return max(1, min(size, 1000))

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: full jitter over an exponential ceiling, at least Retry-After.

        The jitter is tenacity's ``wait_random_exponential`` (uniform over 0…min(cap, base·2^attempts));
        the engine schedules the retry in the ledger rather than sleeping in a retry loop, so it asks the
        strategy for a number instead of decorating a call.
        """
        wait = _full_jitter(self.backoff_base, self.backoff_cap)(_Attempt(attempts + 1))
        if retry_after is not None and math.isfinite(retry_after) and retry_after > wait:
            wait = retry_after
        # A provider may ask for a century. The run itself never waits longer than max_wait (it ends, and a
        # later run sends the row when due); the row is never parked longer than MAX_RETRY_AFTER.
        return max(0.0, min(wait, MAX_RETRY_AFTER))


@dataclass(frozen=True)
class _Attempt:
    """The one thing tenacity's wait strategies read from a retry state."""

    attempt_number: int


@lru_cache(maxsize=16)
def _full_jitter(base: float, cap: float):
    from tenacity import wait_random_exponential

    return wait_random_exponential(multiplier=base, max=cap)


@dataclass
class RunStats:
    """What a run did so far (read by the progress display after every commit)."""

    pending: int = 0  # rows not final when the run started (queued, sending or unknown)
    attempts: int = 0  # requests made
    sent: int = 0
    failed: int = 0
    retried: int = 0  # retryable outcomes scheduled again
    unknown: int = 0  # ambiguous outcomes
    suppressed: int = 0  # found on the opt-out list at send time
    deferred: int = 0  # claimed in quiet hours: queued again for the next allowed time (no attempt used)
    capped: int = 0  # failed at claim time: the frequency cap was reached meanwhile (another campaign)
    opted_out: int = 0  # opted out at the provider
    recovered: int = 0  # rows a crashed run left ``sending`` whose request may have been out (now unknown)
    lease_lapsed: int = 0  # a shared ledger: claimed rows given back unsent because this sender fell behind its lease
    lease_lost: int = 0  # a shared ledger: outcomes that came back for rows another sender had settled meanwhile
    requeued: int = 0  # rows a crashed run left ``sending`` that, per the journal, no provider accepted (queued)
    journal_sent: int = 0  # rows a crashed run left ``sending`` that, per the journal, were accepted (now sent)
    found: int = 0  # unknown rows the provider had (now sent)
    not_found: int = 0  # unknown rows the provider did not have (queued again)
    undecided: int = 0  # unknown rows the provider could not tell about (left unknown unless retry_unknown)
    credits: int = 0  # debited by this run
    batches: int = 0
    failures: Counter = field(default_factory=Counter)  # failed rows of this run by code
    retrying: set = field(default_factory=set)  # ids waiting for another attempt
    last_outcome: Outcome | None = None
    waited: float = 0.0  # seconds spent idle, waiting for unknown rows to ripen for lookup or for a retry
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    started: float = field(default=-1.0)  # clock() when the run started (set from ``clock`` when not given)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    @property
    def finished(self) -> int:
        """Rows that reached a final state in this run."""
        return self.sent + self.failed

    @property
    def per_second(self) -> float:
        """Requests per second of work: the time spent idle waiting (``waited``) is left out."""
        working = self.elapsed - self.waited
        return self.attempts / working if working > 0 else 0.0


@dataclass
class EngineResult:
    """How a run ended, what it did, and what stopped it."""

    reason: StopReason
    stats: RunStats
    fatal: Outcome | None = None  # the outcome that stopped a FATAL run
    tripped_by: Outcome | None = None  # the last outcome of a BREAKER run
    next_due: datetime | None = None  # when the rest may be sent (WAITING)


@dataclass(frozen=True, slots=True)
class Recovery:
    """How the rows a crashed run left ``sending`` were settled (:meth:`Engine.recover`)."""

    unknown: int  # the request may have been out (or the journal could not be trusted)
    requeued: int  # the request never started, or the provider declined it: queued, no attempt spent
    sent: int  # the provider accepted it: sent, with its id, and debited
    credits: int  # debited for those


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What a reconciliation of ``unknown`` rows found.

    Two partitions of ``looked_up``: what the provider answered (found + not_found + undecided), and what
    became of the rows (found + assumed_sent + requeued + failed + still_unknown).
    """

    looked_up: int
    found: int  # the provider has it: sent
    not_found: int  # the provider certainly does not have it
    undecided: int  # the provider cannot tell
    requeued: int  # NOT_FOUND rows, or undecided ones with retry_unknown or the user's "queued", queued again
    failed: int  # NOT_FOUND rows out of attempts, or undecided ones the user gave up ("failed")
    waiting: int  # rows too recent to look up yet
    assumed_sent: int = 0  # undecided rows marked sent on the user's word ("sent")
    still_unknown: int = 0  # undecided rows left unknown

    def plus(self, later: ReconcileResult) -> ReconcileResult:
        """This result followed by ``later`` (whose ``waiting`` is what is still waiting)."""
        return ReconcileResult(
            self.looked_up + later.looked_up,
            self.found + later.found,
            self.not_found + later.not_found,
            self.undecided + later.undecided,
            self.requeued + later.requeued,
            self.failed + later.failed,
            later.waiting,
            self.assumed_sent + later.assumed_sent,
            self.still_unknown + later.still_unknown,
        )


Progress = Callable[[RunStats], None]


class TokenBucket:
    """Spaces requests ``1/rate`` seconds apart across every worker (GCRA: one token, refilled continuously).

    Each caller reserves the next free slot under a lock and sleeps until it comes, so the waits are fair
    and the limiter costs one lock and one clock read per message.
    """

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, halt: threading.Event) -> bool:
        """Wait for a token; False when ``halt`` is set first."""
        if not self.interval:
            return not halt.is_set()
        with self._lock:
            now = time.monotonic()
            slot = self._next if self._next > now else now
            self._next = slot + self.interval
        wait = slot - time.monotonic()
        if wait > 0:
            return not halt.wait(wait)
        return not halt.is_set()


@lru_cache(maxsize=4096)
def _encoding(text: str) -> str:
    from bulksend.segments import is_gsm7

    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _later(moment: datetime, seconds: float) -> datetime:
    # The ledger keeps milliseconds and truncates: round up, so a wait is never a hair shorter than asked.
    return moment + timedelta(seconds=seconds, milliseconds=1)


class _Workers:
    """The send threads: each takes the next claimed row from a queue and attempts it.

    Plain threads on a SimpleQueue rather than a ThreadPoolExecutor: no Future, lock and condition per
    message, which at a thousand messages a second is GIL time taken from the requests themselves.
    """

    def __init__(self, count: int, attempt: Callable[[Transmission, bytes], bytes]) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, args=(attempt,), name=f"send-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, attempt: Callable[[Transmission, bytes], bytes]) -> None:
        done = b""  # the journal's outcome record of this thread's previous request, not yet written
        while True:
            row = self._jobs.get()
            if row is None:
                return
            done = attempt(row, done)

    def submit(self, row: Transmission) -> None:
        self._jobs.put(row)

    def stop(self) -> None:
        """No more rows: every thread ends once the rows already handed over are answered (at once, when halted)."""
        for _ in self._threads:
            self._jobs.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every thread to end; True when they all have."""
        until = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def unstarted(self) -> list[Transmission]:
        """Take back the rows no thread has picked up (every thread is stuck in a request)."""
        rows = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rows.append(item)
        self.stop()  # the stuck threads still end when their request does
        return rows

    def shutdown(self) -> None:
        """Let the rows already handed over finish (a stopping run answers them at once), then join."""
        self.stop()
        self.join(math.inf)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _outcome_record(row: Transmission, outcome: Outcome) -> bytes:
    """The journal record of an outcome: accepted, or certainly not accepted; nothing when it may have been."""
    kind = outcome.kind
    if kind is OutcomeKind.ACCEPTED:
        return accepted_record(row.id, row.attempts, outcome.provider_id)
    if kind in (OutcomeKind.RETRYABLE, OutcomeKind.PERMANENT, OutcomeKind.FATAL):
        return declined_record(row.id, row.attempts)
    # Ambiguous: it may have been accepted. Opted out: a row the recipient refused is not sent again on the
    # strength of a journal; both are left to reconciliation.
    return b""


def _stored(outcome: Outcome) -> Outcome:
    """The outcome as the ledger keeps it: the provider's code and text printable, one line, cut short."""
    code = printable(outcome.code, MAX_CODE)
    text = printable(outcome.text)
    if code == outcome.code and text == outcome.text:
        return outcome
    return replace(outcome, code=code or None, text=text or None)


def _ledger_home(ledger: Ledger) -> Path | None:
    """The run's home, where the journal sits: the ledger knows it (``ledger.home``), whatever its store."""
    home = getattr(ledger, "home", None)
    if isinstance(home, Path):
        return home
    path = getattr(ledger, "path", None)
    return path.parent if isinstance(path, Path) else None


class Engine:
    """Sends one campaign's due transmissions through one provider and records every outcome.

    ``stop`` is an event the caller sets (on Ctrl-C or SIGTERM) to end the run after the requests in
    flight: their outcomes are committed, claimed rows that never went out return to ``queued``.
    ``journal`` is the campaign's attempt journal; by default the one beside a file ledger
    (``<home>/journal/<campaign id>.attempts``), none for a ledger without a file.
    """

    def __init__(
        self,
        ledger: Ledger,
        provider: Provider,
        campaign: Campaign,
        settings: EngineSettings,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        journal: AttemptJournal | None = None,
        limiter: "TokenBucket | None" = None,
    ) -> None:
        if journal is None:
            home = _ledger_home(ledger)
            journal = AttemptJournal.for_campaign(home, campaign.id) if home is not None else None
        self.journal = journal
        self._journaling = False  # every request is recorded first (the journal is open)
        self._journal_error: OSError | None = None
        self.ledger = ledger
        self.provider = provider
        self.campaign = campaign
        self.settings = settings
        self.progress = progress
        self.stop = stop or threading.Event()
        self.stats = RunStats()
        self._halt = threading.Event()  # workers start no new request once set
        # The rate: this run's own, or one shared with every run of the profile (bulksend/fleet.py).
        self._bucket = limiter if limiter is not None else TokenBucket(settings.rate)
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[tuple[Transmission, Outcome | None, float]] = []  # (row, outcome, when: time.time())
        self._pending_since = 0.0
        self._in_flight = 0
        self._consecutive_failures = 0
        self._breaker_lock = threading.Lock()
        self._fatal: Outcome | None = None
        self._tripped: Outcome | None = None
        self._bug: BaseException | None = None
        self._undecided: set[int] = set()  # unknown rows the provider could not tell about in this run
        self._out: dict[int, Transmission] = {}  # rows handed to the workers whose outcome has not come back
        self._quiet = None  # a schedule.Scheduler for quiet hours at claim time, made on first use
        from bulksend.fleet import home_sender

        # Who claims (a shared ledger records it with a lease), and the prefix every sender of this home shares.
        self._home_key, self.sender = home_sender(_ledger_home(ledger))
        self._lease_checked = time.monotonic()  # when leases were last renewed and expired ones looked for
        # A shared ledger: when each row in flight was claimed or its lease last renewed (a monotonic time taken
        # *before* the claim or the renewal: the lease runs from no earlier than that); -inf once it is lost.
        self._claimed_at: dict[int, float] = {}
        self._shared = ledger.store.leases  # several senders may share the campaign (claims carry a lease)

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> EngineResult:
        """Recover, reconcile, then send until nothing is due, the limit is reached, or something stops it."""
        cid = self.campaign.id
        self.recover()
        self._open_journal()
        counts = self.ledger.counts(cid)
        pending = counts.get("queued", 0) + counts.get("unknown", 0)
        limit = self.settings.limit
        self.stats.pending = pending if limit is None else min(limit, pending)
        reason = StopReason.DONE
        next_due: datetime | None = None
        interrupted = False
        failed = False
        workers = _Workers(max(1, self.settings.concurrency), self._attempt)
        try:
            self._reconcile(ripe_only=True)
            reason, next_due = self._loop(workers)
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            failed = True
            raise
        finally:
            self._halt.set()
            try:
                self._settle(workers, hurry=interrupted or failed)
            finally:
                self._close_journal()
        self._discard_journal()  # every outcome is recorded: the journal has nothing left to explain
        if self._bug is not None:
            raise self._bug
        if getattr(self._bucket, "error", None) is not None:  # the shared rate's ledger failed
            raise self._bucket.error
        if self._journal_error is not None:
            assert self.journal is not None
            raise LedgerError(
                f"cannot write the attempt journal {self.journal.path} ({_why(self._journal_error)}): the run "
                "stopped, and the message it was about to send was not sent (it is queued, like the rest).",
                hint="Free some space or fix the permissions there, then run the campaign again: it resumes.",
            )
        if self._fatal is not None:
            reason = StopReason.FATAL
        elif self._tripped is not None:
            reason = StopReason.BREAKER
        elif interrupted or self.stop.is_set():
            reason = StopReason.INTERRUPTED
        return EngineResult(reason, self.stats, self._fatal, self._tripped, next_due)

    def _loop(self, workers: _Workers) -> tuple[StopReason, datetime | None]:
        settings = self.settings
        batch = settings.batch
        attempted = 0
        claim_after = 0.0  # after an empty claim, do not claim again before this (monotonic) time
        stalls = 0
        while True:
            if self.stop.is_set():
                # Ctrl-C: stop claiming and leave the loop; _settle waits (briefly) for what is in flight.
                self._halt.set()
                return StopReason.INTERRUPTED, None
            halted = self._halt.is_set()
            limit_reached = settings.limit is not None and attempted >= settings.limit
            claimed = 0
            if (
                not halted
                and not limit_reached
                and self._in_flight < batch
                and (not self._in_flight or time.monotonic() >= claim_after)
            ):
                want = batch if settings.limit is None else min(batch, settings.limit - attempted)
                claimed_at = time.monotonic()
                rows, suppressed = self._claim(want)
                attempted += len(rows)
                for row in rows:
                    self._out[row.id] = row
                    if self.ledger.store.leases:
                        self._claimed_at[row.id] = claimed_at
                    workers.submit(row)
                self._in_flight += len(rows)
                claimed = len(rows) + suppressed  # rows failed as suppressed are progress too
                claim_after = 0.0 if claimed else time.monotonic() + IDLE_CLAIM_INTERVAL
                if claimed:
                    stalls = 0
            self._tend_leases()
            if self._in_flight:
                self._collect(block=True)
            if self._pending and (
                len(self._pending) >= batch
                or not self._in_flight
                or self._halt.is_set()
                or time.monotonic() - self._pending_since >= COMMIT_INTERVAL
            ):
                self._commit()
            if self._in_flight or self._pending or claimed:
                continue
            # Nothing in flight, nothing to record, and the claim just made found nothing due.
            if self._halt.is_set():
                return StopReason.INTERRUPTED, None
            if limit_reached:
                return StopReason.LIMIT, None
            if self._reconcile(ripe_only=True):
                continue
            wake = self._next_event()
            if wake is None:
                return StopReason.DONE, None
            delay = (wake - _now()).total_seconds()
            if delay > settings.max_wait:
                return StopReason.WAITING, wake
            if delay <= 0:
                # Due rows the claim did not take: only possible when the campaign's hold cannot pay for them.
                if self.ledger.get_campaign(self.campaign.id).state == "cancelled":
                    return StopReason.DONE, None  # cancelled from another home: its hold is gone, nothing more goes
                stalls += 1
                if self.ledger.store.leases and stalls < SHARED_STALLS:
                    # A shared ledger: another sender that finished may have released the hold this run
                    # joined, or held rows for a moment (SKIP LOCKED): hold the shortfall again, then retry.
                    self.ledger.hold_shortfall(self.campaign.id)
                    if self.stop.wait(IDLE_CLAIM_INTERVAL):
                        self._halt.set()
                        return StopReason.INTERRUPTED, None
                    continue
                if stalls >= 3:
                    raise InsufficientCredits(
                        f"campaign {self.campaign.name!r}: its credit hold does not cover the next message.",
                        hint="Run it again: the next run holds what the rest of the campaign needs.",
                    )
                continue
            idle_from = self.stats.clock()
            stopped = self.stop.wait(min(delay, 1.0))
            self.stats.waited += self.stats.clock() - idle_from
            if stopped:
                self._halt.set()
                return StopReason.INTERRUPTED, None

    # ---------------------------------------------------------------------------- crash recovery

    def _tend_leases(self) -> None:
        """A shared ledger, about every third of the lease: renew this sender's claims, and turn the rows of
        senders whose lease ran out (they died) into ``unknown``, which reconciliation settles."""
        if not self.ledger.store.leases or time.monotonic() - self._lease_checked < self.settings.lease / 3:
            return
        self._lease_checked = renewing = time.monotonic()
        cid = self.campaign.id
        renewed = self.ledger.renew_leases(cid, self.sender, self.settings.lease)
        claimed = self._claimed_at
        for row_id in list(claimed):
            # A row not renewed is no longer ours: this sender fell behind its lease (a starved process, a
            # paused VM) and another settled the row. Its request must never start now, however fresh this
            # renewal is: that sender may already have looked it up, found nothing and queued it again.
            claimed[row_id] = renewing if row_id in renewed else -math.inf
        with self.ledger.transaction():
            expired = [row_id for row_id, _ in self.ledger.sending_to_recover(
                cid, home=self._home_key, sender=self.sender)]
            self.stats.recovered += self.ledger.recover_sending(cid, expired)

    def recover(self) -> Recovery:
        """Settle the rows a crashed run left ``sending``: call it under the campaign lock, before sending.

        With a journal that can be trusted, a row whose request never started goes back to ``queued``
        (attempts unchanged), one the provider accepted becomes ``sent`` (with its id, debited), one it
        declined goes back to ``queued``; only a row whose request may have been out becomes ``unknown``.
        Without one (no file, another boot, torn or foreign content, no boot id), every such row becomes
        ``unknown``. The journal is removed once the ledger has committed.
        """
        cid = self.campaign.id
        ledger = self.ledger
        journal = self.journal
        attempts = journal.read() if journal is not None else None
        sent = credits = requeued = 0
        with ledger.transaction():
            mine: set[int] | None = None  # a shared ledger: the rows this home's journal can speak for
            settle: list[int] | None = None  # a shared ledger: the rows to settle (never a live sender's)
            if ledger.store.leases:
                found = ledger.sending_to_recover(cid, home=self._home_key, sender=self.sender)
                settle = [row_id for row_id, _ in found]
                mine = {row_id for row_id, ours in found if ours}
            if attempts is not None:
                unsent: list[int] = []
                declined: list[int] = []
                for row in ledger.transmissions(cid, states=("sending",)):
                    if mine is not None and row.id not in mine:
                        continue  # another home's claim: its journal is elsewhere (unknown, below, if expired)
                    verdict, provider_id = attempts.verdict(row.id, row.attempts)
                    if verdict is Verdict.NOT_STARTED:
                        unsent.append(row.id)
                    elif verdict is Verdict.DECLINED:
                        declined.append(row.id)
                    elif verdict is Verdict.ACCEPTED:
                        try:
                            credits += ledger.mark_sent(row.id, provider_id)
                        except InsufficientCredits:
                            continue  # not debitable now: left to recover_sending (unknown), as before
                        sent += 1
                requeued = ledger.unclaim(unsent) + ledger.unclaim(
                    declined, text="declined by the provider; the run stopped before recording it"
                )
            unknown = ledger.recover_sending(cid) if settle is None else ledger.recover_sending(cid, settle)
        if journal is not None:
            try:
                journal.discard()
            except OSError as exc:
                # A journal left behind could be read against rows a later run claims without it.
                raise LedgerError(
                    f"cannot remove the attempt journal {journal.path} ({_why(exc)}); nothing was sent.",
                    hint="Fix the permissions of that directory, then run the command again.",
                ) from None
        stats = self.stats
        stats.recovered += unknown
        stats.requeued += requeued
        stats.journal_sent += sent
        stats.sent += sent
        stats.credits += credits
        return Recovery(unknown, requeued, sent, credits)

    def _open_journal(self) -> None:
        journal = self.journal
        if journal is None:
            return
        try:
            journal.open()
        except OSError as exc:
            raise LedgerError(
                f"cannot start the attempt journal {journal.path} ({_why(exc)}); nothing was sent.",
                hint="Free some space or fix the permissions there, then run the campaign again.",
            ) from None
        self._journaling = journal.active

    def _close_journal(self) -> None:
        self._journaling = False
        if self.journal is not None:
            self.journal.close()

    def _discard_journal(self) -> None:
        if self.journal is None or self.ledger.counts(self.campaign.id).get("sending"):
            return
        try:
            self.journal.discard()
        except OSError:
            pass  # harmless: the next run's recovery reads it against no row of this run, then removes it

    # ------------------------------------------------------------------------------- the hot path

    def _claim(self, limit: int) -> tuple[list[Transmission], int]:
        """Mark up to ``limit`` due rows ``sending`` (committed); rows on the opt-out list fail instead.

        Returns the rows to send and how many were failed as suppressed.
        """
        ledger = self.ledger
        suppressed = 0
        with ledger.transaction():
            rows = ledger.claim(self.campaign.id, limit, _now(), sender=self.sender, lease=self.settings.lease)
            if rows:
                blocked = ledger.suppressed_among(r.e164 for r in rows)
                if blocked:
                    for row in rows:
                        if row.e164 in blocked:
                            ledger.mark_failed(row.id, "suppressed", "on the opt-out list at send time; not sent")
                            self.stats.suppressed += 1
                            self.stats.failed += 1
                            self.stats.failures["suppressed"] += 1
                            self.stats.retrying.discard(row.id)
                            suppressed += 1
                    rows = [r for r in rows if r.e164 not in blocked]
            if rows and self.settings.rules is not None:
                rows, held_back = self._hold_back(rows, _now())
                suppressed += held_back
        return rows, suppressed

    def _hold_back(self, rows: list[Transmission], now: datetime) -> tuple[list[Transmission], int]:
        """Claimed rows that may not go now: quiet hours defer them (no attempt used), the cap fails them.

        Runs in the claim's transaction, so a campaign claiming the same number at the same time (it sees
        this one's ``sending`` rows) cannot also slip under the cap. Returns the rows to send and how many
        were held back.
        """
        from bulksend.schedule import Scheduler, allowed_now, cap_detail

        rules = self.settings.rules
        ledger = self.ledger
        keep: list[Transmission] = []
        held = 0
        if rules.quiet is not None:
            if self._quiet is None:
                self._quiet = Scheduler(rules.quiet)
            allowed: dict[tuple[str, ...], bool] = {}  # by zone set: a batch's rows share a handful
            for row in rows:
                zones = self._quiet.zones(row.e164, row.country, row.timezone)
                ok = allowed.get(zones)
                if ok is None:
                    ok = allowed[zones] = allowed_now(now, zones, rules.quiet)
                if ok:
                    keep.append(row)
                    continue
                held += 1
                until = self._quiet.due(now.replace(second=0, microsecond=0), zones)
                if until is None:
                    ledger.mark_failed(
                        row.id, "no_allowed_time",
                        f"its possible time zones ({', '.join(zones)}) share no hour outside quiet hours "
                        f"{rules.quiet}; give the row a timezone column",
                    )
                    self._final_failure(row, "no_allowed_time")
                    continue
                ledger.defer(row.id, until)
                self.stats.deferred += 1
            rows, keep = keep, []
        if rules.cap is not None and rows:
            cap = rules.cap
            channel = self.campaign.channel
            recent = ledger.recent_sends((r.e164 for r in rows), channel, now - cap.window, other_than=self.campaign.id)
            for row in rows:
                eligible = cap.eligible_at(recent.get(row.e164, ()), now)
                if eligible is None:
                    keep.append(row)
                    continue
                held += 1
                ledger.mark_failed(row.id, "frequency_capped", cap_detail(cap, channel, eligible))
                self.stats.capped += 1
                self._final_failure(row, "frequency_capped")
            rows = keep
        return rows, held

    def _delivery(self, row: Transmission) -> Delivery:
        return Delivery(
            transmission_id=row.id,
            campaign=self.campaign.name,
            to=row.e164,
            text=row.message,
            channel=self.campaign.channel,
            encoding=_encoding(row.message),
            params=json.loads(row.params) if row.params else {},
        )

    def _attempt(self, row: Transmission, done: bytes) -> bytes:
        """Worker thread: one request, unless the run is stopping. Never touches the ledger.

        The request starts only once its attempt record is in the journal, written with ``done`` (the
        outcome record of this thread's previous request) in one ``os.write``. Returns this request's
        outcome record, for the next write. A write that fails stops the run; the row was not sent and
        goes back to ``queued`` with the rest.
        """
        outcome: Outcome | None = None
        try:
            # Held before taking a slot of the (perhaps shared) rate, and still held once it has one.
            if not (self._still_held(row) and self._bucket.acquire(self._halt) and self._still_held(row)):
                return done  # not sent: the row goes back to the queue, if this sender still holds it
            journaling = self._journaling
            if journaling:
                try:
                    self.journal.record(done + attempt_record(row.id, row.attempts))
                except OSError as exc:
                    if self._journal_error is None:
                        self._journal_error = exc
                    self._halt.set()
                    return b""
            try:
                outcome = self.provider.send(self._delivery(row))
            except BaseException as exc:  # an adapter must not raise: a bug, but the message may be out
                self._bug = exc
                self._halt.set()
                outcome = Outcome(
                    OutcomeKind.AMBIGUOUS,
                    code="adapter_error",
                    text=f"{type(exc).__name__} in the {self.provider.type_name} adapter; it may have been sent",
                )
            self._watch(outcome)
            return _outcome_record(row, outcome) if journaling else b""
        finally:
            self._results.put((row, outcome, time.time()))

    def _still_held(self, row: Transmission) -> bool:
        """On a shared ledger, whether this sender's claim on ``row`` is still safely inside its lease."""
        since = self._claimed_at.get(row.id)
        if since is None:
            return True  # not a shared ledger (or a row this run did not claim)
        if time.monotonic() - since < self.settings.lease * LEASE_USABLE:
            return True
        with self._breaker_lock:  # workers count together
            self.stats.lease_lapsed += 1
        return False

    def _watch(self, outcome: Outcome) -> None:
        """Stop sending at once on a fatal outcome, or when the circuit breaker trips (in completion order)."""
        kind = outcome.kind
        if kind is OutcomeKind.FATAL:
            self._halt.set()
        elif kind is OutcomeKind.ACCEPTED:
            self._consecutive_failures = 0  # a plain store: no lock needed to reset
        elif kind in BREAKER_KINDS:
            with self._breaker_lock:
                self._consecutive_failures += 1
                limit = self.settings.breaker
                if limit and self._consecutive_failures >= limit and self._tripped is None:
                    self._tripped = outcome
                    self._halt.set()

    def _collect(self, *, block: bool) -> None:
        """Move finished attempts to the pending list (waiting briefly for the first one when ``block``)."""
        got = 0
        if block:
            timeout = COMMIT_INTERVAL
            if self._pending:
                timeout = max(0.0, self._pending_since + COMMIT_INTERVAL - time.monotonic())
            try:
                item = self._results.get(timeout=timeout)
            except queue.Empty:
                return
            self._add_pending(item)
            got = 1
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
            self._add_pending(item)
            got += 1
        self._in_flight = max(0, self._in_flight - got)

    def _add_pending(self, item) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._out.pop(item[0].id, None)
        self._claimed_at.pop(item[0].id, None)
        self._pending.append(item)

    # ------------------------------------------------------------------------------ stopping

    def _settle(self, workers: _Workers, *, hurry: bool) -> None:
        """On the way out: wait for the answers in flight (briefly when hurrying), record every outcome.

        No row this run claimed is left ``sending``: rows no worker picked up go back to ``queued``; rows
        whose request was cut short or never came back are ``unknown`` (they may have been sent).
        """
        workers.stop()
        done = self._drain(workers, hurry=hurry)
        self._collect(block=False)
        stranded = workers.unstarted() if not done else []
        for row in stranded:
            self._out.pop(row.id, None)
        lost = list(self._out.values())
        self._out = {}
        try:
            if self._pending:
                self._commit()
        except BaseException:
            self._salvage()
            raise
        finally:
            if stranded or lost:
                self._record_lost(stranded, lost)

    def _drain(self, workers: _Workers, *, hurry: bool) -> bool:
        """Wait for the workers; True when all of them ended. Ctrl-C (or ``hurry``) bounds the wait."""
        cut_at = time.monotonic() + STOP_GRACE if hurry else math.inf
        give_up_at = math.inf
        while True:
            try:
                if workers.join(0.05):
                    return True
                now = time.monotonic()
                if cut_at == math.inf and self.stop.is_set():
                    cut_at = now + STOP_GRACE
                if give_up_at == math.inf and now >= cut_at:
                    self._interrupt_provider()
                    give_up_at = now + CUT_GRACE
                if now >= give_up_at:
                    return False
            except KeyboardInterrupt:  # Ctrl-C again: cut the requests short now, still record everything
                cut_at = min(cut_at, time.monotonic())

    def _interrupt_provider(self) -> None:
        try:
            self.provider.interrupt()
        except Exception:  # noqa: BLE001 - an adapter's failure to cut short must not stop the recording
            pass

    def _salvage(self) -> None:
        """A batch commit failed: record each outcome on its own, so one bad row cannot leave the rest ``sending``.

        A row whose outcome cannot be recorded becomes ``unknown`` when its request went out, ``queued``
        when it did not; a row even that fails for stays ``sending`` for the next run's recovery.
        """
        pending, self._pending = self._pending, []
        for item in pending:
            self._pending = [item]
            try:
                self._commit()
                continue
            except Exception:  # noqa: BLE001 - the first error is the one reported
                self._pending = []
            row, outcome, _ = item
            try:
                with self.ledger.transaction():
                    if outcome is None:
                        self.ledger.unclaim([row.id], sender=self.sender)
                    elif not (self._shared and self.ledger.lost_claims([row.id], self.sender)):
                        self.ledger.mark_unknown(
                            row.id, "not_recorded", "the outcome could not be recorded; it may have been sent"
                        )
                        self.stats.unknown += 1
            except Exception:  # noqa: BLE001
                pass

    def _record_lost(self, stranded: list[Transmission], lost: list[Transmission]) -> None:
        try:
            with self.ledger.transaction():
                if stranded:
                    self.ledger.unclaim([row.id for row in stranded], sender=self.sender)
                if self._shared:  # never over a row another sender settled after this one's lease ran out
                    gone = self.ledger.lost_claims([row.id for row in lost], self.sender)
                    lost = [row for row in lost if row.id not in gone]
                for row in lost:
                    self.ledger.mark_unknown(
                        row.id, "interrupted", "the run stopped before the provider answered; it may have been sent"
                    )
                    self.stats.unknown += 1
        except Exception:  # noqa: BLE001 - they stay sending: the next run's recovery settles them
            pass

    def _commit(self) -> None:
        """Record a batch of outcomes in one transaction."""
        settings = self.settings
        stats = self.stats
        ledger = self.ledger
        unsent: list[int] = []
        opted_out: list[str] = []
        pending, self._pending = self._pending, []
        accepted: list[tuple[int, str | None, None]] = []
        try:
            with ledger.transaction():
                # A shared ledger: outcomes are recorded only on rows this sender still holds. A row whose lease
                # ran out belongs to whoever settled it (looked up, queued again, claimed by another sender).
                lost = ledger.lost_claims([row.id for row, _, _ in pending], self.sender) if self._shared else {}
                for row, outcome, when in pending:
                    if row.id in lost:
                        self._late_outcome(row, outcome, lost[row.id], accepted)
                        continue
                    if outcome is None:
                        unsent.append(row.id)
                        continue
                    stats.attempts += 1
                    outcome = _stored(outcome)
                    stats.last_outcome = outcome
                    kind = outcome.kind
                    if kind is OutcomeKind.ACCEPTED:
                        accepted.append((row.id, outcome.provider_id, None))  # debited together, below
                        stats.retrying.discard(row.id)
                        continue
                    if kind is OutcomeKind.FATAL:
                        ledger.unclaim([row.id], outcome.code, outcome.text)
                        if self._fatal is None:
                            self._fatal = outcome
                        continue
                    if kind is OutcomeKind.OPTED_OUT:
                        ledger.mark_failed(row.id, outcome.code or "opted_out", outcome.text)
                        opted_out.append(row.e164)
                        stats.opted_out += 1
                        self._final_failure(row, outcome.code or "opted_out")
                        continue
                    if kind is OutcomeKind.RETRYABLE:
                        if row.attempts + 1 >= settings.max_attempts:
                            ledger.mark_failed(
                                row.id,
                                outcome.code,
                                f"{outcome.text or 'not accepted'} (gave up after {row.attempts + 1} attempts)",
                            )
                            self._final_failure(row, outcome.code)
                        else:
                            wait = settings.backoff(row.attempts, outcome.retry_after)
                            moment = datetime.fromtimestamp(when, timezone.utc)
                            ledger.mark_retry(row.id, _later(moment, wait), outcome.code, outcome.text)
                            stats.retried += 1
                            stats.retrying.add(row.id)
                    elif kind is OutcomeKind.AMBIGUOUS:
                        ledger.mark_unknown(row.id, outcome.code, outcome.text)
                        stats.unknown += 1
                        stats.retrying.discard(row.id)
                    else:  # PERMANENT
                        ledger.mark_failed(row.id, outcome.code, outcome.text)
                        self._final_failure(row, outcome.code)
                # One step for every debit of the batch: the shared credit rows are locked for a moment, at the end.
                stats.credits += ledger.mark_sent_many(accepted)
                stats.sent += len(accepted)
                if unsent:
                    ledger.unclaim(unsent, sender=self.sender)
                if opted_out:
                    ledger.add_optouts(opted_out, reason="opted out at the provider", source="provider")
        except BaseException:
            self._pending = pending + self._pending  # nothing was recorded: try again on the way out
            raise
        stats.batches += 1
        if self.progress is not None:
            self.progress(stats)

    def _late_outcome(
        self, row: Transmission, outcome: Outcome | None, state: str, accepted: list[tuple[int, str | None, None]]
    ) -> None:
        """An outcome for a row this sender no longer holds (a shared ledger; its lease ran out meanwhile).

        Nothing is recorded over the state another sender gave the row, except the one fact that settles it:
        the provider accepted our request for a row still ``unknown`` (not yet looked up) becomes ``sent``.
        """
        if outcome is None:
            return  # never started: the row was not ours to give back
        self.stats.attempts += 1
        self.stats.lease_lost += 1
        if outcome.kind is OutcomeKind.ACCEPTED and state == "unknown":
            accepted.append((row.id, outcome.provider_id, None))
            self.stats.retrying.discard(row.id)

    def _final_failure(self, row: Transmission, code: str | None) -> None:
        self.stats.failed += 1
        self.stats.failures[code or "unknown_error"] += 1
        self.stats.retrying.discard(row.id)

    # ---------------------------------------------------------------------------- reconciliation

    def _next_event(self) -> datetime | None:
        """When something may next be done: the earliest queued row, or an unknown row ready for lookup."""
        events = [t for t in (self.ledger.next_due(self.campaign.id), self.next_ripening()) if t is not None]
        return min(events) if events else None

    def next_ripening(self) -> datetime | None:
        """When the earliest ``unknown`` row becomes old enough to look up (None: none to look up)."""
        if not self.provider.can_lookup:
            return None
        settle = timedelta(seconds=self.settings.reconcile_after)
        times = [
            _parse_timestamp(row.updated_at) + settle
            for row in self.ledger.transmissions(self.campaign.id, states=("unknown",))
            if row.id not in self._undecided
        ]
        return min(times) if times else None

    def _reconcile(self, *, ripe_only: bool) -> int:
        """Look up ``unknown`` rows; returns how many changed state."""
        result = self.reconcile(ripe_only=ripe_only)
        return result.found + result.assumed_sent + result.requeued + result.failed

    def reconcile(self, *, ripe_only: bool = True, assume: str | None = None) -> ReconcileResult:
        """Ask the provider about every ``unknown`` row (old enough, when ``ripe_only``) and record the answers.

        FOUND → ``sent`` and debited; NOT_FOUND → ``queued`` after a backoff (``failed`` when out of attempts);
        CANNOT_TELL → stays ``unknown``, unless ``retry_unknown`` (queued again) or ``assume`` is
        ``"sent"``, ``"failed"`` or ``"queued"`` (the user's decision, from ``campaigns reconcile``).
        """
        rows = [
            r for r in self.ledger.transmissions(self.campaign.id, states=("unknown",)) if r.id not in self._undecided
        ]
        if not rows:
            return ReconcileResult(0, 0, 0, 0, 0, 0, 0)
        now = _now()
        waiting = 0
        if self.provider.can_lookup and ripe_only:
            settle = timedelta(seconds=self.settings.reconcile_after)
            ripe = [r for r in rows if _parse_timestamp(r.updated_at) + settle <= now]
            waiting = len(rows) - len(ripe)
            rows = ripe
        if not rows:
            return ReconcileResult(0, 0, 0, 0, 0, 0, waiting)
        if self.provider.can_lookup:
            answers = self._lookups(rows)
        else:
            answers = [(LookupResult.CANNOT_TELL, None)] * len(rows)
        found = not_found = undecided = requeued = failed = assumed_sent = still_unknown = 0
        stats = self.stats
        ledger = self.ledger
        batch = max(self.settings.batch, 200)
        for start in range(0, len(rows), batch):
            with ledger.transaction():
                accepted: list[tuple[int, str | None, None]] = []  # debited together at the end, as in _commit
                for row, (answer, provider_id) in zip(rows[start:start + batch], answers[start:start + batch]):
                    if answer is LookupResult.FOUND:
                        accepted.append((row.id, provider_id or row.provider_id, None))
                        stats.sent += 1
                        stats.found += 1
                        stats.retrying.discard(row.id)
                        found += 1
                        continue
                    if answer is LookupResult.NOT_FOUND:
                        stats.not_found += 1
                        not_found += 1
                        decision = "queued"
                    else:
                        undecided += 1
                        stats.undecided += 1
                        decision = assume or ("queued" if self.settings.retry_unknown else None)
                    if decision is None:
                        self._undecided.add(row.id)
                        still_unknown += 1
                    elif decision == "sent":  # the user's word that the provider has it
                        accepted.append((row.id, row.provider_id, None))
                        stats.sent += 1
                        assumed_sent += 1
                    elif decision == "failed":
                        ledger.mark_failed(row.id, "unreconciled", "given up by the user after an unknown outcome")
                        self._final_failure(row, "unreconciled")
                        failed += 1
                    elif self._requeue(row, now):
                        requeued += 1
                    else:
                        failed += 1
                # The shared credit rows are locked once, last: other senders' claims and commits wait on them.
                stats.credits += ledger.mark_sent_many(accepted)
        if self.progress is not None:
            self.progress(self.stats)
        return ReconcileResult(
            len(rows), found, not_found, undecided, requeued, failed, waiting, assumed_sent, still_unknown
        )

    def _requeue(self, row: Transmission, now: datetime) -> bool:
        """An unknown row the provider does not have goes back to ``queued`` (False: out of attempts, failed)."""
        if row.attempts + 1 >= self.settings.max_attempts:
            self.ledger.mark_failed(
                row.id,
                row.error_code,
                f"{row.error_text or 'not accepted'} (gave up after {row.attempts + 1} attempts)",
            )
            self._final_failure(row, row.error_code)
            return False
        wait = self.settings.backoff(row.attempts, None)
        self.ledger.mark_retry(row.id, _later(now, wait), row.error_code, row.error_text)
        self.stats.retrying.add(row.id)
        return True

    def _lookups(self, rows: list[Transmission]) -> list[tuple[LookupResult, str | None]]:
        """Ask the provider about each row, ``concurrency`` at a time, under the same rate limit as sends."""
        def ask(row: Transmission) -> tuple[LookupResult, str | None]:
            if self.stop.is_set() or not self._bucket.acquire(self._halt):
                return LookupResult.CANNOT_TELL, None
            return self.provider.lookup(self._delivery(row), _parse_timestamp(row.created_at))

        with ThreadPoolExecutor(max_workers=max(1, min(self.settings.concurrency, len(rows)))) as pool:
            return list(pool.map(ask, rows))


def reconcile_campaign(
    ledger: Ledger,
    provider: Provider,
    campaign: Campaign,
    settings: EngineSettings,
    *,
    assume: str | None = None,
    wait: bool = True,
) -> tuple[ReconcileResult, int]:
    """``campaigns reconcile``: recover rows a crash left ``sending``, then look up every ``unknown`` row.

    Rows too recent to look up are waited for (at most ``settings.reconcile_after``) when ``wait``.
    Returns the result and how many ``sending`` rows became ``unknown`` (with a journal, those whose request
    may have been out; the others are queued or sent). The caller holds the campaign lock.
    """
    engine = Engine(ledger, provider, campaign, settings)
    recovered = engine.recover().unknown
    total = engine.reconcile(ripe_only=True, assume=assume)
    while wait and total.waiting and provider.can_lookup:
        wake = engine.next_ripening()
        if wake is not None:
            time.sleep(max(0.0, (wake - _now()).total_seconds()))
        again = engine.reconcile(ripe_only=True, assume=assume)
        total = total.plus(again)
    return total, recovered
