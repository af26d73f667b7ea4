"""Issue 11 items 1-4: `webhooks serve` under its real server; receipts settle unknown rows, refund provider
faults once, and STOP replies stop the campaign that is sending right now.

Each provider's fake API (pytest-httpserver) accepts every message but drops some answers (→ ``unknown`` rows);
then it posts signed receipts, as the real provider would, to the URL and with the fields it was given.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest
import requests
from werkzeug import Request, Response

from ledger_backends import BACKENDS, Backend
from sendhelpers import mobile
from webhook_helpers import (  # noqa: F401 - the ledger_backend fixture
    PUBLIC,
    ledger_backend_fixture,
    meta_signature,
    receiver,
    rows,
    sent_rows,
    snapshot,
    twilio_signature,
    urls,
    vonage_sig,
)

ACCOUNT = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token-123"
APP_SECRET = "meta-app-secret-456"
SIGNATURE_SECRET = "vonage-signature-secret-789"
N = 12
DROPPED = {1, 2, 7}  # accepted, but the answer is lost: these rows end the run unknown


def outcome(i: int) -> str:
    """What happens to the i-th message: delivered, or failed by the provider's or the recipient's fault."""
    return ("delivered", "delivered", "provider_fault", "recipient_fault")[i % 4]


def write_campaign(directory: Path, name: str, channel: str = "sms", extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.csv").write_text(
        "name,phone,consent\n" + "".join(f"R{i},{mobile(i)},yes\n" for i in range(N))
    )
    path = directory / f"{name}.toml"
    body = 'message = "Hi {name}"\n' if channel == "sms" else ""
    path.write_text(
        f'name = "{name}"\nrecipients = "{name}.csv"\n{body}channel = "{channel}"\nprovider = "api"\n'
        f'region = "GB"\n{extra}'
    )
    return path


# --------------------------------------------------------------------------------------------- providers
# Each driver: the profile, its environment, the fake API's handler, and the receipts the provider would post.


class Twilio:
    channel = "sms"

    def __init__(self, base: str) -> None:
        self.config = (
            f'[providers.api]\ntype = "twilio"\naccount_sid = "{ACCOUNT}"\nsender = "+15005550006"\n'
            f'base_url = "{base}"\nrate = 0\nconcurrency = 4\nreconcile_after = 0\ntimeout = 5\n'
        )
        self.env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}
        self.accepted: list[dict] = []

    def install(self, httpserver, dropped: set[str]) -> None:
        path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"

        def create(request: Request) -> Response:
            form = request.form
            sid = f"SM{len(self.accepted):032d}"
            self.accepted.append({"to": form["To"], "id": sid, "callback": form.get("StatusCallback")})
            if form["To"] in dropped:
                return Response("bad gateway", status=502)
            return Response(json.dumps({"sid": sid, "status": "queued"}), 201, content_type="application/json")

        httpserver.expect_request(path, method="POST").respond_with_handler(create)
        httpserver.expect_request(path, method="GET").respond_with_data("busy", status=503)  # lookups cannot tell

    def post_receipts(self, running, hooks: dict, plan) -> list[requests.Response]:
        answers = []
        for message in self.accepted:
            for status, code in (("sent", None), plan(message["to"])):
                form = {"MessageSid": message["id"], "MessageStatus": status, "AccountSid": ACCOUNT,
                        "To": message["to"], "From": "+15005550006", "ApiVersion": "2010-04-01"}
                if code:
                    form["ErrorCode"] = code
                url = message["callback"]  # Twilio calls exactly the URL it was given, query included
                signature = twilio_signature(AUTH_TOKEN, url, form)
                answers.append(running.post(url, data=form, headers={"X-Twilio-Signature": signature}))
        return answers

    codes = {"delivered": ("delivered", None), "provider_fault": ("failed", "30008"),
             "recipient_fault": ("undelivered", "30003")}


class Vonage:
    channel = "sms"

    def __init__(self, base: str) -> None:
        self.config = (
            f'[providers.api]\ntype = "vonage"\napi_key = "k123"\nsender = "ACME"\nbase_url = "{base}"\n'
            "rate = 0\nconcurrency = 4\ntimeout = 5\n"
        )
        self.env = {"VONAGE_API_SECRET": "api-secret", "BULKSEND_API_WEBHOOK_SECRET": SIGNATURE_SECRET}
        self.accepted: list[dict] = []

    def install(self, httpserver, dropped: set[str]) -> None:
        def send(request: Request) -> Response:
            form = request.form
            mid = f"V{len(self.accepted):06d}"
            self.accepted.append({"to": "+" + form["to"], "id": mid, "ref": form["client-ref"]})
            if "+" + form["to"] in dropped:
                return Response("<html>502 Bad Gateway</html>", status=200, content_type="text/html")
            answer = {"message-count": "1", "messages": [{"to": form["to"], "message-id": mid, "status": "0"}]}
            return Response(json.dumps(answer), 200, content_type="application/json")

        httpserver.expect_request("/sms/json", method="POST").respond_with_handler(send)

    def post_receipts(self, running, hooks: dict, plan) -> list[requests.Response]:
        url = hooks["api"]["url"]
        answers = []
        ways = itertools.cycle(("get", "form", "json"))  # Vonage delivers as the account chooses: all three
        for n, message in enumerate(self.accepted):
            status, code = plan(message["to"])
            fields = {"msisdn": message["to"][1:], "to": "ACME", "network-code": "23410", "messageId": message["id"],
                      "price": "0.03", "status": status, "scts": "2501011200", "err-code": code,
                      "client-ref": message["ref"], "message-timestamp": "2025-01-01 12:00:00", "api-key": "k123",
                      "timestamp": "1735732800", "nonce": f"nonce-{n}"}
            fields["sig"] = vonage_sig(SIGNATURE_SECRET, fields)
            way = next(ways)
            if way == "get":
                answers.append(running.get(url, params=fields))
            elif way == "form":
                answers.append(running.post(url, data=fields))
            else:
                answers.append(running.post(url, json=fields))
        return answers

    codes = {"delivered": ("delivered", "0"), "provider_fault": ("failed", "8"), "recipient_fault": ("failed", "2")}


class WhatsApp:
    channel = "whatsapp"
    campaign_extra = '[whatsapp]\ntemplate = "spring_sale"\nlanguage = "en_US"\n'

    def __init__(self, base: str) -> None:
        self.config = (
            f'[providers.api]\ntype = "whatsapp"\nphone_number_id = "1234567890"\nbase_url = "{base}"\n'
            "rate = 0\nconcurrency = 4\ntimeout = 5\n"
        )
        self.env = {"WHATSAPP_TOKEN": "wa-token", "BULKSEND_API_WEBHOOK_SECRET": APP_SECRET}
        self.accepted: list[dict] = []

    def install(self, httpserver, dropped: set[str]) -> None:
        def send(request: Request) -> Response:
            doc = json.loads(request.get_data())
            wamid = f"wamid.{len(self.accepted):06d}"
            self.accepted.append({"to": doc["to"], "id": wamid, "ref": doc["biz_opaque_callback_data"]})
            if doc["to"] in dropped:
                return Response("upstream", status=500)
            answer = {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}
            return Response(json.dumps(answer), 200, content_type="application/json")

        httpserver.expect_request("/v21.0/1234567890/messages", method="POST").respond_with_handler(send)

    def post_receipts(self, running, hooks: dict, plan) -> list[requests.Response]:
        url = hooks["api"]["url"]
        answers = []
        for message in self.accepted:
            status, code = plan(message["to"])
            statuses = [{"id": message["id"], "status": "sent", "timestamp": "1735732800",
                         "recipient_id": message["to"][1:], "biz_opaque_callback_data": message["ref"]}]
            final = {"id": message["id"], "status": status, "timestamp": "1735732860",
                     "recipient_id": message["to"][1:], "biz_opaque_callback_data": message["ref"]}
            if code:
                final["errors"] = [{"code": int(code), "title": "failed"}]
            statuses.append(final)  # Meta batches several statuses in one request
            body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
                {"field": "messages", "value": {"messaging_product": "whatsapp",
                                                "metadata": {"display_phone_number": "15550001111",
                                                             "phone_number_id": "1234567890"},
                                                "statuses": statuses}}]}]}).encode()
            answers.append(running.post(url, data=body, headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(APP_SECRET, body)}))
        return answers

    codes = {"delivered": ("delivered", None), "provider_fault": ("failed", "131000"),
             "recipient_fault": ("failed", "131026")}


class Gateway:
    channel = "sms"

    def __init__(self, base: str) -> None:
        self.config = (
            f'[providers.api]\ntype = "http"\nurl = "{base}/send"\nauth = {{ type = "bearer" }}\n'
            'body = { to = "{to}", text = "{text}", reference = "{id}" }\nid_path = "message_id"\n'
            'receipt_provider_fault_codes = ["NET"]\nrate = 0\nconcurrency = 4\ntimeout = 5\n'
        )
        self.env = {"BULKSEND_API_SECRET": "gw-secret"}
        self.accepted: list[dict] = []

    def install(self, httpserver, dropped: set[str]) -> None:
        def send(request: Request) -> Response:
            doc = json.loads(request.get_data())
            mid = f"gw{len(self.accepted):06d}"
            self.accepted.append({"to": doc["to"], "id": mid, "ref": doc["reference"]})
            if doc["to"] in dropped:
                return Response("bad gateway", status=502)
            return Response(json.dumps({"message_id": mid}), 200, content_type="application/json")

        httpserver.expect_request("/send", method="POST").respond_with_handler(send)

    def post_receipts(self, running, hooks: dict, plan) -> list[requests.Response]:
        url = hooks["api"]["url"]  # a secret token in the path: a gateway cannot sign
        answers = []
        for message in self.accepted:
            status, code = plan(message["to"])
            receipt = {"id": message["id"], "reference": message["ref"], "status": status}
            if code:
                receipt["error_code"] = code
            answers.append(running.post(url, json=receipt))
        return answers

    codes = {"delivered": ("delivered", None), "provider_fault": ("failed", "NET"),
             "recipient_fault": ("failed", "ABSENT")}


DRIVERS = {"twilio": Twilio, "vonage": Vonage, "whatsapp": WhatsApp, "http": Gateway}


def setup(home: Path, monkeypatch, driver) -> None:
    (home / "config.toml").write_text(f'[webhooks]\npublic_url = "{PUBLIC}"\n\n' + driver.config)
    for name, value in driver.env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("provider", sorted(DRIVERS))
def test_receipts_settle_every_row_and_refund_provider_faults_once(provider, ledger_backend, cli, home, tmp_path,
                                                                   httpserver, monkeypatch):
    driver = DRIVERS[provider](httpserver.url_for("").rstrip("/"))
    setup(home, monkeypatch, driver)
    numbers = [mobile(i) for i in range(N)]
    dropped = {numbers[i] for i in DROPPED}
    driver.install(httpserver, dropped)
    channel = driver.channel
    assert cli("credits", "topup", 1000 if channel == "sms" else 5000, "--channel", channel).exit_code == 0
    campaign = write_campaign(tmp_path / "c", "spring", channel, getattr(driver, "campaign_extra", ""))

    sent = cli("send", campaign, "--yes", "--json")
    assert sent.exit_code == 4, sent.stderr  # finished, with unknown rows
    before = rows(home, "spring")
    assert {n for n, r in before.items() if r["state"] == "unknown"} == dropped
    assert sum(r["debited"] for r in before.values()) == N - len(DROPPED)  # an unknown row is not debited

    index = {n: i for i, n in enumerate(numbers)}

    def plan(to: str):
        return driver.codes[outcome(index[to])]

    with receiver(home) as running:
        answers = driver.post_receipts(running, urls(cli), plan)
    assert [a.status_code for a in answers] == [200] * len(answers)

    after = rows(home, "spring")
    expected = {n: ("delivered" if outcome(i) == "delivered" else "undelivered") for i, n in enumerate(numbers)}
    assert {n: r["state"] for n, r in after.items()} == expected
    assert sorted(m["to"] for m in driver.accepted) == sorted(numbers)  # nobody was sent twice
    refunded = [n for i, n in enumerate(numbers) if outcome(i) == "provider_fault"]
    assert sum(r["debited"] for r in after.values()) == N  # every accepted message debited, once
    assert {n for n, r in after.items() if r["refunded"]} == set(refunded)
    for i, n in enumerate(numbers):
        assert after[n]["error_code"] == plan(n)[1] or (outcome(i) == "delivered" and after[n]["error_code"] in (None, "0"))
        assert after[n]["reported_at"] is not None
    balance = json.loads(cli("balance", "--json").stdout)[channel]["available"]
    assert balance == (1000 if channel == "sms" else 5000) - N + len(refunded)  # debits = accepted - refunds
    audit = cli("credits", "audit", "--json")
    assert audit.exit_code == 0, audit.stdout
    history = json.loads(cli("credits", "history", "--json").stdout)
    refunds = [m for m in history["movements"] if m["kind"] == "refund"]
    assert sorted(m["transmission"] for m in refunds) == sorted(after[n]["id"] for n in refunded)


# ------------------------------------------------------------------------------------ verification


@pytest.fixture
def settled_twilio(ledger_backend, cli, home, tmp_path, httpserver, monkeypatch):
    """A Twilio campaign with one unknown row, and a second Twilio profile with another auth token, on each
    ledger backend."""
    driver = Twilio(httpserver.url_for("").rstrip("/"))
    setup(home, monkeypatch, driver)
    with open(home / "config.toml", "a") as handle:
        handle.write(f'\n[providers.other]\ntype = "twilio"\naccount_sid = "{ACCOUNT}"\nsender = "+15005550007"\n')
    monkeypatch.setenv("BULKSEND_OTHER_SECRET", "another-auth-token")
    numbers = [mobile(i) for i in range(N)]
    driver.install(httpserver, {numbers[1]})
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    assert cli("send", write_campaign(tmp_path / "c", "spring"), "--yes").exit_code == 4
    return driver


def test_forged_unsigned_replayed_and_wrong_profile_requests_get_403_and_change_nothing(cli, home, settled_twilio):
    message = next(m for m in settled_twilio.accepted if m["to"] == mobile(1))
    form = {"MessageSid": message["id"], "MessageStatus": "delivered", "AccountSid": ACCOUNT, "To": message["to"]}
    url = message["callback"]
    good = twilio_signature(AUTH_TOKEN, url, form)
    other_url = url.replace("/hooks/api", "/hooks/other")
    before = snapshot(home)
    assert len(before["transmissions"]) == N and before["movements"]
    with receiver(home) as running:
        attempts = {
            "forged": running.post(url, data=form, headers={"X-Twilio-Signature": "AAAA" + good[4:]}),
            "unsigned": running.post(url, data=form),
            "another body": running.post(url, data={**form, "MessageStatus": "failed", "ErrorCode": "30008"},
                                         headers={"X-Twilio-Signature": good}),
            "another row": running.post(url.replace("t=", "t=9"), data=form, headers={"X-Twilio-Signature": good}),
            "wrong token": running.post(url, data=form,
                                        headers={"X-Twilio-Signature": twilio_signature("guess", url, form)}),
            "wrong profile": running.post(other_url, data=form,
                                          headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, other_url, form)}),
        }
    assert {what: r.status_code for what, r in attempts.items()} == dict.fromkeys(attempts, 403)
    assert snapshot(home) == before
    # and the genuine request still works
    with receiver(home) as running:
        assert running.post(url, data=form, headers={"X-Twilio-Signature": good}).status_code == 200
    assert rows(home, "spring")[mobile(1)]["state"] == "delivered"


def test_meta_handshake_signature_and_path_tokens(ledger_backend, cli, home, monkeypatch):
    (home / "config.toml").write_text(
        f'[webhooks]\npublic_url = "{PUBLIC}"\n[providers.wa]\ntype = "whatsapp"\nphone_number_id = "1234567890"\n'
        '[providers.gw]\ntype = "http"\nurl = "https://gw.example/send"\nauth = { type = "bearer" }\n'
        '[providers.von]\ntype = "vonage"\napi_key = "k123"\nsender = "ACME"\n'
    )
    monkeypatch.setenv("BULKSEND_WA_WEBHOOK_SECRET", APP_SECRET)
    hooks = urls(cli)
    assert hooks["wa"]["url"] == f"{PUBLIC}/hooks/wa"
    assert hooks["wa"]["verified_by"].startswith("X-Hub-Signature-256")
    token = hooks["wa"]["verify_token"]
    # unsigned providers get a secret token in the path, the same on every run
    assert hooks["gw"]["url"].startswith(f"{PUBLIC}/hooks/gw/") and len(hooks["gw"]["url"]) > len(PUBLIC) + 40
    assert hooks["von"]["verified_by"] == "secret token in the URL path"
    assert urls(cli) == hooks
    assert APP_SECRET not in json.dumps(hooks)
    reply = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "1234567890"},
        "messages": [{"from": "447400000005", "id": "wamid.in1", "timestamp": "1735732800", "type": "text",
                      "text": {"body": "Thanks, see you Sunday"}}]}}]}]}).encode()
    with receiver(home) as running:  # it opens (and on a new home creates) the ledger
        before = snapshot(home)
        assert running.get(f"{PUBLIC}/healthz").status_code == 200
        handshake = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
        answer = running.get(hooks["wa"]["url"], params=handshake)
        assert (answer.status_code, answer.text) == (200, "1158201444")
        assert running.get(hooks["wa"]["url"], params={**handshake, "hub.verify_token": "guess"}).status_code == 403
        assert running.post(hooks["wa"]["url"], data=reply, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature("guess", reply)}).status_code == 403
        wrong = hooks["gw"]["url"][:-4] + "abcd"
        assert running.post(wrong, json={"from": "+447400000005", "text": "STOP"}).status_code == 403
        assert running.post(hooks["von"]["url"].replace("/von/", "/gw/"),
                            data={"msisdn": "447400000005", "text": "STOP"}).status_code == 403
        assert snapshot(home) == before
        ok = running.post(hooks["wa"]["url"], data=reply, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(APP_SECRET, reply)})
        assert ok.status_code == 200
        again = running.post(hooks["wa"]["url"], data=reply, headers={  # Meta retries: kept once
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(APP_SECRET, reply)})
        assert again.status_code == 200
    replies = json.loads(cli("webhooks", "replies", "--json").stdout)["replies"]
    assert [(r["sender"], r["text"], r["opt_out"]) for r in replies] == [
        ("+447400000005", "Thanks, see you Sunday", 0)]
    assert json.loads(cli("optout", "list", "--json").stdout)["optouts"] == []


# ------------------------------------------------------------------------------------- STOP replies


def test_a_stop_reply_mid_campaign_stops_that_number_at_once_and_suppresses_it_next_time(
    ledger_backend, cli, home, tmp_path, httpserver, monkeypatch
):
    driver = Twilio(httpserver.url_for("").rstrip("/"))
    driver.config = driver.config.replace("concurrency = 4", "concurrency = 1\nbatch_size = 1")
    setup(home, monkeypatch, driver)
    numbers = [mobile(i) for i in range(N)]
    stopper = numbers[-1]
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    state: dict = {"running": None, "answer": None}
    requested: list[str] = []

    def create(request: Request) -> Response:
        requested.append(request.form["To"])
        if len(requested) == 3:  # mid-campaign, the last recipient replies STOP (to an earlier campaign)
            form = {"MessageSid": "SMin0001", "AccountSid": ACCOUNT, "From": stopper, "To": "+15005550006",
                    "Body": " Stop please ", "SmsStatus": "received", "NumMedia": "0"}
            url = f"{PUBLIC}/hooks/api"
            state["answer"] = state["running"].post(
                url, data=form, headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, form)})
        sid = f"SM{len(requested):032d}"
        return Response(json.dumps({"sid": sid}), 201, content_type="application/json")

    httpserver.expect_request(path, method="POST").respond_with_handler(create)
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    with receiver(home) as running:
        state["running"] = running
        result = cli("send", write_campaign(tmp_path / "c", "spring"), "--yes", "--json")
    assert state["answer"].status_code == 200  # answered once the opt-out was committed
    assert stopper not in requested  # never claimed after the reply was recorded
    row = rows(home, "spring")[stopper]
    assert (row["state"], row["error_code"]) == ("failed", "suppressed")
    assert json.loads(result.stdout)["counts"]["sent"] == N - 1
    optouts = json.loads(cli("optout", "list", "--json").stdout)["optouts"]
    assert [(o["e164"], o["source"]) for o in optouts] == [(stopper, "provider")]
    assert "STOP" in optouts[0]["reason"]
    # the next campaign rejects the number before anything is queued
    nxt = cli("send", write_campaign(tmp_path / "d", "summer"), "--yes", "--json")
    assert json.loads(nxt.stdout)["reasons"] == {"suppressed": 1}
    assert stopper not in requested and len(requested) == 2 * (N - 1)


def test_provider_opt_out_signals_add_the_number(ledger_backend, cli, home, monkeypatch):
    (home / "config.toml").write_text(
        f'[webhooks]\npublic_url = "{PUBLIC}"\n[providers.api]\ntype = "twilio"\naccount_sid = "{ACCOUNT}"\n'
        'sender = "+15005550006"\n'
    )
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    url = f"{PUBLIC}/hooks/api"
    with receiver(home) as running:
        for n, (sender, body, extra) in enumerate([
            (mobile(20), "unsubscribe", {}),  # a keyword, any case
            (mobile(21), "Arrêt", {}),  # French, with its accent
            (mobile(22), "please", {"OptOutType": "STOP"}),  # Twilio's Advanced Opt-Out signal
            (mobile(23), "Stopping by later?", {}),  # not a keyword: a reply to read
        ]):
            form = {"MessageSid": f"SMin{n}", "AccountSid": ACCOUNT, "From": sender, "To": "+15005550006",
                    "Body": body, "SmsStatus": "received", **extra}
            answer = running.post(url, data=form, headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, form)})
            assert answer.status_code == 200
            assert answer.headers["Content-Type"].startswith("text/xml")
    optouts = json.loads(cli("optout", "list", "--json").stdout)["optouts"]
    assert [o["e164"] for o in optouts] == [mobile(20), mobile(21), mobile(22)]
    replies = json.loads(cli("webhooks", "replies", "--json").stdout)["replies"]
    assert {(r["sender"], r["keyword"]) for r in replies} == {
        (mobile(20), "UNSUBSCRIBE"), (mobile(21), "ARRET"), (mobile(22), "OptOutType=STOP"), (mobile(23), None)}


# ----------------------------------------------------------------------------- receipts before rows


def test_a_receipt_for_a_row_still_being_sent_is_kept_and_applied_when_the_row_is(ledger_backend, cli, home,
                                                                                  monkeypatch):
    from bulksend.config import Config
    from bulksend.ledger import NewTransmission
    from bulksend.ledger_guard import open_for_write

    (home / "config.toml").write_text(f'[webhooks]\npublic_url = "{PUBLIC}"\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    with open_for_write(Config.load(home)) as ledger:
        campaign = ledger.open_campaign("early", "sms", "outbox", "f")
        ledger.add_transmissions(campaign.id, [NewTransmission(mobile(1), "hi", 1, 1)])
        ledger.hold(campaign.id, "sms", 1)
        (row,) = ledger.claim(campaign.id, 10)  # sending: the provider has it, our commit has not happened
    url = urls(cli)["outbox"]["url"]
    receipt = {"reference": str(row.id), "id": f"outbox-{row.id}", "status": "delivered"}
    with receiver(home) as running:
        assert running.post(url, json=receipt).status_code == 200
        assert rows(home, "early")[mobile(1)]["state"] == "sending"
        with open_for_write(Config.load(home)) as ledger:
            assert ledger.pending_receipt_count() == 1
            ledger.mark_sent(row.id, f"outbox-{row.id}")
        deadline = threading.Event()
        for _ in range(100):  # the writer retries kept receipts every 0.2 s here
            if rows(home, "early")[mobile(1)]["state"] == "delivered":
                break
            deadline.wait(0.05)
    final = rows(home, "early")[mobile(1)]
    assert (final["state"], final["debited"], final["refunded"]) == ("delivered", 1, 0)
    assert cli("credits", "audit").exit_code == 0


def test_stop_words():
    from bulksend.receipts import StopWords

    words = StopWords(["halt mich"])
    assert [words.match(t) for t in ("STOP", " stop. ", "Stop please", "opt-out", "OPT OUT now", "Baja",
                                     "ARRÊT", "halt mich!", "stopping", "please stop", "")] == [
        "STOP", "STOP", "STOP", "OPT OUT", "OPT OUT", "BAJA", "ARRET", "HALT MICH", None, None, None]


def test_webhook_urls_need_a_public_url_and_never_print_a_secret(cli, home, monkeypatch):
    (home / "config.toml").write_text(
        f'[providers.api]\ntype = "twilio"\naccount_sid = "{ACCOUNT}"\nsender = "+15005550006"\n'
    )
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    missing = cli("webhooks", "urls")
    assert missing.exit_code == 6
    assert "[webhooks]" in missing.stderr
    shown = cli("webhooks", "urls", "--public-url", "https://h.example")
    assert shown.exit_code == 0
    assert "api: https://h.example/hooks/api" in shown.stdout
    assert AUTH_TOKEN not in shown.stdout + shown.stderr


# ------------------------------------------------------------------------------- the command itself


def test_serve_stops_cleanly_on_sigterm_after_answering(ledger_backend, home, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    (home / "config.toml").write_text(f'[webhooks]\npublic_url = "{PUBLIC}"\n')
    env = {**os.environ, "BULKSEND_HOME": str(home), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulksend", "webhooks", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        token_url = json.loads(subprocess.run(
            [sys.executable, "-m", "bulksend", "webhooks", "urls", "--json"], env=env, capture_output=True, text=True,
        ).stdout)["outbox"]["url"]
        local = token_url.replace(PUBLIC, f"http://127.0.0.1:{port}/bulk")
        reply = requests.post(local, json={"from": mobile(30), "text": "STOP"}, timeout=30)
        assert reply.status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).text == "ok\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Stopped. 2 request(s), 0 receipt(s), 1 repl(ies), 1 opt-out(s)" in " ".join(err.split())
    from bulksend.config import Config
    from bulksend.ledger_guard import open_for_read

    with open_for_read(Config.load(home)) as ledger:
        assert [o.e164 for o in ledger.optouts()] == [mobile(30)]


def test_bodies_over_1_mib_get_413_and_change_nothing_and_the_log_never_shows_a_path_token(ledger_backend, cli,
                                                                                           home):
    """The real server: a body over 1 MiB is refused with or without a length (chunked: as it passes 1 MiB),
    nothing is recorded, and nothing it logs (no access log; a malformed request is logged) names the token."""
    import os
    import re
    import signal
    import socket
    import subprocess
    import sys

    (home / "config.toml").write_text(f'[webhooks]\npublic_url = "{PUBLIC}"\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    token_url = urls(cli)["outbox"]["url"]
    token = token_url.rsplit("/", 1)[1]
    before = snapshot(home)
    env = {**os.environ, "BULKSEND_HOME": str(home), "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bulksend", "webhooks", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", proc.stderr.readline()).group(1))
        local = token_url.replace(PUBLIC, f"http://127.0.0.1:{port}/bulk")
        big = json.dumps({"reference": "1", "id": "outbox-1", "status": "delivered", "pad": "x" * (1 << 20)}).encode()
        sized = requests.post(local, data=big, headers={"Content-Type": "application/json"}, timeout=30)
        chunked = requests.post(local, data=(big[i:i + 65536] for i in range(0, len(big), 65536)),
                                headers={"Content-Type": "application/json"}, timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            request_line = f"POST /bulk/hooks/outbox/{token}?t=1 HTTP/1.1\r\n"
            raw.sendall(f"{request_line}Host: x\r\nContent-Length: zz\r\n\r\n".encode())
            malformed = raw.recv(100)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert (sized.status_code, chunked.status_code) == (413, 413)
    assert malformed.startswith(b"HTTP/1.1 400 ")
    assert proc.returncode == 0, err
    assert "Invalid HTTP request received." in err  # uvicorn's own warnings do reach the log
    assert token not in out + err and "?t=1" not in out + err
    assert snapshot(home) == before


def test_provider_login_keeps_the_webhook_secret_apart(cli, home, monkeypatch):
    import keyring
    import keyring.core

    from test_credentials import MemoryKeyring

    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    (home / "config.toml").write_text(
        f'[webhooks]\npublic_url = "{PUBLIC}"\n[providers.wa]\ntype = "whatsapp"\nphone_number_id = "1234567890"\n'
    )
    assert "problem" in urls(cli)["wa"]  # no app secret yet: every request would be refused, and it says so
    stored = cli("provider", "login", "wa", "--webhook-secret", "--stdin", "--json", input=APP_SECRET + "\n")
    assert stored.exit_code == 0, stored.stderr
    assert json.loads(stored.stdout) == {"profile": "wa", "stored": True, "webhook_secret": True, "overridden_by": None}
    assert memory.passwords == {("bulksend", "wa:webhook"): APP_SECRET}
    assert "problem" not in urls(cli)["wa"]
    assert APP_SECRET not in stored.stdout + stored.stderr


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_one_group_commit_applies_plain_receipts_in_bulk_and_answers_each_request_with_its_own_fate(backend_name):
    """Requests waiting together are one group: plain receipts go through the bulk path (one transaction), then a
    refund, a receipt for a row not known yet and a reply one at a time (a second); each request learns its own
    fate, and a failing one only its own."""
    from bulksend.inbound import ReceiptWriter
    from bulksend.receipts import Fault, InboundMessage, Receipt, ReceiptState

    backend = Backend(backend_name)
    try:
        with backend.open() as ledger:
            ids = sent_rows(ledger, 4, "bulk")
            writer = ReceiptWriter(ledger, gather=0)

            def one(tid, state="delivered", **fields):
                return writer.submit([Receipt("outbox", ReceiptState(state), transmission_id=tid, **fields)], [])

            futures = [
                one(ids[0]), one(ids[1]), one(ids[0]),
                one(ids[2], "undelivered", code="30008", fault=Fault.PROVIDER),
                one(9999),
                writer.submit([], [InboundMessage("outbox", "+447911100009", "STOP", opt_out=True, keyword="STOP")]),
            ]
            bad = writer.submit([Receipt("outbox", ReceiptState.DELIVERED, transmission_id=ids[3])],
                                [InboundMessage("outbox", None, "hi")])  # no sender: this request fails alone
            writer.start().close()  # queued before the writer started: one group
            assert writer.commits == 2  # the bulk path's transaction, then the rest's
            assert [f.result(timeout=5)[0] for f in futures] == [
                ["applied"], ["applied"], ["duplicate"], ["refunded"], ["pending"], [],
            ]
            assert isinstance(bad.exception(timeout=5), Exception)
            assert [ledger.transmission(t).state for t in ids] == ["delivered", "delivered", "undelivered", "sent"]
            assert ledger.suppressed_among(["+447911100009"]) == {"+447911100009"}
            assert ledger.pending_receipt_count() == 1
            assert ledger.audit().consistent
    finally:
        backend.drop()


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_bulk_path_that_fails_leaves_nothing_behind_and_each_request_is_applied_alone(backend_name, monkeypatch):
    """The bulk path commits in its own transaction: when it fails (a ledger error), that transaction is rolled
    back whole and every request of the group is applied one at a time instead; none is lost or applied twice."""
    from bulksend.errors import LedgerError
    from bulksend.inbound import ReceiptWriter
    from bulksend.receipts import Receipt, ReceiptState

    backend = Backend(backend_name)
    try:
        with backend.open() as ledger:
            ids = sent_rows(ledger, 3, "bulk")
            store = ledger.store
            real = store.execute

            def write_then_fail(name, **params):
                changed = real(name, **params)  # the bulk path's UPDATE is done, in its transaction…
                if name == "apply_receipt_reports":
                    raise LedgerError("the bulk path failed")  # …and rolled back with it
                return changed

            monkeypatch.setattr(store, "execute", write_then_fail)
            logged: list[str] = []
            writer = ReceiptWriter(ledger, gather=0, log=logged.append)
            futures = [writer.submit([Receipt("outbox", ReceiptState.DELIVERED, transmission_id=t)], []) for t in ids]
            writer.start().close()
            assert [f.result(timeout=5) for f in futures] == [(["applied"], [])] * 3
            assert writer.commits == 1 and writer.fates == {"applied": 3}
            assert logged == ["webhooks: the bulk path failed, applying one at a time: the bulk path failed"]
            assert [ledger.transmission(t).state for t in ids] == ["delivered"] * 3
            assert ledger.audit().consistent
    finally:
        backend.drop()
