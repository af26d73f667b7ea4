"""The one question every pipeline asks of the opt-out list: which of these numbers are suppressed."""

from __future__ import annotations

from bulksend.config import Config


def load_suppressed(config: Config) -> frozenset[str]:
    """The E.164 numbers on the opt-out list in the ledger of ``config.home``.

    Validation loads the list once and checks membership in bulk. A home without a ledger has an
    empty list; reading the list never creates a ledger.
    """
    from bulksend.ledger_guard import open_for_read

    ledger = open_for_read(config)
    if ledger is None:
        return frozenset()
    with ledger:
        return ledger.suppressed()
