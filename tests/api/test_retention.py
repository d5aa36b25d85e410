"""GET /v1/analytics/retention: every figure against numbers computed by hand (docs/retention.md).

The clock stands at T0 = 2026-11-26T12:00Z; purchases and events are back-dated with `occurred_at`.
Most tests report on October 2026: P = [2026-10-01T00:00Z, 2026-11-01T00:00Z), 31 days, so the
preceding period of equal length is Q = [2026-08-31T00:00Z, 2026-10-01T00:00Z).
Amounts are in EUR cents. Every test that writes ends with `verify()`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import T0
from tests.helpers import assert_problem, row_counts

OCTOBER = {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}


# --------------------------------------------------------------------------- helpers


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _report(client: Any, program: Any, role: str = "finance", **query: str) -> dict:
    return _ok(client.get("/v1/analytics/retention", query_string=query, headers=program.headers(role)), 200)


def _bought(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, occurred_at: str | None = None) -> dict:
    extra = {"occurred_at": occurred_at} if occurred_at else {}
    return _ok(buy(program, order_id, customer_id, amount, **extra))


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int) -> dict:
    return _ok(client.post(f"/v1/purchases/{order_id}/refunds", json={"refund_id": refund_id, "amount": amount},
                           headers=program.headers("storefront")))


def _nps(client: Any, program: Any, event_id: str, customer_id: str, score: int, occurred_at: str) -> dict:
    body = {"event_id": event_id, "customer_id": customer_id, "type": "nps_response",
            "properties": {"score": score}, "occurred_at": occurred_at}
    return _ok(client.post("/v1/events", json=body, headers=program.headers("storefront")))


def _patch(client: Any, program: Any, **changes: Any) -> dict:
    return _ok(client.patch("/v1/program", json=changes, headers=program.headers("admin")), 200)


def _rate(numerator: int, denominator: int, bps: int | None) -> dict:
    return {"numerator": numerator, "denominator": denominator, "bps": bps}


def _money(numerator: int, denominator: int, amount: int | None) -> dict:
    return {"numerator": numerator, "denominator": denominator, "amount": amount}


# --------------------------------------------------------------------------- orders


def test_repurchase_rate_aov_and_frequency_leave_fully_refunded_orders_out(client, make_program, enrol, buy,
                                                                           verify):
    program = make_program()
    other = make_program()  # another program's orders never count
    for c in ("c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c11"):
        enrol(program, c)
    enrol(other, "c1")
    _bought(buy, other, "x-1", "c1", 99_000, "2026-10-05T10:00:00Z")
    # Returning orders in October: c1 (bought in September), c3 (bought in January), and c2's second
    # order, which has the same occurred_at as its first but a later purchase id.
    _bought(buy, program, "o-c1-sep", "c1", 3_000, "2026-09-10T10:00:00Z")
    _bought(buy, program, "o-c1", "c1", 1_000, "2026-10-05T10:00:00Z")
    _bought(buy, program, "o-c2-a", "c2", 2_000, "2026-10-20T12:00:00Z")
    _bought(buy, program, "o-c2-b", "c2", 3_000, "2026-10-20T12:00:00Z")
    _bought(buy, program, "o-c3-jan", "c3", 7_000, "2026-01-15T10:00:00Z")
    _bought(buy, program, "o-c3", "c3", 4_000, "2026-10-10T10:00:00Z")
    # c4 bought in September but that order was fully refunded: its October order is not returning.
    _bought(buy, program, "o-c4-sep", "c4", 5_000, "2026-09-01T10:00:00Z")
    _refund(client, program, "o-c4-sep", "r-c4", 5_000)
    _bought(buy, program, "o-c4", "c4", 1_500, "2026-10-08T10:00:00Z")
    # c5's order is partly refunded: it counts, for its net revenue 6000 - 1000 = 5000.
    _bought(buy, program, "o-c5", "c5", 6_000, "2026-10-12T10:00:00Z")
    _refund(client, program, "o-c5", "r-c5", 1_000)
    _bought(buy, program, "o-c6", "c6", 2_500, "2026-10-14T10:00:00Z")
    _bought(buy, program, "o-c7", "c7", 500, "2026-10-15T10:00:00Z")
    _bought(buy, program, "o-c8", "c8", 700, "2026-10-16T10:00:00Z")
    _bought(buy, program, "o-c9", "c9", 801, "2026-10-17T10:00:00Z")
    # c11's only order is refunded in two parts that add up to its amount: it counts nowhere.
    _bought(buy, program, "o-c11", "c11", 9_999, "2026-10-18T10:00:00Z")
    _refund(client, program, "o-c11", "r-c11-a", 4_999)
    _refund(client, program, "o-c11", "r-c11-b", 5_000)
    # Outside the period: November (after `to`) counts for nothing here.
    _bought(buy, program, "o-c6-nov", "c6", 8_000, "2026-11-03T10:00:00Z")
    # A non-member's purchase is refused, so it is nowhere in the figures.
    assert_problem(buy(program, "o-ghost", "ghost", 5_000, occurred_at="2026-10-05T10:00:00Z"), 404,
                   "customer_not_found")

    report = _report(client, program, **OCTOBER)

    # Orders in October, fully refunded left out: c1 1, c2 2, c3 1, c4 1, c5 1, c6 1, c7 1, c8 1, c9 1 = 10.
    assert report["orders"] == 10
    # Returning: o-c1, o-c2-b, o-c3 = 3 -> 3 * 10000 // 10 = 3000 bps.
    assert report["repurchase_rate"] == _rate(3, 10, 3000)
    # Net revenue: 1000 + 2000 + 3000 + 4000 + 1500 + 5000 + 2500 + 500 + 700 + 801 = 21001.
    assert report["net_revenue"] == 21_001
    # AOV: 21001 // 10 = 2100 cents (floored from 2100.1).
    assert report["average_order_value"] == _money(21_001, 10, 2_100)
    # Purchasing customers c1..c9 = 9; frequency 10 / 9 = 1.1111 -> 11111 bps.
    assert report["purchasing_customers"] == 9
    assert report["purchase_frequency"] == _rate(10, 9, 11_111)
    assert report["currency"] == "EUR" and report["activity_window_days"] == 365
    assert report["from"] == "2026-10-01T00:00:00+00:00" and report["to"] == "2026-11-01T00:00:00+00:00"
    assert report["previous_from"] == "2026-08-31T00:00:00+00:00"
    assert report["computed_at"] == "2026-11-26T12:00:00+00:00"
    # The other program sees only its own order: 1 order, no returning customer.
    theirs = _report(client, other, **OCTOBER)
    assert theirs["orders"] == 1 and theirs["repurchase_rate"] == _rate(0, 1, 0)
    assert theirs["average_order_value"] == _money(99_000, 1, 99_000)
    verify()


def test_an_order_becomes_returning_or_not_as_earlier_refunds_stand_now(client, make_program, enrol, buy, verify):
    """Refunds count as they stand when the report runs, whenever they occurred or were recorded."""
    program = make_program()
    enrol(program, "c1")
    _bought(buy, program, "o-sep", "c1", 2_000, "2026-09-15T10:00:00Z")
    _bought(buy, program, "o-oct", "c1", 1_000, "2026-10-15T10:00:00Z")
    # 1 order in October, after a kept September order: 1 / 1 = 10000 bps.
    assert _report(client, program, **OCTOBER)["repurchase_rate"] == _rate(1, 1, 10_000)
    # Refund September's order in full (recorded now, in late November, after `to`): 0 / 1.
    _refund(client, program, "o-sep", "r-sep", 2_000)
    report = _report(client, program, **OCTOBER)
    assert report["repurchase_rate"] == _rate(0, 1, 0)
    # And c1 is now new in October: first kept purchase 2026-10-15.
    assert report["customers"]["new"] == 1
    verify()


# --------------------------------------------------------------------------- retention


def test_retention_retained_share_churn_and_nrr_with_a_90_day_window(client, make_program, enrol, buy, verify):
    program = make_program()
    _patch(client, program, activity_window_days=90)
    # Active at 2026-10-01: a purchase in [2026-07-03T00:00Z, 2026-10-01T00:00Z) (30 + 31 + 29 = 90 days).
    # Active at 2026-11-01: a purchase in [2026-08-03T00:00Z, 2026-11-01T00:00Z) (31 + 30 + 29 = 90 days).
    for c in "abcdefghijk":
        enrol(program, c)
    _bought(buy, program, "a-1", "a", 1_000, "2026-07-10T10:00:00Z")  # S only: churned
    _bought(buy, program, "b-1", "b", 1_000, "2026-08-05T10:00:00Z")  # S and E: retained
    _bought(buy, program, "b-2", "b", 5_000, "2026-08-31T12:00:00Z")  # (in Q)
    _bought(buy, program, "c-1", "c", 10_000, "2026-09-01T10:00:00Z")  # S and E (in Q)
    _bought(buy, program, "c-2", "c", 6_000, "2026-10-10T10:00:00Z")  # (in P, 1000 refunded)
    _refund(client, program, "c-2", "r-c-2", 1_000)
    _bought(buy, program, "d-1", "d", 2_000, "2026-07-05T10:00:00Z")  # S and E
    _bought(buy, program, "d-2", "d", 9_000, "2026-10-20T10:00:00Z")  # (in P)
    _bought(buy, program, "e-1", "e", 3_000, "2026-06-01T10:00:00Z")  # not S (June), E, not new: reactivated
    _bought(buy, program, "e-2", "e", 7_000, "2026-10-15T10:00:00Z")
    _bought(buy, program, "f-1", "f", 1_000, "2026-10-05T10:00:00Z")  # E, new
    _bought(buy, program, "g-1", "g", 1_000, "2026-10-25T10:00:00Z")  # E, new
    _bought(buy, program, "h-1", "h", 4_000, "2026-07-20T10:00:00Z")  # fully refunded: nowhere
    _refund(client, program, "h-1", "r-h-1", 4_000)
    _bought(buy, program, "i-1", "i", 1_000, "2026-07-03T00:00:00Z")  # exactly the window's start: S; churned
    _bought(buy, program, "j-1", "j", 1_000, "2026-10-01T00:00:00Z")  # exactly `from`: not S; E, new
    _bought(buy, program, "k-1", "k", 1_000, "2026-08-02T23:59:59Z")  # S; a second before E's window: churned

    report = _report(client, program, **OCTOBER)

    # S = {a, b, c, d, i, k} = 6; E = {b, c, d, e, f, g, j} = 7; N = {f, g, j} = 3.
    assert report["customers"] == {"active_at_start": 6, "active_at_end": 7, "new": 3, "retained": 3,
                                   "churned": 3}
    assert report["active_members"] == 7 and report["activity_window_days"] == 90
    # Customer retention rate (E - N) / S = (7 - 3) / 6 -> 40000 // 6 = 6666 bps (e, reactivated, counts).
    assert report["customer_retention_rate"] == _rate(4, 6, 6_666)
    # Retained |S and E| = {b, c, d} = 3 -> 3 / 6; churned {a, i, k} = 3 -> 3 / 6.
    assert report["retained_share"] == _rate(3, 6, 5_000)
    assert report["churn_rate"] == _rate(3, 6, 5_000)
    # NRR: S's net revenue in P = c-2 (6000 - 1000) + d-2 9000 = 14000 (e-2 is not S's);
    # in Q = [08-31, 10-01): b-2 5000 + c-1 10000 = 15000 (b-1 on 08-05 is before Q).
    # 14000 * 10000 // 15000 = 9333 bps.
    assert report["net_revenue_retention"] == _rate(14_000, 15_000, 9_333)
    # Orders in P: c-2, d-2, e-2, f-1, g-1, j-1 = 6; returning c-2, d-2, e-2 = 3.
    assert report["repurchase_rate"] == _rate(3, 6, 5_000)
    verify()


def test_the_window_follows_the_program_setting(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "a")
    _bought(buy, program, "a-1", "a", 1_000, "2026-03-01T10:00:00Z")
    # 365 days (default): active at 10-01 (since 2025-10-01) and at 11-01 (since 2025-11-01): retained.
    report = _report(client, program, **OCTOBER)
    assert report["customers"] == {"active_at_start": 1, "active_at_end": 1, "new": 0, "retained": 1, "churned": 0}
    assert report["customer_retention_rate"] == _rate(1, 1, 10_000)
    # 200 days: active at 10-01 (since 2026-03-15)? 03-01 is before: no. At 11-01 neither: S empty.
    _patch(client, program, activity_window_days=200)
    report = _report(client, program, **OCTOBER)
    assert report["customers"] == {"active_at_start": 0, "active_at_end": 0, "new": 0, "retained": 0, "churned": 0}
    assert report["customer_retention_rate"] == _rate(0, 0, None)
    assert report["churn_rate"] == _rate(0, 0, None)
    # 214 days: 10-01 - 214 days = 2026-03-01T00:00Z <= 03-01T10:00: active at `from`; at `to` the
    # window starts 2026-04-01: not active. Churned: 1 / 1.
    _patch(client, program, activity_window_days=214)
    report = _report(client, program, **OCTOBER)
    assert report["customers"] == {"active_at_start": 1, "active_at_end": 0, "new": 0, "retained": 0, "churned": 1}
    assert report["churn_rate"] == _rate(1, 1, 10_000)
    assert report["net_revenue_retention"] == _rate(0, 0, None)
    verify()


# --------------------------------------------------------------------------- lifetime value


def test_lifetime_value_per_local_first_purchase_month(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    for c in "pqrs":
        enrol(program, c)
    # p's first purchase is 2026-09-30T22:30Z = 2026-10-01 00:30 in Paris (CEST, UTC+2): cohort 2026-10.
    _bought(buy, program, "p-1", "p", 3_000, "2026-09-30T22:30:00Z")
    _bought(buy, program, "p-2", "p", 2_000, "2026-11-10T10:00:00Z")
    _bought(buy, program, "p-3", "p", 10_000, "2026-11-25T10:00:00Z")  # after `to`: not to date
    _bought(buy, program, "q-1", "q", 4_000, "2026-10-15T10:00:00Z")  # cohort 2026-10, 500 refunded
    _refund(client, program, "q-1", "r-q-1", 500)
    _bought(buy, program, "r-1", "r", 1_000, "2026-09-10T10:00:00Z")  # cohort 2026-09
    _bought(buy, program, "r-2", "r", 2_000, "2026-10-20T10:00:00Z")
    # s's September order was fully refunded: its first purchase is 2026-10-02, cohort 2026-10.
    _bought(buy, program, "s-1", "s", 8_000, "2026-09-05T10:00:00Z")
    _refund(client, program, "s-1", "r-s-1", 8_000)
    _bought(buy, program, "s-2", "s", 1_500, "2026-10-02T10:00:00Z")

    report = _report(client, program, **{"from": "2026-11-01T00:00:00Z", "to": "2026-11-20T00:00:00Z"})

    # 2026-09: r: 1000 + 2000 = 3000 over 1 customer.
    # 2026-10: p 3000 + 2000, q 4000 - 500, s 1500 = 5000 + 3500 + 1500 = 10000 over 3: 3333 (floored).
    assert report["clv_cohorts"] == [
        {"month": "2026-09", "customers": 1, "net_revenue": 3_000, "clv": _money(3_000, 1, 3_000)},
        {"month": "2026-10", "customers": 3, "net_revenue": 10_000, "clv": _money(10_000, 3, 3_333)},
    ]
    assert report["timezone"] == "Europe/Paris"
    verify()


# --------------------------------------------------------------------------- NPS


def test_nps_counts_each_customers_latest_response_in_the_period(client, make_program, enrol, verify):
    program = make_program()
    for c in ("u1", "u2", "u3", "u4", "u5", "u6", "u7"):
        enrol(program, c)
    _nps(client, program, "e-1", "u1", 3, "2026-10-05T10:00:00Z")
    _nps(client, program, "e-2", "u1", 10, "2026-10-20T10:00:00Z")  # u1: latest 10, promoter
    _nps(client, program, "e-3", "u2", 6, "2026-10-12T10:00:00Z")  # sent first, occurred later
    _nps(client, program, "e-4", "u2", 9, "2026-10-10T10:00:00Z")  # u2: latest (by occurred_at) 6, detractor
    _nps(client, program, "e-5", "u3", 7, "2026-10-03T10:00:00Z")  # u3: passive
    _nps(client, program, "e-6", "u4", 0, "2026-10-08T10:00:00Z")  # u4: detractor
    _nps(client, program, "e-7", "u5", 10, "2026-09-20T10:00:00Z")  # u5: before the period
    _nps(client, program, "e-8", "u5", 2, "2026-11-05T10:00:00Z")  # u5: after it: no response in P
    _nps(client, program, "e-9", "u6", 10, "2026-10-15T10:00:00Z")
    _nps(client, program, "e-10", "u6", 5, "2026-10-15T10:00:00Z")  # same instant, later id: u6 detractor
    _nps(client, program, "e-11", "u7", 9, "2026-10-09T10:00:00Z")  # u7: promoter

    report = _report(client, program, **OCTOBER)

    # Promoters u1, u7 = 2; passives u3 = 1; detractors u2, u4, u6 = 3; responses 6.
    # 100 * (2 - 3) / 6 = -16.67, floored: -17.
    assert report["nps"] == {"score": -17, "promoters": 2, "passives": 1, "detractors": 3, "responses": 6}
    # November alone: u5's 2 -> 100 * (0 - 1) / 1 = -100.
    november = _report(client, program, **{"from": "2026-11-01T00:00:00Z", "to": "2026-11-26T00:00:00Z"})
    assert november["nps"] == {"score": -100, "promoters": 0, "passives": 0, "detractors": 1, "responses": 1}
    verify()


# --------------------------------------------------------------------------- expiring points


def test_members_with_points_expiring_in_the_30_days_from_to(client, make_program, enrol, buy, clock, verify):
    """1 point per euro, available at once, each lot expiring at the end of the 10th (UTC) day after it
    became available (when it was recorded): bought at 2026-11-26T12:00Z -> expires 2026-12-07T00:00Z."""
    program = make_program(points_expiry="fixed", points_life_days=10)
    for c in ("old", "x1", "x2", "x3", "x4", "x5"):
        enrol(program, c)
    _bought(buy, program, "old-1", "old", 1_200, None)  # 12 points, expire 2026-12-07T00:00Z
    clock.advance(days=15)  # 2026-12-11T12:00Z
    _bought(buy, program, "x1-1", "x1", 1_000, None)  # 10 points, expire 2026-12-22T00:00Z
    _bought(buy, program, "x2-1", "x2", 2_500, None)  # 25 points, same expiry
    _bought(buy, program, "x2-2", "x2", 500, None)  # 5 points, same expiry
    _bought(buy, program, "x3-1", "x3", 2_000, None)  # 20 points, clawed back by the full refund
    _refund(client, program, "x3-1", "r-x3", 2_000)
    clock.advance(days=25)  # 2027-01-05T12:00Z
    _bought(buy, program, "x5-1", "x5", 700, None)  # 7 points, expire 2027-01-16T00:00Z

    # to = 2026-12-11T12:00Z: [12-11 12:00, 2027-01-10 12:00) holds x1 (10) and x2 (25 + 5): 2 members, 40
    # points; old's lot expired before `to`, x5's after the 30 days, x3's lot holds nothing, x4 has none.
    report = _report(client, program, to="2026-12-11T12:00:00Z")
    assert report["expiring_points"] == {"members": 2, "points": 40, "from": "2026-12-11T12:00:00+00:00",
                                         "to": "2027-01-10T12:00:00+00:00"}
    # Default to = now = 2027-01-05T12:00Z: [01-05 12:00, 02-04 12:00) holds x5 only.
    report = _report(client, program)
    assert report["expiring_points"]["members"] == 1 and report["expiring_points"]["points"] == 7
    # Bounds: to = 2026-11-22T00:00Z -> [11-22, 12-22): old's lot (12-07) is in; x1's and x2's, expiring
    # exactly at the exclusive end 12-22T00:00Z, are out.
    report = _report(client, program, to="2026-11-22T00:00:00Z")
    assert report["expiring_points"]["members"] == 1 and report["expiring_points"]["points"] == 12
    # to = 2026-12-22T00:00Z -> [12-22, 2027-01-21): x1 and x2 expire exactly at the inclusive start, x5 on 01-16.
    report = _report(client, program, to="2026-12-22T00:00:00Z")
    assert report["expiring_points"]["members"] == 3 and report["expiring_points"]["points"] == 47
    verify()


# --------------------------------------------------------------------------- period, validation, roles


def test_default_period_is_the_30_days_before_now_and_an_empty_program_has_null_rates(client, program):
    report = _report(client, program, role="admin")
    # to = now = 2026-11-26T12:00Z; from = to - 30 days = 2026-10-27T12:00Z; previous_from = 2026-09-27T12:00Z.
    assert _at(report["to"]) == T0 and _at(report["from"]) == T0 - timedelta(days=30)
    assert _at(report["previous_from"]) == T0 - timedelta(days=60)
    assert report["orders"] == 0 and report["net_revenue"] == 0 and report["active_members"] == 0
    for name in ("repurchase_rate", "customer_retention_rate", "retained_share", "churn_rate",
                 "purchase_frequency", "net_revenue_retention"):
        assert report[name] == _rate(0, 0, None), name
    assert report["average_order_value"] == _money(0, 0, None)
    assert report["clv_cohorts"] == []
    assert report["nps"] == {"score": None, "promoters": 0, "passives": 0, "detractors": 0, "responses": 0}
    assert report["expiring_points"]["members"] == 0 and report["expiring_points"]["points"] == 0
    # Only `from`: to = now. Only `to`: from = to - 30 days.
    report = _report(client, program, **{"from": "2026-11-01T00:00:00Z"})
    assert _at(report["from"]) == datetime(2026, 11, 1, tzinfo=timezone.utc) and _at(report["to"]) == T0
    report = _report(client, program, to="2026-10-31T00:00:00+02:00")
    assert report["to"] == "2026-10-30T22:00:00+00:00" and report["from"] == "2026-09-30T22:00:00+00:00"


@pytest.mark.parametrize("query, field", [
    ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),  # from == to
    ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),  # from > to
    ({"from": "2026-11-27T00:00:00Z"}, "to"),  # from after now, the default `to`
    ({"from": "2026-11-01T00:00:00"}, "from"),  # no offset
    ({"to": "yesterday"}, "to"),
    ({"from": "0001-01-01T00:00:00+01:00", "to": "2026-11-01T00:00:00Z"}, "from"),  # before year 1 in UTC
    ({"to": "0001-01-05T00:00:00Z"}, "from"),  # the default from, 30 days earlier, is before year 1
    ({"from": "0001-06-01T00:00:00Z", "to": "0001-07-01T00:00:00Z"}, "from"),  # so is the activity window
    ({"from": "9999-12-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"}, "to"),  # to + 30 days is after 9999
])
def test_a_bad_period_is_a_validation_error(client, app, program, query, field):
    before = row_counts(app)
    response = client.get("/v1/analytics/retention", query_string=query, headers=program.headers("finance"))
    assert_problem(response, 422, "validation_error", field)
    assert row_counts(app) == before


@pytest.mark.parametrize("role", ["storefront", "app"])
def test_storefront_and_app_keys_are_forbidden(client, program, role):
    response = client.get("/v1/analytics/retention", query_string=OCTOBER, headers=program.headers(role))
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_admin_and_finance_read_the_same_report(client, program, enrol, buy, role):
    enrol(program, "c1")
    _bought(buy, program, "o-1", "c1", 1_000, "2026-10-05T10:00:00Z")
    report = _report(client, program, role=role, **OCTOBER)
    # One order from a new customer: 0 / 1 returning; AOV 1000; E = N = {c1}: (1 - 1) / 0 -> null.
    assert report["repurchase_rate"] == _rate(0, 1, 0)
    assert report["average_order_value"] == _money(1_000, 1, 1_000)
    assert report["customers"]["new"] == 1 and report["customer_retention_rate"] == _rate(0, 0, None)


def test_a_misspelled_query_parameter_is_refused(client, program):
    response = client.get("/v1/analytics/retention", query_string={"form": "2026-10-01T00:00:00Z"},
                          headers=program.headers("finance"))
    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"
    assert [e["field"] for e in response.get_json()["errors"]] == ["form"]
