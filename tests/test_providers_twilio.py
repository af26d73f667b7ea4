"""The Twilio adapter beyond the contract: the exact request, reconciliation by lookup, the balance check."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from test_provider_contract import (
    ACCOUNT_SID,
    CANARY,
    MESSAGE_SID,
    assert_no_secret,
    base_url_of,
    closed_port,
    fake_api_server,
    sample_delivery,
    twilio_error,
    twilio_message,
)
from werkzeug import Request, Response

from bulksend.errors import BulksendError, ConfigError, ExitCode
from bulksend.providers.base import Delivery, LookupResult, OutcomeKind, Profile
from bulksend.providers.twilio import TwilioProvider

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
BALANCE = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Balance.json"
SENDER = "+15005550006"


@pytest.fixture(scope="module")
def fake_api_module() -> Iterator[HTTPServer]:
    with fake_api_server() as server:
        yield server


@pytest.fixture
def api(fake_api_module: HTTPServer) -> Iterator[HTTPServer]:
    fake_api_module.clear()
    yield fake_api_module
    fake_api_module.clear()


@pytest.fixture
def twilio(api: HTTPServer, tmp_path: Path) -> Iterator[Callable[..., TwilioProvider]]:
    """A factory of Twilio adapters pointed at the fake API, with the canary as their auth token."""
    made: list[TwilioProvider] = []

    def make(**settings: Any) -> TwilioProvider:
        settings = {"account_sid": ACCOUNT_SID, "sender": SENDER, "base_url": base_url_of(api), **settings}
        provider = TwilioProvider(Profile("twilio", "twilio", settings), CANARY, tmp_path)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def accept(api: HTTPServer) -> None:
    api.expect_request(MESSAGES, method="POST").respond_with_json(twilio_message(), status=201)


def sent_form(api: HTTPServer) -> dict[str, str]:
    request = api.log[-1][0]
    assert request.method == "POST"
    assert request.path == MESSAGES
    assert request.mimetype == "application/x-www-form-urlencoded"
    form = parse_qs(request.get_data(as_text=True), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in form.values()), form
    return {key: values[0] for key, values in form.items()}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# -- the request ----------------------------------------------------------------------------------------------


def test_an_sms_is_a_form_post_with_basic_auth_to_from_and_body(api, twilio):
    accept(api)
    outcome = twilio().send(sample_delivery())
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, MESSAGE_SID)
    assert sent_form(api) == {
        "To": "+447700900123",
        "From": SENDER,
        "Body": "Spring sale: 20% off until Sunday. Reply STOP to opt out.",
    }
    assert api.log[-1][0].headers["Authorization"] == basic(ACCOUNT_SID, CANARY)


def test_an_api_key_authenticates_instead_of_the_account(api, twilio):
    accept(api)
    twilio(api_key_sid="SK" + "1" * 32).send(sample_delivery())
    assert api.log[-1][0].headers["Authorization"] == basic("SK" + "1" * 32, CANARY)
    assert api.log[-1][0].path == MESSAGES, "the account stays in the URL"


def test_unicode_text_is_sent_as_it_is(api, twilio):
    accept(api)
    text = "Привет Zoë — 20% off € 😀"
    twilio().send(Delivery(7, "c", "+447700900123", text, "sms", encoding="UCS-2"))
    assert sent_form(api)["Body"] == text


def test_messaging_service_and_status_callback(api, twilio):
    accept(api)
    provider = twilio(sender=None, messaging_service_sid="MG" + "b" * 32, status_callback="https://hooks.example/s")
    provider.send(sample_delivery())
    assert sent_form(api) == {
        "To": "+447700900123",
        "MessagingServiceSid": "MG" + "b" * 32,
        "Body": "Spring sale: 20% off until Sunday. Reply STOP to opt out.",
        # our transmission id rides in the callback URL (Twilio signs it), so a receipt can name the row
        "StatusCallback": "https://hooks.example/s?t=1",
    }


def test_a_sender_within_a_messaging_service_sends_both(api, twilio):
    accept(api)
    twilio(messaging_service_sid="MG" + "b" * 32).send(sample_delivery())
    form = sent_form(api)
    assert (form["From"], form["MessagingServiceSid"]) == (SENDER, "MG" + "b" * 32)


def test_whatsapp_uses_whatsapp_addresses(api, twilio):
    accept(api)
    twilio().send(sample_delivery("whatsapp"))
    form = sent_form(api)
    assert (form["To"], form["From"]) == ("whatsapp:+447700900123", f"whatsapp:{SENDER}")
    assert "Body" in form


def test_whatsapp_template_sends_content_sid_and_variables_instead_of_a_body(api, twilio):
    accept(api)
    delivery = Delivery(
        3,
        "c",
        "+447700900123",
        "Hi Zoë, your code is 1234",
        "whatsapp",
        params={"content_sid": "HX" + "c" * 32, "variables": {"1": "Zoë", "2": "1234"}},
    )
    twilio(whatsapp_sender="+15005550009").send(delivery)
    form = sent_form(api)
    assert form == {
        "To": "whatsapp:+447700900123",
        "From": "whatsapp:+15005550009",
        "ContentSid": "HX" + "c" * 32,
        "ContentVariables": '{"1": "Zoë", "2": "1234"}',
    }
    assert json.loads(form["ContentVariables"]) == {"1": "Zoë", "2": "1234"}


def test_a_profile_template_applies_when_the_delivery_names_none(api, twilio):
    accept(api)
    twilio(content_sid="HX" + "d" * 32).send(sample_delivery("whatsapp"))
    form = sent_form(api)
    assert form["ContentSid"] == "HX" + "d" * 32
    assert "Body" not in form and "ContentVariables" not in form


def test_already_prefixed_addresses_are_not_prefixed_twice(api, twilio):
    accept(api)
    twilio(sender="whatsapp:+15005550006").send(sample_delivery("whatsapp", to="whatsapp:+447700900123"))
    form = sent_form(api)
    assert (form["To"], form["From"]) == ("whatsapp:+447700900123", "whatsapp:+15005550006")


class _KeepAliveTwilio(BaseHTTPRequestHandler):
    """A server that keeps connections open (werkzeug's closes every one), recording each client's port."""

    protocol_version = "HTTP/1.1"
    client_ports: ClassVar[list[int]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.client_ports.append(self.client_address[1])
        body = json.dumps(twilio_message()).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_connections_are_pooled_and_kept_alive(twilio):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveTwilio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = twilio(base_url=f"http://127.0.0.1:{server.server_address[1]}", concurrency=4)
        for n in range(10):
            assert provider.send(sample_delivery(transmission_id=n)).kind is OutcomeKind.ACCEPTED
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(provider.send, [sample_delivery(transmission_id=n) for n in range(40)]))
    finally:
        server.shutdown()
        server.server_close()
    ports = _KeepAliveTwilio.client_ports
    assert len(ports) == 50
    assert len(set(ports[:10])) == 1, "sequential messages share one connection"
    assert len(set(ports)) <= 4, "concurrent messages share the pool's connections"


def test_the_pool_is_sized_to_the_concurrency_and_never_retries(twilio):
    adapter = twilio(concurrency=64)._session.get_adapter("https://api.twilio.com")
    assert adapter._pool_maxsize == 64
    assert adapter.max_retries.total == 0
    assert twilio()._session.get_adapter("https://api.twilio.com")._pool_maxsize == 16


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"account_sid": None}, "account_sid"),
        ({"sender": None}, "sender"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"timeout": "soon"}, "timeout"),
        ({"concurrency": "many"}, "concurrency"),
    ],
)
def test_an_incomplete_profile_is_a_configuration_error(twilio, settings, missing):
    with pytest.raises(ConfigError, match=missing) as raised:
        twilio(**settings)
    assert raised.value.exit_code == ExitCode.CONFIG


def test_credentials_in_the_base_url_never_reach_an_outcome(twilio):
    outcome = twilio(base_url=f"http://user:{CANARY}@127.0.0.1:{closed_port()}").send(sample_delivery())
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert_no_secret(outcome)


# -- lookup (reconciliation) ---------------------------------------------------------------------------------


def page(messages: list[dict[str, Any]], next_page_uri: str | None = None) -> dict[str, Any]:
    return {
        "end": max(0, len(messages) - 1),
        "first_page_uri": f"{MESSAGES}?PageSize=100&Page=0",
        "next_page_uri": next_page_uri,
        "page": 0,
        "page_size": 100,
        "previous_page_uri": None,
        "start": 0,
        "uri": f"{MESSAGES}?PageSize=100&Page=0",
        "messages": messages,
    }


def listed(**fields: Any) -> dict[str, Any]:
    """A message as the list resource shows it a little after it was sent."""
    now = datetime.now(timezone.utc)
    defaults = {"status": "sent", "date_sent": format_datetime(now, usegmt=True), "date_created": format_datetime(now)}
    return twilio_message(**{**defaults, **fields})


def serve_pages(api: HTTPServer, answer: Callable[[dict[str, str]], Any]) -> None:
    """Answer GET Messages.json with ``answer(query)``: a page dict, or a werkzeug Response."""

    def handler(request: Request) -> Response:
        result = answer(dict(request.args))
        if isinstance(result, Response):
            return result
        return Response(json.dumps(result), 200, content_type="application/json")

    api.expect_request(MESSAGES, method="GET").respond_with_handler(handler)


def queries(api: HTTPServer) -> list[dict[str, str]]:
    return [dict(request.args) for request, _ in api.log]


def test_lookup_finds_the_message_by_to_and_date_sent(api, twilio):
    serve_pages(api, lambda query: page([listed(sid="SM" + "9" * 32)]))
    sent_after = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    delivery = sample_delivery()
    result = twilio().lookup(delivery, datetime.now(timezone.utc) - timedelta(minutes=1))
    assert result == (LookupResult.FOUND, "SM" + "9" * 32)
    first = queries(api)[0]
    assert first["To"] == "+447700900123"
    assert "DateSent>" in first and first["PageSize"] == "100"
    twilio().lookup(delivery, sent_after)
    assert queries(api)[-1]["DateSent>"] == "2026-02-28", "a day earlier than the UTC date, for safety"


def test_lookup_of_a_message_twilio_never_got_is_not_found(api, twilio):
    serve_pages(api, lambda query: page([]))
    assert twilio().lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.NOT_FOUND, None)
    assert ["DateSent>" in q for q in queries(api)] == [True, False], "also asked without the date filter"


def test_lookup_finds_a_message_still_queued_without_a_date_sent(api, twilio):
    queued = listed(sid="SM" + "8" * 32, status="queued", date_sent=None)
    serve_pages(api, lambda query: page([] if "DateSent>" in query else [queued]))
    assert twilio().lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.FOUND, "SM" + "8" * 32)


def test_lookup_ignores_other_bodies_older_messages_and_inbound_ones(api, twilio):
    old = format_datetime(datetime.now(timezone.utc) - timedelta(days=2))
    others = [
        listed(sid="SM" + "1" * 32, body="Another campaign"),
        listed(sid="SM" + "2" * 32, date_created=old),
        listed(sid="SM" + "3" * 32, direction="inbound"),
        listed(sid="SM" + "4" * 32, to="+447700900999"),
    ]
    serve_pages(api, lambda query: page(others))
    sent_after = datetime.now(timezone.utc) - timedelta(hours=1)
    assert twilio().lookup(sample_delivery(), sent_after) == (LookupResult.NOT_FOUND, None)


def test_lookup_of_a_template_message_matches_without_the_body(api, twilio):
    rendered = listed(sid="SM" + "5" * 32, body="Rendered by Twilio", to="whatsapp:+447700900123")
    serve_pages(api, lambda query: page([rendered]))
    delivery = Delivery(1, "c", "+447700900123", "our text", "whatsapp", params={"content_sid": "HX" + "e" * 32})
    assert twilio().lookup(delivery, datetime.now(timezone.utc)) == (LookupResult.FOUND, "SM" + "5" * 32)
    assert queries(api)[0]["To"] == "whatsapp:+447700900123"


def test_lookup_follows_next_page_uri(api, twilio):
    target = listed(sid="SM" + "6" * 32)

    def answer(query):
        if query.get("Page") == "1":
            return page([target])
        return page([listed(body="not this one")], next_page_uri=f"{MESSAGES}?To=%2B447700900123&PageSize=100&Page=1")

    serve_pages(api, answer)
    assert twilio().lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.FOUND, "SM" + "6" * 32)


def test_lookup_that_would_read_endless_pages_cannot_tell(api, twilio):
    serve_pages(api, lambda query: page([], next_page_uri=f"{MESSAGES}?PageSize=100&Page=1"))
    assert twilio().lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.CANNOT_TELL, None)


@pytest.mark.parametrize(
    "answer",
    [
        Response(json.dumps(twilio_error(20500, "Internal error", 500)), 500, content_type="application/json"),
        Response(json.dumps(twilio_error(20003, "Authenticate", 401)), 401, content_type="application/json"),
        Response('{"messages": [', 200, content_type="application/json"),
        Response('{"something": "else"}', 200, content_type="application/json"),
    ],
    ids=["server_error", "unauthorized", "malformed_json", "not_a_page"],
)
def test_lookup_that_gets_no_usable_answer_cannot_tell(api, twilio, answer):
    serve_pages(api, lambda query: answer)
    assert twilio().lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.CANNOT_TELL, None)


def test_lookup_without_a_connection_cannot_tell(twilio):
    provider = twilio(base_url=f"http://127.0.0.1:{closed_port()}")
    assert provider.lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.CANNOT_TELL, None)


# -- check (the Balance resource) ----------------------------------------------------------------------------


def test_check_reads_the_balance(api, twilio):
    api.expect_request(BALANCE, method="GET").respond_with_json(
        {"account_sid": ACCOUNT_SID, "balance": "12.34", "currency": "USD"}
    )
    assert twilio().check() == f"twilio account {ACCOUNT_SID}: balance 12.34 USD"
    assert api.log[0][0].headers["Authorization"] == basic(ACCOUNT_SID, CANARY)


def test_check_with_bad_credentials_is_a_configuration_error_without_the_secret(api, twilio):
    def echo(request: Request) -> Response:
        body = twilio_error(20003, f"Authenticate {request.headers['Authorization']} {CANARY}", 401)
        return Response(json.dumps(body), 401, content_type="application/json")

    api.expect_request(BALANCE).respond_with_handler(echo)
    with pytest.raises(ConfigError) as raised:
        twilio().check()
    assert raised.value.exit_code == ExitCode.CONFIG
    assert_no_secret(raised.value.message, raised.value.hint, raised.value)
    assert basic(ACCOUNT_SID, CANARY).split()[1] not in raised.value.message


@pytest.mark.parametrize("status", [500, 503])
def test_check_against_a_failing_api_is_an_error_but_not_a_configuration_one(api, twilio, status):
    api.expect_request(BALANCE).respond_with_data("upstream trouble", status=status)
    with pytest.raises(BulksendError) as raised:
        twilio().check()
    assert not isinstance(raised.value, ConfigError)
    assert raised.value.exit_code == ExitCode.ERROR


def test_check_without_a_connection_is_an_error(twilio):
    with pytest.raises(BulksendError, match="connection refused") as raised:
        twilio(base_url=f"http://127.0.0.1:{closed_port()}").check()
    assert raised.value.exit_code == ExitCode.ERROR


# -- `bulksend provider check` -------------------------------------------------------------------------------


@pytest.fixture
def twilio_home(home: Path, api: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    (home / "config.toml").write_text(
        "[providers.twilio]\n"
        'type = "twilio"\n'
        f'account_sid = "{ACCOUNT_SID}"\n'
        f'sender = "{SENDER}"\n'
        f'base_url = "{base_url_of(api)}"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("BULKSEND_TWILIO_SECRET", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", CANARY)
    return home


def test_provider_check_command(api, twilio_home, cli):
    api.expect_request(BALANCE).respond_with_json({"account_sid": ACCOUNT_SID, "balance": "0.05", "currency": "USD"})
    result = cli("provider", "check", "twilio")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"twilio account {ACCOUNT_SID}: balance 0.05 USD\n"
    result = cli("provider", "check", "twilio", "--json")
    assert json.loads(result.stdout) == {
        "profile": "twilio",
        "type": "twilio",
        "ok": True,
        "summary": f"twilio account {ACCOUNT_SID}: balance 0.05 USD",
    }


def test_provider_check_exit_codes(api, twilio_home, cli):
    api.expect_oneshot_request(BALANCE).respond_with_json(twilio_error(20003, "Authenticate", 401), status=401)
    api.expect_oneshot_request(BALANCE).respond_with_data("boom", status=500)
    bad_credentials = cli("provider", "check", "twilio")
    failing_api = cli("provider", "check", "twilio")
    assert bad_credentials.exit_code == ExitCode.CONFIG, bad_credentials.stderr
    assert "refused the credentials" in bad_credentials.stderr
    assert failing_api.exit_code == ExitCode.ERROR, failing_api.stderr
    assert "Twilio balance check failed (HTTP 500" in failing_api.stderr
    assert_no_secret(bad_credentials.stdout, bad_credentials.stderr, failing_api.stdout, failing_api.stderr)


def test_provider_check_with_debug_shows_a_traceback_but_never_the_secret(api, twilio_home):
    def echo(request: Request) -> Response:
        body = twilio_error(20003, f"Authenticate {request.headers['Authorization']} {CANARY}", 401)
        return Response(json.dumps(body), 401, content_type="application/json")

    api.expect_request(BALANCE).respond_with_handler(echo)
    result = subprocess.run(
        [sys.executable, "-m", "bulksend", "--debug", "provider", "check", "twilio"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert basic(ACCOUNT_SID, CANARY).split()[1] not in result.stderr


# -- the documentation -----------------------------------------------------------------------------------------


def test_docs_list_every_classified_code_with_its_class_and_source():
    from bulksend.providers.twilio import TWILIO_CODES

    docs = (Path(__file__).resolve().parent.parent / "docs" / "providers.md").read_text(encoding="utf-8")
    rows = {}
    for line in docs.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            code, kind, _meaning, source = cells
            rows[int(code)] = (kind, source)
    source = "https://www.twilio.com/docs/api/errors/{}"
    assert TWILIO_CODES.source_of(30008) == source.format(30008)
    classified = {code: row.send for code, row in TWILIO_CODES.codes.items() if row.send}
    assert rows == {code: (kind.value, source.format(code)) for code, kind in classified.items()}
