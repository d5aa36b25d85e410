"""Campaigns (window, birthday, anniversary, winback, frequency, budgets) and tiers (upgrade,
undo on refund, evaluation with grace, manual override, status), through the API.

Unless a test says otherwise a program is EUR, 1 point per euro (unit_amount 100 cents),
no cashback, points available at once, cashback held 30 days: the return window is
max(points_hold_days 0, cashback_hold_days 30) = 30 days. The clock starts at
2026-11-26T12:00Z. Every expected number below is worked out by hand in a comment.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ledger.services.releases import run_jobs
from tests.helpers import assert_problem, row_counts

MEMBER = {"id": "member", "name": "Member", "threshold": 0}
SILVER = {"id": "silver", "name": "Silver", "threshold": 10_000, "earn_multiplier_bps": 15_000,
          "cashback_bonus_bps": 100}
GOLD = {"id": "gold", "name": "Gold", "threshold": 50_000, "earn_multiplier_bps": 20_000}


# --------------------------------------------------------------------------- helpers


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _go(clock: Any, when: str) -> None:
    """Move the fixed clock forward to `when` (UTC)."""
    delta = _at(when) - clock.now()
    assert delta.total_seconds() >= 0
    clock.advance(seconds=delta.total_seconds())


def _jobs(client: Any, clock: Any) -> dict[str, int]:
    return run_jobs(client.application.extensions["ledger"].uow, clock)


def _campaign(client: Any, program: Any, campaign_id: str, **body: Any) -> dict:
    response = client.put(f"/v1/campaigns/{campaign_id}", json={"name": campaign_id, **body},
                          headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _campaigns(client: Any, program: Any) -> dict[str, dict]:
    response = client.get("/v1/campaigns", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return {item["id"]: item for item in response.get_json()["items"]}


def _tiers(client: Any, program: Any, tiers: list[dict], **options: Any) -> Any:
    return client.put("/v1/tiers", json={"tiers": tiers, **options}, headers=program.headers("admin"))


def _ladder(client: Any, program: Any, tiers: list[dict], **options: Any) -> None:
    response = _tiers(client, program, tiers, **options)
    assert response.status_code == 200, response.get_data(as_text=True)


def _status(client: Any, program: Any, customer_id: str) -> dict:
    response = client.get(f"/v1/customers/{customer_id}/tier", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _points(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, **extra: Any) -> int:
    response = buy(program, order_id, customer_id, amount, **extra)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["points_earned"]


def _trace(client: Any, program: Any, order_id: str) -> dict:
    response = client.get(f"/v1/purchases/{order_id}", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["trace"]


def _refund(client: Any, program: Any, order_id: str, refund_id: str, **body: Any) -> None:
    response = client.post(f"/v1/purchases/{order_id}/refunds", json={"refund_id": refund_id, **body},
                           headers=program.headers("storefront"))
    assert response.status_code == 201, response.get_data(as_text=True)


# --------------------------------------------------------------------------- campaigns


def test_window_campaign_doubles_points_on_local_days(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")  # CET, UTC+1 in November
    _campaign(client, program, "dbl", kind="window", multiplier_bps=20_000,
              starts_on="2026-11-20", ends_on="2026-11-22")
    enrol(program, "c-1")
    # 10 EUR = 10 base points; inside the window x2 adds 10: 20.
    assert _points(buy, program, "W-in", "c-1", 1_000, occurred_at="2026-11-21T12:00:00Z") == 20
    # 2026-11-24 is outside: 10.
    assert _points(buy, program, "W-out", "c-1", 1_000, occurred_at="2026-11-24T12:00:00Z") == 10
    # 2026-11-19T23:30Z is 2026-11-20 00:30 in Paris: the first window day, 20.
    assert _points(buy, program, "W-early", "c-1", 1_000, occurred_at="2026-11-19T23:30:00Z") == 20
    # 2026-11-19T22:30Z is 23:30 on the 19th in Paris: before the window, 10.
    assert _points(buy, program, "W-before", "c-1", 1_000, occurred_at="2026-11-19T22:30:00Z") == 10
    # 2026-11-22T23:30Z is already 23 November in Paris: after the window although UTC says the 22nd, 10.
    assert _points(buy, program, "W-late", "c-1", 1_000, occurred_at="2026-11-22T23:30:00Z") == 10
    trace = _trace(client, program, "W-early")
    assert [(m["source"], m["id"], m["multiplier_bps"], m["points"]) for m in trace["lines"][0]["multipliers"]] == \
        [("campaign", "dbl", 20_000, "10")]
    assert _trace(client, program, "W-late")["lines"][0]["multipliers"] == []
    verify()


def test_window_campaign_restricted_by_category_and_channel(client, make_program, enrol, buy, verify):
    program = make_program()
    _campaign(client, program, "shoes", kind="window", multiplier_bps=30_000, starts_on="2026-11-01",
              ends_on="2026-11-30", conditions={"categories": ["shoes"]})
    _campaign(client, program, "app", kind="window", bonus_points=50, starts_on="2026-11-01",
              ends_on="2026-11-30", conditions={"channels": ["app"]})
    enrol(program, "c-1")
    lines = [{"sku": "S-1", "category": "shoes", "quantity": 1, "unit_price": 3_000},
             {"sku": "F-1", "category": "food", "quantity": 1, "unit_price": 2_000}]
    # Base 30 + 20 = 50; x3 on the shoes line adds 2 * 30 = 60: 110. Channel web: no app bonus.
    assert _points(buy, program, "C-1", "c-1", 5_000, lines=lines, channel="web") == 110
    # Food only, channel app: base 10, no shoes line, app bonus 50: 60.
    assert _points(buy, program, "C-2", "c-1", 1_000, channel="app",
                   lines=[{"sku": "F-1", "category": "food", "quantity": 1, "unit_price": 1_000}]) == 60
    # No lines, channel store: neither campaign matches: 10.
    assert _points(buy, program, "C-3", "c-1", 1_000, channel="store") == 10
    trace = _trace(client, program, "C-1")
    assert [m["id"] for m in trace["lines"][0]["multipliers"]] == ["shoes"]
    assert trace["lines"][1]["multipliers"] == [] and trace["bonuses"] == []
    assert _trace(client, program, "C-2")["bonuses"] == [
        {"source": "campaign", "id": "app", "name": "app", "points": 50}]
    verify()


def test_birthday_bonus_once_per_year_in_the_birthday_month(client, clock, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    _campaign(client, program, "bday", kind="birthday", bonus_points=200)
    enrol(program, "c-1", birthday="1990-11-03")
    enrol(program, "c-2")  # no birthday known
    # 2026-10-31T22:30Z is 23:30 on 31 October in Paris, not the birthday month: 10.
    assert _points(buy, program, "B-0", "c-1", 1_000, occurred_at="2026-10-31T22:30:00Z") == 10
    # 2026-10-31T23:30Z is 1 November in Paris: the first purchase of the birthday month, 10 + 200 = 210.
    assert _points(buy, program, "B-1", "c-1", 1_000, occurred_at="2026-10-31T23:30:00Z") == 210
    # The second one that month: 10; no birthday: 10.
    assert _points(buy, program, "B-2", "c-1", 1_000) == 10
    assert _points(buy, program, "B-x", "c-2", 1_000) == 10
    assert _trace(client, program, "B-1")["bonuses"] == [
        {"source": "campaign", "id": "bday", "name": "bday", "points": 200}]
    # November 2027: a new year, the bonus again: 210.
    clock.advance(days=365)  # 2027-11-26T12:00Z
    assert _points(buy, program, "B-3", "c-1", 1_000) == 210
    verify()


def test_birthday_on_29_february_counts_in_february_of_a_common_year(client, clock, make_program, enrol, buy,
                                                                     verify):
    program = make_program()
    _campaign(client, program, "bday", kind="birthday", bonus_points=300)
    enrol(program, "leap", birthday="1992-02-29")
    _go(clock, "2027-02-10T12:00:00Z")  # 2027 is not a leap year
    # 10 + 300 = 310, then 10 for a second purchase in February 2027; March: 10.
    assert _points(buy, program, "L-1", "leap", 1_000) == 310
    assert _points(buy, program, "L-2", "leap", 1_000) == 10
    _go(clock, "2027-03-01T12:00:00Z")
    assert _points(buy, program, "L-3", "leap", 1_000) == 10
    verify()


def test_anniversary_of_the_first_purchase(client, clock, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    _campaign(client, program, "anniv", kind="anniversary", bonus_points=100)
    enrol(program, "c-1")
    # The first purchase: 2025-10-31T23:30Z is 1 November 2025 in Paris. Year 0: 10.
    assert _points(buy, program, "A-1", "c-1", 1_000, occurred_at="2025-10-31T23:30:00Z") == 10
    assert _points(buy, program, "A-2", "c-1", 1_000, occurred_at="2025-11-20T10:00:00Z") == 10
    # October 2026 (local, 23:30 on the 31st) is not the anniversary month: 10.
    assert _points(buy, program, "A-3", "c-1", 1_000, occurred_at="2026-10-31T22:30:00Z") == 10
    # November 2026, year 1: 10 + 100 = 110, then 10 for the second purchase that month.
    assert _points(buy, program, "A-4", "c-1", 1_000) == 110
    assert _points(buy, program, "A-5", "c-1", 1_000) == 10
    # November 2027, year 2: 110 again.
    clock.advance(days=365)
    assert _points(buy, program, "A-6", "c-1", 1_000) == 110
    verify()


def test_winback_after_inactive_days_only(client, make_program, enrol, buy, verify):
    program = make_program()
    _campaign(client, program, "wb", kind="winback", inactive_days=60, bonus_points=150)
    enrol(program, "c-1")
    # No earlier purchase: nothing to win back: 10.
    assert _points(buy, program, "R-1", "c-1", 1_000, occurred_at="2026-07-01T12:00:00Z") == 10
    # 1 Jul -> 29 Aug = 31 + 28 = 59 days: too short, 10.
    assert _points(buy, program, "R-2", "c-1", 1_000, occurred_at="2026-08-29T12:00:00Z") == 10
    # 29 Aug -> 28 Oct = 31 + 29 = 60 days: 10 + 150 = 160.
    assert _points(buy, program, "R-3", "c-1", 1_000, occurred_at="2026-10-28T12:00:00Z") == 160
    # 28 Oct -> 26 Nov = 29 days: 10.
    assert _points(buy, program, "R-4", "c-1", 1_000) == 10
    verify()


def test_frequency_bonus_on_the_nth_purchase_of_the_local_month(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    _campaign(client, program, "third", kind="frequency", nth_purchase=3, period="month", bonus_points=100)
    enrol(program, "c-1")
    # 2026-10-31T22:30Z is 23:30 on 31 October in Paris: October's first purchase, 10.
    assert _points(buy, program, "F-0", "c-1", 1_000, occurred_at="2026-10-31T22:30:00Z") == 10
    # 2026-10-31T23:30Z is already 1 November in Paris: November's first, 10.
    assert _points(buy, program, "F-1", "c-1", 1_000, occurred_at="2026-10-31T23:30:00Z") == 10
    assert _points(buy, program, "F-2", "c-1", 1_000, occurred_at="2026-11-10T12:00:00Z") == 10
    # November's third (F-0 is October's): 10 + 100 = 110; the fourth: 10.
    assert _points(buy, program, "F-3", "c-1", 1_000, occurred_at="2026-11-20T12:00:00Z") == 110
    assert _points(buy, program, "F-4", "c-1", 1_000) == 10
    verify()


def test_points_budget_shared_across_customers(client, make_program, enrol, buy, verify):
    program = make_program()
    view = _campaign(client, program, "dbl", kind="window", multiplier_bps=20_000, starts_on="2026-11-01",
                     ends_on="2026-11-30", budget_points=25)
    assert (view["budget_used_points"], view["budget_left_points"]) == (0, 25)
    for customer in ("c-1", "c-2", "c-3"):
        enrol(program, customer)
    # Each 10 EUR purchase wants 10 extra points. c-1: 20 (used 10, left 15).
    assert _points(buy, program, "P-1", "c-1", 1_000) == 20
    assert (_campaigns(client, program)["dbl"]["budget_used_points"],
            _campaigns(client, program)["dbl"]["budget_left_points"]) == (10, 15)
    # c-2: 20 (used 20, left 5).
    assert _points(buy, program, "P-2", "c-2", 1_000) == 20
    # c-3 crosses the budget: 10 + the 5 left = 15 (used 25, left 0).
    assert _points(buy, program, "P-3", "c-3", 1_000) == 15
    assert _trace(client, program, "P-3")["caps"] == [
        {"source": "campaign", "id": "dbl", "limit_left": 5, "wanted": "10", "granted": "5"}]
    # Spent: c-1 gets base points only, 10.
    assert _points(buy, program, "P-4", "c-1", 1_000) == 10
    assert _trace(client, program, "P-4")["lines"][0]["multipliers"] == []
    view = _campaigns(client, program)["dbl"]
    assert (view["budget_used_points"], view["budget_left_points"]) == (25, 0)
    verify()


def test_money_budget_valued_at_the_redeem_rate(client, make_program, enrol, buy, verify):
    program = make_program(redeem_minor_units=5, redeem_points=1)  # 1 point is worth 5 cents
    # 62 cents buy floor(62 * 1 / 5) = 12 points of budget.
    view = _campaign(client, program, "gift", kind="window", bonus_points=5, starts_on="2026-11-01",
                     ends_on="2026-11-30", budget_value=62)
    assert (view["budget_used_points"], view["budget_left_points"]) == (0, 12)
    enrol(program, "c-1")
    enrol(program, "c-2")
    # 10 + 5 = 15 twice (used 10, left 2), then 10 + the 2 left = 12, then 10.
    assert _points(buy, program, "V-1", "c-1", 1_000) == 15
    assert _points(buy, program, "V-2", "c-2", 1_000) == 15
    assert _points(buy, program, "V-3", "c-1", 1_000) == 12
    assert _trace(client, program, "V-3")["caps"] == [
        {"source": "campaign", "id": "gift", "limit_left": 2, "wanted": "5", "granted": "2"}]
    assert _points(buy, program, "V-4", "c-2", 1_000) == 10
    view = _campaigns(client, program)["gift"]
    assert (view["budget_used_points"], view["budget_left_points"]) == (12, 0)
    verify()


# --------------------------------------------------------------------------- tiers


def test_upgrade_on_the_qualifying_purchase_and_multiplier_from_the_next(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200)
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "member" and status["next_tier"]["id"] == "silver"
    assert (status["needed_for_next"], status["keep"], status["history"]) == (10_000, None, [])
    # 60 EUR: 60 points, 2% cashback = 120; spend 6000 < 10000.
    response = buy(program, "T-1", "c-1", 6_000)
    assert (response.get_json()["points_earned"], response.get_json()["cashback_earned"]) == (60, 120)
    # 50 EUR takes the spend to 11000: silver. This purchase still earns at member: 50 and 100.
    response = buy(program, "T-2", "c-1", 5_000)
    assert (response.get_json()["points_earned"], response.get_json()["cashback_earned"]) == (50, 100)
    assert _trace(client, program, "T-2")["tier"]["id"] == "member"
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "silver" and status["next_tier"]["id"] == "gold"
    assert status["progress"] == 11_000 and status["needed_for_next"] == 50_000 - 11_000
    change = status["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("member", "silver", "qualified", 11_000)
    # Keeping silver: evaluated on the anniversary, 2027-11-26 local (UTC) midnight, no grace. The
    # purchases counted then are those from 2026-11-26T00:00Z on: both, 11000 -> needed 0.
    assert status["keep"]["threshold"] == 10_000 and status["keep"]["needed"] == 0
    assert _at(status["keep"]["by"]) == _at("2027-11-26T00:00:00Z")
    # Next purchase at silver: 20 EUR = 20 points, x1.5 adds 10: 30; cashback 2% + 1% = 60.
    response = buy(program, "T-3", "c-1", 2_000)
    assert (response.get_json()["points_earned"], response.get_json()["cashback_earned"]) == (30, 60)
    trace = _trace(client, program, "T-3")
    assert trace["tier"] == {"id": "silver", "name": "Silver", "earn_multiplier_bps": 15_000,
                             "cashback_bonus_bps": 100}
    assert trace["lines"][0]["multipliers"] == [
        {"source": "tier", "id": "silver", "name": "Silver", "multiplier_bps": 15_000, "points": "10"}]
    verify()


def test_refund_inside_the_return_window_undoes_the_upgrade(client, clock, make_program, enrol, buy, verify):
    program = make_program()  # return window max(0, 30) = 30 days
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    for customer in ("c-1", "c-2", "c-3"):
        enrol(program, customer)
    # c-1: 6000 then 5000 = 11000: silver; refunding the 5000 leaves 6000 < 10000: back to member.
    assert _points(buy, program, "U-1", "c-1", 6_000) == 60
    assert _points(buy, program, "U-2", "c-1", 5_000) == 50
    assert _status(client, program, "c-1")["tier"]["id"] == "silver"
    _refund(client, program, "U-2", "F-1")
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "member" and status["keep"] is None
    change = status["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("silver", "member", "upgrade_undone", 6_000)
    # c-2 and c-3 qualify for silver with one purchase of 12000 each.
    assert _points(buy, program, "U-3", "c-2", 12_000) == 120
    assert _points(buy, program, "U-4", "c-3", 12_000) == 120
    # Exactly 30 days later the window has not passed: the refund undoes the upgrade.
    clock.advance(days=30)
    _refund(client, program, "U-4", "F-2")
    assert _status(client, program, "c-3")["history"][0]["reason"] == "upgrade_undone"
    assert _status(client, program, "c-3")["tier"]["id"] == "member"
    # 31 days later it has: c-2 stays silver.
    clock.advance(days=1)
    _refund(client, program, "U-3", "F-3")
    status = _status(client, program, "c-2")
    assert status["tier"]["id"] == "silver" and [c["reason"] for c in status["history"]] == ["qualified"]
    verify()


def test_return_window_is_the_longer_hold(client, clock, make_program, enrol, buy, verify):
    program = make_program(points_hold_days=45)  # return window max(45, 30) = 45 days
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    enrol(program, "c-2")
    assert _points(buy, program, "H-1", "c-1", 12_000) == 120  # silver
    # c-2: member -> silver (12000 at day 0), then silver -> gold (40000 more at day 40).
    assert _points(buy, program, "H-2", "c-2", 12_000) == 120
    clock.advance(days=40)  # past the 30-day cashback hold, inside the 45-day window
    # At silver: 400 points, x1.5 adds 200: 600.
    assert _points(buy, program, "H-3", "c-2", 40_000) == 600
    _refund(client, program, "H-1", "F-1")
    change = _status(client, program, "c-1")["history"][0]
    assert (change["reason"], change["to_tier"], change["metric"]) == ("upgrade_undone", "member", 0)
    # Refunding the gold purchase returns c-2 to silver (12000 left) and to silver's evaluation
    # date: the anniversary of its silver upgrade, 2027-11-26T00:00Z.
    _refund(client, program, "H-3", "F-2")
    status = _status(client, program, "c-2")
    assert status["tier"]["id"] == "silver"
    assert (status["history"][0]["reason"], status["history"][0]["metric"]) == ("upgrade_undone", 12_000)
    assert _at(status["keep"]["by"]) == _at("2027-11-26T00:00:00Z")
    verify()


def test_undo_to_an_intermediate_tier_still_gets_evaluated(client, clock, make_program, enrol, buy, verify):
    program = make_program()
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    assert _points(buy, program, "I-1", "c-1", 60_000) == 600  # member -> gold
    # Refunding 45000 of it leaves 15000: below gold, still silver.
    _refund(client, program, "I-1", "F-1", amount=45_000)
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "silver"
    assert (status["history"][0]["reason"], status["history"][0]["metric"]) == ("upgrade_undone", 15_000)
    # Silver is only kept until an evaluation: the status must say what keeping it needs and by when.
    assert status["keep"] is not None
    # Two years on, nothing bought since: every evaluation has passed, silver is lost.
    _go(clock, "2028-12-01T12:00:00Z")
    _jobs(client, clock)
    assert _status(client, program, "c-1")["tier"]["id"] == "member"
    verify()


def test_rolling_evaluation_with_grace_one_tier_to_qualified_and_kept(client, clock, make_program, enrol, buy,
                                                                       verify):
    one = make_program()
    qualified = make_program()
    _ladder(client, one, [MEMBER, SILVER, GOLD], grace_days=10, downgrade="one_tier")
    _ladder(client, qualified, [MEMBER, SILVER, GOLD], grace_days=10, downgrade="to_qualified")
    for program, customer in ((one, "down"), (one, "keep"), (qualified, "drop")):
        enrol(program, customer)
        # 60000 >= 50000: gold at 2026-11-26T12:00Z.
        assert _points(buy, program, f"G-{customer}", customer, 60_000) == 600
    # Evaluated at the anniversary 2027-11-26T00:00Z + 10 days grace = 2027-12-06T00:00Z, over the
    # 365 days before: [2026-12-06, 2027-12-06). The purchase of 2026-11-26 no longer counts.
    status = _status(client, one, "down")
    assert status["keep"]["threshold"] == 50_000 and status["keep"]["needed"] == 50_000
    assert _at(status["keep"]["by"]) == _at("2027-12-06T00:00:00Z")
    assert status["next_tier"] is None and status["needed_for_next"] is None
    _go(clock, "2027-12-05T12:00:00Z")
    # "keep" buys 50000 in June 2027: gold still reached. Gold earns x2: 500 + 500 = 1000.
    assert _points(buy, one, "K-1", "keep", 50_000, occurred_at="2027-06-01T12:00:00Z") == 1_000
    # Half a day before the decision: nothing happens.
    assert _jobs(client, clock)["tier_evaluations"] == 0
    assert {_status(client, p, c)["tier"]["id"] for p, c in ((one, "down"), (one, "keep"), (qualified, "drop"))} \
        == {"gold"}
    _go(clock, "2027-12-06T12:00:00Z")
    assert _jobs(client, clock)["tier_evaluations"] == 3
    assert _jobs(client, clock)["tier_evaluations"] == 0  # idempotent
    # one_tier with a metric of 0: gold -> silver.
    change = _status(client, one, "down")["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("gold", "silver", "evaluation_downgrade", 0)
    # to_qualified with a metric of 0: gold -> member.
    status = _status(client, qualified, "drop")
    assert status["tier"]["id"] == "member"
    assert (status["history"][0]["reason"], status["history"][0]["metric"]) == ("evaluation_downgrade", 0)
    # Still 50000 in the window: kept, next decision 2028-11-26 + 10 days.
    status = _status(client, one, "keep")
    assert status["tier"]["id"] == "gold"
    change = status["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("gold", "gold", "evaluation_kept", 50_000)
    assert _at(status["keep"]["by"]) == _at("2028-12-06T00:00:00Z")
    # Silver ("down") is next decided on 2028-12-06 too: one tier more, to member.
    _go(clock, "2028-12-06T12:00:00Z")
    _jobs(client, clock)
    status = _status(client, one, "down")
    assert status["tier"]["id"] == "member" and status["history"][0]["reason"] == "evaluation_downgrade"
    verify()


def test_calendar_year_evaluation_on_local_new_year(client, clock, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    _ladder(client, program, [MEMBER, SILVER], window="calendar_year")
    enrol(program, "c-1")
    assert _points(buy, program, "Y-1", "c-1", 12_000) == 120  # silver
    # Decided on 1 January 2027 local: 2026-12-31T23:00Z. The 2026 spend already counts: needed 0.
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "silver"
    assert (status["keep"]["threshold"], status["keep"]["needed"]) == (10_000, 0)
    assert _at(status["keep"]["by"]) == _at("2026-12-31T23:00:00Z")
    _go(clock, "2026-12-31T22:59:00Z")  # 23:59 on 31 December in Paris
    assert _jobs(client, clock)["tier_evaluations"] == 0
    _go(clock, "2026-12-31T23:00:00Z")
    assert _jobs(client, clock)["tier_evaluations"] == 1
    change = _status(client, program, "c-1")["history"][0]
    assert (change["reason"], change["to_tier"], change["metric"]) == ("evaluation_kept", "silver", 12_000)
    # Nothing bought in 2027: on 1 January 2028 local (2027-12-31T23:00Z) silver -> member.
    _go(clock, "2027-12-31T23:00:00Z")
    assert _jobs(client, clock)["tier_evaluations"] == 1
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "member"
    assert (status["history"][0]["reason"], status["history"][0]["metric"]) == ("evaluation_downgrade", 0)
    verify()


def test_manual_override_holds_then_the_metric_decides(client, clock, make_program, enrol, buy, verify):
    program = make_program()
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    assert _points(buy, program, "M-1", "c-1", 12_000) == 120  # silver, evaluated 2027-11-26
    response = client.put("/v1/customers/c-1/tier", json={"tier_id": "gold", "until": "2028-01-15T00:00:00Z"},
                          headers=program.headers("storefront"))
    assert response.status_code == 403
    response = client.put("/v1/customers/c-1/tier", json={"tier_id": "gold", "until": "2028-01-15T00:00:00Z"},
                          headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    status = response.get_json()
    assert status["tier"]["id"] == "gold" and status["keep"] is None
    assert _at(status["manual_until"]) == _at("2028-01-15T00:00:00Z")
    assert (status["history"][0]["reason"], status["history"][0]["from_tier"]) == ("manual", "silver")
    # A purchase under the override earns at gold: 150 + 150 = 300; spend 15000 does not move the tier.
    _go(clock, "2027-03-01T12:00:00Z")
    assert _points(buy, program, "M-2", "c-1", 15_000) == 300
    # The silver anniversary (2027-11-26) passes: the override holds.
    _go(clock, "2027-12-01T12:00:00Z")
    assert _jobs(client, clock)["tier_evaluations"] == 0
    assert _status(client, program, "c-1")["tier"]["id"] == "gold"
    # After the end: the 365 days before 2028-01-15 hold M-2 (15000) only, not M-1: silver, no floor.
    _go(clock, "2028-01-16T12:00:00Z")
    assert _jobs(client, clock)["tier_evaluations"] == 1
    status = _status(client, program, "c-1")
    assert status["tier"]["id"] == "silver" and status["manual_until"] is None
    change = status["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("gold", "silver", "manual_ended", 15_000)
    # Silver from now on: next decided on the anniversary of this change, 2029-01-16 local midnight.
    assert _at(status["keep"]["by"]) == _at("2029-01-16T00:00:00Z")
    verify()


def test_manual_override_ends_below_the_previous_tier(client, clock, make_program, enrol, buy, verify):
    program = make_program()
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    assert _points(buy, program, "N-1", "c-1", 60_000) == 600  # gold
    response = client.put("/v1/customers/c-1/tier", json={"tier_id": "silver", "until": "2027-01-01T00:00:00Z"},
                          headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    # The override ends; 60000 still in the window: gold, the tier the metric qualifies for.
    _go(clock, "2027-01-02T00:00:00Z")
    _jobs(client, clock)
    change = _status(client, program, "c-1")["history"][0]
    assert (change["from_tier"], change["to_tier"], change["reason"], change["metric"]) == \
        ("silver", "gold", "manual_ended", 60_000)
    verify()


@pytest.mark.parametrize("tiers, field", [
    ([MEMBER, SILVER, {**GOLD, "threshold": 10_000}], "tiers.2.threshold"),
    ([MEMBER, {**SILVER, "threshold": 60_000}, GOLD], "tiers.2.threshold"),
    ([{**MEMBER, "threshold": 100}, SILVER], "tiers.0.threshold"),
], ids=["equal", "decreasing", "first-not-zero"])
def test_invalid_ladder_is_refused_and_writes_nothing(app, client, make_program, tiers, field, verify):
    program = make_program()
    _ladder(client, program, [MEMBER, SILVER])
    before = row_counts(app)
    assert_problem(_tiers(client, program, tiers), 422, "validation_error", field)
    assert row_counts(app) == before
    ladder = client.get("/v1/tiers", headers=program.headers("app")).get_json()
    assert [t["id"] for t in ladder["tiers"]] == ["member", "silver"] and ladder["config_version"] == 1
    verify()




def test_repeating_a_manual_override_changes_nothing(app, client, make_program, enrol, verify):
    program = make_program()
    _ladder(client, program, [MEMBER, SILVER, GOLD])
    enrol(program, "c-1")
    body = {"tier_id": "gold", "until": "2028-01-15T00:00:00Z"}
    first = client.put("/v1/customers/c-1/tier", json=body, headers=program.headers("admin"))
    assert first.status_code == 200, first.get_data(as_text=True)
    before = row_counts(app)
    again = client.put("/v1/customers/c-1/tier", json=body, headers=program.headers("admin"))
    assert again.status_code == 200, again.get_data(as_text=True)
    # One override, one history row: member -> gold, "manual".
    assert [(c["from_tier"], c["to_tier"], c["reason"]) for c in again.get_json()["history"]] == \
        [("member", "gold", "manual")]
    assert row_counts(app) == before
    verify()


def test_winback_for_a_purchase_recorded_late(client, make_program, enrol, buy, verify):
    program = make_program()
    _campaign(client, program, "wb", kind="winback", inactive_days=60, bonus_points=150)
    enrol(program, "c-1")
    assert _points(buy, program, "L-1", "c-1", 1_000, occurred_at="2026-06-01T12:00:00Z") == 10
    # 1 Jun -> 26 Nov = 29 + 31 + 31 + 30 + 31 + 26 = 178 days: 10 + 150 = 160.
    assert _points(buy, program, "L-3", "c-1", 1_000) == 160
    # An in-store purchase of 1 October, recorded late: the purchase before it was on 1 June,
    # 29 + 31 + 31 + 30 + 1 = 122 days earlier >= 60: 10 + 150 = 160.
    assert _points(buy, program, "L-2", "c-1", 1_000, occurred_at="2026-10-01T12:00:00Z") == 160
    verify()


def test_grace_days_are_local_days_across_dst(client, clock, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    _ladder(client, program, [MEMBER, SILVER], grace_days=10)
    enrol(program, "c-1")
    _go(clock, "2027-03-20T12:00:00Z")
    assert _points(buy, program, "D-1", "c-1", 12_000) == 120  # silver on 20 March 2027
    # Anniversary 2028-03-20 (CET) + 10 local days = 2028-03-30 00:00 CEST (UTC+2, DST began
    # 26 March 2028) = 2028-03-29T22:00Z.
    assert _at(_status(client, program, "c-1")["keep"]["by"]) == _at("2028-03-29T22:00:00Z")
    _go(clock, "2028-03-29T22:30:00Z")  # 00:30 on 30 March in Paris: the decision day has begun
    assert _jobs(client, clock)["tier_evaluations"] == 1
    assert _status(client, program, "c-1")["tier"]["id"] == "member"
    verify()
