"""Storage-level invariants (ARCHITECTURE.md §1 and §8), checked against the real database.

Every database here comes from `alembic upgrade head` (the `database_url` fixture). Raw SQL goes
through a separate engine, as an attacker or a careless migration would, so what is tested is the
database's own refusal, not the service's good manners.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
ON_PG = BACKEND == "postgresql"
pg_only = pytest.mark.skipif(not ON_PG, reason="PostgreSQL-only invariant (deferred constraint triggers, TRUNCATE)")

APPEND_ONLY_TABLES = ("entries", "transactions", "lot_consumptions", "program_changes", "redemption_events", "refunds",
                      "earning_config_versions", "earning_awards", "tier_changes", "events")
T_RAW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw(database_url: str) -> Iterator[Engine]:
    """A plain engine on the test database: no service code between the test and the SQL."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            "entries": [tuple(r) for r in conn.execute(text(
                "SELECT seq, transaction_id, account_id, asset, amount, balance_after FROM entries ORDER BY seq"))],
            "transactions": [tuple(r) for r in conn.execute(text(
                "SELECT seq, id, type, reference_kind, reference_id, description FROM transactions ORDER BY seq"))],
        }


@pytest.fixture
def purchased(client, program, enrol, buy) -> Any:
    """One real purchase booked through the API: 4 entries (points and cashback legs), 1 transaction."""
    enrol(program, "c-1")
    response = buy(program, "A-1", "c-1", 12_345)
    assert response.status_code == 201, response.get_data(as_text=True)
    return program


def insert_transaction(conn: Connection, program_id: str, txn_id: str) -> None:
    conn.execute(text(
        "INSERT INTO transactions (id, program_id, customer_pk, type, reference_kind, reference_id, description,"
        " actor, request_id, idempotency_key, occurred_at, recorded_at, details)"
        " VALUES (:id, :pid, NULL, 'raw_test', 'test', :id, 'raw SQL test', 'test', NULL, NULL, :at, :at, '{}')"),
        {"id": txn_id, "pid": program_id, "at": T_RAW})


def insert_entry(conn: Connection, program_id: str, txn_id: str, account_id: int, asset: str, amount: int) -> None:
    conn.execute(text(
        "INSERT INTO entries (program_id, transaction_id, account_id, asset, amount, balance_after, recorded_at)"
        " VALUES (:pid, :txn, :acc, :asset, :amount, NULL, :at)"),
        {"pid": program_id, "txn": txn_id, "acc": account_id, "asset": asset, "amount": amount, "at": T_RAW})


def house_account(conn: Connection, program_id: str, path: str, asset: str) -> int:
    """A house account of our own (accounts are not append-only), so customer balance caches stay untouched."""
    conn.execute(text("INSERT INTO accounts (program_id, path, asset, customer_pk, balance, last_seq)"
                      " VALUES (:pid, :path, :asset, NULL, NULL, NULL)"),
                 {"pid": program_id, "path": path, "asset": asset})
    return conn.execute(text("SELECT id FROM accounts WHERE program_id = :pid AND path = :path"),
                        {"pid": program_id, "path": path}).scalar_one()


def count_transaction(engine: Engine, txn_id: str) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM transactions WHERE id = :id"), {"id": txn_id}).scalar_one(),
                conn.execute(text("SELECT count(*) FROM entries WHERE transaction_id = :id"), {"id": txn_id})
                .scalar_one())


# --------------------------------------------------------------------------- triggers exist after upgrade head


def test_append_only_and_balance_triggers_exist_after_upgrade_head(raw: Engine) -> None:
    with raw.connect() as conn:
        if not ON_PG:
            rows = conn.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            found = {r.name: r for r in rows}
            for table in APPEND_ONLY_TABLES:
                for op in ("update", "delete"):
                    name = f"{table}_no_{op}"
                    assert name in found, f"missing trigger {name}; have {sorted(found)}"
                    assert found[name].tbl_name == table
                    sql = found[name].sql.upper()
                    assert f"BEFORE {op.upper()} ON {table.upper()}" in sql
                    assert "RAISE(ABORT" in sql.replace(" ", "")
            return

        rows = conn.execute(text(
            "SELECT t.tgname, c.relname, t.tgdeferrable, t.tginitdeferred, p.proname"
            " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid"
            " WHERE NOT t.tgisinternal")).all()
        found = {r.tgname: r for r in rows}
        for table in APPEND_ONLY_TABLES:
            for suffix in ("append_only", "no_truncate"):
                name = f"{table}_{suffix}"
                assert name in found, f"missing trigger {name}; have {sorted(found)}"
                assert found[name].relname == table
                assert found[name].proname == "ledger_refuse_change"
        balanced = found.get("entries_balanced")
        assert balanced is not None and balanced.relname == "entries"
        assert balanced.proname == "ledger_check_balanced"
        assert balanced.tgdeferrable and balanced.tginitdeferred, "the balance check must be DEFERRABLE INITIALLY DEFERRED"
        has_entries = found.get("transactions_have_entries")
        assert has_entries is not None and has_entries.relname == "transactions"
        assert has_entries.proname == "ledger_check_has_entries"
        assert has_entries.tgdeferrable and has_entries.tginitdeferred

        functions = set(conn.execute(text(
            "SELECT proname FROM pg_proc WHERE proname IN"
            " ('ledger_refuse_change', 'ledger_check_balanced', 'ledger_check_has_entries')")).scalars())
        assert functions == {"ledger_refuse_change", "ledger_check_balanced", "ledger_check_has_entries"}


# --------------------------------------------------------------------------- append-only


REFUSED_STATEMENTS = [
    "UPDATE entries SET amount = amount + 1",
    "DELETE FROM entries",
    "UPDATE transactions SET description = 'rewritten'",
    "DELETE FROM transactions",
]


@pytest.mark.parametrize("statement", REFUSED_STATEMENTS)
def test_update_and_delete_on_ledger_tables_are_refused(purchased, raw: Engine, statement: str) -> None:
    before = snapshot(raw)
    assert len(before["entries"]) == 4 and len(before["transactions"]) == 1
    with pytest.raises(DBAPIError) as refused:
        with raw.begin() as conn:
            conn.execute(text(statement))
    assert "append-only" in str(refused.value)
    if ON_PG:
        assert sqlstate(refused.value) == "23001"  # restrict_violation, raised by ledger_refuse_change
    assert snapshot(raw) == before


def test_update_of_one_entry_by_key_is_refused(purchased, raw: Engine) -> None:
    before = snapshot(raw)
    seq = before["entries"][0][0]
    with pytest.raises(DBAPIError, match="append-only"):
        with raw.begin() as conn:
            conn.execute(text("UPDATE entries SET amount = 0 - amount WHERE seq = :seq"), {"seq": seq})
    assert snapshot(raw) == before


def test_program_changes_are_append_only(client, program, raw: Engine) -> None:
    response = client.patch("/v1/program", json={"cashback_rate_bps": 300}, headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    with raw.connect() as conn:
        rows_before = conn.execute(text("SELECT id, actor FROM program_changes ORDER BY id")).all()
    assert len(rows_before) == 1
    for statement in ("UPDATE program_changes SET actor = 'someone else'", "DELETE FROM program_changes"):
        with pytest.raises(DBAPIError, match="append-only"):
            with raw.begin() as conn:
                conn.execute(text(statement))
    with raw.connect() as conn:
        assert conn.execute(text("SELECT id, actor FROM program_changes ORDER BY id")).all() == rows_before


@pg_only
@pytest.mark.parametrize("statement", ["TRUNCATE entries", "TRUNCATE transactions CASCADE",
                                       "TRUNCATE lot_consumptions", "TRUNCATE program_changes",
                                       "TRUNCATE redemption_events", "TRUNCATE refunds"])
def test_truncate_is_refused(purchased, raw: Engine, statement: str) -> None:
    before = snapshot(raw)
    with pytest.raises(DBAPIError) as refused:
        with raw.begin() as conn:
            conn.execute(text(statement))
    assert "append-only" in str(refused.value) and "TRUNCATE" in str(refused.value)
    assert sqlstate(refused.value) == "23001"
    assert snapshot(raw) == before


# --------------------------------------------------------------------------- the deferred balance check (PostgreSQL)


@pg_only
def test_unbalanced_transaction_fails_at_commit(purchased, raw: Engine) -> None:
    with raw.connect() as conn:
        account = house_account(conn, purchased.id, "house/points/test/raw", "points")
        conn.commit()
        insert_transaction(conn, purchased.id, "txn_raw_unbalanced")
        insert_entry(conn, purchased.id, "txn_raw_unbalanced", account, "points", 5)  # accepted: deferred
        with pytest.raises(DBAPIError) as refused:
            conn.commit()
        conn.rollback()
    assert sqlstate(refused.value) == "23514"  # check_violation
    assert "does not balance" in str(refused.value)
    assert count_transaction(raw, "txn_raw_unbalanced") == (0, 0)


@pg_only
def test_unbalanced_in_one_asset_fails_even_if_another_asset_balances(purchased, raw: Engine) -> None:
    with raw.connect() as conn:
        points = house_account(conn, purchased.id, "house/points/test/raw", "points")
        cashback = house_account(conn, purchased.id, "house/cashback/test/raw", "cashback")
        conn.commit()
        insert_transaction(conn, purchased.id, "txn_raw_mixed")
        insert_entry(conn, purchased.id, "txn_raw_mixed", points, "points", 5)
        insert_entry(conn, purchased.id, "txn_raw_mixed", cashback, "cashback", -5)  # sums to 0 overall, not per asset
        with pytest.raises(DBAPIError) as refused:
            conn.commit()
        conn.rollback()
    assert sqlstate(refused.value) == "23514"
    assert count_transaction(raw, "txn_raw_mixed") == (0, 0)


@pg_only
def test_balanced_transaction_by_raw_sql_commits(purchased, raw: Engine, verify) -> None:
    with raw.connect() as conn:
        source = house_account(conn, purchased.id, "house/points/test/source", "points")
        sink = house_account(conn, purchased.id, "house/points/test/sink", "points")
        insert_transaction(conn, purchased.id, "txn_raw_balanced")
        insert_entry(conn, purchased.id, "txn_raw_balanced", source, "points", -5)
        insert_entry(conn, purchased.id, "txn_raw_balanced", sink, "points", 5)
        conn.commit()
    assert count_transaction(raw, "txn_raw_balanced") == (1, 2)
    verify()


@pg_only
def test_set_constraints_immediate_fails_at_the_insert(purchased, raw: Engine) -> None:
    insert_tx_with_one_entry = text(
        "WITH t AS (INSERT INTO transactions (id, program_id, type, reference_kind, reference_id, description,"
        "  actor, occurred_at, recorded_at, details)"
        "  VALUES (:id, :pid, 'raw_test', 'test', :id, 'raw SQL test', 'test', :at, :at, '{}') RETURNING id)"
        " INSERT INTO entries (program_id, transaction_id, account_id, asset, amount, recorded_at)"
        " SELECT :pid, t.id, :acc, 'points', 5, :at FROM t")
    with raw.connect() as conn:
        account = house_account(conn, purchased.id, "house/points/test/raw", "points")
        conn.commit()
        conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        with pytest.raises(DBAPIError) as refused:
            conn.execute(insert_tx_with_one_entry, {"id": "txn_raw_immediate", "pid": purchased.id,
                                                    "acc": account, "at": T_RAW})
        conn.rollback()
    assert sqlstate(refused.value) == "23514"
    assert "does not balance" in str(refused.value)
    assert count_transaction(raw, "txn_raw_immediate") == (0, 0)


@pg_only
def test_set_constraints_immediate_refuses_a_lone_transaction_row_at_once(purchased, raw: Engine) -> None:
    with raw.connect() as conn:
        conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        with pytest.raises(DBAPIError) as refused:
            insert_transaction(conn, purchased.id, "txn_raw_lonely_immediate")
        conn.rollback()
    assert sqlstate(refused.value) == "23514"
    assert "has no entries" in str(refused.value)


@pg_only
def test_transaction_without_entries_fails_at_commit(purchased, raw: Engine) -> None:
    with raw.connect() as conn:
        insert_transaction(conn, purchased.id, "txn_raw_empty")  # accepted: the check is deferred
        with pytest.raises(DBAPIError) as refused:
            conn.commit()
        conn.rollback()
    assert sqlstate(refused.value) == "23514"
    assert "has no entries" in str(refused.value)
    assert count_transaction(raw, "txn_raw_empty") == (0, 0)


def test_zero_amount_entry_is_refused_by_check_constraint(purchased, raw: Engine) -> None:
    with raw.connect() as conn:
        account = house_account(conn, purchased.id, "house/points/test/raw", "points")
        insert_transaction(conn, purchased.id, "txn_raw_zero")
        with pytest.raises(DBAPIError) as refused:
            insert_entry(conn, purchased.id, "txn_raw_zero", account, "points", 0)
        conn.rollback()
    assert "ck_entries_amount_nonzero" in str(refused.value)
    if ON_PG:
        assert sqlstate(refused.value) == "23514"
    assert count_transaction(raw, "txn_raw_zero") == (0, 0)


# --------------------------------------------------------------------------- BIGINT


def test_bigint_amounts_round_trip_exactly(purchased, client, raw: Engine, verify) -> None:
    big = 2**62
    with raw.connect() as conn:
        source = house_account(conn, purchased.id, "house/points/test/big-source", "points")
        sink = house_account(conn, purchased.id, "house/points/test/big-sink", "points")
        insert_transaction(conn, purchased.id, "txn_raw_big")
        insert_entry(conn, purchased.id, "txn_raw_big", source, "points", -big)
        insert_entry(conn, purchased.id, "txn_raw_big", sink, "points", big)
        conn.commit()
        stored = conn.execute(text("SELECT amount FROM entries WHERE transaction_id = 'txn_raw_big' ORDER BY seq"))
        assert stored.scalars().all() == [-big, big]
        assert conn.execute(text("SELECT amount FROM entries WHERE amount = :v"), {"v": big}).scalar_one() == big

    # ... and the finance API hands them out exactly too (JSON integers, no float on the way).
    response = client.get("/v1/ledger/entries?limit=500", headers=purchased.headers("finance"))
    assert response.status_code == 200
    amounts = {(e["account"], e["amount"]) for e in response.get_json()["items"]
               if e["transaction_id"] == "txn_raw_big"}
    assert amounts == {("house/points/test/big-source", -big), ("house/points/test/big-sink", big)}
    assert str(big) in response.get_data(as_text=True)  # written as an integer literal, not a float
    verify()


# --------------------------------------------------------------------------- time


OCCURRED_LOCAL = "2026-11-26T13:30:00+02:00"
OCCURRED_UTC = "2026-11-26T11:30:00+00:00"


def test_timestamps_round_trip_as_utc(purchased, client, buy, raw: Engine, clock) -> None:
    response = buy(purchased, "TZ-1", "c-1", 10_000, occurred_at=OCCURRED_LOCAL)
    assert response.status_code == 201, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["occurred_at"] == OCCURRED_UTC
    assert answer["recorded_at"] == clock.now().isoformat() == "2026-11-26T12:00:00+00:00"
    # Cashback is held 30 days from when the purchase happened: an instant, answered in UTC too.
    assert answer["cashback_available_at"] == "2026-12-26T11:30:00+00:00"
    assert answer["points_available_at"] == "2026-11-26T12:00:00+00:00"

    detail = client.get("/v1/purchases/TZ-1", headers=purchased.headers("app"))
    assert detail.status_code == 200, detail.get_data(as_text=True)
    assert detail.get_json()["occurred_at"] == OCCURRED_UTC
    assert detail.get_json()["recorded_at"] == "2026-11-26T12:00:00+00:00"

    activity = client.get("/v1/customers/c-1/activity", headers=purchased.headers("app"))
    assert activity.status_code == 200
    items = [i for i in activity.get_json()["items"] if i["reference"] == {"kind": "order", "id": "TZ-1"}]
    assert len(items) == 1
    assert items[0]["occurred_at"] == OCCURRED_UTC
    assert items[0]["recorded_at"] == "2026-11-26T12:00:00+00:00"

    # Stored in UTC, not in the offset it was sent with.
    with raw.connect() as conn:
        stored = conn.execute(text("SELECT occurred_at FROM transactions WHERE reference_id = 'TZ-1'")).scalar_one()
    expected = datetime(2026, 11, 26, 11, 30, tzinfo=timezone.utc)
    if ON_PG:
        assert stored == expected and stored.utcoffset() is not None
    else:
        assert str(stored).startswith("2026-11-26 11:30:00"), stored


def test_purchase_read_back_matches_what_was_recorded(purchased, client) -> None:
    """GET /v1/purchases/{order_id} documents customer_id as required (PurchaseDetail): it must be there."""
    detail = client.get("/v1/purchases/A-1", headers=purchased.headers("app"))
    assert detail.status_code == 200, detail.get_data(as_text=True)
    body = detail.get_json()
    assert body["order_id"] == "A-1"
    assert body["customer_id"] == "c-1"
    assert body["amount"] == 12_345 and body["currency"] == "EUR"
    assert body["points_earned"] == 123 and body["cashback_earned"] == 246
    assert body["occurred_at"] == body["recorded_at"] == "2026-11-26T12:00:00+00:00"


def test_utc_datetime_type_refuses_naive_and_normalises_to_utc(raw: Engine) -> None:
    from ledger.storage.types import UTCDateTime

    column_type = UTCDateTime()
    naive = datetime(2026, 11, 26, 13, 30)
    for dialect in (sqlite_dialect.dialect(), pg_dialect.dialect()):
        with pytest.raises(ValueError, match="naive"):
            column_type.process_bind_param(naive, dialect)

    aware = datetime(2026, 11, 26, 13, 30, tzinfo=timezone(timedelta(hours=2)))
    stmt = text("SELECT :v AS v").bindparams(bindparam("v", type_=UTCDateTime())).columns(v=UTCDateTime())
    with raw.connect() as conn:
        with pytest.raises(StatementError, match="naive"):
            conn.execute(stmt, {"v": naive})
        conn.rollback()
        back = conn.execute(stmt, {"v": aware}).scalar_one()
    assert back == aware
    assert back.utcoffset() == timedelta(0)
    assert back.isoformat() == OCCURRED_UTC


# --------------------------------------------------------------------------- the domain


def test_domain_refuses_zero_and_unbalanced_drafts() -> None:
    from ledger.domain.errors import InvariantViolation
    from ledger.domain.transactions import Posting, Reference, TransactionDraft, transfer

    def draft(*postings: Posting) -> TransactionDraft:
        return TransactionDraft(type="test", reference=Reference("test", "1"), postings=postings,
                                occurred_at=T_RAW, description="test")

    ok = draft(*transfer("points", "house/points/issued/purchase", "customer/c-1/points/available", 7))
    assert sum(p.amount for p in ok.postings) == 0

    with pytest.raises(InvariantViolation, match="zero"):
        draft(Posting("house/points/issued/purchase", "points", 0), Posting("customer/c-1/points/available", "points", 0))
    with pytest.raises(InvariantViolation, match="unbalanced"):
        draft(Posting("house/points/issued/purchase", "points", -5), Posting("customer/c-1/points/available", "points", 4))
    with pytest.raises(InvariantViolation, match="unbalanced"):  # balanced overall, not per asset
        draft(Posting("house/points/issued/purchase", "points", -5),
              Posting("customer/c-1/cashback/available", "cashback", 5))
    with pytest.raises(InvariantViolation):
        draft()
    with pytest.raises(InvariantViolation, match="64 bits"):
        draft(Posting("house/points/issued/purchase", "points", -(2**63)),
              Posting("customer/c-1/points/available", "points", 2**63))
