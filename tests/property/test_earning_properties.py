"""Issue 4: for random purchase lines, program settings and rule sets (rules, campaigns, tiers),
`POST /v1/purchases/simulate` answers exactly what `POST /v1/purchases` then records, the trace adds
up to the total earned, and a full refund reverses exactly what was earned. Through the HTTP API,
one fresh program per example, on whichever backend the suite runs on."""
from __future__ import annotations

from itertools import count
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import OPERATOR_TOKEN

SKUS = ["A", "B", "C"]
CATEGORIES = [None, "shoes", "food", "gift_card"]

lines_strategy = st.lists(st.fixed_dictionaries({
    "sku": st.sampled_from(SKUS), "quantity": st.integers(1, 4), "unit_price": st.integers(1, 20_000),
    "category": st.sampled_from(CATEGORIES), "discount": st.just(0)}), min_size=1, max_size=5)

conditions = st.fixed_dictionaries({}, optional={
    "categories": st.sampled_from([["shoes"], ["food"], ["shoes", "food"]]),
    "skus": st.sampled_from([["A"], ["B", "C"]]),
    "channels": st.sampled_from([["web"], ["app", "store"]]),
    "min_spend": st.sampled_from([0, 500, 5_000, 50_000])})

rule_strategy = st.one_of(
    st.fixed_dictionaries({"name": st.just("Multiplier"), "kind": st.just("multiplier"),
                           "multiplier_bps": st.integers(0, 40_000), "conditions": conditions},
                          optional={"cap_points": st.integers(1, 300)}),
    st.fixed_dictionaries({"name": st.just("Bonus"), "kind": st.just("bonus"), "bonus_points": st.integers(1, 500),
                           "conditions": conditions}, optional={"cap_points": st.integers(1, 300)}),
).map(lambda r: {**r, "cap_period": "month"} if "cap_points" in r else r)

campaign_strategy = st.fixed_dictionaries({
    "name": st.just("Campaign"), "kind": st.just("window"), "multiplier_bps": st.integers(10_001, 30_000),
    "starts_on": st.just("2026-11-01"), "ends_on": st.just("2026-12-31"), "conditions": conditions,
}, optional={"bonus_points": st.integers(1, 200), "budget_points": st.integers(1, 400)})

settings_strategy = st.fixed_dictionaries({
    "points_per_unit": st.integers(0, 5), "unit_amount": st.sampled_from([1, 100, 250]),
    "cashback_rate_bps": st.integers(0, 500), "earn_on_tax": st.booleans(), "earn_on_shipping": st.booleans(),
    "excluded_categories": st.sampled_from([[], ["gift_card"]]), "points_hold_days": st.sampled_from([0, 14])})

_ids = count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(program_settings=settings_strategy, rules=st.lists(rule_strategy, max_size=3),
       campaigns=st.lists(campaign_strategy, max_size=2), with_tiers=st.booleans(),
       purchases=st.lists(st.tuples(lines_strategy, st.integers(0, 2_000), st.integers(0, 1_500),
                                    st.sampled_from([None, "web", "app", "store"])), min_size=1, max_size=3))
def test_simulation_equals_the_recorded_purchase_and_the_trace_adds_up(client, verify, program_settings, rules,
                                                                     campaigns, with_tiers, purchases):
    created = client.post("/v1/programs", json={"name": "Prop shop", "currency": "EUR", **program_settings},
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert created.status_code == 201, created.get_data(as_text=True)
    keys = created.get_json()["api_keys"]
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    storefront = {"Authorization": f"Bearer {keys['storefront']}"}
    for index, rule in enumerate(rules):
        response = client.put(f"/v1/rules/r{index}", json=rule, headers=admin)
        assert response.status_code == 200, response.get_data(as_text=True)
    for index, campaign in enumerate(campaigns):
        response = client.put(f"/v1/campaigns/c{index}", json=campaign, headers=admin)
        assert response.status_code == 200, response.get_data(as_text=True)
    if with_tiers:
        response = client.put("/v1/tiers", json={"tiers": [
            {"id": "member", "name": "Member", "threshold": 0},
            {"id": "silver", "name": "Silver", "threshold": 20_000, "earn_multiplier_bps": 15_000,
             "cashback_bonus_bps": 100}]}, headers=admin)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert client.put("/v1/customers/c-1", json={}, headers=storefront).status_code == 201

    for lines, tax, shipping, channel in purchases:
        order_id = f"O-{next(_ids)}"
        body: dict[str, Any] = {"order_id": order_id, "customer_id": "c-1", "currency": "EUR", "lines": lines,
                                "tax": tax, "shipping": shipping,
                                "amount": sum(l["quantity"] * l["unit_price"] for l in lines) + tax + shipping}
        if channel:
            body["channel"] = channel
        simulated = client.post("/v1/purchases/simulate", json=body, headers=storefront)
        assert simulated.status_code == 200, simulated.get_data(as_text=True)
        simulation = simulated.get_json()
        trace = simulation["trace"]
        assert (sum(line["points"] for line in trace["lines"]) + sum(b["points"] for b in trace["bonuses"])
                == simulation["points_earned"] == trace["points"])
        assert sum(line["cashback"] for line in trace["lines"]) == simulation["cashback_earned"] == trace["cashback"]

        recorded = client.post("/v1/purchases", json=body, headers=storefront)
        assert recorded.status_code == 201, recorded.get_data(as_text=True)
        purchase = recorded.get_json()
        same = ("points_earned", "cashback_earned", "points_status", "cashback_status", "points_available_at",
                "cashback_available_at", "occurred_at", "config_version", "balances")
        assert {k: simulation[k] for k in same} == {k: purchase[k] for k in same}
        detail = client.get(f"/v1/purchases/{order_id}", headers=storefront).get_json()
        assert detail["trace"] == trace

    # A full refund of the last purchase reverses exactly what it earned, rules and all.
    refund = client.post(f"/v1/purchases/{order_id}/refunds", json={"refund_id": f"F-{order_id}"}, headers=storefront)
    assert refund.status_code == 201, refund.get_data(as_text=True)
    assert (refund.get_json()["points_reversed"], refund.get_json()["cashback_reversed"]) == \
        (purchase["points_earned"], purchase["cashback_earned"])
    verify()
