"""Pass one's message work per distinct value (bulksend/rendering.py) against the exact row-by-row path.

Differential tests on generated lists: every outcome code, segment count, encoding, smart-encoding count
and content finding must be the one the reference (:func:`render_rows_exact`, each row rendered and
checked on its own) gives. The inputs are built to reach every branch: empty and defaulted fields,
listed words and their evasions, phrases across fields, glued fields, extension characters, CR LF, emoji,
combining marks, look-alikes smart encoding replaces, long and very long values.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bulksend.content import Lexicon, TemplateCheck, builtin_entries
from bulksend.rendering import render_rows, render_rows_exact
from bulksend.segments import (
    _SMART_REPLACEMENTS,
    GSM7_BASIC,
    GSM7_EXTENSION,
    count_segments,
    count_segments_many,
    profile,
    smart_encode,
)
from bulksend.templates import Template

TEMPLATES = [
    "Hi {first_name|there}, use {code} for 15% off this weekend. Reply STOP to opt out.",
    "{first_name}{code}",  # glued: a word may be made of the two values
    "Dear {first_name|}, your {town} store: code{code}. {first_name} {town} {code}",
    "Hello {first_name}! \u2019Sale\u2019 \u2014 {code} \u2026 {town|here}",  # smart encoding's look-alikes
    "Caf\u00e9 {town}: {code} \u20ac5 [offer] {first_name|friend}\r\nReply STOP",  # extension chars, CR LF
    "Plain message, no fields at all. Reply STOP to opt out.",
    "x" * 150 + " {code}",  # around the 160 septet boundary
    "\u041f\u0440\u0438\u0432\u0435\u0442 {first_name}, {code} " + "\u0436" * 50,  # Cyrillic: UCS-2, multi-part
    "{code} stolen {town} cards {first_name|}",  # a phrase across fields
]

WORDS = [w for _, w in builtin_entries()]


def _value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.08:
        return rng.choice(["", " ", "  \t"])
    if kind < 0.25:
        return "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=rng.randint(4, 10)))
    if kind < 0.32:
        return rng.choice(["4711", "47711", "0"]) if rng.random() < 0.2 else str(rng.randint(0, 10**rng.randint(1, 9)))
    if kind < 0.45:
        word = rng.choice(WORDS)
        shape = rng.random()
        if shape < 0.2:
            word = word.upper()
        elif shape < 0.35:
            word = word.replace("o", "0").replace("i", "1").replace("e", "3").replace("s", "$")
        elif shape < 0.45:
            word = ".".join(word)
        elif shape < 0.55:
            word = word + "s"
        elif shape < 0.65:
            word = word[:2] + word[2] * 3 + word[3:]
        elif shape < 0.75:
            word = f"{rng.choice(['x', 'SAVE', '9'])}{word}"
        return word
    if kind < 0.6:
        return rng.choice(["Olivia", "Zo\u00eb", "Siobh\u00e1n", "Jos\u00e9", "\u0141ukasz", "Chlo\u00e9", "  Mia ",
                           "stolen", "credit", "cards", "Scunthorpe", "assistant", "classic", "Leon"])
    if kind < 0.75:
        pool = "abcXYZ09 .-*+_!@$\u20ac[]{}~|^\\\r\n\u2019\u201c\u2014\u2026\u00a0\u00e9\u00ebe\u0301\U0001F600\u0416\t"
        return "".join(rng.choices(pool, k=rng.randint(1, 12)))
    if kind < 0.85:
        return rng.choice(["x", "\u20ac", "\u2019", "\u00e9", "\U0001F600", "\u0416", "a\r\nb"]) * rng.randint(20, 200)
    return rng.choice(["London", "Paris", "M\u00fcnchen", "Sevilla", "Krak\u00f3w", "Bristol"])


def _cells(rng: random.Random, rows: int) -> list[list[str]]:
    columns = [[_value(rng) for _ in range(rows)] for _ in range(3)]
    for col in columns:  # values repeat in real lists
        for i in range(rows):
            if rng.random() < 0.3 and i:
                col[i] = col[rng.randrange(i)]
    return columns


def _compare(template: str, cells, status, *, sms, limit, smart, lexicon) -> None:
    bound = Template.parse(template).bind(["first_name", "town", "code"])
    order = [["first_name", "town", "code"].index(c) for c in bound.columns]
    cells = [cells[i] for i in order]
    fast_findings: list = []
    exact_findings: list = []
    fast = render_rows(bound, cells, status, sms=sms, limit=limit, smart=smart,
                       content=TemplateCheck(lexicon, bound) if lexicon else None, findings=fast_findings)
    exact = render_rows_exact(bound, cells, status, sms=sms, limit=limit, smart=smart,
                              content=TemplateCheck(lexicon, bound) if lexicon else None, findings=exact_findings)
    for name, a, b in zip(("msg", "units", "enc", "alt"), fast, exact):
        diff = np.flatnonzero(a != b)
        assert diff.size == 0, (name, template, [(cells_at(cells, i), a[i], b[i]) for i in diff[:5]])
    assert fast_findings == exact_findings


def cells_at(cells, i):
    return [col[i] for col in cells]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("template", TEMPLATES)
def test_fast_path_agrees_with_the_exact_one(template, seed) -> None:
    rng = random.Random(seed)
    rows = 400
    cells = _cells(rng, rows)
    status = np.where(np.array([rng.random() < 0.1 for _ in range(rows)]), 1, 0).astype(np.int8)
    lexicon = Lexicon.load(deny=["SAVE42", "zorg", "4711"]) if seed % 3 else None
    for sms, smart, limit in ((True, False, 10), (True, True, 2), (True, False, 1), (False, False, 10)):
        _compare(template, cells, status, sms=sms, limit=limit, smart=smart, lexicon=lexicon)


def test_a_finding_in_the_template_blocks_every_row_with_its_fields() -> None:
    rng = random.Random(1)
    cells = _cells(rng, 200)
    status = np.zeros(200, dtype=np.int8)
    _compare("Buy cocaine, {first_name}: {code}", cells, status, sms=True, limit=10, smart=False,
             lexicon=Lexicon.load())


def test_no_live_rows() -> None:
    cells = _cells(random.Random(2), 20)
    _compare(TEMPLATES[0], cells, np.ones(20, dtype=np.int8), sms=True, limit=10, smart=False, lexicon=Lexicon.load())


# --- the pieces -----------------------------------------------------------------------------------------------


def _texts(rng: random.Random, count: int) -> list[str]:
    texts = []
    alphabet = list(GSM7_BASIC) + list(GSM7_EXTENSION) + list(_SMART_REPLACEMENTS)[:40] + [
        "\r\n", "\r", "\U0001F600", "\U0001F1EC\U0001F1E7", "e\u0301", "\u200d", "\u0416", "\u1100\u1161"]
    for _ in range(count):
        size = rng.choice([0, 1, 5, 60, 69, 70, 71, 140, 153, 159, 160, 161, 200, 306, 307, 400])
        weights = rng.choice(["gsm", "ext", "any"])
        if weights == "gsm":
            text = "".join(rng.choices(sorted(GSM7_BASIC), k=size))
        elif weights == "ext":
            text = "".join(rng.choices(sorted(GSM7_BASIC) * 5 + list(GSM7_EXTENSION) + ["\r\n"], k=size))
        else:
            text = "".join(rng.choices(alphabet, k=size))
        texts.append(text)
    return texts


def test_segments_from_profiles_agree_with_count_segments_where_decided() -> None:
    texts = _texts(random.Random(3), 3000)
    segments, ucs2, decided = count_segments_many(profile(texts))
    assert decided.sum() > 1200  # most texts are decided without their cut points
    for i, text in enumerate(texts):
        exact = count_segments(text)
        if decided[i]:
            assert (int(segments[i]), bool(ucs2[i])) == (exact.segments, exact.encoding == "UCS-2"), repr(text)
        else:
            assert bool(ucs2[i]) == (exact.encoding == "UCS-2"), repr(text)


def test_profiles_add_up_over_concatenation() -> None:
    rng = random.Random(4)
    pieces = _texts(rng, 400)
    pairs = [(rng.choice(pieces), rng.choice(pieces)) for _ in range(400)]
    whole = profile([a + b for a, b in pairs])
    left, right = profile([a for a, _ in pairs]), profile([b for _, b in pairs])
    for name in ("length", "ext", "astral"):
        assert (getattr(whole, name) == getattr(left, name) + getattr(right, name)).all(), name
    for name in ("not_basic", "not_gsm", "cr", "joins"):
        assert (getattr(whole, name) == (getattr(left, name) | getattr(right, name))).all(), name


def test_smart_encoding_replaces_only_characters_outside_gsm() -> None:
    # rendering.py replaces value by value, and leaves GSM-7 values alone: both rest on this.
    assert not set(_SMART_REPLACEMENTS) & (GSM7_BASIC | GSM7_EXTENSION)
    assert smart_encode("caf\u00e9 \u2019x\u2019") == "caf\u00e9 'x'"


def test_words_proven_clear_are_words_the_full_check_finds_nothing_in() -> None:
    lexicon = Lexicon.load(deny=["zorg", "12345", "big deal"])
    rng = random.Random(5)
    listed = ["zorg", "ZORGS", "z0rg", "12345", "deal", "big", "c0caine", "COCAAINE", "Cocaines", "kys", "5h1t"]
    mixed = [_value(rng) for _ in range(4000)] + listed + ["123455", "SAVE10"]
    plain = ["".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=rng.randint(1, 9))) for _ in range(4000)]
    for values in (mixed, plain, plain + listed, ["", "x"], []):
        unclear = set(lexicon.unclear_words(values))
        assert len(unclear) < len(values) or not values or values == ["", "x"] and unclear == {0}
        for i, value in enumerate(values):
            if i not in unclear:
                assert lexicon.scan(value) == [] and not lexicon.in_phrases(value), value
        for word in listed:
            if word in values:
                assert values.index(word) in unclear, word


# --- the dry-run file ------------------------------------------------------------------------------------------


def test_dry_run_lines_are_what_json_dumps_writes(cli, home, tmp_path) -> None:
    """campaign.dry_run writes its lines without json.dumps per row: the same bytes, quotes, escapes and all."""
    import json

    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    names = ['Ann "the \\\\ one"', "Zo\u00eb \u2019x\u2019", "tab\there", "\u00e9\U0001F600", "bell\x07", "R"]
    csv = tmp_path / "quoted.csv"
    with csv.open("w", encoding="utf-8", newline="") as out:
        import csv as csvmod

        writer = csvmod.writer(out)
        writer.writerow(["name", "phone", "consent"])
        for i, name in enumerate(names):
            writer.writerow([name, f"+447400{i:06d}", "yes"])
    campaign = tmp_path / "quoted.toml"
    sid = "HX" + "0" * 32
    campaign.write_text(
        'name = "q \\"uoted\\" \u00e9"\nrecipients = "quoted.csv"\nmessage = "Hi {name} \\\\o/ Reply STOP"\n'
        'provider = "outbox"\nregion = "GB"\nquiet_hours = "00:00-23:59"\n'
        f'content_sid = "{sid}"\ncontent_variables = ["name"]\n'
    )
    result = cli("send", campaign, "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = next((home / "outbox").glob("*.dry-run.jsonl")).read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(names)
    for line in lines:
        assert line == json.dumps(json.loads(line), ensure_ascii=False)
    assert [json.loads(line)["params"]["variables"]["1"] for line in lines] == [n.strip() for n in names]
