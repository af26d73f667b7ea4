"""A fake Twilio Messages API on pytest-httpserver that keeps the exact form fields of every create request."""

from __future__ import annotations

import itertools
import json
import threading

from werkzeug import Request, Response

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-token-for-tests"  # not a secret: the fake server accepts anything


class TwilioForms:
    """Answers every ``POST …/Messages.json`` with 201 and a sid; ``forms`` holds each request's fields."""

    def __init__(self, httpserver) -> None:
        self.forms: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self.url = httpserver.url_for("").rstrip("/")
        httpserver.expect_request(
            f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", method="POST"
        ).respond_with_handler(self._create)

    def _create(self, request: Request) -> Response:
        with self._lock:
            self.forms.append(dict(request.form))
            sid = f"SM{next(self._sids):032d}"
        return Response(json.dumps({"sid": sid, "status": "queued"}), status=201, content_type="application/json")

    def config(self, **settings) -> str:
        """config.toml with a twilio profile ``tw`` pointing at this server."""
        lines = ["[providers.tw]", 'type = "twilio"', f'account_sid = "{ACCOUNT_SID}"', f'base_url = "{self.url}"',
                 "rate = 0"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"
