"""`ledger_lock_customer_for_write` (migration 0007): after waiting for the customer's lock, the
accounts it returns are the ones the previous holder committed, not the ones of the moment the call
started. (Joined into the locking SELECT, they would be: under READ COMMITTED a statement that
waited re-reads only the locked row.) PostgreSQL only: SQLite has no row locks."""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("LEDGER_TEST_BACKEND", "sqlite") != "postgresql",
                                reason="PostgreSQL's row locks")

CALL = "SELECT account_paths, account_balances FROM ledger_lock_customer_for_write(%s, %s, %s)"


def _balances(conn: psycopg.Connection, program_id: str, customer_id: str, now: datetime) -> dict[str, int]:
    (paths, balances), = conn.execute(CALL, (program_id, customer_id, now)).fetchall()
    return dict(zip(paths, balances))


def _connect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))


def test_a_call_that_waited_for_the_lock_sees_the_holders_committed_balances(database_url, program, enrol, buy):
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201  # 100 points available
    now = datetime.now(timezone.utc)
    holder, waiter = _connect(database_url), _connect(database_url)
    try:
        before = _balances(holder, program.id, "c-1", now)
        account = "customer/c-1/points/available"
        assert before[account] == 100
        # The holder changes a cached balance under the lock (as a booking would) and has not committed.
        holder.execute("UPDATE accounts SET balance = balance + 7 WHERE path = %s AND program_id = %s",
                       (account, program.id))
        seen: dict = {}

        def wait_for_the_lock() -> None:
            seen.update(_balances(waiter, program.id, "c-1", now))

        thread = threading.Thread(target=wait_for_the_lock)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second call must wait for the customer's lock"
        holder.commit()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert seen[account] == 107, seen
        waiter.rollback()
        # Put the cached balance back, so that it equals the entries again.
        holder.execute("UPDATE accounts SET balance = balance - 7 WHERE path = %s AND program_id = %s",
                       (account, program.id))
        holder.commit()
    finally:
        holder.close()
        waiter.close()


def test_an_unknown_customer_returns_no_rows_and_takes_no_lock(database_url, program) -> None:
    with _connect(database_url) as conn:
        assert conn.execute(CALL, (program.id, "nobody", datetime.now(timezone.utc))).fetchall() == []


def test_a_retry_of_a_booked_purchase_takes_no_customer_lock(database_url, client, program, enrol, buy):
    """The order id's claim and the lock go in one statement, and the lock call runs only for a new
    claim: a retry replays while another transaction holds the customer's lock, and a new order
    waits for it."""
    enrol(program, "c-1")
    first = buy(program, "O-1", "c-1", 10_000)
    assert first.status_code == 201
    holder = _connect(database_url)
    try:
        holder.execute("SELECT pk FROM customers WHERE program_id = %s AND customer_id = %s FOR NO KEY UPDATE",
                       (program.id, "c-1"))
        answers: dict = {}

        def send(order_id: str) -> None:
            answers[order_id] = buy(program, order_id, "c-1", 10_000)

        retry = threading.Thread(target=send, args=("O-1",))
        retry.start()
        retry.join(timeout=10)
        assert not retry.is_alive(), "the retry waited for the customer's lock"
        assert answers["O-1"].headers["Idempotent-Replayed"] == "true"
        assert answers["O-1"].get_data() == first.get_data()
        new = threading.Thread(target=send, args=("O-2",))
        new.start()
        time.sleep(0.5)
        assert new.is_alive(), "a new order must wait for the customer's lock"
        holder.rollback()
        new.join(timeout=10)
        assert not new.is_alive() and answers["O-2"].status_code == 201
    finally:
        holder.close()
