"""Template syntax, binding merge fields to CSV columns, and rendering rows."""

from __future__ import annotations

import pytest

from bulksend.errors import ExitCode, InputError
from bulksend.templates import Template

HEADERS = ["phone", "First Name", " city ", "consent"]


def render(text: str, values: dict[str, str], headers=HEADERS):
    bound = Template.parse(text).bind(headers)
    return bound.render([values[c] for c in bound.columns])


# --- syntax ---------------------------------------------------------------------------------------


def test_plain_text_has_no_fields_and_renders_as_is():
    template = Template.parse("Spring sale today")
    assert template.fields == ()
    bound = template.bind(HEADERS)
    assert bound.columns == ()
    assert bound.render([]) == ("Spring sale today", None)


def test_field_inserts_the_stripped_value():
    assert render("Hi {First Name}!", {"First Name": "  Ann \t"}) == ("Hi Ann!", None)


def test_field_with_default_uses_it_when_value_is_empty():
    assert render("Hi {First Name|there}!", {"First Name": "   "}) == ("Hi there!", None)
    assert render("Hi {First Name|there}!", {"First Name": "Bo"}) == ("Hi Bo!", None)


def test_default_is_kept_exactly_as_written():
    assert render("Hi{First Name| friend}!", {"First Name": ""}) == ("Hi friend!", None)


def test_default_may_contain_a_bar():
    assert render("{city|a|b}", {" city ": ""}) == ("a|b", None)


def test_field_with_empty_default_allows_empty():
    assert render("Hi {First Name|}!", {"First Name": ""}) == ("Hi !", None)


def test_empty_required_field_names_the_field_as_written():
    assert render("Hi {first name}, see you in {CITY}", {"First Name": "Ann", " city ": " "}) == (
        None,
        "CITY",
    )


def test_first_empty_required_field_is_reported():
    assert render("{city} {First Name}", {"First Name": "", " city ": ""}) == (None, "city")


def test_literal_braces():
    assert render("{{code}} is {First Name}}}", {"First Name": "X"}) == ("{code} is X}", None)
    assert Template.parse("{{{First Name}}}").fields == ("First Name",)
    assert render("{{{First Name}}}", {"First Name": "Y"}) == ("{Y}", None)


def test_values_with_braces_are_inserted_verbatim():
    assert render("Hi {First Name}", {"First Name": "{0} {city}"}) == ("Hi {0} {city}", None)


def test_fields_are_distinct_names_in_first_use_order():
    template = Template.parse("{b} {a} {b} {B} { a }")
    assert template.fields == ("b", "a", "B")


def test_same_column_used_twice_is_one_column():
    bound = Template.parse("{city} and {CITY|x} and {First Name}").bind(HEADERS)
    assert bound.columns == (" city ", "First Name")
    assert bound.render(["Oslo", "Ann"]) == ("Oslo and Oslo and Ann", None)
    assert bound.render(["", "Ann"]) == (None, "city")


def test_multiline_message():
    assert render("Hi {First Name}\nBye {city|}", {"First Name": "A", " city ": ""}) == ("Hi A\nBye ", None)


# --- binding --------------------------------------------------------------------------------------


def test_binding_ignores_case_and_surrounding_spaces():
    bound = Template.parse("{ first name } from {CITY}").bind(HEADERS)
    assert bound.columns == ("First Name", " city ")


def test_unknown_field_message():
    with pytest.raises(InputError) as caught:
        Template.parse("Hi {frist name}", origin="spring.txt").bind(HEADERS)
    error = caught.value
    assert error.exit_code == ExitCode.USAGE
    assert error.message == (
        "Unknown merge field {frist name} in spring.txt: the CSV has no such column. "
        "Its columns are: phone, First Name, city, consent."
    )
    assert error.hint == (
        "Did you mean {First Name}? Fields match column names ignoring case and surrounding spaces."
    )


def test_unknown_field_without_a_close_match():
    with pytest.raises(InputError) as caught:
        Template.parse("Your code {voucher}").bind(HEADERS)
    assert caught.value.message == (
        "Unknown merge field {voucher} in --message: the CSV has no such column. "
        "Its columns are: phone, First Name, city, consent."
    )
    assert caught.value.hint == "Use one of the CSV's column names; case and surrounding spaces are ignored."


def test_unknown_field_lists_at_most_30_columns():
    headers = [f"col{i}" for i in range(35)]
    with pytest.raises(InputError) as caught:
        Template.parse("{nope}").bind(headers)
    assert caught.value.message.endswith("col28, col29 and 5 more.")


def test_field_matching_two_columns_is_ambiguous():
    with pytest.raises(InputError) as caught:
        Template.parse("{name}").bind(["Name", "NAME ", "phone"])
    assert caught.value.message == (
        'Merge field {name} in --message matches 2 columns of the CSV: "Name", "NAME ".'
    )


def test_a_default_does_not_excuse_an_unknown_column():
    with pytest.raises(InputError, match=r"Unknown merge field \{nickname\}"):
        Template.parse("Hi {nickname|there}").bind(HEADERS)


# --- malformed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {name", 'Unclosed "{" at line 1, column 4 of --message.'),
        ("Hi {na{me}", 'Unclosed "{" at line 1, column 4 of --message.'),
        ("Hello\nHi {name\n}", 'Unclosed "{" at line 2, column 4 of --message.'),
        ("Hi name}", 'Unmatched "}" at line 1, column 8 of --message.'),
        ("a\nbb\n}}} x", 'Unmatched "}" at line 3, column 3 of --message.'),
        ("Hi {}", "Merge field with no column name at line 1, column 4 of --message."),
        ("Hi { |x}", "Merge field with no column name at line 1, column 4 of --message."),
    ],
)
def test_malformed_braces_say_where(text, message):
    with pytest.raises(InputError) as caught:
        Template.parse(text)
    assert caught.value.message == message
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_empty_message_is_an_error(text):
    with pytest.raises(InputError) as caught:
        Template.parse(text, origin="spring.txt")
    assert caught.value.message == "The message in spring.txt is empty."


def test_template_keeps_source_and_origin():
    template = Template.parse("Hi {a}", origin="spring.txt")
    assert (template.source, template.origin) == ("Hi {a}", "spring.txt")
