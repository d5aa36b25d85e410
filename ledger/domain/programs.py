"""A loyalty program and its settings."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

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

    def __post_init__(self) -> None:
        if self.unit_amount is None:
            object.__setattr__(self, "unit_amount", one_major_unit(self.currency))

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

    @property
    def currency(self) -> str:
        return self.settings.currency
