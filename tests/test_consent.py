"""Consent values: the brief's lists, case and space insensitivity, timestamps, and nothing guessed."""

import numpy as np
import pytest

from bulksend.consent import Consent, classify, classify_many

POSITIVE = "yes y true t 1 x ✓ opt-in optin opted-in opted_in subscribed granted".split()
NEGATIVE = "no n false f 0 opt-out optout opted-out opted_out unsubscribed revoked".split()


@pytest.mark.parametrize("value", POSITIVE + [v.upper() for v in POSITIVE] + [f"  {v}\t" for v in POSITIVE])
def test_positive_values_give_consent(value):
    assert classify(value) is Consent.GIVEN


@pytest.mark.parametrize("value", NEGATIVE + [v.title() for v in NEGATIVE] + [f" {v} " for v in NEGATIVE])
def test_negative_values_refuse(value):
    assert classify(value) is Consent.REFUSED


@pytest.mark.parametrize("value", ["", " ", "\t", "   \t "])
def test_empty_is_empty(value):
    assert classify(value) is Consent.EMPTY


@pytest.mark.parametrize("value", ["Opted In", "opted  in", "OPT IN", "Opted Out", "opt out"])
def test_spaces_inside_read_as_a_separator(value):
    expected = Consent.REFUSED if "out" in value.lower() else Consent.GIVEN
    assert classify(value) is expected


@pytest.mark.parametrize(
    "value", ["2026-03-14", "2026-03-14T09:30:00", "2026-03-14T09:30:00Z", "2026-03-14 09:30", "2026-03-14T09:30:00+01:00"]
)
def test_iso_timestamps_are_consent(value):
    assert classify(value) is Consent.GIVEN


@pytest.mark.parametrize(
    "value", ["maybe", "ja", "oui", "2026-13-01", "2026-02-30", "14/03/2026", "1.0", "yes please", "-", "✗", "nein"]
)
def test_anything_else_is_unrecognized_never_guessed(value):
    assert classify(value) is Consent.UNRECOGNIZED


def test_classify_many_matches_classify_elementwise():
    values = ["yes", "no", "", "maybe", "2026-01-01", "YES", "no"]
    assert classify_many(values).tolist() == [int(classify(v)) for v in values]
    assert classify_many([]).dtype == np.int8
