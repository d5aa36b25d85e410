"""Release of pending value once a purchase's return window has passed.

Books Dr customer `pending`, Cr customer `available`, one transaction per purchase.
Runs before every write for a customer (under its lock) and from the jobs command.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Bucket
from ..domain.customers import Customer
from ..domain.programs import Program
from ..domain.transactions import Reference, TransactionDraft, transfer
from .ports import BookingContext, UnitOfWork


def release_due_for_customer(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                             ctx: BookingContext) -> int:
    """Release every due pending amount of a locked customer; returns the number of transactions booked."""
    due = uow.releases.due(now=now, customer_pk=customer.pk)
    by_purchase: dict[int, list[dict]] = defaultdict(list)
    for row in due:
        by_purchase[row["purchase_id"]].append(row)
    for rows in by_purchase.values():
        order_id = uow.purchases.order_id_of(rows[0]["purchase_id"])
        amounts = defaultdict(int)
        postings = []
        for row in rows:
            amounts[row["asset"]] += row["amount"]
            postings += transfer(row["asset"], customer.account(row["asset"], Bucket.PENDING),
                                 customer.account(row["asset"], Bucket.AVAILABLE), row["amount"])
        draft = TransactionDraft(
            type="release",
            reference=Reference("order", order_id),
            postings=tuple(postings),
            occurred_at=max(row["release_at"] for row in rows),
            description=describe.release(order_id, amounts["points"], amounts["cashback"],
                                         program.settings.currency),
        )
        posted = uow.ledger.post(program.id, draft, BookingContext(actor=ctx.actor, request_id=ctx.request_id),
                                 now, customer)
        uow.releases.mark_released([row["id"] for row in rows], posted.id)
    return len(by_purchase)


def run_release_job(uow_factory, clock: Clock, batch: int = 200) -> int:  # noqa: ANN001
    """Release everything due across all programs, one customer per database transaction."""
    now = clock.now()
    released = 0
    ctx = BookingContext(actor="job:release")
    seen: set[int] = set()
    while True:
        with uow_factory(write=False) as uow:
            customers = [pk for pk in uow.releases.due_customers(now=now, limit=batch) if pk not in seen]
        if not customers:
            return released
        for customer_pk in customers:
            seen.add(customer_pk)
            with uow_factory(write=True) as uow:
                customer = uow.customers.lock_by_pk(customer_pk)
                program = uow.programs.get(customer.program_id)
                released += release_due_for_customer(uow, now, program, customer, ctx)
                uow.commit()
