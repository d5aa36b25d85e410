"""A write held back to share a later round trip (`ledger.storage.driver.defer`), on PostgreSQL's
write engine: it is sent before whatever the connection runs next, at commit, or with the statement
that takes it; a rollback, or a savepoint rolled back to, drops it with the rest of the work."""
from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import text

from ledger.storage import driver

pytestmark = pytest.mark.skipif(os.environ.get("LEDGER_TEST_BACKEND", "sqlite") != "postgresql",
                                reason="only PostgreSQL defers writes")

SCRATCH = "ledger_deferred_scratch"


@pytest.fixture
def write_engine(app: Any):
    engine = app.extensions["ledger"].engines.write
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {SCRATCH} (v integer NOT NULL)")
        conn.commit()
    yield engine
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP TABLE {SCRATCH}")
        conn.commit()


def _deferred(value: int, done: list) -> driver.DeferredWrite:
    return driver.DeferredWrite(f"WITH w AS (INSERT INTO {SCRATCH} (v) VALUES (%(v)s) RETURNING v)", "SELECT v FROM w",
                                {"v": value}, lambda rows: done.append([r.v for r in rows]))


def _stored(engine) -> list[int]:  # noqa: ANN001
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT v FROM {SCRATCH} ORDER BY v")).scalars())


def test_the_next_statement_on_the_connection_sees_the_deferred_write(write_engine) -> None:
    done: list = []
    with write_engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")  # a transaction is open
        driver.defer(conn, _deferred(1, done))
        assert done == []  # nothing sent yet
        assert conn.execute(text(f"SELECT count(*) FROM {SCRATCH}")).scalar() == 1  # sent first
        assert done == [[1]]
        conn.commit()
    assert _stored(write_engine) == [1]


def test_commit_sends_the_deferred_write(write_engine, app) -> None:
    done: list = []
    with app.extensions["ledger"].uow(write=True) as uow:
        uow.ping()
        driver.defer(uow.connection, _deferred(2, done))
        uow.commit()
    assert done == [[2]]
    assert _stored(write_engine) == [2]


def test_a_statement_that_takes_the_deferred_write_sends_it_with_its_own(write_engine) -> None:
    done: list = []
    with write_engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        driver.defer(conn, _deferred(3, done))
        taken = driver.take(conn)
        assert taken is not None and driver.take(conn) is None
        taken.done(driver.driver_rows(conn, taken.ctes + f", w2 AS (INSERT INTO {SCRATCH} (v) VALUES (4))\n"
                                      + taken.select, taken.params))
        conn.commit()
    assert done == [[3]]
    assert _stored(write_engine) == [3, 4]


def test_a_rollback_drops_the_deferred_write(write_engine, app) -> None:
    done: list = []
    with app.extensions["ledger"].uow(write=True) as uow:
        uow.ping()
        driver.defer(uow.connection, _deferred(5, done))
    # Leaving without commit rolled back; the pooled connection keeps nothing for the next user.
    with app.extensions["ledger"].uow(write=True) as uow:
        uow.ping()
        uow.commit()
    assert done == []
    assert _stored(write_engine) == []


def test_a_savepoint_rolled_back_to_drops_the_write_deferred_inside_it(write_engine, app) -> None:
    kept: list = []
    dropped: list = []
    with app.extensions["ledger"].uow(write=True) as uow:
        uow.ping()
        driver.defer(uow.connection, _deferred(6, kept))  # before the savepoint: sent by SAVEPOINT
        with pytest.raises(ZeroDivisionError):
            with uow.savepoint():
                driver.defer(uow.connection, _deferred(7, dropped))
                1 / 0  # noqa: B018
        uow.commit()
    assert kept == [[6]] and dropped == []
    assert _stored(write_engine) == [6]


def test_a_lost_connection_drops_the_deferred_write_without_a_second_error(write_engine, app) -> None:
    """Ending a unit of work whose connection was lost must not fail again on the deferred write
    (an invalidated connection refuses to be read until rolled back): the retry logic has to see
    the original, retryable error."""
    done: list = []
    with app.extensions["ledger"].uow(write=True) as uow:
        uow.ping()
        driver.defer(uow.connection, _deferred(8, done))
        uow.connection.invalidate()
    with app.extensions["ledger"].uow(write=True) as uow:  # the pool hands out a working connection
        uow.ping()
        uow.commit()
    assert done == []
    assert _stored(write_engine) == []
