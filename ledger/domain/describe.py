"""Sentences a customer understands, for activity and for every entry's reason."""
from __future__ import annotations

from datetime import datetime

from .money import minor_unit_exponent


def money(amount: int, currency: str) -> str:
    """12345 EUR -> '123.45 EUR', exact (no float)."""
    exponent = minor_unit_exponent(currency) or 0
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d} {currency}" if exponent else f"{sign}{whole} {currency}"


def points(n: int) -> str:
    return f"{n:,} point" + ("" if abs(n) == 1 else "s")


def purchase_accrual(order_id: str, earned_points: int, earned_cashback: int, currency: str,
                     points_pending_until: datetime | None, cashback_pending_until: datetime | None) -> str:
    parts = []
    if earned_points:
        until = f" (pending until {points_pending_until:%Y-%m-%d})" if points_pending_until else ""
        parts.append(points(earned_points) + until)
    if earned_cashback:
        until = f" (pending until {cashback_pending_until:%Y-%m-%d})" if cashback_pending_until else ""
        parts.append(f"{money(earned_cashback, currency)} cashback" + until)
    return f"Earned {' and '.join(parts)} on order {order_id}"


def release(order_id: str, released_points: int, released_cashback: int, currency: str) -> str:
    parts = []
    if released_points:
        parts.append(points(released_points))
    if released_cashback:
        parts.append(f"{money(released_cashback, currency)} cashback")
    return f"{' and '.join(parts)} from order {order_id} can now be spent"
