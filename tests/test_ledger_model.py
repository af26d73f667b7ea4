"""Random sequences of top-ups, holds, debits, refunds, releases and passing days, against a plain reference model."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bulksend.errors import InputError, InsufficientCredits
from bulksend.ledger import FixedClock, NewTransmission, add_year
from ledger_backends import SKIP_REASON, Backend, postgres_url

START = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ROWS = 60


class Model:
    """The credit rules written as plainly as possible: lists and dicts, no SQL."""

    def __init__(self) -> None:
        self.today = START.date()
        self.lots: list[dict] = []  # id, channel, remaining, expired, expires
        self.holds: dict[int, int] = {}
        self.rows: dict[int, dict] = {}  # campaign, channel, cost, state, parts [(lot, amount)], refunded

    def settle(self) -> None:
        for lot in self.lots:
            if lot["expires"] <= self.today and lot["remaining"]:
                lot["expired"] += lot["remaining"]
                lot["remaining"] = 0

    def total(self, channel: str) -> int:
        return sum(x["remaining"] for x in self.lots if x["channel"] == channel and x["expires"] > self.today)

    def held(self, channel: str, campaigns: dict[int, str]) -> int:
        return sum(amount for c, amount in self.holds.items() if campaigns[c] == channel)

    def topup(self, channel: str, amount: int, on: date) -> bool:
        self.settle()
        expires = add_year(on)
        if on > self.today or expires <= self.today:
            return False
        for lot in self.lots:
            if lot["channel"] == channel and on < lot["expires"] < expires:
                lot["remaining"] += lot["expired"]
                lot["expired"] = 0
                lot["expires"] = expires
        self.lots.append(
            {"id": len(self.lots) + 1, "channel": channel, "remaining": amount, "expired": 0, "expires": expires}
        )
        return True

    def debit(self, row: dict, channel_held: int) -> bool:
        channel = row["channel"]
        own = self.holds.get(row["campaign"], 0)
        from_hold = min(row["cost"], own)
        total = self.total(channel)
        usable = min(total, from_hold + max(0, total - channel_held))
        if row["cost"] > usable:
            return False
        need = row["cost"]
        for lot in sorted(self.lots, key=lambda x: (x["expires"], x["id"])):
            if need and lot["channel"] == channel and lot["remaining"] and lot["expires"] > self.today:
                part = min(need, lot["remaining"])
                lot["remaining"] -= part
                row["parts"].append((lot["id"], part))
                need -= part
        self.holds[row["campaign"]] = own - from_hold
        row["state"] = "sent"
        return True

    def refund(self, row: dict) -> None:
        for lot_id, amount in row["parts"]:
            lot = self.lots[lot_id - 1]
            if lot["expires"] > self.today:
                lot["remaining"] += amount
            else:
                lot["expired"] += amount
        row["refunded"] = True

    def expiring(self, channel: str) -> list[tuple[int, date]]:
        groups: dict[date, int] = {}
        for lot in self.lots:
            if lot["channel"] == channel and lot["remaining"] and lot["expires"] > self.today:
                groups[lot["expires"]] = groups.get(lot["expires"], 0) + lot["remaining"]
        return sorted(((amount, day) for day, amount in groups.items()), key=lambda x: x[1])


class LedgerMachine(RuleBasedStateMachine):
    """The machine runs on the backend its subclass names (a fresh, empty ledger per example)."""

    backend_name = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.traveller = FixedClock(START)
        self.backend = Backend(self.backend_name, self.traveller)
        self.ledger = self.backend.open()
        self.model = Model()
        self.campaigns: dict[int, str] = {}
        for name, channel in (("a", "sms"), ("b", "sms"), ("w", "whatsapp")):
            campaign = self.ledger.open_campaign(name, channel, "outbox", name)
            self.campaigns[campaign.id] = channel
            self.ledger.add_transmissions(
                campaign.id,
                [NewTransmission(f"+4479111{i:05d}", "hi", 1, i % 7 + 1, i + 1) for i in range(ROWS)],
            )
        for campaign_id, channel in self.campaigns.items():
            for row in self.ledger.transmissions(campaign_id):
                self.model.rows[row.id] = {
                    "campaign": campaign_id, "channel": channel, "cost": row.cost, "state": "queued",
                    "parts": [], "refunded": False,
                }

    def teardown(self) -> None:
        self.ledger.close()
        self.backend.drop()

    channels = st.sampled_from(["sms", "whatsapp"])
    campaign_ids = st.sampled_from([1, 2, 3])

    @rule(channel=channels, amount=st.integers(1, 3000), days_ago=st.sampled_from([0, 0, 1, 40, 200, 364, 365, 400]))
    def topup(self, channel, amount, days_ago):
        on = self.model.today - timedelta(days=days_ago)
        try:
            self.ledger.topup(channel, amount, on=on)
            recorded = True
        except InputError:
            recorded = False
        assert recorded == self.model.topup(channel, amount, on)

    @rule(campaign=campaign_ids, amount=st.integers(1, 2500))
    def hold(self, campaign, amount):
        self.model.settle()
        channel = self.campaigns[campaign]
        available = max(0, self.model.total(channel) - self.model.held(channel, self.campaigns))
        try:
            self.ledger.hold(campaign, channel, amount)
            held = True
        except InsufficientCredits:
            held = False
        assert held == (amount <= available)
        if held:
            self.model.holds[campaign] = self.model.holds.get(campaign, 0) + amount

    @rule(campaign=campaign_ids, n=st.integers(1, 6))
    def send_a_batch(self, campaign, n):
        """Claim (within the hold) and record the outcomes in one transaction, as the engine does."""
        now = self.traveller.now()
        claimed = self.ledger.claim(campaign, n)
        self.model.settle()
        room = self.model.holds.get(campaign, 0)
        expected = []
        for row_id in sorted(self.model.rows):
            row = self.model.rows[row_id]
            if len(expected) == n or row["campaign"] != campaign or row["state"] != "queued":
                continue
            if row["cost"] > room:
                break
            room -= row["cost"]
            expected.append(row_id)
        assert [r.id for r in claimed] == expected
        with self.ledger.transaction():
            for row in claimed:
                try:
                    self.ledger.mark_sent(row.id, f"SM{row.id}")
                except InsufficientCredits:  # credits expired under the hold: retry later
                    self.ledger.mark_retry(row.id, now, "credits", "not enough credits")
        channel = self.campaigns[campaign]
        for row_id in expected:
            held = self.model.held(channel, self.campaigns)
            self.model.debit(self.model.rows[row_id], held)

    @rule(campaign=campaign_ids, n=st.integers(1, 6))
    def send_a_batch_in_one_step(self, campaign, n):
        """As the engine commits a batch now: every acceptance in one ``mark_sent_many``, all or nothing; when
        a debit cannot be made, each row on its own (as the engine's salvage does)."""
        now = self.traveller.now()
        claimed = self.ledger.claim(campaign, n)
        self.model.settle()
        channel = self.campaigns[campaign]
        trial = copy.deepcopy(self.model)
        rows = [row.id for row in claimed]
        together = all(trial.debit(trial.rows[row_id], trial.held(channel, self.campaigns)) for row_id in rows)
        with self.ledger.transaction():
            if together:
                cost = self.ledger.mark_sent_many([(row_id, f"SM{row_id}", None) for row_id in rows])
                assert cost == sum(trial.rows[row_id]["cost"] for row_id in rows)
            else:
                with pytest.raises(InsufficientCredits):
                    self.ledger.mark_sent_many([(row_id, f"SM{row_id}", None) for row_id in rows])
                for row_id in rows:
                    try:
                        self.ledger.mark_sent(row_id, f"SM{row_id}")
                    except InsufficientCredits:
                        self.ledger.mark_retry(row_id, now, "credits", "not enough credits")
        if together:
            self.model = trial
        else:
            for row_id in rows:
                self.model.debit(self.model.rows[row_id], self.model.held(channel, self.campaigns))

    @rule(data=st.data())
    def refund(self, data):
        sent = [i for i, r in self.model.rows.items() if r["state"] == "sent" and not r["refunded"]]
        if not sent:
            return
        row_id = data.draw(st.sampled_from(sent))
        self.model.settle()
        self.model.refund(self.model.rows[row_id])
        assert self.ledger.refund(row_id) == self.model.rows[row_id]["cost"]

    @rule(campaign=campaign_ids)
    def release(self, campaign):
        self.model.settle()
        assert self.ledger.release(campaign) == self.model.holds.get(campaign, 0)
        self.model.holds[campaign] = 0

    @rule(days=st.sampled_from([1, 7, 30, 100, 180, 365]))
    def time_passes(self, days):
        self.model.today += timedelta(days=days)
        self.traveller.move_to(datetime.combine(self.model.today, START.timetz()))

    @invariant()
    def balances_expiries_and_audit_agree(self):
        balances = self.ledger.balance()
        for channel in ("sms", "whatsapp"):
            b = balances[channel]
            total = self.model.total(channel)
            held = self.model.held(channel, self.campaigns)
            assert (b.total, b.held, b.available) == (total, held, max(0, total - held)), channel
            assert [(e.amount, e.expires_at) for e in b.expiring] == self.model.expiring(channel)
        for campaign in self.campaigns:
            assert self.ledger.held(campaign) == self.model.holds.get(campaign, 0)
        report = self.ledger.audit()
        assert report.consistent, report.differences
        for lot in self.ledger.lots():
            assert lot.remaining >= 0


class PostgresLedgerMachine(LedgerMachine):
    backend_name = "postgresql"


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PostgresLedgerMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerAgainstModel = LedgerMachine.TestCase
TestPostgresLedgerAgainstModel = pytest.mark.skipif(postgres_url() is None, reason=SKIP_REASON)(
    PostgresLedgerMachine.TestCase
)
