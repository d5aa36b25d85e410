"""Tamper evidence: the hash chains and seals catch what a database superuser changes behind the
service's back, where the append-only triggers cannot help (they are the superuser's to switch off).

Each test books a little through the API, checks that `GET /v1/ledger/verify` holds, then changes
the database through a raw connection with the append-only triggers out of the way: on PostgreSQL
`SET LOCAL session_replication_role = replica` (which skips ordinary triggers for the transaction),
on SQLite by dropping the `{table}_no_update` / `{table}_no_delete` triggers of migration 0002 and
creating them again, in the same database transaction, once the change is made.

(The conftest `verify` fixture asserts that the ledger holds, so it is only used before tampering.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ledger.domain import chain
from ledger.services.releases import run_jobs

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
ON_PG = BACKEND == "postgresql"
LEDGER_CLI = Path(sys.executable).with_name("ledger")
CLEAN = ("unbalanced_transactions", "nonzero_totals", "balance_mismatches", "balance_after_breaks",
         "transactions_without_entries", "lot_mismatches", "chain_breaks", "head_mismatches", "seal_mismatches")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw(database_url: str) -> Iterator[Engine]:
    """A plain engine on the test database. On SQLite it opens `BEGIN IMMEDIATE` itself, so that
    dropping a trigger, the change and re-creating the trigger commit (or roll back) together."""
    if ON_PG:
        engine = create_engine(database_url)
    else:
        engine = create_engine(database_url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection):  # noqa: ANN001
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    yield engine
    engine.dispose()


def tamper(raw: Engine, *statements: tuple[str, dict[str, Any]], triggers: tuple[str, ...]) -> None:
    """Run `statements` as a superuser would, with the append-only `triggers` (SQLite names) out of the way."""
    with raw.begin() as conn:
        if ON_PG:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for sql, params in statements:
                conn.execute(text(sql), params)
            return
        saved = {}
        for name in triggers:
            saved[name] = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                                       {"n": name}).scalar_one()
            conn.execute(text(f"DROP TRIGGER {name}"))
        for sql, params in statements:
            conn.execute(text(sql), params)
        for ddl in saved.values():
            conn.execute(text(ddl))


def assert_triggers_still_refuse(raw: Engine) -> None:
    """Tampering left the database as it was: the append-only triggers are back and refuse."""
    for statement in ("UPDATE entries SET amount = amount + 1", "DELETE FROM entries",
                      "UPDATE transactions SET description = 'x'"):
        with pytest.raises(DBAPIError, match="append-only"):
            with raw.begin() as conn:
                conn.execute(text(statement))


def customer_pk(raw: Engine, program_id: str, customer_id: str) -> int:
    with raw.connect() as conn:
        return conn.execute(text("SELECT pk FROM customers WHERE program_id = :p AND customer_id = :c"),
                            {"p": program_id, "c": customer_id}).scalar_one()


def chain_of(raw: Engine, pk: int) -> list[Any]:
    """The customer's chain: every entry of their transactions (house legs too), in seq order."""
    with raw.connect() as conn:
        return conn.execute(text(
            "SELECT e.seq, e.transaction_id, a.path, e.asset, e.amount, e.balance_after, e.chain_hash, e.account_id"
            " FROM entries e JOIN transactions t ON t.id = e.transaction_id JOIN accounts a ON a.id = e.account_id"
            " WHERE t.customer_pk = :pk ORDER BY e.seq"), {"pk": pk}).all()


def stored_head(raw: Engine, pk: int) -> str:
    with raw.connect() as conn:
        return conn.execute(text("SELECT chain_head FROM customers WHERE pk = :pk"), {"pk": pk}).scalar_one()


def verify_api(client: Any, program: Any) -> dict:
    response = client.get("/v1/ledger/verify", headers=program.headers("finance"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def service_report(app: Any, program: Any) -> dict:
    """What verification finds, asked of the service itself (the code behind the API and the CLI)."""
    from ledger.services.verify import verify_ledger

    with app.extensions["ledger"].uow(write=False) as uow:
        return verify_ledger(uow, program.id).to_dict()


def assert_intact(report: dict) -> None:
    assert report["ok"] is True and report["first_broken_seq"] is None, report
    assert all(report[k] == [] for k in CLEAN), report
    assert report["chained_entries"] == report["entries"] > 0


def run_cli(database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LEDGER_CLI), "--database-url", database_url, "verify"], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def booked(client, make_program, enrol, buy, clock) -> Any:
    """c-1: A-1 (10_000: 100 points, 200 cents, all available at once), a capture of 30 points, A-2
    (4_000); c-2: B-1 (5_000). Each purchase books 4 entries; a hold 2, its capture 3."""
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    enrol(program, "c-2")
    shop = program.headers("storefront")
    assert buy(program, "A-1", "c-1", 10_000).status_code == 201
    clock.advance(minutes=1)
    assert buy(program, "B-1", "c-2", 5_000).status_code == 201
    clock.advance(minutes=1)
    held = client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points",
                                                "amount": 30}, headers=shop)
    assert held.status_code == 201, held.get_data(as_text=True)
    assert client.post("/v1/redemptions/R-1/capture", json={}, headers=shop).status_code == 200
    clock.advance(minutes=1)
    assert buy(program, "A-2", "c-1", 4_000).status_code == 201
    clock.advance(minutes=1)
    return program


def transaction_of(client: Any, program: Any, order_id: str) -> dict:
    purchase = client.get(f"/v1/purchases/{order_id}", headers=program.headers("admin")).get_json()
    tx = client.get(f"/v1/transactions/{purchase['transaction_id']}", headers=program.headers("finance"))
    assert tx.status_code == 200, tx.get_data(as_text=True)
    return tx.get_json()


# --------------------------------------------------------------------------- changed amounts


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_changed_amount_breaks_that_entrys_link(app, client, booked, raw, verify, which):
    verify()
    assert_intact(verify_api(client, booked))
    tx = transaction_of(client, booked, "A-1")
    entries = tx["entries"]
    target = entries[0] if which == "first" else entries[-1]
    tamper(raw, ("UPDATE entries SET amount = amount + 7 WHERE seq = :seq", {"seq": target["seq"]}),
           triggers=("entries_no_update",))
    assert_triggers_still_refuse(raw)

    report = service_report(app, booked)
    assert report["ok"] is False
    assert [b["seq"] for b in report["chain_breaks"]] == [target["seq"]], report["chain_breaks"]
    assert report["chain_breaks"][0]["customer_pk"] == customer_pk(raw, booked.id, "c-1")
    assert [u["transaction_id"] for u in report["unbalanced_transactions"]] == [tx["transaction_id"]]
    assert report["head_mismatches"] == [] and report["seal_mismatches"] == []
    assert report["first_broken_seq"] == target["seq"], report


def test_verify_endpoint_reports_a_broken_ledger(app, client, booked, raw, verify):
    verify()
    pk = customer_pk(raw, booked.id, "c-1")
    points = [e for e in transaction_of(client, booked, "A-2")["entries"] if e["asset"] == "points"]
    house, mine = points  # Dr house/points/issued/purchase, then Cr the customer's available
    assert house["account"].startswith("house/") and mine["account"] == "customer/c-1/points/available"
    tamper(raw, ("UPDATE entries SET amount = amount + 7 WHERE seq IN (:a, :b)", {"a": house["seq"], "b": mine["seq"]}),
           triggers=("entries_no_update",))
    response = client.get("/v1/ledger/verify", headers=booked.headers("finance"))
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert report["ok"] is False and report["first_broken_seq"] == house["seq"]
    assert [b["seq"] for b in report["chain_breaks"]] == [house["seq"], mine["seq"]]
    assert {b["customer_pk"] for b in report["chain_breaks"]} == {pk}
    assert [(u["asset"], u["total"], u["seq"]) for u in report["unbalanced_transactions"]] == \
        [("points", 14, house["seq"])]
    assert [b["seq"] for b in report["balance_after_breaks"]] == [mine["seq"]]
    assert [(m["path"], m["balance"], m["entries_total"]) for m in report["balance_mismatches"]] == \
        [("customer/c-1/points/available", mine["balance_after"], mine["balance_after"] + 7)]
    assert report == json.loads(json.dumps(service_report(app, booked), default=str))


def test_a_changed_description_breaks_every_entry_of_its_transaction(client, booked, raw, verify):
    verify()
    tx = transaction_of(client, booked, "A-2")
    tamper(raw, ("UPDATE transactions SET description = :d WHERE id = :id",
                 {"d": "You earned 1000 points", "id": tx["transaction_id"]}),
           triggers=("transactions_no_update",))
    assert_triggers_still_refuse(raw)
    changed = transaction_of(client, booked, "A-2")
    assert changed["description"] == "You earned 1000 points"

    report = verify_api(client, booked)
    assert report["ok"] is False
    seqs = [e["seq"] for e in tx["entries"]]
    assert [b["seq"] for b in report["chain_breaks"]] == seqs  # the header is in every entry's content
    assert report["first_broken_seq"] == seqs[0]
    # Nothing else is wrong: amounts, balances and heads are as they were.
    assert all(report[k] == [] for k in CLEAN if k != "chain_breaks"), report


# --------------------------------------------------------------------------- deleted entries


def test_a_deleted_last_entry_leaves_the_head_pointing_at_nothing(app, client, booked, raw, verify):
    entries_before = verify().entries
    pk = customer_pk(raw, booked.id, "c-1")
    links = chain_of(raw, pk)
    last, before_last = links[-1], links[-2]
    assert stored_head(raw, pk) == last.chain_hash
    tamper(raw, ("DELETE FROM entries WHERE seq = :seq", {"seq": last.seq}), triggers=("entries_no_delete",))
    assert_triggers_still_refuse(raw)

    report = service_report(app, booked)
    assert report["ok"] is False
    assert report["head_mismatches"] == [{"customer_pk": pk, "stored_head": last.chain_hash,
                                          "last_link": before_last.chain_hash}]
    assert report["chain_breaks"] == []  # no entry follows it
    assert report["entries"] == report["chained_entries"] == entries_before - 1


def test_a_deleted_middle_entry_breaks_its_successors_link(app, client, booked, raw, verify):
    verify()
    pk = customer_pk(raw, booked.id, "c-1")
    links = chain_of(raw, pk)
    gone, successor = links[3], links[4]
    tamper(raw, ("DELETE FROM entries WHERE seq = :seq", {"seq": gone.seq}), triggers=("entries_no_delete",))
    report = service_report(app, booked)
    assert report["ok"] is False
    assert [b["seq"] for b in report["chain_breaks"]] == [successor.seq]
    assert report["head_mismatches"] == []


# --------------------------------------------------------------------------- a rewritten chain: only the seal


def test_a_rewritten_chain_is_caught_by_the_seal(app, client, booked, raw, clock, verify):
    """A forger raises c-1's A-1 cashback from 200 to 2_000 cents and makes everything else agree:
    both legs (still balanced), the balance_after of that and every later entry of the account, the
    cached balance, every later link of c-1's chain and c-1's stored head. Only the seal, taken
    before, no longer recomputes."""
    done = run_jobs(app.extensions["ledger"].uow, clock)
    assert done["seals"] == 1
    verify()
    sealed = verify_api(client, booked)
    assert_intact(sealed)
    assert sealed["seals"] == 1
    before = client.get("/v1/customers/c-1/balances", headers=booked.headers("app")).get_json()["cashback"]

    pk = customer_pk(raw, booked.id, "c-1")
    a1 = transaction_of(client, booked, "A-1")
    legs = {e["account"]: e for e in a1["entries"] if e["asset"] == "cashback"}
    house, mine = legs["house/cashback/funding/purchase"], legs["customer/c-1/cashback/available"]
    assert (house["amount"], mine["amount"]) == (-200, 200)
    delta = 1_800
    account_id = next(link.account_id for link in chain_of(raw, pk) if link.seq == mine["seq"])
    tamper(raw,
           ("UPDATE entries SET amount = amount - :d WHERE seq = :seq", {"d": delta, "seq": house["seq"]}),
           ("UPDATE entries SET amount = amount + :d WHERE seq = :seq", {"d": delta, "seq": mine["seq"]}),
           ("UPDATE entries SET balance_after = balance_after + :d WHERE account_id = :a AND seq >= :seq",
            {"d": delta, "a": account_id, "seq": mine["seq"]}),
           ("UPDATE accounts SET balance = balance + :d WHERE id = :a", {"d": delta, "a": account_id}),
           triggers=("entries_no_update",))
    # Relink c-1's chain from the forged transaction on, with the service's own chain functions.
    with app.extensions["ledger"].uow(write=False) as uow:
        rows = [r for r in uow.books.chain_rows(booked.id) if r.customer_pk == pk]
    previous: str | None = None
    relinked: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        header = chain.transaction_header(
            transaction_id=row.transaction_id, type=row.type, reference_kind=row.reference_kind,
            reference_id=row.reference_id, actor=row.actor, request_id=row.request_id, occurred_at=row.occurred_at,
            recorded_at=row.transaction_recorded_at, description=row.description, details=row.details)
        link = chain.link(previous, chain.entry_content(header, account=row.path, asset=row.asset, amount=row.amount,
                                                        balance_after=row.balance_after, recorded_at=row.recorded_at))
        if link != row.chain_hash:
            relinked.append(("UPDATE entries SET chain_hash = :h WHERE seq = :seq", {"h": link, "seq": row.seq}))
        previous = link
    assert len(relinked) >= 2  # the two forged legs at least
    tamper(raw, *relinked, ("UPDATE customers SET chain_head = :h WHERE pk = :pk", {"h": previous, "pk": pk}),
           triggers=("entries_no_update",))
    assert_triggers_still_refuse(raw)

    after = client.get("/v1/customers/c-1/balances", headers=booked.headers("app")).get_json()["cashback"]
    assert after["available"] == before["available"] + delta  # the forgery took

    report = verify_api(client, booked)
    assert report["ok"] is False
    assert all(report[k] == [] for k in CLEAN if k != "seal_mismatches"), report
    assert [m["program_id"] for m in report["seal_mismatches"]] == [booked.id]
    assert report["seals"] == 1


# --------------------------------------------------------------------------- the command line


def test_ledger_verify_command_exits_1_after_tampering(client, booked, raw, database_url, verify):
    verify()
    intact = run_cli(database_url)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout)["ok"] is True
    tx = transaction_of(client, booked, "B-1")
    tamper(raw, ("UPDATE entries SET amount = amount * 10 WHERE seq = :seq", {"seq": tx["entries"][0]["seq"]}),
           triggers=("entries_no_update",))
    broken = run_cli(database_url)
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    report = json.loads(broken.stdout)
    assert report["ok"] is False and report["first_broken_seq"] == tx["entries"][0]["seq"]
    assert tx["entries"][0]["seq"] in [b["seq"] for b in report["chain_breaks"]]
