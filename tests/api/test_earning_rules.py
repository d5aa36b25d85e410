"""Earning rules "explainable to the cent": the earning base (tax, shipping, excluded categories and
SKUs, the part paid with rewards), rules (multipliers per category and SKU, fixed bonuses, minimum
spend, channel, caps per customer and local period), additive stacking, largest-remainder rounding,
the trace, simulate, configuration versions and their audit trail, refunds under the version a
purchase used, and validation of rule bodies.

Default program (conftest `program`): EUR, 1 point per euro (unit_amount 100), 2% cashback held 30
days, points available at once. Every expected number below is worked out by hand in a comment.
Every test that writes ends with `verify()`: the ledger balances and sums to zero per asset.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.helpers import assert_problem, row_counts

# --------------------------------------------------------------------------- helpers


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _line(sku: str, unit_price: int, quantity: int = 1, category: str | None = None, discount: int = 0) -> dict:
    line: dict[str, Any] = {"sku": sku, "quantity": quantity, "unit_price": unit_price, "discount": discount}
    if category is not None:
        line["category"] = category
    return line


def _body(order_id: str, customer_id: str, lines: list[dict], tax: int = 0, shipping: int = 0, **extra: Any) -> dict:
    amount = sum(l["quantity"] * l["unit_price"] - l["discount"] for l in lines) + tax + shipping
    return {"order_id": order_id, "customer_id": customer_id, "amount": amount, "currency": "EUR",
            "lines": lines, "tax": tax, "shipping": shipping, **extra}


def _buy(client: Any, program: Any, body: dict) -> dict:
    return _ok(client.post("/v1/purchases", json=body, headers=program.headers("storefront")))


def _simulate(client: Any, program: Any, body: dict) -> dict:
    return _ok(client.post("/v1/purchases/simulate", json=body, headers=program.headers("storefront")), 200)


def _detail(client: Any, program: Any, order_id: str) -> dict:
    return _ok(client.get(f"/v1/purchases/{order_id}", headers=program.headers("app")), 200)


def _put_rule(client: Any, program: Any, rule_id: str, body: dict, role: str = "admin") -> Any:
    return client.put(f"/v1/rules/{rule_id}", json=body, headers=program.headers(role))


def _rule(client: Any, program: Any, rule_id: str, **body: Any) -> dict:
    return _ok(_put_rule(client, program, rule_id, body), 200)


def _version(client: Any, program: Any) -> int:
    return _ok(client.get("/v1/rules", headers=program.headers("app")), 200)["config_version"]


def _changes(client: Any, program: Any, role: str = "admin") -> list[dict]:
    return _ok(client.get("/v1/program/changes", headers=program.headers(role)), 200)["items"]


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None,
            lines: list[dict] | None = None) -> dict:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    if lines is not None:
        body["lines"] = lines
    return _ok(client.post(f"/v1/purchases/{order_id}/refunds", json=body, headers=program.headers("storefront")))


def _hold_and_capture(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int,
                      order_id: str, order_amount: int, asset: str = "points") -> None:
    body = {"redemption_id": redemption_id, "customer_id": customer_id, "asset": asset, "amount": amount,
            "order_id": order_id, "order_amount": order_amount}
    _ok(client.post("/v1/redemptions", json=body, headers=program.headers("storefront")))
    _ok(client.post(f"/v1/redemptions/{redemption_id}/capture", json={}, headers=program.headers("storefront")), 200)


def _points(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")), 200)["points"]


def _trace_lines(trace: dict) -> dict[str, dict]:
    return {line["line"]: line for line in trace["lines"]}


def _assert_adds_up(data: dict) -> None:
    """The lines' points plus the bonuses are the points earned; the trace agrees with the answer."""
    trace = data["trace"]
    line_points = sum(line["points"] for line in trace["lines"])
    assert line_points == trace["rounding"]["line_points"]
    assert line_points + sum(b["points"] for b in trace["bonuses"]) == trace["points"] == data["points_earned"]
    assert sum(line["cashback"] for line in trace["lines"]) == trace["cashback"] == data["cashback_earned"]


# --------------------------------------------------------------------------- the earning base


def test_tax_and_shipping_earn_by_default_and_can_be_switched_off(client, program, enrol, verify):
    enrol(program, "c-1")
    lines = [_line("SHOE-1", 8_500, category="shoes")]
    # 85.00 goods + 10.00 tax + 5.00 shipping = 100.00 -> 85 + 10 + 5 = 100 points; 2% of 10_000 = 200 cashback.
    first = _simulate(client, program, _body("A-1", "c-1", lines, tax=1_000, shipping=500))
    assert (first["points_earned"], first["cashback_earned"]) == (100, 200)
    by_line = _trace_lines(first["trace"])
    assert (by_line["0"]["points"], by_line["tax"]["points"], by_line["shipping"]["points"]) == (85, 10, 5)
    assert by_line["tax"]["counted"] and by_line["tax"]["excluded_because"] is None
    assert first["trace"]["base"]["tax_counted"] and first["trace"]["base"]["shipping_counted"]
    assert _buy(client, program, _body("A-1", "c-1", lines, tax=1_000, shipping=500))["points_earned"] == 100

    patched = _ok(client.patch("/v1/program", json={"earn_on_tax": False, "earn_on_shipping": False},
                               headers=program.headers("admin")), 200)
    assert (patched["earn_on_tax"], patched["earn_on_shipping"]) == (False, False)
    # Only the 85.00 of goods earns now: 85 points, 2% of 8_500 = 170 cashback.
    second = _simulate(client, program, _body("A-2", "c-1", lines, tax=1_000, shipping=500))
    assert (second["points_earned"], second["cashback_earned"]) == (85, 170)
    by_line = _trace_lines(second["trace"])
    assert by_line["tax"]["counted"] is False and by_line["tax"]["points"] == 0
    assert by_line["tax"]["excluded_because"] == "tax does not earn in this program"
    assert by_line["shipping"]["counted"] is False and by_line["shipping"]["points"] == 0
    assert by_line["shipping"]["excluded_because"] == "shipping does not earn in this program"
    assert (by_line["tax"]["net"], by_line["shipping"]["net"]) == (1_000, 500)  # still shown, just not counted
    assert second["trace"]["base"]["tax_counted"] is False
    recorded = _buy(client, program, _body("A-2", "c-1", lines, tax=1_000, shipping=500))
    assert (recorded["points_earned"], recorded["cashback_earned"]) == (85, 170)
    assert _detail(client, program, "A-1")["points_earned"] == 100  # the earlier purchase is untouched
    assert _points(client, program, "c-1")["available"] == 100 + 85
    verify()


def test_excluded_categories_and_skus_earn_nothing_and_the_trace_says_why(client, make_program, enrol, verify):
    program = make_program(cashback_rate_bps=200, excluded_categories=["gift_card"], excluded_skus=["TOBACCO-1"])
    enrol(program, "c-1")
    # A rule on gift cards cannot make an excluded line earn: it matches no counted line.
    _rule(client, program, "gift-x3", name="Gift cards x3", kind="multiplier", multiplier_bps=30_000,
          conditions={"categories": ["gift_card"]})
    lines = [_line("GC-50", 5_000, category="gift_card"), _line("TOBACCO-1", 2_000, category="shop"),
             _line("BOOK-1", 1_500, quantity=2, category="books")]
    data = _buy(client, program, _body("A-1", "c-1", lines))
    # Only the books earn: 2 * 15.00 = 30.00 -> 30 points, 2% of 3_000 = 60 cashback.
    assert (data["amount"], data["points_earned"], data["cashback_earned"]) == (10_000, 30, 60)
    gift, tobacco, books = data_lines = _detail(client, program, "A-1")["trace"]["lines"]
    assert [line["line"] for line in data_lines] == ["0", "1", "2"]
    assert (gift["counted"], gift["excluded_because"], gift["base"], gift["points"]) == \
        (False, "category gift_card does not earn", "0", 0)
    assert (tobacco["counted"], tobacco["excluded_because"], tobacco["points"]) == \
        (False, "sku TOBACCO-1 does not earn", 0)
    assert gift["multipliers"] == [] and gift["cashback"] == 0 and tobacco["cashback"] == 0
    assert (books["counted"], books["excluded_because"], books["net"], books["points"]) == (True, None, 3_000, 30)
    verify()


def test_the_part_paid_with_rewards_does_not_earn(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    assert _ok(buy(program, "A-0", "c-1", 300_000))["points_earned"] == 3_000
    # 2_000 points (worth 20.00 at 1 point = 1 cent) pay for part of order A-1 of 100.00.
    _hold_and_capture(client, program, "R-1", "c-1", 2_000, order_id="A-1", order_amount=10_000)
    body = _body("A-1", "c-1", [_line("SHOE-1", 6_000, category="shoes"), _line("HAT-1", 4_000, category="hats")])
    simulated = _simulate(client, program, body)
    data = _buy(client, program, body)
    # Earning share (10_000 - 2_000) / 10_000 = 4/5: shoe 60 * 4/5 = 48, hat 40 * 4/5 = 32 -> 80 points;
    # cashback 2% of 8_000 = 160.
    assert (data["points_earned"], data["cashback_earned"]) == (80, 160)
    assert (simulated["points_earned"], simulated["cashback_earned"]) == (80, 160)
    trace = _detail(client, program, "A-1")["trace"]
    assert (trace["base"]["paid_with_rewards"], trace["base"]["earning_share"]) == (2_000, "4/5")
    assert [(line["base"], line["points"]) for line in trace["lines"]] == [("4800", 48), ("3200", 32)]
    _assert_adds_up({**data, "trace": trace})
    assert _points(client, program, "c-1")["available"] == 3_000 - 2_000 + 80
    # Refunding the order takes back exactly the 80 points and gives back the 2_000 that paid.
    refund = _refund(client, program, "A-1", "F-1")
    assert (refund["points_reversed"], refund["points_restored"], refund["cashback_reversed"]) == (80, 2_000, 160)
    assert _points(client, program, "c-1")["available"] == 3_000
    verify()


# --------------------------------------------------------------------------- rules


def test_category_and_sku_multipliers_stack_additively_and_deterministically(client, program, enrol, verify):
    enrol(program, "c-1")
    _rule(client, program, "shoes-x2", name="Shoes x2", kind="multiplier", multiplier_bps=20_000,
          conditions={"categories": ["shoes"]})
    _rule(client, program, "sku-x1.5", name="SHOE-1 x1.5", kind="multiplier", multiplier_bps=15_000,
          conditions={"skus": ["SHOE-1"]})
    lines = [_line("SHOE-1", 10_000, category="shoes"), _line("SHOE-2", 10_000, category="shoes"),
             _line("HAT-1", 5_000, category="hats")]
    body = _body("A-1", "c-1", lines)
    before = _simulate(client, program, body)
    # SHOE-1: 100 + 100 (x2 adds 1.0) + 50 (x1.5 adds 0.5) = 250, i.e. x2.5 not x3;
    # SHOE-2: 100 + 100 = 200; HAT-1: 50. Total 500. Cashback ignores rules: 2% of 25_000 = 500.
    assert (before["points_earned"], before["cashback_earned"], before["config_version"]) == (500, 500, 2)
    shoe1, shoe2, hat = before["trace"]["lines"]
    assert [(m["id"], m["multiplier_bps"], m["points"]) for m in shoe1["multipliers"]] == \
        [("shoes-x2", 20_000, "100"), ("sku-x1.5", 15_000, "50")]
    assert (shoe1["base_points"], shoe1["exact_points"], shoe1["points"]) == ("100", "250", 250)
    assert [m["id"] for m in shoe2["multipliers"]] == ["shoes-x2"] and shoe2["points"] == 200
    assert hat["multipliers"] == [] and hat["points"] == 50
    _assert_adds_up(before)

    # The order the rules are applied in (priority) changes the trace's order, never the numbers.
    _rule(client, program, "sku-x1.5", name="SHOE-1 x1.5", kind="multiplier", multiplier_bps=15_000,
          conditions={"skus": ["SHOE-1"]}, priority=-5)
    after = _simulate(client, program, body)
    assert after["config_version"] == 3
    assert [m["id"] for m in after["trace"]["lines"][0]["multipliers"]] == ["sku-x1.5", "shoes-x2"]
    assert [line["points"] for line in after["trace"]["lines"]] == [250, 200, 50]
    recorded = _buy(client, program, body)
    assert (recorded["points_earned"], recorded["config_version"]) == (500, 3)
    verify()


def test_fixed_bonus_with_minimum_spend_and_channel(client, program, enrol, verify):
    enrol(program, "c-1")
    _rule(client, program, "web-bonus", name="Web orders from 50.00", kind="bonus", bonus_points=50,
          conditions={"channels": ["web"], "min_spend": 5_000})
    lines = [_line("SHOE-1", 6_000, category="shoes")]
    web = _buy(client, program, _body("A-1", "c-1", lines, channel="web"))
    # 60 points of the 60.00 + the 50-point bonus = 110.
    assert web["points_earned"] == 110
    trace = _detail(client, program, "A-1")["trace"]
    assert [(b["source"], b["id"], b["points"]) for b in trace["bonuses"]] == [("rule", "web-bonus", 50)]
    assert trace["lines"][0]["points"] == 60
    _assert_adds_up({**web, "trace": trace})
    # Another channel, no channel, or less than the minimum spend: the base 60 / 40 points only.
    assert _buy(client, program, _body("A-2", "c-1", lines, channel="store"))["points_earned"] == 60
    assert _buy(client, program, _body("A-3", "c-1", lines))["points_earned"] == 60
    assert _buy(client, program, _body("A-4", "c-1", [_line("HAT-1", 4_999)], channel="web"))["points_earned"] == 49
    # Exactly the minimum spend qualifies: 50 + 50 = 100.
    assert _buy(client, program, _body("A-5", "c-1", [_line("HAT-1", 5_000)], channel="web"))["points_earned"] == 100
    assert _detail(client, program, "A-4")["trace"]["bonuses"] == []
    assert _points(client, program, "c-1")["available"] == 110 + 60 + 60 + 49 + 100
    verify()


def test_cap_per_customer_per_local_period(client, make_program, enrol, clock, verify):
    # Auckland is UTC+13 in November: the clock's 2026-11-26T12:00Z is 27 November, 01:00 local.
    program = make_program(cashback_rate_bps=200, timezone="Pacific/Auckland")
    enrol(program, "c-1")
    enrol(program, "c-2")
    _rule(client, program, "double", name="Double points, 150 a month", kind="multiplier", multiplier_bps=20_000,
          cap_points=150, cap_period="month")
    lines = [_line("SHOE-1", 10_000, category="shoes")]
    # First purchase: 100 base + 100 extra (within the 150 left) = 200.
    first = _buy(client, program, _body("A-1", "c-1", lines))
    assert first["points_earned"] == 200
    assert _detail(client, program, "A-1")["trace"]["caps"] == []
    # Second, same local month: 50 of the cap left, so 100 + 50 = 150.
    second = _buy(client, program, _body("A-2", "c-1", lines))
    assert second["points_earned"] == 150
    trace = _detail(client, program, "A-2")["trace"]
    assert trace["caps"] == [{"source": "rule", "id": "double", "limit_left": 50, "wanted": "100", "granted": "50"}]
    assert trace["lines"][0]["multipliers"][0]["points"] == "50"
    # Third: the cap is spent, only the base 100.
    assert _buy(client, program, _body("A-3", "c-1", lines))["points_earned"] == 100
    assert _detail(client, program, "A-3")["trace"]["caps"][0]["granted"] == "0"
    # The cap is per customer: c-2 gets the full 200.
    assert _buy(client, program, _body("B-1", "c-2", lines))["points_earned"] == 200
    # 2026-11-30T12:00Z is still November in UTC but 1 December, 01:00 in Auckland: a new local month.
    clock.advance(days=4)
    assert _buy(client, program, _body("A-4", "c-1", lines))["points_earned"] == 200
    assert _detail(client, program, "A-4")["trace"]["caps"] == []
    assert _points(client, program, "c-1")["available"] == 200 + 150 + 100 + 200
    verify()


def test_min_spend_counts_only_the_matching_lines_earning_base(client, program, enrol, verify):
    enrol(program, "c-1")
    _rule(client, program, "shoes-x2", name="Shoes x2 from 50.00 of shoes", kind="multiplier", multiplier_bps=20_000,
          conditions={"categories": ["shoes"], "min_spend": 5_000})
    # 40.00 of shoes + 60.00 of hats: the order is 100.00 but only 40.00 matches -> no multiplier, 100 points.
    low = _buy(client, program, _body("A-1", "c-1", [_line("SHOE-1", 4_000, category="shoes"),
                                                      _line("HAT-1", 6_000, category="hats")]))
    assert low["points_earned"] == 100
    assert _detail(client, program, "A-1")["trace"]["lines"][0]["multipliers"] == []
    # 60.00 - 10.00 discount = 50.00 of shoes reaches it: 50 * 2 + 10 = 110.
    high = _buy(client, program, _body("A-2", "c-1", [_line("SHOE-1", 6_000, category="shoes", discount=1_000),
                                                       _line("HAT-1", 1_000, category="hats")]))
    assert high["points_earned"] == 110
    assert [line["points"] for line in _detail(client, program, "A-2")["trace"]["lines"]] == [100, 10]
    verify()


def test_a_capped_bonus_gives_only_what_is_left_of_the_day(client, program, enrol, clock, verify):
    enrol(program, "c-1")
    _rule(client, program, "visit", name="100 a visit, 150 a day", kind="bonus", bonus_points=100,
          cap_points=150, cap_period="day")
    lines = [_line("SOCK-1", 1_000)]
    # 10 base points + 100 bonus; then 10 + the 50 left; then 10 and no bonus.
    assert [_buy(client, program, _body(f"A-{i}", "c-1", lines))["points_earned"] for i in range(3)] == [110, 60, 10]
    second, third = _detail(client, program, "A-1")["trace"], _detail(client, program, "A-2")["trace"]
    assert second["bonuses"] == [{"source": "rule", "id": "visit", "name": "100 a visit, 150 a day", "points": 50}]
    assert second["caps"] == [{"source": "rule", "id": "visit", "limit_left": 50, "wanted": "100", "granted": "50"}]
    assert third["bonuses"] == [] and third["caps"][0]["granted"] == "0"
    clock.advance(days=1)  # a new day: the full bonus again
    assert _buy(client, program, _body("A-3", "c-1", lines))["points_earned"] == 110
    verify()


def test_cap_holds_for_a_purchase_dated_earlier_in_the_same_period(client, program, enrol, verify):
    enrol(program, "c-1")
    _rule(client, program, "double", name="Double points, 150 a month", kind="multiplier", multiplier_bps=20_000,
          cap_points=150, cap_period="month")
    lines = [_line("SHOE-1", 10_000, category="shoes")]
    # Recorded first, at 12:00 on 26 November: 100 + 100 extra = 200.
    assert _buy(client, program, _body("A-1", "c-1", lines))["points_earned"] == 200
    # Recorded second, dated 10:00 the same day (same month): only 50 of the cap are left -> 150.
    late = _buy(client, program, _body("A-2", "c-1", lines, occurred_at="2026-11-26T10:00:00Z"))
    assert late["points_earned"] == 150
    assert _points(client, program, "c-1")["available"] == 350  # 200 base + the 150 the cap allows
    verify()


# --------------------------------------------------------------------------- rounding


def test_ten_lines_of_99_cents_earn_9_points_with_remainders_allocated(client, program, enrol, verify):
    enrol(program, "c-1")
    lines = [_line(f"SKU-{i}", 99) for i in range(10)]
    data = _buy(client, program, _body("A-1", "c-1", lines))
    # Each line earns 99/100 of a point (floor 0, so per-line flooring would give 0); the order's exact
    # 990/100 = 99/10 is floored once to 9 and the 9 units go to the largest remainders, all equal
    # (99/100), so to the first nine lines. Cashback: 2% of 990 = 19.8 -> 19; each line 1.98 -> 1 + 9 * 1.
    assert (data["amount"], data["points_earned"], data["cashback_earned"]) == (990, 9, 19)
    trace = _detail(client, program, "A-1")["trace"]
    assert [line["exact_points"] for line in trace["lines"]] == ["99/100"] * 10
    assert [line["points"] for line in trace["lines"]] == [1] * 9 + [0]
    assert [line["cashback"] for line in trace["lines"]] == [2] * 9 + [1]
    assert trace["rounding"] == {"exact_points": "99/10", "line_points": 9, "remainders_allocated": 9,
                                 "exact_cashback": "99/5", "cashback": 19}
    _assert_adds_up({**data, "trace": trace})

    # With a x1.5 rule and a 7-point bonus: each line 99/100 * 3/2 = 297/200; the order 2970/200 = 14.85
    # -> 14 line points (floors 1 each = 10, 4 remainders to lines 0-3), + 7 bonus = 21.
    _rule(client, program, "x1.5", name="x1.5", kind="multiplier", multiplier_bps=15_000)
    _rule(client, program, "bonus-7", name="7 points", kind="bonus", bonus_points=7)
    data = _buy(client, program, _body("A-2", "c-1", lines))
    assert data["points_earned"] == 21
    trace = _detail(client, program, "A-2")["trace"]
    assert [line["points"] for line in trace["lines"]] == [2] * 4 + [1] * 6
    assert trace["rounding"]["remainders_allocated"] == 4 and trace["rounding"]["line_points"] == 14
    _assert_adds_up({**data, "trace": trace})
    verify()


# --------------------------------------------------------------------------- simulate


def test_simulate_writes_nothing_and_equals_the_recorded_purchase(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    assert _ok(buy(program, "A-0", "c-1", 1_000))["points_earned"] == 10
    _rule(client, program, "shoes-x3", name="Shoes x3", kind="multiplier", multiplier_bps=30_000,
          conditions={"categories": ["shoes"]})
    _rule(client, program, "app-bonus", name="App bonus", kind="bonus", bonus_points=25, conditions={"channels": ["app"]})
    body = _body("A-1", "c-1", [_line("SHOE-1", 3_333, category="shoes"), _line("SOCK-1", 199, quantity=3, discount=50)],
                 tax=700, shipping=490, channel="app")
    counts = row_counts(app)
    simulated = _simulate(client, program, body)
    again = _simulate(client, program, body)
    assert row_counts(app) == counts  # nothing written, not even an idempotency record
    assert again == simulated
    # Shoe 3_333 -> 3333/100 * 3 = 9999/100; socks 3 * 199 - 50 = 547 -> 547/100; tax 7; shipping 49/10.
    # Exact 9999/100 + 547/100 + 700/100 + 490/100 = 11736/100 -> 117 points, + 25 bonus = 142.
    # Cashback is on the base only (rules award points): 2% of (3_333 + 547 + 700 + 490 = 5_070) = 101.4 -> 101.
    assert (simulated["amount"], simulated["points_earned"], simulated["cashback_earned"]) == (5_070, 142, 101)
    assert simulated["transaction_id"] is None and simulated["config_version"] == 2
    _assert_adds_up(simulated)

    recorded = _buy(client, program, body)
    assert set(simulated) == set(recorded) | {"trace"}
    for key in set(recorded) - {"transaction_id"}:
        assert simulated[key] == recorded[key], key
    assert recorded["transaction_id"] is not None
    assert _points(client, program, "c-1")["available"] == 10 + 142
    detail = _detail(client, program, "A-1")
    assert detail["trace"] == simulated["trace"]
    assert (detail["config_version"], detail["trace"]["config_version"]) == (2, 2)
    assert detail["points_earned"] == 142 and detail["channel"] == "app"
    verify()


# --------------------------------------------------------------------------- versions and the audit trail


def test_each_rule_change_is_a_version_with_an_audit_record(client, app, program, clock, verify):
    admin_key = next(k for k in _ok(client.get("/v1/api-keys", headers=program.headers("admin")), 200)["items"]
                     if k["role"] == "admin" and program.keys["admin"].startswith(k["prefix"]))
    assert _ok(client.get("/v1/rules", headers=program.headers("storefront")), 200) == {"config_version": 0, "items": []}
    rule = {"name": "Shoes x2", "kind": "multiplier", "multiplier_bps": 20_000, "conditions": {"categories": ["shoes"]}}
    created = _rule(client, program, "shoes", **rule)
    assert created["config_version"] == 1 and created["id"] == "shoes"
    created_at = clock.now()

    counts = row_counts(app)
    clock.advance(minutes=5)
    assert _rule(client, program, "shoes", **rule)["config_version"] == 1  # the same body again: no new version
    assert row_counts(app) == counts and _version(client, program) == 1

    changed = _rule(client, program, "shoes", **{**rule, "multiplier_bps": 30_000})
    assert changed["config_version"] == 2
    changed_at = clock.now()
    listed = _ok(client.get("/v1/rules", headers=program.headers("app")), 200)
    assert listed["config_version"] == 2
    assert [(r["id"], r["multiplier_bps"], r["config_version"]) for r in listed["items"]] == [("shoes", 30_000, 2)]

    clock.advance(minutes=5)
    response = client.delete("/v1/rules/shoes", headers={**program.headers("admin"), "X-Request-Id": "del-shoes-1"})
    assert response.status_code == 204 and response.get_data() == b""
    deleted_at = clock.now()
    assert _version(client, program) == 3
    assert_problem(client.get("/v1/rules/shoes", headers=program.headers("app")), 404, "rule_not_found")
    counts = row_counts(app)
    assert_problem(client.delete("/v1/rules/shoes", headers=program.headers("admin")), 404, "rule_not_found")
    assert_problem(client.delete("/v1/rules/nope", headers=program.headers("admin")), 404, "rule_not_found")
    assert row_counts(app) == counts and _version(client, program) == 3

    changes = _changes(client, program, "finance")
    assert changes == _changes(client, program, "admin")
    assert len(changes) == 3  # newest first: delete, change, create
    removal, change, creation = changes
    assert all(admin_key["id"] in c["actor"] for c in changes)
    assert [datetime.fromisoformat(c["changed_at"]) for c in changes] == [deleted_at, changed_at, created_at]
    assert creation["before"] == {"rule:shoes": None, "config_version": 0}
    assert creation["after"]["config_version"] == 1 and creation["after"]["rule:shoes"]["multiplier_bps"] == 20_000
    assert change["before"]["rule:shoes"]["multiplier_bps"] == 20_000 and change["before"]["config_version"] == 1
    assert change["after"]["rule:shoes"]["multiplier_bps"] == 30_000 and change["after"]["config_version"] == 2
    assert change["after"]["rule:shoes"]["conditions"]["categories"] == ["shoes"]
    assert removal["before"]["rule:shoes"]["multiplier_bps"] == 30_000
    assert removal["after"] == {"rule:shoes": None, "config_version": 3}
    assert removal["request_id"] == "del-shoes-1"
    # Only admin changes rules; the app and storefront may not.
    assert_problem(_put_rule(client, program, "x", rule, role="storefront"), 403, "forbidden")
    assert_problem(client.delete("/v1/rules/x", headers=program.headers("app")), 403, "forbidden")
    assert _version(client, program) == 3
    verify()


def test_refunds_recompute_with_the_version_the_purchase_used(client, program, enrol, verify):
    enrol(program, "c-1")
    _rule(client, program, "shoes-x2", name="Shoes x2", kind="multiplier", multiplier_bps=20_000,
          conditions={"categories": ["shoes"]})
    _rule(client, program, "bonus-40", name="40 points", kind="bonus", bonus_points=40)
    lines = [_line("SHOE-1", 5_000, quantity=2, category="shoes"), _line("HAT-1", 3_000, category="hats")]
    a = _buy(client, program, _body("A-1", "c-1", lines))
    b = _buy(client, program, _body("B-1", "c-1", lines))
    # Under version 2: shoes 100 * 2 = 200, hat 30, bonus 40 -> 270 points; cashback 2% of 13_000 = 260.
    assert (a["points_earned"], a["cashback_earned"], a["config_version"]) == (270, 260, 2)
    assert b["points_earned"] == 270

    assert client.delete("/v1/rules/shoes-x2", headers=program.headers("admin")).status_code == 204
    assert client.delete("/v1/rules/bonus-40", headers=program.headers("admin")).status_code == 204
    assert _version(client, program) == 4
    # Today the same order would earn 130 and no more.
    assert _simulate(client, program, _body("C-1", "c-1", lines))["points_earned"] == 130

    # A full refund reverses exactly what the order earned (270), not today's 130.
    full = _refund(client, program, "B-1", "FB-1")
    assert (full["amount"], full["points_reversed"], full["cashback_reversed"]) == (13_000, 270, 260)

    # Returning one of the two shoes (50.00): the rest (one shoe + the hat) keeps, under version 2,
    # 50 * 2 + 30 + 40 = 170, so 270 - 170 = 100 come back (today's rules would keep 80: 190 back;
    # a pro rata 270 * 8/13 = 166 would take 104). Cashback keeps 2% of 8_000 = 160: 100 back.
    part = _refund(client, program, "A-1", "FA-1", lines=[{"sku": "SHOE-1", "quantity": 1}])
    assert (part["amount"], part["points_reversed"], part["cashback_reversed"]) == (5_000, 100, 100)
    rest = _refund(client, program, "A-1", "FA-2")
    assert (rest["amount"], rest["points_reversed"], rest["cashback_reversed"]) == (8_000, 170, 160)
    assert part["points_reversed"] + rest["points_reversed"] == a["points_earned"]
    assert _detail(client, program, "A-1")["config_version"] == 2
    assert _points(client, program, "c-1") == {"available": 0, "pending": 0, "reserved": 0}
    verify()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("body, field", [
    ({"name": "Bonus", "kind": "bonus"}, "bonus_points"),
    ({"name": "Bonus", "kind": "bonus", "bonus_points": 10, "multiplier_bps": 20_000}, "bonus_points"),
    ({"name": "Mult", "kind": "multiplier", "multiplier_bps": 20_000, "bonus_points": 5}, "bonus_points"),
    ({"name": "Cap", "kind": "multiplier", "multiplier_bps": 20_000, "cap_points": 100}, "cap_period"),
    ({"name": "Cap", "kind": "multiplier", "multiplier_bps": 20_000, "cap_period": "month"}, "cap_period"),
    ({"name": "Cap", "kind": "multiplier", "multiplier_bps": 20_000, "cap_points": 1, "cap_period": "fortnight"},
     "cap_period"),
    ({"name": "Odd", "kind": "multiplier", "multiplier_bps": 20_000, "colour": "red"}, "colour"),
    ({"name": "Str", "kind": "multiplier", "multiplier_bps": "20000"}, "multiplier_bps"),
    ({"name": "Str", "kind": "bonus", "bonus_points": "10"}, "bonus_points"),
    ({"name": "Kind", "kind": "cashback"}, "kind"),
    ({"kind": "multiplier", "multiplier_bps": 20_000}, "name"),
    ({"name": "Neg", "kind": "multiplier", "multiplier_bps": -1}, "multiplier_bps"),
    ({"name": "Spend", "kind": "multiplier", "multiplier_bps": 20_000, "conditions": {"min_spend": -1}},
     "conditions.min_spend"),
    ({"name": "Cond", "kind": "multiplier", "multiplier_bps": 20_000, "conditions": {"weekday": "monday"}},
     "conditions.weekday"),
])
def test_bad_rule_bodies_are_refused_and_write_nothing(client, app, program, body, field, verify):
    counts = row_counts(app)
    assert_problem(_put_rule(client, program, "r-1", body), 422, "validation_error", field)
    assert row_counts(app) == counts
    assert _version(client, program) == 0
    assert _changes(client, program) == []
    verify()


def test_a_bad_rule_id_is_refused(client, app, program, verify):
    counts = row_counts(app)
    body = {"name": "Shoes x2", "kind": "multiplier", "multiplier_bps": 20_000}
    assert_problem(_put_rule(client, program, "a" * 41, body), 422, "validation_error", "rule_id")
    assert_problem(_put_rule(client, program, "no%20spaces", body), 422, "validation_error", "rule_id")
    assert row_counts(app) == counts and _version(client, program) == 0
    verify()


