"""Earning rules, campaigns and the tier ladder of a program: one immutable, versioned document.

Every change produces a new version; every accrual records the version it used, and a refund
recomputes with that version, never with today's. Multipliers are integer basis points
(10000 = x1). Campaign windows are local dates in the program's timezone, both ends included.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any

from .calendar import PERIODS, cap_errors
from .engagement import Achievement, EventRule
from .errors import ValidationFailed

RULE_KINDS = ("multiplier", "bonus")
CAMPAIGN_KINDS = ("window", "birthday", "anniversary", "winback", "frequency")
CHANNELS = ("web", "store", "app")
TIER_METRICS = ("qualifying_spend", "purchase_points")
TIER_WINDOWS = ("rolling", "calendar_year")
DOWNGRADES = ("one_tier", "to_qualified")
BPS_ONE = 10_000


def _tuple(value: Any) -> tuple:
    return tuple(value or ())


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a line or an order must match. Empty lists match everything.

    `categories` and `skus` select lines (a line matches if either list names it; both empty:
    every counted line, tax and shipping included); `channels` select orders; `min_spend` is the
    earning base (minor units) of the matching lines that the order must reach.
    """

    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    min_spend: int = 0

    def __post_init__(self) -> None:
        for name in ("categories", "skus", "channels"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    @property
    def selects_lines(self) -> bool:
        return bool(self.categories or self.skus)


@dataclass(frozen=True, slots=True)
class EarningRule:
    """A standing rule: a multiplier on matching lines, or a fixed bonus per matching order.

    `cap_points` limits what this rule adds for one customer per local `cap_period`.
    """

    id: str
    name: str
    kind: str
    multiplier_bps: int = BPS_ONE
    bonus_points: int = 0
    conditions: Conditions = field(default_factory=Conditions)
    cap_points: int | None = None
    cap_period: str | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        errors = []
        if self.kind not in RULE_KINDS:
            errors.append({"field": "kind", "message": f"must be one of {', '.join(RULE_KINDS)}"})
        if self.kind == "multiplier" and self.bonus_points:
            errors.append({"field": "bonus_points", "message": "a multiplier rule has no bonus_points"})
        if self.kind == "bonus" and (self.bonus_points <= 0 or self.multiplier_bps != BPS_ONE):
            errors.append({"field": "bonus_points", "message": "a bonus rule needs bonus_points > 0 and no multiplier"})
        errors += cap_errors(self.cap_points, self.cap_period)
        if errors:
            raise ValidationFailed(errors)


@dataclass(frozen=True, slots=True)
class Campaign:
    """A time-bound promotion, by kind:

    - `window`: every purchase between `starts_on` and `ends_on`;
    - `birthday`: the first purchase in the customer's birthday month, once per year;
    - `anniversary`: the first purchase in the month of the first purchase's anniversary, once per year;
    - `winback`: a purchase after `inactive_days` or more without one;
    - `frequency`: the `nth_purchase`-th purchase within the local `period`.
    `budget_points` (or `budget_value`, points valued at the program's redemption rate) stops it
    once spent across all customers.
    """

    id: str
    name: str
    kind: str
    multiplier_bps: int = BPS_ONE
    bonus_points: int = 0
    conditions: Conditions = field(default_factory=Conditions)
    starts_on: date | None = None
    ends_on: date | None = None
    budget_points: int | None = None
    budget_value: int | None = None
    inactive_days: int | None = None
    nth_purchase: int | None = None
    period: str | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        errors = []
        if self.kind not in CAMPAIGN_KINDS:
            errors.append({"field": "kind", "message": f"must be one of {', '.join(CAMPAIGN_KINDS)}"})
        if self.multiplier_bps == BPS_ONE and self.bonus_points == 0:
            errors.append({"field": "multiplier_bps", "message": "a campaign needs a multiplier other than 10000 or bonus_points"})
        if self.kind == "window" and (self.starts_on is None or self.ends_on is None):
            errors.append({"field": "starts_on", "message": "a window campaign needs starts_on and ends_on"})
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            errors.append({"field": "ends_on", "message": "must not be before starts_on"})
        if self.kind == "winback" and not self.inactive_days:
            errors.append({"field": "inactive_days", "message": "a winback campaign needs inactive_days"})
        if self.kind == "frequency" and (not self.nth_purchase or self.period not in PERIODS):
            errors.append({"field": "nth_purchase", "message": f"a frequency campaign needs nth_purchase and a period ({', '.join(PERIODS)})"})
        if self.budget_points is not None and self.budget_value is not None:
            errors.append({"field": "budget_value", "message": "give budget_points or budget_value, not both"})
        if errors:
            raise ValidationFailed(errors)

    def runs_on(self, day: date) -> bool:
        return (self.starts_on is None or day >= self.starts_on) and (self.ends_on is None or day <= self.ends_on)


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    name: str
    threshold: int
    earn_multiplier_bps: int = BPS_ONE
    cashback_bonus_bps: int = 0


@dataclass(frozen=True, slots=True)
class TierLadder:
    """Tiers by ascending threshold; the first has threshold 0 and is where every customer starts.

    The metric is `qualifying_spend` (purchase amounts net of refunds, minor units) or
    `purchase_points` (points earned on purchases net of clawbacks), counted over the last
    `window_days` (rolling) or the local calendar year. Upgrades happen on the qualifying purchase;
    downgrades only at evaluation (the year's end, or the anniversary of the last change) plus
    `grace_days`, by one tier or to the tier the customer qualifies for.
    """

    tiers: tuple[Tier, ...] = ()
    metric: str = "qualifying_spend"
    window: str = "rolling"
    window_days: int = 365
    grace_days: int = 0
    downgrade: str = "one_tier"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _tuple(self.tiers))
        errors = []
        if self.metric not in TIER_METRICS:
            errors.append({"field": "metric", "message": f"must be one of {', '.join(TIER_METRICS)}"})
        if self.window not in TIER_WINDOWS:
            errors.append({"field": "window", "message": f"must be one of {', '.join(TIER_WINDOWS)}"})
        if self.downgrade not in DOWNGRADES:
            errors.append({"field": "downgrade", "message": f"must be one of {', '.join(DOWNGRADES)}"})
        if self.tiers:
            if self.tiers[0].threshold != 0:
                errors.append({"field": "tiers.0.threshold", "message": "the first tier is where everyone starts: 0"})
            for index in range(1, len(self.tiers)):
                if self.tiers[index].threshold <= self.tiers[index - 1].threshold:
                    errors.append({"field": f"tiers.{index}.threshold", "message": "thresholds must strictly increase"})
            ids = [t.id for t in self.tiers]
            if len(set(ids)) != len(ids):
                errors.append({"field": "tiers", "message": "tier ids must be unique"})
        if errors:
            raise ValidationFailed(errors)

    def rank(self, tier_id: str | None) -> int:
        """Position of a tier in the ladder; an unknown or absent tier is the base tier."""
        for index, tier in enumerate(self.tiers):
            if tier.id == tier_id:
                return index
        return 0

    def get(self, tier_id: str | None) -> Tier | None:
        return self.tiers[self.rank(tier_id)] if self.tiers else None

    def qualified_for(self, metric: int) -> Tier:
        best = self.tiers[0]
        for tier in self.tiers:
            if metric >= tier.threshold:
                best = tier
        return best


@dataclass(frozen=True, slots=True)
class EarningConfig:
    version: int = 0
    rules: tuple[EarningRule, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    ladder: TierLadder = field(default_factory=TierLadder)
    event_rules: tuple[EventRule, ...] = ()
    achievements: tuple[Achievement, ...] = ()

    def __post_init__(self) -> None:
        for name in ("rules", "campaigns", "event_rules", "achievements"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    def items(self, collection: str) -> tuple:
        return getattr(self, collection)

    def with_item(self, collection: str, item: Any) -> "EarningConfig":
        """`item` added to (or replacing the one with its id in) rules, campaigns, event_rules or achievements."""
        return replace(self, **{collection: tuple(i for i in getattr(self, collection) if i.id != item.id) + (item,)})

    def without_item(self, collection: str, item_id: str) -> "EarningConfig":
        return replace(self, **{collection: tuple(i for i in getattr(self, collection) if i.id != item_id)})

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "EarningConfig":
        if not data:
            return cls()
        return cls(
            version=data.get("version", 0),
            rules=tuple(rule_from_dict(r) for r in data.get("rules", ())),
            campaigns=tuple(campaign_from_dict(c) for c in data.get("campaigns", ())),
            ladder=ladder_from_dict(data.get("ladder")),
            event_rules=tuple(EventRule(**_known(EventRule, r)) for r in data.get("event_rules", ())),
            achievements=tuple(Achievement(**_known(Achievement, a)) for a in data.get("achievements", ())),
        )

    def with_rule(self, rule: EarningRule) -> "EarningConfig":
        return replace(self, rules=tuple(r for r in self.rules if r.id != rule.id) + (rule,))

    def without_rule(self, rule_id: str) -> "EarningConfig":
        return replace(self, rules=tuple(r for r in self.rules if r.id != rule_id))

    def with_campaign(self, campaign: Campaign) -> "EarningConfig":
        return replace(self, campaigns=tuple(c for c in self.campaigns if c.id != campaign.id) + (campaign,))

    def without_campaign(self, campaign_id: str) -> "EarningConfig":
        return replace(self, campaigns=tuple(c for c in self.campaigns if c.id != campaign_id))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def conditions_from_dict(data: dict[str, Any] | None) -> Conditions:
    return Conditions(**_known(Conditions, data or {}))


def rule_from_dict(data: dict[str, Any]) -> EarningRule:
    values = _known(EarningRule, data)
    values["conditions"] = conditions_from_dict(data.get("conditions"))
    return EarningRule(**values)


def campaign_from_dict(data: dict[str, Any]) -> Campaign:
    values = _known(Campaign, data)
    values["conditions"] = conditions_from_dict(data.get("conditions"))
    for name in ("starts_on", "ends_on"):
        if isinstance(values.get(name), str):
            values[name] = date.fromisoformat(values[name])
    return Campaign(**values)


def ladder_from_dict(data: dict[str, Any] | None) -> TierLadder:
    if not data:
        return TierLadder()
    values = _known(TierLadder, data)
    values["tiers"] = tuple(Tier(**_known(Tier, t)) for t in data.get("tiers", ()))
    return TierLadder(**values)
