"""What a purchase earns. Integer arithmetic only; results are floored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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


def purchase_earnings(amount: int, settings: ProgramSettings) -> Earnings:
    """floor(amount * points_per_unit / unit_amount) points, floor(amount * bps / 10000) cashback."""
    points = amount * settings.points_per_unit // settings.unit_amount
    cashback = amount * settings.cashback_rate_bps // 10_000
    if not (fits_int64(points) and fits_int64(cashback)):
        raise AmountTooLarge("what this purchase earns would not fit a 64-bit integer")
    return Earnings(points=points, cashback=cashback)
