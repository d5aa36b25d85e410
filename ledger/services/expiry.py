"""Points expiry: books Dr customer `available`, Cr `expired`, and consumes the expired lots.

- Fixed life: a lot expires at its `expires_at`. Points held for a checkout do not expire while
  held: a hold covers the soonest-expiring spendable lots first (the order a capture spends them),
  and only the rest of a due lot expires. A voided hold's points expire at the next run.
- Inactivity: all available points expire at the end of the local day `inactivity_days` after the
  last purchase, captured redemption or credit of points.
Runs before every write for a customer (under its lock) and from `ledger jobs run`; a second run
finds nothing left to expire.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Callable

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Asset, Bucket, house_account
from ..domain.calendar import local_date
from ..domain.customers import Customer
from ..domain.expiry import inactivity_expiry
from ..domain.programs import Program
from ..domain.transactions import Reference, TransactionDraft, transfer
from .lots import consume_lots
from .ports import BookingContext, UnitOfWork


def inactivity_deadline(uow: UnitOfWork, program: Program, customer: Customer,
                        lots: list[dict[str, Any]]) -> tuple[datetime | None, datetime | None]:
    """(last purchase or captured redemption, when everything available expires): the clock starts
    again at each purchase, captured redemption or credit of points (a lot's issue)."""
    last_activity = uow.expiry.last_activity(customer.pk)
    moments = [m for m in (last_activity, max((lot["issued_at"] for lot in lots), default=None)) if m is not None]
    return last_activity, inactivity_expiry(program.settings, max(moments)) if moments else None


def expirable_lots(lots: list[dict[str, Any]], reserved: int, now: datetime) -> list[tuple[int, int]]:
    """(lot id, points) that expire now: due lots' remaining points, less what a hold covers."""
    cover = max(reserved, 0)
    expiring = []
    for lot in lots:  # spending order
        if lot["available_at"] > now:
            continue
        held = min(cover, lot["remaining"])
        cover -= held
        free = lot["remaining"] - held
        if free > 0 and lot["expires_at"] is not None and lot["expires_at"] <= now:
            expiring.append((lot["id"], free))
    return expiring


def expire_due_for_customer(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                            ctx: BookingContext) -> int:
    """Expire what is due for a locked customer; returns the points expired."""
    settings = program.settings
    balances = uow.ledger.customer_balances(customer)
    available = balances.get(customer.account(Asset.POINTS, Bucket.AVAILABLE), 0)
    reserved = balances.get(customer.account(Asset.POINTS, Bucket.RESERVED), 0)
    if available <= 0:
        return 0
    lots = uow.lots.open_lots(customer.pk)
    chosen: list[tuple[int, int]] = []
    if settings.points_expiry == "inactivity":
        _, expires_at = inactivity_deadline(uow, program, customer, lots)
        if expires_at is None or expires_at > now:
            return 0
        amount, reason_day = available, expires_at
    else:
        chosen = expirable_lots(lots, reserved, now)
        amount = min(sum(points for _, points in chosen), available)
        if amount <= 0:
            return 0
        by_id = {lot["id"]: lot for lot in lots}
        reason_day = max(by_id[lot_id]["expires_at"] for lot_id, _ in chosen)
    draft = TransactionDraft(
        type="points_expiry",
        reference=Reference("expiry", f"{customer.customer_id}@{now.isoformat()}"[:128]),
        postings=tuple(transfer(Asset.POINTS, customer.account(Asset.POINTS, Bucket.AVAILABLE),
                                house_account(Asset.POINTS, "expired"), amount)),
        occurred_at=reason_day,
        description=describe.points_expired(amount, _last_valid_day(reason_day, settings.timezone), settings.points_expiry),
        metadata={"policy": settings.points_expiry},
    )
    posted = uow.ledger.post(program.id, draft, BookingContext(actor=ctx.actor, request_id=ctx.request_id), now, customer)
    if chosen:
        left, taken = amount, []
        for lot_id, points in chosen:
            take = min(points, left)
            if take:
                taken.append((lot_id, take))
                left -= take
        uow.lots.consume(taken, posted.id)
    else:
        consume_lots(uow, customer, amount, posted.id, now)
    return amount


def _last_valid_day(expires_at: datetime, tz: str) -> date:
    """Points that expire at local midnight were last valid the day before."""
    return local_date(expires_at - timedelta(microseconds=1), tz)


def run_expiry(uow_factory, clock: Clock, batch: int = 200,  # noqa: ANN001
               is_retryable: Callable[[BaseException], bool] | None = None) -> int:
    """Expire everything due in every program with an expiry policy; returns the points expired."""
    from .writes import transact

    now = clock.now()
    ctx = BookingContext(actor="job:run")
    total = 0
    with uow_factory(write=False) as uow:
        programs = [p for p in uow.programs.all() if p.settings.points_expiry != "none"]
    for program in programs:
        after = 0
        while True:
            with uow_factory(write=False) as uow:
                if program.settings.points_expiry == "fixed":
                    due = uow.expiry.customers_with_due_lots(program.id, now, after, batch)
                else:
                    due = uow.expiry.customers_with_points(program.id, after, batch)
            if not due:
                break
            for customer_pk in due:
                after = customer_pk

                def work(uow: UnitOfWork, customer_pk: int = customer_pk) -> int:
                    customer = uow.customers.lock_by_pk(customer_pk)
                    current = uow.programs.get(customer.program_id)
                    return expire_due_for_customer(uow, now, current, customer, ctx)

                total += transact(uow_factory, work, is_retryable)
    return total


def coming_expirations(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> dict[str, Any]:
    """Points that will expire, by date, soonest first. Under fixed expiry, each lot's remaining
    points (those held for a checkout expire only if the hold is voided); under inactivity, every
    available point at the end of the inactivity period."""
    from .customers import require_customer

    now = clock.now()
    program = uow.programs.get(program_id)
    settings = program.settings
    customer = require_customer(uow, program_id, customer_id)
    items: dict[datetime, int] = {}
    last_activity = None
    if settings.points_expiry == "fixed":
        for lot in uow.expiry.upcoming(customer.pk, now):
            items[lot["expires_at"]] = items.get(lot["expires_at"], 0) + lot["remaining"]
    elif settings.points_expiry == "inactivity":
        last_activity, expires_at = inactivity_deadline(uow, program, customer, uow.lots.open_lots(customer.pk))
        available = uow.ledger.customer_balances(customer).get(customer.account(Asset.POINTS, Bucket.AVAILABLE), 0)
        if expires_at is not None and available > 0:
            items[expires_at] = available
    expirations = [{"points": points, "expires_at": at, "last_day": _last_valid_day(at, settings.timezone)}
                   for at, points in sorted(items.items())]
    return {"customer_id": customer_id, "policy": settings.points_expiry,
            "total": sum(e["points"] for e in expirations), "items": expirations, "last_activity_at": last_activity}
