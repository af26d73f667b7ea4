"""The Vonage adapter: the contract against a fake SMS API, the exact request, every status, multipart, the check."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
import sendhelpers
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
from bulksend.errors import BulksendError, ConfigError, ExitCode, ProviderError
from bulksend.providers.base import Delivery, LookupResult, OutcomeKind, Profile, Provider
from bulksend.providers.vonage import VONAGE_SEND_CODES, VonageProvider

API_KEY = "abcd1234"
SENDER = "ACME"
SEND = "/sms/json"
BALANCE = "/account/get-balance"
MESSAGE_ID = "0A0000000123ABCD1"


def part(status: str = "0", **fields: Any) -> dict[str, Any]:
    """One entry of ``messages`` as the SMS API returns it: a sent part, or an error (status and error-text)."""
    if status != "0":
        return {"status": status, **fields}
    entry = {
        "to": "447700900123",
        "message-id": MESSAGE_ID,
        "status": "0",
        "remaining-balance": "3.14159265",
        "message-price": "0.03330000",
        "network": "23410",
        "client-ref": "1",
    }
    entry.update(fields)
    return entry


def answer(*parts: dict[str, Any], count: Any = None) -> dict[str, Any]:
    """A whole /sms/json answer: ``message-count`` (text, as Vonage sends it) and one entry per part."""
    return {"message-count": str(len(parts)) if count is None else count, "messages": list(parts)}


def error(status: str, text: str) -> dict[str, Any]:
    return answer(part(status, **{"error-text": text}))


def parts_ok(n: int) -> list[dict[str, Any]]:
    return [part(**{"message-id": f"0A00000001{k:07d}"}) for k in range(1, n + 1)]


HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

A, R, M, P, F = (
    OutcomeKind.ACCEPTED,
    OutcomeKind.RETRYABLE,
    OutcomeKind.AMBIGUOUS,
    OutcomeKind.PERMANENT,
    OutcomeKind.FATAL,
)

VONAGE_RESPONSES = [
    # accepted: every part has status 0; the id is the first part's
    RecordedResponse("sent_one_part", 200, answer(part()), A, provider_id=MESSAGE_ID),
    RecordedResponse("sent_three_parts", 200, answer(*parts_ok(3)), A, provider_id="0A000000010000001"),
    RecordedResponse("sent_status_as_number", 200, answer({**part(), "status": 0}), A, provider_id=MESSAGE_ID),
    # fewer parts accepted than sent: never counted as sent, never sent blindly again
    RecordedResponse(
        "partial_last_part_out_of_funds",
        200,
        answer(*parts_ok(2), part("9", **{"error-text": "Quota Exceeded - rejected"})),
        M,
        code="partial",
        text_has="accepted 2 of 3 parts; part 3 got status 9 (Quota Exceeded - rejected)",
    ),
    RecordedResponse(
        "partial_first_part_throttled",
        200,
        answer(part("1", **{"error-text": "Throttled"}), *parts_ok(1)),
        M,
        code="partial",
        text_has="accepted 1 of 2 parts; part 1 got status 1",
    ),
    # malformed bodies: never counted as sent
    RecordedResponse(
        "count_says_more_parts_than_listed", 200, answer(*parts_ok(2), count="3"), M, code="http_200",
        text_has="message-count '3' but 2 message entries",
    ),
    RecordedResponse("count_missing", 200, {"messages": [part()]}, M, code="http_200"),
    RecordedResponse("count_not_a_number", 200, answer(part(), count="one"), M, code="http_200"),
    RecordedResponse(
        "accepted_without_message_id",
        200,
        answer({k: v for k, v in part().items() if k != "message-id"}),
        M,
        code="http_200",
        text_has="without a message-id",
    ),
    RecordedResponse("entry_without_status", 200, answer({"message-id": MESSAGE_ID}), M, code="http_200"),
    RecordedResponse("entry_status_not_a_number", 200, answer(part(status="ok")), M, code="http_200"),
    RecordedResponse("no_messages", 200, {"message-count": "0", "messages": []}, M, code="http_200"),
    RecordedResponse("messages_not_a_list", 200, {"message-count": "1", "messages": part()}, M, code="http_200"),
    RecordedResponse("entry_not_an_object", 200, answer("0"), M, code="http_200"),
    RecordedResponse("malformed_json", 200, '{"message-count": "1", "messa', M, code="http_200"),
    RecordedResponse("empty_body", 200, "", M, code="http_200", text_has="not JSON"),
    RecordedResponse("json_array", 200, [part()], M, code="http_200"),
    # statuses inside HTTP 200
    RecordedResponse("throttled_1", 200, error("1", "Throttled"), R, code="1", text_has="Throttled"),
    RecordedResponse("too_many_binds_10", 200, error("10", "Too many existing binds"), R, code="10"),
    RecordedResponse("internal_error_5", 200, error("5", "Internal Error"), M, code="5"),
    RecordedResponse("missing_params_2", 200, error("2", "Missing to param"), P, code="2", text_has="Missing to"),
    RecordedResponse("invalid_params_3", 200, error("3", "Invalid to address"), P, code="3"),
    RecordedResponse("unroutable_6", 200, error("6", "Unroutable message - rejected"), P, code="6"),
    RecordedResponse("barred_7", 200, error("7", "Number barred"), P, code="7"),
    RecordedResponse("illegal_sender_15", 200, error("15", "Illegal Sender Address - rejected"), P, code="15"),
    RecordedResponse("no_error_text", 200, answer(part("33")), P, code="33", text_has="de-activated"),
    RecordedResponse(
        "undocumented_status", 200, error("99", "Something new"), P, code="99", text_has="Something new"
    ),
    RecordedResponse("bad_credentials_4", 200, error("4", "Bad Credentials"), F, code="4", text_has="Bad Credentials"),
    RecordedResponse("account_barred_8", 200, error("8", "Partner account barred"), F, code="8"),
    RecordedResponse("out_of_funds_9", 200, error("9", "Quota Exceeded - rejected"), F, code="9"),
    RecordedResponse("invalid_signature_14", 200, error("14", "Invalid Signature"), F, code="14"),
    RecordedResponse(
        "demo_account_29", 200, error("29", "Non White-listed Destination - rejected"), F, code="29"
    ),
    # every part refused: the heaviest class decides (a part that may have gone out first)
    RecordedResponse(
        "all_parts_throttled",
        200,
        answer(part("1", **{"error-text": "Throttled"}), part("1", **{"error-text": "Throttled"})),
        R,
        code="1",
        text_has="no part was accepted",
    ),
    RecordedResponse(
        "parts_internal_error_and_throttled",
        200,
        answer(part("1", **{"error-text": "Throttled"}), part("5", **{"error-text": "Internal Error"})),
        M,
        code="5",
        text_has="part 2 of 2",
    ),
    RecordedResponse(
        "parts_throttled_and_out_of_funds",
        200,
        answer(part("1", **{"error-text": "Throttled"}), part("9", **{"error-text": "Quota Exceeded"})),
        F,
        code="9",
    ),
    # HTTP answers other than 200
    RecordedResponse(
        "http_429_retry_after", 429, "Too Many Requests", R, code="http_429", retry_after=7.0,
        headers={"Retry-After": "7"}, content_type="text/plain",
    ),
    RecordedResponse("http_408", 408, "", R, code="http_408", content_type="text/plain"),
    RecordedResponse("http_500", 500, "Internal Server Error", M, code="http_500", content_type="text/plain"),
    RecordedResponse("http_502_html", 502, HTML_502, M, code="http_502", content_type="text/html"),
    RecordedResponse(
        "http_503_retry_after", 503, "", M, code="http_503", retry_after=30.0, headers={"Retry-After": "30"},
        content_type="text/plain",
    ),
    RecordedResponse("http_401", 401, {"error-code": "401", "error-code-label": "authentication failed"}, F,
                     code="http_401"),
    RecordedResponse("http_403", 403, "Forbidden", F, code="http_403", content_type="text/plain"),
    RecordedResponse("http_404", 404, "Not Found", F, code="http_404", content_type="text/plain"),
    RecordedResponse(
        "http_301", 301, "", F, code="http_301", headers={"Location": "https://example.com/"},
        content_type="text/plain",
    ),
    RecordedResponse("http_400", 400, "Bad Request", P, code="http_400", content_type="text/plain"),
]


@pytest.fixture(scope="module")
def fake_api_module() -> Iterator[HTTPServer]:
    with fake_api_server() as server:
        yield server


@pytest.fixture
def api(fake_api_module: HTTPServer) -> Iterator[HTTPServer]:
    fake_api_module.clear()
    yield fake_api_module
    fake_api_module.clear()


class TestVonageContract(HttpProviderContract):
    provider_cls = VonageProvider
    send_path = SEND
    recorded_responses = VONAGE_RESPONSES

    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Iterator[Callable[..., Provider]]:
        made: list[Provider] = []

        def make(base_url: str, **settings: Any) -> Provider:
            settings = {"api_key": API_KEY, "sender": SENDER, "base_url": base_url, **settings}
            provider = VonageProvider(Profile("vonage", "vonage", settings), CANARY, tmp_path)
            made.append(provider)
            return provider

        yield make
        for provider in made:
            provider.close()

    def test_table_covers_every_outcome_class(self):
        # Vonage never refuses an opted-out number when it is sent: the send answers status 0 and the opt-out
        # arrives later, as err-code 9 in a delivery receipt (not consumed yet; docs/providers.md).
        kinds = {r.kind for r in self.recorded_responses}
        assert kinds == set(OutcomeKind) - {OutcomeKind.OPTED_OUT}

    def test_an_answer_echoing_the_credentials_never_leaks_them(self, api, make_provider):
        # Vonage's credentials travel in the form, not in an Authorization header: echo them from there.
        def echo(request: Request) -> Response:
            form = parse_qs(request.get_data(as_text=True))
            leak = f"Bad Credentials api_key={form['api_key'][0]} api_secret={form['api_secret'][0]}"
            return Response(json.dumps(error("4", leak)), 200, content_type="application/json")

        api.expect_request(SEND).respond_with_handler(echo)
        outcome = make_provider(base_url_of(api)).send(sample_delivery())
        assert parse_qs(api.log[0][0].get_data(as_text=True))["api_secret"] == [CANARY]
        assert (outcome.kind, outcome.code) == (OutcomeKind.FATAL, "4")
        assert "api_secret=***" in outcome.text
        assert_no_secret(outcome)


# -- the request ------------------------------------------------------------------------------------------------


@pytest.fixture
def vonage(api: HTTPServer, tmp_path: Path) -> Iterator[Callable[..., VonageProvider]]:
    made: list[VonageProvider] = []

    def make(**settings: Any) -> VonageProvider:
        settings = {"api_key": API_KEY, "sender": SENDER, "base_url": base_url_of(api), **settings}
        provider = VonageProvider(Profile("vonage", "vonage", settings), CANARY, tmp_path)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def accept(api: HTTPServer, body: dict[str, Any] | None = None) -> None:
    api.expect_request(SEND, method="POST").respond_with_json(body or answer(part()))


def sent_form(api: HTTPServer) -> dict[str, str]:
    request = api.log[-1][0]
    assert (request.method, request.path) == ("POST", SEND)
    assert request.mimetype == "application/x-www-form-urlencoded"
    form = parse_qs(request.get_data(as_text=True), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in form.values()), form
    return {key: values[0] for key, values in form.items()}


def test_an_sms_is_a_form_post_with_the_key_secret_sender_number_text_and_client_ref(api, vonage):
    accept(api)
    outcome = vonage().send(sample_delivery(transmission_id=4711))
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, MESSAGE_ID)
    assert sent_form(api) == {
        "api_key": API_KEY,
        "api_secret": CANARY,
        "from": SENDER,
        "to": "447700900123",
        "text": "Spring sale: 20% off until Sunday. Reply STOP to opt out.",
        "client-ref": "4711",
    }
    assert "Authorization" not in api.log[-1][0].headers


def test_a_ucs2_message_is_sent_as_unicode_exactly(api, vonage):
    accept(api)
    text = 'Привет Zoë — "20%" off € 😀\nSee you'
    vonage().send(Delivery(9, "c", "+447700900123", text, "sms", encoding="UCS-2"))
    form = sent_form(api)
    assert (form["type"], form["text"]) == ("unicode", text)


def test_a_gsm_message_leaves_the_type_at_vonages_default(api, vonage):
    accept(api)
    vonage().send(Delivery(9, "c", "+447700900123", "Hello [world] €", "sms", encoding="GSM-7"))
    assert "type" not in sent_form(api)


@pytest.mark.parametrize(("sender", "sent"), [("+15005550006", "15005550006"), ("ACME Ltd", "ACME Ltd")])
def test_a_number_sender_loses_its_plus_and_a_sender_id_is_kept(api, vonage, sender, sent):
    accept(api)
    vonage(sender=sender).send(sample_delivery())
    assert sent_form(api)["from"] == sent


def test_whatsapp_is_not_a_vonage_sms_channel(vonage, api):
    outcome = vonage().send(sample_delivery("whatsapp"))
    assert (outcome.kind, outcome.code) == (OutcomeKind.PERMANENT, "unsupported_channel")
    assert api.log == []


def test_lookup_cannot_tell_and_asks_nothing(vonage, api):
    provider = vonage()
    assert provider.can_lookup is False
    assert provider.lookup(sample_delivery(), datetime.now(timezone.utc)) == (LookupResult.CANNOT_TELL, None)
    assert api.log == []


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"api_key": None}, "api_key"),
        ({"sender": ""}, "sender"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_an_incomplete_profile_is_a_configuration_error(vonage, settings, missing):
    with pytest.raises(ConfigError, match=missing) as raised:
        vonage(**settings)
    assert raised.value.exit_code == ExitCode.CONFIG


def test_the_secret_comes_from_vonage_api_secret_or_the_profile_variable(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(f'[providers.vonage]\napi_key = "{API_KEY}"\nsender = "{SENDER}"\n')
    monkeypatch.delenv("BULKSEND_VONAGE_SECRET", raising=False)
    monkeypatch.setenv("VONAGE_API_SECRET", "from-vonage-variable")
    provider = profiles.open_provider(Config.load(tmp_path), "vonage")
    assert isinstance(provider, VonageProvider) and provider.secret == "from-vonage-variable"
    provider.close()
    monkeypatch.setenv("BULKSEND_VONAGE_SECRET", "from-profile-variable")
    provider = profiles.open_provider(Config.load(tmp_path), "vonage")
    assert provider.secret == "from-profile-variable"
    assert "from-profile-variable" not in repr(provider)
    provider.close()


def test_an_api_secret_in_the_config_file_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text(
        f'[providers.vonage]\napi_key = "{API_KEY}"\nsender = "{SENDER}"\napi_secret = "{CANARY}"\n'
    )
    with pytest.raises(ConfigError) as raised:
        profiles.load_profile(Config.load(tmp_path), "vonage")
    assert "BULKSEND_VONAGE_SECRET or VONAGE_API_SECRET" in raised.value.hint
    assert_no_secret(raised.value.message, raised.value.hint)


# -- every status, and multipart messages ----------------------------------------------------------------------

# Written out here, not read from the module: the classes are the decision, and the docs give their sources.
EXPECTED_CLASSES = {
    1: R, 10: R,
    5: M,
    2: P, 3: P, 6: P, 7: P, 12: P, 15: P, 22: P, 23: P, 33: P,
    4: F, 8: F, 9: F, 11: F, 14: F, 29: F, 32: F,
}  # fmt: skip


def test_every_documented_status_has_its_class():
    assert {code: row.send for code, row in VONAGE_SEND_CODES.codes.items()} == EXPECTED_CLASSES


@pytest.mark.parametrize("status", sorted(EXPECTED_CLASSES))
def test_each_status_in_a_200_answer(api, vonage, status):
    api.expect_request(SEND).respond_with_json(answer(part(str(status))))
    outcome = vonage().send(sample_delivery())
    assert (outcome.kind, outcome.code, outcome.provider_id) == (EXPECTED_CLASSES[status], str(status), None)
    assert outcome.text == VONAGE_SEND_CODES.meaning(status), "without error-text, our own words"


def test_a_long_message_is_sent_only_when_every_part_is(api, vonage):
    text = "x" * 400  # three parts of 153
    accept(api, answer(*parts_ok(3)))
    outcome = vonage().send(Delivery(1, "c", "+447700900123", text, "sms"))
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, "0A000000010000001")
    assert sent_form(api)["text"] == text, "Vonage splits it: one request, the whole text"


@pytest.mark.parametrize(
    "statuses",
    [("0", "0", "9"), ("0", "1"), ("1", "0"), ("0", "5"), ("0", "4", "0"), ("0", "29")],
)
def test_partial_success_is_never_counted_as_sent_nor_sent_again(api, vonage, statuses):
    parts = [part(**{"message-id": f"ID{n}"}) if s == "0" else part(s) for n, s in enumerate(statuses)]
    accept(api, answer(*parts))
    outcome = vonage().send(sample_delivery())
    assert (outcome.kind, outcome.code, outcome.provider_id) == (OutcomeKind.AMBIGUOUS, "partial", None)
    ok = statuses.count("0")
    assert f"accepted {ok} of {len(statuses)} parts" in outcome.text
    assert "fragment" in outcome.text


# -- check (the account balance) -------------------------------------------------------------------------------


def test_check_reads_the_balance_with_key_and_secret_in_the_query(api, vonage):
    api.expect_request(BALANCE, method="GET").respond_with_json({"value": 10.171275, "autoReload": False})
    assert vonage().check() == f"vonage account {API_KEY}: balance 10.171275 EUR"
    request = api.log[0][0]
    assert dict(request.args) == {"api_key": API_KEY, "api_secret": CANARY}


def test_check_mentions_auto_reload(api, vonage):
    api.expect_request(BALANCE).respond_with_json({"value": 3, "autoReload": True})
    assert vonage().check() == f"vonage account {API_KEY}: balance 3 EUR (auto-reload on)"


def test_check_with_bad_credentials_is_a_configuration_error_without_the_secret(api, vonage):
    def echo(request: Request) -> Response:
        body = {"error-code": "401", "error-code-label": f"authentication failed for {request.query_string.decode()}"}
        return Response(json.dumps(body), 401, content_type="application/json")

    api.expect_request(BALANCE).respond_with_handler(echo)
    with pytest.raises(ConfigError) as raised:
        vonage().check()
    assert raised.value.exit_code == ExitCode.CONFIG
    assert "refused the credentials" in raised.value.message and "api_secret=***" in raised.value.message
    assert_no_secret(raised.value.message, raised.value.hint, raised.value)


@pytest.mark.parametrize(
    "reply",
    [
        Response("upstream trouble", 500),
        Response('{"value": "lots"}', 200, content_type="application/json"),
        Response("<html>maintenance</html>", 200, content_type="text/html"),
    ],
    ids=["server_error", "value_not_a_number", "not_json"],
)
def test_check_against_a_failing_api_is_an_error_but_not_a_configuration_one(api, vonage, reply):
    api.expect_request(BALANCE).respond_with_response(reply)
    with pytest.raises(ProviderError) as raised:
        vonage().check()
    assert raised.value.exit_code == ExitCode.ERROR
    assert raised.value.message.startswith("Vonage balance check failed (HTTP ")


def test_check_without_a_connection_names_the_problem_never_the_secret(vonage):
    with pytest.raises(BulksendError, match="connection refused") as raised:
        vonage(base_url=f"http://127.0.0.1:{closed_port()}").check()
    assert raised.value.exit_code == ExitCode.ERROR
    assert_no_secret(raised.value.message, raised.value)


# -- `bulksend provider list` and `bulksend provider check` ----------------------------------------------------


@pytest.fixture
def vonage_home(home: Path, api: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    (home / "config.toml").write_text(
        "[providers.vonage-eu]\n"
        'type = "vonage"\n'
        f'api_key = "{API_KEY}"\n'
        f'sender = "{SENDER}"\n'
        f'base_url = "{base_url_of(api)}"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("BULKSEND_VONAGE_EU_SECRET", raising=False)
    monkeypatch.setenv("VONAGE_API_SECRET", CANARY)
    return home


def test_provider_list_shows_the_vonage_and_http_types(vonage_home, cli):
    result = cli("provider", "list", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"vonage", "http"} <= set(doc["types"])
    listed = {p["name"]: p for p in doc["profiles"]}
    assert (listed["vonage-eu"]["type"], listed["vonage-eu"]["secret"]) == ("vonage", "env VONAGE_API_SECRET")
    text = cli("provider", "list").stdout
    assert re.search(r"^Provider types: .*\bhttp\b.*\bvonage\b", text, re.M), text
    assert_no_secret(result.stdout, text)


def test_provider_check_command(api, vonage_home, cli):
    api.expect_request(BALANCE).respond_with_json({"value": 12.5, "autoReload": False})
    result = cli("provider", "check", "vonage-eu")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"vonage account {API_KEY}: balance 12.5 EUR\n"
    doc = json.loads(cli("provider", "check", "vonage-eu", "--json").stdout)
    assert doc == {
        "profile": "vonage-eu",
        "type": "vonage",
        "ok": True,
        "summary": f"vonage account {API_KEY}: balance 12.5 EUR",
    }


def test_provider_check_exit_codes(api, vonage_home, cli):
    api.expect_oneshot_request(BALANCE).respond_with_json(
        {"error-code": "401", "error-code-label": "authentication failed"}, status=401
    )
    api.expect_oneshot_request(BALANCE).respond_with_data("boom", status=500)
    bad_credentials = cli("provider", "check", "vonage-eu")
    failing_api = cli("provider", "check", "vonage-eu")
    assert bad_credentials.exit_code == ExitCode.CONFIG, bad_credentials.stderr
    assert "refused the credentials" in bad_credentials.stderr
    assert failing_api.exit_code == ExitCode.ERROR, failing_api.stderr
    assert "Vonage balance check failed (HTTP 500" in failing_api.stderr
    assert_no_secret(bad_credentials.stdout, bad_credentials.stderr, failing_api.stdout, failing_api.stderr)


# -- a campaign through the engine -----------------------------------------------------------------------------


class FakeVonage:
    """Answers /sms/json like Vonage, keeping every accepted message; some numbers get scripted answers."""

    def __init__(self, scripted: dict[str, list[dict[str, Any]]]) -> None:
        self.scripted = scripted  # digits → answers to give in turn (then acceptance)
        self.accepted: dict[str, int] = {}
        self.requests = 0

    def __call__(self, request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
        self.requests += 1
        assert form["api_secret"] == CANARY
        to = form["to"]
        queue = self.scripted.get(to)
        body = queue.pop(0) if queue else None
        if body is None or body["messages"][0].get("status") == "0":
            self.accepted[to] = self.accepted.get(to, 0) + 1
            body = body or answer(part(to=to, **{"message-id": f"ID-{to}", "client-ref": form["client-ref"]}))
        return Response(json.dumps(body), 200, content_type="application/json")


def test_a_campaign_sends_each_person_once_and_debits_only_what_vonage_accepted(cli, home, tmp_path, api, monkeypatch):
    monkeypatch.setenv("VONAGE_API_SECRET", CANARY)
    campaign, numbers = write_campaign(tmp_path / "c", "spring", 12, provider="vonage", max_attempts=4)
    digits = [n.removeprefix("+") for n in numbers]
    fake = FakeVonage(
        {
            digits[1]: [error("1", "Throttled"), error("1", "Throttled")],  # then sent
            digits[2]: [error("3", "Invalid to address")],
            digits[3]: [answer(part(to=digits[3]), part("9", **{"error-text": "Quota Exceeded"}))],  # a fragment
            digits[4]: [error("5", "Internal Error")],
        }
    )
    api.expect_request(SEND, method="POST").respond_with_handler(fake)
    (home / "config.toml").write_text(
        f'[providers.vonage]\napi_key = "{API_KEY}"\nsender = "{SENDER}"\nbase_url = "{base_url_of(api)}"\n'
        "rate = 1000\nbackoff_base = 0.01\nreconcile_after = 0\n"
    )
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    result = cli("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code == ExitCode.INCOMPLETE, result.stderr
    doc = json.loads(result.stdout)

    rows = ledger_rows(home, "spring")
    states = {number.removeprefix("+"): state for number, (state, _, _) in rows.items()}
    sent = {d for d, state in states.items() if state == "sent"}
    assert sent == {d for d, times in fake.accepted.items() if d != digits[3]}
    assert max(fake.accepted.values()) == 1, "nobody was accepted twice"
    assert (states[digits[2]], rows[numbers[2]][2]) == ("failed", "3")
    assert (states[digits[3]], rows[numbers[3]][2]) == ("unknown", "partial")
    assert (states[digits[4]], rows[numbers[4]][2]) == ("unknown", "5")
    assert doc["counts"] == sendhelpers.states({"sent": 9, "failed": 1, "unknown": 2})
    assert doc["credits_debited"] == 9 == sum(debited for _, debited, _ in rows.values())
    assert fake.requests == 12 + 2, "two throttled attempts, nothing else sent twice"
    audit = cli("credits", "audit")
    assert audit.exit_code == 0, audit.stdout + audit.stderr
    assert_no_secret(result.stdout, result.stderr)


# -- the documentation -----------------------------------------------------------------------------------------


def test_docs_list_every_classified_status_with_its_class_and_source():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "providers.md").read_text(encoding="utf-8")
    section = docs.split("### Vonage", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            status, _name, kind, _why, source = cells
            rows[int(status)] = (kind, source)
    source = "https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms#sms-api-error-codes"
    assert VONAGE_SEND_CODES.source_of(4) == source
    assert rows == {code: (row.send.value, source) for code, row in VONAGE_SEND_CODES.codes.items()}


def test_a_campaign_through_random_faults_never_sends_twice(cli, home, tmp_path, api, monkeypatch):
    """429s, throttling, 500s, connections dropped after acceptance, late answers and fragments, seeded."""
    rng = random.Random(11)
    lock = threading.Lock()
    history: dict[str, list[str]] = {}  # digits → what the fake did with each request, in order
    faults = ["429", "throttled", "500", "drop", "late", "partial"]
    forced = list(faults)  # each kind once, first; then at random

    def fake(request: Request) -> Response:
        form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
        to = form["to"]
        with lock:
            fault = forced.pop(0) if forced else (rng.choice(faults) if rng.random() < 0.35 else "ok")
            history.setdefault(to, []).append(fault)
        if fault == "429":
            return Response("Too Many Requests", 429, headers={"Retry-After": "0"})
        if fault == "throttled":
            return Response(json.dumps(error("1", "Throttled")), 200, content_type="application/json")
        if fault == "500":
            return Response("Internal Server Error", 500)
        if fault == "drop":
            return drop_connection(request)
        accepted = answer(part(to=to, **{"message-id": f"ID-{to}"}))
        if fault == "partial":
            accepted = answer(part(to=to), part("1", **{"error-text": "Throttled"}))
        if fault == "late":
            time.sleep(2.0)  # well past the client's 1 s timeout, so a loaded machine cannot blur the two
        return Response(json.dumps(accepted), 200, content_type="application/json")

    monkeypatch.setenv("VONAGE_API_SECRET", CANARY)
    api.expect_request(SEND, method="POST").respond_with_handler(fake)
    (home / "config.toml").write_text(
        f'[providers.vonage]\napi_key = "{API_KEY}"\nsender = "{SENDER}"\nbase_url = "{base_url_of(api)}"\n'
        "rate = 1000\nbackoff_base = 0.01\nbackoff_cap = 0.05\ntimeout = 1.0\ncircuit_breaker = 0\n"
    )
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path / "c", "faults", 60, provider="vonage", max_attempts=10)
    result = cli("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code in (0, ExitCode.INCOMPLETE), result.stderr
    doc = json.loads(result.stdout)

    # After these the client cannot know that the message did not go (a 500 may hide an acceptance too).
    final = {"ok": "sent", "500": "unknown", "drop": "unknown", "late": "unknown", "partial": "unknown"}
    assert set().union(*history.values()) == {"ok", *faults}, "every kind of fault happened"
    states = {n.removeprefix("+"): state for n, (state, _, _) in ledger_rows(home, "faults").items()}
    for to, events in history.items():
        settled = [n for n, event in enumerate(events) if event in final]
        assert len(settled) <= 1 and (not settled or settled[0] == len(events) - 1), f"{to} sent again: {events}"
        assert states[to] == final.get(events[-1], "failed"), (to, events, states[to])
    sent = sum(state == "sent" for state in states.values())
    assert doc["credits_debited"] == sent == doc["counts"]["sent"]
    assert cli("credits", "audit").exit_code == 0
