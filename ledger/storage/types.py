"""Column types that behave the same on PostgreSQL and SQLite."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.types import TypeDecorator

# A 64-bit key that still autoincrements on SQLite (which needs INTEGER PRIMARY KEY).
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


def refuse_naive(*instants: datetime | None) -> None:
    """Every instant bound to the database carries an offset (None is no instant)."""
    if any(i is not None and i.tzinfo is None for i in instants):
        raise ValueError("naive datetime refused: every instant carries an offset")


def pg_array(values: Iterable[int | str | datetime | None]) -> str:
    """`values` as PostgreSQL's array literal (`{1,"a",NULL}`), for a parameter the SQL text casts
    (`%(x)s::bigint[]`). psycopg's list dumper is Python and costs several times this per list; on a
    booking's ten arrays that was about 35 µs. Ints, strings and aware instants only."""
    parts = []
    for value in values:
        kind = type(value)
        if kind is int:
            parts.append(str(value))
        elif isinstance(value, str):  # an Asset too (a StrEnum)
            parts.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif kind is datetime:
            refuse_naive(value)
            parts.append('"' + value.isoformat() + '"')
        elif value is None:
            parts.append("NULL")
        else:
            raise TypeError(f"no array literal for {kind.__name__}")
    return "{" + ",".join(parts) + "}"


class UTCDateTime(TypeDecorator):
    """Aware datetimes stored in UTC; SQLite would otherwise hand back naive local offsets."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        refuse_naive(value)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):  # noqa: ANN001
        return as_utc(value)


def as_utc(value: datetime | None) -> datetime | None:
    """An instant read back from the database, in UTC (a naive one was stored as UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
