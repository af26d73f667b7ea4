"""What a failure code in the ledger means, per provider: the words reports and ``campaigns show`` print.

A transmission's ``error_code`` is the provider's own code (as text), or one of bulksend's (a transport
failure, an HTTP status). The same number can mean different things at different moments: Vonage's send
status 9 is "quota exceeded" while its delivery-receipt err-code 9 is "illegal number (the user opted out)".
So a code is looked up by provider type *and* by when it came: ``failed`` rows carry send-time codes,
``undelivered`` rows carry receipt codes. Unknown codes have no meaning (``None``), never a guess.

This module only explains; which failures are refunded is decided where receipts are applied.
"""

from __future__ import annotations

# Twilio's error dictionary, https://www.twilio.com/docs/api/errors/<code> (one page per code). Twilio
# uses the same codes on create (an HTTP 400 body) and in a Message's error_code / a status callback.
TWILIO: dict[str, str] = {
    "20003": "authentication failed",
    "20429": "too many concurrent requests",
    "21211": "invalid 'To' phone number",
    "21408": "sending to this region is not enabled (Geo Permissions)",
    "21602": "message body is required",
    "21606": "the 'From' number cannot send messages",
    "21608": "trial account: the recipient is not a verified number",
    "21610": "the recipient unsubscribed (replied STOP)",
    "21611": "the sender's queue is full",
    "21612": "the 'To' number cannot be reached from this sender",
    "21614": "'To' is not a mobile number",
    "21617": "message body exceeds 1600 characters",
    "21635": "'To' is a landline",
    "30001": "queue overflow",
    "30002": "account suspended",
    "30003": "unreachable destination handset (off, out of coverage, or no service)",
    "30004": "message blocked (the recipient blocked it, or the number cannot receive it)",
    "30005": "unknown destination handset (the number does not exist)",
    "30006": "landline or unreachable carrier",
    "30007": "message filtered by the carrier (spam or content rules)",
    "30008": "unknown error (from the carrier or Twilio)",
    "30009": "missing segment of a long message",
    "30010": "message price exceeds the max price",
    "30017": "carrier network congestion",
    "30018": "the destination carrier requires sender ID pre-registration",
    "30019": "content size exceeds the carrier's limit",
    "30022": "US A2P 10DLC: rate limit exceeded",
    "30023": "US A2P 10DLC: daily cap reached",
    "30024": "numeric sender ID not provisioned with the carrier",
    "30032": "toll-free number not verified",
    "30034": "US A2P 10DLC: message from an unregistered number",
    "63003": "the channel could not find the 'To' address",
    "63014": "the recipient blocked this sender",
    "63016": "outside the WhatsApp 24-hour window: only a template may be sent",
    "63024": "invalid message recipient",
    "63038": "the account's daily message limit is reached",
}

# Vonage SMS API send status (messages[].status in the /sms/json answer),
# https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms#sms-api-error-codes
VONAGE_SEND: dict[str, str] = {
    "1": "throttled: sending faster than the account's limit",
    "2": "missing parameters",
    "3": "invalid parameters",
    "4": "invalid credentials",
    "5": "internal error at Vonage",
    "6": "invalid message: the number is not routable",
    "7": "the number is barred",
    "8": "the account is barred (suspended)",
    "9": "partner quota exceeded: not enough credit",
    "10": "too many existing binds",
    "11": "the account is not enabled for the HTTP SMS API",
    "12": "message too long",
    "14": "invalid signature",
    "15": "sender ID not authorised for this destination",
    "22": "invalid network code",
    "23": "invalid callback URL",
    "29": "non-whitelisted destination (demo account)",
    "32": "a signed request may not also carry api_secret",
    "33": "the number is de-activated",
}

# Vonage delivery receipts: the DLR's err-code, https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts
# and Vonage's support article "SMS Delivery Error Codes" (api.support.vonage.com, article 204014733).
VONAGE_RECEIPT: dict[str, str] = {
    "0": "delivered",
    "1": "unknown: not delivered and no cause could be determined",
    "2": "absent subscriber (temporary): the handset was unavailable",
    "3": "absent subscriber (permanent): the number is no longer active",
    "4": "call barred by the user",
    "5": "portability error",
    "6": "anti-spam rejection by the carrier",
    "7": "handset busy",
    "8": "network error",
    "9": "illegal number: the user asked not to receive messages from this service",
    "10": "illegal message: error in a message parameter (e.g. the encoding)",
    "11": "unroutable: Vonage found no route for this message",
    "12": "destination unreachable",
    "13": "subscriber age restriction",
    "14": "number blocked by the carrier",
    "15": "prepaid subscriber with insufficient funds",
    "50": "entity filter (10DLC / sender registration)",
    "51": "header filter (sender ID)",
    "52": "content filter",
    "53": "consent filter",
    "54": "regulation error",
    "99": "general error",
}

# Meta WhatsApp Cloud API error codes, the same on the send answer and in a status webhook's errors[]:
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
WHATSAPP: dict[str, str] = {
    "0": "authentication failed (the access token expired or was invalidated)",
    "1": "unknown API error",
    "2": "the API is temporarily unavailable",
    "4": "the app reached its API call rate limit",
    "10": "permission denied",
    "100": "invalid parameter",
    "190": "the access token expired",
    "368": "temporarily blocked for policy violations",
    "130429": "Cloud API message throughput reached",
    "130472": "the recipient's number is part of an experiment",
    "130497": "the business may not message users in this country",
    "131000": "something went wrong (unknown error)",
    "131005": "access denied",
    "131008": "a required parameter is missing",
    "131009": "a parameter value is not valid",
    "131016": "a service is temporarily unavailable",
    "131021": "the recipient is the sender",
    "131026": "message undeliverable (not on WhatsApp, an old app, or the terms not accepted)",
    "131031": "the business account is locked",
    "131042": "business eligibility payment issue",
    "131045": "incorrect certificate (phone number registration)",
    "131047": "more than 24 hours since the recipient last wrote: only a template may be sent",
    "131048": "spam rate limit: sending from this number is restricted",
    "131049": "Meta did not deliver it to keep engagement healthy (per-user marketing limit)",
    "131050": "the recipient stopped marketing messages from this business",
    "131051": "unsupported message type",
    "131052": "media download error",
    "131053": "media upload error",
    "131056": "pair rate limit: too many messages to this recipient in a short time",
    "131057": "the business account is in maintenance mode",
    "132000": "the number of template parameters does not match the template",
    "132001": "the template does not exist in this language, or is not approved",
    "132005": "the template's text is too long once filled in",
    "132007": "the filled-in template violates the format character policy",
    "132012": "a template parameter is not in the template's format",
    "132015": "the template is paused for low quality",
    "132016": "the template is disabled",
    "133010": "the business phone number is not registered",
}

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

_SEND = {"twilio": TWILIO, "vonage": VONAGE_SEND, "whatsapp": WHATSAPP}
_RECEIPT = {"twilio": TWILIO, "vonage": VONAGE_RECEIPT, "whatsapp": WHATSAPP}


def meaning(provider_type: str | None, code: str | None, state: str = "failed") -> str | None:
    """What ``code`` means for this provider type, for a row in ``state``; None when it is not known.

    ``undelivered`` rows are read against the receipt codes, anything else against the send-time codes.
    """
    if code is None:
        return None
    code = str(code).strip()
    table = (_RECEIPT if state == "undelivered" else _SEND).get(provider_type or "", {})
    if code in table:
        return table[code]
    if code in BULKSEND:
        return BULKSEND[code]
    if code.startswith("http_") and code[5:].isdigit():
        status = int(code[5:])
        if status >= 500:
            return f"the provider answered HTTP {status} (a server error): it may have taken the message"
        return f"the provider answered HTTP {status}"
    return None
