"""When the ledger's PostgreSQL server fails (issue 10 item 7): a server that is down, a connection dropped inside
and between transactions, a read-only replica, a full disk. Each is a real failure of a real server: the backend
is ended with ``pg_terminate_backend``, the session is made read-only with ``default_transaction_read_only``, and a
trigger makes the server raise SQLSTATE 53100 (disk_full) as it does when it cannot extend a file.

Every case: a clear ``Error:`` line naming the ledger without its password, exit 1, no traceback, and nothing
half-written (the audit passes, the history is what it was or what the finished operations made it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from bulksend.stores import postgres as pg
from ledger_backends import Backend, postgres_url
from sendhelpers import write_campaign

psycopg = pytest.importorskip("psycopg")

PASSWORD = "s3cr3t-pw"


@pytest.fixture
def server():
    """An empty PostgreSQL schema (skipped without BULKSEND_TEST_POSTGRES)."""
    made = Backend("postgresql")
    yield made
    made.drop()


@pytest.fixture
def ledger_cli(cli, server):
    """``bulksend --ledger <the schema's URL> ARGS…``."""
    return lambda *args: cli("--ledger", server.url, *args)


def with_options(url: str, *settings: str) -> str:
    """``url`` with more ``-c name=value`` settings in libpq's ``options`` (after the schema's search_path)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = " ".join([query.get("options", ""), *(f"-c{s}" for s in settings)]).strip()
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), ""))  # libpq: %20


def with_password(url: str) -> str:
    """``url`` with a password the trust-auth server ignores: it must never be printed."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.replace("@", f":{PASSWORD}@", 1), parts.path, parts.query, ""))


def terminate(store: pg.PostgresStore) -> None:
    """End the server process behind ``store``'s connection, as an administrator or a server restart would."""
    pid = store.connection.info.backend_pid
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        # The timeout form waits until the backend has exited: the next statement meets a dead connection.
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()[0]


@pytest.fixture
def drop_connection(monkeypatch):
    """``drop_connection(when)``: end the ledger's connection just before the first statement ``when(sql)`` accepts
    (every statement the store runs goes through ``PostgresStore._run``). Returns the list of statements it cut."""
    real = pg.PostgresStore._run

    def install(when):
        cut: list[str] = []

        def run(self, sql, params):
            if not cut and when(sql):
                cut.append(sql)
                terminate(self)
            return real(self, sql, params)

        monkeypatch.setattr(pg.PostgresStore, "_run", run)
        return cut

    return install


def is_query(name: str):
    return lambda sql: sql == pg.QUERIES[name]


def nth(n: int, when):
    """A predicate true from the n-th statement ``when`` accepts on."""
    seen = [0]

    def accept(sql):
        if when(sql):
            seen[0] += 1
        return seen[0] >= n

    return accept


def history(ledger_cli) -> list:
    return json.loads(ledger_cli("credits", "history", "--json").stdout)


def assert_clean_error(result, *expected: str) -> None:
    assert result.exit_code == 1, result.stdout + result.stderr
    error = result.stderr[result.stderr.index("Error: "):]  # a send prints its preview first
    for text in expected:
        assert text in error, result.stderr
    assert "bug" not in result.stderr and "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def outbox(home: Path, campaign: str) -> Counter:
    """How many times the outbox provider was handed each number of ``campaign``."""
    path = home / "outbox" / f"{campaign}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["to"] for line in lines)


def campaign_counts(server, name: str) -> dict[str, int]:
    with server.open() as ledger:
        return ledger.counts(ledger.get_campaign(name).id)


def assert_audit_clean(server) -> None:
    with server.open() as ledger:
        report = ledger.audit()
        assert report.consistent, report


# ------------------------------------------------------------------------------------------ a server that is down


@pytest.mark.parametrize("debug", [(), ("--debug",)])
def test_a_send_to_a_server_that_is_down_is_a_clear_error(cli, home, tmp_path, debug):
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    url = f"postgresql://bulk:{PASSWORD}@127.0.0.1:1/test?connect_timeout=2"
    result = cli(*debug, "--ledger", url, "send", campaign, "--yes")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "Error: cannot reach the ledger at postgresql://bulk:***@127.0.0.1:1/test" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr  # nor in the --debug traceback
    if not debug:
        assert "Traceback" not in result.stderr
    assert outbox(home, "spring") == Counter()


# ------------------------------------------------------------------------- a connection dropped mid-transaction


def test_a_connection_dropped_inside_a_topup_records_nothing(ledger_cli, server, drop_connection):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    before = history(ledger_cli)
    cut = drop_connection(is_query("insert_movement"))  # the lot is written, its movement is next
    result = ledger_cli("credits", "topup", "1000", "--channel", "sms", "--ref", "INV-2")
    assert cut
    assert_clean_error(
        result,
        f"the connection to the ledger at {server.url} was lost in the middle of a transaction "
        "(terminating connection due to administrator command); the server rolled it back: nothing of it was "
        "recorded.",
        "Run the same command again when the server is back",
    )
    assert history(ledger_cli) == before
    with server.open() as ledger:
        assert [lot.amount for lot in ledger.lots("sms")] == [1000]  # no lot without its movement
    assert_audit_clean(server)
    again = ledger_cli("credits", "topup", "1000", "--channel", "sms", "--ref", "INV-2")  # the ref was never used
    assert again.exit_code == 0, again.stderr
    assert json.loads(ledger_cli("balance", "--json").stdout)["sms"]["available"] == 2000


def test_a_connection_dropped_at_commit_says_the_outcome_is_uncertain(ledger_cli, server, drop_connection):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    before = history(ledger_cli)
    drop_connection(lambda sql: sql == "COMMIT")
    result = ledger_cli("credits", "topup", "1000", "--channel", "sms", "--ref", "INV-2")
    assert_clean_error(
        result,
        f"the connection to the ledger at {server.url} was lost while committing (terminating connection due to "
        "administrator command): the server may or may not have recorded the operation.",
        "a top-up whose --ref was recorded is refused",
    )
    assert history(ledger_cli) == before  # here it had not: the server ended the backend before COMMIT arrived
    assert_audit_clean(server)


def test_the_password_of_a_dropped_connection_is_never_shown(cli, server, drop_connection):
    url = with_password(server.url)
    assert cli("--ledger", url, "credits", "topup", "1000", "--channel", "sms").exit_code == 0
    drop_connection(is_query("insert_movement"))
    for debug in ((), ("--debug",)):
        result = cli(*debug, "--ledger", url, "credits", "topup", "1000", "--channel", "sms")
        assert result.exit_code == 1
        assert PASSWORD not in result.stdout + result.stderr
        assert "was lost in the middle of a transaction" in result.stderr
        assert pg.scrub_url(url) in result.stderr and ":***@" in result.stderr
        drop_connection(is_query("insert_movement"))


def test_a_connection_found_dead_between_transactions_is_replaced(server):
    with server.open() as ledger:
        ledger.topup("sms", 1000)
        terminate(ledger.store)  # idle: as a restart or a fail-over of the server leaves it
        ledger.topup("sms", 1000)  # its BEGIN meets the dead connection, and runs again on a new one
        terminate(ledger.store)
        assert ledger.balance("sms")["sms"].available == 2000  # a lone read, too
        assert [lot.amount for lot in ledger.lots("sms")] == [1000, 1000]
        assert ledger.audit().consistent


def test_a_connection_lost_inside_a_transaction_is_never_replaced(server):
    """What the transaction wrote before the loss was rolled back by the server: going on with the rest of it on a
    new connection would write half an operation."""
    from bulksend.errors import LedgerError

    with server.open() as ledger:
        ledger.topup("sms", 1000)
        with pytest.raises(LedgerError, match="was lost in the middle of a transaction"):
            with ledger.transaction():
                ledger.topup("sms", 1)
                terminate(ledger.store)
                ledger.topup("sms", 2)
        assert [lot.amount for lot in ledger.lots("sms")] == [1000]  # the next transaction runs on a new one
        assert ledger.audit().consistent


def test_a_send_goes_on_when_its_connection_dies_between_transactions(ledger_cli, home, server, tmp_path,
                                                                        drop_connection):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path, "spring", 30, batch_size=5)
    cut = drop_connection(nth(4, lambda sql: sql.startswith("BEGIN")))
    result = ledger_cli("send", campaign, "--yes")
    assert cut and result.exit_code == 0, result.stderr
    assert outbox(home, "spring") == Counter(numbers)  # every recipient once
    assert campaign_counts(server, "spring") == {"sent": 30}
    assert_audit_clean(server)


def test_a_send_whose_connection_drops_mid_transaction_stops_and_resumes_once_each(
    ledger_cli, home, server, tmp_path, drop_connection
):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path, "spring", 30, batch_size=5)
    # In the middle of recording a batch of outcomes: the second batch's accepted rows, read to be marked sent.
    cut = drop_connection(nth(2, is_query("transmissions_for_update_by_ids")))
    result = ledger_cli("send", campaign, "--yes")
    assert cut
    assert_clean_error(result, f"the connection to the ledger at {server.url} was lost in the middle of a "
                       "transaction (terminating connection due to administrator command); the server rolled it "
                       "back: nothing of it was recorded.")
    first = outbox(home, "spring")
    assert 0 < sum(first.values()) < 30 and max(first.values()) == 1
    counts = campaign_counts(server, "spring")
    assert counts.get("sent", 0) >= 7  # the outcomes of the lost batch were recorded again on the way out
    assert counts.get("sending", 0) == 0
    assert_audit_clean(server)
    resumed = ledger_cli("send", campaign, "--yes")
    assert resumed.exit_code == 0, resumed.stderr
    assert outbox(home, "spring") == Counter(numbers)  # nobody sent twice, nobody left out
    assert campaign_counts(server, "spring") == {"sent": 30}
    with server.open() as ledger:
        spent = sum(m.amount for m in ledger.history("sms") if m.kind == "debit")
        assert spent == 30
    assert_audit_clean(server)


# ------------------------------------------------------------------------------------------- a read-only replica


def test_a_read_only_server_reads_and_refuses_writes(cli, home, server, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 5)
    assert cli("--ledger", server.url, "credits", "topup", "1000", "--channel", "sms").exit_code == 0
    replica = with_options(server.url, "default_transaction_read_only=on")  # what a hot standby enforces
    before = cli("--ledger", server.url, "credits", "history", "--json").stdout

    balance = cli("--ledger", replica, "balance", "--json")
    assert balance.exit_code == 0, balance.stderr
    assert json.loads(balance.stdout)["sms"]["available"] == 1000
    assert cli("--ledger", replica, "credits", "history", "--json").stdout == before
    assert cli("--ledger", replica, "credits", "audit").stdout == "consistent\n"

    for command in (("credits", "topup", "1000", "--channel", "sms"), ("send", campaign, "--yes")):
        result = cli("--ledger", replica, *command)
        assert_clean_error(
            result,
            f"the ledger's server at {replica} is read-only (cannot execute ",
            "in a read-only transaction); nothing was recorded.",
            "point --ledger, BULKSEND_LEDGER_URL or [ledger] url at the primary server",
        )
    assert outbox(home, "spring") == Counter()
    assert cli("--ledger", server.url, "credits", "history", "--json").stdout == before
    with server.open() as ledger:
        assert ledger.campaigns() == []
    assert_audit_clean(server)


# ------------------------------------------------------------------------------------------------- a full disk

NO_SPACE = 'could not extend file "base/16384/16385": No space left on device'


def fill_disk_after(server, debits: int) -> None:
    """From the ``debits``-th debit on (0: from the first write), every new movement meets SQLSTATE 53100."""
    server.raw(
        f"""CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT count(*) FROM movements WHERE kind = 'debit') >= {debits} THEN
                RAISE EXCEPTION '{NO_SPACE}' USING ERRCODE = 'disk_full';
            END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER disk_full BEFORE INSERT ON movements FOR EACH ROW EXECUTE FUNCTION disk_full()",
    )


def test_a_full_disk_on_the_server_names_the_cause_and_records_nothing(ledger_cli, home, server, tmp_path):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    before = history(ledger_cli)
    campaign, _ = write_campaign(tmp_path, "spring", 5)
    fill_disk_after(server, 0)
    for command in (("credits", "topup", "1000", "--channel", "sms"), ("send", campaign, "--yes")):
        result = ledger_cli(*command)
        assert_clean_error(
            result,
            f"the ledger's server at {server.url} cannot write: {NO_SPACE} (SQLSTATE 53100); the operation was "
            "rolled back, nothing of it was recorded.",
            "Free some space on the server's disk",
        )
    assert outbox(home, "spring") == Counter()
    assert history(ledger_cli) == before
    with server.open() as ledger:
        assert [lot.amount for lot in ledger.lots("sms")] == [1000]
        assert all(ledger.held(c.id) == 0 for c in ledger.campaigns())
    assert_audit_clean(server)


def test_a_disk_that_fills_during_a_send_stops_it_and_the_rerun_sends_each_once(ledger_cli, home, server, tmp_path):
    assert ledger_cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path, "spring", 30, batch_size=5)
    fill_disk_after(server, 7)
    result = ledger_cli("send", campaign, "--yes")
    assert_clean_error(result, "(SQLSTATE 53100); the operation was rolled back, nothing of it was recorded.")
    first = outbox(home, "spring")
    assert 0 < sum(first.values()) < 30 and max(first.values()) == 1
    assert campaign_counts(server, "spring").get("sent", 0) == 7  # the debits that fitted, not one more
    assert_audit_clean(server)
    server.raw("DROP TRIGGER disk_full ON movements")  # space was freed
    resumed = ledger_cli("send", campaign, "--yes")
    assert resumed.exit_code == 0, resumed.stderr
    assert outbox(home, "spring") == Counter(numbers)
    assert campaign_counts(server, "spring") == {"sent": 30}
    assert_audit_clean(server)
