"""The earning computation, campaigns' occasions, local calendars and lot expiry: pure domain, no database."""
from __future__ import annotations

from datetime import date, datetime, timezone
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from ledger.domain.calendar import add_months, end_of_local_day, period_key, period_start
from ledger.domain.earning import (
    EarningFacts, OrderToEarn, PurchaseLine, allocate_largest_remainder, campaign_occasion, compute_earnings,
)
from ledger.domain.earning_config import Campaign, Conditions, EarningConfig, EarningRule, Tier, TierLadder
from ledger.domain.errors import ValidationFailed
from ledger.domain.expiry import inactivity_expiry, lot_expires_at
from ledger.domain.programs import ProgramSettings

EUR = ProgramSettings(name="Shop", currency="EUR")  # 1 point per euro, no cashback
T = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def facts(**kw) -> EarningFacts:  # noqa: ANN003
    return EarningFacts(occurred_at=kw.pop("occurred_at", T), **kw)


def lines(*specs: tuple) -> tuple[PurchaseLine, ...]:
    return tuple(PurchaseLine(*spec) for spec in specs)


def earn(order: OrderToEarn, config: EarningConfig = EarningConfig(), settings_: ProgramSettings = EUR,
         tier: Tier | None = None, **kw):  # noqa: ANN003, ANN201
    return compute_earnings(order, config, settings_, facts(**kw), tier=tier)


def test_ten_lines_of_99_cents_earn_9_points_and_the_lines_add_up():
    order = OrderToEarn(amount=990, lines=lines(*[(f"s{i}", 1, 99) for i in range(10)]))
    result = earn(order)
    assert result.points == 9  # floor(10 * 0.99), not 10 * floor(0.99) = 0
    per_line = [line["points"] for line in result.trace["lines"]]
    assert per_line == [1] * 9 + [0]  # equal remainders: the earlier lines first
    assert result.trace["rounding"] == {"exact_points": "99/10", "line_points": 9, "remainders_allocated": 9,
                                        "exact_cashback": "0", "cashback": 0}


def test_largest_remainder_goes_to_the_largest_fractions():
    assert allocate_largest_remainder([Fraction(13, 10), Fraction(17, 10), Fraction(1, 2)]) == [1, 2, 0]
    # floor(3.5) = 3: floors 1 + 1 + 0 = 2, one left for the largest remainder (0.7).


def test_multipliers_stack_additively_and_a_cap_scales_only_its_rule():
    order = OrderToEarn(amount=10_000, lines=lines(("A", 1, 6_000, "shoes"), ("B", 1, 4_000, "socks")))
    double = EarningRule(id="double", name="Double shoes", kind="multiplier", multiplier_bps=20_000,
                         conditions=Conditions(categories=("shoes",)))
    half_more = EarningRule(id="half", name="Half more", kind="multiplier", multiplier_bps=15_000)
    result = earn(order, EarningConfig(rules=(double, half_more)))
    # shoes: 60 + 60 (double) + 30 (half) = 150; socks: 40 + 20 = 60.
    assert [line["points"] for line in result.trace["lines"]] == [150, 60]
    assert result.points == 210

    capped = EarningRule(id="double", name="Double shoes", kind="multiplier", multiplier_bps=20_000,
                         conditions=Conditions(categories=("shoes",)), cap_points=100, cap_period="month")
    result = compute_earnings(order, EarningConfig(rules=(capped,)), EUR, facts(rule_used={"double": 75}))
    # 25 of the cap left: the rule adds 25 instead of 60.
    assert result.points == 100 + 25
    assert result.trace["caps"] == [{"source": "rule", "id": "double", "limit_left": 25, "wanted": "60",
                                     "granted": "25"}]
    assert [(a.source_id, a.points, a.occasion) for a in result.awards] == [("double", 25, "2026-11")]


def test_the_part_paid_with_rewards_and_excluded_lines_do_not_earn():
    settings_ = ProgramSettings(name="Shop", currency="EUR", excluded_categories=("gift_card",), earn_on_tax=False)
    order = OrderToEarn(amount=12_000, tax=1_000, lines=lines(("G", 1, 5_000, "gift_card"), ("S", 1, 6_000, "shoes")),
                        paid=3_000)
    result = earn(order, settings_=settings_)
    # The shoes line: 6_000 * (12_000 - 3_000) / 12_000 = 4_500 cents earn 45 points; gift card and tax nothing.
    assert result.points == 45
    gift, shoes, tax = result.trace["lines"]
    assert gift["excluded_because"] == "category gift_card does not earn" and gift["points"] == 0
    assert shoes["base"] == "4500" and shoes["points"] == 45
    assert tax["counted"] is False and tax["points"] == 0


def test_bonus_rules_need_a_matching_base_and_the_minimum_spend():
    bonus = EarningRule(id="b", name="Big basket", kind="bonus", bonus_points=50,
                        conditions=Conditions(min_spend=5_000, channels=("app",)))
    config = EarningConfig(rules=(bonus,))
    assert earn(OrderToEarn(amount=5_000, channel="app"), config).points == 50 + 50
    assert earn(OrderToEarn(amount=4_999, channel="app"), config).points == 49
    assert earn(OrderToEarn(amount=5_000, channel="web"), config).points == 50
    # A fully refunded order (nothing kept) keeps no bonus.
    assert compute_earnings(OrderToEarn(amount=5_000, channel="app"), config, EUR, facts(), keep=Fraction(0)).points == 0


def test_tier_multiplier_and_cashback_bonus():
    settings_ = ProgramSettings(name="Shop", currency="EUR", cashback_rate_bps=100)
    gold = Tier(id="gold", name="Gold", threshold=1, earn_multiplier_bps=12_500, cashback_bonus_bps=50)
    result = earn(OrderToEarn(amount=10_001), settings_=settings_, tier=gold)
    # 100.01 points * 1.25 = 125.0125 -> 125; cashback 10_001 * 1.5% = 150.015 -> 150.
    assert (result.points, result.cashback) == (125, 150)
    assert result.trace["tier"]["id"] == "gold"


def test_campaign_budget_limits_multiplier_and_bonus_together():
    campaign = Campaign(id="c", name="Launch", kind="window", multiplier_bps=20_000, bonus_points=10,
                        starts_on=date(2026, 11, 1), ends_on=date(2026, 11, 30), budget_points=100)
    result = compute_earnings(OrderToEarn(amount=5_000), EarningConfig(campaigns=(campaign,)), EUR,
                              facts(budget_left={"c": 55}))
    # The multiplier wants 50 and gets it; the bonus gets the 5 left of 55.
    assert result.points == 50 + 50 + 5
    assert [(a.source_id, a.points) for a in result.awards] == [("c", 55)]
    spent = compute_earnings(OrderToEarn(amount=5_000), EarningConfig(campaigns=(campaign,)), EUR,
                             facts(budget_left={"c": 0}))
    assert spent.points == 50 and spent.awards == ()


@pytest.mark.parametrize("birthday_month,day,awarded,expected", [
    (2, date(2027, 2, 10), frozenset(), True),  # born 29 February: February of a non-leap year counts
    (2, date(2027, 2, 10), frozenset({"bd:2027"}), False),  # once a year
    (2, date(2027, 3, 1), frozenset(), False),
])
def test_birthday_campaign_once_a_year_in_the_birthday_month(birthday_month, day, awarded, expected):
    campaign = Campaign(id="bd", name="Birthday", kind="birthday", bonus_points=100)
    at = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    applies, occasion = campaign_occasion(campaign, facts(occurred_at=at, birthday_month=birthday_month,
                                                          occasions_awarded=awarded))
    assert (applies, occasion) == (expected, str(day.year))


def test_anniversary_winback_and_frequency_occasions():
    at = datetime(2027, 5, 20, 12, tzinfo=timezone.utc)
    anniversary = Campaign(id="an", name="Anniversary", kind="anniversary", bonus_points=10)
    assert campaign_occasion(anniversary, facts(occurred_at=at, first_purchase_on=date(2026, 5, 2)))[0]
    assert not campaign_occasion(anniversary, facts(occurred_at=at, first_purchase_on=date(2027, 5, 2)))[0]
    assert not campaign_occasion(anniversary, facts(occurred_at=at, first_purchase_on=None))[0]
    winback = Campaign(id="wb", name="Welcome back", kind="winback", bonus_points=10, inactive_days=90)
    assert campaign_occasion(winback, facts(occurred_at=at, last_purchase_on=date(2027, 2, 19)))[0]  # 90 days
    assert not campaign_occasion(winback, facts(occurred_at=at, last_purchase_on=date(2027, 2, 20)))[0]
    assert not campaign_occasion(winback, facts(occurred_at=at))[0]  # a first purchase is no comeback
    third = Campaign(id="f", name="Third", kind="frequency", bonus_points=10, nth_purchase=3, period="month")
    assert campaign_occasion(third, facts(occurred_at=at, purchases_in_period={"month": 2})) == (True, "2027-05")
    assert not campaign_occasion(third, facts(occurred_at=at, purchases_in_period={"month": 3}))[0]


def test_invalid_configurations_are_refused():
    with pytest.raises(ValidationFailed):
        EarningRule(id="r", name="r", kind="bonus")
    with pytest.raises(ValidationFailed):
        EarningRule(id="r", name="r", kind="multiplier", cap_points=10)
    with pytest.raises(ValidationFailed):
        Campaign(id="c", name="c", kind="window", bonus_points=1)  # no dates
    with pytest.raises(ValidationFailed):
        TierLadder(tiers=(Tier("a", "A", 10),))  # the first tier starts at 0
    with pytest.raises(ValidationFailed):
        TierLadder(tiers=(Tier("a", "A", 0), Tier("b", "B", 0)))


def test_local_days_end_at_local_midnight_across_dst():
    # Paris leaves summer time on 25 October 2026: that day has 25 hours and ends at 23:00Z.
    assert end_of_local_day(date(2026, 10, 24), "Europe/Paris") == datetime(2026, 10, 24, 22, tzinfo=timezone.utc)
    assert end_of_local_day(date(2026, 10, 25), "Europe/Paris") == datetime(2026, 10, 25, 23, tzinfo=timezone.utc)
    assert end_of_local_day(date(2027, 3, 28), "Europe/Paris") == datetime(2027, 3, 28, 22, tzinfo=timezone.utc)
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert period_start(datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc), "Europe/Paris", "month") == \
        datetime(2026, 11, 30, 23, tzinfo=timezone.utc)  # already 1 December in Paris
    assert period_key(datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), "Europe/Paris", "year") == "2027"


def test_lot_expiry_by_days_months_and_end_of_month():
    paris = dict(name="Shop", currency="EUR", timezone="Europe/Paris", points_expiry="fixed")
    available = datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc)  # 27 November in Paris
    assert lot_expires_at(ProgramSettings(**paris, points_life_days=30), available) == \
        datetime(2026, 12, 27, 23, tzinfo=timezone.utc)  # end of 27 December, Paris
    assert lot_expires_at(ProgramSettings(**paris, points_life_months=3, points_life_end_of_month=True), available) == \
        datetime(2027, 2, 28, 23, tzinfo=timezone.utc)  # end of February 2027, Paris
    assert lot_expires_at(ProgramSettings(name="Shop", currency="EUR"), available) is None
    inactive = ProgramSettings(name="Shop", currency="EUR", points_expiry="inactivity", inactivity_days=365)
    assert inactivity_expiry(inactive, T) == datetime(2027, 11, 27, tzinfo=timezone.utc)
    with pytest.raises(ValidationFailed):
        ProgramSettings(name="Shop", currency="EUR", points_expiry="fixed")


line_strategy = st.builds(PurchaseLine, sku=st.sampled_from(["A", "B", "C", "D"]), quantity=st.integers(1, 5),
                          unit_price=st.integers(1, 50_000), category=st.sampled_from([None, "shoes", "food", "gift"]))
rule_strategy = st.one_of(
    st.builds(lambda rule_id, bps, conditions, cap: EarningRule(
        id=rule_id, name="rule", kind="multiplier", multiplier_bps=bps, conditions=conditions, cap_points=cap,
        cap_period="month" if cap else None),
        st.sampled_from(["r1", "r2", "r3"]), st.integers(0, 50_000),
        st.builds(Conditions, categories=st.sampled_from([(), ("shoes",), ("food",)]),
                  min_spend=st.sampled_from([0, 1_000, 100_000])),
        st.sampled_from([None, 5, 500])),
    st.builds(EarningRule, id=st.sampled_from(["b1", "b2"]), name=st.just("bonus"), kind=st.just("bonus"),
              bonus_points=st.integers(1, 1_000), conditions=st.builds(Conditions, skus=st.sampled_from([(), ("A",)]))),
)


@settings(max_examples=300, deadline=None)
@given(order_lines=st.lists(line_strategy, min_size=1, max_size=6), tax=st.integers(0, 3_000),
       paid_share=st.integers(0, 100), rules=st.lists(rule_strategy, max_size=4, unique_by=lambda r: r.id),
       ppu=st.integers(0, 7), unit=st.sampled_from([1, 100, 300]), bps=st.integers(0, 1_000),
       keep=st.fractions(0, 1), used=st.integers(0, 600))
def test_the_trace_adds_up_and_a_refund_never_keeps_more_than_was_earned(order_lines, tax, paid_share, rules, ppu,
                                                                         unit, bps, keep, used):
    amount = sum(line.net for line in order_lines) + tax
    settings_ = ProgramSettings(name="Shop", currency="EUR", points_per_unit=ppu, unit_amount=unit,
                                cashback_rate_bps=bps, excluded_categories=("gift",))
    order = OrderToEarn(amount=amount, tax=tax, lines=tuple(order_lines), paid=amount * paid_share // 100)
    config = EarningConfig(rules=tuple(rules))
    known = facts(rule_used={r.id: used for r in rules})
    result = compute_earnings(order, config, settings_, known)
    trace = result.trace
    assert sum(line["points"] for line in trace["lines"]) + sum(b["points"] for b in trace["bonuses"]) == result.points
    assert sum(line["cashback"] for line in trace["lines"]) == result.cashback
    exact = sum(Fraction(line["exact_points"]) for line in trace["lines"])
    assert trace["rounding"]["line_points"] == int(exact)  # floored once, for the whole order
    for line in trace["lines"]:  # each line got its floor or one more
        assert int(Fraction(line["exact_points"])) <= line["points"] <= int(Fraction(line["exact_points"])) + 1
    for rule in rules:  # a cap is never exceeded
        if rule.cap_points is not None:
            added = sum(a.points for a in result.awards if a.source_id == rule.id)
            assert added <= max(rule.cap_points - used, 0)
    kept = compute_earnings(order, config, settings_, known, keep=keep)
    # A reducing multiplier (x0.5) behind a minimum spend can make less of an order earn more, once
    # the minimum is no longer reached: that is why a refund keeps min(earned, recomputed).
    if not any(r.multiplier_bps < 10_000 and r.conditions.min_spend for r in rules):
        assert kept.points <= result.points
    assert kept.cashback <= result.cashback
    assert compute_earnings(order, config, settings_, known, keep=Fraction(0)).points == 0
