"""Hot statements run on the driver's own connection, past SQLAlchemy's per-execution machinery.

A prebuilt statement executed through SQLAlchemy costs about 70 µs of Python per call (cache key,
execution context, result wrapping) on top of psycopg's own 40 µs; on the checkout path that was more
than the database's share. `Prepared` compiles the statement once per dialect and, on PostgreSQL,
hands the SQL text straight to psycopg (which prepares it on the server after a few uses). What
SQLAlchemy's path would do is kept:

- the connection's transaction is begun in SQLAlchemy's books first, so `commit()` commits it;
- bind processors run (a naive datetime is still refused);
- a driver error is wrapped and, for a lost connection, invalidates the pool exactly as SQLAlchemy
  does (`Connection._handle_dbapi_exception`), so the retry logic sees the same exceptions;
- `before_cursor_execute` / `after_cursor_execute` listeners still see every statement.

`Prepared` takes SELECTs, and INSERT / UPDATE with or without RETURNING; its result processors run as
SQLAlchemy would run them (aware UTC datetimes). On SQLite it is a plain `Connection.execute`; either
way rows are named tuples in the statement's column order. `driver_rows` does the same for the
hand-written PostgreSQL statements (the booking, the purchase).
"""
from __future__ import annotations

from collections import namedtuple
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from sqlalchemy import Connection
from sqlalchemy.sql import Executable


class Prepared:
    """A prebuilt SQLAlchemy statement, compiled once per dialect, run on the driver (PostgreSQL)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, conn: Connection) -> "_Compiled":
        dialect = conn.dialect
        compiled = self.statement.compile(dialect=dialect)
        columns = list(getattr(self.statement, "selected_columns", None) or self.statement.exported_columns)
        row_type = namedtuple("Row", [column.name for column in columns])  # type: ignore[misc]
        results = [column.type._cached_result_processor(dialect, None) for column in columns]
        entry = _Compiled(
            sql=str(compiled),
            defaults={name: value for name, value in compiled.params.items() if value is not None},
            binds={name: fn for name, fn in compiled._bind_processors.items() if fn is not None},
            row_type=row_type,
            results=results if any(results) else None,
            returns_rows=bool(columns),
        )
        self._compiled[dialect.name] = entry
        return entry

    def all(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        """The rows, as named tuples (attribute access like SQLAlchemy's rows); [] for a statement
        that returns none (an UPDATE without RETURNING)."""
        if conn.dialect.name != "postgresql":
            result = conn.execute(self.statement, params)
            return result.all() if result.returns_rows else []
        c = self._compiled.get("postgresql") or self._compile(conn)
        values = {**c.defaults, **params}
        for name, process in c.binds.items():
            values[name] = process(values[name])
        raw, _cursor = _execute(conn, c.sql, values, c.returns_rows)
        make = c.row_type._make
        if c.results is None:
            return [make(row) for row in raw]
        results = c.results
        return [make([fn(value) if fn else value for fn, value in zip(results, row)]) for row in raw]

    def first(self, conn: Connection, params: dict[str, Any]) -> Any | None:
        rows = self.all(conn, params)
        return rows[0] if rows else None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]
    binds: dict[str, Callable[[Any], Any]]
    row_type: type
    results: list[Callable[[Any], Any] | None] | None
    returns_rows: bool


def _execute(conn: Connection, sql: str, values: dict[str, Any], returns_rows: bool) -> tuple[list[tuple], Any]:
    """Run on the driver's connection with SQLAlchemy's bookkeeping (see the module's docstring)."""
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's autobegin would do, so that commit() commits
    driver = conn.connection.driver_connection
    events = conn._has_events or conn.engine._has_events
    if events:
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, None, sql, values, None, False)
    try:
        cursor = driver.execute(sql, values)
        raw = cursor.fetchall() if returns_rows else []
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, sql, values, None, None)
    if events:
        for listener in conn.dispatch.after_cursor_execute:
            listener(conn, None, sql, values, None, False)
    return raw, cursor


_ROW_TYPES: dict[str, type] = {}  # hand-written statement text -> its row type


def driver_rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """A hand-written PostgreSQL statement that returns rows (psycopg's %(name)s parameters, already
    bound as the columns would bind them) on the driver's connection; rows as named tuples."""
    raw, cursor = _execute(conn, sql, params, returns_rows=True)
    row_type = _ROW_TYPES.get(sql)
    if row_type is None:
        # psycopg builds `description` anew on each access (an object per column): read once per text.
        row_type = _ROW_TYPES[sql] = namedtuple("Row", [column.name for column in cursor.description])  # type: ignore[misc]
    make = row_type._make
    return [make(row) for row in raw]


# ---------------------------------------------------------------------------------------------------
# Ending a transaction, or a savepoint, without losing the connection's prepared statements.
#
# psycopg forgets every statement a connection has prepared whenever a ROLLBACK runs on it (its own
# rollback(), or any statement whose status is ROLLBACK, so ROLLBACK TO SAVEPOINT too), and sends
# DEALLOCATE ALL: the next five executions of each statement are parsed and planned again. It does so
# because after a failed statement it cannot tell what was prepared, and because rolled-back DDL may
# leave a statement naming objects that are gone. Prepared statements themselves are session objects:
# the server keeps them across ROLLBACK, even those prepared inside the rolled-back transaction
# (checked on PostgreSQL 15). So when no statement of the transaction failed (libpq's status is
# INTRANS, not INERROR) and the transaction ran no DDL (request transactions never do), sending the
# ROLLBACK on the libpq connection directly ends it and keeps them; SQLAlchemy's own rollback then
# finds the connection idle and sends nothing. After a failed statement psycopg's way is kept.


def _rollback_keeping_prepared(conn: Connection, command: bytes) -> bool:
    """Send `command` (a ROLLBACK) past psycopg's statement cache if the transaction is still good.
    True if it ran; False if psycopg's own way must be taken (a failed statement, or no driver)."""
    from psycopg.pq import ExecStatus, TransactionStatus

    if conn.dialect.name != "postgresql" or conn.invalidated or not conn.in_transaction():
        return False
    driver = conn.connection.driver_connection
    if driver is None or driver.info.transaction_status != TransactionStatus.INTRANS:
        return False
    try:
        result = driver.pgconn.exec_(command)
    except Exception:  # noqa: BLE001 - a lost connection: the caller's way reports it
        return False
    return result.status == ExecStatus.COMMAND_OK


def rollback(conn: Connection) -> None:
    """Roll back the connection's transaction (see above for why not only `conn.rollback()`)."""
    discard(conn)
    _rollback_keeping_prepared(conn, b"ROLLBACK")
    conn.rollback()


_SAVEPOINT = "ledger_savepoint"


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint around the block, rolled back to if the block raises. On PostgreSQL it is issued
    here rather than by SQLAlchemy's `begin_nested()`, so that a block refused in Python (a business
    rule, under an Idempotency-Key) does not cost the connection its prepared statements; and it is
    not released after a block that succeeded: COMMIT releases it, and RELEASE would be one more round
    trip on every write under an Idempotency-Key (a write transaction takes at most one savepoint)."""
    if conn.dialect.name != "postgresql":
        with conn.begin_nested():
            yield
        return
    _execute(conn, f"SAVEPOINT {_SAVEPOINT}", {}, returns_rows=False)
    try:
        yield
    except BaseException:
        discard(conn)  # written inside the block: rolled back with it
        if not _rollback_keeping_prepared(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}".encode()):
            _execute(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}", {}, returns_rows=False)
        raise


# ---------------------------------------------------------------------------------------------------
# A write held back to share a later round trip.
#
# A purchase's last write (its accrual and its row) is followed only by the stored answer for
# replays, and both are made under the customer's lock: sent together they save a round trip while
# the lock is held. `defer` parks such a write on the connection; the idempotency repository sends
# it with the answer (`take`), and anything else sends it first: the next statement on the
# connection (a `before_cursor_execute` listener on PostgreSQL's write engine, `flush_before`), a
# commit, or a caller that needs what it returns. A rollback, or a savepoint rolled back to,
# discards it with the rest of the work.


@dataclass(frozen=True, slots=True)
class DeferredWrite:
    """Data-modifying CTEs (`WITH a AS (...), b AS (...)`, psycopg's %(name)s parameters) and the
    SELECT that reads their results; `done` gets the rows once the statement has run."""

    ctes: str
    select: str
    params: dict[str, Any]
    done: Callable[[list[Any]], None]
    kind: str = "write"  # or "claim": an idempotency claim, which a customer's lock call takes


_DEFERRED = "ledger_deferred_write"  # the connection's `info` key


def defer(conn: Connection, write: DeferredWrite) -> None:
    flush(conn)  # at most one waits
    conn.info[_DEFERRED] = write


def flush(conn: Connection) -> None:
    """Send the deferred write, if any, on its own."""
    write = take(conn)
    if write is not None:
        write.done(driver_rows(conn, write.ctes + "\n" + write.select, write.params))


def take(conn: Connection, kind: str | None = None) -> DeferredWrite | None:
    """The deferred write (of that kind, if given), for a caller that sends it with a statement of its
    own (then calls `done`)."""
    write = conn.info.get(_DEFERRED)
    if write is None or (kind is not None and write.kind != kind):
        return None
    return conn.info.pop(_DEFERRED)


class Pending:
    """What a deferred statement returns: its `done` stores it in `value`; reading it with `get`
    first sends the statement if it has not gone yet."""

    def __init__(self, conn: Connection, value: Any = None) -> None:
        self._conn, self.value = conn, value

    def get(self) -> Any:
        if self.value is None:
            flush(self._conn)
        if self.value is None:
            raise RuntimeError("the deferred statement was rolled back before it was sent")
        return self.value


def discard(conn: Connection) -> None:
    if not conn.invalidated:  # a lost connection's `info` goes with it (and reading it would raise)
        conn.info.pop(_DEFERRED, None)


def flush_before(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,  # noqa: ARG001
                 executemany: bool) -> None:  # noqa: ARG001
    """`before_cursor_execute`: whatever runs next on the connection sees the deferred write."""
    if _DEFERRED in conn.info:
        flush(conn)
