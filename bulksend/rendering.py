"""Pass one's message work over a chunk: missing fields, content checks, segments and encodings, per column.

A message is the template's literal text plus one merged value per field, so everything pass one asks of
it is decided per *distinct value* of each column and combined per row with numpy: whether a required
field is empty, what the content check finds in a value (:meth:`TemplateCheck.slot_findings`), and the
value's contribution to the segment count (its :class:`bulksend.segments.Profile`: length, GSM-7 tables,
extension characters, UTF-16 units). No message is rendered, except the few whose segment count depends on
where the parts split (and, with smart encoding, the UCS-2 ones whose replacement is GSM-7): those are
rendered and counted exactly, one by one, by :func:`render_rows_exact`, which is also the reference that
tests/test_rendering.py compares this fast path with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.content import TemplateCheck
    from bulksend.templates import BoundTemplate

# Per-row message outcome codes (bulksend/recipients.py reads them).
MSG_OK, MSG_MISSING, MSG_TOO_LONG, MSG_CONTENT = 0, 1, 2, 3
WHATSAPP_MAX_CHARS = 4096  # the Cloud API's limit for a text body


def render_rows_exact(
    bound: "BoundTemplate",
    cells: list[list[str]],
    status: np.ndarray,
    *,
    sms: bool,
    limit: int,
    smart: bool,
    content: "TemplateCheck | None",
    findings: list,
    rows: np.ndarray | None = None,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
):
    """The reference: each row rendered, checked and counted on its own. ``rows``: only those (default: all)."""
    from bulksend.segments import count_segments, smart_encode

    n = len(status)
    msg, units, enc, alt = out if out is not None else (
        np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int8),
        np.zeros(n, dtype=np.int32))
    render = bound.render
    everywhere = content.template_findings[0] if content is not None and content.template_findings else None
    for i in (range(n) if rows is None else rows.tolist()):
        if status[i] != 0:
            continue  # the number already decided this row; no need to price it
        values = [col[i] for col in cells]
        text, missing = render(values)
        if missing is not None:
            msg[i] = MSG_MISSING
            continue
        if content is not None:
            finding = everywhere or content.row(values)
            if finding is not None:
                msg[i] = MSG_CONTENT
                if everywhere is None:
                    findings.append((i, finding))
                continue
        if not sms:
            units[i] = 1
            if len(text) > WHATSAPP_MAX_CHARS:
                msg[i] = MSG_TOO_LONG
            continue
        if smart:
            plain = count_segments(text)
            count = count_segments(smart_encode(text)) if plain.encoding == "UCS-2" else plain
            alt[i] = plain.segments
        else:
            count = count_segments(text)
            # What --smart-encoding would save: it only ever changes non-GSM text.
            alt[i] = count_segments(smart_encode(text)).segments if count.encoding == "UCS-2" else count.segments
        units[i] = count.segments
        enc[i] = 1 if count.encoding == "UCS-2" else 0
        if count.segments > limit:
            msg[i] = MSG_TOO_LONG
    return msg, units, enc, alt


def render_rows(
    bound: "BoundTemplate",
    cells: list[list[str]],
    status: np.ndarray,
    *,
    sms: bool,
    limit: int,
    smart: bool,
    content: "TemplateCheck | None",
    findings: list,
):
    """What :func:`render_rows_exact` gives, computed per distinct value of each column.

    Returns (msg, units, enc, alt): the outcome code, segments (SMS) or messages (WhatsApp), 1 for UCS-2,
    and the segments with the other smart-encoding setting; ``findings`` gets (row, Finding) for each row
    a merged value blocks, in row order.
    """
    from bulksend.segments import count_segments_many, profile

    n = len(status)
    msg = np.zeros(n, dtype=np.int8)
    units = np.zeros(n, dtype=np.int32)
    enc = np.zeros(n, dtype=np.int8)
    alt = np.zeros(n, dtype=np.int32)
    live = np.flatnonzero(status == 0)
    if live.size == 0:
        return msg, units, enc, alt

    parts = bound.parts()
    literal = "".join(p for p in parts if isinstance(p, str))
    fields = [p for p in parts if not isinstance(p, str)]  # (column, default) per field use, in order

    # Each column once: its distinct values (stripped, as render strips them) and each live row's value.
    codes: list[np.ndarray] = []
    uniques: list[list[str]] = []
    for col in cells:
        row_codes, distinct = _factorize(col)
        codes.append(row_codes[live])
        uniques.append(list(map(str.strip, distinct)))

    # Per field use: the value each distinct entry puts in the message ("" or a default when empty).
    missing = np.zeros(live.size, dtype=bool)
    slot_values: list[list[str]] = []
    for column, default in fields:
        values = uniques[column]
        empty = np.fromiter(map(len, values), dtype=np.int64, count=len(values)) == 0
        if default is None:
            missing |= empty[codes[column]]
        slot_values.append([v or default or "" for v in values] if default and empty.any() else values)
    msg[live[missing]] = MSG_MISSING

    blocked = np.zeros(live.size, dtype=bool)
    if content is not None:
        if content.template_findings:
            blocked = ~missing  # a finding in the template itself is in every message
        else:
            first = np.full(live.size, -1, dtype=np.int64)  # the first finding a row's values bring
            catalogue: list = []
            for n_slot, (column, _) in enumerate(fields):
                ids = np.full(len(slot_values[n_slot]), -1, dtype=np.int64)
                for index, finding in content.slot_findings(n_slot, slot_values[n_slot]).items():
                    ids[index] = len(catalogue)
                    catalogue.append(finding)
                row_ids = ids[codes[column]]
                take = (first < 0) & (row_ids >= 0)
                first[take] = row_ids[take]
            blocked = (first >= 0) & ~missing
            for local in np.flatnonzero(blocked).tolist():
                findings.append((int(live[local]), catalogue[first[local]]))
        msg[live[blocked]] = MSG_CONTENT

    priced = ~missing & ~blocked
    rows = live[priced]
    if rows.size == 0:
        return msg, units, enc, alt
    if not sms:
        units[rows] = 1
        length = len(literal) + sum(
            np.fromiter(map(len, slot_values[k]), dtype=np.int64, count=len(slot_values[k]))[codes[column][priced]]
            for k, (column, _) in enumerate(fields)
        )
        msg[rows[length > WHATSAPP_MAX_CHARS]] = MSG_TOO_LONG
        return msg, units, enc, alt

    # The message's profile is the literal's plus each field's value's, summed per row.
    profiles = [profile(values) for values in slot_values]
    whole = _sum_profiles(profile([literal]), [(profiles[k], codes[column][priced])
                                                for k, (column, _) in enumerate(fields)], rows.size)
    segments, ucs2, decided = count_segments_many(whole)
    other = segments.copy()  # the other smart-encoding setting's count; differs only for UCS-2 text
    if ucs2.any():
        smart_segments, smart_ucs2, smart_decided = _smart_counts(literal, fields, slot_values, profiles, codes,
                                                                  priced, segments, ucs2)
        decided &= smart_decided
        if smart:
            other = segments
            segments, ucs2 = smart_segments, smart_ucs2
        else:
            other = smart_segments
    units[rows] = segments
    enc[rows] = ucs2
    alt[rows] = other
    msg[rows[segments > limit]] = MSG_TOO_LONG
    undecided = rows[~decided]
    if undecided.size:  # counted exactly, text by text
        msg[undecided] = MSG_OK
        render_rows_exact(bound, cells, status, sms=sms, limit=limit, smart=smart, content=None, findings=[],
                          rows=undecided, out=(msg, units, enc, alt))
    return msg, units, enc, alt


def _factorize(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """(code of each value, the distinct values in order of first appearance)."""
    import pandas as pd

    codes, distinct = pd.factorize(np.array(values, dtype=object), sort=False)
    return codes.astype(np.int64, copy=False), distinct.tolist()


def _sum_profiles(base, pieces, rows: int):
    """The profile of each row's message: ``base`` (the literal text) plus each piece's entry for the row."""
    from bulksend.segments import Profile

    length = np.full(rows, base.length[0], dtype=np.int64)
    ext = np.full(rows, base.ext[0], dtype=np.int64)
    astral = np.full(rows, base.astral[0], dtype=np.int64)
    flags = {name: np.full(rows, getattr(base, name)[0], dtype=bool) for name in ("not_basic", "not_gsm", "cr", "joins")}
    for piece, index in pieces:
        length += piece.length[index]
        ext += piece.ext[index]
        astral += piece.astral[index]
        for name, acc in flags.items():
            acc |= getattr(piece, name)[index]
    return Profile(length, flags["not_basic"], flags["not_gsm"], ext, flags["cr"], astral, flags["joins"])


def _smart_counts(literal, fields, slot_values, profiles, codes, priced, segments, ucs2):
    """Segments of ``smart_encode(text)`` for each row, from the profiles of the replaced pieces.

    ``smart_encode`` replaces look-alikes character by character (``str.translate``), so the replaced
    message is the replaced literal plus each replaced value; only non-GSM characters are replaced, so a
    GSM-7 value stays as it is. It keeps the text when the replacement is not all GSM-7, or needs more
    segments; GSM-7 text is returned as it is.
    """
    from bulksend.segments import _SMART_TABLE, Profile, count_segments_many, profile

    def replaced_profile(values: list[str], p: Profile) -> Profile:
        changed = np.flatnonzero(p.not_gsm)
        if changed.size == 0:
            return p
        sub = profile([values[i].translate(_SMART_TABLE) for i in changed.tolist()])
        merged = Profile(*(field.copy() for field in p))
        for whole, part in zip(merged, sub):
            whole[changed] = part
        return merged

    replaced = _sum_profiles(profile([literal.translate(_SMART_TABLE)]),
                             [(replaced_profile(slot_values[k], profiles[k]), codes[column][priced])
                              for k, (column, _) in enumerate(fields)], ucs2.size)
    r_segments, r_ucs2, r_decided = count_segments_many(replaced)
    use = ucs2 & ~r_ucs2 & (r_segments <= segments)  # the replacement is GSM-7 and no longer
    smart_segments = np.where(use, r_segments, segments)
    smart_ucs2 = ucs2 & ~use
    decided = ~(ucs2 & ~r_ucs2) | r_decided  # only a replacement that smart_encode might use needs its count
    return smart_segments, smart_ucs2, decided
