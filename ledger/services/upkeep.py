"""What every write for a customer does first, under the customer's lock."""
from __future__ import annotations

from datetime import datetime

from ..domain.customers import Customer
from ..domain.programs import Program
from .ports import BookingContext, UnitOfWork, UpkeepDue


def prepare_customer_for_write(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                               ctx: BookingContext) -> UpkeepDue:
    """Release pending value whose window has passed, expire lapsed holds, then expire due points,
    so that the write sees the balances the customer is shown. The customer's accounts are read
    once, with flags that skip the release and hold queries when there is nothing to do."""
    from .expiry import expire_due_for_customer
    from .redemptions import expire_holds_for_customer
    from .releases import release_due_for_customer

    due = uow.ledger.load_for_write(customer, now)
    if due.releases_due:
        release_due_for_customer(uow, now, program, customer, ctx)
    if due.holds_lapsed:
        expire_holds_for_customer(uow, now, program, customer, ctx)
    if program.settings.points_expiry != "none":
        expire_due_for_customer(uow, now, program, customer, ctx)
    return due
