"""Secrets never leave: with the token set to a canary, every command (errors and --debug included) runs as a real
process against a Twilio that echoes the credentials back in its error texts; the canary appears nowhere.

Nowhere means: stdout and stderr of every command, every file in the home (ledger, WAL, outbox, locks), and
every file the commands export.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CANARY = "canary-7f3a9c1e5b2d4f60"
ACCOUNT_SID = "AC" + "1" * 32
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class EchoingTwilio:
    """Accepts most messages; answers some with errors that quote the Authorization header, decoded and raw."""

    def __init__(self) -> None:
        fake = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _echo(self) -> str:
                raw = self.headers.get("Authorization", "")
                decoded = base64.b64decode(raw.split(" ", 1)[-1]).decode(errors="replace") if raw else ""
                return f"credentials {raw!r} = {decoded!r}"

            def do_GET(self) -> None:  # noqa: N802
                fake.requests += 1
                if urlsplit(self.path).path.endswith("/Balance.json"):
                    self._answer(401, {"code": 20003, "message": f"Authenticate: {self._echo()}", "status": 401})
                else:  # the lookup: nothing found, with the credentials in a field for good measure
                    self._answer(200, {"messages": [], "next_page_uri": None, "note": self._echo()})

            def do_POST(self) -> None:  # noqa: N802
                fake.requests += 1
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                to = form.get("To", "")
                if to.endswith("1"):
                    self._answer(400, {"code": 21211, "message": f"Invalid 'To': {self._echo()}", "status": 400})
                elif to.endswith("2"):
                    self._answer(400, {"code": 21610, "message": f"Unsubscribed: {self._echo()}", "status": 400})
                elif to.endswith("3"):
                    self._answer(500, {"code": 20500, "message": f"Internal: {self._echo()}", "status": 500})
                else:
                    self._answer(201, {"sid": "SM" + to[-8:].rjust(32, "0"), "status": "queued", "to": to,
                                       "error_message": None, "note": self._echo()})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_token_never_appears_anywhere(tmp_path):
    home, exports = tmp_path / "home", tmp_path / "exports"
    home.mkdir()
    exports.mkdir()
    twilio = EchoingTwilio()
    try:
        (home / "config.toml").write_text(
            f'[providers.twilio]\ntype = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nsender = "+15005550006"\n'
            f'base_url = "{twilio.url}"\nrate = 0\nreconcile_after = 0\nbackoff_base = 0.01\nbackoff_cap = 0.05\n'
            # a WhatsApp profile whose webhook secret (Meta's app secret) is the canary too, for `webhooks urls`
            '[providers.wa]\ntype = "whatsapp"\nphone_number_id = "1234567890"\n'
            '[webhooks]\npublic_url = "https://hooks.example.test/bulk"\n'
        )
        recipients = tmp_path / "list.csv"
        recipients.write_text("phone,consent,name\n" + "".join(f"+4474001234{i:02d},yes,P{i}\n" for i in range(20)))
        campaign = tmp_path / "c.toml"
        campaign.write_text(f'name = "leak-check"\nrecipients = "{recipients}"\nmessage = "Hi {{name}}"\n'
                            'provider = "twilio"\n')
        env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": CANARY,
               "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "BULKSEND_WA_WEBHOOK_SECRET": CANARY}
        commands = [
            ["credits", "topup", "1000", "--channel", "sms", "--ref", "INV-1"],
            ["validate", str(EXAMPLES / "recipients.csv"), "--region", "GB",
             "--rejects", str(exports / "rejects.csv"), "--clean", str(exports / "clean.csv")],
            ["estimate", str(EXAMPLES / "recipients.csv"), "--region", "GB", "--template", str(EXAMPLES / "spring.txt"),
             "--details", str(exports / "details.csv"), "--json"],
            ["provider", "list"],
            ["provider", "list", "--json"],
            ["provider", "check", "twilio"],
            ["--debug", "provider", "check", "twilio"],
            ["provider", "login", "twilio", "--stdin"],
            ["send", str(campaign), "--dry-run"],
            ["send", str(campaign), "--yes", "--json"],
            ["--debug", "send", str(campaign), "--yes"],
            ["campaigns", "list", "--json"],
            ["campaigns", "show", "leak-check"],
            ["campaigns", "reconcile", "leak-check", "--json"],
            ["campaigns", "refresh", "leak-check"],
            ["--debug", "campaigns", "refresh", "leak-check", "--json"],
            ["campaigns", "export", "leak-check", "--output", str(exports / "export.csv")],
            ["campaigns", "export", "leak-check", "--json"],
            ["campaigns", "export", "leak-check", "--json", "--output", str(exports / "export.json")],
            ["campaigns", "report", "leak-check", "--html", str(exports / "report.html")],
            ["campaigns", "show", "leak-check", "--json"],
            ["webhooks", "urls"],
            ["webhooks", "urls", "--json"],
            ["webhooks", "replies", "--json"],
            ["send-one", "+447400123499", "--message", "hello", "--provider", "twilio"],
            ["send-one", "+447400123491", "--message", "hello", "--provider", "twilio", "--json"],
            ["--debug", "send-one", "+447400123493", "--message", "hello", "--provider", "twilio"],
            ["optout", "list", "--json"],
            ["credits", "history", "--json"],
            ["credits", "audit"],
            ["balance", "--json"],
            ["config", "show"],
            ["config", "show", "--json"],
            ["--debug", "config", "show"],
            ["ledger", "backup", str(exports)],
            ["ledger", "backup", str(exports / "ledger-copy.db"), "--json"],
            ["ledger", "check"],
            ["ledger", "check", "--json"],
            ["ledger", "restore", str(exports / "ledger-copy.db"), "--yes", "--json"],
            ["--debug", "ledger", "restore", str(exports / "missing.db"), "--yes"],
            ["ledger", "adopt", "--yes", "--json"],
            ["provider", "logout", "twilio"],
        ]
        seen = []
        for args in commands:
            result = subprocess.run(
                [sys.executable, "-m", "bulksend", *args], env=env, capture_output=True, text=True,
                input=CANARY + "\n", timeout=120,
            )
            seen.append((args, result.returncode, result.stdout, result.stderr))
    finally:
        twilio.close()

    assert twilio.requests > 20, "the commands really talked to the fake Twilio"
    codes = {" ".join(args): code for args, code, _, _ in seen}
    assert codes["provider check twilio"] == 6 and codes["provider login twilio --stdin"] == 6
    assert codes[f"send {campaign} --yes --json"] == 4  # failures and unknowns, as the fake answers
    assert any("Traceback" in err for args, _, _, err in seen if args[0] == "--debug"), "--debug really ran"
    for command in ("config show", "config show --json", "ledger check", "ledger check --json",
                    f"ledger restore {exports / 'ledger-copy.db'} --yes --json", "ledger adopt --yes --json"):
        assert codes[command] == 0, command
    assert codes[f"--debug ledger restore {exports / 'missing.db'} --yes"] == 2
    for command in ("campaigns export leak-check --json", f"campaigns report leak-check --html {exports / 'report.html'}",
                    "webhooks urls --json"):
        assert codes[command] == 0, command
    hooks = json.loads(next(out for args, _, out, _ in seen if args == ["webhooks", "urls", "--json"]))
    assert {"twilio", "wa"} <= set(hooks) and hooks["wa"]["url"].startswith("https://hooks.example.test/bulk/")
    assert {"export.csv", "export.json", "report.html"} <= {p.name for p in exports.iterdir()}
    shown = next(out for args, _, out, _ in seen if args == ["config", "show", "--json"])
    assert "TWILIO_AUTH_TOKEN" in shown  # it says where the secret comes from: the test looks where it would be
    # The echoed texts really reached the output, scrubbed: the test looks where a leak would show.
    check_err = next(err for args, _, _, err in seen if args == ["provider", "check", "twilio"])
    assert "Authenticate: credentials" in check_err and ACCOUNT_SID in check_err

    token_b64 = base64.b64encode(f"{ACCOUNT_SID}:{CANARY}".encode()).decode()
    for args, _, out, err in seen:
        for needle in (CANARY, token_b64):
            assert needle not in out and needle not in err, (args, out[-500:], err[-500:])
    files = [p for p in [*home.rglob("*"), *exports.rglob("*")] if p.is_file()]
    assert any(p.name == "ledger.db" for p in files) and any(p.suffix == ".jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        assert CANARY.encode() not in data and token_b64.encode() not in data, path


def test_webhook_answers_never_carry_a_secret(cli, home, monkeypatch):
    """What `webhooks serve` answers (signed, forged, unsigned, the Meta handshake, health) never holds the auth
    token or the webhook secret, and the ledger it writes neither."""
    import requests

    from webhook_helpers import PUBLIC, meta_signature, receiver, twilio_signature, urls

    (home / "config.toml").write_text(
        f'[webhooks]\npublic_url = "{PUBLIC}"\n'
        f'[providers.twilio]\ntype = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nsender = "+15005550006"\n'
        '[providers.wa]\ntype = "whatsapp"\nphone_number_id = "1234567890"\n'
    )
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", CANARY)
    monkeypatch.setenv("BULKSEND_WA_WEBHOOK_SECRET", CANARY)
    monkeypatch.setenv("WHATSAPP_TOKEN", CANARY)
    topped = cli("credits", "topup", "1000", "--channel", "sms")  # the ledger exists
    assert topped.exit_code == 0, topped.stderr
    hooks = urls(cli)
    twilio_url, wa_url = hooks["twilio"]["url"], hooks["wa"]["url"]
    receipt = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "undelivered", "ErrorCode": "30008",
               "AccountSid": ACCOUNT_SID, "To": "+447400123456"}
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    answers: list[requests.Response] = []
    with receiver(home) as running:
        answers.append(running.post(twilio_url, data=receipt,
                                    headers={"X-Twilio-Signature": twilio_signature(CANARY, twilio_url, receipt)}))
        answers.append(running.post(twilio_url, data=receipt, headers={"X-Twilio-Signature": "forged"}))
        answers.append(running.post(twilio_url, data=receipt))
        answers.append(running.post(wa_url, data=body, headers={"X-Hub-Signature-256": meta_signature(CANARY, body),
                                                                "Content-Type": "application/json"}))
        answers.append(running.post(wa_url, data=body, headers={"X-Hub-Signature-256": "sha256=00"}))
        handshake = {"hub.mode": "subscribe", "hub.verify_token": hooks["wa"]["verify_token"], "hub.challenge": "42"}
        answers.append(running.get(wa_url, params=handshake))
        answers.append(running.get(wa_url, params={**handshake, "hub.verify_token": CANARY}))
        answers.append(requests.get(running.local + "/healthz", timeout=30))
    assert [a.status_code for a in answers] == [200, 403, 403, 200, 403, 200, 403, 200]
    assert answers[5].text == "42"
    for answer in answers:
        seen = answer.text + json.dumps(dict(answer.headers))
        assert CANARY not in seen, (answer.request.url, seen)
    for path in home.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
