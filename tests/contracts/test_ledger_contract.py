"""The ledger contract: every credit rule, every transition, holds, the audit and migrations, on every backend.

One class, as keyring tests every backend: ``backend`` is parametrized by store (SQLite always, PostgreSQL
when ``BULKSEND_TEST_POSTGRES`` names a server), and each test gets an empty ledger of its own with a clock
standing at noon UTC on 2026-11-24 until the test moves it.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest

from bulksend.errors import InputError, InsufficientCredits, LedgerError
from bulksend.ledger import (
    LEDGER_ID,
    TRANSITIONS,
    HighWater,
    SqliteLedger,
    Expiring,
    FixedClock,
    Ledger,
    MovementKind,
    NewTransmission,
    TransmissionState,
    add_year,
)
from ledger_backends import BACKENDS, Backend

TODAY = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TODAY)


@pytest.fixture(params=BACKENDS)
def backend(request, clock):
    made = Backend(request.param, clock)
    yield made
    made.drop()


@pytest.fixture
def ledger(backend) -> Ledger:
    with backend.open() as opened:
        yield opened


def campaign(ledger: Ledger, name: str = "spring", channel: str = "sms", rows: int = 0, cost: int = 1):
    c = ledger.open_campaign(name, channel, "outbox", f"fp-{name}")
    if rows:
        ledger.add_transmissions(
            c.id, [NewTransmission(f"+4479111{i:05d}", "hi", cost, cost, row_number=i + 1) for i in range(rows)]
        )
    return c


def send(ledger: Ledger, campaign_id: int, n: int) -> list[int]:
    with ledger.transaction():
        rows = ledger.claim(campaign_id, n)
        for row in rows:
            ledger.mark_sent(row.id, f"SM{row.id}")
    return [r.id for r in rows]


def available(ledger: Ledger, channel: str = "sms") -> int:
    return ledger.balance(channel)[channel].available


def kinds(ledger: Ledger) -> list[tuple[str, int]]:
    return [(m.kind, m.amount) for m in ledger.history()]


def kinds_unsettled(backend: Backend) -> list[tuple[str, int]]:
    """The movements as recorded, without the settling write ``history()`` makes first."""
    with backend.open() as other:
        return [(row[1], row[3]) for row in other.store.all("history", channel=None, since=None)]


class TestLedgerContract:
    """What every ledger backend must do, test by test."""

    # --------------------------------------------------------------------------------------- top-ups


    def test_one_year_of_validity_same_calendar_day(self, ledger, clock):
        lot = ledger.topup("sms", 1000).lot
        assert (lot.purchased_on, lot.expires_on) == (date(2026, 11, 24), date(2027, 11, 24))
        clock.move_to(datetime(2027, 11, 23, 23, 59))
        assert available(ledger) == 1000
        clock.move_to(datetime(2027, 11, 24, 0, 1))
        assert available(ledger) == 0


    def test_29_february_expires_on_28_february(self):
        assert add_year(date(2028, 2, 29)) == date(2029, 2, 28)
        assert add_year(date(2028, 2, 28)) == date(2029, 2, 28)
        assert add_year(date(2028, 3, 1)) == date(2029, 3, 1)


    def test_a_top_up_brings_unexpired_credits_forward(self, ledger, clock):
        clock.move_to(datetime(2026, 1, 10, 12))
        ledger.topup("sms", 1000)
        clock.move_to(datetime(2026, 6, 1, 12))
        result = ledger.topup("sms", 1000)
        assert result.brought_forward == 1000
        assert ledger.balance("sms")["sms"].expiring == (Expiring(2000, date(2027, 6, 1)),)
        assert [lot.expires_on for lot in ledger.lots("sms")] == [date(2027, 6, 1)] * 2


    def test_a_top_up_leaves_the_other_channel_alone(self, ledger, clock):
        clock.move_to(datetime(2026, 1, 10, 12))
        ledger.topup("whatsapp", 5000)
        clock.move_to(TODAY)
        ledger.topup("sms", 1000)
        assert ledger.balance()["whatsapp"].expiring == (Expiring(5000, date(2027, 1, 10)),)


    def test_a_backdated_top_up_never_shortens_a_later_expiry(self, ledger):
        ledger.topup("sms", 1000)
        result = ledger.topup("sms", 1000, on=date(2026, 3, 1))
        assert result.brought_forward == 0
        assert ledger.balance("sms")["sms"].expiring == (
            Expiring(1000, date(2027, 3, 1)),
            Expiring(1000, date(2027, 11, 24)),
        )


    def test_a_backdated_top_up_reinstates_credits_that_expired_after_its_date(self, ledger, clock):
        clock.move_to(datetime(2025, 12, 1, 12))
        ledger.topup("sms", 1000)
        clock.move_to(datetime(2026, 12, 5, 12))
        ledger.settle()  # the expiry of 2026-12-01 is recorded
        assert available(ledger) == 0
        assert kinds(ledger)[0] == ("expiry", 1000)
        # …then the invoice of a purchase made on 2026-11-20 is recorded: those credits never expired.
        result = ledger.topup("sms", 1000, on=date(2026, 11, 20))
        assert (result.brought_forward, result.reinstated) == (1000, 1000)
        assert ledger.balance("sms")["sms"].expiring == (Expiring(2000, date(2027, 11, 20)),)
        assert ("reinstate", 1000) in kinds(ledger)
        assert ledger.audit().consistent


    @pytest.mark.parametrize("channel", ["sms", "whatsapp"])
    def test_a_future_date_is_refused_and_nothing_recorded(self, ledger, channel):
        with pytest.raises(InputError, match=r"2026-11-25 is in the future \(today is 2026-11-24\)"):
            ledger.topup(channel, 5000, on=date(2026, 11, 25))
        assert ledger.history() == []


    def test_a_date_whose_credits_already_expired_is_refused(self, ledger):
        with pytest.raises(InputError, match="credits bought on 2025-11-24 expired on 2026-11-24"):
            ledger.topup("sms", 1000, on=date(2025, 11, 24))
        assert ledger.topup("sms", 1000, on=date(2025, 11, 25)).lot.expires_on == date(2026, 11, 25)


    def test_a_used_reference_is_refused(self, ledger):
        ledger.topup("sms", 1000, ref="INV-1")
        with pytest.raises(InputError, match="reference 'INV-1' was already used by the top-up of 1000 sms"):
            ledger.topup("whatsapp", 5000, ref="INV-1")
        assert available(ledger, "whatsapp") == 0
        assert len(ledger.history()) == 1


    def test_a_top_up_is_a_positive_whole_number(self, ledger):
        for bad in (0, -5, 1.5):
            with pytest.raises(InputError):
                ledger.topup("sms", bad)
        with pytest.raises(InputError, match="unknown channel 'fax'"):
            ledger.topup("fax", 1000)


    # ---------------------------------------------------------------------------------------- expiry


    def test_expired_credits_are_gone_and_recorded_as_an_expiry_movement(self, ledger, clock, backend):
        ledger.topup("sms", 1000)
        clock.move_to(datetime(2027, 12, 1, 12))
        assert available(ledger) == 0  # a read: computes the expiry without writing it
        assert ledger.lots()[0].remaining == 1000 and [k for k, _ in kinds_unsettled(backend)] == ["topup"]
        movements = ledger.history()  # the next write records it, dated on the expiry day
        assert [(m.kind, m.amount, m.on) for m in movements] == [
            ("expiry", 1000, date(2027, 11, 24)),
            ("topup", 1000, date(2026, 11, 24)),
        ]
        assert ledger.lots()[0].remaining == 0
        assert ledger.audit().consistent


    def test_expiry_is_recorded_once(self, ledger, clock):
        ledger.topup("sms", 1000)
        clock.move_to(datetime(2028, 1, 1, 12))
        ledger.settle()
        ledger.settle()
        ledger.topup("sms", 1000)
        assert kinds(ledger) == [("topup", 1000), ("expiry", 1000), ("topup", 1000)]


    # ----------------------------------------------------------------------------------- debits


    def test_debits_take_the_earliest_expiring_credits_first(self, ledger):
        ledger.topup("sms", 1000)  # expires 2027-11-24
        ledger.topup("sms", 1000, on=date(2026, 3, 1))  # expires 2027-03-01: spent first
        c = campaign(ledger, rows=2, cost=700)
        ledger.hold(c.id, "sms", 1400)
        first, second = send(ledger, c.id, 2)
        assert ledger.balance("sms")["sms"].expiring == (Expiring(600, date(2027, 11, 24)),)
        debits = [m for m in ledger.history() if m.kind == "debit"]
        assert sorted((m.transmission_id, m.lot_id, m.amount) for m in debits) == [
            (first, 2, 700),
            (second, 1, 400),
            (second, 2, 300),
        ]
        assert ledger.transmission(second).debited == 700
        assert ledger.audit().consistent


    def test_a_debit_beyond_the_credits_fails_and_changes_nothing(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=1, cost=1200)
        [row] = ledger.claim(c.id, 10, within_hold=False)
        with pytest.raises(InsufficientCredits, match="costs 1200 sms credits but 1000 are available to it: 200 short"):
            ledger.mark_sent(row.id, "SM1")
        assert ledger.transmission(row.id).state == "sending"
        assert available(ledger) == 1000
        assert ledger.audit().consistent


    def test_debits_in_one_step_are_the_debits_one_by_one(self, ledger):
        """``mark_sent_many`` (the engine's batch commit) records exactly what ``mark_sent`` row by row does:
        the same lots, hold shares, movements and balances. The same story on two channels, one each way."""
        for channel in ("sms", "whatsapp"):
            ledger.topup(channel, 1000)  # expires 2027-11-24
            ledger.topup(channel, 1000, on=date(2026, 3, 1))  # expires 2027-03-01: spent first
        made = {}
        for channel in ("sms", "whatsapp"):
            held = campaign(ledger, f"held-{channel}", channel=channel)
            free = campaign(ledger, f"free-{channel}", channel=channel)
            costs = [(held, 400), (free, 250), (held, 500), (held, 300), (free, 100)]
            for i, (c, cost) in enumerate(costs):
                ledger.add_transmissions(c.id, [NewTransmission(f"+44791110{i:04d}", "hi", cost, cost, i + 1)])
            ledger.hold(held.id, channel, 1000)  # covers the first two of its three; the third is part free
            rows = {c.id: ledger.claim(c.id, 10, within_hold=False) for c in (held, free)}
            order = [rows[c.id].pop(0) for c, _ in costs]
            made[channel] = (held, order)
        _, one_by_one = made["sms"]
        with ledger.transaction():
            for row in one_by_one:
                ledger.mark_sent(row.id, f"SM{row.id}")
        _, together = made["whatsapp"]
        assert ledger.mark_sent_many([(row.id, f"SM{row.id}", None) for row in together]) == 1550

        def story(channel):
            held, order = made[channel]
            index = {row.id: i for i, row in enumerate(order)}
            lots = {lot.id: n for n, lot in enumerate(sorted(ledger.lots(channel), key=lambda lot: lot.id))}
            moves = [(m.kind, m.amount, lots.get(m.lot_id), index.get(m.transmission_id), m.from_hold)
                     for m in ledger.history(channel)]
            balance = ledger.balance(channel)[channel]
            return (moves, [(lot.remaining, lot.expired) for lot in ledger.lots(channel)], ledger.held(held.id),
                    (balance.total, balance.held, balance.expiring), [ledger.transmission(r.id).debited for r in order])

        sms, whatsapp = story("sms"), story("whatsapp")
        assert sms == whatsapp
        assert ("debit", 300, 0, 3, 100) in sms[0]  # the held campaign's third: 100 from its hold, 200 free
        assert ("debit", 350, 1, 2, 350) in sms[0] and ("debit", 150, 0, 2, 150) in sms[0]  # across two lots
        assert ledger.held(made["sms"][0].id) == 0
        assert ledger.audit().consistent

    def test_debits_in_one_step_are_all_or_nothing(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=3, cost=400)
        rows = ledger.claim(c.id, 3, within_hold=False)
        with pytest.raises(InsufficientCredits, match=f"transmission {rows[2].id} costs 400 sms credits but 200"):
            ledger.mark_sent_many([(row.id, f"SM{row.id}", None) for row in rows])
        assert ledger.counts(c.id) == {"sending": 3}
        assert available(ledger) == 1000
        with pytest.raises(LedgerError, match=f"transmission {rows[0].id} is sent: it cannot become sent"):
            ledger.mark_sent_many([(rows[0].id, "SM1", None), (rows[0].id, "SM1", None)])
        assert ledger.counts(c.id) == {"sending": 3}
        assert ledger.mark_sent_many([(rows[0].id, "SM1", None), (rows[1].id, "SM2", 100)]) == 500
        assert available(ledger) == 500
        assert ledger.audit().consistent

    def test_a_debit_never_takes_another_campaigns_hold(self, ledger):
        ledger.topup("sms", 1000)
        greedy, careful = campaign(ledger, "greedy", rows=1, cost=300), campaign(ledger, "careful")
        ledger.hold(careful.id, "sms", 800)
        [row] = ledger.claim(greedy.id, 1, within_hold=False)
        with pytest.raises(InsufficientCredits, match="200 are available to it: 100 short"):
            ledger.mark_sent(row.id, "SM1")


    # ----------------------------------------------------------------------------------- refunds


    def test_a_refund_returns_credits_to_their_lots_with_their_expiry(self, ledger):
        ledger.topup("sms", 1000)
        ledger.topup("sms", 1000, on=date(2026, 3, 1))
        c = campaign(ledger, rows=2, cost=700)
        ledger.hold(c.id, "sms", 1400)
        _, second = send(ledger, c.id, 2)
        assert ledger.refund(second) == 700
        assert ledger.balance("sms")["sms"].expiring == (
            Expiring(300, date(2027, 3, 1)),
            Expiring(1000, date(2027, 11, 24)),
        )
        assert ledger.refund(second) == 0  # once only
        assert ledger.transmission(second).refunded == 700
        assert ledger.audit().consistent


    def test_a_refund_into_an_expired_lot_expires_at_once(self, ledger, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=1, cost=10)
        ledger.hold(c.id, "sms", 10)
        [sent] = send(ledger, c.id, 1)
        clock.move_to(datetime(2027, 12, 1, 12))
        assert ledger.refund(sent) == 10
        assert available(ledger) == 0
        assert kinds(ledger)[:2] == [("expiry", 10), ("refund", 10)]
        assert ledger.lots()[0].expired == 1000
        assert ledger.audit().consistent


    def test_only_a_debited_transmission_is_refunded(self, ledger):
        c = campaign(ledger, rows=1)
        with pytest.raises(LedgerError, match="never debited"):
            ledger.refund(ledger.transmissions(c.id)[0].id)


    # -------------------------------------------------------------------------------------- holds


    def test_a_hold_reserves_credits_shrinks_with_debits_and_is_released(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=10, cost=2)
        assert ledger.hold(c.id, "sms", 30).amount == 30
        assert ledger.balance("sms")["sms"].held == 30
        assert available(ledger) == 970
        send(ledger, c.id, 4)
        assert ledger.held(c.id) == 22
        assert (available(ledger), ledger.balance("sms")["sms"].total) == (970, 992)
        assert ledger.release(c.id) == 22
        assert ledger.release(c.id) == 0
        assert (available(ledger), ledger.balance("sms")["sms"].held) == (992, 0)
        assert [k for k, _ in kinds(ledger)] == ["release"] + ["debit"] * 4 + ["hold", "topup"]
        assert ledger.audit().consistent


    def test_a_hold_beyond_the_available_balance_names_the_shortfall(self, ledger):
        ledger.topup("sms", 1000)
        first, second = campaign(ledger, "first"), campaign(ledger, "second")
        ledger.hold(first.id, "sms", 600)
        with pytest.raises(InsufficientCredits, match="'second' needs 500 sms credits but 400 are available: 100 short"):
            ledger.hold(second.id, "sms", 500)
        assert ledger.held(second.id) == 0
        ledger.hold(second.id, "sms", 400)
        assert available(ledger) == 0


    def test_a_hold_must_match_the_campaign_channel(self, ledger):
        ledger.topup("whatsapp", 5000)
        c = campaign(ledger)
        with pytest.raises(LedgerError, match="sends on sms, not whatsapp"):
            ledger.hold(c.id, "whatsapp", 1)


    def test_expired_credits_under_a_hold_leave_available_at_zero(self, ledger, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=1)
        ledger.hold(c.id, "sms", 900)
        clock.move_to(datetime(2027, 12, 1, 12))
        b = ledger.balance("sms")["sms"]
        assert (b.total, b.held, b.available) == (0, 900, 0)
        [row] = ledger.claim(c.id, 1)
        with pytest.raises(InsufficientCredits):
            ledger.mark_sent(row.id, "SM1")


    # ------------------------------------------------------------------------------ transmissions


    def test_transmissions_are_unique_per_campaign_and_number(self, ledger):
        c = campaign(ledger, rows=3)
        again = [NewTransmission("+447911100000", "hi", 1, 1), NewTransmission("+447911199999", "hi", 1, 1)]
        assert ledger.add_transmissions(c.id, again) == 1
        assert ledger.counts(c.id) == {"queued": 4}
        other = campaign(ledger, "other")
        assert ledger.add_transmissions(other.id, again) == 2


    def test_a_batch_keeps_every_field_and_the_order_of_its_rows(self, ledger):
        """Rows queued and sent in batches (PostgreSQL writes a batch as one statement over JSON) keep their text
        byte for byte, their NULLs, and ids in the order given; every accepted row is debited once."""
        ledger.topup("sms", 1000)
        c = campaign(ledger)
        texts = ['Hi "Zoë" \\ 50% off', "Ĉu vi? 🙂 naïve", "two\nlines\ttab", "'quoted'", "plain"]
        rows = [
            NewTransmission(f"+44791110{i:04d}", text, 1 + i % 2, 1 + i % 2, row_number=10 - i,
                            country=None if i % 2 else "GB", params=None if i % 3 else '{"name": "Zoë"}',
                            not_before=TODAY + timedelta(days=1) if i == 2 else None, timezone="Europe/London" if i == 1 else None)
            for i, text in enumerate(texts)
        ]
        assert ledger.add_transmissions(c.id, rows) == 5
        stored = ledger.transmissions(c.id)
        assert [t.id for t in stored] == sorted(t.id for t in stored)
        assert [(t.e164, t.message, t.units, t.cost, t.row_number, t.country, t.params, t.timezone)
                for t in stored] == [(r.e164, r.message, r.units, r.cost, r.row_number, r.country, r.params,
                                      r.timezone) for r in rows]
        assert [t.not_before is not None for t in stored] == [False, False, True, False, False]
        ledger.hold_shortfall(c.id)
        with ledger.transaction():
            claimed = ledger.claim(c.id, 5)
            debited = ledger.mark_sent_many([(t.id, f'SM"{t.id}"\\é', None) for t in claimed])
        assert debited == sum(t.cost for t in claimed) == 6  # the row due later was not claimed
        sent = {t.id: t for t in ledger.transmissions(c.id, states=("sent",))}
        assert {i: (t.provider_id, t.debited) for i, t in sent.items()} == {
            t.id: (f'SM"{t.id}"\\é', t.cost) for t in claimed
        }
        assert ledger.audit().consistent

    def test_rows_queued_as_columns_are_those_queued_as_objects(self, ledger):
        """``add_transmission_columns`` (how ``send`` queues a list) writes exactly the rows ``add_transmissions``
        writes for the same values: every field, the NULLs, not_before, the order of ids, a number already
        queued skipped; a column left out is NULL for every row."""
        texts = ['Hi "Zoë" \\ 50% off', "Ĉu vi? 🙂 naïve", "two\nlines\ttab", "'quoted'", "plain", "dup"]
        later = TODAY + timedelta(days=1, hours=3, microseconds=123456)
        rows = [
            NewTransmission(f"+44791110{i % 5:04d}", text, 1 + i % 2, 2 + i % 2, row_number=10 - i,
                            country=None if i % 2 else "GB", params=None if i % 3 else '{"name": "Zoë"}',
                            not_before=(later if i == 2 else later.astimezone(timezone(timedelta(hours=5)))
                                        if i == 4 else None),
                            timezone="Europe/London" if i == 1 else None)
            for i, text in enumerate(texts)
        ]
        fields = ("e164", "message", "units", "cost", "row_number", "country", "params", "not_before", "timezone",
                  "state", "attempts", "created_at")
        as_objects, as_columns = campaign(ledger, "objects"), campaign(ledger, "columns")
        assert ledger.add_transmissions(as_objects.id, rows) == 5  # the sixth number is the first's
        added = ledger.add_transmission_columns(
            as_columns.id, [r.e164 for r in rows], [r.message for r in rows], [r.units for r in rows],
            [r.cost for r in rows], row_number=[r.row_number for r in rows], country=[r.country for r in rows],
            params=[r.params for r in rows], not_before=[r.not_before for r in rows],
            timezone=[r.timezone for r in rows],
        )
        assert added == 5
        expected = [tuple(getattr(t, f) for f in fields) for t in ledger.transmissions(as_objects.id)]
        stored = ledger.transmissions(as_columns.id)
        assert [tuple(getattr(t, f) for f in fields) for t in stored] == expected
        assert [t.id for t in stored] == sorted(t.id for t in stored)
        assert [t.not_before is not None for t in stored] == [False, False, True, False, True]
        # Queued again: nothing added. A column left out: NULL.
        assert ledger.add_transmission_columns(as_columns.id, [r.e164 for r in rows], texts, [1] * 6, [1] * 6) == 0
        bare = campaign(ledger, "bare")
        assert ledger.add_transmission_columns(bare.id, ["+447911100001"], ["hi"], [1], [2]) == 1
        [row] = ledger.transmissions(bare.id)
        assert (row.row_number, row.country, row.params, row.not_before, row.timezone) == (None,) * 5
        assert (row.units, row.cost, row.state) == (1, 2, "queued")
        with pytest.raises(ValueError):
            ledger.add_transmission_columns(bare.id, ["+447911100002"], ["hi"], [1], [1], country=["GB", "FR"])
        assert ledger.add_transmission_columns(bare.id, [], [], [], []) == 0

    def test_transmission_pages_follow_ids_and_filter_by_state(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=5)
        ids = [t.id for t in ledger.transmissions(c.id)]
        pages, after = [], 0
        while page := ledger.transmission_page(c.id, after_id=after, limit=2):
            pages.append([t.id for t in page])
            after = page[-1].id
        assert pages == [ids[0:2], ids[2:4], ids[4:5]]
        ledger.hold(c.id, "sms", 1)
        ledger.claim(c.id, 1)
        assert [t.id for t in ledger.transmission_page(c.id, states=["sending"])] == ids[:1]
        assert [t.id for t in ledger.transmission_page(c.id, after_id=ids[0], states=["queued"], limit=2)] == ids[1:3]

    def test_claim_takes_due_queued_rows_within_the_hold(self, ledger, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=5, cost=3)
        assert ledger.claim(c.id, 10) == []  # nothing held: nothing to spend
        ledger.hold(c.id, "sms", 10)
        claimed = ledger.claim(c.id, 10)
        assert [r.state for r in claimed] == ["sending"] * 3
        assert ledger.claim(c.id, 10) == []  # 9 of 10 held credits are in flight
        ledger.mark_retry(claimed[0].id, clock.now() + timedelta(seconds=30), "429", "Too Many Requests")
        assert [r.id for r in ledger.claim(c.id, 10)] == [4]  # the retried row is not due; the next one is
        clock.shift(timedelta(seconds=31))
        assert ledger.claim(c.id, 10) == []  # due, but 9 held credits are in flight again
        ledger.mark_failed(4, "21211", "invalid number")
        again = ledger.claim(c.id, 10)
        assert [(r.id, r.attempts, r.error_code) for r in again] == [(claimed[0].id, 1, "429")]


    def test_claim_is_committed_before_the_request(self, ledger, backend):
        c = campaign(ledger, rows=2)
        ledger.topup("sms", 1000)
        ledger.hold(c.id, "sms", 2)
        ledger.claim(c.id, 2)
        with backend.open() as other:
            assert other.counts(c.id) == {"sending": 2}


    def test_outcomes_of_a_batch_commit_in_one_transaction(self, ledger, backend, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=4)
        ledger.hold(c.id, "sms", 4)
        rows = ledger.claim(c.id, 4)
        with ledger.transaction():
            ledger.mark_sent(rows[0].id, "SM1")
            ledger.mark_retry(rows[1].id, clock.now(), "20429", "throttled")
            ledger.mark_failed(rows[2].id, "21211", "invalid 'To' number")
            ledger.mark_unknown(rows[3].id, None, "read timeout")
            with backend.open() as other:  # nothing visible before the commit
                assert other.counts(c.id) == {"sending": 4}
        assert ledger.counts(c.id) == {"sent": 1, "queued": 1, "failed": 1, "unknown": 1}
        assert ledger.transmission(rows[2].id).error_text == "invalid 'To' number"
        assert ledger.transmission(rows[0].id).provider_id == "SM1"


    def test_a_failed_operation_inside_a_batch_leaves_the_others(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=2, cost=600)
        rows = ledger.claim(c.id, 2, within_hold=False)
        with ledger.transaction():
            ledger.mark_sent(rows[0].id, "SM1")
            with pytest.raises(InsufficientCredits):
                ledger.mark_sent(rows[1].id, "SM2")
            ledger.mark_unknown(rows[1].id, None, "not enough credits to record it")
        assert ledger.counts(c.id) == {"sent": 1, "unknown": 1}
        assert ledger.audit().consistent


    def test_an_exception_in_a_batch_rolls_it_all_back(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=2)
        ledger.hold(c.id, "sms", 2)
        rows = ledger.claim(c.id, 2)
        with pytest.raises(KeyboardInterrupt):
            with ledger.transaction():
                ledger.mark_sent(rows[0].id, "SM1")
                raise KeyboardInterrupt
        assert ledger.counts(c.id) == {"sending": 2}
        assert available(ledger) == 998


    def test_transitions_follow_the_state_machine(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=2)
        ledger.hold(c.id, "sms", 2)
        queued = ledger.transmissions(c.id)[0].id
        with pytest.raises(LedgerError, match=f"transmission {queued} is queued: it cannot become sent"):
            ledger.mark_sent(queued, "SM1")
        with pytest.raises(LedgerError, match="cannot become unknown"):
            ledger.mark_unknown(queued)
        [row, other] = ledger.claim(c.id, 2)
        ledger.mark_sent(row.id, "SM1")
        with pytest.raises(LedgerError, match="is sent: it cannot become sent"):
            ledger.mark_sent(row.id, "SM1")  # never debited twice
        ledger.mark_report(row.id, "delivered")
        ledger.mark_report(row.id, "undelivered", "30003", "Unreachable handset")
        with pytest.raises(LedgerError, match="delivered or undelivered"):
            ledger.mark_report(row.id, "sent")
        assert ledger.find_by_provider_id("SM1").state == "undelivered"
        ledger.mark_unknown(other.id)
        ledger.mark_sent(other.id, "SM2", cost=1)  # reconciled: it was accepted after all
        assert ledger.counts(c.id) == {"undelivered": 1, "sent": 1}
        assert ledger.audit().consistent


    def test_rows_left_sending_by_a_crash_become_unknown(self, ledger):
        ledger.topup("sms", 1000)
        c, other = campaign(ledger, rows=3), campaign(ledger, "other", rows=1)
        ledger.hold(c.id, "sms", 3)
        ledger.hold(other.id, "sms", 1)
        ledger.claim(c.id, 2)
        ledger.claim(other.id, 1)
        assert ledger.recover_sending(c.id) == 2
        assert ledger.counts(c.id) == {"unknown": 2, "queued": 1}
        assert ledger.counts(other.id) == {"sending": 1}  # another campaign's run is left alone
        assert ledger.outstanding_cost(c.id) == 3


    def test_a_campaign_rerun_with_other_inputs_is_refused(self, ledger):
        first = ledger.open_campaign("spring", "sms", "outbox", "abc", attestation="signed up at the till")
        assert ledger.open_campaign("spring", "sms", "twilio", "abc") == first
        assert first.attestation == "signed up at the till"
        with pytest.raises(InputError, match="started with a different recipient file or message"):
            ledger.open_campaign("spring", "sms", "outbox", "xyz")
        with pytest.raises(InputError, match="sends on sms, not whatsapp"):
            ledger.open_campaign("spring", "whatsapp", "outbox", "abc")
        ledger.set_campaign_state(first.id, "done")
        assert ledger.get_campaign("spring").state == "done"
        assert ledger.get_campaign(first.id).name == "spring"
        assert [x.name for x in ledger.campaigns()] == ["spring"]


    # -------------------------------------------------------------------------------------- opt-outs


    def test_optouts_keep_when_why_and_where(self, ledger):
        assert ledger.add_optouts(["+447911123456"], "STOP", "provider") == (["+447911123456"], [])
        assert ledger.add_optouts(["+447911123456", "+14155552671"], None, "import") == (
            ["+14155552671"],
            ["+447911123456"],
        )
        first = ledger.optouts()[1]
        assert (first.e164, first.reason, first.source) == ("+447911123456", "STOP", "provider")
        assert ledger.suppressed() == {"+447911123456", "+14155552671"}
        assert ledger.remove_optouts(["+14155552671", "+33612345678"]) == (["+14155552671"], ["+33612345678"])
        with pytest.raises(LedgerError):
            ledger.add_optouts(["+33612345678"], None, "rumour")


    # ----------------------------------------------------------------------------------------- audit


    def test_the_audit_names_each_difference(self, ledger, backend):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=2)
        ledger.hold(c.id, "sms", 2)
        [first, _] = send(ledger, c.id, 2)
        assert ledger.audit().consistent
        backend.raw(
            "UPDATE credit_lots SET remaining = remaining + 5",
            f"UPDATE transmissions SET debited = 0 WHERE id = {first}",
            "UPDATE holds SET amount = 7",
        )
        differences = ledger.audit().differences
        assert "lot 1 (sms): 1003 credits left, movements say 998" in differences
        assert "sms: top-ups 1000 - debits 1 + refunds 0 - expired 0 = 999, but the lots hold 1003" in differences
        assert "sms: the transmission log debited 1, debit movements say 2" in differences
        assert (
            f"transmission {first} (sent, costs 1): debited 0 and refunded 0, movements say debited 1 and refunded 0"
            in differences
        )
        assert "campaign 1: holds 7 credits, but held 2 - released 0 - debited from the hold 2 = 0" in differences


    # ------------------------------------------------------------------------ what the engine also uses


    def test_unclaim_returns_rows_without_spending_an_attempt(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=3)
        ledger.hold(c.id, "sms", 3)
        rows = ledger.claim(c.id, 3)
        assert ledger.unclaim([r.id for r in rows[:2]], "fatal", "account suspended") == 2
        assert ledger.unclaim([rows[0].id]) == 0  # already queued
        assert ledger.counts(c.id) == {"queued": 2, "sending": 1}
        first = ledger.transmission(rows[0].id)
        assert (first.attempts, first.error_code) == (0, "fatal")


    def test_next_due_is_the_earliest_queued_row(self, ledger, clock):
        c = campaign(ledger, rows=2)
        assert ledger.next_due(c.id) == datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
        ledger.topup("sms", 1000)
        ledger.hold(c.id, "sms", 2)
        rows = ledger.claim(c.id, 2)
        assert ledger.next_due(c.id) is None
        later = datetime(2026, 11, 24, 12, 5, tzinfo=timezone.utc)
        ledger.mark_retry(rows[0].id, later)
        ledger.mark_retry(rows[1].id, later + timedelta(minutes=5))
        assert ledger.next_due(c.id) == later


    def test_campaign_summaries(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=4, cost=2)
        ledger.hold(c.id, "sms", 8)
        rows = ledger.claim(c.id, 4)
        ledger.mark_sent(rows[0].id, "SM1")
        ledger.mark_sent(rows[1].id, "SM2")
        ledger.refund(rows[1].id)
        ledger.mark_failed(rows[2].id, "21211", "invalid")
        ledger.mark_failed(rows[3].id, "21211", "invalid")
        assert ledger.campaign_credits(c.id) == (4, 2)
        assert ledger.failure_codes(c.id) == {"21211": 2}
        assert ledger.campaign_settings(c.id) == {}
        ledger.save_campaign_settings(c.id, {"run": {"rate": 10}, "sender": "+15550001111"})
        assert ledger.campaign_settings(c.id) == {"run": {"rate": 10}, "sender": "+15550001111"}


    def test_suppressed_among_checks_only_the_numbers_asked(self, ledger):
        ledger.add_optouts([f"+4479111{i:05d}" for i in range(0, 1200, 2)], "STOP", "import")
        asked = [f"+4479111{i:05d}" for i in range(1000, 1200)]
        assert ledger.suppressed_among(asked) == {n for n in asked if int(n[-5:]) % 2 == 0}
        assert ledger.suppressed_among([]) == frozenset()


    def test_meta_facts_are_kept_and_replaced(self, backend):
        ledger = backend.open()
        assert ledger.meta("owner") is None
        ledger.set_meta("owner", "ops")
        ledger.set_meta("owner", "finance")
        ledger.close()
        with backend.open() as again:
            assert again.meta("owner") == "finance"

    # ------------------------------------------------------------------- identity, calendar, high water

    def test_a_new_ledger_has_an_identity_and_its_calendars_zone_from_the_start(self, backend):
        with backend.open() as ledger:
            ledger_id = ledger.meta(LEDGER_ID)
            assert ledger_id and len(ledger_id) == 36
            assert ledger.meta("timezone") == "UTC"  # conftest: the machine's zone, pinned
        with backend.open() as again:  # opening again gives it no new identity
            assert again.meta(LEDGER_ID) == ledger_id

    def test_today_is_the_day_in_the_ledgers_zone_not_the_clocks(self, backend, clock):
        clock.move_to(datetime(2026, 11, 24, 14, 0))  # already the 25th in Sydney (UTC+11)
        with backend.open() as ledger:
            ledger.set_meta("timezone", "Australia/Sydney")
        with backend.open() as ledger:
            assert ledger.topup("sms", 1000).lot.purchased_on == date(2026, 11, 25)
            assert ledger.calendar().zone == "Australia/Sydney"

    def test_a_ledger_without_a_zone_records_one_on_its_first_write(self, backend):
        backend.open().close()
        backend.raw("DELETE FROM meta WHERE key = 'timezone'")
        with backend.open() as ledger:
            ledger.balance()  # a read records nothing
            assert ledger.meta("timezone") is None
            ledger.topup("sms", 10)
            assert ledger.meta("timezone") == "UTC"

    def test_the_high_water_mark_and_the_commit_hook_follow_commits(self, ledger):
        assert ledger.high_water() == HighWater(0, 0, 0)
        commits = []
        ledger.on_commit = lambda: commits.append(ledger.high_water())
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=3)
        with pytest.raises(InsufficientCredits):
            ledger.hold(c.id, "sms", 5000)  # rolled back: no commit to report
        assert commits == [HighWater(0, 0, 1), HighWater(1, 0, 1), HighWater(1, 3, 1)]
        assert ledger.high_water().behind(HighWater(2, 3, 9)) == [
            "campaigns up to #1 (the home has seen #2)", "credit movements up to #1 (the home has seen #9)",
        ]

    def test_a_sound_ledger_passes_its_integrity_check(self, ledger):
        ledger.topup("sms", 1000)
        assert ledger.integrity() == []

    def test_a_backup_is_a_file_or_the_servers_own_tools(self, ledger, backend, tmp_path):
        ledger.topup("sms", 1000)
        target = tmp_path / "copy.db"
        if backend.name == "sqlite":
            ledger.backup(target)
            with SqliteLedger.open(target, create=False) as copy:
                assert copy.meta(LEDGER_ID) == ledger.meta(LEDGER_ID) and copy.balance()["sms"].total == 1000
        else:
            with pytest.raises(InputError, match="back it up with the server's own tools") as raised:
                ledger.backup(target)
            assert "pg_dump" in raised.value.hint and not target.exists()

    # -------------------------------------------------------------------------------- the state machine

    def test_defer_waits_without_using_an_attempt(self, ledger, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=2)
        ledger.hold(c.id, "sms", 2)
        claimed, queued = ledger.claim(c.id, 1)[0], ledger.transmissions(c.id, ["queued"])[0]
        later = clock.now() + timedelta(hours=8)
        ledger.defer(claimed.id, later, "quiet_hours", "quiet hours until 08:00")  # sending → queued
        ledger.defer(queued.id, later)  # queued → queued, waiting
        for row in (ledger.transmission(claimed.id), ledger.transmission(queued.id)):
            assert (row.state, row.attempts, row.not_before) == ("queued", 0, "2026-11-24T20:00:00.000Z")
        assert ledger.transmission(claimed.id).error_code == "quiet_hours"
        assert ledger.claim(c.id, 2) == [] and ledger.next_due(c.id) == later
        clock.shift(timedelta(hours=8))
        assert [r.attempts for r in ledger.claim(c.id, 2)] == [0, 0]
        ledger.mark_sent(claimed.id, "SM1")
        with pytest.raises(LedgerError, match=f"transmission {claimed.id} is sent: it cannot become queued"):
            ledger.defer(claimed.id, later)

    def test_every_transition_outside_the_state_machine_is_refused(self, ledger, clock):
        """Each transition from each state: allowed exactly when TRANSITIONS says so."""
        ledger.topup("sms", 100_000)
        operations = {
            "sent": lambda i: ledger.mark_sent(i, f"SM{i}"),
            "retry": lambda i: ledger.mark_retry(i, clock.now()),
            "defer": lambda i: ledger.defer(i, clock.now()),
            "failed": lambda i: ledger.mark_failed(i, "x", "y"),
            "unknown": lambda i: ledger.mark_unknown(i),
            "report": lambda i: ledger.mark_report(i, "delivered"),
        }
        c = campaign(ledger, rows=len(TransmissionState) * len(operations))
        ids = iter(r.id for r in ledger.transmissions(c.id))

        def row_in(state: TransmissionState) -> int:
            i = next(ids)
            if state is TransmissionState.QUEUED:
                return i
            if state is TransmissionState.FAILED:
                ledger.mark_failed(i, "x", "y")
                return i
            with ledger.transaction():
                ledger.store.execute("set_state_of_ids", state="sending", now="t", ids=[i])  # as claim does
            if state is TransmissionState.UNKNOWN:
                ledger.mark_unknown(i)
            elif state in (TransmissionState.SENT, TransmissionState.DELIVERED, TransmissionState.UNDELIVERED):
                ledger.mark_sent(i, f"SM{i}")
                if state is not TransmissionState.SENT:
                    ledger.mark_report(i, state.value)
            return i

        for state in TransmissionState:
            for name, operation in operations.items():
                row = row_in(state)
                allowed = state in TRANSITIONS[name][0]
                if allowed:
                    operation(row)
                else:
                    with pytest.raises(LedgerError, match=f"transmission {row} is {state}: it cannot become"):
                        operation(row)
                    assert ledger.transmission(row).state == state
        assert ledger.audit().consistent

    def test_unclaim_and_recover_move_only_sending_rows(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=3)
        ledger.hold(c.id, "sms", 3)
        first, second = ledger.claim(c.id, 2)
        ledger.mark_sent(first.id, "SM1")
        assert ledger.unclaim([first.id, second.id]) == 1  # the sent row is left alone
        assert ledger.counts(c.id) == {"sent": 1, "queued": 2}
        assert ledger.recover_sending(c.id) == 0

    def test_states_and_kinds_are_string_enums(self, ledger):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=1)
        row = ledger.transmissions(c.id)[0]
        assert row.state is TransmissionState.QUEUED and row.state == "queued"
        assert ledger.history()[0].kind is MovementKind.TOPUP and ledger.history()[0].kind == "topup"
        assert ledger.get_campaign(c.id).state == "open"

    # ------------------------------------------------------------------------------------- migrations

    def test_migrations_run_once_even_when_ten_open_at_once(self, backend):
        """Ten senders starting in the same second on an empty database: one migrates, all open."""
        import threading

        barrier, errors, ledgers = threading.Barrier(10), [], []

        def start():
            barrier.wait()
            try:
                ledgers.append(backend.open())
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(ledgers) == 10
        versions = {ledger.store.schema_version() for ledger in ledgers}
        assert all(ledger.store.migrate() == 0 for ledger in ledgers)  # nothing left to run
        for ledger in ledgers:
            ledger.close()
        if backend.name == "postgresql":
            from bulksend.stores.postgres import migrations

            assert versions == {migrations()[-1][0]}
            with backend.open() as ledger:
                applied = ledger.store.connection.execute("SELECT version FROM bulksend_schema ORDER BY 1").fetchall()
            assert [v for (v,) in applied] == [n for n, _, _ in migrations()]
        else:
            from bulksend.stores.sqlite import MIGRATIONS

            assert versions == {len(MIGRATIONS)}

    def test_a_ledger_from_a_newer_bulksend_is_refused(self, backend):
        backend.open().close()
        if backend.name == "postgresql":
            backend.raw("INSERT INTO bulksend_schema (version, name) VALUES (9999, '9999_future.sql')")
        else:
            backend.raw("PRAGMA user_version = 9999")
        with pytest.raises(LedgerError, match=r"written by a newer bulksend \(schema 9999"):
            backend.open()

    # ---------------------------------------------------------------------------------- one credit pool

    def test_concurrent_senders_never_overspend_nor_lose_an_update(self, backend):
        """Four senders (each its own connection) hold, debit, refund and release on one pool at once."""
        import threading

        with backend.open() as setup:
            setup.topup("sms", 3000)
            ids = []
            for w in range(4):
                c = campaign(setup, f"w{w}", rows=300, cost=1)
                setup.add_transmissions(c.id, [NewTransmission(f"+3361{i:07d}", "hi", 2, 2) for i in range(100)])
                ids.append(c.id)
        results, errors = [], []

        def sender(worker: int) -> None:
            rng = random.Random(worker)
            done = {"debited": 0, "refunded": 0, "sent": []}
            try:
                with backend.open() as ledger:
                    for _ in range(60):
                        op = rng.random()
                        if op < 0.35:
                            try:
                                ledger.hold(ids[worker], "sms", rng.randint(5, 80))
                            except InsufficientCredits:
                                pass
                        elif op < 0.85:
                            rows = ledger.claim(ids[worker], rng.randint(1, 10), within_hold=rng.random() < 0.7)
                            with ledger.transaction():
                                for row in rows:
                                    try:
                                        done["debited"] += ledger.mark_sent(row.id, f"SM{row.id}")
                                        done["sent"].append(row.id)
                                    except InsufficientCredits:
                                        ledger.unclaim([row.id])
                        elif op < 0.95 and done["sent"]:
                            done["refunded"] += ledger.refund(rng.choice(done["sent"]))
                        else:
                            ledger.release(ids[worker])
                        b = ledger.balance("sms")["sms"]
                        assert b.total >= b.held >= 0, (b.total, b.held)
                results.append(done)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with backend.open() as ledger:
            report = ledger.audit()
            assert report.consistent, report.differences
            sms = report.channels["sms"]
            assert sms["debited"] == sum(r["debited"] for r in results) > 0
            assert sms["refunded"] == sum(r["refunded"] for r in results)
            assert sms["remaining"] == 3000 - sms["debited"] + sms["refunded"] >= 0
            sent = sum(ledger.counts(c).get("sent", 0) for c in ids)
            assert sent == sum(len(r["sent"]) for r in results)
            b = ledger.balance("sms")["sms"]
            assert b.total >= b.held >= 0

    # ------------------------------------------------------------------- send times and frequency caps

    def test_defer_keeps_the_attempts_a_retry_used(self, ledger, clock):
        ledger.topup("sms", 1000)
        c = campaign(ledger, rows=1)
        ledger.hold(c.id, "sms", 1)
        (row,) = ledger.claim(c.id, 1)
        ledger.mark_retry(row.id, clock.now(), "429", "Too Many Requests")
        (row,) = ledger.claim(c.id, 1)
        ledger.defer(row.id, clock.now() + timedelta(hours=9))
        after = ledger.transmission(row.id)
        assert (after.state, after.attempts, after.error_code) == ("queued", 1, "429")
        assert after.not_before == "2026-11-24T21:00:00.000Z"

    def test_a_transmission_keeps_its_time_zone_and_first_due_time(self, ledger, clock):
        c = campaign(ledger)
        due = clock.now() + timedelta(hours=3)
        ledger.add_transmissions(c.id, [
            NewTransmission("+12125550100", "hi", 1, 1, not_before=due, timezone="America/New_York"),
            NewTransmission("+12125550101", "hi", 1, 1),
        ])
        first, second = ledger.transmissions(c.id)
        assert (first.timezone, first.not_before) == ("America/New_York", "2026-11-24T15:00:00.000Z")
        assert (second.timezone, second.not_before) == (None, None)

    def test_recent_sends_count_other_campaigns_on_the_channel_within_the_window(self, ledger, clock):
        ledger.topup("sms", 1000)
        ledger.topup("whatsapp", 1000)
        numbers = ["+4479111%05d" % i for i in range(3)]
        old = campaign(ledger, "old", rows=3)
        ledger.hold(old.id, "sms", 3)
        send(ledger, old.id, 1)  # numbers[0], at noon
        clock.shift(timedelta(hours=2))
        send(ledger, old.id, 1)  # numbers[1], at 14:00
        wa = campaign(ledger, "wa", "whatsapp", rows=3)
        ledger.hold(wa.id, "whatsapp", 3)
        send(ledger, wa.id, 3)  # another channel: never counted
        clock.shift(timedelta(hours=1))
        inflight = campaign(ledger, "inflight", rows=3)
        ledger.hold(inflight.id, "sms", 3)
        ledger.claim(inflight.id, 1)  # numbers[0] in flight since 15:00
        since = datetime(2026, 11, 24, 13, tzinfo=timezone.utc)
        found = ledger.recent_sends(numbers, "sms", since)
        assert found == {
            numbers[0]: [datetime(2026, 11, 24, 15, tzinfo=timezone.utc)],
            numbers[1]: [datetime(2026, 11, 24, 14, tzinfo=timezone.utc)],
        }
        assert ledger.recent_sends(numbers, "sms", since, other_than=inflight.id) == {numbers[1]: found[numbers[1]]}
        assert ledger.recent_sends(None, "sms", since) == found  # every number, for validation
        assert ledger.recent_sends(numbers[2:], "sms", since) == {}
        assert ledger.recent_sends([], "sms", since) == {}
        both = ledger.recent_sends(numbers[:1], "sms", since - timedelta(hours=2))[numbers[0]]
        assert sorted(both) == [TODAY, datetime(2026, 11, 24, 15, tzinfo=timezone.utc)]

    def test_two_campaigns_claiming_one_number_at_once_cannot_both_pass_the_cap(self, backend):
        """The cap check at claim time (the engine's): claim, count the others' recent sends, fail or keep;
        all in one transaction. Two senders (own connections) claim the same 20 numbers at the same moment,
        without the pool lock (within_hold=False); with a cap of one per window, each number goes out once."""
        import threading

        numbers = [f"+4479111{i:05d}" for i in range(20)]
        with backend.open() as setup:
            ids = [campaign(setup, name, rows=20).id for name in ("a", "b")]
        both_claimed = threading.Barrier(2)
        passed: dict[int, list[str]] = {}
        errors: list[BaseException] = []

        def sender(campaign_id: int) -> None:
            try:
                with backend.open() as ledger:
                    with ledger.transaction():
                        rows = ledger.claim(campaign_id, 20, within_hold=False)
                        if backend.name == "postgresql":  # SQLite's BEGIN IMMEDIATE runs one at a time
                            both_claimed.wait(timeout=30)
                        recent = ledger.recent_sends(
                            [r.e164 for r in rows], "sms", TODAY - timedelta(hours=24), other_than=campaign_id
                        )
                        kept = []
                        for row in rows:
                            if recent.get(row.e164):
                                ledger.mark_failed(row.id, "frequency_capped", "capped")
                            else:
                                kept.append(row.e164)
                    passed[campaign_id] = kept
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(c,)) for c in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(passed[ids[0]] + passed[ids[1]]) == numbers  # each number exactly once
        with backend.open() as ledger:
            capped = [r.e164 for c in ids for r in ledger.transmissions(c, ["failed"])]
            assert sorted(capped) == numbers

class TestReceiptContract:
    """Delivery receipts and replies (docs/webhooks.md) on every backend: rows move, an unknown row is settled
    and debited once, a provider's fault is refunded once, a recipient's never; STOP joins the opt-out list."""

    @staticmethod
    def receipt(state: str, **fields):
        from bulksend.receipts import Receipt, ReceiptState

        return Receipt("outbox", ReceiptState(state), **fields)

    @staticmethod
    def sent_row(ledger: Ledger, cost: int = 2) -> int:
        ledger.topup("sms", 10)
        c = campaign(ledger, rows=1, cost=cost)
        ledger.hold(c.id, "sms", cost)
        (tid,) = send(ledger, c.id, 1)
        return tid

    def test_a_delivered_receipt_moves_a_sent_row_once(self, ledger):
        from bulksend.receipts import ReceiptFate

        tid = self.sent_row(ledger)
        fate = ledger.record_receipt(self.receipt("delivered", provider_id=f"SM{tid}", status="delivered",
                                                  reported_at="2026-11-24T12:00:05.000Z"))
        assert fate is ReceiptFate.APPLIED
        row = ledger.transmission(tid)
        assert (row.state, row.report_status, row.reported_at) == ("delivered", "delivered", "2026-11-24T12:00:05.000Z")
        again = ledger.record_receipt(self.receipt("undelivered", provider_id=f"SM{tid}", code="30008"))
        assert again is ReceiptFate.DUPLICATE
        assert ledger.transmission(tid).state == "delivered"

    def test_an_accepted_receipt_only_notes_the_status(self, ledger):
        tid = self.sent_row(ledger)
        ledger.record_receipt(self.receipt("accepted", transmission_id=tid, status="queued"))
        row = ledger.transmission(tid)
        assert (row.state, row.report_status, row.reported_at) == ("sent", "queued", None)

    def test_a_recipient_fault_is_not_refunded(self, ledger):
        from bulksend.receipts import Fault, ReceiptFate

        tid = self.sent_row(ledger)
        fate = ledger.record_receipt(self.receipt("undelivered", transmission_id=tid, code="30003",
                                                  text="unreachable", fault=Fault.RECIPIENT))
        assert fate is ReceiptFate.APPLIED
        row = ledger.transmission(tid)
        assert (row.state, row.error_code, row.debited, row.refunded) == ("undelivered", "30003", 2, 0)
        assert ("refund", 2) not in kinds(ledger)
        assert ledger.audit().consistent

    def test_a_provider_fault_is_refunded_once(self, ledger):
        from bulksend.receipts import Fault, ReceiptFate

        tid = self.sent_row(ledger)
        fault = self.receipt("undelivered", transmission_id=tid, code="30008", fault=Fault.PROVIDER)
        assert ledger.record_receipt(fault) is ReceiptFate.REFUNDED
        assert ledger.record_receipt(fault) is ReceiptFate.DUPLICATE
        row = ledger.transmission(tid)
        assert (row.state, row.debited, row.refunded) == ("undelivered", 2, 2)
        refunds = [m for m in ledger.history() if m.kind == "refund"]
        assert [(m.amount, m.transmission_id, m.note) for m in refunds] == [(2, tid, "outbox: not delivered, code 30008")]
        assert available(ledger) == 10
        assert ledger.audit().consistent

    def test_a_receipt_settles_an_unknown_row_with_one_debit(self, ledger):
        from bulksend.receipts import ReceiptFate

        ledger.topup("sms", 10)
        c = campaign(ledger, rows=1, cost=3)
        ledger.hold(c.id, "sms", 3)
        (row,) = ledger.claim(c.id, 1)
        ledger.mark_unknown(row.id, "timeout", "the answer was lost")
        fate = ledger.record_receipt(self.receipt("delivered", transmission_id=row.id, provider_id="SM-late"))
        assert fate is ReceiptFate.SETTLED
        assert ledger.record_receipt(self.receipt("delivered", transmission_id=row.id)) is ReceiptFate.DUPLICATE
        settled = ledger.transmission(row.id)
        assert (settled.state, settled.provider_id, settled.debited) == ("delivered", "SM-late", 3)
        assert [m.amount for m in ledger.history() if m.kind == "debit"] == [3]
        assert ledger.audit().consistent

    def test_a_receipt_for_a_row_not_yet_known_is_applied_later(self, ledger):
        from bulksend.receipts import ReceiptFate

        ledger.topup("sms", 10)
        c = campaign(ledger, rows=1, cost=1)
        ledger.hold(c.id, "sms", 1)
        early = self.receipt("delivered", provider_id="SM-early", status="delivered")
        assert ledger.record_receipt(early) is ReceiptFate.PENDING
        assert ledger.pending_receipt_count() == 1
        assert ledger.apply_pending_receipts() == {"pending": 1}  # still not known: kept
        (row,) = ledger.claim(c.id, 1)
        ledger.mark_sent(row.id, "SM-early")
        assert ledger.apply_pending_receipts() == {"applied": 1}
        assert ledger.pending_receipt_count() == 0
        assert ledger.transmission(row.id).state == "delivered"

    def test_a_receipt_on_another_profile_names_nothing(self, ledger):
        from bulksend.receipts import Receipt, ReceiptFate, ReceiptState

        tid = self.sent_row(ledger)
        other = Receipt("twilio-main", ReceiptState.DELIVERED, transmission_id=tid)
        assert ledger.record_receipt(other) is ReceiptFate.PENDING
        assert ledger.transmission(tid).state == "sent"

    def test_a_stop_reply_joins_the_opt_out_list_once(self, ledger):
        from bulksend.receipts import InboundMessage

        stop = InboundMessage("outbox", "+447911100001", "Stop please", provider_id="IN1", channel="sms",
                              opt_out=True, keyword="STOP")
        assert ledger.record_inbound(stop) is True
        assert ledger.record_inbound(stop) is False  # the provider's retry
        hello = InboundMessage("outbox", "+447911100002", "thanks!", provider_id="IN2", channel="sms")
        assert ledger.record_inbound(hello) is True
        (entry,) = ledger.optouts()
        assert (entry.e164, entry.source, entry.reason) == ("+447911100001", "provider", "replied 'STOP' (outbox)")
        assert ledger.suppressed_among(["+447911100001", "+447911100002"]) == {"+447911100001"}
        replies = ledger.inbound_messages()
        assert [(r["sender"], r["text"], r["opt_out"]) for r in replies] == [
            ("+447911100002", "thanks!", 0), ("+447911100001", "Stop please", 1),
        ]
        assert len(ledger.inbound_messages(limit=1)) == 1

    def test_a_copied_ledger_keeps_its_receipts_and_replies(self, ledger, backend, clock):
        from bulksend.ledger import copy_ledger
        from bulksend.receipts import InboundMessage

        tid = self.sent_row(ledger)
        ledger.record_receipt(self.receipt("delivered", transmission_id=tid, status="delivered",
                                           reported_at="2026-11-24T12:00:05.000Z"))
        ledger.record_receipt(self.receipt("delivered", provider_id="SM-not-yet"))
        ledger.record_inbound(InboundMessage("outbox", "+447911100001", "STOP", provider_id="IN1", opt_out=True,
                                             keyword="STOP"))
        target = Backend(backend.name, clock)
        try:
            with target.open() as copy:
                report = copy_ledger(ledger, copy)
                assert report.rows["pending_receipts"] == report.rows["inbound_messages"] == 1
                assert copy.pending_receipt_count() == 1
                assert [r["sender"] for r in copy.inbound_messages()] == ["+447911100001"]
                assert copy.transmission(tid).reported_at == "2026-11-24T12:00:05.000Z"
        finally:
            target.drop()

    def test_the_bulk_path_applies_plain_reports_and_leaves_the_rest_to_the_one_at_a_time_path(self, ledger):
        """``record_receipts`` (the receiver's group commit) applies the common case at once and hands back every
        receipt that needs more (a settle, a refund, a row not known yet, a second receipt for one row); applying
        those one at a time after it ends as applying all of them one at a time would."""
        from bulksend.receipts import Fault, Receipt, ReceiptFate, ReceiptState

        ledger.topup("sms", 20)
        c = campaign(ledger, rows=8, cost=2)
        ledger.hold(c.id, "sms", 16)
        ids = send(ledger, c.id, 6)
        (unknown, sending) = [r.id for r in ledger.claim(c.id, 2)]
        ledger.mark_unknown(unknown, "timeout", "the answer was lost")
        done = ids[5]
        ledger.record_receipt(self.receipt("delivered", transmission_id=done))
        at = "2026-11-24T12:00:05.000Z"
        group = [
            self.receipt("delivered", transmission_id=ids[0], status="delivered", reported_at=at),
            self.receipt("undelivered", transmission_id=ids[1], code="30003", text="unreachable",
                         fault=Fault.RECIPIENT),
            self.receipt("accepted", transmission_id=ids[2], status="queued"),
            self.receipt("undelivered", transmission_id=ids[3], code="30008", fault=Fault.PROVIDER),
            self.receipt("delivered", transmission_id=ids[4], status="delivered"),
            self.receipt("undelivered", transmission_id=ids[4], code="30008", fault=Fault.PROVIDER),
            self.receipt("delivered", transmission_id=done),
            self.receipt("delivered", transmission_id=ids[0], provider_id="SM-another"),
            self.receipt("delivered", transmission_id=unknown, provider_id="SM-late"),
            self.receipt("delivered", transmission_id=sending),
            Receipt("twilio-main", ReceiptState.DELIVERED, transmission_id=ids[2]),
            self.receipt("delivered", provider_id=f"SM{ids[2]}"),
        ]
        with ledger.transaction():
            fates = ledger.record_receipts(group)
            assert fates == [ReceiptFate.APPLIED, ReceiptFate.APPLIED, ReceiptFate.APPLIED, None,
                             ReceiptFate.APPLIED, None, ReceiptFate.DUPLICATE, None, None, None, None, None]
            rest = [ledger.record_receipt(r) for r, fate in zip(group, fates) if fate is None]
        assert rest == [ReceiptFate.REFUNDED, ReceiptFate.DUPLICATE, ReceiptFate.IGNORED, ReceiptFate.SETTLED,
                        ReceiptFate.PENDING, ReceiptFate.PENDING, ReceiptFate.APPLIED]
        rows = {tid: ledger.transmission(tid) for tid in [*ids, unknown, sending]}
        assert [(rows[t].state, rows[t].error_code, rows[t].report_status) for t in ids[:5]] == [
            ("delivered", None, "delivered"), ("undelivered", "30003", None), ("delivered", None, "queued"),
            ("undelivered", "30008", None), ("delivered", None, "delivered"),
        ]
        assert rows[ids[0]].reported_at == at
        assert rows[ids[1]].error_text == "unreachable" and rows[ids[1]].provider_id == f"SM{ids[1]}"
        assert (rows[ids[3]].refunded, rows[ids[4]].refunded) == (2, 0)
        assert (rows[unknown].state, rows[unknown].provider_id, rows[unknown].debited) == ("delivered", "SM-late", 2)
        assert rows[sending].state == "sending"
        assert ledger.pending_receipt_count() == 2
        assert [(m.amount, m.transmission_id) for m in ledger.history() if m.kind == "refund"] == [(2, ids[3])]
        assert ledger.audit().consistent
