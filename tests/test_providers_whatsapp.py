"""The WhatsApp Cloud API adapter: the contract with Meta's answers, the exact requests, check, the CLI, the engine.

Every recorded answer below is shaped as the Graph API sends it: ``{"messaging_product", "contacts",
"messages": [{"id": "wamid…"}]}`` on success, ``{"error": {"message", "type", "code", "error_subcode",
"error_data": {"messaging_product", "details"}, "fbtrace_id"}}`` on failure.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import test_provider_contract as contract
from pytest_httpserver import HTTPServer
from test_provider_contract import (
    CANARY,
    HttpProviderContract,
    RecordedResponse,
    assert_no_secret,
    base_url_of,
    closed_port,
    fake_api_server,
)
from werkzeug import Request, Response

from bulksend.engine import Engine, EngineSettings, StopReason
from bulksend.errors import BulksendError, ConfigError, ExitCode
from bulksend.ledger import NewTransmission, SqliteLedger
from bulksend.providers.base import Delivery, LookupResult, OutcomeKind, Profile, Provider
from bulksend.providers.whatsapp import (
    API_PERMISSION_CODES,
    PAIR_RATE_WAIT,
    WHATSAPP_CODES,
    WhatsAppProvider,
    error_class,
)

PHONE_NUMBER_ID = "106540352242922"
SEND_PATH = f"/v21.0/{PHONE_NUMBER_ID}/messages"
NUMBER_PATH = f"/v21.0/{PHONE_NUMBER_ID}"
WAMID = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQjM5QzU0RjE0NzM3RkJBMDA2AA=="
TRACE = "AhN8ZcW1nP0xq3rT9v2Yb7k"
TEXT = "Spring sale: 20% off until Sunday. Reply STOP to opt out."


# -- Meta's answers ---------------------------------------------------------------------------------------------


def meta_accepted(to: str = "+447700900123", wamid: str = WAMID, **status: Any) -> dict[str, Any]:
    """A send answer as the Cloud API gives it (``status`` may add ``message_status``)."""
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
        "messages": [{"id": wamid, **status}],
    }


def meta_error(
    code: int,
    message: str,
    *,
    details: str | None = None,
    subcode: int | None = None,
    type: str = "OAuthException",
) -> dict[str, Any]:
    """A Graph API error body: titles in ``message`` as "(#code) title", the explanation in error_data."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = TRACE
    return {"error": error}


def _in_two_minutes() -> dict[str, str]:
    return {"Retry-After": format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)}


HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
R = RecordedResponse
K = OutcomeKind

WHATSAPP_RESPONSES = [
    # accepted: the wamid is the provider id
    R("accepted_200", 200, meta_accepted(), K.ACCEPTED, provider_id=WAMID),
    R("accepted_with_status", 200, meta_accepted(message_status="accepted"), K.ACCEPTED, provider_id=WAMID),
    R(
        "held_for_quality_assessment",
        200,
        meta_accepted(message_status="held_for_quality_assessment"),
        K.ACCEPTED,
        provider_id=WAMID,
    ),
    # 2xx that do not prove acceptance: never counted as sent, never blindly resent
    R("ok_without_messages", 200, {"messaging_product": "whatsapp", "contacts": []}, K.AMBIGUOUS, code="http_200"),
    R("ok_messages_empty", 200, {**meta_accepted(), "messages": []}, K.AMBIGUOUS, code="http_200"),
    R("ok_message_without_id", 200, {**meta_accepted(), "messages": [{}]}, K.AMBIGUOUS, code="http_200"),
    R("ok_message_id_null", 200, meta_accepted(wamid=None), K.AMBIGUOUS, code="http_200"),
    R("ok_malformed_json", 200, '{"messaging_product":"whatsapp","messages":[{"id":"wam', K.AMBIGUOUS, code="http_200"),
    R("ok_empty_body", 200, "", K.AMBIGUOUS, code="http_200"),
    R("ok_json_array", 200, [meta_accepted()], K.AMBIGUOUS, code="http_200"),
    R("ok_success_true", 200, {"success": True}, K.AMBIGUOUS, code="http_200"),
    # throttled or refused at the door: certainly not accepted
    R(
        "throughput_130429_429_retry_after",
        429,
        meta_error(130429, "(#130429) Rate limit hit", details="Cloud API message throughput has been reached."),
        K.RETRYABLE,
        code="130429",
        retry_after=7.0,
        headers={"Retry-After": "7"},
    ),
    R("throughput_130429_400", 400, meta_error(130429, "(#130429) Rate limit hit"), K.RETRYABLE, code="130429"),
    R(
        "pair_rate_131056",
        400,
        meta_error(
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            details="Too many messages sent from this phone number to the same phone number in a short time.",
        ),
        K.RETRYABLE,
        code="131056",
        retry_after=PAIR_RATE_WAIT,
        text_has="pair rate limit",
    ),
    R(
        "pair_rate_131056_429_http_date",
        429,
        meta_error(131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
        K.RETRYABLE,
        code="131056",
        retry_after=pytest.approx(120, abs=5),
        headers=_in_two_minutes,
    ),
    R("waba_rate_80007", 400, meta_error(80007, "(#80007) Rate limit issues"), K.RETRYABLE, code="80007"),
    R(
        "app_rate_4_429",
        429,
        meta_error(4, "(#4) Application request limit reached"),
        K.RETRYABLE,
        code="4",
    ),
    R(
        "maintenance_131057",
        500,
        meta_error(131057, "(#131057) Account in maintenance mode"),
        K.RETRYABLE,
        code="131057",
        retry_after=60.0,
    ),
    R("throttled_by_a_proxy", 429, "Too Many Requests", K.RETRYABLE, code="http_429", content_type="text/plain"),
    R("request_timeout_408", 408, "", K.RETRYABLE, code="http_408", content_type="text/plain"),
    # failed inside Meta: the message may exist
    R(
        "something_went_wrong_131000",
        500,
        meta_error(131000, "(#131000) Something went wrong", details="Message failed to send due to an unknown error."),
        K.AMBIGUOUS,
        code="131000",
        text_has="unknown error",
    ),
    R(
        "service_unavailable_131016_retry_after",
        503,
        meta_error(131016, "(#131016) Service unavailable"),
        K.AMBIGUOUS,
        code="131016",
        retry_after=30.0,
        headers={"Retry-After": "30"},
    ),
    R("unexpected_error_1_500", 500, meta_error(1, "An unexpected error occurred"), K.AMBIGUOUS, code="1"),
    R("api_service_2_503", 503, meta_error(2, "(#2) Service temporarily unavailable"), K.AMBIGUOUS, code="2"),
    R("unknown_code_500", 500, meta_error(139999, "(#139999) Something new"), K.AMBIGUOUS, code="139999"),
    R("bad_gateway_502_html", 502, HTML_502, K.AMBIGUOUS, code="http_502", content_type="text/html"),
    # the recipient opted out
    R(
        "marketing_opt_out_131050",
        400,
        meta_error(
            131050,
            "(#131050) User has stopped receipt of marketing messages",
            details="This recipient chose to stop receiving marketing messages on WhatsApp from your business.",
        ),
        K.OPTED_OUT,
        code="131050",
        text_has="stop receiving marketing messages",
    ),
    # this recipient or this message will never work
    R(
        "undeliverable_131026",
        400,
        meta_error(131026, "(#131026) Message undeliverable"),
        K.PERMANENT,
        code="131026",
        text_has=f"fbtrace_id {TRACE}",
    ),
    R(
        "outside_window_131047",
        400,
        meta_error(
            131047,
            "(#131047) Re-engagement message",
            details="More than 24 hours have passed since the recipient last replied to this number.",
        ),
        K.PERMANENT,
        code="131047",
        text_has="24 hours",
    ),
    R("recipient_is_sender_131021", 400, meta_error(131021, "(#131021) Recipient cannot be sender"), K.PERMANENT),
    R("bad_parameter_131009", 400, meta_error(131009, "(#131009) Parameter value is not valid"), K.PERMANENT),
    R("missing_parameter_131008", 400, meta_error(131008, "(#131008) Required parameter is missing"), K.PERMANENT),
    R("text_too_long_132005", 400, meta_error(132005, "(#132005) Template Hydrated Text Too Long"), K.PERMANENT),
    R("format_policy_132007", 400, meta_error(132007, "(#132007) Template Format Character Policy"), K.PERMANENT),
    R("param_format_132012", 400, meta_error(132012, "(#132012) Parameter format does not match"), K.PERMANENT),
    R("country_restricted_130497", 403, meta_error(130497, "(#130497) Restricted country"), K.PERMANENT),
    R("marketing_limit_131049", 400, meta_error(131049, "(#131049) Meta chose not to deliver"), K.PERMANENT),
    R("experiment_130472", 400, meta_error(130472, "(#130472) User's number is part of an experiment"), K.PERMANENT),
    R("unsupported_type_131051", 400, meta_error(131051, "(#131051) Unsupported message type"), K.PERMANENT),
    R("invalid_parameter_100", 400, meta_error(100, "(#100) Invalid parameter"), K.PERMANENT, code="100"),
    R(
        "unknown_4xx_code",
        400,
        meta_error(139998, "(#139998) Something Meta has not documented yet"),
        K.PERMANENT,
        code="139998",
        text_has="Something Meta has not documented yet",
    ),
    R("bad_request_without_json", 400, "Bad Request", K.PERMANENT, code="http_400", content_type="text/plain"),
    # nothing will work: stop the run
    R(
        "token_expired_190",
        401,
        meta_error(
            190,
            "Error validating access token: Session has expired on Tuesday, 24-Nov-26 09:00:00 PST.",
            subcode=463,
        ),
        K.FATAL,
        code="190",
        text_has="Session has expired",
    ),
    R("auth_exception_0", 401, meta_error(0, "(#0) AuthException"), K.FATAL, code="0"),
    R("unauthorized_401_without_body", 401, "", K.FATAL, code="http_401", content_type="text/plain"),
    R("permission_denied_10", 403, meta_error(10, "(#10) Permission Denied"), K.FATAL, code="10"),
    R("api_permission_200", 403, meta_error(200, "(#200) Permissions error"), K.FATAL, code="200"),
    R("api_permission_299", 403, meta_error(299, "(#299) Permissions error"), K.FATAL, code="299"),
    R("capability_3_500", 500, meta_error(3, "(#3) Application does not have the capability"), K.FATAL, code="3"),
    R("access_denied_131005", 403, meta_error(131005, "(#131005) Access denied"), K.FATAL, code="131005"),
    R("account_locked_131031", 403, meta_error(131031, "(#131031) Business Account locked"), K.FATAL),
    R("policy_block_368", 403, meta_error(368, "(#368) Temporarily blocked for policies violations"), K.FATAL),
    R("payment_131042", 400, meta_error(131042, "(#131042) Business eligibility payment issue"), K.FATAL),
    R("display_name_131037", 400, meta_error(131037, "(#131037) Display name approval needed"), K.FATAL),
    R("certificate_131045", 400, meta_error(131045, "(#131045) Incorrect certificate"), K.FATAL),
    R("spam_rate_131048", 400, meta_error(131048, "(#131048) Spam rate limit hit"), K.FATAL),
    R("template_param_count_132000", 400, meta_error(132000, "(#132000) Number of parameters does not match"), K.FATAL),
    R(
        "template_missing_132001",
        404,
        meta_error(132001, "(#132001) Template name does not exist in the translation"),
        K.FATAL,
        code="132001",
    ),
    R("template_paused_132015", 400, meta_error(132015, "(#132015) Template is Paused"), K.FATAL, code="132015"),
    R("template_disabled_132016", 400, meta_error(132016, "(#132016) Template is Disabled"), K.FATAL),
    R("not_registered_133010", 400, meta_error(133010, "(#133010) Account not registered"), K.FATAL, code="133010"),
    R("number_deleted_33", 400, meta_error(33, "(#33) This phone number has been deleted"), K.FATAL, code="33"),
    R(
        "unknown_phone_number_id_100_33",
        400,
        meta_error(
            100,
            f"Unsupported post request. Object with ID '{PHONE_NUMBER_ID}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation.",
            subcode=33,
            type="GraphMethodException",
        ),
        K.FATAL,
        code="100",
    ),
    R("not_found_404_unknown", 404, meta_error(139997, "Unknown path components"), K.FATAL),
    R(
        "redirected_301",
        301,
        "",
        K.FATAL,
        code="http_301",
        headers={"Location": "https://example.com/elsewhere"},
        content_type="text/plain",
    ),
]


def whatsapp_delivery(channel: str = "whatsapp", *, transmission_id: int = 1, to: str = "+447700900123", **kw):
    return Delivery(transmission_id, "contract", to, kw.pop("text", TEXT), channel, **kw)


# -- the module's fake API ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_api_module() -> Iterator[HTTPServer]:
    with fake_api_server() as server:
        yield server


@pytest.fixture
def api(fake_api_module: HTTPServer) -> Iterator[HTTPServer]:
    fake_api_module.clear()
    yield fake_api_module
    fake_api_module.clear()


def _factory(tmp_path: Path, default_base_url: str | None = None):
    made: list[WhatsAppProvider] = []

    def make(base_url: str | None = None, **settings: Any) -> WhatsAppProvider:
        settings = {"phone_number_id": PHONE_NUMBER_ID, "base_url": base_url or default_base_url, **settings}
        provider = WhatsAppProvider(Profile("meta", "whatsapp", settings), CANARY, tmp_path)
        made.append(provider)
        return provider

    return make, made


# -- the contract -------------------------------------------------------------------------------------------------


class TestWhatsAppContract(HttpProviderContract):
    provider_cls = WhatsAppProvider
    send_path = SEND_PATH
    recorded_responses = WHATSAPP_RESPONSES

    @pytest.fixture(autouse=True)
    def _whatsapp_deliveries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The contract's sample deliveries go on SMS unless told otherwise; this adapter only speaks WhatsApp."""
        monkeypatch.setattr(contract, "sample_delivery", whatsapp_delivery)

    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Iterator[Callable[..., Provider]]:
        make, made = _factory(tmp_path)
        yield make
        for provider in made:
            provider.close()


def test_the_table_holds_an_answer_for_every_code_the_adapter_classifies():
    """Each code WHATSAPP_CODES classes on send (and the 200-299 range's ends) is sent back by at least one
    recorded answer."""
    answered = {
        r.body["error"]["code"] for r in WHATSAPP_RESPONSES if isinstance(r.body, dict) and "error" in r.body
    }
    classified = {code for code, row in WHATSAPP_CODES.codes.items() if row.send}
    missing = (classified | {200, 299}) - answered
    assert not missing, f"no recorded answer for {sorted(missing)}"


# -- the request ---------------------------------------------------------------------------------------------------


@pytest.fixture
def whatsapp(api: HTTPServer, tmp_path: Path) -> Iterator[Callable[..., WhatsAppProvider]]:
    """A factory of adapters pointed at the fake API, with the canary as their access token."""
    make, made = _factory(tmp_path, base_url_of(api))
    yield make
    for provider in made:
        provider.close()


def accept(api: HTTPServer, path: str = SEND_PATH) -> None:
    api.expect_request(path, method="POST").respond_with_json(meta_accepted())


def sent_json(api: HTTPServer, path: str = SEND_PATH) -> dict[str, Any]:
    request = api.log[-1][0]
    assert request.method == "POST"
    assert request.path == path
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {CANARY}"
    assert request.headers["User-Agent"].startswith("bulksend/")
    assert request.headers["Accept"] == "application/json"
    assert not request.args, "nothing in the query string"
    return json.loads(request.get_data().decode("utf-8"))


def test_a_template_message_with_header_and_body_parameters(api, whatsapp):
    accept(api)
    delivery = whatsapp_delivery(
        text="Hi Zoë, 20% off with SPRING10",
        params={
            "template": "spring_sale",
            "language": "en_US",
            "category": "marketing",
            "header": ["Spring"],
            "body": ["Zoë", "SPRING10", 20],
        },
    )
    outcome = whatsapp().send(delivery)
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, WAMID)
    assert sent_json(api) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+447700900123",
        "biz_opaque_callback_data": "1",  # our transmission id, echoed in every status webhook
        "type": "template",
        "template": {
            "name": "spring_sale",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "Spring"}]},
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Zoë"},
                        {"type": "text", "text": "SPRING10"},
                        {"type": "text", "text": "20"},
                    ],
                },
            ],
        },
    }
    assert "Zoë".encode() in api.log[-1][0].get_data(), "UTF-8, not \\u escapes"


def test_a_template_without_variables_sends_no_components(api, whatsapp):
    accept(api)
    params = {"template": "hello_world", "language": "en_US", "body": [], "header": []}
    whatsapp().send(whatsapp_delivery(params=params))
    assert sent_json(api)["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_a_body_only_template_sends_only_the_body_component(api, whatsapp):
    accept(api)
    whatsapp().send(whatsapp_delivery(params={"template": "order_update", "language": "pt_BR", "body": ["42"]}))
    assert sent_json(api)["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "42"}]}
    ]


def test_a_text_message_inside_the_window(api, whatsapp):
    accept(api)
    outcome = whatsapp().send(whatsapp_delivery(params={"first_name": "Zoë"}))
    assert (outcome.kind, outcome.provider_id) == (OutcomeKind.ACCEPTED, WAMID)
    assert sent_json(api) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+447700900123",
        "biz_opaque_callback_data": "1",  # our transmission id, echoed in every status webhook
        "type": "text",
        "text": {"body": TEXT, "preview_url": False},
    }


def test_api_version_and_base_url_come_from_the_profile(api, whatsapp):
    accept(api, f"/v23.0/{PHONE_NUMBER_ID}/messages")
    outcome = whatsapp(api_version="v23.0").send(whatsapp_delivery())
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert api.log[-1][0].path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
    accept(api, f"/proxy/v21.0/{PHONE_NUMBER_ID}/messages")
    whatsapp(base_url=base_url_of(api) + "/proxy/").send(whatsapp_delivery())
    assert api.log[-1][0].path == f"/proxy/v21.0/{PHONE_NUMBER_ID}/messages"


@pytest.mark.parametrize(
    ("params", "code", "kind"),
    [
        ({"template": "", "language": "en_US"}, "bad_template_params", OutcomeKind.FATAL),
        ({"template": "spring_sale"}, "bad_template_params", OutcomeKind.FATAL),
        ({"template": "spring_sale", "language": "en_US", "body": "Ann"}, "bad_template_params", OutcomeKind.FATAL),
        ({"template": "spring_sale", "language": "en", "body": [{"x": 1}]}, "bad_template_params", OutcomeKind.FATAL),
        ({"template": "spring_sale", "language": "en_US", "body": [True]}, "bad_template_params", OutcomeKind.FATAL),
        ({"template": "s", "language": "en", "buttons": [{"payload": "x"}]}, "unsupported_params", OutcomeKind.FATAL),
        ({"template": "spring_sale", "language": "en", "body": ["Ann", ""]}, "empty_parameter", OutcomeKind.PERMANENT),
        ({"template": "spring_sale", "language": "en_US", "header": [None]}, "empty_parameter", OutcomeKind.PERMANENT),
        ({"template": "spring_sale", "language": "en_US", "body": ["  "]}, "empty_parameter", OutcomeKind.PERMANENT),
        ({"template": "spring_sale", "language": "en_US", "body": [float("nan")]}, "empty_parameter", OutcomeKind.PERMANENT),
    ],
    ids=[
        "no_name",
        "no_language",
        "body_not_a_list",
        "value_not_text",
        "value_bool",
        "buttons",
        "empty_body_value",
        "empty_header_value",
        "blank_value",
        "nan_value",
    ],
)
def test_params_that_cannot_be_sent_are_reported_without_a_request(api, whatsapp, params, code, kind):
    outcome = whatsapp().send(whatsapp_delivery(params=params))
    assert (outcome.kind, outcome.code) == (kind, code), outcome
    assert outcome.text
    assert not api.log, "nothing was sent"


def test_an_empty_or_too_long_text_fails_that_message_without_a_request(api, whatsapp):
    provider = whatsapp()
    assert provider.send(whatsapp_delivery(text="   ")).code == "empty_body"
    too_long = provider.send(whatsapp_delivery(text="x" * 4097))
    assert (too_long.kind, too_long.code) == (OutcomeKind.PERMANENT, "body_too_long")
    assert not api.log
    accept(api)
    assert provider.send(whatsapp_delivery(text="é" * 4096)).kind is OutcomeKind.ACCEPTED


def test_the_adapter_states_its_limits():
    assert WhatsAppProvider.channels == frozenset({"whatsapp"})
    assert WhatsAppProvider.max_body == 4096
    assert WhatsAppProvider.secret_env == "WHATSAPP_TOKEN"
    assert WhatsAppProvider.can_lookup is False


def test_an_answer_echoing_the_token_in_a_meta_error_never_leaks_it(api, whatsapp):
    def echo(request: Request) -> Response:
        leak = f"Invalid OAuth access token - Cannot parse access token: {request.headers['Authorization']} {CANARY}"
        body = meta_error(190, leak)
        body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": f"token={CANARY}"}
        return Response(json.dumps(body), 401, content_type="application/json")

    api.expect_request(SEND_PATH).respond_with_handler(echo)
    provider = whatsapp()
    outcome = provider.send(whatsapp_delivery())
    assert (outcome.kind, outcome.code) == (OutcomeKind.FATAL, "190")
    assert "Bearer ***" in outcome.text
    assert_no_secret(outcome, provider, provider._session.auth, provider._scrub)


def test_a_token_in_the_base_url_never_reaches_an_outcome(whatsapp):
    outcome = whatsapp(base_url=f"http://user:{CANARY}@127.0.0.1:{closed_port()}").send(whatsapp_delivery())
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert_no_secret(outcome)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"phone_number_id": None}, "phone_number_id"),
        ({"phone_number_id": "+15550001111"}, "phone_number_id"),
        ({"api_version": "21"}, "api_version"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"timeout": "soon"}, "timeout"),
        ({"concurrency": "many"}, "concurrency"),
    ],
)
def test_an_incomplete_profile_is_a_configuration_error(whatsapp, settings, named):
    with pytest.raises(ConfigError, match=named) as raised:
        whatsapp(**settings)
    assert raised.value.exit_code == ExitCode.CONFIG


def test_a_numeric_phone_number_id_from_toml_is_accepted(api, whatsapp):
    accept(api)
    assert whatsapp(phone_number_id=int(PHONE_NUMBER_ID)).send(whatsapp_delivery()).kind is OutcomeKind.ACCEPTED


def test_the_pool_is_sized_to_the_concurrency_and_never_retries(whatsapp):
    adapter = whatsapp(concurrency=48)._session.get_adapter("https://graph.facebook.com")
    assert adapter._pool_maxsize == 48
    assert adapter.max_retries.total == 0


def test_lookup_cannot_tell(api, whatsapp):
    result = whatsapp().lookup(whatsapp_delivery(), datetime.now(timezone.utc))
    assert result == (LookupResult.CANNOT_TELL, None)
    assert not api.log, "the Cloud API has nothing to ask"


def test_error_class_knows_ranges_and_subcodes():
    assert error_class(None) is None
    assert error_class(100) is OutcomeKind.PERMANENT
    assert error_class(100, 33) is OutcomeKind.FATAL
    assert all(error_class(code) is OutcomeKind.FATAL for code in API_PERMISSION_CODES)
    assert error_class(131001) is None and error_class(131002) is None  # not on Meta's page: by HTTP status


# -- check (the phone number's fields) ------------------------------------------------------------------------------


NUMBER_FIELDS = {
    "display_phone_number": "+1 555-010-0000",
    "verified_name": "Acme Spring",
    "quality_rating": "GREEN",
    "id": PHONE_NUMBER_ID,
}
SUMMARY = f"whatsapp phone number {PHONE_NUMBER_ID}: +1 555-010-0000 (Acme Spring), quality GREEN"


def test_check_reads_the_phone_number(api, whatsapp):
    api.expect_request(NUMBER_PATH, method="GET").respond_with_json(NUMBER_FIELDS)
    assert whatsapp().check() == SUMMARY
    request = api.log[0][0]
    assert request.args.get("fields") == "display_phone_number,verified_name,quality_rating"
    assert request.headers["Authorization"] == f"Bearer {CANARY}"


def echo_token(status: int, code: int, subcode: int | None = None) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        leak = f"Invalid OAuth access token {request.headers['Authorization']} ({CANARY})"
        body = meta_error(code, leak, subcode=subcode)
        return Response(json.dumps(body), status, content_type="application/json")

    return handler


@pytest.mark.parametrize(
    ("status", "code", "subcode", "says"),
    [
        (401, 190, 463, "refused the access token"),
        (400, 190, None, "refused the access token"),
        (403, 10, None, "may not use phone number id"),
        (403, 200, None, "may not use phone number id"),
        (400, 100, 33, "does not know phone number id"),
    ],
)
def test_check_with_a_bad_token_or_id_is_a_configuration_error_without_the_secret(
    api, whatsapp, status, code, subcode, says
):
    api.expect_request(NUMBER_PATH).respond_with_handler(echo_token(status, code, subcode))
    with pytest.raises(ConfigError) as raised:
        whatsapp().check()
    assert raised.value.exit_code == ExitCode.CONFIG
    assert says in raised.value.message
    assert_no_secret(raised.value.message, raised.value.hint, raised.value)


@pytest.mark.parametrize("status", [500, 503])
def test_check_against_a_failing_api_is_an_error_but_not_a_configuration_one(api, whatsapp, status):
    body = meta_error(131000, "(#131000) Something went wrong")
    api.expect_request(NUMBER_PATH).respond_with_json(body, status=status)
    with pytest.raises(BulksendError, match="check failed") as raised:
        whatsapp().check()
    assert not isinstance(raised.value, ConfigError)
    assert raised.value.exit_code == ExitCode.ERROR


def test_check_without_a_connection_is_an_error(whatsapp):
    with pytest.raises(BulksendError, match="connection refused") as raised:
        whatsapp(base_url=f"http://127.0.0.1:{closed_port()}").check()
    assert raised.value.exit_code == ExitCode.ERROR


# -- `bulksend provider check` ---------------------------------------------------------------------------------


@pytest.fixture
def meta_home(home: Path, api: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    (home / "config.toml").write_text(
        "[providers.meta]\n"
        'type = "whatsapp"\n'
        f'phone_number_id = "{PHONE_NUMBER_ID}"\n'
        'api_version = "v21.0"\n'
        f'base_url = "{base_url_of(api)}"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("BULKSEND_META_SECRET", raising=False)
    monkeypatch.setenv("WHATSAPP_TOKEN", CANARY)
    return home


def test_provider_check_command(api, meta_home, cli):
    api.expect_request(NUMBER_PATH).respond_with_json(NUMBER_FIELDS)
    result = cli("provider", "check", "meta")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == SUMMARY + "\n"
    result = cli("provider", "check", "meta", "--json")
    assert json.loads(result.stdout) == {"profile": "meta", "type": "whatsapp", "ok": True, "summary": SUMMARY}
    assert_no_secret(result.stdout, result.stderr)


def test_provider_check_exit_codes(api, meta_home, cli):
    api.expect_oneshot_request(NUMBER_PATH).respond_with_handler(echo_token(401, 190, 463))
    api.expect_oneshot_request(NUMBER_PATH).respond_with_data("upstream trouble", status=502)
    bad_token = cli("provider", "check", "meta")
    failing_api = cli("provider", "check", "meta")
    assert bad_token.exit_code == ExitCode.CONFIG, bad_token.stderr
    assert "refused the access token" in bad_token.stderr
    assert failing_api.exit_code == ExitCode.ERROR, failing_api.stderr
    assert "check failed (HTTP 502" in failing_api.stderr
    assert_no_secret(bad_token.stdout, bad_token.stderr, failing_api.stdout, failing_api.stderr)


def test_provider_list_shows_the_type_and_where_the_token_comes_from(meta_home, cli):
    doc = json.loads(cli("provider", "list", "--json").stdout)
    assert "whatsapp" in doc["types"]
    meta = next(p for p in doc["profiles"] if p["name"] == "meta")
    assert (meta["type"], meta["secret"]) == ("whatsapp", "env WHATSAPP_TOKEN")


def test_the_profile_secret_variable_wins_over_whatsapp_token(api, meta_home, cli, monkeypatch):
    monkeypatch.setenv("BULKSEND_META_SECRET", "per-profile-token-1234")
    api.expect_request(NUMBER_PATH).respond_with_json(NUMBER_FIELDS)
    assert cli("provider", "check", "meta").exit_code == 0
    assert api.log[-1][0].headers["Authorization"] == "Bearer per-profile-token-1234"


def test_a_token_in_the_profile_is_refused(home, cli, monkeypatch):
    monkeypatch.setenv("WHATSAPP_TOKEN", CANARY)
    (home / "config.toml").write_text(
        f'[providers.meta]\ntype = "whatsapp"\nphone_number_id = "{PHONE_NUMBER_ID}"\naccess_token = "{CANARY}"\n'
    )
    result = cli("provider", "check", "meta")
    assert result.exit_code == ExitCode.CONFIG
    assert "WHATSAPP_TOKEN" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


# -- the engine against a misbehaving fake Cloud API ----------------------------------------------------------------


class FakeCloudAPI:
    """A fake ``/messages`` endpoint: accepts each message once per request unless a fault is drawn for it.

    Faults: 130429 (429, Retry-After) and 131056 (400, Retry-After) never create a message; 131000 (500)
    creates it or not, at random; a dropped connection after reading the request creates it or not; a late
    answer (after the client's read timeout) always creates it. ``accepted`` is the ground truth.
    """

    FAULTS = ("130429", "131056", "131000", "drop", "late")

    def __init__(self, rate: float, seed: int, retry_after: float, late_by: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.retry_after = retry_after
        self.late_by = late_by
        self.lock = threading.Lock()
        self.accepted: Counter = Counter()
        self.faults: Counter = Counter()
        self.post_times: dict[str, list[float]] = {}
        self.throttled: list[tuple[str, float, float]] = []  # (number, answered at, wait until)
        self.templates: set[str] = set()

    def _draw(self) -> tuple[str | None, bool]:
        with self.lock:
            fault = self.rng.choice(self.FAULTS) if self.rng.random() < self.rate else None
            return fault, self.rng.random() < 0.5

    def __call__(self, request: Request) -> Response:
        document = json.loads(request.get_data())
        to = document["to"]
        now = time.time()
        fault, coin = self._draw()
        with self.lock:
            self.post_times.setdefault(to, []).append(now)
            self.templates.add(document["template"]["name"])
            if fault:
                self.faults[fault] += 1
            creates = fault is None or fault == "late" or (fault in ("131000", "drop") and coin)
            if creates:
                self.accepted[to] += 1
            if fault in ("130429", "131056"):
                self.throttled.append((to, now, now + self.retry_after))
        headers = {"Retry-After": f"{self.retry_after:g}"}
        if fault == "130429":
            body = meta_error(130429, "(#130429) Rate limit hit")
            return Response(json.dumps(body), 429, headers, "application/json")
        if fault == "131056":
            body = meta_error(131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit")
            return Response(json.dumps(body), 400, headers, "application/json")
        if fault == "131000":
            body = meta_error(131000, "(#131000) Something went wrong")
            return Response(json.dumps(body), 500, {}, "application/json")
        if fault == "drop":
            sock = request.environ["werkzeug.socket"]
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            return Response("", 200)
        if fault == "late":
            time.sleep(self.late_by)
        return Response(json.dumps(meta_accepted(to, f"wamid.{to.lstrip('+')}")), 200, {}, "application/json")


def template_params(name: str) -> dict[str, Any]:
    """What the campaign layer stores for one row of a template campaign."""
    return {"template": "spring_sale", "language": "en_US", "category": "marketing", "body": [name]}


def test_a_template_campaign_through_faults_never_sends_twice_and_debits_what_meta_accepted(api, tmp_path):
    n = 120
    fake = FakeCloudAPI(rate=0.25, seed=11, retry_after=0.5, late_by=0.5)
    api.expect_request(SEND_PATH, method="POST").respond_with_handler(fake)
    numbers = [f"+4479111{i:05d}" for i in range(n)]
    profile = {"phone_number_id": PHONE_NUMBER_ID, "base_url": base_url_of(api), "timeout": 0.25}
    provider = WhatsAppProvider(Profile("meta", "whatsapp", profile), CANARY, tmp_path)
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        ledger.topup("whatsapp", 10_000)
        campaign = ledger.open_campaign("spring", "whatsapp", "meta", "fp-spring")
        rows = [
            NewTransmission(e164, f"Hi R{i}", 1, 1, row_number=i + 1, params=json.dumps(template_params(f"R{i}")))
            for i, e164 in enumerate(numbers)
        ]
        ledger.add_transmissions(campaign.id, rows)
        ledger.hold(campaign.id, "whatsapp", ledger.outstanding_cost(campaign.id))
        settings = EngineSettings(
            concurrency=8, max_attempts=10, breaker=0, max_wait=10,
            backoff_base=0.05, backoff_cap=0.2, reconcile_after=0.0,
        )
        result = Engine(ledger, provider, campaign, settings).run()
        provider.close()

        assert result.reason is StopReason.DONE
        assert set(fake.faults) == set(FakeCloudAPI.FAULTS), fake.faults
        assert fake.templates == {"spring_sale"}

        # Nobody got the message twice; every row is final or unknown.
        assert max(fake.accepted.values()) == 1
        counts = ledger.counts(campaign.id)
        assert set(counts) <= {"sent", "unknown"} and sum(counts.values()) == n, counts
        sent = {t.e164 for t in ledger.transmissions(campaign.id, ["sent"])}
        unknown = {t.e164 for t in ledger.transmissions(campaign.id, ["unknown"])}
        assert sent <= set(fake.accepted), "sent only what Meta accepted"
        assert set(fake.accepted) <= sent | unknown, "what Meta accepted and we could not confirm waits as unknown"
        assert unknown, "ambiguous answers leave rows unknown: the Cloud API cannot be asked"
        assert {t.provider_id for t in ledger.transmissions(campaign.id, ["sent"])} == {
            f"wamid.{e164.lstrip('+')}" for e164 in sent
        }

        # Debits equal the rows sent, and the books add up.
        assert ledger.campaign_credits(campaign.id)[0] == len(sent)
        assert ledger.audit().consistent

    # No retry came sooner than Meta asked (130429 and 131056 both carried a Retry-After).
    assert fake.throttled
    for number, answered, until in fake.throttled:
        later = [t for t in fake.post_times[number] if t > answered]
        if later:
            assert min(later) >= until - 0.01, (number, min(later) - until)


# -- the documentation -----------------------------------------------------------------------------------------


def _whatsapp_section() -> str:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "providers.md").read_text(encoding="utf-8")
    start = docs.index("### WhatsApp Cloud API")
    end = docs.index("\n### ", start + 1)
    return docs[start:end]


def test_docs_list_every_classified_code_with_its_class_and_source():
    rows: dict[str, tuple[str, str]] = {}
    for line in _whatsapp_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\d+(-\d+)?`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1], cells[3])
    expected = {str(code): row.send.value for code, row in WHATSAPP_CODES.codes.items() if row.send}
    expected["200-299"] = OutcomeKind.FATAL.value
    assert {code: kind for code, (kind, _) in rows.items()} == expected
    for code, (_, source) in rows.items():
        assert source.startswith("https://developers.facebook.com/"), (code, source)


def test_docs_give_the_params_shape_the_campaign_layer_fills():
    section = _whatsapp_section()
    for key in ('"template"', '"language"', '"category"', '"body"', '"header"', "WHATSAPP_TOKEN", "phone_number_id"):
        assert key in section, key
