"""Reports in money: the liability roll-forward and the activity report.

Units come from the house accounts' entries, so the roll-forward ties to the trial balance by
construction: what customers hold (the customer accounts) is minus the sum of the house accounts.
Money: cashback is money already (minor units). Points are valued at each lot's value_at_issue,
never at today's rate: a lot of A points issued for V is worth floor(r * V / A) while r points
remain, and each consumption is worth the fall in that value, so the values telescope exactly.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..domain.accounts import ASSETS
from ..domain.errors import ValidationFailed
from .ports import UnitOfWork

# Which roll-forward line a consumption of points (or an entry on redeemed/expired/forfeited) belongs to.
CONSUMPTION_LINES = {
    "redemption_capture": "redeemed", "points_expiry": "expired", "refund": "clawed_back",
    "achievement_revoked": "clawed_back", "referral_reversal": "clawed_back", "customer_close": "forfeited",
    "adjustment": "adjusted", "reversal": "reversed",
}  # any other consumer (a purchase, release or reward) repays a negative balance: receivable_repaid
CLAWBACK_TYPES = ("refund", "achievement_revoked", "referral_reversal")


def _source_of(account: str) -> str | None:
    """`house/points/issued/purchase` -> `purchase`; adjustment accounts and fates -> None."""
    name = account.split("/", 2)[2]
    for prefix in ("issued/", "funding/"):
        if name.startswith(prefix) and not name.startswith(prefix + "adjustment/"):
            return name[len(prefix):]
    return None


def liability_report(uow: UnitOfWork, program_id: str, as_of: datetime, start: datetime | None = None) -> dict[str, Any]:
    """Per asset: opening (at `start`) + issued - clawed back (collected) - redeemed (net of
    restores) - expired - forfeited +/- adjusted +/- reversed + debts written off at closure =
    closing (at `as_of`), in units and in money; closing = what customers hold = held (positive
    balances) + receivable (negative ones)."""
    from .books import trial_balance

    program = uow.programs.get(program_id)
    settings = program.settings
    if start is None:
        closed = uow.books.last_closed_before(program_id, as_of)
        start = closed["ends_at"] if closed else _month_start(as_of, settings.timezone)
    if start > as_of:
        raise ValidationFailed([{"field": "from", "message": "must not be after as_of"}])
    tb_open, tb_close = trial_balance(uow, program_id, start), trial_balance(uow, program_id, as_of)
    movements = uow.books.house_movements(program_id, start, as_of)
    negative_open = uow.books.negative_balances(program_id, start)
    negative_close = uow.books.negative_balances(program_id, as_of)
    assets: dict[str, Any] = {}
    for asset in map(str, ASSETS):
        opening = sum(l["balance"] for l in tb_open.lines if l["asset"] == asset and l["account"].startswith("customer/"))
        closing = sum(l["balance"] for l in tb_close.lines if l["asset"] == asset and l["account"].startswith("customer/"))
        lines = _roll_forward_units([m for m in movements if m["asset"] == asset])
        computed = opening + sum(v for k, v in lines.items() if k in _SIGNED_LINES)
        assets[asset] = {
            "opening": opening,
            "issued": lines["issued"], "issued_by_source": lines["issued_by_source"],
            "clawed_back": -lines["clawed_back"], "clawed_back_by_source": lines["clawed_back_by_source"],
            "written_off": lines["written_off"],
            "redeemed": -lines["redeemed"], "expired": -lines["expired"], "forfeited": -lines["forfeited"],
            "adjusted": lines["adjusted"], "adjusted_by_reason": lines["adjusted_by_reason"],
            "reversed": lines["reversed"], "debts_written_off": lines["debts_written_off"],
            "closing": closing,
            "held": closing - negative_close.get(asset, 0),
            "receivable": negative_close.get(asset, 0),  # negative: what members owe back
            "opening_receivable": negative_open.get(asset, 0),
            "ties": computed == closing,
        }
    assets["points"]["money"] = _points_money(uow, program_id, start, as_of, settings,
                                              negative_close.get("points", 0))
    c = assets["cashback"]
    assets["cashback"]["money"] = {k: c[k] for k in ("opening", "issued", "clawed_back", "redeemed", "expired",
                                                     "forfeited", "adjusted", "reversed", "debts_written_off",
                                                     "closing", "held", "receivable")}
    return {"from": start, "as_of": as_of, "currency": settings.currency, "assets": assets,
            "trial_balance_totals": tb_close.totals}


# Lines with their sign in the roll-forward (clawed_back, redeemed, expired, forfeited are stored negated).
_SIGNED_LINES = ("issued", "clawed_back", "redeemed", "expired", "forfeited", "adjusted", "reversed",
                 "debts_written_off")


def _roll_forward_units(movements: list[dict[str, Any]]) -> dict[str, Any]:
    """From house-account sums per (account, type, sign): each line as its effect on what customers
    hold. Customers hold minus the house accounts, so each line is minus its house entries."""
    out: dict[str, Any] = {k: 0 for k in _SIGNED_LINES}
    out.update(issued_by_source=defaultdict(int), clawed_back_by_source=defaultdict(int),
               adjusted_by_reason=defaultdict(int), written_off=0)
    for m in movements:
        effect = -m["total"]  # on what customers hold
        name = m["account"].split("/", 2)[2]
        source = _source_of(m["account"])
        if m["type"] == "reversal":
            out["reversed"] += effect
        elif m["type"] == "customer_close" and name == "written_off":
            out["debts_written_off"] += effect  # a closed member's negative balance, no longer receivable
        elif "/adjustment/" in f"/{name}/":
            out["adjusted"] += effect
            out["adjusted_by_reason"][name.rsplit("/", 1)[1]] += effect
        elif source is not None and m["sign"] < 0:
            out["issued"] += effect
            out["issued_by_source"][source] += effect
        elif source is not None:
            out["clawed_back"] += effect
            out["clawed_back_by_source"][source] += -effect
        elif name == "written_off":
            # Dr written_off, Cr issued: the part a clawback could not collect from the customer.
            out["clawed_back"] += effect
            out["written_off"] += effect
        elif name in ("redeemed", "expired", "forfeited"):
            out[name] += effect
        else:
            out["adjusted"] += effect
            out["adjusted_by_reason"][name] += effect
    for key in ("issued_by_source", "clawed_back_by_source", "adjusted_by_reason"):
        out[key] = dict(out[key])
    return out


def _lot_value(remaining: int, amount: int, value: int) -> int:
    return remaining * value // amount if amount else 0


def _points_movements(uow: UnitOfWork, program_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Money value of the points moved in [start, end), per roll-forward line, from the lots (issued
    lines at each new lot's value, the others at the fall in value of the lots they consumed), as
    the lines are shown: issued, adjusted, reversed signed; the rest as positive amounts taken.
    Points restored by a refund come back as a new lot valued when restored and net against
    `redeemed`; lots consumed to repay a negative balance are `receivable_repaid`."""
    effect: dict[str, int] = defaultdict(int)  # on the value members hold
    issued_by_source: dict[str, int] = defaultdict(int)
    for lot in uow.books.lots_issued(program_id, start, end):
        if lot["type"] == "reversal":
            effect["reversed"] += lot["value_at_issue"]
        elif lot["type"] == "adjustment":
            effect["adjusted"] += lot["value_at_issue"]
        elif lot["source"] == "refund_restore":
            effect["redeemed"] += lot["value_at_issue"]
        else:
            effect["issued"] += lot["value_at_issue"]
            issued_by_source[lot["source"]] += lot["value_at_issue"]
    for c in uow.books.consumptions(program_id, start, end):
        before = c["lot_amount"] - c["taken_before"]
        worth = _lot_value(before, c["lot_amount"], c["value_at_issue"]) - \
            _lot_value(before - c["amount"], c["lot_amount"], c["value_at_issue"])
        effect[CONSUMPTION_LINES.get(c["type"], "receivable_repaid")] -= worth
    return {"issued": effect["issued"], "issued_by_source": dict(issued_by_source),
            "clawed_back": -effect["clawed_back"], "redeemed": -effect["redeemed"], "expired": -effect["expired"],
            "forfeited": -effect["forfeited"], "adjusted": effect["adjusted"], "reversed": effect["reversed"],
            "receivable_repaid": -effect["receivable_repaid"], "net": sum(effect.values())}


def _points_money(uow: UnitOfWork, program_id: str, start: datetime, as_of: datetime, settings,  # noqa: ANN001
                  negative_points: int) -> dict[str, Any]:
    """The points roll-forward in money: the lots' value at `start` and `as_of`, and the movements
    between. A debt (`negative_points`, no lot) is valued at the current redemption rate."""
    opening = sum(_lot_value(r, a, v) for a, v, r in uow.books.lots_at(program_id, start))
    closing = sum(_lot_value(r, a, v) for a, v, r in uow.books.lots_at(program_id, as_of))
    moved = _points_movements(uow, program_id, start, as_of)
    net = moved.pop("net")
    # Zero unless a lot changed outside a transaction: reported, not hidden.
    unexplained = closing - opening - net
    return {"valued_at": "value_at_issue", "opening": opening, **moved, "unexplained": unexplained,
            "closing": closing, "receivable": -settings.points_value(-negative_points),
            "rate": {"redeem_minor_units": settings.redeem_minor_units, "redeem_points": settings.redeem_points}}


def _month_start(instant: datetime, tz: str) -> datetime:
    local = instant.astimezone(ZoneInfo(tz)).date()
    return datetime.combine(local.replace(day=1), time(), ZoneInfo(tz)).astimezone(timezone.utc)


def activity_report(uow: UnitOfWork, program_id: str, start: datetime | None, end: datetime,
                    granularity: str) -> dict[str, Any]:
    """Per local day or month in [start, end): issued, redeemed, expired, clawed back and adjusted per
    asset, in units and money (points at their lots' value); the breakage rate per issue month; and
    the transactions booked late (dated in a month already closed when they were recorded)."""
    program = uow.programs.get(program_id)
    tz = program.settings.timezone
    if start is None:
        start = _month_start(end, tz)
        if start == end:
            start = _month_start(end - timedelta(microseconds=1), tz)
    if end <= start:
        raise ValidationFailed([{"field": "to", "message": "must be after from"}])
    buckets = _buckets(start, end, tz, granularity)
    if len(buckets) > 1000:
        raise ValidationFailed([{"field": "granularity", "message": "at most 1000 periods per report"}])
    rows = []
    for key, b_start, b_end in buckets:
        movements = uow.books.house_movements(program_id, b_start, b_end)
        row: dict[str, Any] = {"period": key, "from": b_start, "to": b_end}
        for asset in map(str, ASSETS):
            u = _roll_forward_units([m for m in movements if m["asset"] == asset])
            row[asset] = {"issued": u["issued"], "redeemed": -u["redeemed"], "expired": -u["expired"],
                          "clawed_back": -u["clawed_back"], "adjusted": u["adjusted"], "forfeited": -u["forfeited"],
                          "reversed": u["reversed"]}
        money = _points_movements(uow, program_id, b_start, b_end)
        row["points"]["money"] = {k: money[k] for k in _ACTIVITY_LINES}
        row["cashback"]["money"] = {k: row["cashback"][k] for k in _ACTIVITY_LINES}
        rows.append(row)
    late = uow.books.late_transactions(program_id, start, end)
    return {"from": start, "to": end, "granularity": granularity, "currency": program.settings.currency,
            "periods": rows, "breakage": breakage_by_issue_month(uow, program_id, end, tz),
            "late_transactions": [{"transaction_id": t["id"], "type": t["type"], "occurred_at": t["occurred_at"],
                                   "recorded_at": t["recorded_at"], "closed_period": t["period"]} for t in late]}


def breakage_by_issue_month(uow: UnitOfWork, program_id: str, as_of: datetime, tz: str) -> list[dict[str, Any]]:
    """Per local month of issue: points issued, clawed back from those lots, taken back by reversing
    what issued them (an adjustment or an accrual booked in error: never really issued), expired
    from them, and the breakage rate expired / (issued - clawed back - reversed) in basis points
    (integer, floored)."""
    fates = ("issued", "clawed_back", "reversed", "expired")
    issued: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(fates, 0))
    for lot in uow.books.lot_fates(program_id, as_of, clawbacks=CLAWBACK_TYPES):
        month = lot["issued_at"].astimezone(ZoneInfo(tz)).strftime("%Y-%m")
        for key in fates:
            issued[month][key] += lot[key]
    out = []
    for month in sorted(issued):
        v = issued[month]
        base = v["issued"] - v["clawed_back"] - v["reversed"]
        out.append({"month": month, **v, "breakage_bps": v["expired"] * 10_000 // base if base > 0 else None})
    return out


_ACTIVITY_LINES = ("issued", "redeemed", "expired", "clawed_back", "adjusted", "forfeited", "reversed")


def _buckets(start: datetime, end: datetime, tz: str, granularity: str) -> list[tuple[str, datetime, datetime]]:
    zone = ZoneInfo(tz)
    local = start.astimezone(zone).date()
    day = local if granularity == "day" else local.replace(day=1)
    out = []
    while True:
        nxt = day + timedelta(days=1) if granularity == "day" else date(day.year + day.month // 12, day.month % 12 + 1, 1)
        b_start = max(start, datetime.combine(day, time(), zone).astimezone(timezone.utc))
        b_end = min(end, datetime.combine(nxt, time(), zone).astimezone(timezone.utc))
        if b_start >= end:
            break
        out.append((day.isoformat() if granularity == "day" else day.strftime("%Y-%m"), b_start, b_end))
        day = nxt
        if len(out) > 1001:
            break
    return out
