"""One table per provider code space says what a code means, how a send answer with it is classed and whose
fault an undelivered receipt with it is; the adapters' classification and the reports read that one table.

The receipts here go through each adapter's own ``parse_report``, as a verified webhook would: what is refunded
is what the adapter decides, not what the table says it should.
"""

from __future__ import annotations

import json

import pytest

from bulksend import codes
from bulksend.providers.base import Profile, WebhookRequest, provider_class
from bulksend.receipts import Fault, ReceiptState

PROVIDER, RECIPIENT, SENDER, UNKNOWN = Fault.PROVIDER, Fault.RECIPIENT, Fault.SENDER, Fault.UNKNOWN
PHONE_NUMBER_ID = "1234567890"


def request(method: str = "POST", *, form=(), body: dict | None = None) -> WebhookRequest:
    raw = json.dumps(body).encode() if body is not None else b""
    return WebhookRequest(method, "https://hooks.example.test/hooks/api", "", (), {}, raw, tuple(form), body)


def twilio_receipt(code: str):
    form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": code, "AccountSid": "AC1"}
    return request(form=form.items())


def vonage_receipt(code: str):
    return request(form={"messageId": "V1", "status": "failed", "err-code": code, "client-ref": "7"}.items())


def whatsapp_receipt(code: str):
    status = {"id": "wamid.1", "status": "failed", "timestamp": "1735732860", "errors": [{"code": int(code)}]}
    value = {"metadata": {"phone_number_id": PHONE_NUMBER_ID}, "statuses": [status]}
    return request(body={"entry": [{"changes": [{"field": "messages", "value": value}]}]})


RECEIPTS = {"twilio": twilio_receipt, "vonage": vonage_receipt, "whatsapp": whatsapp_receipt}


def classify(provider_type: str, code: str):
    """The receipt the adapter makes of an undelivered status callback carrying ``code``."""
    profile = Profile("api", provider_type, {"phone_number_id": PHONE_NUMBER_ID})
    (receipt,) = provider_class(provider_type).parse_report(profile, RECEIPTS[provider_type](code))
    assert receipt.state is ReceiptState.UNDELIVERED
    return receipt


# Captured from the adapters' tables before they became one table per provider (TWILIO_DELIVERY_ERRORS,
# VONAGE_DLR_ERRORS, WHATSAPP_DELIVERY_ERRORS): every code that was refunded, and no other.
REFUNDED_BEFORE = {
    "twilio": {30001, 30008, 30009, 30017},
    "vonage": {1, 5, 8, 11, 16, 99},
    "whatsapp": {1, 2, 130472, 131000, 131016, 131049},
}

# A representative set, captured the same way: (provider, code) → (fault, opt-out).
FAULTS_BEFORE = {
    ("twilio", "30008"): (PROVIDER, False),  # "unknown error": Twilio's or the carrier's side
    ("twilio", "30001"): (PROVIDER, False),
    ("twilio", "30003"): (RECIPIENT, False),  # unreachable handset
    ("twilio", "30005"): (RECIPIENT, False),  # unknown handset
    ("twilio", "30006"): (RECIPIENT, False),
    ("twilio", "21610"): (RECIPIENT, True),  # unsubscribed: an opt-out signal
    ("twilio", "30007"): (SENDER, False),  # carrier filtering: our content
    ("twilio", "30034"): (SENDER, False),
    ("twilio", "63016"): (SENDER, False),
    ("twilio", "21211"): (UNKNOWN, False),  # a send-time code: not classed as a delivery failure
    ("twilio", "99999"): (UNKNOWN, False),
    ("vonage", "9"): (RECIPIENT, True),  # DLR err-code 9: the user opted out (send status 9 is a quota)
    ("vonage", "8"): (PROVIDER, False),
    ("vonage", "2"): (RECIPIENT, False),
    ("vonage", "6"): (SENDER, False),
    ("vonage", "77"): (UNKNOWN, False),
    ("whatsapp", "131000"): (PROVIDER, False),
    ("whatsapp", "131049"): (PROVIDER, False),
    ("whatsapp", "131026"): (RECIPIENT, False),
    ("whatsapp", "131050"): (RECIPIENT, True),  # stopped marketing messages
    ("whatsapp", "131047"): (SENDER, False),
    ("whatsapp", "100"): (UNKNOWN, False),  # a send-time code
}

# Documented codes that are not failures, so have a meaning and no class: Vonage's "0" is "delivered".
NOT_FAILURES = {("vonage", "receipt", 0)}


@pytest.mark.parametrize(("provider_type", "code"), sorted(FAULTS_BEFORE))
def test_the_refund_classification_of_each_code_is_what_it_was(provider_type, code):
    fault, opt_out = FAULTS_BEFORE[provider_type, code]
    receipt = classify(provider_type, code)
    assert (receipt.fault, receipt.opt_out, receipt.refundable) == (fault, opt_out, fault is PROVIDER)
    assert receipt.code == code


@pytest.mark.parametrize("provider_type", sorted(REFUNDED_BEFORE))
def test_exactly_the_provider_faults_are_refunded(provider_type):
    table = provider_class(provider_type).receipt_codes
    refunded = {code for code in table.codes if classify(provider_type, str(code)).refundable}
    assert refunded == REFUNDED_BEFORE[provider_type]


@pytest.mark.parametrize("provider_type", sorted(RECEIPTS))
def test_every_code_the_adapter_classifies_has_a_meaning_and_every_meaning_a_class(provider_type):
    provider = provider_class(provider_type)
    for moment, table in (("send", provider.send_codes), ("receipt", provider.receipt_codes)):
        assert table.codes, f"{provider_type} has no {moment} codes"
        assert table.source_of(1).startswith("https://")
        for code, row in table.codes.items():
            assert row.meaning.strip(), (provider_type, code)
            # a code of a shared table may be classed at one moment only (a send-time refusal never comes in a
            # receipt as a delivery failure of ours); a table of one moment classes every failure code at it
            shared = provider.send_codes is provider.receipt_codes
            classes = (row.send, row.fault) if shared else (row.send if moment == "send" else row.fault,)
            documented = any(c is not None for c in classes) or (provider_type, moment, code) in NOT_FAILURES
            assert documented, (provider_type, moment, code)
    # and what the adapter does with each receipt code, the report explains with the same words
    for code, row in provider.receipt_codes.codes.items():
        if row.fault is None:
            continue
        receipt = classify(provider_type, str(code))
        assert receipt.fault is row.fault
        assert receipt.text == row.meaning == codes.meaning(provider_type, str(code), "undelivered")
    for code, row in provider.send_codes.codes.items():
        assert codes.meaning(provider_type, str(code), "failed") == row.meaning


def test_a_code_is_read_in_the_code_space_of_its_moment():
    assert codes.meaning("vonage", "9", "failed") == "partner quota exceeded: not enough credit"
    assert codes.meaning("vonage", "9", "undelivered") == (
        "illegal number: the user asked not to receive messages from this service")
    assert codes.meaning("twilio", "30008", "undelivered") == "unknown error (from the carrier or Twilio)"
    assert codes.meaning("twilio", "30008", "failed") == "unknown error (from the carrier or Twilio)"


def test_providers_without_documented_codes_explain_only_bulksends_own():
    for provider_type in ("outbox", "http"):
        provider = provider_class(provider_type)
        assert provider.send_codes is provider.receipt_codes is codes.NO_CODES
    assert codes.meaning("http", "NET", "undelivered") is None  # a gateway's codes are its profile's
    assert codes.meaning("http", "read_timeout") == codes.BULKSEND["read_timeout"]
    assert codes.meaning("gone", "30008", "undelivered") is None
