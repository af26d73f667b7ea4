"""Consent values: the brief's lists, case and space insensitivity, timestamps, and nothing guessed."""

from datetime import datetime, timezone

import numpy as np
import pytest

from bulksend import consent
from bulksend.consent import BUILTIN_NEGATIVE, BUILTIN_POSITIVE, Consent, _key, classify, classify_many, consent_words
from bulksend.errors import ConfigError, ExitCode

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    """Every test here judges dates against the same moment, whatever the machine's clock says."""
    monkeypatch.setattr(consent, "utc_now", lambda: NOW)

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
    "value", ["maybe", "2026-13-01", "2026-02-30", "14/03/2026", "1.0", "yes please", "-", "✗", "ne", "da", "jein"]
)
def test_anything_else_is_unrecognized_never_guessed(value):
    assert classify(value) is Consent.UNRECOGNIZED


def test_classify_many_matches_classify_elementwise():
    values = ["yes", "no", "", "maybe", "2026-01-01", "YES", "no"]
    assert classify_many(values).tolist() == [int(classify(v)) for v in values]
    assert classify_many([]).dtype == np.int8


# --- item 6: consent values in the user's language ---------------------------------------------------------

EUROPEAN_POSITIVE = "oui ja sí si sim sì tak abonné abonniert suscrito iscritto".split()
EUROPEAN_NEGATIVE = (
    "non nein nee nej nei não nao nie désinscrit desinscrit désabonné abgemeldet abbestellt afgemeld uitgeschreven".split()
)


@pytest.mark.parametrize("value", EUROPEAN_POSITIVE + ["OUI", " Ja ", "SÍ", "Sim", "TAK"])
def test_european_positives_give_consent(value):
    assert classify(value) is Consent.GIVEN


@pytest.mark.parametrize("value", EUROPEAN_NEGATIVE + ["NON", " Nein ", "NÃO", "Nie", "Désinscrit"])
def test_european_negatives_refuse(value):
    assert classify(value) is Consent.REFUSED


def test_no_builtin_word_is_both_positive_and_negative():
    """The rule of the list: a word that says yes in one language and no in another is not in it."""
    assert {_key(w) for w in BUILTIN_POSITIVE} & {_key(w) for w in BUILTIN_NEGATIVE} == set()


def test_user_words_add_to_the_builtins():
    words = consent_words(["ok", "Double Opt-In"], ["stop", "abgelehnt"], now=NOW)
    assert [words.classify(v) for v in ["OK", "double opt in", "yes", "oui"]] == [Consent.GIVEN] * 4
    assert [words.classify(v) for v in ["STOP", "Abgelehnt", "no", "nein"]] == [Consent.REFUSED] * 4
    assert words.classify("maybe") is Consent.UNRECOGNIZED  # still never guessed


@pytest.mark.parametrize(
    "positive, negative, word",
    [(["ok"], ["OK "], "ok"), (["no"], [], "no"), ([], ["oui"], "oui"), (["Opted Out"], [], "Opted Out")],
)
def test_a_word_in_both_lists_is_a_configuration_error(positive, negative, word):
    with pytest.raises(ConfigError) as raised:
        consent_words(positive, negative, now=NOW, where="config.toml [consent]")
    assert raised.value.exit_code == ExitCode.CONFIG
    assert str(raised.value).startswith(f"config.toml [consent]: {word!r} is both a positive and a negative")


@pytest.mark.parametrize(
    "value",
    ["2026-06-17", "2026-06-16T02:00:01", "2026-06-15T12:00:01Z", "2026-06-15T13:00:01+01:00", "2027-01-01", "20260617"],
)
def test_a_consent_date_in_the_future_is_not_consent(value):
    assert classify(value) is Consent.FUTURE


@pytest.mark.parametrize(
    "value",
    # Today, and local times up to now in the zone furthest ahead (UTC+14): no time zone makes them "future".
    ["2026-06-15", "2026-06-16", "2026-06-16T01:59:59", "2026-06-15T12:00:00Z", "2026-06-15T13:00:00+01:00", "2020-01-01"],
)
def test_a_consent_date_up_to_now_anywhere_is_consent(value):
    assert classify(value) is Consent.GIVEN


def test_the_clock_is_read_once_per_run_not_per_row(monkeypatch):
    reads = []
    monkeypatch.setattr(consent, "utc_now", lambda: reads.append(1) or NOW)
    words = consent_words()
    values = [f"2026-01-{d:02d}" for d in range(1, 29)] * 100 + ["2026-07-01"]
    result = words.classify_many(values)
    assert len(reads) == 1
    assert result.tolist() == [Consent.GIVEN] * 2800 + [Consent.FUTURE]
