"""Helpers shared by HTTP adapters: Retry-After in both forms, scrubbing secrets, the session's settings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from bulksend.providers.http_common import Scrubber, StaticAuth, make_session, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Sun, 01 Mar 2026 12:02:00 GMT", 120.0),
        ("Sunday, 01-Mar-26 12:02:00 GMT", 120.0),  # the obsolete RFC 850 form, which recipients must accept
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_scrubber_removes_secrets_basic_and_bearer_credentials_and_url_userinfo():
    scrub = Scrubber(["s3cr3t-token", None, "abc"])  # too-short values are ignored rather than mangling text
    text = (
        "token s3cr3t-token in Authorization: Basic QUMxMjM6czNjcjN0LXRva2Vu, "
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x, https://user:pw@proxy.example:8080/x, abc stays"
    )
    assert scrub(text) == (
        "token *** in Authorization: Basic ***, Bearer ***, https://***@proxy.example:8080/x, abc stays"
    )
    assert scrub(None) is None
    assert "s3cr3t" not in repr(scrub)


def test_static_auth_never_shows_its_credentials():
    auth = StaticAuth.basic("AC1", "s3cr3t-token")
    assert "s3cr3t" not in repr(auth) and "QUMx" not in repr(auth)
    assert auth.header_value == "Basic QUMxOnMzY3IzdC10b2tlbg=="


def test_sessions_pool_connections_and_never_retry():
    session = make_session(24)
    adapter = session.get_adapter("https://api.example.com")
    assert adapter._pool_maxsize == 24
    assert adapter.max_retries.total == 0 and adapter.max_retries.read is False
    assert session.headers["User-Agent"].startswith("bulksend/")
