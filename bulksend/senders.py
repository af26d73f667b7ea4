"""Sender IDs: what a run puts in a message's From, checked before anything is held or sent."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bulksend.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.providers.base import Provider

# Alphanumeric sender IDs: the GSM networks' limit of 11 characters, and only what every network shows the
# same way (ASCII letters, digits, spaces); at least one letter, or it would read as a number.
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 ]{1,11}")
_HAS_LETTER = re.compile(r"[A-Za-z]")
# Short codes are 3 to 8 digits across the world's networks (5-6 in the US and UK, 3-4 in parts of Europe,
# up to 8 in some Asian markets).
_SHORT_CODE = re.compile(r"\d{3,8}")
_INTERNATIONAL = re.compile(r"\+?\d{7,15}")

ALPHANUMERIC_RULE = (
    "an alphanumeric sender ID is 1 to 11 characters of letters (A-Z), digits and spaces, with at least one letter"
)
NUMERIC_RULE = (
    "a numeric sender is a valid number in E.164 (+, the country code and the number, like +447400123456) "
    "or a short code of 3 to 8 digits"
)
WHATSAPP_RULE = "a WhatsApp sender is a phone number in E.164 (+, the country code and the number, like +447400123456)"

# Provider types whose messages do not go out from a sender setting: the WhatsApp Cloud API sends from
# the phone_number_id in its URL, which is an account identifier, not a sender ID.
_NO_SENDER_TYPES = frozenset({"whatsapp"})


def sender_for(provider: "Provider", channel: str) -> tuple[str | None, str | None]:
    """The sender the adapter will put on this channel's messages, and the profile key it comes from.

    Mirrors the adapters: ``whatsapp_sender`` (else ``sender``) on WhatsApp, ``sender`` otherwise. A Twilio
    ``messaging_service_sid`` is not a sender: Twilio picks the number from the service's pool.
    """
    if provider.type_name in _NO_SENDER_TYPES:
        return None, None
    settings = provider.profile.settings
    keys = ("whatsapp_sender", "sender") if channel == "whatsapp" else ("sender",)
    for key in keys:
        value = settings.get(key)
        if value is not None and str(value) != "":
            return str(value), key
    return None, None


def _valid_number(digits: str) -> bool:
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def check_sender(value: str, channel: str, where: str) -> str:
    """``value`` if it is a sender the networks accept on ``channel``; else InputError (exit 2) naming the rule."""
    text = value[len("whatsapp:"):] if value.lower().startswith("whatsapp:") else value
    if channel == "whatsapp":
        if not (text.startswith("+") and _INTERNATIONAL.fullmatch(text) and _valid_number(text[1:])):
            raise InputError(f"{where} {value!r} cannot send WhatsApp messages: {WHATSAPP_RULE}.")
        return value
    if _HAS_LETTER.search(text):
        if not _ALPHANUMERIC.fullmatch(text):
            raise InputError(f"{where} {value!r} is not a valid sender ID: {ALPHANUMERIC_RULE}.")
        return value
    if _SHORT_CODE.fullmatch(text):
        return value
    # Digits without the + are accepted too: E.164 itself has no +, and Vonage writes numbers that way.
    if _INTERNATIONAL.fullmatch(text) and _valid_number(text.lstrip("+")):
        return value
    raise InputError(f"{where} {value!r} is not a valid sender: {NUMERIC_RULE}.")
