"""The recipients pipeline: CSV rows → normalized, consented, deduplicated recipients plus reasoned rejects.

The file is streamed twice at most. Pass one reads only the columns it needs, chunk by chunk, and keeps
a few compact numbers per row (E.164 as an integer, the number's region, consent class, message cost).
Rules that need the whole file — an explicit opt-out anywhere wins, the first accepted row of a number
wins — then run vectorized over those arrays. Pass two (only for --rejects, --clean and the examples of
the human summary) reads the file again to write rows out; it never needs the whole file in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bulksend.consent import Consent, ConsentWords, classify_many
from bulksend.csvfile import CsvFile, open_csv
from bulksend.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.content import Finding, Lexicon, TemplateCheck
    from bulksend.pricing import RateCard
    from bulksend.templates import BoundTemplate, Template

PHONE_COLUMNS = ("phone", "mobile", "msisdn", "number", "phone_number", "mobile_number", "cell", "whatsapp", "to")
CONSENT_COLUMNS = ("consent", "opt_in", "optin", "opted_in")
COUNTRY_COLUMN = "country"
TIMEZONE_COLUMN = "timezone"  # a row's own IANA zone, for quiet hours and local send times (bulksend/schedule.py)
CHANNELS = ("sms", "whatsapp")
WHATSAPP_MAX_CHARS = 4096  # the Cloud API's limit for a text body


class Status(IntEnum):
    """A row's verdict. Reasons are in the brief's order: the first that applies is the one reported."""

    BLANK = -1
    ACCEPTED = 0
    INVALID_NUMBER = 1
    NOT_MOBILE = 2
    COUNTRY_NOT_ALLOWED = 3
    SUPPRESSED = 4
    FREQUENCY_CAPPED = 5
    NO_CONSENT = 6
    BAD_CONSENT_VALUE = 7
    MISSING_FIELD = 8
    CONTENT_BLOCKED = 9
    TOO_LONG = 10
    DUPLICATE = 11

    @property
    def code(self) -> str:
        return self.name.lower()


REASONS = tuple(s for s in Status if s > Status.ACCEPTED)

# Per-row message outcome codes kept from pass one (bulksend/rendering.py sets them).
_MSG_OK, _MSG_MISSING, _MSG_TOO_LONG, _MSG_CONTENT = 0, 1, 2, 3
ENCODINGS = ("GSM-7", "UCS-2")


@dataclass(frozen=True)
class ValidationOptions:
    """Everything `validate` (and the commands built on it) lets a user decide about reading a list."""

    phone_column: str | None = None
    consent_column: str | None = None
    assume_consent: str | None = None
    region: str | None = None
    countries: frozenset[str] | None = None
    allow_landline: bool = False
    channel: str = "sms"
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class MessagePlan:
    """What `estimate` adds: the message, how it is encoded and limited, and what it costs."""

    template: "Template"
    rates: "RateCard"
    max_segments: int = 10
    smart_encoding: bool = False
    category: str | None = None
    lexicon: "Lexicon | None" = None  # content checks (bulksend/content.py); None: none
    compliance: Any = None  # what bulksend.compliance decided about the text (purpose, footer, shorteners)


@dataclass(frozen=True)
class Columns:
    """Which header index holds what."""

    phone: int
    consent: int | None
    country: int | None
    template: tuple[int, ...] = ()
    timezone: int | None = None

    def all(self) -> list[int]:
        picked = [self.phone, self.consent, self.country, self.timezone, *self.template]
        return sorted({c for c in picked if c is not None})


@dataclass
class Example:
    row: int
    value: str
    detail: str


@dataclass
class RecipientTable:
    """The outcome of pass one plus the file-wide rules: one entry per data row of the file."""

    csv: CsvFile
    columns: Columns
    options: ValidationOptions
    regions: list[str]  # region names, indexed by `region`
    status: np.ndarray  # int8 Status per data row
    e164: np.ndarray  # int64 digits of the E.164 number (0 when invalid)
    region: np.ndarray  # int16 index into `regions` (-1 when invalid)
    consent: np.ndarray  # int8 Consent per row
    plan: MessagePlan | None = None
    bound: "BoundTemplate | None" = None
    units: np.ndarray | None = None  # int32 segments (SMS) or messages (WhatsApp) per row
    encoding: np.ndarray | None = None  # int8 index into ENCODINGS
    credits: np.ndarray | None = None  # int64 credits per row
    alt_units: np.ndarray | None = None  # segments with the other smart-encoding setting (SMS only)
    alt_credits: np.ndarray | None = None
    default_region: str | None = None  # --region, else the config's default: for numbers without a prefix
    capped: dict[str, str] | None = None  # frequency-capped numbers → when they become eligible (the detail)
    content: "TemplateCheck | None" = None  # the content check of this template (with a MessagePlan's lexicon)
    content_found: dict = field(default_factory=dict)  # (category, word) → [rows blocked, first row index]

    # --- summaries -------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return int(np.count_nonzero(self.status != Status.BLANK))

    @property
    def blank(self) -> int:
        return int(np.count_nonzero(self.status == Status.BLANK))

    @property
    def accepted_mask(self) -> np.ndarray:
        return self.status == Status.ACCEPTED

    @property
    def valid(self) -> int:
        return int(np.count_nonzero(self.accepted_mask))

    @property
    def rejected(self) -> int:
        return self.rows - self.valid

    def reasons(self) -> dict[str, int]:
        counts = np.bincount(self.status[self.status > 0].astype(np.int64), minlength=len(Status))
        return {r.code: int(counts[r]) for r in REASONS if counts[r]}

    def countries(self) -> dict[str, int]:
        """Accepted recipients per country, most first."""
        idx = self.region[self.accepted_mask]
        counts = np.bincount(idx[idx >= 0].astype(np.int64), minlength=len(self.regions))
        pairs = [(self.regions[i], int(c)) for i, c in enumerate(counts) if c]
        return dict(sorted(pairs, key=lambda p: (-p[1], p[0])))

    def content_report(self) -> dict | None:
        """The ``content`` JSON object: rows blocked, categories allowed, and each finding with an example row."""
        if self.content is None:
            return None
        blocked_rows = np.flatnonzero(self.status == Status.CONTENT_BLOCKED)
        findings = [
            {"category": f.category, "word": f.word, "source": "message", "rows": int(blocked_rows.size),
             "example_row": int(blocked_rows[0]) + 1 if blocked_rows.size else None}
            for f in self.content.template_findings
        ]
        for (category, word), (rows, first) in sorted(self.content_found.items(), key=lambda kv: (-kv[1][0], kv[0])):
            findings.append(
                {"category": category, "word": word, "source": "merge_field", "rows": rows, "example_row": first + 1}
            )
        return {"blocked": int(blocked_rows.size), "allowed": sorted(self.content.lexicon.allowed),
                "findings": findings}

    def e164_text(self, index: int) -> str:
        return f"+{int(self.e164[index])}" if self.e164[index] else ""


# --- column choice ------------------------------------------------------------------------------


def choose_columns(csv: CsvFile, options: ValidationOptions) -> Columns:
    """Find the phone, consent and country columns, or say exactly what is missing."""
    found = headers_found(csv.headers)
    if options.phone_column:
        phone = csv.find_column([options.phone_column])
        if phone is None:
            raise InputError(
                f"{csv.path}: no column named {options.phone_column!r} (--phone-column). Headers found: {found}.",
            )
    else:
        phone = csv.find_column(PHONE_COLUMNS)
        if phone is None:
            if any(_looks_like_data(h) for h in csv.headers):
                raise InputError(
                    f"{csv.path}: the first row looks like data ({found}), not a header row.",
                    hint="Add a first line naming the columns, for example: phone,consent,first_name",
                )
            raise InputError(
                f"{csv.path}: no phone column. Headers found: {found}.",
                hint=f"Name the column with --phone-column, or call it one of: {', '.join(PHONE_COLUMNS)}.",
            )
    if options.consent_column:
        consent = csv.find_column([options.consent_column])
        if consent is None:
            raise InputError(
                f"{csv.path}: no column named {options.consent_column!r} (--consent-column). Headers found: {found}.",
            )
    else:
        names = (f"{options.channel}_consent", *CONSENT_COLUMNS)
        consent = csv.find_column(names)
        if consent is None and not options.assume_consent:
            raise InputError(
                f"{csv.path}: no consent column (looked for {', '.join(names)}). Headers found: {found}.",
                hint='Add a consent column, name it with --consent-column, or attest with --assume-consent "why".',
            )
    country = csv.find_column([COUNTRY_COLUMN])
    return Columns(phone=phone, consent=consent, country=country, timezone=csv.find_column([TIMEZONE_COLUMN]))


def headers_found(headers: tuple[str, ...], most: int = 20) -> str:
    """The header names for an error message: each cut to 40 characters, at most ``most`` of them."""
    from bulksend.schema import clip

    shown = ", ".join(clip(h, 40) if h else "(blank)" for h in headers[:most])
    return shown + (f" and {len(headers) - most:,} more" if len(headers) > most else "")


def _looks_like_data(cell: str) -> bool:
    digits = sum(ch.isdigit() for ch in cell)
    return digits >= 7 and digits >= len(cell.strip()) * 0.6


# --- options checking ---------------------------------------------------------------------------


def check_region(region: str | None, flag: str = "--region") -> str | None:
    if region is None or not region.strip():
        return None
    import phonenumbers

    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InputError(f"{flag} {region!r} is not an ISO 3166 alpha-2 region code (for example GB, US, DE).")
    return code


def parse_countries(value: str | None) -> frozenset[str] | None:
    if value is None or not value.strip():
        return None
    return frozenset(check_region(part, "--countries") for part in value.split(",") if part.strip())


# --- pass one -----------------------------------------------------------------------------------


def build_table(
    path: Path,
    options: ValidationOptions,
    *,
    default_region: str | None = None,
    suppressed: frozenset[str] = frozenset(),
    plan: MessagePlan | None = None,
    progress: Callable[[int], None] | None = None,
    consent_words: ConsentWords | None = None,
    capped: dict[str, str] | None = None,
) -> RecipientTable:
    """Read, check and decide every row of ``path``. Bad rows become rejects; bad files raise InputError."""
    if options.channel not in CHANNELS:
        raise InputError(f"--channel {options.channel!r}: choose sms or whatsapp.")
    csv = open_csv(path, options.encoding, options.delimiter)
    columns = choose_columns(csv, options)
    bound = None
    content = None
    if plan is not None:
        bound = plan.template.bind(csv.headers)
        if plan.lexicon is not None:
            from bulksend.content import TemplateCheck

            content = TemplateCheck(plan.lexicon, bound)
        columns = Columns(
            phone=columns.phone,
            consent=columns.consent,
            country=columns.country,
            template=tuple(csv.find_column([name]) for name in bound.columns),
            timezone=columns.timezone,
        )
    region_default = options.region or default_region
    if consent_words is None:  # the built-in values; "now" read once for the whole file
        from bulksend.consent import consent_words as builtin_words

        consent_words = builtin_words()
    regions: list[str] = []
    region_index: dict[str, int] = {}

    def jobs() -> Iterator[_ChunkJob]:
        for chunk in csv.chunks(columns.all()):
            yield _ChunkJob(
                phones=chunk[columns.phone].tolist(),
                countries=chunk[columns.country].tolist() if columns.country is not None else None,
                consent=chunk[columns.consent].tolist() if columns.consent is not None else None,
                template_cells=[chunk[c].tolist() for c in columns.template] if bound is not None else [],
                region_default=region_default,
                allow_landline=options.allow_landline,
                bound=bound,
                channel=options.channel,
                max_segments=plan.max_segments if plan is not None else 0,
                smart_encoding=plan.smart_encoding if plan is not None else False,
                consent_words=consent_words,
                content=content,
            )

    finding_ids: dict = {}  # Finding → its number; rows with a finding as (row, number)
    finding_rows: list[int] = []
    finding_of: list[int] = []
    offset = 0
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("status", "e164", "region", "consent", "msg", "units", "enc", "alt")}
    for result in _run_jobs(jobs(), parallel=_worth_parallel(path)):
        # Each chunk numbers its regions locally; map them onto the table's list (-1 stays -1).
        mapping = np.empty(len(result.regions) + 1, dtype=np.int16)
        for local, name in enumerate(result.regions):
            if name not in region_index:
                region_index[name] = len(regions)
                regions.append(name)
            mapping[local] = region_index[name]
        mapping[-1] = -1
        parts["status"].append(result.status)
        parts["e164"].append(result.e164)
        parts["region"].append(mapping[result.region])
        parts["consent"].append(result.consent)
        if plan is not None:
            parts["msg"].append(result.msg)
            parts["units"].append(result.units)
            parts["enc"].append(result.enc)
            parts["alt"].append(result.alt)
        for local, finding in result.findings:
            finding_rows.append(offset + local)
            finding_of.append(finding_ids.setdefault(finding, len(finding_ids)))
        offset += len(result.status)
        if progress is not None:
            progress(len(result.status))

    def joined(key: str, dtype) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros(0, dtype=dtype)

    table = RecipientTable(
        csv=csv,
        columns=columns,
        options=options,
        regions=regions,
        status=joined("status", np.int8),
        e164=joined("e164", np.int64),
        region=joined("region", np.int16),
        consent=joined("consent", np.int8),
        plan=plan,
        bound=bound,
        default_region=region_default,
        capped=capped or None,
        content=content,
    )
    msg = None
    if plan is not None:
        msg = joined("msg", np.int8)
        table.units = joined("units", np.int32)
        table.encoding = joined("enc", np.int8)
        table.alt_units = joined("alt", np.int32)
    _decide(table, suppressed, msg)
    if finding_rows:
        rows = np.array(finding_rows, dtype=np.int64)
        of = np.array(finding_of, dtype=np.int64)
        blocked = table.status[rows] == Status.CONTENT_BLOCKED  # not rows an earlier reason took
        for finding, number in finding_ids.items():
            mine = rows[blocked & (of == number)]
            if mine.size:
                table.content_found[(finding.category, finding.word)] = [int(mine.size), int(mine[0])]
    if plan is not None:
        _price(table, plan)
    return table


def _blank_rows(
    phones: list[str], consent: list[str] | None, countries: list[str] | None, invalid: np.ndarray
) -> np.ndarray | None:
    """Rows with no phone, no consent and no country: blank lines, skipped and not counted.

    ``invalid`` holds the rows whose number is invalid, the only ones that can have an empty phone.
    """
    candidates = [i for i in invalid.tolist() if not phones[i].strip()]
    if not candidates:
        return None
    blank = [
        i
        for i in candidates
        if (consent is None or not consent[i].strip()) and (countries is None or not countries[i].strip())
    ]
    return np.asarray(blank, dtype=np.int64) if blank else None


@dataclass(frozen=True)
class _ChunkJob:
    """One chunk's cells and the settings its checks need: all a worker process gets."""

    phones: list[str]
    countries: list[str] | None
    consent: list[str] | None
    template_cells: list[list[str]]
    region_default: str | None
    allow_landline: bool
    bound: "BoundTemplate | None"
    channel: str
    max_segments: int
    smart_encoding: bool
    consent_words: ConsentWords | None = None  # None: the built-in values, judged against the clock now
    content: "TemplateCheck | None" = None


@dataclass
class _ChunkResult:
    status: np.ndarray
    e164: np.ndarray
    region: np.ndarray  # index into ``regions`` (this chunk's own numbering), -1 when invalid
    regions: list[str]
    consent: np.ndarray
    msg: np.ndarray | None = None
    units: np.ndarray | None = None
    enc: np.ndarray | None = None
    alt: np.ndarray | None = None
    findings: list[tuple[int, "Finding"]] = field(default_factory=list)  # (row in chunk, first finding)


_CHECKERS: dict[bool, object] = {}


def _check_chunk(job: _ChunkJob) -> _ChunkResult:
    """Pass one's per-row work for one chunk. Pure: the same answer inline or in a worker process."""
    from bulksend.phones import NumberChecker

    checker = _CHECKERS.get(job.allow_landline)
    if checker is None:
        checker = _CHECKERS[job.allow_landline] = NumberChecker(allow_landline=job.allow_landline)
    phones, countries = job.phones, job.countries
    n = len(phones)
    # Each row is read with its country cell, else the default region: the column's distinct values once.
    if countries is not None:
        import pandas as pd

        codes, cells = pd.factorize(np.asarray(countries, dtype=object))
        names = [cell.strip().upper() or job.region_default for cell in cells.tolist()]
    else:
        codes, names = np.zeros(n, dtype=np.int64), [job.region_default]
    verdicts = checker.check_many(phones, codes, names)
    e164, region, regions = verdicts.e164, verdicts.region, verdicts.regions
    status = verdicts.status  # 0, 1, 2: Status.ACCEPTED, INVALID_NUMBER, NOT_MOBILE
    blank = _blank_rows(phones, job.consent, countries, np.flatnonzero(status == Status.INVALID_NUMBER))
    if blank is not None:
        status[blank] = Status.BLANK
    if job.consent is not None:
        consent = classify_many(job.consent, job.consent_words)
    else:
        consent = np.full(n, Consent.GIVEN, dtype=np.int8)
    out = _ChunkResult(status=status, e164=e164, region=region, regions=regions, consent=consent)
    if job.bound is not None:
        out.msg, out.units, out.enc, out.alt = _render_chunk(job, status, out.findings)
    return out


# Below this size a file is checked in this process: starting workers would cost more than it saves.
PARALLEL_MIN_BYTES = 8 * 2**20


def _worth_parallel(path: Path) -> bool:
    import os
    import sys
    import threading

    if sys.platform != "linux" or threading.active_count() > 1:
        return False  # fork is only safe (and only the default) on Linux, in a process without threads
    try:
        cpus = len(os.sched_getaffinity(0))
        if cpus < 2 or path.stat().st_size < PARALLEL_MIN_BYTES:
            return False
        # Workers only pay off on idle cores: on a busy machine, shipping chunks to them costs more
        # than it saves (measured: 1.6x faster when idle, 1.3x slower at a load of 7 on 2 cores).
        return _idle_cores() >= 1.5
    except OSError:
        return False


def _idle_cores(window: float = 0.1) -> float:
    """How many cores sat idle over the last ``window`` seconds (from /proc/stat; 0 when unknown)."""
    import os
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def _run_jobs(jobs: Iterator[_ChunkJob], *, parallel: bool) -> Iterator[_ChunkResult]:
    """Results in file order: inline, or from forked workers while this process parses the next chunks."""
    if not parallel:
        for job in jobs:
            yield _check_chunk(job)
        return
    import multiprocessing
    import os
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # The first chunk is checked here, before the workers fork: they inherit the number tables it built
    # (bulksend/phones.py builds one per calling code and length on first use) instead of each building them.
    first = next(jobs, None)
    if first is None:
        return
    yield _check_chunk(first)
    workers = min(2, len(os.sched_getaffinity(0)))
    pending: deque = deque()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(_check_chunk, job))
                while len(pending) > workers + 1:  # bounded: a few chunks in memory at a time
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _render_chunk(job: _ChunkJob, status: np.ndarray, findings: list):
    """Missing fields, content, segments and encodings of the chunk's live rows (bulksend/rendering.py)."""
    from bulksend.rendering import render_rows

    return render_rows(job.bound, job.template_cells, status, sms=job.channel == "sms", limit=job.max_segments,
                       smart=job.smart_encoding, content=job.content, findings=findings)


# --- file-wide rules ----------------------------------------------------------------------------


def _decide(table: RecipientTable, suppressed: frozenset[str], msg: np.ndarray | None) -> None:
    """Apply the reasons that need more than one row, in the brief's order, over the whole file."""
    status = table.status
    live = status == Status.ACCEPTED  # rows the number checks passed
    e164 = table.e164

    allowed = table.options.countries
    if allowed is not None:
        allowed_idx = np.array([i for i, r in enumerate(table.regions) if r in allowed], dtype=np.int16)
        status[live & ~np.isin(table.region, allowed_idx)] = Status.COUNTRY_NOT_ALLOWED
        live = status == Status.ACCEPTED

    if suppressed:
        suppressed_ints = np.fromiter((int(n[1:]) for n in suppressed if n[1:].isdigit()), dtype=np.int64)
        status[live & np.isin(e164, suppressed_ints)] = Status.SUPPRESSED
        live = status == Status.ACCEPTED

    if table.capped:
        capped_ints = np.fromiter((int(n[1:]) for n in table.capped if n[1:].isdigit()), dtype=np.int64)
        status[live & np.isin(e164, capped_ints)] = Status.FREQUENCY_CAPPED
        live = status == Status.ACCEPTED

    import pandas as pd  # its hash tables: linear, where np.unique and np.isin sort a million numbers

    consent = table.consent
    refused = e164[(consent == Consent.REFUSED) & (e164 != 0)]
    no_consent = (consent == Consent.EMPTY) | (consent == Consent.REFUSED)
    if refused.size:
        no_consent |= pd.Series(e164, copy=False).isin(refused).to_numpy()
    status[live & no_consent] = Status.NO_CONSENT
    live = status == Status.ACCEPTED
    status[live & (consent >= Consent.UNRECOGNIZED)] = Status.BAD_CONSENT_VALUE  # unrecognized, or a future date
    live = status == Status.ACCEPTED

    if msg is not None:
        status[live & (msg == _MSG_MISSING)] = Status.MISSING_FIELD
        status[live & (msg == _MSG_CONTENT)] = Status.CONTENT_BLOCKED
        status[live & (msg == _MSG_TOO_LONG)] = Status.TOO_LONG
        live = status == Status.ACCEPTED

    accepted = np.flatnonzero(live)
    if accepted.size:
        status[accepted[pd.Series(e164[accepted], copy=False).duplicated(keep="first").to_numpy()]] = Status.DUPLICATE


def _price(table: RecipientTable, plan: MessagePlan) -> None:
    channel = table.options.channel
    rates = np.zeros(max(len(table.regions), 1), dtype=np.int64)
    for i, region in enumerate(table.regions):
        rates[i] = plan.rates.rate(region, channel, plan.category)
    per_row_rate = np.where(table.region >= 0, rates[np.maximum(table.region, 0)], 0)
    table.credits = table.units.astype(np.int64) * per_row_rate
    table.alt_credits = table.alt_units.astype(np.int64) * per_row_rate


# --- pass two: writing rows out -----------------------------------------------------------------


@dataclass(frozen=True)
class RejectRow:
    row: int
    value: str
    reason: str
    detail: str


def iter_rejects(table: RecipientTable, *, stop_after: int | None = None) -> Iterator[RejectRow]:
    """Every rejected row with its original value and a human detail, in file order.

    With ``stop_after``, stops once every reason present has that many rows (for the summary's examples).
    """
    picker = _RejectPicker(table, stop_after)
    if picker.done:
        return
    for chunk in table.csv.chunks(table.columns.all()):
        yield from picker(chunk)
        if picker.done:
            return


class _RejectPicker:
    """Pass two's reject side, one chunk at a time: every rejected row of it (or the first few per reason)."""

    def __init__(self, table: RecipientTable, stop_after: int | None) -> None:
        self.table = table
        self.stop_after = stop_after
        self.rejected = np.flatnonzero(table.status > 0)
        self.done = self.rejected.size == 0 or stop_after == 0
        self.wanted: dict[int, int] = {}
        self.remaining = len(set(table.status[self.rejected].tolist()))
        self._explain: _Explainer | None = None

    def __call__(self, chunk) -> Iterator[RejectRow]:
        if self.done:
            return
        if self._explain is None:
            from bulksend.phones import NumberChecker

            self._explain = _Explainer(self.table, NumberChecker(allow_landline=self.table.options.allow_landline))
        status = self.table.status
        stop_after = self.stop_after
        start = int(chunk.index[0])
        lo, hi = np.searchsorted(self.rejected, [start, start + len(chunk)])
        if lo == hi:
            if hi == self.rejected.size:
                self.done = True
            return
        phones = chunk[self.table.columns.phone].tolist()
        for index in self.rejected[lo:hi].tolist():
            reason = int(status[index])
            if stop_after is not None:
                seen = self.wanted.get(reason, 0)
                if seen >= stop_after:
                    continue
                self.wanted[reason] = seen + 1
                if seen + 1 == stop_after:
                    self.remaining -= 1
            local = index - start
            yield RejectRow(
                row=index + 1,
                value=phones[local],
                reason=Status(reason).code,
                detail=self._explain(index, reason, chunk, local),
            )
            if stop_after is not None and self.remaining == 0:
                self.done = True
                return
        if hi == self.rejected.size:
            self.done = True


class _Explainer:
    """Builds the human detail of a reject; only ever called for rejected rows."""

    def __init__(self, table: RecipientTable, checker) -> None:
        self.table = table
        self.checker = checker
        e164 = table.e164
        refused_rows = np.flatnonzero((table.consent == Consent.REFUSED) & (e164 != 0))
        order = np.argsort(e164[refused_rows], kind="stable")
        self.refused_numbers = e164[refused_rows][order]
        self.refused_first = refused_rows[order]
        accepted = np.flatnonzero(table.status == Status.ACCEPTED)
        order = np.argsort(e164[accepted], kind="stable")
        self.accepted_numbers = e164[accepted][order]
        self.accepted_rows = accepted[order]

    def _lookup(self, numbers: np.ndarray, rows: np.ndarray, number: int) -> int | None:
        pos = int(np.searchsorted(numbers, number))
        if pos < numbers.size and numbers[pos] == number:
            return int(rows[pos]) + 1
        return None

    def __call__(self, index: int, reason: int, chunk, local: int) -> str:
        table = self.table
        columns = table.columns
        cell = lambda col: chunk[col].iat[local] if col is not None else ""  # noqa: E731
        if reason in (Status.INVALID_NUMBER, Status.NOT_MOBILE):
            region = cell(columns.country).strip().upper() or table.default_region
            return self.checker.check(cell(columns.phone), region).detail
        if reason == Status.COUNTRY_NOT_ALLOWED:
            allowed = ", ".join(sorted(table.options.countries or ()))
            return f"{table.regions[table.region[index]]} is not in --countries ({allowed})"
        if reason == Status.SUPPRESSED:
            return f"on the opt-out list ({table.e164_text(index)})"
        if reason == Status.FREQUENCY_CAPPED and table.capped:
            return table.capped.get(table.e164_text(index), "over the frequency cap")
        if reason == Status.NO_CONSENT:
            value = cell(columns.consent)
            if table.consent[index] == Consent.EMPTY:
                return "consent is empty"
            if table.consent[index] == Consent.REFUSED:
                return f"consent is {_clipped(value)}"
            first = self._lookup(self.refused_numbers, self.refused_first, int(table.e164[index]))
            return f"opted out on row {first} ({table.e164_text(index)})"
        if reason == Status.BAD_CONSENT_VALUE:
            if table.consent[index] == Consent.FUTURE:
                return f"consent date {_clipped(cell(columns.consent))} is in the future"
            return f"consent value {_clipped(cell(columns.consent))} is not recognized (use yes/no or a date)"
        if reason == Status.MISSING_FIELD and table.bound is not None:
            values = [cell(c) for c in columns.template]
            _, missing = table.bound.render(values)
            return f"merge field {{{missing}}} is empty and has no default"
        if reason == Status.CONTENT_BLOCKED and table.content is not None:
            if table.content.template_findings:
                found = table.content.template_findings[0]
                return f"the message has {found.word!r} ({found.category})"
            found = table.content.row([cell(c) for c in columns.template])
            if found is not None:
                return f"a merge field brings {found.word!r} ({found.category})"
        if reason == Status.TOO_LONG and table.plan is not None:
            if table.options.channel == "whatsapp":
                return f"longer than {WHATSAPP_MAX_CHARS} characters"
            return f"{int(table.units[index])} segments, over --max-segments {table.plan.max_segments}"
        if reason == Status.DUPLICATE:
            first = self._lookup(self.accepted_numbers, self.accepted_rows, int(table.e164[index]))
            return f"same number as row {first}"
        return ""


def _clipped(value: str) -> str:
    from bulksend.schema import clip

    return clip(repr(value.strip()), 80)


def write_rejects(table: RecipientTable, path: Path) -> int:
    from bulksend.spreadsheet import write_rows

    rows = ((r.row, r.value, r.reason, r.detail) for r in iter_rejects(table))
    return write_rows(path, ("row", "value", "reason", "detail"), rows)


def write_clean(table: RecipientTable, path: Path) -> int:
    """Accepted rows with every original column, plus their E.164 number."""
    from bulksend.spreadsheet import LINE_END, atomic_text, safe_cell, safe_series

    accepted = np.flatnonzero(table.accepted_mask)
    headers = [h if h else f"column_{i + 1}" for i, h in enumerate(table.csv.headers)]
    written = 0
    with atomic_text(path) as handle:
        import csv as csvmod

        csvmod.writer(handle, lineterminator=LINE_END).writerow([safe_cell(h) for h in (*headers, "e164")])
        for chunk in table.csv.chunks(range(len(headers))):
            if chunk.empty:
                continue  # a header without data rows: the clean file is the header alone
            start = int(chunk.index[0])
            lo, hi = np.searchsorted(accepted, [start, start + len(chunk)])
            if lo == hi:
                continue
            picked = chunk.loc[accepted[lo:hi]]
            out = picked.apply(safe_series)
            out["e164"] = ["+" + str(n) for n in table.e164[accepted[lo:hi]].tolist()]
            out.to_csv(handle, header=False, index=False, lineterminator=LINE_END)
            written += len(out)
    return written


def write_details(table: RecipientTable, path: Path) -> int:
    """Per accepted recipient: row, E.164, country, encoding, segments (or messages) and credits."""
    import pandas as pd

    from bulksend.spreadsheet import LINE_END, atomic_text

    accepted = np.flatnonzero(table.accepted_mask)
    regions = np.array(table.regions + [""], dtype=object)
    sms = table.options.channel == "sms"
    frame = pd.DataFrame(
        {
            "row": accepted + 1,
            "e164": ["+" + str(n) for n in table.e164[accepted].tolist()],
            "country": regions[table.region[accepted]],
            "encoding": np.array(ENCODINGS, dtype=object)[table.encoding[accepted]] if sms else "whatsapp",
            "segments": table.units[accepted],
            "credits": table.credits[accepted],
        }
    )
    with atomic_text(path) as handle:
        frame.to_csv(handle, index=False, lineterminator=LINE_END)
    return len(frame)


def examples(table: RecipientTable, per_reason: int = 3) -> dict[str, list[RejectRow]]:
    return collect_examples(table, per_reason, previews=False)[0]


@dataclass(frozen=True)
class Preview:
    """A rendered message shown before anything is sent (``examples`` in estimate and send JSON).

    ``why`` says which of the picks it is: ``first`` (the first accepted row), ``longest`` (the first row
    with the most SMS segments) and ``ucs2`` (the first accepted row that needs UCS-2); a row that is
    several of them is shown once, with every reason.
    """

    row: int
    e164: str
    text: str
    encoding: str  # "GSM-7", "UCS-2", or "whatsapp"
    segments: int  # SMS segments, or 1 WhatsApp message
    credits: int
    why: tuple[str, ...]

    def as_json(self) -> dict:
        return {
            "row": self.row, "e164": self.e164, "text": self.text, "encoding": self.encoding,
            "segments": self.segments, "credits": self.credits, "why": list(self.why),
        }


def preview_picks(table: RecipientTable) -> dict[int, tuple[str, ...]]:
    """Row index → why it is previewed: the first accepted row, the longest, one UCS-2; at most three rows."""
    if table.units is None or table.encoding is None:
        return {}
    accepted = np.flatnonzero(table.accepted_mask)
    if accepted.size == 0:
        return {}
    picks: dict[int, list[str]] = {int(accepted[0]): ["first"]}
    if table.options.channel == "sms":  # a WhatsApp message is one unit, whatever its length
        longest = int(accepted[int(np.argmax(table.units[accepted]))])
        picks.setdefault(longest, []).append("longest")
        ucs2 = accepted[table.encoding[accepted] == 1]
        if ucs2.size:
            picks.setdefault(int(ucs2[0]), []).append("ucs2")
    return {index: tuple(why) for index, why in picks.items()}


class _PreviewPicker:
    """Pass two's preview side: renders the picked rows as they are priced (and as iter_messages sends them)."""

    def __init__(self, table: RecipientTable, enabled: bool) -> None:
        self.table = table
        self.picks = preview_picks(table) if enabled and table.bound is not None else {}
        self.targets = np.array(sorted(self.picks), dtype=np.int64)
        self.found: dict[int, Preview] = {}
        self.done = not self.picks

    def __call__(self, chunk) -> None:
        if self.done:
            return
        from bulksend.segments import smart_encode

        table = self.table
        start = int(chunk.index[0])
        lo, hi = np.searchsorted(self.targets, [start, start + len(chunk)])
        sms = table.options.channel == "sms"
        for index in self.targets[lo:hi].tolist():
            values = [chunk[c].iat[index - start] for c in table.columns.template]
            text, _ = table.bound.render(values)
            if sms and table.plan.smart_encoding:
                text = smart_encode(text)
            self.found[index] = Preview(
                row=index + 1,
                e164=table.e164_text(index),
                text=text,
                encoding=ENCODINGS[int(table.encoding[index])] if sms else "whatsapp",
                segments=int(table.units[index]),
                credits=int(table.credits[index]),
                why=self.picks[index],
            )
        self.done = len(self.found) == len(self.picks)

    @property
    def previews(self) -> list[Preview]:
        order = {"first": 0, "longest": 1, "ucs2": 2}
        return sorted(self.found.values(), key=lambda p: order[p.why[0]])


def collect_examples(
    table: RecipientTable, per_reason: int, *, previews: bool
) -> tuple[dict[str, list[RejectRow]], list[Preview]]:
    """Pass two for the summary, once: a few rejects per reason and the message previews, stopping early."""
    rejects = _RejectPicker(table, per_reason)
    shown = _PreviewPicker(table, previews)
    out: dict[str, list[RejectRow]] = {}
    if not (rejects.done and shown.done):
        for chunk in table.csv.chunks(table.columns.all()):
            for row in rejects(chunk):
                out.setdefault(row.reason, []).append(row)
            shown(chunk)
            if rejects.done and shown.done:
                break
    return out, shown.previews


# --- reports ------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """What `validate` tells: the brief's JSON fields, plus what the human summary shows."""

    table: RecipientTable
    examples: dict[str, list[RejectRow]]
    rejects_written: int | None = None
    clean_written: int | None = None
    previews: list[Preview] = field(default_factory=list)  # rendered messages, when asked and there is a message

    def as_json(self) -> dict:
        table = self.table
        doc = {
            "file": str(table.csv.path),
            "rows": table.rows,
            "valid": table.valid,
            "rejected": table.rejected,
            "reasons": table.reasons(),
            "countries": table.countries(),
            "encoding": table.csv.encoding_label,
            "delimiter": table.csv.delimiter,
            "blank": table.blank,
            "phone_column": table.csv.headers[table.columns.phone],
            "consent_column": table.csv.headers[table.columns.consent] if table.columns.consent is not None else None,
        }
        if table.options.assume_consent and table.columns.consent is None:
            doc["assumed_consent"] = table.options.assume_consent
        if table.csv.encoding_note:
            doc["encoding_fallback"] = True
        if self.rejects_written is not None:
            doc["rejects_file"] = self.rejects_written
        if self.clean_written is not None:
            doc["clean_file"] = self.clean_written
        if table.content is not None:
            doc["content"] = table.content_report()
        return doc


def validate_file(
    path: Path,
    options: ValidationOptions,
    *,
    default_region: str | None = None,
    suppressed: frozenset[str] = frozenset(),
    rejects: Path | None = None,
    clean: Path | None = None,
    examples_per_reason: int = 0,
    plan: MessagePlan | None = None,
    progress: Callable[[int], None] | None = None,
    consent_words: ConsentWords | None = None,
    previews: bool = False,
    capped: dict[str, str] | None = None,
) -> ValidationReport:
    """Validate a recipient file and write the requested rejects and clean files."""
    table = build_table(
        path, options, default_region=default_region, suppressed=suppressed, plan=plan, progress=progress,
        consent_words=consent_words, capped=capped,
    )
    report = ValidationReport(table=table, examples={})
    if rejects is not None:
        report.rejects_written = write_rejects(table, rejects)
    if clean is not None:
        report.clean_written = write_clean(table, clean)
    if (examples_per_reason and table.rejected) or (previews and plan is not None):
        report.examples, report.previews = collect_examples(table, examples_per_reason, previews=previews)
    return report


class Message(NamedTuple):
    """One accepted recipient with its rendered message: what a campaign queues.

    A NamedTuple, not a frozen dataclass: as immutable, and about three times cheaper to build, which
    counts at one per queued row.
    """

    row: int  # 1-based data row number
    e164: str
    country: str | None
    text: str
    encoding: str  # "GSM-7", "UCS-2", or "whatsapp"
    units: int  # SMS segments, or 1 for WhatsApp
    credits: int
    fields: dict[str, str]  # the row's merge-field values, by CSV header (for provider templates)
    timezone: str | None = None  # the row's timezone column, when the file has one


class MessageColumns(NamedTuple):
    """Accepted rows of one stretch of the file, rendered, as one list per field (the fields of ``Message``)."""

    row: list[int]
    e164: list[str]
    country: list[str | None]
    text: list[str]
    encoding: list[str]
    units: list[int]
    credits: list[int]
    fields: list[dict[str, str]] | None  # None unless asked for
    timezone: list[str | None]


def iter_messages(table: RecipientTable) -> Iterator[Message]:
    """Every accepted row, rendered exactly as priced, in file order (a second streaming pass)."""
    for columns in iter_message_columns(table, fields=True):
        assert columns.fields is not None
        yield from map(Message._make, zip(*columns))


def iter_message_columns(table: RecipientTable, *, fields: bool = False) -> Iterator[MessageColumns]:
    """``iter_messages`` as columns, one CSV chunk at a time (no object per row): what ``send`` queues.
    ``fields`` (each row's merge-field values) only when asked: only a campaign with ``params`` needs them."""
    from bulksend.segments import smart_encode

    if table.plan is None or table.bound is None or table.units is None or table.credits is None:
        raise ValueError("iter_messages needs a table built with a MessagePlan")
    accepted = np.flatnonzero(table.accepted_mask)
    if accepted.size == 0:
        return
    columns = table.columns
    sms = table.options.channel == "sms"
    smart = table.plan.smart_encoding
    names = table.bound.columns
    render = table.bound.render
    for chunk in table.csv.chunks(columns.all()):
        if chunk.empty:
            continue
        start = int(chunk.index[0])
        lo, hi = np.searchsorted(accepted, [start, start + len(chunk)])
        if lo == hi:
            continue
        cells = [chunk[c].tolist() for c in columns.template]
        zones = chunk[columns.timezone].tolist() if columns.timezone is not None else None
        rows = accepted[lo:hi]
        local = (rows - start).tolist()
        # The chunk's figures as Python values in a few numpy calls, not a numpy scalar per row and field.
        values = list(zip(*([col[i] for i in local] for col in cells))) if cells else [()] * len(local)
        texts = []
        for row_values in values:
            text, missing = render(row_values)
            assert text is not None and missing is None  # accepted rows rendered in pass one
            texts.append(text)
        if sms and smart:
            texts = [smart_encode(text) for text in texts]  # leaves GSM-7 text as it is: as pass one priced it
        count = len(local)
        yield MessageColumns(
            (rows + 1).tolist(),
            [f"+{e164}" for e164 in table.e164[rows].tolist()],
            [None if r < 0 else table.regions[r] for r in table.region[rows].tolist()],
            texts,
            [ENCODINGS[e] for e in table.encoding[rows].tolist()] if sms else ["whatsapp"] * count,
            table.units[rows].tolist(),
            table.credits[rows].tolist(),
            [dict(zip(names, map(str.strip, row_values))) for row_values in values] if fields else None,
            [zones[i].strip() or None for i in local] if zones is not None else [None] * count,
        )
