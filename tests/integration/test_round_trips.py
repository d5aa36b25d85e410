"""The checkout path's statement budget (issue 7): what a purchase, a hold and a balance read send
to the database. Counted, not timed: a change that adds a round trip to the hot path fails here,
and the benchmark (`make bench`) says what each one costs."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from sqlalchemy import event

ON_PG = os.environ.get("LEDGER_TEST_BACKEND", "sqlite") == "postgresql"


@pytest.fixture(autouse=True)
def keys_stay_cached(app: Any) -> None:
    """The budgets count a request whose API key the worker has cached (for LEDGER_AUTH_CACHE_SECONDS,
    1 s by default). On a loaded machine two requests can be more than a second apart, and the key
    would be looked up again: these tests keep it cached for the whole test."""
    app.extensions["ledger"].auth_cache_seconds = 3600


class Seen(list):
    """Statements by their first words; `full` holds their whole texts, `params` their parameters."""

    full: list[str]
    params: list[Any]


@contextmanager
def statements(app: Any) -> Iterator[Seen]:
    """The SQL statements the service sends while the block runs, by their first words."""
    seen = Seen()
    seen.full, seen.params = [], []
    engines = app.extensions["ledger"].engines
    targets = {id(e): e for e in (engines.read, engines.write, engines.autocommit_read)}.values()

    def record(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ANN202
        seen.append(" ".join(statement.split()[:3]))
        seen.full.append(statement)
        seen.params.append(params)

    for engine in targets:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in targets:
            event.remove(engine, "before_cursor_execute", record)


def _round_trips(seen: list[str]) -> list[str]:
    """Statements that cost a round trip on PostgreSQL. SQLite's explicit BEGIN is not one (psycopg
    sends BEGIN itself, unseen here), and SQLite inserts a booking's entries one row per call in
    process (PostgreSQL: one statement)."""
    out: list[str] = []
    for statement in seen:
        if statement.startswith("BEGIN"):
            continue
        if out and statement == out[-1] == "INSERT INTO entries":
            continue
        out.append(statement)
    return out


def _within_psycopgs_query_cache(statement: str, params: dict[str, Any]) -> None:
    """psycopg parses a statement's %(name)s placeholders once and caches the result only for
    statements of at most 4096 bytes and 50 parameters; past either, it parses on every call (about
    80 µs of Python a purchase, measured)."""
    from psycopg import _queries

    assert len(statement.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(params) <= _queries.MAX_CACHED_STATEMENT_PARAMS, sorted(params)


def test_a_purchase_with_nothing_due_is_two_statements_on_postgresql(app, client, program, enrol, buy):
    """The order id's claim, then (only if the claim is new) the customer's lock with the program,
    its accounts and the upkeep flags (one call of `ledger_lock_customer_for_write`, migration 0007),
    in one statement (the claim is deferred, `SqlIdempotency.claim_later`); then the accrual's
    booking with the purchase row, its pending cashback release, its points lot and the stored answer
    (the purchase's write is deferred until the answer is known, `driver.defer`). SQLite claims in one
    statement, locks and reads in two, books in four what PostgreSQL books in one, the purchase row,
    release and lot in three, and stores the answer in one more."""
    enrol(program, "c-1")
    assert buy(program, "warm", "c-1", 1_000).status_code == 201  # the key is now cached
    with statements(app) as seen:
        assert buy(program, "O-1", "c-1", 12_345).status_code == 201
    trips = _round_trips(seen)
    assert not any("api_keys" in s for s in seen), seen  # the key came from the worker's cache
    assert not any(s.startswith("SELECT pending_releases") or s.startswith("SELECT redemptions")
                   for s in seen), seen  # nothing due, nothing captured: those reads are skipped
    if ON_PG:
        assert trips == ["WITH claimed AS", "WITH tx AS"], trips
        assert "ledger_lock_customer_for_write" in seen.full[0], seen.full[0]
        _within_psycopgs_query_cache(seen.full[0], seen.params[0])
        booking = seen.full[-1]
        for write in ("INSERT INTO purchases", "INSERT INTO points_lots", "UPDATE idempotency_records"):
            assert write in booking, booking
        _within_psycopgs_query_cache(booking, seen.params[-1])
    else:
        assert len(trips) == 11, trips
        assert trips[0] == "INSERT INTO idempotency_records"
        assert trips[-1] == "UPDATE idempotency_records SET"


def test_a_purchase_under_an_idempotency_key_adds_two_statements_on_postgresql(app, client, program, enrol, buy):
    """The header key's claim and the savepoint that lets a refusal be stored under it; the two
    claims get the answer in one statement (with the purchase's write), and COMMIT releases the
    savepoint."""
    enrol(program, "c-1")
    assert buy(program, "warm", "c-1", 1_000).status_code == 201
    with statements(app) as seen:
        assert buy(program, "O-1", "c-1", 12_345, headers={"Idempotency-Key": "k-1"}).status_code == 201
    trips = _round_trips(seen)
    if ON_PG:
        assert trips == ["INSERT INTO idempotency_records", "SAVEPOINT ledger_savepoint", "WITH claimed AS",
                         "WITH tx AS"], trips
        assert not any(s.startswith("RELEASE") for s in seen), seen
        assert sum("UPDATE idempotency_records" in s for s in seen.full) == 1, seen.full
    else:
        assert sum(s.startswith("UPDATE idempotency_records") for s in seen) == 1, seen
    replay = buy(program, "O-1", "c-1", 12_345, headers={"Idempotency-Key": "k-1"})
    by_order = buy(program, "O-1", "c-1", 12_345)
    assert replay.headers.get("Idempotent-Replayed") == by_order.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_data() == by_order.get_data()  # both claims hold the first answer


def test_due_value_is_still_released_before_the_purchase_books(app, client, program, enrol, buy, clock):
    """The flags skip the release query only when nothing is due: 31 days later the cashback held
    30 days is released by the next purchase, in the same request."""
    enrol(program, "c-1")
    buy(program, "O-1", "c-1", 10_000)
    clock.advance(days=31)
    with statements(app) as seen:
        response = buy(program, "O-2", "c-1", 10_000)
    assert response.status_code == 201
    assert any("pending_releases" in s and s.startswith("SELECT") for s in seen), seen
    balances = response.get_json()["balances"]
    assert balances["cashback"]["available"] == 200 and balances["cashback"]["pending"] == 200


def test_a_hold_is_two_statements_on_postgresql(app, client, program, enrol, buy):
    """The redemption id's claim with the customer's lock and its accounts; the hold's transaction,
    the redemption row, its "held" event and the stored answer (deferred like a purchase's write)."""
    enrol(program, "c-1")
    buy(program, "O-1", "c-1", 50_000)
    with statements(app) as seen:
        response = client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1",
                                                         "asset": "points", "amount": 100},
                               headers=program.headers("storefront"))
    assert response.status_code == 201, response.get_data(as_text=True)
    trips = _round_trips(seen)
    if ON_PG:
        assert trips == ["WITH claimed AS", "WITH tx AS"], trips
        for write in ("INSERT INTO redemptions", "INSERT INTO redemption_events", "UPDATE idempotency_records"):
            assert write in seen.full[-1], seen.full[-1]
        _within_psycopgs_query_cache(seen.full[-1], seen.params[-1])
    else:
        assert len(trips) <= 11, trips
    assert not any(s.startswith("SELECT programs") for s in seen), seen  # read with the customer's lock
    held = client.get("/v1/redemptions/R-1", headers=program.headers("storefront"))
    assert held.status_code == 200, held.get_data(as_text=True)
    assert [(e["event"], e["amount"]) for e in held.get_json()["history"]] == [("held", 100)], held.get_json()


def test_a_balance_read_is_one_statement(app, client, program, enrol, buy):
    enrol(program, "c-1")
    buy(program, "O-1", "c-1", 10_000)
    client.get("/v1/customers/c-1/balances", headers=program.headers("app"))  # caches the app key
    with statements(app) as seen:
        response = client.get("/v1/customers/c-1/balances", headers=program.headers("app"))
    assert response.status_code == 200
    assert [s for s in seen if not s.startswith("BEGIN")] == ["SELECT programs.currency, accounts.path,"], seen


@pytest.mark.skipif(not ON_PG, reason="plan caching is PostgreSQL's")
def test_writes_reuse_one_generic_plan_and_reports_keep_postgresqls_choice(app, program, enrol, buy):
    """Left to choose, PostgreSQL planned the booking afresh on every purchase; the write and
    one-statement read connections force one generic plan per prepared statement, the report
    connections do not (their ranges may want a plan per call)."""
    enrol(program, "c-1")
    for i in range(8):  # psycopg prepares a statement on the server at its sixth execution
        assert buy(program, f"O-{i}", "c-1", 1_000 + i).status_code == 201
    engines = app.extensions["ledger"].engines
    with engines.write.connect() as conn:  # the connection the purchases used (one at a time)
        plans = conn.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE starts_with(ltrim(statement, E' \\n'), 'WITH tx AS')").all()
    assert plans, "the booking statement was not prepared on the write connection"
    assert all(generic > 0 and custom == 0 for generic, custom in plans), plans
    for engine, mode in ((engines.write, "force_generic_plan"), (engines.autocommit_read, "force_generic_plan"),
                         (engines.read, "auto")):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == mode


@pytest.mark.skipif(not ON_PG, reason="prepared statements are PostgreSQL's")
def test_retries_refusals_and_reads_keep_the_connections_prepared_statements(app, client, program, enrol, buy):
    """psycopg drops everything a connection has prepared on any ROLLBACK, ROLLBACK TO SAVEPOINT
    included (and sends DEALLOCATE ALL). A unit of work in which no statement failed ends past it
    (storage/driver.py), so a storefront's retries, its refused writes and an app's reads do not cost
    the next requests on that connection their prepared plans."""
    engines = app.extensions["ledger"].engines

    def prepared(engine: Any) -> set[str]:
        with engine.connect() as conn:  # the connection the requests used (one at a time)
            texts = set(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())
            conn.commit()
        return texts

    enrol(program, "c-1")
    for i in range(8):  # psycopg prepares a statement on the server at its sixth execution
        assert buy(program, f"O-{i}", "c-1", 1_000 + i).status_code == 201
    before = prepared(engines.write)
    assert len(before) >= 4  # the claim with the lock, and the write (a variant per parameter types)
    key = {"Idempotency-Key": "k-1"}
    assert buy(program, "O-0", "c-1", 1_000).headers.get("Idempotent-Replayed") == "true"  # by order id
    assert buy(program, "O-K", "c-1", 500, headers=key).status_code == 201
    assert buy(program, "O-K", "c-1", 500, headers=key).headers.get("Idempotent-Replayed") == "true"
    assert prepared(engines.write) >= before
    # Refused after the claims: without a key the transaction rolls back; under a key the refusal is
    # kept and the business writes are rolled back to a savepoint.
    refused = buy(program, "O-USD", "c-1", 500, currency="USD")
    assert refused.status_code == 422 and refused.get_json()["code"] == "currency_mismatch"
    assert prepared(engines.write) >= before
    stored = buy(program, "O-USD2", "c-1", 500, headers={"Idempotency-Key": "k-2"}, currency="USD")
    assert stored.status_code == 422
    assert prepared(engines.write) >= before
    again = buy(program, "O-USD2", "c-1", 500, headers={"Idempotency-Key": "k-2"}, currency="USD")
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_data() == stored.get_data()
    for order in ("O-USD", "O-USD2"):  # nothing of either was written
        assert client.get(f"/v1/purchases/{order}", headers=program.headers("storefront")).status_code == 404
    assert buy(program, "O-9", "c-1", 900).status_code == 201
    assert prepared(engines.write) >= before

    # Reads run in a transaction that ends with ROLLBACK too.
    for _ in range(8):
        assert client.get("/v1/customers/c-1/activity?limit=5", headers=program.headers("app")).status_code == 200
    reads = prepared(engines.read)
    assert reads, "the activity read's statements were prepared"
    assert client.get("/v1/customers/c-1/activity?limit=5", headers=program.headers("app")).status_code == 200
    assert prepared(engines.read) >= reads
