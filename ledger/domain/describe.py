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


def both(amount_points: int, amount_cashback: int, currency: str) -> str:
    """'12 points and 1.50 EUR cashback', naming only what is not zero."""
    parts = [points(amount_points)] if amount_points else []
    if amount_cashback:
        parts.append(f"{money(amount_cashback, currency)} cashback")
    return " and ".join(parts)


def release(order_id: str, released_points: int, released_cashback: int, currency: str) -> str:
    return f"{both(released_points, released_cashback, currency)} from order {order_id} can now be spent"


def value_of(asset: str, amount: int, currency: str) -> str:
    return points(amount) if asset == "points" else f"{money(amount, currency)} cashback"


def _for_order(order_id: str | None) -> str:
    return f" for order {order_id}" if order_id else ""


def hold(asset: str, amount: int, currency: str, order_id: str | None) -> str:
    return f"Reserved {value_of(asset, amount, currency)} at checkout{_for_order(order_id)}"


def capture(asset: str, captured: int, returned: int, currency: str, order_id: str | None) -> str:
    text = f"Spent {value_of(asset, captured, currency)}{_for_order(order_id)}"
    if returned:
        text += f"; {value_of(asset, returned, currency)} not used went back to your balance"
    return text


def hold_released(asset: str, amount: int, currency: str, order_id: str | None, why: str) -> str:
    reason = "the checkout was cancelled" if why == "voided" else "the checkout was not completed in time"
    return f"{value_of(asset, amount, currency)} reserved{_for_order(order_id)} returned to your balance: {reason}"


def refund(order_id: str, reversed_: dict[str, int], restored: dict[str, int], currency: str,
           restored_expired: int = 0) -> str:
    parts = []
    took = [value_of(a, n, currency) for a, n in reversed_.items() if n]
    gave = [value_of(a, n - (restored_expired if a == "points" else 0), currency)
            for a, n in restored.items() if n - (restored_expired if a == "points" else 0)]
    if took:
        parts.append(f"{' and '.join(took)} earned on it taken back")
    if gave:
        parts.append(f"{' and '.join(gave)} you paid with returned")
    if restored_expired:
        parts.append(f"{points(restored_expired)} you paid with had already expired and are not returned")
    return f"Refund on order {order_id}: " + ("; ".join(parts) if parts else "nothing to adjust")


def points_expired(amount: int, last_valid_day, policy: str) -> str:  # noqa: ANN001
    why = "without a purchase or redemption for too long" if policy == "inactivity" else "at the end of their life"
    return f"{points(amount)} expired {why}; they were valid until {last_valid_day:%Y-%m-%d}"


def points_unexpired(amount: int, order_id: str) -> str:
    return f"{points(amount)} from order {order_id} had expired; the refund takes them back from expiry, not from you"


def referral_release(released_points: int, released_cashback: int, currency: str) -> str:
    return f"Referral reward of {both(released_points, released_cashback, currency)} can now be spent"


def referral_reward(role: str, amount_points: int, amount_cashback: int, currency: str, friend: str,
                    order_id: str, until) -> str:  # noqa: ANN001
    what = both(amount_points, amount_cashback, currency)
    pending = f" (pending until {until:%Y-%m-%d})" if until else ""
    if role == "referrer":
        return f"Referral reward: {what} for referring {friend}, who placed order {order_id}{pending}"
    return f"Welcome reward: {what} for joining with {friend}'s referral code, on order {order_id}{pending}"


def referral_reversed(role: str, amount_points: int, amount_cashback: int, currency: str, order_id: str) -> str:
    whose = "referral" if role == "referrer" else "welcome"
    return f"{both(amount_points, amount_cashback, currency)} {whose} reward taken back: order {order_id} was refunded"


def event_reward(amount: int, event_type: str) -> str:
    label = event_type.removeprefix("custom.").replace("_", " ")
    return f"Earned {points(amount)} for {label}"


def achievement_reward(name: str, amount: int) -> str:
    return f"Badge unlocked: {name}" + (f", {points(amount)}" if amount else "")


def achievement_revoked(name: str, amount: int) -> str:
    return f"Badge {name} withdrawn after a refund" + (f"; {points(amount)} taken back" if amount else "")


def adjustment(asset: str, amount: int, currency: str, reason: str) -> str:
    verb = "Added" if amount > 0 else "Removed"
    return f"{verb} {value_of(asset, abs(amount), currency)} by the loyalty team: {reason}"


def reversal(original: str, reason: str) -> str:
    return f"Reversed by the loyalty team ({reason}): {original}"


def closure(forfeited_points: int, cashback: int, currency: str, cashback_forfeited: bool) -> str:
    parts = [f"{points(forfeited_points)} forfeited"] if forfeited_points else []
    if cashback and cashback_forfeited:
        parts.append(f"{money(cashback, currency)} cashback forfeited")
    return "Membership closed" + (f": {' and '.join(parts)}" if parts else "")
