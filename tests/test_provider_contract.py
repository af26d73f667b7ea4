"""The provider contract: one set of tests every adapter passes, fed per adapter by a table of recorded answers.

``ProviderContract`` holds what every adapter promises (registered, limits stated, accepts on each channel,
thread-safe, never shows its secret, never raises for a recipient). ``HttpProviderContract`` adds what every
HTTP adapter promises, against a real local HTTP server: each recorded response of the real API classified
as the engine needs it, and every transport fault (refused, DNS, connect timeout, read timeout, dropped).

A new adapter's tests subclass one of them and provide ``make_provider`` (and, for HTTP, ``send_path`` and
``recorded_responses``); see ``TestTwilioContract`` below and ``TestOutboxContract`` in this module.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from bulksend.providers.base import (
    Delivery,
    LookupResult,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    provider_class,
)
from bulksend.providers.outbox import OutboxProvider
from bulksend.providers.twilio import TwilioProvider

CANARY = "canary-S3CR3T-7f3a9c1e"  # the secret every adapter under test gets; must never come back out

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
MESSAGE_SID = "SM" + "fedcba9876543210" * 2


# -- a real local HTTP server -----------------------------------------------------------------------------------


class SettlingHTTPServer(HTTPServer):
    """A pytest-httpserver whose ``clear()`` first waits for the requests still being answered.

    A test whose client gave up early (a read timeout, a dropped connection) leaves its handler running;
    its request is logged when the handler returns. Shared by a module, the server would put that entry
    in the log of whichever test runs next (random order makes that any test), so clearing between tests
    waits for it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = 0
        self._idle = threading.Condition()

    def application(self, request: Request) -> Response:
        with self._idle:
            self._in_flight += 1
        try:
            return super().application(request)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def clear(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=30)
        super().clear()


@contextmanager
def fake_api_server() -> Iterator[HTTPServer]:
    """A threaded pytest-httpserver, so that a handler that sleeps past a timeout blocks no other test."""
    server = SettlingHTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def base_url_of(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def closed_port() -> int:
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def drop_connection(request: Request) -> Response:
    """Read the whole request, then close the socket without a word: the client cannot know what happened."""
    request.get_data()
    sock = request.environ["werkzeug.socket"]
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    return Response("", status=200)


def respond_after(seconds: float, response: Response) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        request.get_data()
        time.sleep(seconds)
        return response

    return handler


@pytest.fixture(scope="module")
def fake_api_module() -> Iterator[HTTPServer]:
    with fake_api_server() as server:
        yield server


@pytest.fixture
def api(fake_api_module: HTTPServer) -> Iterator[HTTPServer]:
    """The module's fake API, emptied before and after each test."""
    fake_api_module.clear()
    yield fake_api_module
    fake_api_module.clear()


# -- the table of recorded answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedResponse:
    """One answer the real API gives (status, headers, body as it sends it) and the outcome it must become.

    ``body``: a dict or list is sent as JSON, str/bytes as they are. ``headers`` may be a callable, for values
    computed when the answer is sent (an HTTP date). ``code``/``provider_id``/``retry_after`` are what the
    Outcome must hold (``retry_after`` may be a ``pytest.approx``); ``text_has`` a fragment of its text.
    """

    name: str
    status: int
    body: Any
    kind: OutcomeKind
    code: str | None = None
    provider_id: str | None = None
    retry_after: Any = None
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]] = field(default_factory=dict)
    content_type: str = "application/json"
    text_has: str | None = None

    def response(self) -> Response:
        if isinstance(self.body, dict | list):
            data: str | bytes = json.dumps(self.body)
        else:
            data = self.body
        headers = self.headers() if callable(self.headers) else self.headers
        return Response(data, status=self.status, headers=dict(headers), content_type=self.content_type)


def sample_delivery(channel: str = "sms", *, transmission_id: int = 1, to: str = "+447700900123") -> Delivery:
    return Delivery(
        transmission_id=transmission_id,
        campaign="contract",
        to=to,
        text="Spring sale: 20% off until Sunday. Reply STOP to opt out.",
        channel=channel,
    )


def assert_no_secret(*things: object) -> None:
    for thing in things:
        assert CANARY not in str(thing), f"the secret leaked into {thing!r}"
        assert CANARY not in repr(thing), f"the secret leaked into {thing!r}"


# -- the contract every adapter keeps ---------------------------------------------------------------------------


class ProviderContract:
    """What every adapter promises. Subclasses set ``provider_cls`` and provide the ``make_provider`` fixture:
    a factory ``make_provider(base_url, **settings) -> Provider`` built with ``CANARY`` as its secret (an
    adapter without a network API ignores ``base_url``). ``accepting_base_url`` must lead to acceptance.
    """

    provider_cls: ClassVar[type[Provider]]

    @pytest.fixture
    def make_provider(self) -> Callable[..., Provider]:  # pragma: no cover - every subclass provides it
        raise NotImplementedError

    @pytest.fixture
    def accepting_base_url(self) -> str:
        return ""

    @pytest.fixture
    def accepting_provider(self, make_provider, accepting_base_url) -> Provider:
        return make_provider(accepting_base_url)

    def test_is_registered_under_its_type_name(self):
        assert provider_class(self.provider_cls.type_name) is self.provider_cls

    def test_states_its_limits(self):
        cls = self.provider_cls
        assert cls.channels and cls.channels <= {"sms", "whatsapp"}
        assert cls.default_rate > 0 and cls.max_body > 0
        assert cls.secret_env is None or cls.secret_env.isupper()
        assert cls.needs_secret or cls.secret_env is None

    def test_accepts_a_message_on_every_channel(self, accepting_provider):
        for number, channel in enumerate(sorted(self.provider_cls.channels), start=1):
            outcome = accepting_provider.send(sample_delivery(channel, transmission_id=number))
            assert outcome.kind is OutcomeKind.ACCEPTED, outcome
            assert isinstance(outcome.provider_id, str) and outcome.provider_id

    def test_sends_from_many_threads_at_once(self, accepting_provider):
        deliveries = [sample_delivery(transmission_id=n, to=f"+4477009{n:05d}") for n in range(1, 41)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(accepting_provider.send, deliveries))
        assert [o.kind for o in outcomes] == [OutcomeKind.ACCEPTED] * len(deliveries)

    def test_an_unsupported_channel_is_a_permanent_failure_not_an_exception(self, accepting_provider):
        outcome = accepting_provider.send(sample_delivery("carrier-pigeon"))
        assert outcome.kind is OutcomeKind.PERMANENT

    def test_lookup_answers_without_raising(self, accepting_provider):
        result, provider_id = accepting_provider.lookup(sample_delivery(), datetime.now(timezone.utc))
        assert isinstance(result, LookupResult)
        assert provider_id is None or isinstance(provider_id, str)

    def test_never_shows_its_secret(self, accepting_provider):
        outcome = accepting_provider.send(sample_delivery())
        assert_no_secret(accepting_provider, outcome)

    def test_closing_twice_is_harmless(self, accepting_provider):
        accepting_provider.close()
        accepting_provider.close()


class HttpProviderContract(ProviderContract):
    """What every HTTP adapter promises, against a real local server.

    Subclasses also set ``send_path`` (the path the send request goes to, for the ``make_provider`` settings)
    and ``recorded_responses`` (the table: every answer class of the real API, shaped exactly as it sends it).
    """

    send_path: ClassVar[str]
    recorded_responses: ClassVar[list[RecordedResponse]]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "recorded" in metafunc.fixturenames:
            table = self.recorded_responses
            metafunc.parametrize("recorded", table, ids=[r.name for r in table])

    @pytest.fixture
    def accepting_base_url(self, api: HTTPServer) -> str:
        accepted = next(r for r in self.recorded_responses if r.kind is OutcomeKind.ACCEPTED)
        api.expect_request(self.send_path).respond_with_response(accepted.response())
        return base_url_of(api)

    def test_table_covers_every_outcome_class(self):
        kinds = {r.kind for r in self.recorded_responses}
        assert kinds == set(OutcomeKind), f"no recorded response for {set(OutcomeKind) - kinds}"

    def test_recorded_response(self, recorded: RecordedResponse, api: HTTPServer, make_provider):
        api.expect_request(self.send_path).respond_with_response(recorded.response())
        provider = make_provider(base_url_of(api))
        outcome = provider.send(sample_delivery())
        assert outcome.kind is recorded.kind, outcome
        if recorded.code is not None:
            assert outcome.code == recorded.code, outcome
        assert outcome.provider_id == recorded.provider_id, outcome
        assert outcome.retry_after == recorded.retry_after, outcome
        if recorded.text_has is not None:
            assert recorded.text_has in (outcome.text or ""), outcome
        if outcome.kind is not OutcomeKind.ACCEPTED:
            assert outcome.text, "a failure always says why"
        assert len(api.log) == 1, "an adapter never retries by itself"
        assert_no_secret(outcome)

    def test_connection_refused_is_retryable(self, make_provider):
        outcome = make_provider(f"http://127.0.0.1:{closed_port()}").send(sample_delivery())
        assert (outcome.kind, outcome.code) == (OutcomeKind.RETRYABLE, "connect_error"), outcome
        assert_no_secret(outcome)

    def test_name_resolution_failure_is_retryable(self, make_provider, monkeypatch):
        real_getaddrinfo = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if str(host).endswith(".invalid"):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        outcome = make_provider("https://api.provider.invalid").send(sample_delivery())
        assert (outcome.kind, outcome.code) == (OutcomeKind.RETRYABLE, "connect_error"), outcome

    def test_connect_timeout_is_retryable(self, make_provider, monkeypatch):
        import urllib3.util.connection

        def never_connects(*args, **kwargs):
            raise TimeoutError("timed out")

        monkeypatch.setattr(urllib3.util.connection, "create_connection", never_connects)
        outcome = make_provider(f"http://127.0.0.1:{closed_port()}").send(sample_delivery())
        assert (outcome.kind, outcome.code) == (OutcomeKind.RETRYABLE, "connect_timeout"), outcome

    def test_read_timeout_after_sending_is_ambiguous(self, api, make_provider):
        accepted = next(r for r in self.recorded_responses if r.kind is OutcomeKind.ACCEPTED)
        api.expect_request(self.send_path).respond_with_handler(respond_after(1.0, accepted.response()))
        provider = make_provider(base_url_of(api), timeout=0.3)
        outcome = provider.send(sample_delivery())
        # The answer comes after 1.0 s: a read timeout shows the profile's 0.3 s applied, not a default.
        assert (outcome.kind, outcome.code) == (OutcomeKind.AMBIGUOUS, "read_timeout"), outcome

    def test_connection_dropped_after_sending_is_ambiguous(self, api, make_provider):
        api.expect_request(self.send_path).respond_with_handler(drop_connection)
        outcome = make_provider(base_url_of(api)).send(sample_delivery())
        assert (outcome.kind, outcome.code) == (OutcomeKind.AMBIGUOUS, "connection_dropped"), outcome

    def test_an_answer_echoing_the_credentials_never_leaks_them(self, api, make_provider):
        def echo(request: Request) -> Response:
            leak = f"bad credentials {request.headers.get('Authorization')} (token {CANARY})"
            return Response(json.dumps({"code": 20003, "message": leak, "status": 401}), 401)

        api.expect_request(self.send_path).respond_with_handler(echo)
        outcome = make_provider(base_url_of(api)).send(sample_delivery())
        authorization = api.log[0][0].headers.get("Authorization", "")
        assert authorization, "the request carries credentials"
        assert authorization.split()[-1] not in (outcome.text or "")
        assert_no_secret(outcome)


# -- the outbox ---------------------------------------------------------------------------------------------------


class TestOutboxContract(ProviderContract):
    provider_cls = OutboxProvider

    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Iterator[Callable[..., Provider]]:
        made: list[Provider] = []

        def make(base_url: str = "", **settings: Any) -> Provider:
            provider = OutboxProvider(Profile("outbox", "outbox", settings), None, tmp_path)
            made.append(provider)
            return provider

        yield make
        for provider in made:
            provider.close()


# -- Twilio -------------------------------------------------------------------------------------------------------


def twilio_message(status: str = "queued", **fields: Any) -> dict[str, Any]:
    """A Message resource as the 2010-04-01 API returns it on create."""
    now = format_datetime(datetime.now(timezone.utc), usegmt=False)
    message = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "Spring sale: 20% off until Sunday. Reply STOP to opt out.",
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15005550006",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": MESSAGE_SID,
        "status": status,
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}/Media.json"},
        "to": "+447700900123",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}.json",
    }
    message.update(fields)
    return message


def twilio_error(code: int, message: str, status: int = 400) -> dict[str, Any]:
    """An error as the 2010-04-01 API returns it."""
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": more_info, "status": status}


def _in_two_minutes() -> dict[str, str]:
    return {"Retry-After": format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)}


HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

TWILIO_RESPONSES = [
    # accepted
    RecordedResponse("created_201", 201, twilio_message(), OutcomeKind.ACCEPTED, provider_id=MESSAGE_SID),
    RecordedResponse(
        "created_with_messaging_service_200",
        200,
        twilio_message("accepted", **{"from": None, "messaging_service_sid": "MG" + "a" * 32}),
        OutcomeKind.ACCEPTED,
        provider_id=MESSAGE_SID,
    ),
    # 2xx that do not prove acceptance: never counted as sent, never blindly resent
    RecordedResponse(
        "created_without_sid",
        201,
        {k: v for k, v in twilio_message().items() if k != "sid"},
        OutcomeKind.AMBIGUOUS,
        code="http_201",
    ),
    RecordedResponse("created_sid_null", 201, twilio_message(sid=None), OutcomeKind.AMBIGUOUS, code="http_201"),
    RecordedResponse(
        "created_malformed_json", 201, '{"sid": "SMfedcba98', OutcomeKind.AMBIGUOUS, code="http_201"
    ),
    RecordedResponse("created_empty_body", 201, "", OutcomeKind.AMBIGUOUS, code="http_201"),
    RecordedResponse("ok_json_array", 200, [twilio_message()], OutcomeKind.AMBIGUOUS, code="http_200"),
    # throttled: certainly not accepted, wait as asked
    RecordedResponse(
        "throttled_429_retry_after_seconds",
        429,
        twilio_error(20429, "Too Many Requests", 429),
        OutcomeKind.RETRYABLE,
        code="20429",
        retry_after=7.0,
        headers={"Retry-After": "7"},
    ),
    RecordedResponse(
        "throttled_429_retry_after_http_date",
        429,
        twilio_error(20429, "Too Many Requests", 429),
        OutcomeKind.RETRYABLE,
        code="20429",
        retry_after=pytest.approx(120, abs=5),
        headers=_in_two_minutes,
    ),
    RecordedResponse(
        "throttled_429_by_a_proxy",
        429,
        "Too Many Requests",
        OutcomeKind.RETRYABLE,
        code="http_429",
        content_type="text/plain",
    ),
    RecordedResponse(
        "code_20429_without_http_429",
        400,
        twilio_error(20429, "Too Many Requests"),
        OutcomeKind.RETRYABLE,
        code="20429",
    ),
    RecordedResponse(
        "sender_queue_full_21611",
        400,
        twilio_error(21611, "This 'From' number has exceeded the maximum number of queued messages"),
        OutcomeKind.RETRYABLE,
        code="21611",
    ),
    RecordedResponse("request_timeout_408", 408, "", OutcomeKind.RETRYABLE, code="http_408", content_type="text/plain"),
    # server errors on create: may have been accepted
    RecordedResponse(
        "server_error_500",
        500,
        twilio_error(20500, "An internal server error has occurred", 500),
        OutcomeKind.AMBIGUOUS,
        code="20500",
    ),
    RecordedResponse(
        "bad_gateway_502_html", 502, HTML_502, OutcomeKind.AMBIGUOUS, code="http_502", content_type="text/html"
    ),
    RecordedResponse(
        "unavailable_503_retry_after",
        503,
        twilio_error(20503, "Service Unavailable", 503),
        OutcomeKind.AMBIGUOUS,
        code="20503",
        retry_after=30.0,
        headers={"Retry-After": "30"},
    ),
    # the recipient opted out
    RecordedResponse(
        "unsubscribed_21610",
        400,
        twilio_error(21610, "Attempt to send to unsubscribed recipient"),
        OutcomeKind.OPTED_OUT,
        code="21610",
        text_has="unsubscribed",
    ),
    # this recipient will never work
    RecordedResponse(
        "invalid_to_21211",
        400,
        twilio_error(21211, "The 'To' number +447700900123 is not a valid phone number."),
        OutcomeKind.PERMANENT,
        code="21211",
        text_has="not a valid phone number",
    ),
    RecordedResponse(
        "not_mobile_21614",
        400,
        twilio_error(21614, "'To' number is not a valid mobile number"),
        OutcomeKind.PERMANENT,
        code="21614",
    ),
    RecordedResponse(
        "region_disabled_21408",
        400,
        twilio_error(
            21408,
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: "
            "+447700900123.",
        ),
        OutcomeKind.PERMANENT,
        code="21408",
    ),
    RecordedResponse(
        "unreachable_21612",
        400,
        twilio_error(
            21612,
            "The 'To' phone number: +447700900123, is not currently reachable using the 'From' phone number: "
            "+15005550006 via SMS.",
        ),
        OutcomeKind.PERMANENT,
        code="21612",
    ),
    RecordedResponse(
        "body_too_long_21617",
        400,
        twilio_error(21617, "The concatenated message body exceeds the 1600 character limit."),
        OutcomeKind.PERMANENT,
        code="21617",
    ),
    RecordedResponse(
        "carrier_filtered_30007",
        400,
        twilio_error(30007, "Message filtered"),
        OutcomeKind.PERMANENT,
        code="30007",
    ),
    RecordedResponse(
        "whatsapp_outside_window_63016",
        400,
        twilio_error(
            63016,
            "Failed to send freeform message because you are outside the allowed window. "
            "If you are using WhatsApp, please use a Message Template.",
        ),
        OutcomeKind.PERMANENT,
        code="63016",
    ),
    RecordedResponse(
        "unknown_4xx_code",
        400,
        twilio_error(99999, "Something Twilio has not documented yet"),
        OutcomeKind.PERMANENT,
        code="99999",
        text_has="Something Twilio has not documented yet",
    ),
    RecordedResponse(
        "bad_request_without_json",
        400,
        "Bad Request",
        OutcomeKind.PERMANENT,
        code="http_400",
        content_type="text/plain",
        text_has="Bad Request",
    ),
    # nothing will work: stop the run
    RecordedResponse(
        "authentication_20003",
        401,
        {
            "code": 20003,
            "detail": "Your AccountSid or AuthToken was incorrect.",
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        },
        OutcomeKind.FATAL,
        code="20003",
        text_has="incorrect",
    ),
    RecordedResponse(
        "unauthorized_401_without_body", 401, "", OutcomeKind.FATAL, code="http_401", content_type="text/plain"
    ),
    RecordedResponse(
        "account_not_active_20005",
        403,
        twilio_error(20005, "Account not active", 403),
        OutcomeKind.FATAL,
        code="20005",
    ),
    RecordedResponse(
        "account_suspended_30002",
        400,
        twilio_error(30002, "Account suspended"),
        OutcomeKind.FATAL,
        code="30002",
    ),
    RecordedResponse(
        "from_not_capable_21606",
        400,
        twilio_error(
            21606, "The 'From' phone number provided (+15005550001) is not a valid message-capable Twilio phone number."
        ),
        OutcomeKind.FATAL,
        code="21606",
    ),
    RecordedResponse(
        "trial_unverified_21608",
        400,
        twilio_error(
            21608, "The number +447700900123 is unverified. Trial accounts cannot send messages to unverified numbers."
        ),
        OutcomeKind.FATAL,
        code="21608",
    ),
    RecordedResponse(
        "account_not_found_20404",
        404,
        twilio_error(
            20404, f"The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json was not found", 404
        ),
        OutcomeKind.FATAL,
        code="20404",
    ),
    RecordedResponse(
        "redirected_301",
        301,
        "",
        OutcomeKind.FATAL,
        code="http_301",
        headers={"Location": "https://example.com/elsewhere"},
        content_type="text/plain",
    ),
]


class TestTwilioContract(HttpProviderContract):
    provider_cls = TwilioProvider
    send_path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    recorded_responses = TWILIO_RESPONSES

    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Iterator[Callable[..., Provider]]:
        made: list[Provider] = []

        def make(base_url: str, **settings: Any) -> Provider:
            settings = {"account_sid": ACCOUNT_SID, "sender": "+15005550006", "base_url": base_url, **settings}
            provider = TwilioProvider(Profile("twilio", "twilio", settings), CANARY, tmp_path)
            made.append(provider)
            return provider

        yield make
        for provider in made:
            provider.close()


def test_outcomes_are_plain_values():
    """The engine stores outcomes; they carry no live objects that could hold a secret."""
    outcome = Outcome(OutcomeKind.RETRYABLE, code="20429", text="Too Many Requests", retry_after=1.0)
    assert set(Outcome.__slots__) == {"kind", "provider_id", "code", "text", "retry_after"}
    assert outcome == Outcome(OutcomeKind.RETRYABLE, code="20429", text="Too Many Requests", retry_after=1.0)
