"""Queueing as columns (issue 13): ``send`` queues a list with ``iter_message_columns`` and
``Ledger.add_transmission_columns``, no object per row. These prove it writes the very rows the per-row path
wrote (kept below as the reference: a ``NewTransmission`` per ``Message``), and that ``iter_messages`` yields
what it did, for a list with merge fields, rejects, duplicates, smart encoding, UCS-2, a timezone column,
quiet hours (rows due later) and WhatsApp template parameters, across CSV chunks and queue transactions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import time_machine

from bulksend import campaign_run, csvfile
from bulksend.campaign_file import RowParams, RunOptions, build_spec
from bulksend.config import Config
from bulksend.ledger import NewTransmission
from bulksend.recipients import ENCODINGS, Message, iter_message_columns, iter_messages

FIELDS = ("e164", "message", "units", "cost", "row_number", "country", "params", "not_before", "timezone", "state",
          "attempts", "debited")

SMS_LIST = (
    "name,phone,consent,timezone\n"
    "Ann,+447400000001,yes,\n"
    "“Bea”,+447400000002,yes,America/New_York\n"  # smart quotes: GSM-7 once smart-encoded
    "Cy 🙂,+447400000003,yes,Asia/Tokyo\n"  # UCS-2
    "Dee,not a number,yes,\n"  # rejected
    "Eve,+447400000001,yes,\n"  # a duplicate of Ann: rejected
    "Fay,+447400000006,no,\n"  # no consent: rejected
    " Gus ,+33612345678,yes,Europe/Paris\n"
    ",+447400000008,yes,\n"  # no name: missing field, rejected
    "Hal,+12025550123,yes, America/Chicago \n"
    "Ida,+447400000010,yes,Europe/London\n"
    "Jo,+447400000011,yes,Asia/Tokyo\n"
)


def reference_messages(table) -> list[Message]:
    """``iter_messages`` as it was before the columns (issue 13): one Message per accepted row."""
    from bulksend.segments import smart_encode

    accepted = np.flatnonzero(table.accepted_mask)
    columns = table.columns
    sms = table.options.channel == "sms"
    smart = table.plan.smart_encoding
    names = table.bound.columns
    out = []
    for chunk in table.csv.chunks(columns.all()):
        if chunk.empty:
            continue
        start = int(chunk.index[0])
        lo, hi = np.searchsorted(accepted, [start, start + len(chunk)])
        if lo == hi:
            continue
        cells = [chunk[c].tolist() for c in columns.template]
        zones = chunk[columns.timezone].tolist() if columns.timezone is not None else None
        for index in accepted[lo:hi].tolist():
            local = index - start
            values = [col[local] for col in cells]
            text, missing = table.bound.render(values)
            if sms and smart:
                text = smart_encode(text)
            out.append(Message(
                index + 1, f"+{table.e164[index]}",
                None if table.region[index] < 0 else table.regions[table.region[index]],
                text, ENCODINGS[table.encoding[index]] if sms else "whatsapp", int(table.units[index]),
                int(table.credits[index]), dict(zip(names, map(str.strip, values))),
                (zones[local].strip() or None) if zones is not None else None,
            ))
    return out


def reference_queue(prepared, name: str) -> int:
    """``_queue`` as it was before the columns: a NewTransmission per row, into campaign ``name``."""
    from bulksend.estimate import due_times

    ledger, spec, table, rules = prepared.ledger, prepared.spec, prepared.estimate.table, prepared.rules
    campaign = ledger.open_campaign(name, prepared.channel, prepared.provider_name, "reference", spec.assume_consent)
    row_params = RowParams(spec.params, table.bound.columns, spec.category) if spec.params else None
    scheduler = rules.scheduler() if rules is not None and (rules.quiet or rules.send_at) else None
    anchor = rules.anchor if rules is not None and rules.anchor else datetime.now(timezone.utc)
    if scheduler is not None:
        ids, per_set = due_times(table, scheduler, anchor)
        dues = [per_set[i] for i in ids.tolist()]
    rows = []
    for k, message in enumerate(reference_messages(table)):
        due = dues[k] if scheduler is not None else None
        rows.append(NewTransmission(
            message.e164, message.text, message.units, message.credits, row_number=message.row,
            country=message.country, params=row_params(message.fields) if row_params else None,
            not_before=due if due is not None and due > anchor else None, timezone=message.timezone,
        ))
    return ledger.add_transmissions(campaign.id, rows)


def stored(ledger, name: str) -> list[tuple]:
    return [tuple(getattr(t, f) for f in FIELDS) for t in ledger.transmissions(ledger.get_campaign(name).id)]


@pytest.fixture
def funded(cli, home):
    for channel in ("sms", "whatsapp"):
        assert cli("credits", "topup", 5000, "--channel", channel).exit_code == 0
    return home


@pytest.fixture
def small_chunks(monkeypatch):
    """CSV chunks of 4 rows and queue transactions of 3: rows cross both boundaries."""
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 4)
    monkeypatch.setattr(campaign_run, "QUEUE_CHUNK", 3)
    writes = []
    original = campaign_run.SqliteLedger.add_transmission_columns

    def spy(self, campaign_id, e164, *args, **kwargs):
        writes.append(len(e164))
        return original(self, campaign_id, e164, *args, **kwargs)

    monkeypatch.setattr(campaign_run.SqliteLedger, "add_transmission_columns", spy)
    return writes


def queued_both_ways(home: Path, path: Path, flags: dict) -> tuple[list, list, int, int, object]:
    spec = build_spec(path, flags, RunOptions())
    with campaign_run.prepare_send(Config.load(home), spec) as prepared:
        added = campaign_run._queue(prepared)
        expected = reference_queue(prepared, "reference")
        table = prepared.estimate.table
        messages = list(iter_messages(table))
        assert messages == reference_messages(table)
        columns = list(iter_message_columns(table))
        assert all(c.fields is None for c in columns)
        assert [m[:7] + m[8:] for m in messages] == [
            row for c in columns for row in zip(*(c[:7] + c[8:]))
        ]
        return stored(prepared.ledger, spec.name), stored(prepared.ledger, "reference"), added, expected, messages


@pytest.mark.parametrize("smart", [False, True])
def test_an_sms_list_is_queued_as_the_per_row_path_queued_it(funded, home, tmp_path, small_chunks, smart):
    (home / "config.toml").write_text('[compliance]\nquiet_hours = "21:00-08:00"\n')
    (tmp_path / "list.csv").write_text(SMS_LIST, encoding="utf-8")
    flags = {"message": "Hi {name}, our sale ends soon", "region": "GB", "smart_encoding": smart}
    with time_machine.travel(datetime(2026, 1, 15, 22, 30, tzinfo=timezone.utc), tick=False):  # London is quiet
        rows, expected, added, expected_added, messages = queued_both_ways(home, tmp_path / "list.csv", flags)
    assert added == expected_added == 7
    assert rows == expected
    assert small_chunks == [3, 3, 1, 7]  # QUEUE_CHUNK rows per transaction, as before; then the reference
    assert [m.timezone for m in messages] == [None, "America/New_York", "Asia/Tokyo", "Europe/Paris",
                                              "America/Chicago", "Europe/London", "Asia/Tokyo"]
    assert any(r[7] is not None for r in rows) and any(r[7] is None for r in rows)  # some wait for the morning
    assert {m.encoding for m in messages} == {"GSM-7", "UCS-2"}
    assert messages[1].text.startswith('Hi "Bea"' if smart else "Hi “Bea”")


def test_whatsapp_template_parameters_are_queued_as_before(funded, home, tmp_path, small_chunks):
    (tmp_path / "recipients.csv").write_text(
        "first_name,code,phone,whatsapp_consent\n"
        + "".join(f"N{i},CODE{i},+4474000000{i:02d},yes\n" for i in range(8))
        + "Bob,,+447400000099,yes\n",  # no code: missing field, never queued
        encoding="utf-8",
    )
    (tmp_path / "campaign.toml").write_text(
        'name = "wa"\nrecipients = "recipients.csv"\nchannel = "whatsapp"\nprovider = "outbox"\n\n'
        '[whatsapp]\ntemplate = "spring_sale"\nlanguage = "en_US"\ncategory = "marketing"\n'
        'body_params = ["first_name", "code"]\n',
        encoding="utf-8",
    )
    rows, expected, added, expected_added, _ = queued_both_ways(home, tmp_path / "campaign.toml", {})
    assert added == expected_added == 8
    assert rows == expected
    assert small_chunks == [3, 3, 2, 8]
    assert all(r[6] is not None and "CODE" in r[6] for r in rows)  # each row's parameters, as JSON


def test_a_list_with_nothing_accepted_yields_nothing(home, tmp_path):
    (tmp_path / "list.csv").write_text("name,phone,consent\nAnn,+447400000001,no\n", encoding="utf-8")
    from bulksend.pipeline import read_options, read_plan, run_validation

    options = read_options(phone_column=None, consent_column=None, assume_consent=None, region="GB", countries=None,
                           allow_landline=False, channel="sms", encoding=None, delimiter=None)
    config = Config.load(home)
    plan = read_plan(message="Hi {name}", template=None, rates=None, max_segments=10, smart_encoding=False,
                     category=None, config=config, channel="sms", purpose=None, allow_content=())
    table = run_validation(config, tmp_path / "list.csv", options, plan=plan).table
    assert list(iter_message_columns(table)) == [] and list(iter_messages(table)) == []
