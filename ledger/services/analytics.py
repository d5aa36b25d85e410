"""Retention analytics: who keeps buying, what they spend, what they say (docs/retention.md).

Purchases are dated by `occurred_at` (when they happened in the business), not by recorded time.
A purchase whose refunds add up to its amount is *fully refunded* and treated as if it never
happened; a partly refunded one counts as an order, for its net revenue (amount minus its refunds).
Refunds count as they stand when the report is computed, whenever they occurred.

Everything is an integer: a rate is `{numerator, denominator, bps}` with bps floored
(numerator * 10000 // denominator, null when the denominator is 0); an average in money is
`{numerator, denominator, amount}` with amount in minor units, floored; NPS is floored.

The helpers above `retention` are pure: the unit tests call them without a database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import groupby
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from ..domain.errors import ProgramNotFound, ValidationFailed
from .ports import UnitOfWork

DEFAULT_PERIOD = timedelta(days=30)
EXPIRING_WITHIN = timedelta(days=30)
BPS = 10_000


# -- exact arithmetic ------------------------------------------------------------------------------

def rate(numerator: int, denominator: int) -> dict[str, int | None]:
    """A ratio without floats: bps = floor(numerator * 10000 / denominator); null for 0/0 or n/0."""
    return {"numerator": numerator, "denominator": denominator,
            "bps": numerator * BPS // denominator if denominator else None}


def average_money(total: int, count: int) -> dict[str, int | None]:
    """Money per unit in minor units: amount = floor(total / count); null when count is 0."""
    return {"numerator": total, "denominator": count, "amount": total // count if count else None}


def is_fully_refunded(amount: int, refunded: int) -> bool:
    """A purchase is fully refunded when its refunds add up to its amount (they never exceed it)."""
    return refunded >= amount


def net_revenue(amount: int, refunded: int) -> int:
    return amount - refunded


def nps(scores: Iterable[int]) -> dict[str, int | None]:
    """Net Promoter Score of one score per respondent: promoters score 9-10, passives 7-8, detractors
    0-6; score = floor(100 * (promoters - detractors) / responses), null without responses."""
    promoters = passives = detractors = 0
    for score in scores:
        if score >= 9:
            promoters += 1
        elif score >= 7:
            passives += 1
        else:
            detractors += 1
    responses = promoters + passives + detractors
    return {"score": 100 * (promoters - detractors) // responses if responses else None,
            "promoters": promoters, "passives": passives, "detractors": detractors, "responses": responses}


def latest_scores(responses: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """Each customer's latest response (by occurred_at, then event id): customer_pk -> score."""
    latest: dict[int, tuple[datetime, int, int]] = {}
    for r in responses:
        key = (r["occurred_at"], r["id"])
        seen = latest.get(r["customer_pk"])
        if seen is None or key > seen[:2]:
            latest[r["customer_pk"]] = (r["occurred_at"], r["id"], (r["properties"] or {})["score"])
    return {pk: score for pk, (_, _, score) in latest.items()}


def is_active_at(moments: Iterable[datetime], t: datetime, window: timedelta) -> bool:
    """Active at t: a purchase (not fully refunded) that occurred in [t - window, t)."""
    return any(t - window <= m < t for m in moments)


def month_of(instant: datetime, tz: str) -> str:
    """The program-local month of an instant, as YYYY-MM."""
    return instant.astimezone(ZoneInfo(tz)).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_pk: int
    id: int
    occurred_at: datetime
    amount: int
    refunded: int = 0

    @property
    def net(self) -> int:
        return net_revenue(self.amount, self.refunded)


@dataclass
class PurchaseFigures:
    """What the purchases say about [start, end): see `purchase_figures`."""

    orders: int = 0  # orders in the period, fully refunded ones left out
    returning_orders: int = 0  # ... of them placed by a customer who had bought before
    net_revenue: int = 0  # net revenue of the period's orders
    purchasing_customers: int = 0  # customers with an order in the period
    active_at_start: int = 0  # |S|
    active_at_end: int = 0  # |E|
    new_active: int = 0  # |N|: in E, first purchase in the period
    retained: int = 0  # |S and E|
    churned: int = 0  # |S not in E|
    start_cohort_revenue: int = 0  # net revenue of S in the period
    start_cohort_previous_revenue: int = 0  # net revenue of S in the preceding period of equal length
    cohorts: dict[str, list[int]] = field(default_factory=dict)  # month -> [customers, net revenue to end]

    def to_dict(self) -> dict[str, Any]:
        s, e, n = self.active_at_start, self.active_at_end, self.new_active
        return {
            "orders": self.orders,
            "net_revenue": self.net_revenue,
            "purchasing_customers": self.purchasing_customers,
            "customers": {"active_at_start": s, "active_at_end": e, "new": n, "retained": self.retained,
                          "churned": self.churned},
            "repurchase_rate": rate(self.returning_orders, self.orders),
            "customer_retention_rate": rate(e - n, s),
            "retained_share": rate(self.retained, s),
            "churn_rate": rate(self.churned, s),
            "average_order_value": average_money(self.net_revenue, self.orders),
            "purchase_frequency": rate(self.orders, self.purchasing_customers),
            "net_revenue_retention": rate(self.start_cohort_revenue, self.start_cohort_previous_revenue),
            "active_members": e,
            "clv_cohorts": [{"month": month, "customers": customers, "net_revenue": revenue,
                             "clv": average_money(revenue, customers)}
                            for month, (customers, revenue) in sorted(self.cohorts.items())],
        }


def purchase_figures(purchases: Iterable[Purchase], start: datetime, end: datetime, window: timedelta,
                     tz: str = "UTC") -> PurchaseFigures:
    """One pass over the program's purchases that occurred before `end`, grouped by customer
    (customers in any order, each customer's purchases contiguous). Fully refunded purchases are
    left out before anything is counted."""
    previous_start = start - (end - start)
    figures = PurchaseFigures()
    for _pk, group in groupby(purchases, key=lambda p: p.customer_pk):
        kept = sorted((p for p in group if not is_fully_refunded(p.amount, p.refunded)),
                      key=lambda p: (p.occurred_at, p.id))
        kept = [p for p in kept if p.occurred_at < end]
        if not kept:
            continue
        moments = [p.occurred_at for p in kept]
        in_period = [(i, p) for i, p in enumerate(kept) if start <= p.occurred_at < end]
        figures.orders += len(in_period)
        figures.returning_orders += sum(1 for i, _ in in_period if i > 0)  # an earlier kept purchase exists
        period_revenue = sum(p.net for _, p in in_period)
        figures.net_revenue += period_revenue
        figures.purchasing_customers += 1 if in_period else 0
        at_start, at_end = is_active_at(moments, start, window), is_active_at(moments, end, window)
        new = start <= kept[0].occurred_at  # first purchase in the period (all kept ones are before end)
        figures.active_at_start += at_start
        figures.active_at_end += at_end
        figures.new_active += at_end and new
        figures.retained += at_start and at_end
        figures.churned += at_start and not at_end
        if at_start:
            figures.start_cohort_revenue += period_revenue
            figures.start_cohort_previous_revenue += sum(p.net for p in kept if previous_start <= p.occurred_at < start)
        cohort = figures.cohorts.setdefault(month_of(kept[0].occurred_at, tz), [0, 0])
        cohort[0] += 1
        cohort[1] += sum(p.net for p in kept)
    return figures


def period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """Defaults: end = now, start = end - 30 days. start must come before end."""
    try:
        end = (end or now).astimezone(timezone.utc)
    except OverflowError:
        raise ValidationFailed([{"field": "to", "message": "out of range"}]) from None
    try:
        start = (start or end - DEFAULT_PERIOD).astimezone(timezone.utc)
    except OverflowError:
        raise ValidationFailed([{"field": "from", "message": "out of range"}]) from None
    if start >= end:
        raise ValidationFailed([{"field": "to", "message": "must be after from"}])
    return start, end


def check_reach(start: datetime, end: datetime, window: timedelta) -> None:
    """The instants the report reaches beyond [start, end) must exist: the preceding period and the
    activity window before it, and the 30 days after `end`."""
    try:
        start - (end - start) - window
    except OverflowError:
        raise ValidationFailed([{"field": "from", "message": "out of range: the preceding period or the "
                                                            "activity window starts before year 1"}]) from None
    try:
        end + EXPIRING_WITHIN
    except OverflowError:
        raise ValidationFailed([{"field": "to", "message": "out of range: 30 days after it end after "
                                                          "year 9999"}]) from None


# -- the use case ----------------------------------------------------------------------------------

def retention(uow: UnitOfWork, program_id: str, start: datetime | None, end: datetime | None,
              now: datetime) -> dict[str, Any]:
    """The retention report for [start, end) (default: the 30 days before now)."""
    start, end = period(start, end, now)
    program = uow.programs.get(program_id)
    if program is None:
        raise ProgramNotFound(f"program {program_id} not found")
    settings = program.settings
    window = timedelta(days=settings.activity_window_days)
    check_reach(start, end, window)
    rows = uow.analytics.purchases(program_id, end)  # type: ignore[attr-defined]
    figures = purchase_figures((Purchase(r["customer_pk"], r["id"], r["occurred_at"], r["amount"], r["refunded"])
                                for r in rows), start, end, window, settings.timezone)
    scores = latest_scores(uow.analytics.nps_responses(program_id, start, end))  # type: ignore[attr-defined]
    expiring = uow.analytics.expiring_points(program_id, end, end + EXPIRING_WITHIN)  # type: ignore[attr-defined]
    return {
        "from": start, "to": end, "previous_from": start - (end - start),
        "activity_window_days": settings.activity_window_days, "currency": settings.currency,
        "timezone": settings.timezone, "computed_at": now,
        **figures.to_dict(),
        "nps": nps(scores.values()),
        "expiring_points": {**expiring, "from": end, "to": end + EXPIRING_WITHIN},
    }
