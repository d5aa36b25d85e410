"""Budgets and caps under concurrent checkouts (PostgreSQL, real parallel connections).

A campaign budget is shared by every customer and a rule's cap by one customer's purchases: many
purchases at the same moment must never give more than either allows, and every purchase lands.
"""
from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration.test_concurrency import run_together

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
pg_only = pytest.mark.skipif(BACKEND != "postgresql", reason="needs real parallel connections: run with "
                             "LEDGER_TEST_BACKEND=postgresql (SQLite serialises writers)")
N = 12


def _buy(app: Any, program: Any, order_id: str, customer_id: str, amount: int) -> tuple[int, dict]:
    response = app.test_client().post("/v1/purchases", headers=program.headers("storefront"), json={
        "order_id": order_id, "customer_id": customer_id, "amount": amount, "currency": "EUR"})
    return response.status_code, response.get_json()


@pg_only
def test_concurrent_purchases_never_overspend_a_campaign_budget(app, client, program, enrol, verify):
    admin = program.headers("admin")
    assert client.put("/v1/campaigns/launch", headers=admin, json={
        "name": "Launch bonus", "kind": "window", "bonus_points": 30, "budget_points": 100,
        "starts_on": "2026-11-01", "ends_on": "2026-12-31"}).status_code == 200
    for i in range(N):
        enrol(program, f"c-{i}")
    results = run_together(N, lambda i: _buy(app, program, f"O-{i}", f"c-{i}", 1_000))
    assert [status for status, _ in results] == [201] * N
    # Each purchase earns 10 base points; the budget of 100 pays 30 + 30 + 30 + 10 and then nothing.
    bonuses = sorted(body["points_earned"] - 10 for _, body in results)
    assert sum(bonuses) == 100
    assert bonuses == [0] * (N - 4) + [10, 30, 30, 30]
    campaign = client.get("/v1/campaigns/launch", headers=admin).get_json()
    assert (campaign["budget_used_points"], campaign["budget_left_points"]) == (100, 0)
    verify()


@pg_only
def test_concurrent_purchases_of_one_customer_never_exceed_a_rule_cap(app, client, program, enrol, verify):
    assert client.put("/v1/rules/triple", headers=program.headers("admin"), json={
        "name": "Triple points, at most 50 extra a month", "kind": "multiplier", "multiplier_bps": 30_000,
        "cap_points": 50, "cap_period": "month"}).status_code == 200
    enrol(program, "c-1")
    results = run_together(N, lambda i: _buy(app, program, f"O-{i}", "c-1", 1_000))
    assert [status for status, _ in results] == [201] * N
    # 10 base points each; the rule wants 20 more per purchase but has 50 a month: 20 + 20 + 10.
    extras = sorted(body["points_earned"] - 10 for _, body in results)
    assert extras == [0] * (N - 3) + [10, 20, 20]
    verify()
