"""The same time rules with the real clock (SystemClock) frozen and moved by freezegun.

Every other test injects a FixedClock; these check that nothing reads the time another way:
business times come from `datetime.now(timezone.utc)` in ledger.clock, never from the database.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from tests.conftest import OPERATOR_TOKEN
from tests.helpers import assert_problem

T0 = datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc)


@pytest.fixture
def wall_app(database_url):
    from api import create_app

    app = create_app({"DATABASE_URL": database_url, "OPERATOR_TOKEN": OPERATOR_TOKEN, "DB_POOL_SIZE": 2})
    yield app
    app.extensions["ledger"].engines.dispose()


@pytest.fixture
def shop(wall_app):
    client = wall_app.test_client()
    with freeze_time(T0):
        created = client.post("/v1/programs", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                              json={"name": "Wall", "currency": "EUR", "cashback_rate_bps": 100,
                                    "timezone": "Europe/Paris"})
        assert created.status_code == 201, created.get_data(as_text=True)
        key = created.get_json()["api_keys"]["storefront"]
        headers = {"Authorization": f"Bearer {key}"}
        assert client.put("/v1/customers/ana", json={}, headers=headers).status_code == 201
        assert client.post("/v1/purchases", headers=headers, json={
            "order_id": "A-1", "customer_id": "ana", "amount": 10_000, "currency": "EUR"}).status_code == 201
    return client, headers


def balances(client, headers) -> dict:
    return client.get("/v1/customers/ana/balances", headers=headers).get_json()


def test_hold_expires_at_its_instant_and_extension_moves_it(shop):
    client, headers = shop
    with freeze_time(T0) as frozen:
        held = client.post("/v1/redemptions", headers=headers, json={
            "redemption_id": "R-1", "customer_id": "ana", "asset": "points", "amount": 40, "ttl_seconds": 60})
        assert held.status_code == 201
        assert held.get_json()["expires_at"] == (T0 + timedelta(seconds=60)).isoformat()

        frozen.tick(timedelta(seconds=59))
        extended = client.post("/v1/redemptions/R-1/extend", headers=headers, json={"ttl_seconds": 120})
        assert extended.status_code == 200
        assert extended.get_json()["expires_at"] == (T0 + timedelta(seconds=179)).isoformat()

        frozen.tick(timedelta(seconds=119))  # T0 + 178 s: one second before the new expiry
        assert balances(client, headers)["points"] == {"available": 60, "pending": 0, "reserved": 40}

        frozen.tick(timedelta(seconds=1))  # T0 + 179 s: lapsed, counted as available at once
        assert balances(client, headers)["points"] == {"available": 100, "pending": 0, "reserved": 0}
        assert client.get("/v1/redemptions/R-1", headers=headers).get_json()["status"] == "expired"
        assert_problem(client.post("/v1/redemptions/R-1/capture", headers=headers, json={}), 409, "hold_expired")


def test_pending_cashback_becomes_available_after_exactly_the_hold_period(shop, wall_app):
    from ledger.clock import SystemClock
    from ledger.services.releases import run_jobs

    client, headers = shop
    release_at = T0 + timedelta(days=30)  # across the change to summer time in Paris: 30 days of 24 h
    with freeze_time(release_at - timedelta(seconds=1)):
        assert balances(client, headers)["cashback"] == {"available": 0, "pending": 100, "reserved": 0}
        assert run_jobs(wall_app.extensions["ledger"].uow, SystemClock())["releases"] == 0
    with freeze_time(release_at):
        assert balances(client, headers)["cashback"] == {"available": 100, "pending": 0, "reserved": 0}
        assert run_jobs(wall_app.extensions["ledger"].uow, SystemClock())["releases"] == 1
        assert run_jobs(wall_app.extensions["ledger"].uow, SystemClock())["releases"] == 0
        activity = client.get("/v1/customers/ana/activity", headers=headers).get_json()["items"]
        assert activity[0]["type"] == "release"
        assert activity[0]["recorded_at"] == release_at.isoformat()
