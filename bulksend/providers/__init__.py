"""Provider adapters, registered by type name; each only builds requests and classifies outcomes."""

from bulksend.providers.base import (
    Delivery,
    LookupResult,
    Outcome,
    OutcomeKind,
    Profile,
    Provider,
    create_provider,
    provider_types,
    register,
)

__all__ = [
    "Delivery",
    "LookupResult",
    "Outcome",
    "OutcomeKind",
    "Profile",
    "Provider",
    "create_provider",
    "provider_types",
    "register",
]
