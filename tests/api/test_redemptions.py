"""Checkout redemption (issue 3): hold, capture, void, extend, expiry, and the checkout quote.

Bookings (ARCHITECTURE.md §1): a hold moves value from `available` to `reserved`; a capture of x
of a hold h books reserved -h, house `redeemed` +x, available +(h - x); void and expiry mirror
the hold. Every test ends with `verify()`: the ledger sums to zero per asset and every cached
balance equals its entries.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.services.releases import run_jobs
from tests.helpers import transaction_legs as _legs, ledger_entries

PROBLEM = "application/problem+json"


# --------------------------------------------------------------------------- helpers


def _hold(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int, asset: str = "points",
          headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"redemption_id": redemption_id, "customer_id": customer_id, "asset": asset, "amount": amount, **extra}
    return client.post("/v1/redemptions", json=body, headers=program.headers("storefront", **(headers or {})))


def _capture(client: Any, program: Any, redemption_id: str, amount: int | None = None) -> Any:
    body = {} if amount is None else {"amount": amount}
    return client.post(f"/v1/redemptions/{redemption_id}/capture", json=body, headers=program.headers("storefront"))


def _void(client: Any, program: Any, redemption_id: str) -> Any:
    return client.post(f"/v1/redemptions/{redemption_id}/void", json={}, headers=program.headers("storefront"))


def _extend(client: Any, program: Any, redemption_id: str, ttl_seconds: int) -> Any:
    return client.post(f"/v1/redemptions/{redemption_id}/extend", json={"ttl_seconds": ttl_seconds},
                       headers=program.headers("storefront"))


def _get(client: Any, program: Any, redemption_id: str) -> Any:
    return client.get(f"/v1/redemptions/{redemption_id}", headers=program.headers("app"))


def _quote(client: Any, program: Any, customer_id: str, amount: int, **extra: Any) -> Any:
    return client.post("/v1/checkout/quote", json={"customer_id": customer_id, "amount": amount, **extra},
                       headers=program.headers("storefront"))


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    response = client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()



def _activity(client: Any, program: Any, customer_id: str) -> list[dict]:
    response = client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"]


def _problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _pts(available: int, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}


def _uow(client: Any) -> Any:
    return client.application.extensions["ledger"].uow


def _funded(enrol: Any, buy: Any, program: Any, customer_id: str = "c-1", amount: int = 10_000,
            order_id: str = "A-0") -> None:
    """Enrol and buy: with the default program 10_000 cents earn 100 points, available at once."""
    enrol(program, customer_id)
    response = buy(program, order_id, customer_id, amount)
    assert response.status_code == 201, response.get_data(as_text=True)


# --------------------------------------------------------------------------- hold


def test_hold_moves_available_to_reserved(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    response = _hold(client, program, "R-1", "c-1", 40)

    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["redemption_id"] == "R-1"
    assert data["status"] == "held"
    assert data["asset"] == "points"
    assert data["amount"] == 40
    assert data["value"] == 40  # default rate: one point is worth one minor unit
    assert _at(data["expires_at"]) == clock.now() + timedelta(seconds=900)  # default hold_ttl_seconds
    assert data["balances"]["points"] == _pts(60, 0, 40)
    assert data["balances"]["cashback"] == _pts(0, 200, 0)  # cashback untouched
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)

    hold_tx = _activity(client, program, "c-1")[0]["transaction_id"]
    assert _legs(client, program, hold_tx) == {"customer/c-1/points/available": -40,
                                               "customer/c-1/points/reserved": 40}
    assert verify().entries == 4 + 2


def test_hold_uses_program_ttl_and_explicit_ttl(client, make_program, enrol, buy, clock, verify):
    program = make_program(hold_ttl_seconds=120)
    _funded(enrol, buy, program)
    first = _hold(client, program, "R-1", "c-1", 10)
    assert _at(first.get_json()["expires_at"]) == clock.now() + timedelta(seconds=120)
    second = _hold(client, program, "R-2", "c-1", 10, ttl_seconds=86_400)
    assert second.status_code == 201, second.get_data(as_text=True)
    assert _at(second.get_json()["expires_at"]) == clock.now() + timedelta(seconds=86_400)
    verify()


@pytest.mark.parametrize("ttl", [0, 86_401, -5])
def test_ttl_seconds_out_of_bounds_is_refused(client, program, enrol, buy, ttl, verify):
    _funded(enrol, buy, program)
    body = _problem(_hold(client, program, "R-1", "c-1", 10, ttl_seconds=ttl), 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["ttl_seconds"]
    assert _hold(client, program, "R-2", "c-1", 10).status_code == 201
    _problem(_extend(client, program, "R-2", ttl), 422, "validation_error")
    assert _balances(client, program, "c-1")["points"] == _pts(90, 0, 10)
    assert verify().entries == 4 + 2


def test_points_value_uses_the_redemption_rate(client, make_program, enrol, buy, verify):
    # 200 points per euro: redeem_minor_units 100 per redeem_points 200.
    program = make_program(redeem_minor_units=100, redeem_points=200)
    _funded(enrol, buy, program, amount=30_000)  # 300 points
    response = _hold(client, program, "R-1", "c-1", 250)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["value"] == 125  # floor(250 * 100 / 200)
    odd = _hold(client, program, "R-2", "c-1", 3).get_json()
    assert odd["value"] == 1  # floor(3 * 100 / 200) = floor(1.5)
    one = _hold(client, program, "R-3", "c-1", 1).get_json()
    assert one["value"] == 0  # floor(0.5)
    assert _balances(client, program, "c-1")["points"] == _pts(46, 0, 254)
    verify()


def test_cashback_hold_capture_and_value(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=1_000, cashback_hold_days=0)
    _funded(enrol, buy, program)  # 100 points, 1_000 cents cashback available
    response = _hold(client, program, "R-1", "c-1", 300, asset="cashback", order_id="O-1", order_amount=5_000)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["asset"] == "cashback" and data["amount"] == 300 and data["value"] == 300
    assert data["balances"]["cashback"] == _pts(700, 0, 300)
    assert data["balances"]["points"] == _pts(100, 0, 0)

    captured = _capture(client, program, "R-1", 120)
    assert captured.status_code == 200, captured.get_data(as_text=True)
    assert captured.get_json()["status"] == "captured"
    assert captured.get_json()["balances"]["cashback"] == _pts(880, 0, 0)
    capture_tx = _activity(client, program, "c-1")[0]["transaction_id"]
    assert _legs(client, program, capture_tx) == {"customer/c-1/cashback/reserved": -300,
                                                  "house/cashback/redeemed": 120,
                                                  "customer/c-1/cashback/available": 180}
    _problem(_hold(client, program, "R-2", "c-1", 881, asset="cashback"), 422, "insufficient_balance")
    verify()


# --------------------------------------------------------------------------- capture, void, extend


def test_capture_all(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, order_id="O-1")
    response = _capture(client, program, "R-1")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "captured"
    assert data["captured_amount"] == 40
    assert data["balances"]["points"] == _pts(60, 0, 0)
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 0)
    redeemed = [e for e in ledger_entries(client, program) if e["account"] == "house/points/redeemed"]
    assert [e["amount"] for e in redeemed] == [40]
    assert _get(client, program, "R-1").get_json()["status"] == "captured"
    assert verify().entries == 4 + 2 + 2


def test_partial_capture_releases_the_rest(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    response = _capture(client, program, "R-1", 25)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "captured" and data["captured_amount"] == 25
    assert data["balances"]["points"] == _pts(75, 0, 0)
    assert _balances(client, program, "c-1")["points"] == _pts(75, 0, 0)

    entries = ledger_entries(client, program)
    assert [e["amount"] for e in entries if e["account"] == "house/points/redeemed"] == [25]
    capture_tx = next(e["transaction_id"] for e in entries if e["account"] == "house/points/redeemed")
    assert _legs(client, program, capture_tx) == {"customer/c-1/points/reserved": -40,
                                                  "house/points/redeemed": 25,
                                                  "customer/c-1/points/available": 15}
    assert verify().entries == 4 + 2 + 3


def test_capture_of_zero_releases_everything(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    response = _capture(client, program, "R-1", 0)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["balances"]["points"] == _pts(100, 0, 0)
    assert not [e for e in ledger_entries(client, program) if e["account"] == "house/points/redeemed"]
    verify()


def test_void_returns_the_hold(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    response = _void(client, program, "R-1")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "voided"
    assert data["balances"]["points"] == _pts(100, 0, 0)
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    void_tx = _activity(client, program, "c-1")[0]["transaction_id"]
    assert _legs(client, program, void_tx) == {"customer/c-1/points/available": 40,
                                               "customer/c-1/points/reserved": -40}
    assert _get(client, program, "R-1").get_json()["status"] == "voided"
    assert verify().entries == 4 + 2 + 2


def test_void_without_a_body(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    response = client.post("/v1/redemptions/R-1/void", headers=program.headers("storefront"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "voided"
    verify()


def test_extend_moves_expiry_and_the_hold_survives_the_original_one(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    held = _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60).get_json()
    original = _at(held["expires_at"])
    assert original == clock.now() + timedelta(seconds=60)

    clock.advance(seconds=30)
    response = _extend(client, program, "R-1", 600)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "held"
    assert _at(data["expires_at"]) == clock.now() + timedelta(seconds=600)  # counted from now

    clock.advance(seconds=100)  # past the original expiry, inside the new one
    assert clock.now() > original
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)
    shown = _get(client, program, "R-1").get_json()
    assert shown["status"] == "held"
    assert _at(shown["expires_at"]) == original + timedelta(seconds=570)
    assert [h["event"] for h in shown["history"]] == ["held", "extended"]
    assert run_jobs(_uow(client), clock)["expired_holds"] == 0
    captured = _capture(client, program, "R-1")
    assert captured.status_code == 200, captured.get_data(as_text=True)
    assert captured.get_json()["balances"]["points"] == _pts(60, 0, 0)
    verify()


# --------------------------------------------------------------------------- expiry


def test_expired_hold_counts_as_available_at_once(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    held = _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60).get_json()
    clock.advance(seconds=59)
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)
    assert _get(client, program, "R-1").get_json()["status"] == "held"

    clock.advance(seconds=2)  # past expires_at; no job has run
    assert clock.now() > _at(held["expires_at"])
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    shown = _get(client, program, "R-1")
    assert shown.status_code == 200
    assert shown.get_json()["status"] == "expired"
    assert shown.get_json()["history"][-1]["event"] == "expired"
    assert verify().entries == 4 + 2  # nothing booked by the reads


def test_expiry_is_booked_once_by_the_jobs_and_described(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60, order_id="O-7")
    clock.advance(seconds=61)
    # the jobs also seal the program's chains (one new seal: something was booked since the last)
    assert run_jobs(_uow(client), clock) == {"releases": 0, "expired_holds": 1, "expired_points": 0,
                                             "tier_evaluations": 0, "rollups": 0, "seals": 1}
    after_first = len(ledger_entries(client, program))
    assert run_jobs(_uow(client), clock) == {"releases": 0, "expired_holds": 0, "expired_points": 0,
                                             "tier_evaluations": 0, "rollups": 0, "seals": 0}
    assert len(ledger_entries(client, program)) == after_first

    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    shown = _get(client, program, "R-1").get_json()
    assert shown["status"] == "expired"
    assert [h["event"] for h in shown["history"]] == ["held", "expired"]  # booked once, shown once
    items = _activity(client, program, "c-1")
    expiries = [item for item in items if item["type"] == "redemption_expiry"]
    assert len(expiries) == 1
    item = expiries[0]
    assert items[0]["transaction_id"] == item["transaction_id"]  # newest first
    assert item["points"] == _pts(40, 0, -40)
    assert item["cashback"] == _pts(0, 0, 0)
    assert item["reference"] == {"kind": "redemption", "id": "R-1"}
    assert item["description"].strip() and "40 points" in item["description"]
    assert verify().entries == 4 + 2 + 2


def test_jobs_cli_sweeps_expired_holds_once(client, program, enrol, buy, clock, database_url, verify):
    import json
    import subprocess
    import sys
    from pathlib import Path

    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    as_of = (clock.now() + timedelta(seconds=61)).isoformat()
    ledger_cli = str(Path(sys.executable).parent / "ledger")

    def run() -> dict:
        done = subprocess.run([ledger_cli, "--database-url", database_url, "jobs", "run", "--as-of", as_of],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert run() == {"job": "run", "releases": 0, "expired_holds": 1, "expired_points": 0, "tier_evaluations": 0,
                     "rollups": 0, "seals": 1}
    assert run() == {"job": "run", "releases": 0, "expired_holds": 0, "expired_points": 0, "tier_evaluations": 0,
                     "rollups": 0, "seals": 0}
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    assert _get(client, program, "R-1").get_json()["status"] == "expired"
    assert [i["type"] for i in _activity(client, program, "c-1")].count("redemption_expiry") == 1
    verify()


def test_a_new_write_books_lapsed_holds_first(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    clock.advance(seconds=60)  # expires_at <= now: lapsed
    response = _hold(client, program, "R-2", "c-1", 100)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["balances"]["points"] == _pts(0, 0, 100)
    assert [i["type"] for i in _activity(client, program, "c-1")][:2] == ["redemption_hold", "redemption_expiry"]
    assert run_jobs(_uow(client), clock)["expired_holds"] == 0
    verify()


def test_a_purchase_books_lapsed_holds_first(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    clock.advance(seconds=61)
    response = buy(program, "A-1", "c-1", 5_000)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["balances"]["points"] == _pts(150, 0, 0)
    assert _get(client, program, "R-1").get_json()["status"] == "expired"
    assert run_jobs(_uow(client), clock)["expired_holds"] == 0
    verify()


def test_capture_void_extend_after_expiry_are_refused(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    clock.advance(seconds=61)
    _problem(_capture(client, program, "R-1"), 409, "hold_expired")
    _problem(_void(client, program, "R-1"), 409, "hold_expired")
    _problem(_extend(client, program, "R-1", 600), 409, "hold_expired")
    run_jobs(_uow(client), clock)
    # Still refused once the expiry is booked.
    _problem(_capture(client, program, "R-1", 10), 409, "hold_expired")
    _problem(_void(client, program, "R-1"), 409, "hold_expired")
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    expiry_txs = {e["transaction_id"] for e in ledger_entries(client, program)
                  if e["account"] == "customer/c-1/points/reserved" and e["amount"] < 0}
    assert len(expiry_txs) == 1
    assert [i["type"] for i in _activity(client, program, "c-1")].count("redemption_expiry") == 1
    assert not [e for e in ledger_entries(client, program) if e["account"] == "house/points/redeemed"]
    verify()


# --------------------------------------------------------------------------- error codes


def test_insufficient_balance(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    body = _problem(_hold(client, program, "R-1", "c-1", 101), 422, "insufficient_balance")
    assert body["detail"]
    assert _hold(client, program, "R-2", "c-1", 60).status_code == 201
    _problem(_hold(client, program, "R-3", "c-1", 41), 422, "insufficient_balance")  # 40 left after the hold
    assert _hold(client, program, "R-4", "c-1", 40).status_code == 201
    assert _balances(client, program, "c-1")["points"] == _pts(0, 0, 100)
    # A refused hold claimed nothing: the id can be used once the balance allows it.
    _void(client, program, "R-2")
    assert _hold(client, program, "R-1", "c-1", 60).status_code == 201
    verify()


def test_insufficient_balance_counts_pending_as_unavailable(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)  # 200 cents cashback still pending
    _problem(_hold(client, program, "R-1", "c-1", 1, asset="cashback"), 422, "insufficient_balance")
    verify()


def test_below_min_redeem_and_off_step(client, make_program, enrol, buy, verify):
    program = make_program(min_redeem_points=50, redeem_step_points=10)
    _funded(enrol, buy, program)
    _problem(_hold(client, program, "R-1", "c-1", 40), 422, "below_min_redeem")  # below the minimum
    _problem(_hold(client, program, "R-2", "c-1", 55), 422, "below_min_redeem")  # off the step
    assert _hold(client, program, "R-3", "c-1", 50).status_code == 201
    assert _hold(client, program, "R-4", "c-1", 50).status_code == 201
    assert _balances(client, program, "c-1")["points"] == _pts(0, 0, 100)
    assert verify().entries == 2 + 2 + 2  # no cashback in this program: the purchase books 2 entries


def test_exceeds_max_redeem_share(client, make_program, enrol, buy, verify):
    program = make_program(max_redeem_share_bps=5_000, redeem_minor_units=100, redeem_points=200)
    _funded(enrol, buy, program, amount=100_000)  # 1_000 points
    # 50% of an order of 1_000 cents is 500 cents = 1_000 points at 200 points per euro.
    _problem(_hold(client, program, "R-1", "c-1", 1_002, order_id="O-1", order_amount=1_000), 422,
             "exceeds_max_redeem_share")  # 501 cents > 500
    _problem(_hold(client, program, "R-2", "c-1", 800, order_id="O-1", order_amount=1_000 - 201), 422,
             "exceeds_max_redeem_share")  # 400 cents > floor(799 * 5000 / 10000) = 399
    ok = _hold(client, program, "R-3", "c-1", 798, order_id="O-1", order_amount=799)  # 399 cents
    assert ok.status_code == 201, ok.get_data(as_text=True)
    assert ok.get_json()["value"] == 399
    # Without order_amount the share is not checked.
    assert _hold(client, program, "R-4", "c-1", 202).status_code == 201
    verify()


def test_exceeds_max_redeem_share_for_cashback(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=1_000, cashback_hold_days=0, max_redeem_share_bps=2_000)
    _funded(enrol, buy, program)  # 1_000 cents cashback
    _problem(_hold(client, program, "R-1", "c-1", 201, asset="cashback", order_amount=1_000), 422,
             "exceeds_max_redeem_share")
    assert _hold(client, program, "R-2", "c-1", 200, asset="cashback", order_amount=1_000).status_code == 201
    verify()


def test_capture_exceeds_hold(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    _problem(_capture(client, program, "R-1", 41), 422, "capture_exceeds_hold")
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)
    # The refused capture settled nothing: the hold can still be captured.
    response = _capture(client, program, "R-1", 40)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert verify().entries == 4 + 2 + 2


def test_redemption_not_found(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _problem(_capture(client, program, "nope"), 404, "redemption_not_found")
    _problem(_void(client, program, "nope"), 404, "redemption_not_found")
    _problem(_extend(client, program, "nope", 60), 404, "redemption_not_found")
    _problem(_get(client, program, "nope"), 404, "redemption_not_found")
    assert verify().entries == 4


def test_redemption_of_another_program_is_not_found(client, program, make_program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    other = make_program(name="Other")
    _problem(_capture(client, other, "R-1"), 404, "redemption_not_found")
    _problem(_get(client, other, "R-1"), 404, "redemption_not_found")
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)
    verify()


def test_void_after_capture_is_not_held(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    assert _capture(client, program, "R-1").status_code == 200
    count = len(ledger_entries(client, program))
    _problem(_void(client, program, "R-1"), 409, "redemption_not_held")
    _problem(_extend(client, program, "R-1", 600), 409, "redemption_not_held")
    # Under an Idempotency-Key the refusal is stored and replayed: still a proper problem.
    keyed = client.post("/v1/redemptions/R-1/extend", json={"ttl_seconds": 300},
                        headers=program.headers("storefront", **{"Idempotency-Key": "ext-1"}))
    _problem(keyed, 409, "redemption_not_held")
    assert len(ledger_entries(client, program)) == count
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 0)
    verify()


def test_capture_after_void_is_not_held(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    assert _void(client, program, "R-1").status_code == 200
    _problem(_capture(client, program, "R-1"), 409, "redemption_not_held")
    _problem(_capture(client, program, "R-1", 10), 409, "redemption_not_held")
    _problem(_extend(client, program, "R-1", 600), 409, "redemption_not_held")
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    assert not [e for e in ledger_entries(client, program) if e["account"] == "house/points/redeemed"]
    verify()


def test_capture_of_another_amount_after_capture_is_not_held(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    assert _capture(client, program, "R-1", 30).status_code == 200
    _problem(_capture(client, program, "R-1", 20), 409, "redemption_not_held")
    _problem(_capture(client, program, "R-1"), 409, "redemption_not_held")  # "all of it" is another body
    assert [e["amount"] for e in ledger_entries(client, program) if e["account"] == "house/points/redeemed"] == [30]
    assert _balances(client, program, "c-1")["points"] == _pts(70, 0, 0)
    verify()


def test_duplicate_redemption(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    first = _hold(client, program, "R-1", "c-1", 40)
    assert first.status_code == 201
    _problem(_hold(client, program, "R-1", "c-1", 41), 409, "duplicate_redemption")
    _problem(_hold(client, program, "R-1", "c-1", 40, asset="cashback"), 409, "duplicate_redemption")
    again = _hold(client, program, "R-1", "c-1", 40)
    assert again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 40)
    assert verify().entries == 4 + 2


def test_hold_for_an_unknown_customer(client, program, verify):
    _problem(_hold(client, program, "R-1", "ghost", 10), 404, "customer_not_found")
    _problem(_quote(client, program, "ghost", 1_000), 404, "customer_not_found")
    assert verify().entries == 0


def test_redemption_roles(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    for role in ("admin", "app", "finance"):
        response = client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1",
                                                        "asset": "points", "amount": 1},
                               headers=program.headers(role))
        _problem(response, 403, "forbidden")
    _hold(client, program, "R-1", "c-1", 1)
    for role in ("admin", "storefront", "app", "finance"):
        assert client.get("/v1/redemptions/R-1", headers=program.headers(role)).status_code == 200
    _problem(client.post("/v1/redemptions/R-1/capture", json={}, headers=program.headers("app")), 403, "forbidden")
    verify()


# --------------------------------------------------------------------------- replays


def _replayed(first: Any, again: Any) -> None:
    assert again.status_code == first.status_code
    assert again.data == first.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers


def test_capture_replays(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    first = _capture(client, program, "R-1", 25)
    assert first.status_code == 200
    count = len(ledger_entries(client, program))
    clock.advance(seconds=5)
    _replayed(first, _capture(client, program, "R-1", 25))
    _replayed(first, _capture(client, program, "R-1", 25))
    assert len(ledger_entries(client, program)) == count
    assert _balances(client, program, "c-1")["points"] == _pts(75, 0, 0)
    verify()


def test_capture_replays_even_after_the_hold_would_have_expired(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    first = _capture(client, program, "R-1")
    clock.advance(seconds=120)
    _replayed(first, _capture(client, program, "R-1"))
    assert run_jobs(_uow(client), clock)["expired_holds"] == 0
    assert _balances(client, program, "c-1")["points"] == _pts(60, 0, 0)
    verify()


def test_void_replays(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40)
    first = _void(client, program, "R-1")
    assert first.status_code == 200
    count = len(ledger_entries(client, program))
    _replayed(first, _void(client, program, "R-1"))
    assert len(ledger_entries(client, program)) == count
    assert _balances(client, program, "c-1")["points"] == _pts(100, 0, 0)
    verify()


def test_extend_replays(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    first = _extend(client, program, "R-1", 600)
    assert first.status_code == 200
    expires_at = first.get_json()["expires_at"]
    count = len(ledger_entries(client, program))
    clock.advance(seconds=10)
    _replayed(first, _extend(client, program, "R-1", 600))
    shown = _get(client, program, "R-1").get_json()
    assert shown["expires_at"] == expires_at  # the replay moved nothing
    assert [h["event"] for h in shown["history"]] == ["held", "extended"]
    assert len(ledger_entries(client, program)) == count
    # Another ttl is a new extension, counted from now.
    second = _extend(client, program, "R-1", 300)
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    assert _at(second.get_json()["expires_at"]) == clock.now() + timedelta(seconds=300)
    verify()


# --------------------------------------------------------------------------- quote


def test_quote_points_bounded_by_available(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)  # 100 points
    response = _quote(client, program, "c-1", 50_000)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["points"] == {"max": 100, "min": 0, "step": 1, "value": 100}
    _hold(client, program, "R-1", "c-1", 40)
    assert _quote(client, program, "c-1", 50_000).get_json()["points"]["max"] == 60  # reserved is not available
    verify()


def test_quote_counts_lapsed_holds_as_available(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=60)
    clock.advance(seconds=61)
    assert _quote(client, program, "c-1", 50_000).get_json()["points"]["max"] == 100
    verify()


def test_quote_points_bounded_by_share_and_step(client, make_program, enrol, buy, verify):
    program = make_program(redeem_minor_units=100, redeem_points=200, redeem_step_points=50, min_redeem_points=100,
                           max_redeem_share_bps=5_000)
    _funded(enrol, buy, program, amount=100_000)  # 1_000 points, worth 500 cents
    # Share: floor(999 * 5000 / 10000) = 499 cents = 998 points; down to the step of 50 -> 950 points = 475 cents.
    data = _quote(client, program, "c-1", 999).get_json()
    assert data["points"] == {"max": 950, "min": 100, "step": 50, "value": 475}
    # Bounded by the balance: 1_000 points is less than the 2_000 the share would allow.
    assert _quote(client, program, "c-1", 2_001).get_json()["points"] == {"max": 1_000, "min": 100, "step": 50,
                                                                         "value": 500}
    # Share allows 100 points: exactly the minimum.
    assert _quote(client, program, "c-1", 100).get_json()["points"]["max"] == 100
    # Share allows 90 -> 50 after the step, below the minimum of 100 -> 0.
    data = _quote(client, program, "c-1", 90).get_json()
    assert data["points"]["max"] == 0 and data["points"]["value"] == 0
    # The quoted maximum is accepted by a hold carrying the same order amount.
    quoted = _quote(client, program, "c-1", 999).get_json()["points"]["max"]
    ok = _hold(client, program, "R-1", "c-1", quoted, order_amount=999)
    assert ok.status_code == 201, ok.get_data(as_text=True)
    verify()


def test_quote_points_zero_when_balance_below_minimum(client, make_program, enrol, buy, verify):
    program = make_program(min_redeem_points=100)
    _funded(enrol, buy, program, amount=6_000)  # 60 points
    data = _quote(client, program, "c-1", 50_000).get_json()
    assert data["points"]["max"] == 0 and data["points"]["min"] == 100
    verify()


def test_quote_points_zero_for_a_negative_balance(client, make_program, enrol, buy, verify):
    program = make_program()
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 100)
    _capture(client, program, "R-1")
    refund = client.post("/v1/purchases/A-0/refunds", json={"refund_id": "F-1"}, headers=program.headers("storefront"))
    assert refund.status_code == 201, refund.get_data(as_text=True)
    assert _balances(client, program, "c-1")["points"]["available"] == -100
    data = _quote(client, program, "c-1", 50_000).get_json()
    assert data["points"]["max"] == 0 and data["points"]["value"] == 0
    verify()


def test_quote_cashback_max(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=1_000, cashback_hold_days=0, max_redeem_share_bps=5_000)
    _funded(enrol, buy, program)  # 1_000 cents cashback available
    assert _quote(client, program, "c-1", 1_000).get_json()["cashback"] == {"max": 500}  # the share
    assert _quote(client, program, "c-1", 10_000).get_json()["cashback"] == {"max": 1_000}  # the balance
    _hold(client, program, "R-1", "c-1", 300, asset="cashback")
    assert _quote(client, program, "c-1", 10_000).get_json()["cashback"] == {"max": 700}
    verify()


def test_quote_earn_preview_and_writes_nothing(client, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200, points_hold_days=14)
    _funded(enrol, buy, program)
    before_entries = ledger_entries(client, program)
    before_balances = _balances(client, program, "c-1")
    before_activity = _activity(client, program, "c-1")

    response = _quote(client, program, "c-1", 12_345)
    assert response.status_code == 200, response.get_data(as_text=True)
    preview = response.get_json()["earn_preview"]
    assert preview["points"] == 123  # floor(12345 / 100)
    assert preview["cashback"] == 246  # floor(12345 * 200 / 10000)
    assert _at(preview["pending_until"]["points"]) == clock.now() + timedelta(days=14)
    assert _at(preview["pending_until"]["cashback"]) == clock.now() + timedelta(days=30)

    assert ledger_entries(client, program) == before_entries
    assert _balances(client, program, "c-1") == before_balances
    assert _activity(client, program, "c-1") == before_activity
    assert verify().entries == len(before_entries)


def test_quote_earn_preview_without_pending(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    preview = _quote(client, program, "c-1", 10_000).get_json()["earn_preview"]
    assert preview["points"] == 100 and preview["cashback"] == 200
    assert preview["pending_until"]["points"] is None  # points are available at once
    assert preview["pending_until"]["cashback"] is not None
    verify()


def test_quote_with_lines_that_do_not_reconcile(client, program, enrol, buy, verify):
    _funded(enrol, buy, program)
    lines = [{"sku": "A", "quantity": 2, "unit_price": 1_000}]
    ok = _quote(client, program, "c-1", 2_500, lines=lines, tax=300, shipping=200)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    _problem(_quote(client, program, "c-1", 2_600, lines=lines, tax=300, shipping=200), 422, "lines_mismatch")
    verify()


# --------------------------------------------------------------------------- activity feed


def test_activity_describes_hold_capture_void_and_expiry(client, program, enrol, buy, clock, verify):
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 40, order_id="O-1")
    hold_item = _activity(client, program, "c-1")[0]
    assert hold_item["type"] == "redemption_hold"
    assert hold_item["points"] == _pts(-40, 0, 40)
    assert hold_item["cashback"] == _pts(0, 0, 0)
    assert hold_item["reference"] == {"kind": "redemption", "id": "R-1"}
    assert "40 points" in hold_item["description"]

    _capture(client, program, "R-1", 25)
    capture_item = _activity(client, program, "c-1")[0]
    assert capture_item["type"] == "redemption_capture"
    assert capture_item["points"] == _pts(15, 0, -40)
    assert "25 points" in capture_item["description"]
    assert "15 points" in capture_item["description"]  # what went back

    _hold(client, program, "R-2", "c-1", 30)
    _void(client, program, "R-2")
    void_item = _activity(client, program, "c-1")[0]
    assert void_item["type"] == "redemption_void"
    assert void_item["points"] == _pts(30, 0, -30)
    assert "30 points" in void_item["description"]

    _hold(client, program, "R-3", "c-1", 20, ttl_seconds=60)
    clock.advance(seconds=61)
    run_jobs(_uow(client), clock)
    expiry_item = _activity(client, program, "c-1")[0]
    assert expiry_item["type"] == "redemption_expiry"
    assert expiry_item["points"] == _pts(20, 0, -20)
    assert "20 points" in expiry_item["description"]

    descriptions = [hold_item["description"], capture_item["description"], void_item["description"],
                    expiry_item["description"]]
    assert all(d.strip() for d in descriptions)
    assert len(set(descriptions)) == 4  # each says what happened, not a generic label
    verify()


def test_activity_describes_cashback_holds_in_money(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=1_000, cashback_hold_days=0)
    _funded(enrol, buy, program)
    _hold(client, program, "R-1", "c-1", 250, asset="cashback")
    item = _activity(client, program, "c-1")[0]
    assert item["cashback"] == _pts(-250, 0, 250)
    assert item["points"] == _pts(0, 0, 0)
    assert "2.50 EUR" in item["description"]
    verify()
