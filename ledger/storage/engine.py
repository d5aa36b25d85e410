"""Engines for PostgreSQL and SQLite.

SQLite: pysqlite's own transaction handling is switched off and we emit BEGIN
ourselves, `BEGIN IMMEDIATE` on the write engine, so concurrent writers from
several gunicorn workers queue on the database lock (busy timeout) instead of
failing with SQLITE_BUSY on a read-then-write upgrade.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from . import driver

SQLITE_BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Engines:
    read: Engine
    write: Engine

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    autocommit: Engine | None = None

    @property
    def autocommit_read(self) -> Engine:
        """For one-statement reads: on PostgreSQL an engine of its own whose connections stay in
        autocommit (no BEGIN/ROLLBACK round trips, and no switching the isolation level per checkout)."""
        return self.autocommit or self.read

    def dispose(self) -> None:
        for engine in {id(e): e for e in (self.read, self.write, self.autocommit) if e is not None}.values():
            engine.dispose()


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # noqa: ANN001
        connection.exec_driver_sql(begin)

    return engine


def make_engines(url: str, *, pool_size: int = 10) -> Engines:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return Engines(read=_sqlite_engine(url, "BEGIN"), write=_sqlite_engine(url, "BEGIN IMMEDIATE"))
    if backend == "postgresql":
        def engine(isolation_level: str) -> Engine:
            return create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                # No pre-ping round trip per checkout: a dropped connection surfaces as a retryable
                # error (services/writes.py), the pool is invalidated, and the retry reconnects.
                pool_pre_ping=False,
                pool_recycle=1800,
                isolation_level=isolation_level,
            )

        # Writes and the one-statement reads (the balance read, the API key lookup) work on one
        # customer or one key at a time: one generic plan per statement serves them best. Left to
        # choose, PostgreSQL planned the booking afresh on every purchase (its generic estimate for
        # the entry arrays is higher than a custom one; about 0.13 ms of database CPU a purchase),
        # and switched the balance read to planning every execution once enough pending cashback
        # had piled up (its generic estimate for `release_at <= $now` grows with the table): the
        # read's database CPU tripled. Reports and lists, whose ranges may want a plan per call,
        # keep PostgreSQL's choice on an engine of their own. Set per connection with SET rather
        # than a startup option, which PgBouncer would refuse.
        reads = engine("READ COMMITTED")
        writes = engine("READ COMMITTED")
        autocommit = engine("AUTOCOMMIT")
        event.listen(writes, "connect", _generic_plans)
        event.listen(autocommit, "connect", _generic_plans)
        # A deferred write (driver.defer) goes before whatever statement comes next.
        event.listen(writes, "before_cursor_execute", driver.flush_before)
        return Engines(read=reads, write=writes, autocommit=autocommit)
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _generic_plans(dbapi_connection, _record) -> None:  # noqa: ANN001
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    dbapi_connection.commit()  # a no-op once the connection is in autocommit
