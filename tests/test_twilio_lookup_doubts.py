"""Twilio reconciliation never guesses "not sent": a listed message that lacks what the match needs is a doubt."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from test_provider_contract import sample_delivery
from test_providers_twilio import api, fake_api_module, listed, page, serve_pages, twilio  # noqa: F401

from bulksend.providers.base import LookupResult

SENT_AFTER = datetime.now(timezone.utc) - timedelta(hours=1)


def without(field: str, **fields) -> dict:
    message = listed(**fields)
    del message[field]
    return message


@pytest.mark.parametrize(
    "message",
    [
        without("direction"),
        listed(direction=None),
        without("to"),
        listed(to=""),
        without("body"),
        listed(body=None),
        without("date_created"),
        listed(date_created="yesterday-ish"),
        without("sid"),
        listed(sid=None),
        "not a message",
    ],
    ids=[
        "no_direction", "null_direction", "no_to", "empty_to", "no_body", "null_body",
        "no_date_created", "unreadable_date_created", "no_sid", "null_sid", "not_an_object",
    ],
)
def test_a_listed_message_lacking_a_field_the_match_needs_cannot_tell(api, twilio, message):  # noqa: F811
    serve_pages(api, lambda query: page([message]))
    assert twilio().lookup(sample_delivery(), SENT_AFTER) == (LookupResult.CANNOT_TELL, None)


def test_a_doubt_does_not_hide_a_certain_match(api, twilio):  # noqa: F811
    ours = listed(sid="SM" + "7" * 32)
    serve_pages(api, lambda query: page([without("direction"), ours]))
    assert twilio().lookup(sample_delivery(), SENT_AFTER) == (LookupResult.FOUND, "SM" + "7" * 32)


@pytest.mark.parametrize(
    "message",
    [
        without("direction", body="Another campaign"),
        without("body", direction="inbound"),
        without("to", date_created=format_datetime(datetime.now(timezone.utc) - timedelta(days=2))),
    ],
    ids=["other_body", "inbound", "older"],
)
def test_a_message_that_is_certainly_another_one_despite_a_missing_field_is_not_found(
    api, twilio, message  # noqa: F811
):
    serve_pages(api, lambda query: page([message]))
    assert twilio().lookup(sample_delivery(), SENT_AFTER) == (LookupResult.NOT_FOUND, None)


def test_a_doubt_on_the_filtered_page_is_not_forgotten_by_the_unfiltered_one(api, twilio):  # noqa: F811
    serve_pages(api, lambda query: page([without("direction")] if "DateSent>" in query else []))
    assert twilio().lookup(sample_delivery(), SENT_AFTER) == (LookupResult.CANNOT_TELL, None)


def test_a_next_page_uri_that_is_not_text_cannot_tell(api, twilio):  # noqa: F811
    serve_pages(api, lambda query: {**page([]), "next_page_uri": 42})
    assert twilio().lookup(sample_delivery(), SENT_AFTER) == (LookupResult.CANNOT_TELL, None)
