"""The content lexicon: what must be found (every category, every language, the usual evasions), and what never is."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bulksend.content import CATEGORIES, LANGUAGES, Finding, Lexicon, TemplateCheck, builtin_entries, lexicon_from_config
from bulksend.errors import ConfigError
from bulksend.templates import Template

CORPUS = Path(__file__).parent / "data" / "marketing_corpus.txt"

# (language, category, text, the lexicon word expected): each written the way people evade filters.
MUST_FIND = [
    ("en", "profanity", "You F U C K I N G idiots", "fucking"),
    ("en", "profanity", "what a $h1t deal", "shit"),
    ("en", "profanity", "a$$hole", "asshole"),
    ("en", "profanity", "IDIOTS!!!", "idiot"),
    ("en", "hate", "heil Hitler", "heil hitler"),
    ("en", "hate", "f4gg0t", "faggot"),
    ("en", "violence", "I will kill you tomorrow", "i will kill you"),
    ("en", "violence", "k.y.s", "kys"),
    ("en", "sexual", "free p0rn here", "porn"),
    ("en", "sexual", "send nuuuudes", "nudes"),
    ("en", "illegal", "Buy cocaine and stolen credit cards now", "cocaine"),
    ("en", "illegal", "Buy cocaine and stolen credit cards now", "stolen credit cards"),
    ("en", "illegal", "c0c@ine", "cocaine"),
    ("en", "illegal", "cocaaaaine", "cocaine"),
    ("en", "illegal", "c.o.c.a.i.n.e", "cocaine"),
    ("en", "illegal", "c o c a i n e", "cocaine"),
    ("en", "illegal", "C-O-C-A-I-N-E", "cocaine"),
    ("en", "illegal", "FENTANYL", "fentanyl"),
    ("es", "profanity", "hijo de puta", "hijo de puta"),
    ("es", "profanity", "Gilipollas", "gilipollas"),
    ("es", "profanity", "IMBÉCIL", "imbecil"),
    ("es", "hate", "maricón", "maricon"),
    ("es", "violence", "te voy a matar", "te voy a matar"),
    ("es", "sexual", "porno gratis", "porno"),
    ("es", "illegal", "COCAÍNA barata", "cocaina"),
    ("es", "illegal", "tarjetas robadas", "tarjetas robadas"),
    ("fr", "profanity", "Putain de merde", "putain"),
    ("fr", "profanity", "bande d'enculés", "encule"),
    ("fr", "hate", "sale juif", "sale juif"),
    ("fr", "violence", "Je vais te tuer", "je vais te tuer"),
    ("fr", "sexual", "plan cul ce soir", "plan cul"),
    ("fr", "illegal", "cocaïne", "cocaine"),
    ("fr", "illegal", "faux billets", "faux billets"),
    ("de", "profanity", "Scheiße", "scheisse"),
    ("de", "profanity", "Arschl0ch", "arschloch"),
    ("de", "hate", "Sieg Heil", "sieg heil"),
    ("de", "violence", "Ich bringe dich um", "ich bringe dich um"),
    ("de", "sexual", "geile Titten", "titten"),
    ("de", "illegal", "Kokain", "kokain"),
    ("de", "illegal", "gestohlene Kreditkarten", "gestohlene kreditkarten"),
    ("pt", "profanity", "caralho", "caralho"),
    ("pt", "profanity", "foda-se", "foda se"),
    ("pt", "hate", "viado", "viado"),
    ("pt", "violence", "vou te matar", "vou te matar"),
    ("pt", "sexual", "buceta", "buceta"),
    ("pt", "illegal", "cartões clonados", "cartoes clonados"),
    ("pt", "illegal", "cocaína", "cocaina"),
]

# Ordinary words that contain, resemble or share letters with a listed word: none may match.
NEVER = [
    "Scunthorpe", "assistant", "classic", "cocktail", "cocktails", "assess", "passion", "bass", "glass",
    "Essex", "Sussex", "Middlesex", "therapist", "analysis", "skills", "shiitake", "cockpit", "Hancock",
    "Dickinson", "Penistone", "grape", "as", "kill", "killer deals", "bath bomb", "photo shoot", "Ass",
    "en retard", "pneu crevé", "cono", "con leche", "negro", "pede", "heroína", "Mist", "geile Preise",
    "50% off", "0800 123 456", "Hello!", "U.S.A.", "I a m here", "sex", "Kokoschka",
]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.load()


@pytest.mark.parametrize(("language", "category", "text", "word"), MUST_FIND)
def test_every_category_in_every_language_is_found_through_the_usual_evasions(lexicon, language, category, text, word):
    assert Finding(category, word) in lexicon.check(text)


def test_the_table_covers_every_category_in_every_language():
    assert {(lang, cat) for lang, cat, _, _ in MUST_FIND} == {(lang, cat) for lang in LANGUAGES for cat in CATEGORIES}


@pytest.mark.parametrize("text", NEVER)
def test_words_that_contain_or_resemble_a_listed_word_are_not_findings(lexicon, text):
    assert lexicon.check(text) == []


def corpus() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_marketing_corpus_is_large_and_in_seven_languages():
    texts = corpus()
    assert len(texts) >= 300
    assert len(set(texts)) == len(texts)


def test_no_ordinary_marketing_text_has_a_finding(lexicon):
    found = {text: lexicon.check(text) for text in corpus()}
    assert {text: f for text, f in found.items() if f} == {}


def test_every_built_in_entry_finds_itself(lexicon):
    """A data-file entry that its own normalization cannot match would be dead weight (or a typo)."""
    for category, word in builtin_entries():
        assert Finding(category, word) in lexicon.check(word), word


def test_deny_adds_words_and_allow_overrides_the_built_in_one():
    lexicon = lexicon_from_config({"deny": ["acme rival", "frobnicate"], "allow": ["idiot"]})
    assert lexicon.check("Ditch ACME Rival today") == [Finding("deny", "acme rival")]
    assert lexicon.check("fr0bnicaaate") == [Finding("deny", "frobnicate")]
    assert lexicon.check("you idiot") == []
    assert lexicon.check("you moron") == [Finding("profanity", "moron")]


def test_a_word_both_denied_and_allowed_is_a_configuration_error():
    with pytest.raises(ConfigError, match="'idiot' is in both deny and allow"):
        lexicon_from_config({"deny": ["Idiot"], "allow": ["idiot"]})


def test_allowed_categories_are_not_reported():
    lexicon = Lexicon.load(allowed_categories=["illegal"])
    assert lexicon.check("cocaine, you idiot") == [Finding("profanity", "idiot")]


def test_a_merge_field_can_bring_a_word_the_template_lacks(lexicon):
    bound = Template.parse("Hi {name}, your code is {code}. Buy stolen {thing|shoes}").bind(["name", "code", "thing"])
    check = TemplateCheck(lexicon, bound)
    assert check.template_findings == []
    assert check.row(["Ann", "A1", "shoes"]) is None
    assert check.row(["Ann", "c0caine", "shoes"]) == Finding("illegal", "cocaine")
    # A phrase across the field's edge: the template's "stolen" and the value "credit cards".
    assert check.row(["Ann", "A1", "credit cards"]) == Finding("illegal", "stolen credit cards")
    assert check.row(["Ann", "A1", " "]) is None  # the default, "stolen shoes"


def test_a_finding_in_the_template_itself_or_its_defaults_is_found_once(lexicon):
    bound = Template.parse("Hi {name}, you idiot").bind(["name"])
    assert TemplateCheck(lexicon, bound).template_findings == [Finding("profanity", "idiot")]
    bound = Template.parse("Buy stolen {thing|cards}").bind(["thing"])
    assert TemplateCheck(lexicon, bound).template_findings == [Finding("illegal", "stolen cards")]


def test_the_check_travels_to_a_worker_process_and_judges_the_same(lexicon):
    bound = Template.parse("Hi {name}").bind(["name"])
    check = pickle.loads(pickle.dumps(TemplateCheck(lexicon, bound)))
    assert check.row(["sh!t"]) == Finding("profanity", "shit")
    assert len(pickle.dumps(lexicon)) < 300  # the settings travel, not the tables
