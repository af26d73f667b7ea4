"""What a provider's code means and what bulksend does about it: the ``Code`` and ``CodeTable`` every adapter
fills, and the words reports and ``campaigns show`` print.

A transmission's ``error_code`` is the provider's own code (as text), or one of bulksend's (a transport
failure, an HTTP status). Each adapter keeps one table per code space of its provider (``send_codes``,
``receipt_codes``: the same table where the provider uses one set of codes for both), and that one table says
what a code means, how a send answer carrying it is classed, and whose fault an undelivered receipt carrying
it is (only the provider's fault is refunded). The same number can mean different things at different
moments: Vonage's send status 9 is "quota exceeded" while its delivery-receipt err-code 9 is "illegal number
(the user opted out)". So a code is looked up by provider type *and* by when it came: ``failed`` rows carry
send-time codes, ``undelivered`` rows carry receipt codes. Unknown codes have no meaning (``None``), never a
guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bulksend.errors import ConfigError
from bulksend.receipts import Fault

if TYPE_CHECKING:
    from bulksend.providers.base import OutcomeKind


@dataclass(frozen=True, slots=True)
class Code:
    """One documented provider code.

    ``meaning``: what it means, in the words reports print. ``send``: how a send answer carrying it is classed
    (None: not a send-time code; the adapter's HTTP-status rules decide). ``fault``: whose fault an undelivered
    receipt carrying it is (None: not classified, so ``Fault.UNKNOWN``, never refunded).
    """

    meaning: str
    send: OutcomeKind | None = None
    fault: Fault | None = None


@dataclass(frozen=True)
class CodeTable:
    """A provider's documented codes of one code space, by number, and the page that documents them."""

    source: str  # the provider's page; "{code}" in it stands for the code (Twilio has a page per code)
    codes: Mapping[int, Code] = field(default_factory=dict)

    def get(self, code: int | str | None) -> Code | None:
        """The row of ``code`` (a number, or its digits as text); None when it is not documented here."""
        if isinstance(code, str):
            text = code.strip()
            code = int(text) if text.isascii() and text.isdigit() else None
        return self.codes.get(code) if isinstance(code, int) else None

    def meaning(self, code: int | str | None) -> str | None:
        row = self.get(code)
        return row.meaning if row else None

    def send(self, code: int | str | None) -> OutcomeKind | None:
        row = self.get(code)
        return row.send if row else None

    def failure(self, code: int | str | None) -> tuple[Fault, str | None]:
        """Whose fault an undelivered receipt with ``code`` is, and what the code means; ``(Fault.UNKNOWN,
        None)`` when the table does not class it as a delivery failure (never refunded: the adapter words it)."""
        row = self.get(code)
        return (row.fault, row.meaning) if row and row.fault else (Fault.UNKNOWN, None)

    def source_of(self, code: int | str) -> str:
        return self.source.format(code=str(code).strip())


NO_CODES = CodeTable("")  # a provider without documented codes (the outbox; a generic gateway's are in its profile)


# bulksend's own codes: what the adapters record when there was no provider code (bulksend/providers/).
BULKSEND: dict[str, str] = {
    "connect_timeout": "no connection to the provider in time; not sent",
    "connect_error": "could not connect to the provider; not sent",
    "read_timeout": "the provider did not answer in time; it may have taken the message",
    "connection_dropped": "the connection dropped after the request; the provider may have taken it",
    "transport_error": "the request failed in transit",
    "deadline_exceeded": "the request took longer than the profile's deadline",
    "interrupted": "the run was stopped while the request was in flight",
    "bad_base_url": "the provider URL (base_url) is not usable",
    "unsupported_channel": "this provider cannot send on the campaign's channel",
    "outbox_write_failed": "the outbox file could not be written",
    "adapter_error": "the provider adapter failed unexpectedly",
    "partial": "only some parts of a long message were accepted",
}


def meaning(provider_type: str | None, code: str | None, state: str = "failed") -> str | None:
    """What ``code`` means for this provider type, for a row in ``state``; None when it is not known.

    ``undelivered`` rows are read against the receipt codes, anything else against the send-time codes.
    """
    if code is None:
        return None
    code = str(code).strip()
    known = codes_of(provider_type, state).meaning(code)
    if known is not None:
        return known
    if code in BULKSEND:
        return BULKSEND[code]
    if code.startswith("http_") and code[5:].isdigit():
        status = int(code[5:])
        if status >= 500:
            return f"the provider answered HTTP {status} (a server error): it may have taken the message"
        return f"the provider answered HTTP {status}"
    return None


def codes_of(provider_type: str | None, state: str = "failed") -> CodeTable:
    """The table a ``state`` row's code is read against: the receipt codes for ``undelivered``, else the
    send-time codes; ``NO_CODES`` for a provider type bulksend does not know (a profile that is gone)."""
    from bulksend.providers.base import provider_class  # the adapters import this module for their tables

    try:
        provider = provider_class(provider_type or "")
    except ConfigError:
        return NO_CODES
    return provider.receipt_codes if state == "undelivered" else provider.send_codes
