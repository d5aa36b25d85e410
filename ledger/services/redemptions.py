"""Checkout redemption: hold, then capture or void; holds expire on their own.

Bookings (ARCHITECTURE.md §1):
- hold h:        Dr customer available, Cr customer reserved
- capture x:     Dr customer reserved h; Cr `redeemed` x; Cr customer available h - x
- void / expiry: Dr customer reserved, Cr customer available
A hold past its expiry stops counting at once: every write for the customer first books the
expiry of its lapsed holds (`expire_holds_for_customer`), and balance reads add them back.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Asset, Bucket, house_account
from ..domain.customers import Balances, Customer
from ..domain.errors import (
    BelowMinRedeem, CaptureExceedsHold, ExceedsMaxRedeemShare, HoldExpired, InsufficientBalance,
    RedemptionNotFound, RedemptionNotHeld,
)
from ..domain.ids import new_id
from ..domain.programs import Program
from ..domain.transactions import Posting, Reference, TransactionDraft, transfer
from .customers import enrolled, require_customer
from .lots import consume_lots
from .ports import BookingContext, TransactionToBook, UnitOfWork
from .queries import balances_of
from .upkeep import prepare_customer_for_write


@dataclass(frozen=True, slots=True)
class HoldCommand:
    redemption_id: str
    customer_id: str
    asset: str
    amount: int
    order_id: str | None = None
    order_amount: int | None = None
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class RedemptionView:
    redemption_id: str
    customer_id: str
    status: str
    asset: str
    amount: int
    value: int
    captured_amount: int | None
    order_id: str | None
    order_amount: int | None
    expires_at: datetime
    created_at: datetime
    balances: Balances | None = None
    history: list[dict[str, Any]] | None = None


def redemption_value(program: Program, asset: str, amount: int) -> int:
    """Money value in minor units: floored at the redemption rate for points; cashback is money already."""
    return program.settings.points_value(amount) if asset == Asset.POINTS else amount


def _view(row: dict[str, Any], customer_id: str, balances: Balances | None = None,
          history: list[dict[str, Any]] | None = None, status: str | None = None) -> RedemptionView:
    return RedemptionView(
        redemption_id=row["redemption_id"], customer_id=customer_id, status=status or row["status"],
        asset=row["asset"], amount=row["amount"], value=row["value"], captured_amount=row["captured_amount"],
        order_id=row["order_id"], order_amount=row["order_amount"], expires_at=row["expires_at"],
        created_at=row["created_at"], balances=balances, history=history)


def place_hold(uow: UnitOfWork, clock: Clock, program_id: str, cmd: HoldCommand, ctx: BookingContext) -> RedemptionView:
    now = clock.now()
    program, customer = uow.customers.lock_with_program(program_id, cmd.customer_id, now)
    settings = program.settings
    if cmd.asset == Asset.POINTS:
        if cmd.amount < settings.min_redeem_points or cmd.amount % settings.redeem_step_points:
            raise BelowMinRedeem(
                f"redeem at least {settings.min_redeem_points} points, in steps of {settings.redeem_step_points}",
                min=settings.min_redeem_points, step=settings.redeem_step_points)
    value = redemption_value(program, cmd.asset, cmd.amount)
    if cmd.order_amount is not None:
        ceiling = cmd.order_amount * settings.max_redeem_share_bps // 10_000
        if value > ceiling:
            raise ExceedsMaxRedeemShare(
                f"at most {ceiling} minor units of this order may be paid with points or cashback", max_value=ceiling)
    customer = enrolled(customer, cmd.customer_id)
    customer.refuse_unless_active("redeem")
    prepare_customer_for_write(uow, now, program, customer, ctx)
    available = uow.ledger.customer_balances(customer)[customer.account(cmd.asset, Bucket.AVAILABLE)]
    if cmd.amount > available:
        raise InsufficientBalance(f"{cmd.amount} {cmd.asset} requested, {max(available, 0)} available",
                                  available=max(available, 0))
    expires_at = now + timedelta(seconds=cmd.ttl_seconds or settings.hold_ttl_seconds)
    draft = TransactionDraft(
        type="redemption_hold", reference=Reference("redemption", cmd.redemption_id),
        postings=transfer(cmd.asset, customer.account(cmd.asset, Bucket.AVAILABLE),
                          customer.account(cmd.asset, Bucket.RESERVED), cmd.amount),
        occurred_at=now,
        description=describe.hold(cmd.asset, cmd.amount, settings.currency, cmd.order_id),
        metadata={"order_id": cmd.order_id, "expires_at": expires_at.isoformat()},
    )
    transaction_id = new_id("txn")
    row = dict(program_id=program_id, redemption_id=cmd.redemption_id, customer_pk=customer.pk, asset=cmd.asset,
               amount=cmd.amount, value=value, captured_amount=None, order_id=cmd.order_id,
               order_amount=cmd.order_amount, status="held", expires_at=expires_at, created_at=now, updated_at=now,
               hold_transaction_id=transaction_id)
    # Booked with its rows: on PostgreSQL one statement, which goes with the stored answer.
    uow.redemptions.add_hold(row, dict(kind="held", at=now, amount=cmd.amount, expires_at=expires_at,
                                       transaction_id=transaction_id, actor=ctx.actor),
                             TransactionToBook(draft, ctx, now, customer, transaction_id))
    return _view(row, customer.customer_id, balances_of(uow, settings.currency, customer, now, include_due=False))


def _load_held(uow: UnitOfWork, now: datetime, program: Program, redemption_id: str,
               ctx: BookingContext) -> tuple[dict[str, Any], Customer]:
    """The redemption and its locked customer, with lapsed holds expired first; refuses unless still held."""
    row = uow.redemptions.get(program.id, redemption_id)
    if row is None:
        raise RedemptionNotFound(f"no redemption {redemption_id!r}")
    customer = uow.customers.lock_by_pk(row["customer_pk"])
    prepare_customer_for_write(uow, now, program, customer, ctx)
    row = uow.redemptions.get(program.id, redemption_id)
    if row["status"] == "expired":
        raise HoldExpired(f"the hold expired at {row['expires_at'].isoformat()}")
    if row["status"] != "held":
        raise RedemptionNotHeld(f"redemption {redemption_id!r} is {row['status']}",
                                redemption_status=row["status"])
    return row, customer


def capture(uow: UnitOfWork, clock: Clock, program_id: str, redemption_id: str, amount: int | None,
            ctx: BookingContext) -> RedemptionView:
    """Capture x <= held (all of it by default); the rest goes back to available."""
    now = clock.now()
    program = uow.programs.get(program_id)
    row, customer = _load_held(uow, now, program, redemption_id, ctx)
    held, asset = row["amount"], row["asset"]
    amount = held if amount is None else amount
    if amount > held:
        raise CaptureExceedsHold(f"{amount} exceeds the {held} held", held=held)
    available_before = uow.ledger.customer_balances(customer)[customer.account(asset, Bucket.AVAILABLE)]
    postings = [Posting(customer.account(asset, Bucket.RESERVED), asset, -held)]
    if amount:
        postings.append(Posting(house_account(asset, "redeemed"), asset, amount))
    if held - amount:
        postings.append(Posting(customer.account(asset, Bucket.AVAILABLE), asset, held - amount))
    draft = TransactionDraft(
        type="redemption_capture", reference=Reference("redemption", redemption_id), postings=tuple(postings),
        occurred_at=now,
        description=describe.capture(asset, amount, held - amount, program.settings.currency, row["order_id"]),
        metadata={"order_id": row["order_id"], "held": held, "captured": amount},
    )
    posted = uow.ledger.post(program_id, draft, ctx, now, customer)
    if asset == Asset.POINTS:
        consume_lots(uow, customer, amount + _debt_repaid(available_before, held - amount), posted.id, now)
    value = redemption_value(program, asset, amount)
    uow.redemptions.update(row["id"], status="captured", captured_amount=amount, value=value, updated_at=now,
                           settle_transaction_id=posted.id)
    uow.redemptions.add_event(redemption_pk=row["id"], kind="captured", at=now, amount=amount,
                              transaction_id=posted.id, actor=ctx.actor)
    row = {**row, "status": "captured", "captured_amount": amount, "value": value}
    return _view(row, customer.customer_id, balances_of(uow, program.settings.currency, customer, now, False))


def void(uow: UnitOfWork, clock: Clock, program_id: str, redemption_id: str, ctx: BookingContext) -> RedemptionView:
    now = clock.now()
    program = uow.programs.get(program_id)
    row, customer = _load_held(uow, now, program, redemption_id, ctx)
    _release_hold(uow, now, program, customer, row, "voided", ctx)
    row = {**row, "status": "voided", "captured_amount": 0}
    return _view(row, customer.customer_id, balances_of(uow, program.settings.currency, customer, now, False))


def extend(uow: UnitOfWork, clock: Clock, program_id: str, redemption_id: str, ttl_seconds: int,
           ctx: BookingContext) -> RedemptionView:
    """A held redemption now expires `ttl_seconds` from now."""
    now = clock.now()
    program = uow.programs.get(program_id)
    row, customer = _load_held(uow, now, program, redemption_id, ctx)
    expires_at = now + timedelta(seconds=ttl_seconds)
    uow.redemptions.update(row["id"], expires_at=expires_at, updated_at=now)
    uow.redemptions.add_event(redemption_pk=row["id"], kind="extended", at=now, expires_at=expires_at,
                              actor=ctx.actor)
    row = {**row, "expires_at": expires_at}
    return _view(row, customer.customer_id, balances_of(uow, program.settings.currency, customer, now, False))


def _release_hold(uow: UnitOfWork, now: datetime, program: Program, customer: Customer, row: dict[str, Any],
                  status: str, ctx: BookingContext):  # noqa: ANN202
    asset, held = row["asset"], row["amount"]
    available_before = uow.ledger.customer_balances(customer)[customer.account(asset, Bucket.AVAILABLE)]
    draft = TransactionDraft(
        type="redemption_void" if status == "voided" else "redemption_expiry",
        reference=Reference("redemption", row["redemption_id"]),
        postings=transfer(asset, customer.account(asset, Bucket.RESERVED), customer.account(asset, Bucket.AVAILABLE),
                          held),
        occurred_at=now if status == "voided" else row["expires_at"],
        description=describe.hold_released(asset, held, program.settings.currency, row["order_id"], status),
        metadata={"order_id": row["order_id"]},
    )
    posted = uow.ledger.post(program.id, draft, ctx, now, customer)
    if asset == Asset.POINTS:
        consume_lots(uow, customer, _debt_repaid(available_before, held), posted.id, now)
    uow.redemptions.update(row["id"], status=status, captured_amount=0 if status == "voided" else None,
                           updated_at=now, settle_transaction_id=posted.id)
    uow.redemptions.add_event(redemption_pk=row["id"], kind=status, at=now, amount=held, transaction_id=posted.id,
                              actor=ctx.actor)
    return posted


def void_for_closure(uow: UnitOfWork, now: datetime, program: Program, customer: Customer, row: dict[str, Any],
                     ctx: BookingContext) -> None:
    """A membership being closed voids its open holds first (its customer is locked already)."""
    _release_hold(uow, now, program, customer, row, "voided", ctx)


def _debt_repaid(available_before: int, credit: int) -> int:
    """Points returned to a negative `available` repay that debt first (see services/lots.py)."""
    return min(credit, max(-available_before, 0))


def expire_holds_for_customer(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                              ctx: BookingContext) -> int:
    """Book the expiry of every lapsed hold of a locked customer; returns how many."""
    rows = uow.redemptions.expired_holds(customer.pk, now)
    for row in rows:
        _release_hold(uow, now, program, customer, row, "expired", ctx)
    return len(rows)


def get_redemption(uow: UnitOfWork, clock: Clock, program_id: str, redemption_id: str) -> RedemptionView:
    """State and history. A lapsed hold not yet swept already reads as expired."""
    now = clock.now()
    row = uow.redemptions.get(program_id, redemption_id)
    if row is None:
        raise RedemptionNotFound(f"no redemption {redemption_id!r}")
    history = [{"event": e["kind"], "at": e["at"], "amount": e["amount"], "expires_at": e["expires_at"],
                "transaction_id": e["transaction_id"]} for e in uow.redemptions.events(row["id"])]
    status = row["status"]
    if status == "held" and row["expires_at"] <= now:
        status = "expired"
        history.append({"event": "expired", "at": row["expires_at"], "amount": row["amount"], "expires_at": None,
                        "transaction_id": None})
    return _view(row, row["customer_id"], history=history, status=status)


@dataclass(frozen=True, slots=True)
class Quote:
    points: dict[str, int]
    cashback: dict[str, int]
    earn_preview: dict[str, Any]


def quote(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str, amount: int) -> Quote:
    """What the customer may redeem on an order of `amount`, and what the order would earn if paid
    without rewards, under the rules, campaigns and tier in force (the order's lines and channel
    are not known here: `POST /v1/purchases/simulate` gives the exact figure). Writes nothing."""
    from ..domain.earning import OrderToEarn
    from .earning import config_for, earn

    now = clock.now()
    program = uow.programs.get(program_id)
    settings = program.settings
    customer = require_customer(uow, program_id, customer_id)
    balances = balances_of(uow, settings.currency, customer, now)
    max_value = amount * settings.max_redeem_share_bps // 10_000
    points = min(max(balances.points.available, 0), settings.points_for_value(max_value))
    points -= points % settings.redeem_step_points
    if points < settings.min_redeem_points:
        points = 0
    earned, _facts = earn(uow, program, config_for(uow, program), customer, OrderToEarn(amount=amount), now,
                          lock_budgets=False)

    def until(days: int, earns: int) -> datetime | None:
        return now + timedelta(days=days) if days > 0 and earns > 0 else None

    return Quote(
        points={"max": points, "min": settings.min_redeem_points, "step": settings.redeem_step_points,
                "value": settings.points_value(points)},
        cashback={"max": min(max(balances.cashback.available, 0), max_value)},
        earn_preview={"points": earned.points, "cashback": earned.cashback,
                      "pending_until": {"points": until(settings.points_hold_days, earned.points),
                                        "cashback": until(settings.cashback_hold_days, earned.cashback)}},
    )
