"""Benchmark NumberChecker.check against plain phonenumbers on a realistic mix of 200k phone values.

Run: .venv/bin/python bench/phones_bench.py [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bulksend import phones  # noqa: E402
from bulksend.phones import NumberChecker  # noqa: E402

# Where a campaign's recipients tend to be: weights roughly follow SMS marketing volume.
REGIONS = {
    "GB": 20, "US": 20, "DE": 10, "FR": 10, "IN": 8, "BR": 6, "ES": 5, "IT": 5, "NL": 4, "AU": 4, "CA": 4, "MX": 4,
}  # fmt: skip
GARBAGE = ["n/a", "unknown", "-", "12", "call office", "4.47400123456E+11", "7.401234567E+9", "0", "tbc", "none"]
SMS_OK = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
}


def reference(raw: str, region: str | None) -> tuple[str | None, str | None, str | None]:
    """The slow, obviously right verdict: parse + is_valid_number + number_type + format_number."""
    value = raw.strip()
    if not value:
        return None, None, "invalid_number"
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException:
        return None, None, "invalid_number"
    if not phonenumbers.is_valid_number(number):
        return None, None, "invalid_number"
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    region_code = phonenumbers.region_code_for_number(number)
    return e164, region_code, None if phonenumbers.number_type(number) in SMS_OK else "not_mobile"


def naive(raw: str, region: str | None) -> str | None:
    """The baseline the throughput target is set against: parse + is_valid_number + format_number."""
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _random_like(example: phonenumbers.PhoneNumber, rng: random.Random, keep: int) -> phonenumbers.PhoneNumber:
    """The example number with its tail redrawn: mostly valid, like real numbers of the same range."""
    nsn = phonenumbers.national_significant_number(example)
    tail = "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
    return phonenumbers.parse("+" + str(example.country_code) + nsn[:keep] + tail, None)


def generate(rows: int, seed: int) -> list[tuple[str, str | None]]:
    """(raw value, row region) pairs in the shapes recipient files contain."""
    rng = random.Random(seed)
    regions = list(REGIONS)
    weights = list(REGIONS.values())
    mobiles = {r: phonenumbers.example_number_for_type(r, PhoneNumberType.MOBILE) for r in regions}
    fixed = {r: phonenumbers.example_number_for_type(r, PhoneNumberType.FIXED_LINE) for r in regions}
    values: list[tuple[str, str | None]] = []
    for _ in range(rows):
        region = rng.choices(regions, weights)[0]
        roll = rng.random()
        if roll < 0.03:
            values.append((rng.choice(GARBAGE), region))
            continue
        if roll < 0.05:
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 13)))
            values.append((digits, region))
            continue
        example = fixed[region] if roll < 0.12 else mobiles[region]
        number = _random_like(example, rng, keep=min(4, len(str(example.national_number)) - 4))
        shape = rng.random()
        if shape < 0.25:
            raw = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        elif shape < 0.40:
            raw = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        elif shape < 0.80:
            raw = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        elif shape < 0.88:
            raw = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL).replace(" ", rng.choice("-./"))
        elif shape < 0.94:
            raw = "00" + phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)[1:]
        else:
            # A "+" lost on the way through a spreadsheet.
            raw = phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
        if rng.random() < 0.02:
            raw = " " + raw + " "
        values.append((raw, region))
    return values


def per_number(function, values: list[tuple[str, str | None]]) -> tuple[float, list]:
    started = time.perf_counter()
    results = [function(raw, region) for raw, region in values]
    return (time.perf_counter() - started) / len(values) * 1e6, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    values = generate(args.rows, args.seed)
    checker = NumberChecker()
    checker.check("+447400123456", None)  # compile GB's metadata outside the timed loop, as a long run would

    naive_us, _ = per_number(naive, values)
    reference_us, expected = per_number(reference, values)
    checker_us, checks = per_number(checker.check, values)

    slow_calls = 0
    parse_slow = phones._parse_slow

    def counting(value, region):
        nonlocal slow_calls
        slow_calls += 1
        return parse_slow(value, region)

    phones._parse_slow = counting
    try:
        for raw, region in values:
            checker.check(raw, region)
    finally:
        phones._parse_slow = parse_slow

    # The column path, as pass one calls it: chunks of 100,000 cells, each cell with its row's region.
    names = sorted({region for _, region in values}, key=lambda r: r or "")
    index = {region: i for i, region in enumerate(names)}
    codes = np.array([index[region] for _, region in values])
    raws = [raw for raw, _ in values]
    started = time.perf_counter()
    chunks = range(0, len(raws), 100_000)
    column = [checker.check_many(raws[i : i + 100_000], codes[i : i + 100_000], names) for i in chunks]
    column_us = (time.perf_counter() - started) / len(values) * 1e6
    started = time.perf_counter()
    for i in chunks:
        checker.check_many(raws[i : i + 100_000], codes[i : i + 100_000], names)
    column_warm_us = (time.perf_counter() - started) / len(values) * 1e6
    labels = {0: None, 1: "invalid_number", 2: "not_mobile"}
    column_verdicts = [
        (f"+{int(part.e164[j])}" if part.e164[j] else None,
         part.regions[part.region[j]] if part.region[j] >= 0 else None,
         labels[int(part.status[j])])
        for part in column for j in range(len(part.status))
    ]
    column_mismatches = sum(1 for want, got in zip(expected, column_verdicts) if want != got)

    mismatches = sum(1 for want, got in zip(expected, checks) if want != tuple(got[:3]))
    accepted = sum(1 for check in checks if check.reason is None)
    print(f"rows: {len(values)}  accepted: {accepted}  rejected: {len(values) - accepted}")
    print(f"naive parse+is_valid+format:              {naive_us:6.2f} µs/number")
    print(f"reference parse+is_valid+type+format:     {reference_us:6.2f} µs/number")
    print(f"NumberChecker.check:                      {checker_us:6.2f} µs/number")
    print(f"speed-up vs reference: {reference_us / checker_us:.1f}x, vs naive: {naive_us / checker_us:.1f}x")
    print(f"NumberChecker.check_many (a column):      {column_us:6.2f} µs/number, tables built on the way")
    print(f"NumberChecker.check_many, tables built:   {column_warm_us:6.2f} µs/number "
          f"({reference_us / column_warm_us:.0f}x the reference, {naive_us / column_warm_us:.0f}x the naive)")
    print(f"check_many disagreements with the reference: {column_mismatches}")
    print(f"slow path (phonenumbers.parse): {slow_calls} of {len(values)} ({slow_calls / len(values):.1%})")
    print(f"disagreements with the reference: {mismatches}")
    if mismatches or column_mismatches:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
