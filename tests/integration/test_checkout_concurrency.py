"""Checkout under real concurrency (issue 3, "Done when"): no double spend, one winner between a
capture and a void, and job runs in parallel that book each release and each expiry exactly once.

PostgreSQL only: each thread uses its own `app.test_client()`, so each request gets its own
connection from the app's pool, and a barrier releases the threads together. (SQLite serialises
every writer with BEGIN IMMEDIATE, so there is no parallelism to test there.)
"""
from __future__ import annotations
from tests.helpers import all_entries

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from ledger.services.releases import run_jobs

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
BARRIER_TIMEOUT = 20
REQUEST_TIMEOUT = 30

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="needs real parallel connections and row locks: run with LEDGER_TEST_BACKEND=postgresql "
           "(SQLite serialises writers, so these races cannot happen there)")


def run_together(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run `call(i)` for i in range(n) in n threads released at the same moment; results in order."""
    barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

    def task(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(task, i) for i in range(n)]
        return [f.result(timeout=BARRIER_TIMEOUT + REQUEST_TIMEOUT * 2) for f in futures]


def _post(app: Any, program: Any, path: str, body: dict) -> tuple[int, dict]:
    client = app.test_client()  # one client per thread
    response = client.post(path, json=body, headers=program.headers("storefront"))
    return response.status_code, json.loads(response.get_data())


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    response = client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _activity_types(client: Any, program: Any, customer_id: str) -> list[str]:
    response = client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["next_cursor"] is None
    return [item["type"] for item in response.get_json()["items"]]


def test_thirty_concurrent_holds_on_seventy_points_exactly_seven_succeed(app, client, program, enrol, buy, verify):
    enrol(program, "c-1")
    assert buy(program, "A-1", "c-1", 7_000).status_code == 201  # 70 points
    n = 30

    results = run_together(n, lambda i: _post(app, program, "/v1/redemptions", {
        "redemption_id": f"R-{i}", "customer_id": "c-1", "asset": "points", "amount": 10}))

    statuses = [status for status, _ in results]
    assert statuses.count(201) == 7, results
    assert statuses.count(422) == 23, results
    assert {body["code"] for status, body in results if status == 422} == {"insufficient_balance"}
    answers = [body for status, body in results if status == 201]
    # Each success saw a serial history: 60, 50, ..., 0 available, never below zero.
    seen = sorted(a["balances"]["points"]["available"] for a in answers)
    assert seen == [0, 10, 20, 30, 40, 50, 60]
    assert all(a["balances"]["points"]["available"] + a["balances"]["points"]["reserved"] == 70 for a in answers)

    assert _balances(client, program, "c-1")["points"] == {"available": 0, "pending": 0, "reserved": 70}
    available_entries = [e for e in all_entries(client, program) if e["account"] == "customer/c-1/points/available"]
    assert len(available_entries) == 1 + 7
    assert all(e["balance_after"] >= 0 for e in available_entries)
    for status, body in results:
        if status == 201:
            shown = client.get(f"/v1/redemptions/{body['redemption_id']}", headers=program.headers("app"))
            assert shown.get_json()["status"] == "held"
    assert verify().entries == 4 + 7 * 2


def test_capture_racing_void_exactly_one_wins(app, client, program, enrol, buy, verify):
    enrol(program, "c-1")
    assert buy(program, "A-1", "c-1", 100_000).status_code == 201  # 1_000 points
    rounds, captured = 10, 0
    for k in range(rounds):
        rid = f"R-{k}"
        status, body = _post(app, program, "/v1/redemptions", {
            "redemption_id": rid, "customer_id": "c-1", "asset": "points", "amount": 10})
        assert status == 201, body
        paths = [f"/v1/redemptions/{rid}/capture", f"/v1/redemptions/{rid}/void"]

        results = run_together(2, lambda i: _post(app, program, paths[i], {}))

        assert sorted(status for status, _ in results) == [200, 409], results
        loser = next(body for status, body in results if status == 409)
        assert loser["code"] == "redemption_not_held", loser
        winner = next(body for status, body in results if status == 200)
        assert winner["status"] in ("captured", "voided")
        captured += winner["status"] == "captured"
        shown = client.get(f"/v1/redemptions/{rid}", headers=program.headers("app")).get_json()
        assert shown["status"] == winner["status"]
        assert _balances(client, program, "c-1")["points"] == {
            "available": 1_000 - 10 * captured, "pending": 0, "reserved": 0}

    redeemed = [e["amount"] for e in all_entries(client, program) if e["account"] == "house/points/redeemed"]
    assert redeemed == [10] * captured
    # One hold and one settlement per round: nothing settled twice.
    assert verify().entries == 4 + rounds * 2 + rounds * 2


def test_concurrent_job_runs_book_each_release_and_expiry_once(app, client, program, enrol, buy, clock, verify):
    n_customers = 20
    with_hold = [i for i in range(n_customers) if i % 2 == 0]
    for i in range(n_customers):
        enrol(program, f"c-{i}")
        assert buy(program, f"A-{i}", f"c-{i}", 10_000 + i).status_code == 201  # 100 points, 200+ cents pending
    for i in with_hold:
        status, body = _post(app, program, "/v1/redemptions", {
            "redemption_id": f"R-{i}", "customer_id": f"c-{i}", "asset": "points", "amount": 10,
            "ttl_seconds": 600})
        assert status == 201, body
    clock.advance(days=31)  # past the 30-day cashback hold and every hold's expiry
    uow = app.extensions["ledger"].uow

    results = run_together(2, lambda i: run_jobs(uow, clock, is_retryable=uow.is_retryable))

    assert sum(r["releases"] for r in results) == n_customers, results
    assert sum(r["expired_holds"] for r in results) == len(with_hold), results
    assert run_jobs(uow, clock) == {"releases": 0, "expired_holds": 0, "expired_points": 0, "tier_evaluations": 0,
                                    "rollups": 0, "seals": 0}

    for i in range(n_customers):
        types = _activity_types(client, program, f"c-{i}")
        assert types.count("release") == 1, (i, types)
        assert types.count("redemption_expiry") == (1 if i in with_hold else 0), (i, types)
        balances = _balances(client, program, f"c-{i}")
        assert balances["cashback"] == {"available": (10_000 + i) * 200 // 10_000, "pending": 0, "reserved": 0}
        assert balances["points"] == {"available": 100, "pending": 0, "reserved": 0}
    for i in with_hold:
        shown = client.get(f"/v1/redemptions/R-{i}", headers=program.headers("app")).get_json()
        assert shown["status"] == "expired"
        assert [h["event"] for h in shown["history"]] == ["held", "expired"]

    entries = all_entries(client, program)
    released = [e for e in entries if e["account"].endswith("/cashback/pending") and e["amount"] < 0]
    assert len(released) == n_customers
    assert len({e["transaction_id"] for e in released}) == n_customers
    report = verify()
    assert report.entries == n_customers * 4 + len(with_hold) * 2 + n_customers * 2 + len(with_hold) * 2
