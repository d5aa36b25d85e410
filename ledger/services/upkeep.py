"""What every write for a customer does first, under the customer's lock."""
from __future__ import annotations

from datetime import datetime

from ..domain.customers import Customer
from ..domain.programs import Program
from .ports import BookingContext, UnitOfWork


def prepare_customer_for_write(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                               ctx: BookingContext) -> None:
    """Release pending value whose window has passed, expire lapsed holds, then expire due points,
    so that the write sees the balances the customer is shown."""
    from .expiry import expire_due_for_customer
    from .redemptions import expire_holds_for_customer
    from .releases import release_due_for_customer

    release_due_for_customer(uow, now, program, customer, ctx)
    expire_holds_for_customer(uow, now, program, customer, ctx)
    if program.settings.points_expiry != "none":
        expire_due_for_customer(uow, now, program, customer, ctx)
