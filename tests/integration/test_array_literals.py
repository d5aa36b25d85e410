"""`pg_array`: a list bound as PostgreSQL's array literal reads back equal on PostgreSQL, whatever the
strings hold (quotes, backslashes, commas, braces, blanks, the word NULL)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.storage.types import pg_array

only_postgresql = pytest.mark.skipif(os.environ.get("LEDGER_TEST_BACKEND", "sqlite") != "postgresql",
                                     reason="array literals are PostgreSQL's")

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_BIGINT = st.integers(min_value=-2**63, max_value=2**63 - 1)
_INSTANT = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                   timezone(timedelta(hours=-11))]))


def _read_back(engine: Any, value: str, cast: str) -> list:
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        (row,) = driver.execute(f"SELECT %(v)s::{cast}", {"v": value}).fetchall()
        conn.rollback()
        return row[0]


@only_postgresql
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(st.one_of(st.none(), _TEXT, st.sampled_from(["NULL", "null", "", " ", "{}", '"', "\\", ","])),
                        max_size=6),
       numbers=st.lists(st.one_of(st.none(), _BIGINT), max_size=6),
       instants=st.lists(_INSTANT, max_size=4))
def test_a_list_bound_as_an_array_literal_reads_back_equal(app: Any, strings: list, numbers: list,
                                                           instants: list) -> None:
    engine = app.extensions["ledger"].engines.write
    assert _read_back(engine, pg_array(strings), "varchar[]") == strings
    assert _read_back(engine, pg_array(numbers), "bigint[]") == numbers
    assert _read_back(engine, pg_array(instants), "timestamptz[]") == instants


def test_only_ints_strings_and_aware_instants_are_written_as_literals() -> None:
    with pytest.raises(ValueError, match="naive"):
        pg_array([datetime(2026, 1, 1)])
    for value in (True, 1.5, b"x"):
        with pytest.raises(TypeError):
            pg_array([value])
