"""A loyalty program and its settings."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from .errors import ValidationFailed
from .money import one_major_unit

ROLES = ("admin", "storefront", "app", "finance")


@dataclass(frozen=True, slots=True)
class ProgramSettings:
    """Earning and redemption settings. Integers only; `currency` never changes.

    points earned = floor(amount * points_per_unit / unit_amount);
    cashback earned = floor(amount * cashback_rate_bps / 10000).
    """

    name: str
    currency: str
    timezone: str = "UTC"
    points_per_unit: int = 1
    unit_amount: int | None = None  # None: one major unit of the currency
    cashback_rate_bps: int = 0
    cashback_hold_days: int = 30
    points_hold_days: int = 0
    redeem_minor_units: int = 1  # a points redemption is worth floor(points * redeem_minor_units / redeem_points)
    redeem_points: int = 1
    min_redeem_points: int = 0
    redeem_step_points: int = 1
    max_redeem_share_bps: int = 10_000  # of an order's amount that points or cashback may pay
    hold_ttl_seconds: int = 900
    clawback_policy: str = "allow_negative"  # or "write_off"
    earn_on_tax: bool = True
    earn_on_shipping: bool = True
    excluded_categories: tuple[str, ...] = ()  # lines in these categories earn nothing (gift cards)
    excluded_skus: tuple[str, ...] = ()
    # Points expiry: "none"; "fixed" (each lot lives points_life_days or points_life_months from when it
    # becomes available, to the end of that local day, or of that month with points_life_end_of_month);
    # "inactivity" (everything available expires after inactivity_days without a purchase or redemption).
    points_expiry: str = "none"
    points_life_days: int | None = None
    points_life_months: int | None = None
    points_life_end_of_month: bool = False
    inactivity_days: int | None = None
    # Points restored by a refund keep their lot's expiry; if it has passed: "reissue" for
    # reissue_days, or "expire" them at once.
    restored_after_expiry: str = "reissue"
    reissue_days: int = 30
    # Referrals: rewarded on the referee's first purchase of at least referral_min_purchase. The
    # referrer's reward is pending until that purchase's return window has passed; the referee's is
    # usable on that very order ("on_first_order") or after the window ("after_window").
    referrer_reward_points: int = 0
    referrer_reward_cashback: int = 0
    referee_reward_points: int = 0
    referee_reward_cashback: int = 0
    referral_min_purchase: int = 0
    referral_cap: int | None = None  # rewarded referrals per referrer per local referral_cap_period
    referral_cap_period: str = "month"
    referee_reward_timing: str = "after_window"
    # Finance: adjustments worth more than this (minor units) need a second finance key's approval.
    adjustment_approval_threshold: int | None = None
    activity_window_days: int = 365  # retention analytics: active = a purchase in the last this many days
    forfeit_cashback_on_close: bool = False

    def __post_init__(self) -> None:
        if self.unit_amount is None:
            object.__setattr__(self, "unit_amount", one_major_unit(self.currency))
        object.__setattr__(self, "excluded_categories", tuple(self.excluded_categories or ()))
        object.__setattr__(self, "excluded_skus", tuple(self.excluded_skus or ()))
        errors = []
        if self.points_expiry == "fixed" and (self.points_life_days is None) == (self.points_life_months is None):
            errors.append({"field": "points_life_days",
                           "message": "fixed expiry needs points_life_days or points_life_months (one of them)"})
        if self.points_expiry == "inactivity" and self.inactivity_days is None:
            errors.append({"field": "inactivity_days", "message": "inactivity expiry needs inactivity_days"})
        if errors:
            raise ValidationFailed(errors)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProgramSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def merged(self, changes: dict[str, Any]) -> "ProgramSettings":
        return replace(self, **changes)

    def points_value(self, points: int) -> int:
        """Money value of points in minor units, floored."""
        return points * self.redeem_minor_units // self.redeem_points

    def points_for_value(self, value: int) -> int:
        """The most points whose value does not exceed `value` minor units."""
        return value * self.redeem_points // self.redeem_minor_units

    @property
    def return_window_days(self) -> int:
        """One window per purchase where one is needed: the longer of the two holds."""
        return max(self.points_hold_days, self.cashback_hold_days)


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    settings: ProgramSettings
    created_at: datetime
    earning_version: int = 0  # the earning configuration version in force (0: none yet)

    @property
    def currency(self) -> str:
        return self.settings.currency
