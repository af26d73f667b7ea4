"""``Ledger.mark_sent_many`` (the engine's batch of accepted rows) leaves exactly what one ``mark_sent`` per row
leaves: the same transmissions, lots, hold and movements, in the same order, on SQLite and on PostgreSQL —
debits that span lots, free rows, a hold that does not cover a row (the one-by-one path), a shortfall, a row
that is not in flight."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from ledger_backends import BACKENDS, Backend

from bulksend.errors import InsufficientCredits, LedgerError
from bulksend.ledger import FixedClock, NewTransmission

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
def pair(request):
    """Two empty ledgers on one backend, on a clock that stands still: one per way of recording."""
    made = [Backend(request.param, FixedClock(NOW)) for _ in range(2)]
    ledgers = [backend.open() for backend in made]
    yield ledgers
    for ledger, backend in zip(ledgers, made):
        ledger.close()
        backend.drop()


def _claimed(ledger, costs: list[int], *, topups: list[tuple[int, date]], hold: int | None = None):
    """A campaign with one row per cost, every row claimed; its hold is ``hold`` (default: the whole cost)."""
    for amount, on in topups:
        ledger.topup("sms", amount, on=on)
    campaign = ledger.open_campaign("spring", "sms", "outbox", "fp")
    ledger.add_transmissions(
        campaign.id, [NewTransmission(f"+4479111{i:05d}", "hi", max(cost, 1), cost) for i, cost in enumerate(costs)]
    )
    ledger.hold(campaign.id, "sms", sum(costs) if hold is None else hold)
    rows = ledger.claim(campaign.id, len(costs), within_hold=False)
    return campaign, [row.id for row in rows]


def _state(ledger, campaign) -> tuple:
    return (
        [(t.id, t.state, t.provider_id, t.cost, t.debited, t.sent_at, t.error_code) for t in
         ledger.transmissions(campaign.id)],
        ledger.lots(),
        ledger.history(),
        ledger.held(campaign.id),
    )


TOPUPS = [(3, date(2026, 9, 1)), (2, date(2026, 10, 1)), (20, date(2026, 11, 24))]


@pytest.mark.parametrize("costs, hold", [
    ([2, 2, 0, 3, 1, 2], None),  # debits that span three lots, and a free row
    ([0, 0], None),  # nothing to debit
    ([2, 3, 2], 4),  # the hold covers the first row only: the rest comes from credits nobody holds
])
def test_a_batch_records_what_one_call_per_row_records(pair, costs, hold, monkeypatch):
    one_by_one, batch = pair
    if hold is None:  # a hold that covers the batch: recorded in one go, never row by row
        monkeypatch.setattr(batch, "mark_sent", lambda *args, **kwargs: pytest.fail("recorded row by row"))
    results = []
    for ledger in pair:
        campaign, ids = _claimed(ledger, costs, topups=TOPUPS, hold=hold)
        accepted = [(row_id, f"SM{row_id}") for row_id in reversed(ids)]  # completion order, not id order
        with ledger.transaction():
            if ledger is one_by_one:
                debited = sum(ledger.mark_sent(row_id, provider_id) for row_id, provider_id in accepted)
            else:
                debited = ledger.mark_sent_many(accepted)
        results.append((debited, _state(ledger, campaign)))
    assert results[0] == results[1]
    assert results[1][0] == sum(costs)


def test_a_shortfall_raises_as_one_call_per_row_does_and_records_nothing(pair):
    errors = []
    for ledger in pair:
        campaign, ids = _claimed(ledger, [3, 3], topups=[(4, date(2026, 11, 24))], hold=3)
        before = _state(ledger, campaign)
        with pytest.raises(InsufficientCredits) as caught:
            with ledger.transaction():
                if ledger is pair[0]:
                    for row_id in ids:
                        ledger.mark_sent(row_id, "SM")
                else:
                    ledger.mark_sent_many([(row_id, "SM") for row_id in ids])
        errors.append(str(caught.value))
        assert _state(ledger, campaign) == before
    assert errors[0] == errors[1]


def test_a_row_not_in_flight_is_refused_by_name(pair):
    _, batch = pair
    campaign, ids = _claimed(batch, [1, 1], topups=TOPUPS)
    batch.mark_sent_many([(ids[0], "SM1")])
    before = _state(batch, campaign)
    with pytest.raises(LedgerError, match=f"transmission {ids[0]} is sent: it cannot become sent"):
        batch.mark_sent_many([(ids[1], "SM2"), (ids[0], "SM1")])
    with pytest.raises(LedgerError, match="no transmission with id 999"):
        batch.mark_sent_many([(999, "SM9")])
    assert _state(batch, campaign) == before
