"""What providers tell us after the send: delivery receipts, inbound replies, and which replies are opt-outs.

Values only (no storage, no HTTP): adapters build them from a verified webhook (``parse_report`` /
``parse_inbound``), the receiver (``bulksend/inbound.py``) hands them to the ledger, and the ledger applies
them (``record_receipt``, ``record_inbound``). See docs/webhooks.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ReceiptState(StrEnum):
    """What a receipt says happened to an accepted message."""

    ACCEPTED = "accepted"  # the provider holds it (queued, sent, buffered…): not final
    DELIVERED = "delivered"  # the handset (or the channel) has it: final
    UNDELIVERED = "undelivered"  # it will not arrive: final


class Fault(StrEnum):
    """Whose fault an undelivered message is; only ``provider`` is refunded (the service terms)."""

    PROVIDER = "provider"  # the provider's or the network's side: refunded automatically, once
    RECIPIENT = "recipient"  # unreachable, unknown, landline, blocked by the recipient: not refunded
    SENDER = "sender"  # our content, sender ID, account or registration: not refunded
    UNKNOWN = "unknown"  # a code nobody classified yet: not refunded (docs/webhooks.md says how to add it)


class ReceiptFate(StrEnum):
    """What the ledger did with one receipt."""

    APPLIED = "applied"  # the row moved (or an accepted receipt was noted)
    SETTLED = "settled"  # an unknown row became sent (debited once), then moved
    REFUNDED = "refunded"  # applied, and the row's credits were refunded
    PENDING = "pending"  # the row is not known yet (or still being sent): kept and applied later
    DUPLICATE = "duplicate"  # the row already had a final report: nothing changed
    IGNORED = "ignored"  # contradicts the ledger (a failed row, another message's id): nothing changed


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt from a verified webhook.

    ``transmission_id`` is our id as the provider echoed it (Twilio ``?t=``, Vonage ``client-ref``, WhatsApp
    ``biz_opaque_callback_data``, a gateway's reference field); ``provider_id`` the provider's message id.
    ``exact_id``: the provider id names the whole message, so a row that has another one is another message
    (Vonage sends one receipt per part, each with the part's own id: False there).
    """

    profile: str
    state: ReceiptState
    provider_id: str | None = None
    transmission_id: int | None = None
    status: str | None = None  # the provider's own status word
    code: str | None = None  # the provider's error code, as text
    text: str | None = None  # what the code means
    fault: Fault | None = None  # for an undelivered receipt: whose fault
    opt_out: bool = False  # the provider says the recipient opted out (Vonage err-code 9, WhatsApp 131050)
    reported_at: str | None = None  # the provider's time of the event (UTC, ledger format), when it gives one
    exact_id: bool = True

    @property
    def refundable(self) -> bool:
        return self.state is ReceiptState.UNDELIVERED and self.fault is Fault.PROVIDER


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a recipient sent us (a reply), or a provider's opt-out signal without text."""

    profile: str
    sender: str  # E.164 when it could be read as a number, else as the provider gave it
    text: str = ""
    provider_id: str | None = None
    channel: str | None = None
    opt_out: bool = False  # a STOP keyword, or the provider's own opt-out signal
    keyword: str | None = None  # the opt-out keyword found in the text, or the provider's signal
    received_at: str | None = None  # the provider's time, when it gives one


#: Opt-out keywords: the carriers' and Twilio's standard English set, and the common ones in Spanish, French,
#: Portuguese, Italian, German, Dutch and the Nordic languages. Compared without case, accents or extra
#: spaces; ``[webhooks] stop_words`` adds more (docs/webhooks.md).
DEFAULT_STOP_WORDS: tuple[str, ...] = (
    "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "OPT-OUT",
    "REVOKE", "UNSUB",
    "ARRET", "ARRETER", "DESABONNER", "DESINSCRIRE", "STOPPER",  # French (ARRÊT)
    "BAJA", "ALTO", "PARAR", "CANCELAR", "DETENER", "DARME DE BAJA", "DAR DE BAJA",  # Spanish
    "PARE", "SAIR", "CANCELAR INSCRICAO",  # Portuguese
    "ANNULLA", "CANCELLA", "DISISCRIVIMI", "BASTA",  # Italian
    "STOPP", "ABMELDEN", "ABBESTELLEN", "AFMELDEN", "UITSCHRIJVEN", "AVSLUTA", "AFMELD",  # German, Dutch, Nordic
)

_PUNCTUATION = re.compile(r"[^\w\s]+")


def _fold(text: str) -> str:
    """Upper case, accents off, punctuation as space, runs of space as one."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_PUNCTUATION.sub(" ", plain.replace("-", " ")).upper().split())


class StopWords:
    """Decides whether a reply is an opt-out: the whole text, or its first words, is a keyword."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        words = {_fold(w) for w in (*DEFAULT_STOP_WORDS, *extra)}
        words.discard("")
        self._words = words
        self._longest = max(len(w.split()) for w in words)

    def match(self, text: str) -> str | None:
        """The keyword ``text`` is or starts with ("stop please" → "STOP"), or None."""
        words = _fold(text or "").split()
        for n in range(min(self._longest, len(words)), 0, -1):
            candidate = " ".join(words[:n])
            if candidate in self._words:
                return candidate
        return None
