"""The SQL unit of work: one database transaction, committed only by an explicit `commit()`.

Repositories run SQLAlchemy Core statements on a plain `Connection`: no ORM session (its per-statement
bookkeeping cost more than the statements' own round trips on the checkout path)."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Iterator

from .earning_repos import SqlEarning, SqlExpiry, SqlTiers
from .engagement_repos import SqlAchievements, SqlEvents, SqlLeaderboard, SqlReferrals
from .engine import Engines
from . import driver
from .analytics_repo import SqlAnalytics
from .finance_repos import SqlBooks, SqlCorrections
from .repositories import (
    SqlApiKeys, SqlAudit, SqlCustomers, SqlIdempotency, SqlLedger, SqlLots, SqlPrograms, SqlPurchases, SqlRedemptions,
    SqlRefunds, SqlReleases,
)


def _repository(cls: type) -> Any:
    """A repository on the unit of work's connection, made on first use (a unit of work is entered once)."""
    return functools.cached_property(lambda self: cls(self.connection))


def _repository_on_ledger(cls: type) -> Any:
    """`_repository`, sharing the unit of work's ledger (its cached accounts, balances and chain heads)."""
    return functools.cached_property(lambda self: cls(self.connection, self.ledger))


class SqlUnitOfWork:
    """Leaving the `with` block without `commit()` rolls everything back."""

    def __init__(self, engines: Engines, *, write: bool, autocommit: bool = False) -> None:
        if write:
            self._engine = engines.write
        else:  # one-statement reads need no BEGIN/ROLLBACK round trips
            self._engine = engines.autocommit_read if autocommit else engines.read
        self.dialect = engines.dialect

    def __enter__(self) -> "SqlUnitOfWork":
        self.connection = self._engine.connect()
        return self

    # Repositories are made on first use: a balance read needs one of the twenty-one.
    programs = _repository(SqlPrograms)
    api_keys = _repository(SqlApiKeys)
    ledger = _repository(SqlLedger)
    # The customers' lock may read the accounts for the ledger in the same round trip (PostgreSQL).
    customers = _repository_on_ledger(SqlCustomers)
    # A purchase's accrual is booked with its row (one statement on PostgreSQL), on the same ledger.
    purchases = _repository_on_ledger(SqlPurchases)
    lots = _repository(SqlLots)
    releases = _repository(SqlReleases)
    idempotency = _repository(SqlIdempotency)
    audit = _repository(SqlAudit)
    # A hold's transaction is booked with its row (one statement on PostgreSQL), on the same ledger.
    redemptions = _repository_on_ledger(SqlRedemptions)
    refunds = _repository(SqlRefunds)
    earning = _repository(SqlEarning)
    tiers = _repository(SqlTiers)
    expiry = _repository(SqlExpiry)
    referrals = _repository(SqlReferrals)
    events = _repository(SqlEvents)
    achievements = _repository(SqlAchievements)
    leaderboard = _repository(SqlLeaderboard)
    books = _repository(SqlBooks)
    corrections = _repository(SqlCorrections)
    analytics = _repository(SqlAnalytics)

    def __exit__(self, *exc: object) -> None:
        try:
            driver.rollback(self.connection)
        finally:
            self.connection.close()

    def commit(self) -> None:
        driver.flush(self.connection)
        self.connection.commit()

    def ping(self) -> None:
        from sqlalchemy import text

        self.connection.execute(text("SELECT 1"))

    def rollback(self) -> None:
        driver.rollback(self.connection)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with driver.savepoint(self.connection):
            yield


class SqlUnitOfWorkFactory:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def __call__(self, *, write: bool = False, autocommit: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engines, write=write, autocommit=autocommit)

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """Deadlock, serialization failure, a unique race, a dropped connection, or SQLite's lock timeout."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        if not isinstance(exc, DBAPIError):
            return False
        if exc.connection_invalidated:
            return True
        if isinstance(exc, OperationalError) and exc.statement is None:
            return True  # could not connect at all (refused, starting up, shutting down): no SQLSTATE
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in {"40P01", "40001", "23505", "55P03"} or (sqlstate or "").startswith("08"):
            return True
        if sqlstate in {"57P01", "57P02", "57P03"}:  # admin shutdown, crash shutdown, cannot connect now
            return True
        message = str(exc.orig).lower()
        return "database is locked" in message or "database is busy" in message
