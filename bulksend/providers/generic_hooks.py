"""Receipts and replies in a shape the profile describes: generic HTTP gateways and the outbox (docs/webhooks.md).

A gateway posts JSON, a form, or a GET query; each field is read at a dotted path (JSON) or by name (form,
query). The defaults (``reference``, ``id``, ``status``, ``error_code``, ``from``, ``text``) are the outbox's
own shape, for rehearsals. Such providers cannot sign: a secret token in the URL path guards the endpoint.
"""

from __future__ import annotations

from typing import Any

from bulksend.providers.base import Profile, WebhookRequest
from bulksend.receipts import Fault, InboundMessage, Receipt, ReceiptState

DEFAULTS: dict[str, Any] = {
    "receipt_reference_path": "reference",  # our transmission id, as the send request gave it ({id})
    "receipt_id_path": "id",  # the gateway's message id
    "receipt_status_path": "status",
    "receipt_code_path": "error_code",
    "receipt_delivered": ["delivered", "read"],
    "receipt_undelivered": ["undelivered", "failed", "expired", "rejected"],
    "receipt_provider_fault_codes": [],  # codes of undelivered receipts that are the gateway's fault: refunded
    "receipt_recipient_fault_codes": [],
    "inbound_from_path": "from",
    "inbound_text_path": "text",
}


def setting(profile: Profile, key: str) -> Any:
    value = profile.get(key)
    return DEFAULTS[key] if value in (None, "") else value


def _read(request: WebhookRequest, path: str) -> str | None:
    if isinstance(request.json, (dict, list)):
        current: Any = request.json
        for step in str(path).split("."):
            if isinstance(current, dict) and step in current:
                current = current[step]
            elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
                current = current[int(step)]
            else:
                return None
        if current is None or isinstance(current, (dict, list)):
            return None
        if isinstance(current, bool):
            return "true" if current else "false"
        if isinstance(current, float) and current.is_integer():
            current = int(current)
        return str(current)
    value = request.form_value(path)
    return value if value is not None else request.query_value(path)


def _words(profile: Profile, key: str) -> set[str]:
    return {str(v).strip().casefold() for v in setting(profile, key)}


def parse_report(profile: Profile, request: WebhookRequest) -> list[Receipt]:
    status = (_read(request, setting(profile, "receipt_status_path")) or "").strip()
    if not status:
        return []
    folded = status.casefold()
    code = (_read(request, setting(profile, "receipt_code_path")) or "").strip() or None
    if folded in _words(profile, "receipt_delivered"):
        state = ReceiptState.DELIVERED
    elif folded in _words(profile, "receipt_undelivered"):
        state = ReceiptState.UNDELIVERED
    else:
        state = ReceiptState.ACCEPTED
    fault = text = None
    if state is ReceiptState.UNDELIVERED:
        key = (code or "").casefold()
        if key and key in _words(profile, "receipt_provider_fault_codes"):
            fault = Fault.PROVIDER
        elif key and key in _words(profile, "receipt_recipient_fault_codes"):
            fault = Fault.RECIPIENT
        else:
            fault = Fault.UNKNOWN
        text = f"{status} ({code})" if code else status
    reference = (_read(request, setting(profile, "receipt_reference_path")) or "").strip()
    return [
        Receipt(
            profile=profile.name,
            state=state,
            provider_id=(_read(request, setting(profile, "receipt_id_path")) or "").strip() or None,
            transmission_id=int(reference) if reference.isdigit() else None,
            status=status[:100],
            code=code,
            text=text,
            fault=fault,
        )
    ]


def parse_inbound(profile: Profile, request: WebhookRequest) -> list[InboundMessage]:
    if _read(request, setting(profile, "receipt_status_path")):
        return []
    sender = (_read(request, setting(profile, "inbound_from_path")) or "").strip()
    text = _read(request, setting(profile, "inbound_text_path"))
    if not sender or text is None:
        return []
    digits = sender.removeprefix("whatsapp:").lstrip("+")
    return [
        InboundMessage(
            profile=profile.name,
            sender=f"+{digits}" if digits.isdigit() else sender,
            text=text,
            provider_id=(_read(request, setting(profile, "receipt_id_path")) or "").strip() or None,
        )
    ]
