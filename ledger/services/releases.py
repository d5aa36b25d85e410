"""Release of pending value once a purchase's return window has passed.

Books Dr customer `pending`, Cr customer `available`, one transaction per purchase.
Runs before every write for a customer (under its lock) and from the jobs command.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Callable

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Bucket
from ..domain.customers import Customer
from ..domain.programs import Program
from ..domain.transactions import Reference, TransactionDraft, transfer
from .lots import available_points, consume_lots
from .ports import BookingContext, UnitOfWork
from .writes import transact


def release_due_for_customer(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                             ctx: BookingContext) -> int:
    """Release every due pending amount of a locked customer; returns the number of transactions booked."""
    due = uow.releases.due(now=now, customer_pk=customer.pk)
    by_purchase: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for row in due:
        by_purchase[row["purchase_id"], row.get("source", "purchase")].append(row)
    for (_, source), rows in by_purchase.items():
        order_id = uow.purchases.order_id_of(rows[0]["purchase_id"])
        amounts = defaultdict(int)
        postings = []
        for row in rows:
            amount = row["amount"] - row["reversed_amount"]
            amounts[row["asset"]] += amount
            postings += transfer(row["asset"], customer.account(row["asset"], Bucket.PENDING),
                                 customer.account(row["asset"], Bucket.AVAILABLE), amount)
        available_before = available_points(uow, customer)
        draft = TransactionDraft(
            type="release",
            reference=Reference("order", order_id),
            postings=tuple(postings),
            occurred_at=max(row["release_at"] for row in rows),
            description=(describe.release(order_id, amounts["points"], amounts["cashback"], program.settings.currency)
                         if source == "purchase" else
                         describe.referral_release(amounts["points"], amounts["cashback"], program.settings.currency)),
        )
        posted = uow.ledger.post(program.id, draft, BookingContext(actor=ctx.actor, request_id=ctx.request_id),
                                 now, customer)
        uow.releases.mark_released([row["id"] for row in rows], posted.id)
        if amounts["points"] and available_before < 0:
            # Released points land in a negative available balance: they repay that debt first.
            consume_lots(uow, customer, min(amounts["points"], -available_before), posted.id, now,
                         prefer_transactions=uow.purchases.transaction_ids_of(rows[0]["purchase_id"])
                         if source == "purchase" else ())
    return len(by_purchase)


def run_release_job(uow_factory, clock: Clock, batch: int = 200) -> int:  # noqa: ANN001
    """Release everything due across all programs; returns the number of release transactions."""
    return run_jobs(uow_factory, clock, batch, getattr(uow_factory, "is_retryable", None), books=False)["releases"]


def run_jobs(uow_factory, clock: Clock, batch: int = 200,  # noqa: ANN001
             is_retryable: Callable[[BaseException], bool] | None = None, books: bool = True) -> dict[str, int]:
    """Release due pending value, expire lapsed holds, expire due points and evaluate tiers, one
    customer per database transaction; then (`books`) the daily roll-ups and the chain seals.

    Idempotent and safe to run in several processes at once: each customer is re-read under its
    lock, so a second run (or a concurrent one) finds nothing left to book."""
    from .redemptions import expire_holds_for_customer

    now = clock.now()
    done = {"releases": 0, "expired_holds": 0}
    ctx = BookingContext(actor="job:run")
    seen: set[int] = set()
    while True:
        with uow_factory(write=False) as uow:
            due = set(uow.releases.due_customers(now=now, limit=batch))
            due |= set(uow.redemptions.customers_with_expired_holds(now=now, limit=batch))
        customers = sorted(due - seen)
        if not customers:
            from .expiry import run_expiry
            from .tiers import run_tier_evaluations
            done["expired_points"] = run_expiry(uow_factory, clock, batch, is_retryable)
            done["tier_evaluations"] = sum(run_tier_evaluations(uow_factory, clock, batch, is_retryable).values())
            if books:
                done.update(run_books_jobs(uow_factory, clock, is_retryable))
            return done
        for customer_pk in customers:
            seen.add(customer_pk)

            def upkeep(uow: UnitOfWork, customer_pk: int = customer_pk) -> tuple[int, int]:
                customer = uow.customers.lock_by_pk(customer_pk)
                program = uow.programs.get(customer.program_id)
                return (release_due_for_customer(uow, now, program, customer, ctx),
                        expire_holds_for_customer(uow, now, program, customer, ctx))

            releases, expired = transact(uow_factory, upkeep, is_retryable)
            done["releases"] += releases
            done["expired_holds"] += expired


def run_books_jobs(uow_factory, clock: Clock,  # noqa: ANN001
                   is_retryable: Callable[[BaseException], bool] | None = None) -> dict[str, int]:
    """Per program: the daily trial-balance roll-ups that have come due, then a seal over every
    customer's chain head (when anything was booked since the last seal)."""
    from .books import roll_up
    from .verify import seal_program

    now = clock.now()
    with uow_factory(write=False) as uow:
        programs = [p.id for p in uow.programs.all()]
    done = {"rollups": 0, "seals": 0}
    for program_id in programs:
        done["rollups"] += transact(uow_factory, lambda uow, pid=program_id: roll_up(uow, pid, now),
                                    is_retryable)
        sealed = transact(uow_factory, lambda uow, pid=program_id: seal_program(uow, pid, now),
                          is_retryable)
        done["seals"] += 1 if sealed else 0
    return done
