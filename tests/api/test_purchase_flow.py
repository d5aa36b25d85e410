"""The walk-through a storefront and an app follow: enrol, buy, read balances and activity."""
from __future__ import annotations

from datetime import timedelta


def test_purchase_earns_points_now_and_cashback_pending(client, program, enrol, buy, verify, clock):
    enrol(program, "c-1", email="ana@example.com")
    response = buy(program, "A-1001", "c-1", 12_345)
    assert response.status_code == 201
    data = response.get_json()
    assert data["points_earned"] == 123  # floor(12345 * 1 / 100)
    assert data["cashback_earned"] == 246  # floor(12345 * 200 / 10000)
    assert data["points_status"] == "available" and data["cashback_status"] == "pending"
    assert data["balances"] == {
        "currency": "EUR",
        "points": {"available": 123, "pending": 0, "reserved": 0},
        "cashback": {"available": 0, "pending": 246, "reserved": 0},
    }
    assert data["cashback_available_at"] == (clock.now() + timedelta(days=30)).isoformat()
    report = verify()
    assert report.entries == 4


def test_retry_replays_byte_for_byte_and_books_once(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    first = buy(program, "A-1", "c-1", 5_000)
    again = buy(program, "A-1", "c-1", 5_000)
    assert again.status_code == first.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert verify().entries == 4


def test_same_order_id_with_another_body_is_a_conflict(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    assert buy(program, "A-1", "c-1", 5_000).status_code == 201
    response = buy(program, "A-1", "c-1", 6_000)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "duplicate_order"
    assert verify().entries == 4


def test_release_job_moves_pending_cashback_to_available(client, program, enrol, buy, app, clock, verify):
    from ledger.services.releases import run_release_job

    enrol(program, "c-1")
    buy(program, "A-1", "c-1", 10_000)
    ledger = app.extensions["ledger"]
    assert run_release_job(ledger.uow, clock) == 0  # window not over yet
    clock.advance(days=30)
    assert run_release_job(ledger.uow, clock) == 1
    assert run_release_job(ledger.uow, clock) == 0  # nothing released twice
    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["cashback"] == {"available": 200, "pending": 0, "reserved": 0}
    activity = client.get("/v1/customers/c-1/activity", headers=program.headers("app")).get_json()
    assert [item["type"] for item in activity["items"]] == ["release", "purchase_accrual"]
    assert activity["items"][0]["cashback"] == {"available": 200, "pending": -200, "reserved": 0}
    verify()


def test_balances_show_due_cashback_as_available_before_the_job_runs(client, program, enrol, buy, clock):
    enrol(program, "c-1")
    buy(program, "A-1", "c-1", 10_000)
    clock.advance(days=30, seconds=1)
    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["cashback"] == {"available": 200, "pending": 0, "reserved": 0}


def test_next_purchase_releases_due_value_first(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    buy(program, "A-1", "c-1", 10_000)
    clock.advance(days=31)
    data = buy(program, "A-2", "c-1", 10_000).get_json()
    assert data["balances"]["cashback"] == {"available": 200, "pending": 200, "reserved": 0}
    verify()
