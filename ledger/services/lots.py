"""Points lots: every credit of points is a lot, every debit records which lots it consumed.

Spending order: soonest expiry first, lots without expiry last, ties oldest first; a clawback
takes from the clawed-back purchase's own lot first. A customer's open lots always add up to
pending + reserved + max(available, 0) points: a credit that lands in `available` while it is
negative (after an allow_negative clawback) repays that debt first.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from ..domain.accounts import Asset, Bucket
from ..domain.customers import Customer
from ..domain.programs import ProgramSettings
from .ports import UnitOfWork


def consume_lots(uow: UnitOfWork, customer: Customer, amount: int, transaction_id: str, now: datetime,
                 prefer_transactions: Sequence[str] = ()) -> int:
    """Take up to `amount` points from the customer's lots; returns how much was taken."""
    if amount <= 0:
        return 0
    lots = uow.lots.open_lots(customer.pk)
    preferred = [lot for lot in lots if lot["transaction_id"] in prefer_transactions]
    rest = [lot for lot in lots if lot["transaction_id"] not in prefer_transactions]
    taken: list[tuple[int, int]] = []
    left = amount
    for lot in preferred + rest:
        if left == 0:
            break
        take = min(left, lot["remaining"])
        taken.append((lot["id"], take))
        left -= take
    uow.lots.consume(taken, transaction_id)
    return amount - left


def credit_lot(uow: UnitOfWork, settings: ProgramSettings, customer: Customer, amount: int, transaction_id: str,
               source: str, now: datetime, available_at: datetime, available_before: int | None,
               expires_at: datetime | None = None) -> None:
    """Record a lot for `amount` credited points. `available_before` is the available balance before a
    credit to `available` (None for a credit to `pending`): a negative one is repaid first."""
    lot = new_lot(settings, customer, amount, transaction_id, source, now, available_at, expires_at)
    repay_debt_from_lot(uow, uow.lots.add(**lot), amount, transaction_id, available_before)


def new_lot(settings: ProgramSettings, customer: Customer, amount: int, transaction_id: str, source: str,
            now: datetime, available_at: datetime, expires_at: datetime | None) -> dict:
    """The row of a lot for `amount` credited points, valued at today's redemption rate."""
    return dict(program_id=customer.program_id, customer_pk=customer.pk, transaction_id=transaction_id, source=source,
                amount=amount, remaining=amount, value_at_issue=settings.points_value(amount),
                issued_at=now, available_at=available_at, expires_at=expires_at)


def debt_repaid_by(amount: int, available_before: int | None) -> int:
    """How much of a credit of `amount` points repays a negative `available` balance (0 for a credit
    to `pending`, whose `available_before` is None)."""
    return min(amount, -available_before) if available_before is not None and available_before < 0 else 0


def repay_debt_from_lot(uow: UnitOfWork, lot_id: int, amount: int, transaction_id: str,
                        available_before: int | None) -> None:
    """A credit to a negative `available` repays that debt first: the new lot is consumed by it."""
    repaid = debt_repaid_by(amount, available_before)
    if repaid:
        uow.lots.consume([(lot_id, repaid)], transaction_id)


def available_points(uow: UnitOfWork, customer: Customer) -> int:
    return uow.ledger.customer_balances(customer).get(customer.account(Asset.POINTS, Bucket.AVAILABLE), 0)
