"""A scripted in-process provider for engine tests: outcomes decided per attempt by the test, every call recorded."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from bulksend.providers.base import Delivery, LookupResult, Outcome, OutcomeKind, Profile, Provider, register

Script = Callable[[Delivery, int], Outcome]  # (delivery, attempt number from 1) -> outcome


def accept_all(delivery: Delivery, attempt: int) -> Outcome:
    return Outcome(OutcomeKind.ACCEPTED, provider_id=f"SM{delivery.transmission_id}-{attempt}")


@register
class ScriptedProvider(Provider):
    """Answers ``send`` with ``script(delivery, attempt)``; remembers which attempts it "accepted".

    ``accepted`` maps a number to how many times the provider accepted a message for it: the tests'
    ground truth for "nobody is messaged twice". Ambiguous outcomes can be made to have been accepted
    (``ambiguous_accepted``), as a read timeout after the provider took the message would be.
    """

    type_name: ClassVar[str] = "scripted"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "whatsapp"})
    default_rate: ClassVar[float] = 0.0
    needs_secret: ClassVar[bool] = False
    can_lookup: ClassVar[bool] = False

    def __init__(
        self,
        script: Script = accept_all,
        *,
        can_lookup: bool = False,
        ambiguous_accepted: bool = False,
        latency: float = 0.0,
        lookup_answer: LookupResult | None = None,
    ) -> None:
        super().__init__(Profile("scripted", "scripted"), None, None)  # type: ignore[arg-type]
        self.script = script
        self.can_lookup = can_lookup  # type: ignore[misc]  # per instance in tests
        self.ambiguous_accepted = ambiguous_accepted
        self.latency = latency
        self.lookup_answer = lookup_answer
        self.lock = threading.Lock()
        self.attempts: Counter = Counter()  # number -> send calls
        self.accepted: Counter = Counter()  # number -> accepted by the "provider"
        self.sent_at: dict[str, list[float]] = {}  # number -> monotonic times of each send call
        self.lookups: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def send(self, delivery: Delivery) -> Outcome:
        with self.lock:
            self.attempts[delivery.to] += 1
            attempt = self.attempts[delivery.to]
            self.sent_at.setdefault(delivery.to, []).append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            outcome = self.script(delivery, attempt)
            if outcome.kind is OutcomeKind.ACCEPTED or (
                outcome.kind is OutcomeKind.AMBIGUOUS and self.ambiguous_accepted
            ):
                with self.lock:
                    self.accepted[delivery.to] += 1
            return outcome
        finally:
            with self.lock:
                self.in_flight -= 1

    def lookup(self, delivery: Delivery, sent_after: datetime) -> tuple[LookupResult, str | None]:
        with self.lock:
            self.lookups.append(delivery.to)
            if self.lookup_answer is not None:
                return self.lookup_answer, None
            if self.accepted[delivery.to]:
                return LookupResult.FOUND, f"SM-found-{delivery.transmission_id}"
        return LookupResult.NOT_FOUND, None

    def check(self) -> str:
        return "scripted: always ready"
