"""Retention analytics' pure formulas (ledger/services/analytics.py), without a database.

Numbers are computed by hand in the comments; docs/retention.md states each formula.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ledger.domain.errors import ValidationFailed
from ledger.services.analytics import (
    Purchase, average_money, is_active_at, is_fully_refunded, latest_scores, month_of, nps, period, purchase_figures,
    rate,
)

UTC = timezone.utc
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def at(month: int, day: int, hour: int = 10, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_rates_are_exact_integers_floored_and_null_without_a_denominator():
    assert rate(30, 100) == {"numerator": 30, "denominator": 100, "bps": 3_000}  # 30%
    assert rate(2, 3)["bps"] == 6_666  # 20000 / 3 = 6666.67, floored
    assert rate(10, 9)["bps"] == 11_111  # above 100%: 1.1111
    assert rate(0, 0) == {"numerator": 0, "denominator": 0, "bps": None}
    assert rate(5, 0)["bps"] is None
    # Integers all the way: a float would lose the + 1 (2**53 + 1 is not a double).
    assert rate(2**53 + 1, 1)["bps"] == 90_071_992_547_409_930_000  # (9007199254740992 + 1) * 10000
    assert average_money(21_001, 10) == {"numerator": 21_001, "denominator": 10, "amount": 2_100}
    assert average_money(10_000, 3)["amount"] == 3_333
    assert average_money(0, 0)["amount"] is None


def test_fully_refunded_means_refunds_add_up_to_the_amount():
    assert is_fully_refunded(5_000, 5_000)
    assert not is_fully_refunded(5_000, 4_999)
    assert not is_fully_refunded(5_000, 0)
    assert Purchase(1, 1, at(10, 1), 6_000, 1_000).net == 5_000


def test_nps_is_floored_toward_minus_infinity():
    # 2 promoters (9, 10), 1 passive (7), 3 detractors (0, 5, 6): 100 * (2 - 3) / 6 = -16.67 -> -17.
    assert nps([9, 10, 7, 0, 5, 6]) == {"score": -17, "promoters": 2, "passives": 1, "detractors": 3, "responses": 6}
    # 2 promoters, 1 detractor of 3: 100 / 3 = 33.33 -> 33.
    assert nps([10, 9, 6])["score"] == 33
    # The borders: 8 is passive, 9 a promoter, 6 a detractor, 7 passive.
    assert nps([8, 7]) == {"score": 0, "promoters": 0, "passives": 2, "detractors": 0, "responses": 2}
    assert nps([]) == {"score": None, "promoters": 0, "passives": 0, "detractors": 0, "responses": 0}


def test_latest_response_per_customer_by_occurred_at_then_id():
    responses = [
        {"customer_pk": 1, "id": 5, "occurred_at": at(10, 20), "properties": {"score": 10}},
        {"customer_pk": 1, "id": 9, "occurred_at": at(10, 5), "properties": {"score": 3}},  # later id, earlier
        {"customer_pk": 2, "id": 3, "occurred_at": at(10, 15), "properties": {"score": 10}},
        {"customer_pk": 2, "id": 4, "occurred_at": at(10, 15), "properties": {"score": 5}},  # tie: higher id wins
    ]
    assert latest_scores(responses) == {1: 10, 2: 5}
    assert latest_scores(reversed(responses)) == {1: 10, 2: 5}


def test_active_means_a_purchase_in_the_window_before_t():
    t = START
    window = timedelta(days=90)  # [2026-07-03T00:00Z, 2026-10-01T00:00Z)
    assert is_active_at([datetime(2026, 7, 3, tzinfo=UTC)], t, window)  # the window's start is in
    assert not is_active_at([datetime(2026, 7, 2, 23, 59, tzinfo=UTC)], t, window)
    assert not is_active_at([t], t, window)  # t itself is out
    assert not is_active_at([], t, window)


def test_cohort_month_is_local():
    # 2026-09-30T22:30Z is 2026-10-01 00:30 in Paris (UTC+2 in summer time).
    assert month_of(datetime(2026, 9, 30, 22, 30, tzinfo=UTC), "Europe/Paris") == "2026-10"
    assert month_of(datetime(2026, 9, 30, 22, 30, tzinfo=UTC), "UTC") == "2026-09"


def test_period_defaults_and_order():
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert period(None, None, now) == (now - timedelta(days=30), now)
    assert period(START, None, now) == (START, now)
    assert period(None, END, now) == (END - timedelta(days=30), END)
    with pytest.raises(ValidationFailed):
        period(END, END, now)
    with pytest.raises(ValidationFailed):
        period(now + timedelta(seconds=1), None, now)


def test_repurchase_rate_of_100_orders_30_from_returning_customers():
    """70 first-time customers with one October order each, 30 customers with a September order and one
    in October: 30 / 100 = 3000 bps. One more customer's fully refunded September order makes their
    October order a first one, and a fully refunded October order is not an order at all."""
    purchases = []
    pk = 0
    for _ in range(70):
        pk += 1
        purchases.append(Purchase(pk, pk * 10, at(10, 10), 1_000))
    for _ in range(30):
        pk += 1
        purchases += [Purchase(pk, pk * 10, at(9, 10), 1_000), Purchase(pk, pk * 10 + 1, at(10, 10), 1_000)]
    figures = purchase_figures(purchases, START, END, YEAR)
    assert figures.to_dict()["repurchase_rate"] == rate(30, 100)
    assert figures.to_dict()["repurchase_rate"]["bps"] == 3_000

    # Customer 101: September order fully refunded (counts nowhere), October order: first, not returning.
    # Customer 102: one October order, fully refunded: not an order. Still 30 returning of 101 orders.
    purchases += [Purchase(101, 2_000, at(9, 1), 5_000, 5_000), Purchase(101, 2_001, at(10, 8), 1_500),
                  Purchase(102, 2_010, at(10, 9), 9_999, 9_999)]
    report = purchase_figures(purchases, START, END, YEAR).to_dict()
    assert report["repurchase_rate"] == {"numerator": 30, "denominator": 101, "bps": 2_970}  # 300000 // 101
    # Net revenue: 100 orders of 1000 + 1500 = 101500; AOV 101500 // 101 = 1004 (1004.95).
    assert report["average_order_value"] == {"numerator": 101_500, "denominator": 101, "amount": 1_004}
    # Frequency: 101 orders / 101 customers = 10000 bps.
    assert report["purchase_frequency"] == rate(101, 101)


def test_ties_are_broken_by_purchase_id_and_input_order_within_a_customer_does_not_matter():
    same = at(10, 20, 12)
    purchases = [Purchase(1, 8, same, 3_000), Purchase(1, 7, same, 2_000)]  # id 7 is the first one
    report = purchase_figures(purchases, START, END, YEAR).to_dict()
    assert report["orders"] == 2 and report["repurchase_rate"] == rate(1, 2)


def test_retention_churn_nrr_and_new_customers():
    """90-day window. Active at 10-01: a purchase in [07-03, 10-01); at 11-01: in [08-03, 11-01).
    Q, the preceding period of P's length (31 days), is [08-31, 10-01)."""
    window = timedelta(days=90)
    purchases = [
        Purchase(1, 1, at(7, 10), 1_000),  # S only: churned
        Purchase(2, 2, at(8, 5), 1_000), Purchase(2, 3, at(8, 31, 12), 5_000),  # S and E; 5000 in Q
        Purchase(3, 4, at(9, 1), 10_000), Purchase(3, 5, at(10, 10), 6_000, 1_000),  # S and E; Q 10000, P 5000
        Purchase(4, 6, at(6, 1), 3_000), Purchase(4, 7, at(10, 15), 7_000),  # reactivated: E, not S, not new
        Purchase(5, 8, at(10, 5), 1_000),  # new
        Purchase(6, 9, at(7, 20), 4_000, 4_000),  # fully refunded: nowhere
    ]
    report = purchase_figures(purchases, START, END, window).to_dict()
    # S = {1, 2, 3} = 3; E = {2, 3, 4, 5} = 4; N = {5} = 1.
    assert report["customers"] == {"active_at_start": 3, "active_at_end": 4, "new": 1, "retained": 2, "churned": 1}
    assert report["customer_retention_rate"] == rate(3, 3)  # (4 - 1) / 3 = 10000 bps
    assert report["retained_share"] == {"numerator": 2, "denominator": 3, "bps": 6_666}
    assert report["churn_rate"] == {"numerator": 1, "denominator": 3, "bps": 3_333}
    # NRR: S's P revenue 5000 (customer 3; customer 4 is not in S) / S's Q revenue 5000 + 10000.
    assert report["net_revenue_retention"] == {"numerator": 5_000, "denominator": 15_000, "bps": 3_333}
    assert report["active_members"] == 4


def test_lifetime_value_per_cohort_counts_net_revenue_before_the_end():
    purchases = [
        Purchase(1, 1, at(9, 10), 1_000), Purchase(1, 2, at(10, 20), 2_000),  # 2026-09: 3000
        Purchase(2, 3, at(9, 5), 8_000, 8_000), Purchase(2, 4, at(10, 2), 1_500),  # 2026-10 (Sept refunded)
        Purchase(3, 5, at(10, 15), 4_000, 500),  # 2026-10: 3500
        Purchase(3, 6, at(11, 5), 9_000),  # after the end: not to date
    ]
    report = purchase_figures(purchases, START, END, YEAR).to_dict()
    assert report["clv_cohorts"] == [
        {"month": "2026-09", "customers": 1, "net_revenue": 3_000, "clv": average_money(3_000, 1)},
        # (1500 + 3500) / 2 = 2500.
        {"month": "2026-10", "customers": 2, "net_revenue": 5_000, "clv": average_money(5_000, 2)},
    ]
