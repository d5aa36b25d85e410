"""What a purchase earns, with a trace a person can follow. Integer and exact-fraction arithmetic only.

The computation, in order:
1. Base per line, in minor units: the line's net (quantity * unit_price - discount), zero for an
   excluded category or SKU; tax and shipping are lines of their own, counted if the program says
   so. Every base is multiplied by (amount - paid) / amount, where `paid` is the value of points
   and cashback captured for the order: the part paid with rewards never earns.
2. Base points per line: base * points_per_unit / unit_amount, an exact fraction.
3. Multipliers stack additively: each applicable rule multiplier, then campaign multiplier, then
   the tier's multiplier adds base_points * (multiplier_bps - 10000) / 10000 to the lines it
   matches. A rule's cap or a campaign's budget scales down what that source adds. A line never
   goes below zero.
4. Fixed bonuses (rules, then campaigns) are whole points per order, after caps and budgets.
5. Rounding: the order's exact line total is floored once and allocated back to the lines by
   largest remainder (ties to the earlier line), so the lines add up to the total.
6. Cashback: base * (cashback_rate_bps + tier cashback_bonus_bps) / 10000 per line, floored once
   for the order and allocated the same way. Rules and campaigns award points only.
Points earned = the allocated line points + the bonuses. Exact values in the trace are fractions
written "n/d".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import Any, Sequence

from .calendar import period_key
from .earning_config import BPS_ONE, Campaign, Conditions, EarningConfig, EarningRule, Tier
from .errors import AmountTooLarge, LinesMismatch
from .money import fits_int64
from .programs import ProgramSettings


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    sku: str
    quantity: int
    unit_price: int
    category: str | None = None
    discount: int = 0

    @property
    def net(self) -> int:
        return self.quantity * self.unit_price - self.discount


@dataclass(frozen=True, slots=True)
class Earnings:
    points: int
    cashback: int


def check_lines_reconcile(amount: int, lines: Sequence[PurchaseLine], tax: int, shipping: int) -> None:
    """sum(quantity * unit_price - discount) + tax + shipping must equal amount."""
    for index, line in enumerate(lines):
        if line.net < 0:
            raise LinesMismatch(f"lines.{index}: discount exceeds quantity * unit_price")
    total = sum(line.net for line in lines) + tax + shipping
    if total != amount:
        raise LinesMismatch(
            f"lines, tax and shipping add up to {total}, not the amount {amount}",
            expected=amount, actual=total,
        )


@dataclass(frozen=True, slots=True)
class OrderToEarn:
    """An order as the earning computation sees it. `paid` is the value captured from rewards for it."""

    amount: int
    tax: int = 0
    shipping: int = 0
    channel: str | None = None
    lines: tuple[PurchaseLine, ...] | None = None
    paid: int = 0


@dataclass(frozen=True, slots=True)
class EarningFacts:
    """What the computation knows of the customer and the program when the purchase happened.

    Recorded with the purchase, so a refund recomputes against the same facts.
    """

    occurred_at: datetime
    timezone: str = "UTC"
    birthday_month: int | None = None
    first_purchase_on: date | None = None  # local date of the customer's earliest earlier purchase
    last_purchase_on: date | None = None  # local date of the latest earlier purchase
    purchases_in_period: dict[str, int] = field(default_factory=dict)  # earlier purchases in this local period
    rule_used: dict[str, int] = field(default_factory=dict)  # points a capped rule already added this period
    occasions_awarded: frozenset[str] = frozenset()  # "campaign_id:occasion" already awarded to the customer
    budget_left: dict[str, int] = field(default_factory=dict)  # points left of a budgeted campaign
    tier_id: str | None = None

    @property
    def local_date(self) -> date:
        from .calendar import local_date
        return local_date(self.occurred_at, self.timezone)

    def to_dict(self) -> dict[str, Any]:
        return {
            "occurred_at": self.occurred_at.isoformat(), "timezone": self.timezone,
            "birthday_month": self.birthday_month,
            "first_purchase_on": self.first_purchase_on.isoformat() if self.first_purchase_on else None,
            "last_purchase_on": self.last_purchase_on.isoformat() if self.last_purchase_on else None,
            "purchases_in_period": dict(self.purchases_in_period), "rule_used": dict(self.rule_used),
            "occasions_awarded": sorted(self.occasions_awarded), "budget_left": dict(self.budget_left),
            "tier_id": self.tier_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EarningFacts":
        def day(value: str | None) -> date | None:
            return date.fromisoformat(value) if value else None
        return cls(
            occurred_at=datetime.fromisoformat(data["occurred_at"]), timezone=data.get("timezone", "UTC"),
            birthday_month=data.get("birthday_month"), first_purchase_on=day(data.get("first_purchase_on")),
            last_purchase_on=day(data.get("last_purchase_on")),
            purchases_in_period=dict(data.get("purchases_in_period") or {}),
            rule_used=dict(data.get("rule_used") or {}),
            occasions_awarded=frozenset(data.get("occasions_awarded") or ()),
            budget_left=dict(data.get("budget_left") or {}), tier_id=data.get("tier_id"),
        )


@dataclass(frozen=True, slots=True)
class Award:
    """What one rule or campaign added to a purchase, rounded up for its cap or budget."""

    source: str  # "rule" or "campaign"
    source_id: str
    points: int
    occasion: str | None


@dataclass(frozen=True, slots=True)
class EarningResult:
    points: int
    cashback: int
    trace: dict[str, Any]
    awards: tuple[Award, ...]


@dataclass(slots=True)
class _Item:
    label: str
    sku: str | None
    category: str | None
    net: int
    counted: bool
    excluded_because: str | None
    base: Fraction = Fraction(0)
    base_points: Fraction = Fraction(0)
    multipliers: list[dict[str, Any]] = field(default_factory=list)
    exact: Fraction = Fraction(0)
    points: int = 0
    exact_cashback: Fraction = Fraction(0)
    cashback: int = 0

    @property
    def is_line(self) -> bool:
        return self.label not in ("tax", "shipping")


def _frac(value: Fraction) -> str:
    return str(value)


def allocate_largest_remainder(exact: Sequence[Fraction]) -> list[int]:
    """Floor the sum once, give each part its floor, then hand the leftover units to the largest
    remainders (earlier parts first on ties). The parts add up to floor(sum(exact))."""
    floors = [math.floor(x) for x in exact]
    leftover = math.floor(sum(exact, Fraction(0))) - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return floors


def _matches_line(conditions: Conditions, item: _Item) -> bool:
    if not item.counted:
        return False
    if not conditions.selects_lines:
        return True
    if not item.is_line:
        return False
    return (item.category is not None and item.category in conditions.categories) or \
        (item.sku is not None and item.sku in conditions.skus)


def _order_matches(conditions: Conditions, channel: str | None, items: list[_Item]) -> list[_Item] | None:
    """The matching lines if the order qualifies (channel, a matching base above zero, minimum spend)."""
    if conditions.channels and channel not in conditions.channels:
        return None
    matching = [item for item in items if _matches_line(conditions, item)]
    spend = sum((item.base for item in matching), Fraction(0))
    if spend <= 0 or spend < conditions.min_spend:
        return None
    return matching


def campaign_occasion(campaign: Campaign, facts: EarningFacts) -> tuple[bool, str | None]:
    """Whether the campaign applies to this purchase's moment and customer, and the occasion it
    is awarded for (once per occasion)."""
    day = facts.local_date
    if not campaign.runs_on(day):
        return False, None
    if campaign.kind == "window":
        return True, None
    if campaign.kind == "birthday":
        occasion = str(day.year)
        return facts.birthday_month == day.month and f"{campaign.id}:{occasion}" not in facts.occasions_awarded, occasion
    if campaign.kind == "anniversary":
        first = facts.first_purchase_on
        occasion = str(day.year)
        ok = first is not None and first.month == day.month and day.year > first.year
        return ok and f"{campaign.id}:{occasion}" not in facts.occasions_awarded, occasion
    if campaign.kind == "winback":
        last = facts.last_purchase_on
        return last is not None and (day - last).days >= (campaign.inactive_days or 0), None
    if campaign.kind == "frequency":
        occasion = period_key(facts.occurred_at, facts.timezone, campaign.period or "month")
        nth = facts.purchases_in_period.get(campaign.period or "month", 0) == (campaign.nth_purchase or 0) - 1
        return nth and f"{campaign.id}:{occasion}" not in facts.occasions_awarded, occasion
    return False, None


def compute_earnings(order: OrderToEarn, config: EarningConfig, settings: ProgramSettings, facts: EarningFacts,
                     keep: Fraction = Fraction(1), line_keep: Sequence[Fraction] | None = None,
                     tier: Tier | None = None) -> EarningResult:
    """What `order` earns. `keep` (the whole order) and `line_keep` (per line) are the shares still
    kept after refunds, for recomputing what a partly refunded order keeps; 1 for a purchase."""
    items: list[_Item] = []
    excluded_categories, excluded_skus = set(settings.excluded_categories), set(settings.excluded_skus)
    if order.lines is not None:
        for index, line in enumerate(order.lines):
            reason = None
            if line.category is not None and line.category in excluded_categories:
                reason = f"category {line.category} does not earn"
            elif line.sku in excluded_skus:
                reason = f"sku {line.sku} does not earn"
            items.append(_Item(str(index), line.sku, line.category, line.net, reason is None, reason))
    else:
        items.append(_Item("order", None, None, order.amount - order.tax - order.shipping, True, None))
    if order.tax:
        items.append(_Item("tax", None, None, order.tax, settings.earn_on_tax,
                           None if settings.earn_on_tax else "tax does not earn in this program"))
    if order.shipping:
        items.append(_Item("shipping", None, None, order.shipping, settings.earn_on_shipping,
                           None if settings.earn_on_shipping else "shipping does not earn in this program"))

    paid = min(max(order.paid, 0), order.amount)
    earning_share = Fraction(order.amount - paid, order.amount) if order.amount > 0 else Fraction(0)
    line_index = 0
    for item in items:
        share = earning_share * keep
        if item.is_line and line_keep is not None and order.lines is not None:
            share *= line_keep[line_index]
        if item.is_line:
            line_index += 1
        item.base = item.net * share if item.counted else Fraction(0)
        item.base_points = item.base * settings.points_per_unit / settings.unit_amount
        item.exact = item.base_points

    caps: list[dict[str, Any]] = []
    bonuses: list[dict[str, Any]] = []
    awards: list[Award] = []

    def add_multiplier(source: str, source_id: str, name: str, multiplier_bps: int, matching: list[_Item],
                       limit: int | None) -> Fraction:
        extras = [(item, item.base_points * (multiplier_bps - BPS_ONE) / BPS_ONE) for item in matching]
        wanted = sum((extra for _, extra in extras), Fraction(0))
        scale = Fraction(1)
        if limit is not None and wanted > limit:
            scale = Fraction(limit) / wanted if wanted > 0 else Fraction(1)
            caps.append({"source": source, "id": source_id, "limit_left": limit,
                         "wanted": _frac(wanted), "granted": _frac(wanted * scale)})
        for item, extra in extras:
            granted = extra * scale
            item.exact += granted
            item.multipliers.append({"source": source, "id": source_id, "name": name,
                                     "multiplier_bps": multiplier_bps, "points": _frac(granted)})
        return wanted * scale

    def add_bonus(source: str, source_id: str, name: str, points: int, limit: int | None) -> int:
        granted = points if limit is None else max(min(points, limit), 0)
        if granted < points:
            caps.append({"source": source, "id": source_id, "limit_left": limit,
                         "wanted": str(points), "granted": str(granted)})
        if granted > 0:
            bonuses.append({"source": source, "id": source_id, "name": name, "points": granted})
        return granted

    def rule_limit(rule: EarningRule) -> int | None:
        if rule.cap_points is None:
            return None
        return max(rule.cap_points - facts.rule_used.get(rule.id, 0), 0)

    bonus_total = 0
    for rule in sorted(config.rules, key=lambda r: (r.priority, r.id)):
        matching = _order_matches(rule.conditions, order.channel, items)
        if matching is None:
            continue
        limit = rule_limit(rule)
        occasion = period_key(facts.occurred_at, facts.timezone, rule.cap_period) if rule.cap_period else None
        if rule.kind == "multiplier":
            added = add_multiplier("rule", rule.id, rule.name, rule.multiplier_bps, matching, limit)
        else:
            added = add_bonus("rule", rule.id, rule.name, rule.bonus_points, limit)
            bonus_total += added
        if added > 0:
            awards.append(Award("rule", rule.id, math.ceil(added), occasion))

    for campaign in sorted(config.campaigns, key=lambda c: (c.priority, c.id)):
        applies, occasion = campaign_occasion(campaign, facts)
        if not applies:
            continue
        matching = _order_matches(campaign.conditions, order.channel, items)
        if matching is None:
            continue
        limit = facts.budget_left.get(campaign.id) if (campaign.budget_points is not None
                                                       or campaign.budget_value is not None) else None
        if limit is not None and limit <= 0:
            continue
        added = Fraction(0)
        if campaign.multiplier_bps != BPS_ONE:
            added += add_multiplier("campaign", campaign.id, campaign.name, campaign.multiplier_bps, matching, limit)
        if campaign.bonus_points:
            bonus_limit = None if limit is None else math.floor(limit - added)
            granted = add_bonus("campaign", campaign.id, campaign.name, campaign.bonus_points, bonus_limit)
            bonus_total += granted
            added += granted
        if added > 0:
            awards.append(Award("campaign", campaign.id, math.ceil(added), occasion))

    if tier is not None and tier.earn_multiplier_bps != BPS_ONE:
        add_multiplier("tier", tier.id, tier.name, tier.earn_multiplier_bps,
                       [item for item in items if item.counted], None)

    for item in items:
        item.exact = max(item.exact, Fraction(0))
    exact_points = sum((item.exact for item in items), Fraction(0))
    for item, points in zip(items, allocate_largest_remainder([item.exact for item in items])):
        item.points = points

    cashback_bps = settings.cashback_rate_bps + (tier.cashback_bonus_bps if tier else 0)
    for item in items:
        item.exact_cashback = item.base * cashback_bps / BPS_ONE
    exact_cashback = sum((item.exact_cashback for item in items), Fraction(0))
    for item, cashback in zip(items, allocate_largest_remainder([item.exact_cashback for item in items])):
        item.cashback = cashback

    line_points = sum(item.points for item in items)
    points = line_points + bonus_total
    cashback = sum(item.cashback for item in items)
    if not (fits_int64(points) and fits_int64(cashback)):
        raise AmountTooLarge("what this purchase earns would not fit a 64-bit integer")
    trace = {
        "config_version": config.version,
        "base": {"amount": order.amount, "paid_with_rewards": paid, "earning_share": _frac(earning_share * keep),
                 "tax_counted": settings.earn_on_tax, "shipping_counted": settings.earn_on_shipping,
                 "points_per_unit": settings.points_per_unit, "unit_amount": settings.unit_amount,
                 "cashback_rate_bps": cashback_bps},
        "tier": ({"id": tier.id, "name": tier.name, "earn_multiplier_bps": tier.earn_multiplier_bps,
                  "cashback_bonus_bps": tier.cashback_bonus_bps} if tier else None),
        "lines": [{
            "line": item.label, "sku": item.sku, "category": item.category, "net": item.net,
            "counted": item.counted, "excluded_because": item.excluded_because, "base": _frac(item.base),
            "base_points": _frac(item.base_points), "multipliers": item.multipliers,
            "exact_points": _frac(item.exact), "points": item.points,
            "exact_cashback": _frac(item.exact_cashback), "cashback": item.cashback,
        } for item in items],
        "bonuses": bonuses,
        "caps": caps,
        "rounding": {"exact_points": _frac(exact_points), "line_points": line_points,
                     "remainders_allocated": line_points - sum(math.floor(item.exact) for item in items),
                     "exact_cashback": _frac(exact_cashback), "cashback": cashback},
        "points": points,
        "cashback": cashback,
    }
    return EarningResult(points=points, cashback=cashback, trace=trace, awards=tuple(awards))


def purchase_earnings(amount: int, settings: ProgramSettings) -> Earnings:
    """What `amount` earns at the program's base rates alone: no lines, rules, campaigns or tier."""
    result = compute_earnings(OrderToEarn(amount=amount), EarningConfig(), settings,
                              EarningFacts(occurred_at=datetime(2000, 1, 1).astimezone()))
    return Earnings(points=result.points, cashback=result.cashback)
