"""The generic HTTP gateway: both worked examples against fake gateways, requests built as data, profile checks."""

from __future__ import annotations

import base64
import copy
import json
import random
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from sendhelpers import ledger_rows, write_campaign
from test_provider_contract import (
    CANARY,
    HttpProviderContract,
    RecordedResponse,
    assert_no_secret,
    base_url_of,
    closed_port,
    drop_connection,
    fake_api_server,
    sample_delivery,
)
from werkzeug import Request, Response

from bulksend import profiles
from bulksend.config import Config
from bulksend.errors import ConfigError, ExitCode, ProviderError
from bulksend.providers.base import Delivery, LookupResult, OutcomeKind, Profile, Provider
from bulksend.providers.http import HttpGatewayProvider

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "gateways"
ORIGINS = {"skylark": "https://api.skylark.example", "kestrel": "https://gw.kestrel-sms.example"}

A, R, M, P, OUT, F = (
    OutcomeKind.ACCEPTED,
    OutcomeKind.RETRYABLE,
    OutcomeKind.AMBIGUOUS,
    OutcomeKind.PERMANENT,
    OutcomeKind.OPTED_OUT,
    OutcomeKind.FATAL,
)


def example(name: str) -> dict[str, Any]:
    """The profile table of ``examples/gateways/<name>.toml``, exactly as a user would paste it."""
    document = tomllib.loads((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8"))
    assert list(document["providers"]) == [name]
    return copy.deepcopy(document["providers"][name])


def pointed_at(name: str, base_url: str, **settings: Any) -> dict[str, Any]:
    """The example's settings with its gateway's origin replaced by ``base_url`` (a fake server, a bad host)."""
    table = example(name)
    table.pop("type")
    for key in ("base_url", "url", "check_url"):
        if isinstance(table.get(key), str):
            table[key] = table[key].replace(ORIGINS[name], base_url)
    return {**table, **settings}


def gateway(name: str, settings: dict[str, Any], home: Path, secret: str = CANARY) -> HttpGatewayProvider:
    return HttpGatewayProvider(Profile(name, "http", settings), secret, home)


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
def made(tmp_path: Path) -> Iterator[Callable[..., HttpGatewayProvider]]:
    """A factory: ``made(name, settings)`` builds a gateway with the canary as its secret, closed afterwards."""
    providers: list[HttpGatewayProvider] = []

    def make(name: str, settings: dict[str, Any], secret: str = CANARY) -> HttpGatewayProvider:
        provider = gateway(name, settings, tmp_path, secret)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


# -- Skylark: JSON, bearer token, nested answers ----------------------------------------------------------------

SKYLARK_SEND = "/v2/messages"
SKYLARK_BALANCE = "/v2/account/balance"
SKYLARK_ID = "sk_01JD7Q3M5BX2"


def sky_message(status: str = "queued", **fields: Any) -> dict[str, Any]:
    message = {"id": SKYLARK_ID, "status": status, "to": "+447700900123", "parts": 1}
    message.update(fields)
    return {"messages": [message]}


def sky_rejected(code: str | None, text: str = "Rejected") -> dict[str, Any]:
    error = {"message": text} if code is None else {"code": code, "message": text}
    return sky_message("rejected", id=None, error=error)


def sky_error(code: str, text: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": text}}


SKYLARK_RESPONSES = [
    RecordedResponse("queued", 200, sky_message(), A, provider_id=SKYLARK_ID),
    RecordedResponse("accepted_in_capitals", 202, sky_message("ACCEPTED"), A, provider_id=SKYLARK_ID),
    # success not proven: never counted as sent
    RecordedResponse(
        "queued_without_id", 200, sky_message(id=None), M, code="http_200", text_has="no message id at messages.0.id"
    ),
    RecordedResponse("no_messages", 200, {"request_id": "r1"}, M, code="http_200", text_has="no messages.0.status"),
    RecordedResponse("malformed_json", 200, '{"messages": [{"id": "sk_', M, code="http_200", text_has="not JSON"),
    RecordedResponse("empty_body", 200, "", M, code="http_200"),
    # refused per message inside a 200
    RecordedResponse(
        "invalid_number", 200, sky_rejected("INVALID_NUMBER", "Not a valid mobile number"), P, code="INVALID_NUMBER",
        text_has="Not a valid mobile number",
    ),
    RecordedResponse("landline", 200, sky_rejected("LANDLINE", "Destination is a landline"), P, code="LANDLINE"),
    RecordedResponse("opted_out", 200, sky_rejected("RECIPIENT_OPTED_OUT", "Recipient replied STOP"), OUT,
                     code="RECIPIENT_OPTED_OUT"),
    RecordedResponse("carrier_timeout", 200, sky_rejected("CARRIER_TIMEOUT", "Carrier did not answer"), M,
                     code="CARRIER_TIMEOUT"),
    RecordedResponse("unknown_code", 200, sky_rejected("NEW_THING", "Something new"), P, code="NEW_THING",
                     text_has="Something new"),
    RecordedResponse("rejected_without_code", 200, sky_rejected(None, "No reason"), P, code="rejected"),
    # HTTP errors
    RecordedResponse(
        "rate_limited_429", 429, sky_error("RATE_LIMITED", "Slow down"), R, code="RATE_LIMITED", retry_after=3.0,
        headers={"Retry-After": "3"},
    ),
    RecordedResponse(
        "proxy_429", 429, "Too Many Requests", R, code="http_429", content_type="text/plain"
    ),
    RecordedResponse("internal_500", 500, sky_error("INTERNAL", "Oops"), M, code="INTERNAL", text_has="Oops"),
    RecordedResponse(
        "unavailable_503", 503, "", M, code="http_503", retry_after=30.0, headers={"Retry-After": "30"},
        content_type="text/plain",
    ),
    RecordedResponse("unauthorized_401", 401, sky_error("UNAUTHORIZED", "Invalid token"), F, code="UNAUTHORIZED"),
    RecordedResponse(
        "no_funds_402", 402, sky_error("INSUFFICIENT_BALANCE", "Top up your account"), F, code="INSUFFICIENT_BALANCE"
    ),
    RecordedResponse("forbidden_403_plain", 403, "Forbidden", F, code="http_403", content_type="text/plain"),
    RecordedResponse(
        "validation_400", 400, sky_error("VALIDATION_ERROR", "text is required"), P, code="VALIDATION_ERROR"
    ),
    RecordedResponse(
        "moved_301", 301, "", F, code="http_301", headers={"Location": "https://elsewhere.example/"},
        content_type="text/plain",
    ),
]


class TestSkylarkContract(HttpProviderContract):
    provider_cls = HttpGatewayProvider
    send_path = SKYLARK_SEND
    recorded_responses = SKYLARK_RESPONSES

    @pytest.fixture
    def make_provider(self, made) -> Callable[..., Provider]:
        return lambda base_url, **settings: made("skylark", pointed_at("skylark", base_url, **settings))


# -- Kestrel: a form, the key in the body, errors inside 200 ----------------------------------------------------

KESTREL_SEND = "/api/send"
KESTREL_BALANCE = "/api/balance"


def kestrel_error(code: int, text: str) -> dict[str, Any]:
    return {"status": "ERR", "code": code, "error": text}


KESTREL_RESPONSES = [
    RecordedResponse("ok", 200, {"status": "OK", "message_id": "K-88412-1", "credits_used": 1}, A,
                     provider_id="K-88412-1"),
    RecordedResponse("ok_numeric_id", 200, {"status": "ok", "message_id": 88412}, A, provider_id="88412"),
    RecordedResponse("ok_without_id", 200, {"status": "OK"}, M, code="http_200"),
    RecordedResponse("plain_text_ok", 200, "OK", M, code="http_200", content_type="text/plain"),
    RecordedResponse("invalid_number_32", 200, kestrel_error(32, "Invalid number format"), P, code="32",
                     text_has="Invalid number format"),
    RecordedResponse("too_long_31", 200, kestrel_error(31, "Message too long"), P, code="31"),
    RecordedResponse("dnd_33", 200, kestrel_error(33, "Number is on the DND list"), OUT, code="33"),
    RecordedResponse("throttled_30", 200, kestrel_error(30, "Too many requests"), R, code="30"),
    RecordedResponse("internal_50", 200, kestrel_error(50, "Internal error"), M, code="50"),
    RecordedResponse("bad_key_10", 200, kestrel_error(10, "Invalid API key"), F, code="10"),
    RecordedResponse("no_credit_20", 200, kestrel_error(20, "Insufficient credit"), F, code="20"),
    RecordedResponse("code_without_status", 200, {"code": "20", "error": "Insufficient credit"}, F, code="20"),
    RecordedResponse("undocumented_77", 200, kestrel_error(77, "Unknown"), P, code="77"),
    RecordedResponse("err_without_code", 200, {"status": "ERR", "error": "Failed"}, P, code="ERR",
                     text_has="Failed"),
    RecordedResponse("http_429", 429, "slow down", R, code="http_429", content_type="text/plain"),
    RecordedResponse("http_500", 500, "<h1>Server Error</h1>", M, code="http_500", content_type="text/html"),
    RecordedResponse("http_401", 401, kestrel_error(10, "Invalid API key"), F, code="10"),
]


class TestKestrelContract(HttpProviderContract):
    provider_cls = HttpGatewayProvider
    send_path = KESTREL_SEND
    recorded_responses = KESTREL_RESPONSES

    @pytest.fixture
    def make_provider(self, made) -> Callable[..., Provider]:
        return lambda base_url, **settings: made("kestrel", pointed_at("kestrel", base_url, **settings))

    def test_accepts_a_message_on_every_channel(self, accepting_provider):
        # Kestrel's profile sends SMS only: WhatsApp fails for good instead of going out as an SMS.
        assert accepting_provider.send(sample_delivery("sms")).kind is OutcomeKind.ACCEPTED
        outcome = accepting_provider.send(sample_delivery("whatsapp"))
        assert (outcome.kind, outcome.code) == (OutcomeKind.PERMANENT, "unsupported_channel")

    def test_an_answer_echoing_the_credentials_never_leaks_them(self, api, make_provider):
        # The key travels in the form, not in an Authorization header: echo it from there.
        def echo(request: Request) -> Response:
            key = parse_qs(request.get_data(as_text=True))["apikey"][0]
            return Response(json.dumps(kestrel_error(10, f"Invalid API key {key}")), 200)

        api.expect_request(KESTREL_SEND).respond_with_handler(echo)
        outcome = make_provider(base_url_of(api)).send(sample_delivery())
        assert parse_qs(api.log[0][0].get_data(as_text=True))["apikey"] == [CANARY]
        assert (outcome.kind, outcome.text) == (OutcomeKind.FATAL, "Invalid API key ***")
        assert_no_secret(outcome)


# -- the requests, exactly -------------------------------------------------------------------------------------

TRICKY = 'He said "20% off" \\ {not a placeholder}\nLine two\ttab — Zoë 😀 </script>'


def test_skylark_sends_json_built_as_data_with_a_bearer_token(api, made):
    api.expect_request(SKYLARK_SEND, method="POST").respond_with_json(sky_message())
    provider = made("skylark", pointed_at("skylark", base_url_of(api)))
    outcome = provider.send(Delivery(42, "spring", "+447700900123", TRICKY, "whatsapp", encoding="UCS-2"))
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, SKYLARK_ID)
    request = api.log[0][0]
    assert request.headers["Authorization"] == f"Bearer {CANARY}"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(request.get_data().decode("utf-8")) == {
        "messages": [
            {
                "channel": "whatsapp",
                "from": "ACME",
                "to": "+447700900123",
                "text": TRICKY,
                "client_reference": "42",
                "coding": "UCS-2",
            }
        ]
    }
    assert CANARY not in request.get_data(as_text=True), "bearer auth keeps the secret out of the body"


def test_kestrel_sends_a_form_with_the_key_in_the_body(api, made):
    api.expect_request(KESTREL_SEND, method="POST").respond_with_json({"status": "OK", "message_id": "K-1"})
    provider = made("kestrel", pointed_at("kestrel", base_url_of(api)))
    provider.send(Delivery(7, "spring", "+447700900123", TRICKY, "sms", encoding="UCS-2"))
    request = api.log[0][0]
    assert request.mimetype == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    form = parse_qs(request.get_data(as_text=True), keep_blank_values=True, strict_parsing=True)
    assert form == {
        "numbers": ["447700900123"],
        "sender": ["ACME"],
        "message": [TRICKY],
        "custom": ["7"],
        "coding": ["UCS-2"],
        "apikey": [CANARY],
    }


def test_the_example_profiles_load_from_a_config_file(tmp_path, monkeypatch):
    text = "\n".join((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8") for name in ORIGINS)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("BULKSEND_SKYLARK_SECRET", "sky-secret")
    monkeypatch.setenv("BULKSEND_KESTREL_SECRET", "kestrel-secret")
    config = Config.load(tmp_path)
    for name, secret in (("skylark", "sky-secret"), ("kestrel", "kestrel-secret")):
        provider = profiles.open_provider(config, name)
        try:
            assert isinstance(provider, HttpGatewayProvider) and provider.secret == secret
        finally:
            provider.close()


def minimal(base_url: str, **settings: Any) -> dict[str, Any]:
    """A small JSON profile for exercising one feature at a time."""
    return {
        "url": f"{base_url}/send",
        "auth": {"type": "bearer"},
        "sender": "+15005550006",
        "body": {"to": "{to}", "text": "{text}"},
        **settings,
    }


def test_without_success_path_any_2xx_is_acceptance_with_our_own_id(api, made):
    api.expect_request("/send").respond_with_data("queued", status=202)
    outcome = made("gw", minimal(base_url_of(api))).send(sample_delivery(transmission_id=99))
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, "http-99")


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"type": "basic", "username": "acme"}, "Authorization", "Basic " + base64.b64encode(
            f"acme:{CANARY}".encode()).decode()),
        ({"type": "bearer"}, "Authorization", f"Bearer {CANARY}"),
        ({"type": "header", "header": "X-API-Key"}, "X-API-Key", CANARY),
        ({"type": "header", "header": "Authorization", "prefix": "App "}, "Authorization", f"App {CANARY}"),
    ],
    ids=["basic", "bearer", "header", "header_with_prefix"],
)
def test_header_auth_types(api, made, auth, header, value):
    api.expect_request("/send").respond_with_data("", status=200)
    made("gw", minimal(base_url_of(api), auth=auth)).send(sample_delivery())
    assert api.log[0][0].headers[header] == value
    assert CANARY not in api.log[0][0].get_data(as_text=True)


def test_query_auth_puts_the_secret_in_the_query(api, made):
    api.expect_request("/send").respond_with_data("", status=200)
    made("gw", minimal(base_url_of(api), auth={"type": "query", "param": "api_key"})).send(sample_delivery())
    assert dict(api.log[0][0].args) == {"api_key": CANARY}


def test_body_auth_with_a_secret_placeholder_in_a_json_text_template(api, made):
    api.expect_request("/send").respond_with_data("", status=200)
    settings = minimal(
        base_url_of(api),
        auth={"type": "body"},
        body='{"auth": {"key": "{secret}"}, "sms": [{"dest": "{to_digits}", "msg": "{text}", "ref": "{id}"}]}',
    )
    made("gw", settings).send(Delivery(5, "c", "+447700900123", TRICKY, "sms"))
    assert json.loads(api.log[0][0].get_data()) == {
        "auth": {"key": CANARY},
        "sms": [{"dest": "447700900123", "msg": TRICKY, "ref": "5"}],
    }


def test_a_form_text_template_and_literal_values(api, made):
    api.expect_request("/send").respond_with_data("", status=200)
    settings = minimal(
        base_url_of(api), content_type="form", body="to={to}&msg={text}&flash=0&note={{literal}}"
    )
    made("gw", settings).send(Delivery(5, "c", "+447700900123", "a&b=c", "sms"))
    form = parse_qs(api.log[0][0].get_data(as_text=True))
    assert form == {"to": ["+447700900123"], "msg": ["a&b=c"], "flash": ["0"], "note": ["{literal}"]}


def test_json_values_keep_their_types(api, made):
    api.expect_request("/send").respond_with_data("", status=200)
    settings = minimal(base_url_of(api), body={"to": ["{to}"], "flash": False, "validity": 60, "text": "{text}"})
    made("gw", settings).send(sample_delivery())
    assert json.loads(api.log[0][0].get_data()) == {
        "to": ["+447700900123"],
        "flash": False,
        "validity": 60,
        "text": sample_delivery().text,
    }


def test_get_with_placeholders_in_the_url_and_headers(api, made):
    api.expect_request("/send/+447700900123").respond_with_data("", status=200)
    settings = minimal(
        base_url_of(api),
        method="get",
        url=f"{base_url_of(api)}/send/{{to}}",
        body={"text": "{text}", "from": "{sender}"},
        headers={"Idempotency-Key": "{campaign}-{id}", "X-Account": "acme"},
    )
    made("gw", settings).send(Delivery(8, "spring", "+447700900123", "Hi & bye", "sms"))
    request = api.log[0][0]
    assert request.method == "GET"
    assert request.environ["RAW_URI"].startswith("/send/%2B447700900123?"), "placeholders are URL-encoded"
    assert dict(request.args) == {"text": "Hi & bye", "from": "+15005550006"}
    assert (request.headers["Idempotency-Key"], request.headers["X-Account"]) == ("spring-8", "acme")


def test_a_secret_in_a_header_template(api, made):
    api.expect_request("/send").respond_with_data("", status=200)
    settings = minimal(
        base_url_of(api), auth={"type": "header", "header": "X-Key"}, headers={"Authorization": "Token {secret}"}
    )
    made("gw", settings).send(sample_delivery())
    assert api.log[0][0].headers["Authorization"] == f"Token {CANARY}"


def test_lookup_cannot_tell(made):
    provider = made("gw", minimal("https://gw.example"))
    assert provider.lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.CANNOT_TELL, None)


# -- validating the profile when the provider is created -------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"url": None}, "'url'"),
        ({"url": "ftp://gw.example/send"}, "url"),
        ({"url": "/send"}, "url"),
        ({"auth": None}, "'auth'"),
        ({"auth": {"type": "oauth"}}, "auth.type"),
        ({"auth": {"type": "basic"}}, "auth.username"),
        ({"auth": {"type": "header"}}, "auth.header"),
        ({"auth": {"type": "query"}}, "auth.param"),
        ({"auth": {"type": "body"}}, "auth.field"),
        ({"body": {"to": "{to}", "key": "{secret}"}}, "body.key uses {secret}"),
        ({"body": {"to": "{recipient}"}}, "body.to uses {recipient}"),
        ({"url": "https://gw.example/{secret}"}, "url uses {secret}"),
        ({"headers": {"X-Text": "{text}"}}, "headers.X-Text uses {text}"),
        ({"body": None}, "'body'"),
        ({"body": '{"to": "{to}"'}, "body is not valid JSON"),
        ({"content_type": "form", "body": {"to": {"number": "{to}"}}}, "body.to is nested"),
        ({"content_type": "xml"}, "content_type"),
        ({"method": "DELETE"}, "method"),
        ({"channels": ["sms", "rcs"]}, "channels"),
        ({"errors": {"E1": "fatal", "E2": "try-later"}}, "errors.E2"),
        ({"default_error_class": "accepted"}, "default_error_class"),
        ({"success_values": ["OK"]}, "success_values needs success_path"),
        ({"success_path": "messages..status"}, "success_path"),
        ({"sender": None}, "{sender}"),
    ],
)
def test_a_bad_profile_is_a_configuration_error_naming_the_key(made, change, named):
    settings = minimal("https://gw.example", body={"to": "{to}", "from": "{sender}"})
    settings.update(change)
    settings = {key: value for key, value in settings.items() if value is not None}
    with pytest.raises(ConfigError) as raised:
        made("gw", settings)
    assert raised.value.exit_code == ExitCode.CONFIG
    assert named in raised.value.message, raised.value.message
    assert_no_secret(raised.value.message, raised.value.hint)


# -- check -----------------------------------------------------------------------------------------------------


def test_skylark_check_reads_the_balance_with_the_token(api, made):
    balance = {"balance": {"amount": 1234.5, "currency": "EUR"}}
    api.expect_request(SKYLARK_BALANCE, method="GET").respond_with_json(balance)
    base = base_url_of(api)
    summary = made("skylark", pointed_at("skylark", base)).check()
    assert summary == f"http profile 'skylark': GET {base}{SKYLARK_BALANCE} answered HTTP 200; balance.amount = 1234.5"
    assert api.log[0][0].headers["Authorization"] == f"Bearer {CANARY}"


def test_kestrel_check_sends_the_key_as_a_query_parameter(api, made):
    api.expect_request(KESTREL_BALANCE, method="GET").respond_with_json({"status": "OK", "balance": 880})
    assert made("kestrel", pointed_at("kestrel", base_url_of(api))).check().endswith("; balance = 880")
    assert dict(api.log[0][0].args) == {"apikey": CANARY}


def test_kestrel_check_with_a_bad_key_in_a_200_is_a_configuration_error(api, made):
    def echo(request: Request) -> Response:
        return Response(json.dumps(kestrel_error(10, f"Invalid API key {request.args['apikey']}")), 200)

    api.expect_request(KESTREL_BALANCE).respond_with_handler(echo)
    with pytest.raises(ConfigError) as raised:
        made("kestrel", pointed_at("kestrel", base_url_of(api))).check()
    assert "answered 10: Invalid API key ***" in raised.value.message
    assert_no_secret(raised.value.message, raised.value.hint, raised.value)


def test_check_with_refused_credentials_is_a_configuration_error(api, made):
    def echo(request: Request) -> Response:
        return Response(json.dumps(sky_error("UNAUTHORIZED", request.headers["Authorization"])), 401)

    api.expect_request(SKYLARK_BALANCE).respond_with_handler(echo)
    with pytest.raises(ConfigError) as raised:
        made("skylark", pointed_at("skylark", base_url_of(api))).check()
    assert raised.value.exit_code == ExitCode.CONFIG
    assert "refused the credentials" in raised.value.message
    assert_no_secret(raised.value.message, raised.value.hint, raised.value)


@pytest.mark.parametrize(
    "reply",
    [Response("down", 503), Response('{"balance": null}', 200, content_type="application/json")],
    ids=["server_error", "no_balance"],
)
def test_check_against_a_failing_gateway_is_an_error_but_not_a_configuration_one(api, made, reply):
    api.expect_request(SKYLARK_BALANCE).respond_with_response(reply)
    with pytest.raises(ProviderError):
        made("skylark", pointed_at("skylark", base_url_of(api))).check()


def test_check_without_a_connection(made):
    with pytest.raises(ProviderError, match="connection refused") as raised:
        made("kestrel", pointed_at("kestrel", f"http://127.0.0.1:{closed_port()}")).check()
    assert_no_secret(raised.value.message, raised.value)


def test_check_without_check_url_says_nothing_was_checked(made, api):
    summary = made("gw", minimal("https://gw.example")).check()
    assert summary == (
        "http profile 'gw': no check_url is configured, so nothing was checked "
        "(messages go to POST https://gw.example/send)"
    )
    assert api.log == []


# -- `bulksend provider list` and `bulksend provider check` ----------------------------------------------------


@pytest.fixture
def gateways_home(home: Path, api: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    text = "\n".join((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8") for name in ORIGINS)
    for origin in ORIGINS.values():
        text = text.replace(origin, base_url_of(api))
    (home / "config.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("BULKSEND_SKYLARK_SECRET", CANARY)
    monkeypatch.setenv("BULKSEND_KESTREL_SECRET", CANARY)
    return home


def test_provider_list_shows_the_http_profiles(gateways_home, cli):
    doc = json.loads(cli("provider", "list", "--json").stdout)
    assert "http" in doc["types"]
    listed = {p["name"]: (p["type"], p["secret"]) for p in doc["profiles"]}
    assert listed["skylark"] == ("http", "env BULKSEND_SKYLARK_SECRET")
    assert listed["kestrel"] == ("http", "env BULKSEND_KESTREL_SECRET")


def test_provider_check_command_for_both_examples(api, gateways_home, cli):
    api.expect_request(SKYLARK_BALANCE).respond_with_json({"balance": {"amount": 77, "currency": "EUR"}})
    api.expect_request(KESTREL_BALANCE).respond_with_json({"status": "OK", "balance": 880})
    sky = cli("provider", "check", "skylark")
    kestrel = cli("provider", "check", "kestrel", "--json")
    assert sky.exit_code == 0, sky.stderr
    assert sky.stdout.endswith("answered HTTP 200; balance.amount = 77\n")
    assert kestrel.exit_code == 0, kestrel.stderr
    doc = json.loads(kestrel.stdout)
    assert (doc["profile"], doc["type"], doc["ok"]) == ("kestrel", "http", True)
    assert doc["summary"].endswith("; balance = 880")


def test_provider_check_exit_codes(api, gateways_home, cli):
    api.expect_request(KESTREL_BALANCE).respond_with_json(kestrel_error(10, "Invalid API key"))
    api.expect_request(SKYLARK_BALANCE).respond_with_data("boom", status=500)
    bad_key = cli("provider", "check", "kestrel")
    failing = cli("provider", "check", "skylark")
    assert bad_key.exit_code == ExitCode.CONFIG, bad_key.stderr
    assert failing.exit_code == ExitCode.ERROR, failing.stderr
    assert "answered HTTP 500" in failing.stderr
    assert_no_secret(bad_key.stdout, bad_key.stderr, failing.stdout, failing.stderr)


# -- a campaign through the engine -----------------------------------------------------------------------------


def test_a_campaign_through_kestrel_sends_each_person_once(cli, home, tmp_path, api, monkeypatch):
    campaign, numbers = write_campaign(tmp_path / "c", "autumn", 10, provider="kestrel", max_attempts=4)
    digits = [n.removeprefix("+") for n in numbers]
    scripted = {digits[1]: [30, 30], digits[2]: [32], digits[3]: [33], digits[4]: [50]}
    accepted: dict[str, int] = {}

    def fake(request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
        assert form["apikey"] == CANARY
        codes = scripted.get(form["numbers"])
        if codes:
            return Response(json.dumps(kestrel_error(codes.pop(0), "scripted")), 200)
        accepted[form["numbers"]] = accepted.get(form["numbers"], 0) + 1
        return Response(json.dumps({"status": "OK", "message_id": f"K-{form['custom']}"}), 200)

    api.expect_request(KESTREL_SEND, method="POST").respond_with_handler(fake)
    table = (EXAMPLES / "kestrel.toml").read_text(encoding="utf-8").replace(ORIGINS["kestrel"], base_url_of(api))
    table = table.replace("rate = 5\n", "rate = 1000\nbackoff_base = 0.01\n")
    (home / "config.toml").write_text(table, encoding="utf-8")
    monkeypatch.setenv("BULKSEND_KESTREL_SECRET", CANARY)
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0

    result = cli("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code == ExitCode.INCOMPLETE, result.stderr
    doc = json.loads(result.stdout)
    rows = ledger_rows(home, "autumn")
    assert {n.removeprefix("+") for n, (state, _, _) in rows.items() if state == "sent"} == set(accepted)
    assert max(accepted.values()) == 1
    assert {n: (s, c) for n, (s, _, c) in rows.items() if s != "sent"} == {
        numbers[2]: ("failed", "32"),
        numbers[3]: ("failed", "33"),
        numbers[4]: ("unknown", "50"),
    }
    assert doc["credits_debited"] == len(accepted) == 7
    optouts = json.loads(cli("optout", "list", "--json").stdout)
    assert numbers[3] in json.dumps(optouts), "an opted_out code adds the number to the opt-out list"
    assert cli("credits", "audit").exit_code == 0
    assert_no_secret(result.stdout, result.stderr)


# -- the documentation -----------------------------------------------------------------------------------------


def test_docs_name_every_key_the_examples_use():
    docs = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")
    section = docs.split("### Generic HTTP gateway", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for name in ORIGINS:
        table = example(name)
        keys |= {key for key in table if key not in ("body", "errors")}
        keys |= {f"auth.{key}" for key in table["auth"] if key != "type"}
    missing = sorted(key for key in keys if f"`{key}`" not in section)
    assert not missing, f"docs/providers.md does not describe {missing}"
    for name in ORIGINS:
        assert f"examples/gateways/{name}.toml" in section


def test_a_campaign_through_skylark_and_random_faults_never_sends_twice(cli, home, tmp_path, api, monkeypatch):
    """429s, per-message throttling, 500s, dropped connections, late answers and ids missing, seeded."""
    rng = random.Random(5)
    lock = threading.Lock()
    history: dict[str, list[str]] = {}  # number → what the fake did with each request, in order
    faults = ["429", "rate_limited", "500", "drop", "late", "no_id"]
    forced = list(faults)  # each kind once, first; then at random

    def fake(request: Request) -> Response:
        assert request.headers["Authorization"] == f"Bearer {CANARY}"
        to = json.loads(request.get_data())["messages"][0]["to"]
        with lock:
            fault = forced.pop(0) if forced else (rng.choice(faults) if rng.random() < 0.35 else "ok")
            history.setdefault(to, []).append(fault)
        if fault == "429":
            return Response(json.dumps(sky_error("RATE_LIMITED", "Slow down")), 429, headers={"Retry-After": "0"})
        if fault == "rate_limited":
            return Response(json.dumps(sky_rejected("RATE_LIMITED", "Slow down")), 200)
        if fault == "500":
            return Response("Internal Server Error", 500)
        if fault == "drop":
            return drop_connection(request)
        if fault == "late":
            time.sleep(2.0)  # well past the client's 1 s timeout, so a loaded machine cannot blur the two
        return Response(json.dumps(sky_message(id=None if fault == "no_id" else f"sk_{to}", to=to)), 200)

    api.expect_request(SKYLARK_SEND, method="POST").respond_with_handler(fake)
    table = (EXAMPLES / "skylark.toml").read_text(encoding="utf-8").replace(ORIGINS["skylark"], base_url_of(api))
    settings = "rate = 1000\nbackoff_base = 0.01\nbackoff_cap = 0.05\ntimeout = 1.0\ncircuit_breaker = 0\n"
    (home / "config.toml").write_text(table.replace("rate = 20 ", settings + "#"), encoding="utf-8")
    monkeypatch.setenv("BULKSEND_SKYLARK_SECRET", CANARY)
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path / "c", "faults", 60, provider="skylark", max_attempts=10)
    result = cli("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code in (0, ExitCode.INCOMPLETE), result.stderr
    doc = json.loads(result.stdout)

    # After these the client cannot know that the message did not go.
    final = {"ok": "sent", "500": "unknown", "drop": "unknown", "late": "unknown", "no_id": "unknown"}
    assert set().union(*history.values()) == {"ok", *faults}
    states = {n: state for n, (state, _, _) in ledger_rows(home, "faults").items()}
    assert set(states) == set(history) == set(numbers)
    for to, events in history.items():
        settled = [n for n, event in enumerate(events) if event in final]
        assert len(settled) <= 1 and (not settled or settled[0] == len(events) - 1), f"{to} sent again: {events}"
        assert states[to] == final.get(events[-1], "failed"), (to, events, states[to])
    sent = sum(state == "sent" for state in states.values())
    assert doc["credits_debited"] == sent == doc["counts"]["sent"]
    assert cli("credits", "audit").exit_code == 0
    assert_no_secret(result.stdout, result.stderr)
