"""API keys are cached per service process for `LEDGER_AUTH_CACHE_SECONDS`: a revoked or rotated
key stops at once on the process that revoked it, and within that interval on the others."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.conftest import OPERATOR_TOKEN


class Ticker:
    """A monotonic timer the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def other_process(database_url: str, clock: Any, ticker: Ticker) -> Iterator[Any]:
    """A second service process on the same database, with its own key cache (1 s)."""
    from api import create_app

    app = create_app({"DATABASE_URL": database_url, "OPERATOR_TOKEN": OPERATOR_TOKEN, "CLOCK": clock,
                      "DB_POOL_SIZE": 2, "AUTH_CACHE_SECONDS": 1.0, "MONOTONIC": ticker})
    yield app.test_client()
    app.extensions["ledger"].engines.dispose()


def _balances(client: Any, program: Any, key: str) -> int:
    return client.get("/v1/customers/c-1/balances", headers={"Authorization": f"Bearer {key}"}).status_code


def test_revoked_key_stops_at_once_here_and_within_the_interval_elsewhere(client, program, enrol, other_process,
                                                                           ticker):
    enrol(program, "c-1")
    created = client.post("/v1/api-keys", json={"role": "app", "name": "phone"}, headers=program.headers("admin"))
    assert created.status_code == 201
    key, key_id = created.get_json()["key"], created.get_json()["id"]
    assert _balances(client, program, key) == 200
    assert _balances(other_process, program, key) == 200  # now cached over there

    assert client.delete(f"/v1/api-keys/{key_id}", headers=program.headers("admin")).status_code == 200
    assert _balances(client, program, key) == 401  # the process that revoked it: at once

    ticker.now += 0.5
    assert _balances(other_process, program, key) == 200  # within the interval: still trusted
    ticker.now += 0.6
    assert _balances(other_process, program, key) == 401  # looked up again: revoked


def test_rotated_key_stops_at_once_here(client, program, enrol, other_process, ticker):
    enrol(program, "c-1")
    created = client.post("/v1/api-keys", json={"role": "app"}, headers=program.headers("admin")).get_json()
    assert _balances(client, program, created["key"]) == 200
    assert _balances(other_process, program, created["key"]) == 200
    rotated = client.post(f"/v1/api-keys/{created['id']}/rotate", headers=program.headers("admin"))
    assert rotated.status_code == 201
    assert _balances(client, program, created["key"]) == 401
    assert _balances(client, program, rotated.get_json()["key"]) == 200
    ticker.now += 1.0
    assert _balances(other_process, program, created["key"]) == 401
    assert _balances(other_process, program, rotated.get_json()["key"]) == 200


def test_unknown_keys_are_never_cached(client, program, enrol, other_process, ticker):
    """A miss is looked up every time, so a key created after a failed attempt works at once, and
    random keys cannot fill the cache."""
    enrol(program, "c-1")
    assert _balances(other_process, program, "not-a-key") == 401
    assert other_process.application.extensions["ledger"]._keys == {}
    created = client.post("/v1/api-keys", json={"role": "app"}, headers=program.headers("admin")).get_json()
    assert _balances(other_process, program, created["key"]) == 200


def test_zero_seconds_looks_every_request_up(database_url, clock, client, program, enrol, ticker):
    from api import create_app

    enrol(program, "c-1")
    uncached = create_app({"DATABASE_URL": database_url, "OPERATOR_TOKEN": OPERATOR_TOKEN, "CLOCK": clock,
                           "DB_POOL_SIZE": 2, "AUTH_CACHE_SECONDS": 0.0, "MONOTONIC": ticker})
    try:
        other = uncached.test_client()
        created = client.post("/v1/api-keys", json={"role": "app"}, headers=program.headers("admin")).get_json()
        assert _balances(other, program, created["key"]) == 200
        client.delete(f"/v1/api-keys/{created['id']}", headers=program.headers("admin"))
        assert _balances(other, program, created["key"]) == 401
    finally:
        uncached.extensions["ledger"].engines.dispose()


def test_last_used_is_still_recorded_with_the_cache(client, program, enrol, clock):
    enrol(program, "c-1")
    created = client.post("/v1/api-keys", json={"role": "app"}, headers=program.headers("admin")).get_json()
    _balances(client, program, created["key"])
    listed = {k["id"]: k for k in client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]}
    first = listed[created["id"]]["last_used_at"]
    assert first is not None
    clock.advance(minutes=2)
    _balances(client, program, created["key"])
    listed = {k["id"]: k for k in client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]}
    assert listed[created["id"]]["last_used_at"] > first
