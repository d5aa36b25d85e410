"""Corrections by finance: adjustments (with a second approver above a threshold) and reversals.

An adjustment books Dr `issued/adjustment/{reason_code}` (points) or `funding/adjustment/{reason_code}`
(cashback), Cr the customer's `available` for a positive amount, and the mirror for a negative one.
A reversal books the exact mirror of a transaction, at most once, and only while nothing later
depends on it: a refund or release of its purchase, the settlement of its hold, a spend of the
points it credited. Each records who did it and why.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Asset, Bucket, house_account, parse_customer_account
from ..domain.errors import (
    AdjustmentNotFound, AdjustmentNotPending, AlreadyReversed, HasDependents, InsufficientBalance, NotReversible,
    SameApprover, TransactionNotFound,
)
from ..domain.expiry import lot_expires_at, reissued_expiry
from ..domain.transactions import Posting, Reference, TransactionDraft
from .customers import require_customer
from .lots import available_points, consume_lots, credit_lot
from .ports import BookingContext, UnitOfWork
from .queries import balances_of
from .upkeep import prepare_customer_for_write

REASON_CODES = ("goodwill", "correction", "fraud_removal")
# What finance may reverse. Others have their own undo: a hold is voided, a referral or an
# achievement is reversed by the refund that breaks it, a closure is final.
REVERSIBLE = ("purchase_accrual", "redemption_capture", "points_expiry", "event_reward", "adjustment")
HOW_TO_UNDO = {
    "redemption_hold": "void the redemption instead",
    "redemption_void": "a void cannot be undone; place a new hold",
    "redemption_expiry": "an expired hold cannot be undone; place a new hold",
    "refund": "a refund cannot be undone; book an adjustment",
    "release": "a release follows the return window; book an adjustment",
    "referral_reward": "referral rewards are reversed by the refund that disqualifies them",
    "referral_reversal": "book an adjustment",
    "achievement_reward": "achievements are revoked by the refund that breaks them",
    "achievement_revoked": "book an adjustment",
    "customer_close": "a closure is final",
    "reversal": "a reversal is never reversed; book an adjustment",
}


@dataclass(frozen=True)
class AdjustmentCommand:
    adjustment_id: str
    customer_id: str
    asset: str
    amount: int
    reason: str
    reason_code: str = "correction"


def adjustment_account(asset: str, reason_code: str) -> str:
    return house_account(asset, f"issued/adjustment/{reason_code}" if asset == Asset.POINTS
                         else f"funding/adjustment/{reason_code}")


def request_adjustment(uow: UnitOfWork, clock: Clock, program_id: str, cmd: AdjustmentCommand,
                       ctx: BookingContext) -> dict[str, Any]:
    """Book the adjustment, or (worth more than the program's adjustment_approval_threshold, points
    at the redemption rate) store it as pending_approval with nothing booked."""
    now = clock.now()
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, cmd.customer_id, lock=True)
    customer.refuse_unless_active("be adjusted")
    threshold = program.settings.adjustment_approval_threshold
    worth = abs(cmd.amount) if cmd.asset == Asset.CASHBACK else program.settings.points_value(abs(cmd.amount))
    row = dict(program_id=program_id, adjustment_id=cmd.adjustment_id, customer_pk=customer.pk, asset=cmd.asset,
               amount=cmd.amount, reason=cmd.reason, reason_code=cmd.reason_code, status="pending_approval",
               requested_by=ctx.actor, approved_by=None, transaction_id=None, created_at=now, booked_at=None)
    if threshold is not None and worth > threshold:
        row["id"] = uow.corrections.add_adjustment(**row)
        return _adjustment_view(row, customer.customer_id, None)
    transaction_id = _book_adjustment(uow, now, program, customer, row, ctx)
    row.update(status="booked", transaction_id=transaction_id, booked_at=now)
    row["id"] = uow.corrections.add_adjustment(**row)
    return _adjustment_view(row, customer.customer_id, balances_of(uow, program.settings.currency, customer, now, False))


def approve_adjustment(uow: UnitOfWork, clock: Clock, program_id: str, adjustment_id: str,
                       ctx: BookingContext) -> dict[str, Any]:
    """Book a pending adjustment; the approver must be another key than the requester."""
    now = clock.now()
    program = uow.programs.get(program_id)
    row = uow.corrections.adjustment(program_id, adjustment_id)
    if row is None:
        raise AdjustmentNotFound(f"no adjustment {adjustment_id!r}")
    customer = uow.customers.lock_by_pk(row["customer_pk"])
    row = uow.corrections.adjustment(program_id, adjustment_id, lock=True)  # re-read under the lock
    if row["status"] != "pending_approval":
        raise AdjustmentNotPending(f"adjustment {adjustment_id!r} is {row['status']}")
    if row["requested_by"] == ctx.actor:
        raise SameApprover("another finance key must approve this adjustment")
    customer.refuse_unless_active("be adjusted")
    transaction_id = _book_adjustment(uow, now, program, customer, row, ctx, approved_by=ctx.actor)
    uow.corrections.mark_booked(row["id"], approved_by=ctx.actor, transaction_id=transaction_id, booked_at=now)
    row.update(status="booked", approved_by=ctx.actor, transaction_id=transaction_id, booked_at=now)
    return _adjustment_view(row, customer.customer_id, balances_of(uow, program.settings.currency, customer, now, False))


def get_adjustment(uow: UnitOfWork, program_id: str, adjustment_id: str) -> dict[str, Any]:
    row = uow.corrections.adjustment(program_id, adjustment_id)
    if row is None:
        raise AdjustmentNotFound(f"no adjustment {adjustment_id!r}")
    return _adjustment_view(row, row["customer_id"], None)


def _book_adjustment(uow: UnitOfWork, now: datetime, program, customer, row: dict[str, Any],  # noqa: ANN001
                     ctx: BookingContext, approved_by: str | None = None) -> str:
    prepare_customer_for_write(uow, now, program, customer, ctx)
    asset, amount = row["asset"], row["amount"]
    available = customer.account(asset, Bucket.AVAILABLE)
    if amount < 0:
        have = uow.ledger.customer_balances(customer)[available]
        if -amount > have:
            raise InsufficientBalance(f"{-amount} {asset} to take, {max(have, 0)} available", available=max(have, 0))
    house = adjustment_account(asset, row["reason_code"])
    postings = (Posting(house, asset, -amount), Posting(available, asset, amount))
    available_before = available_points(uow, customer)
    draft = TransactionDraft(
        type="adjustment", reference=Reference("adjustment", row["adjustment_id"]), postings=postings,
        occurred_at=now, description=describe.adjustment(asset, amount, program.settings.currency, row["reason"]),
        metadata={"reason": row["reason"], "reason_code": row["reason_code"], "requested_by": row["requested_by"],
                  "approved_by": approved_by})
    transaction_id = uow.ledger.post(program.id, draft, ctx, now, customer).id
    if asset == Asset.POINTS and amount > 0:
        credit_lot(uow, program.settings, customer, amount, transaction_id, f"adjustment/{row['reason_code']}", now,
                   available_at=now, available_before=available_before,
                   expires_at=lot_expires_at(program.settings, now))
    elif asset == Asset.POINTS:
        consume_lots(uow, customer, -amount, transaction_id, now)
    return transaction_id


def _adjustment_view(row: dict[str, Any], customer_id: str, balances) -> dict[str, Any]:  # noqa: ANN001
    return {"adjustment_id": row["adjustment_id"], "customer_id": customer_id, "asset": row["asset"],
            "amount": row["amount"], "reason": row["reason"], "reason_code": row["reason_code"],
            "status": row["status"], "requested_by": row["requested_by"], "approved_by": row["approved_by"],
            "transaction_id": row["transaction_id"], "created_at": row["created_at"], "booked_at": row["booked_at"],
            "balances": balances}


def reverse_transaction(uow: UnitOfWork, clock: Clock, program_id: str, transaction_id: str, reason: str,
                        ctx: BookingContext) -> dict[str, Any]:
    """Book the exact mirror of a transaction, at most once. Refused (409) once something depends on
    it (`has_dependents`, listing them), once reversed (`already_reversed`), or for a type with its
    own undo (`not_reversible`)."""
    now = clock.now()
    program = uow.programs.get(program_id)
    original = uow.books.transaction(program_id, transaction_id)
    if original is None:
        raise TransactionNotFound(f"no transaction {transaction_id!r} in this program")
    customer = uow.customers.lock_by_pk(original["customer_pk"])
    existing = uow.corrections.reversal_of(transaction_id)  # read under the lock: reversals serialise on it
    if existing is not None:
        raise AlreadyReversed(f"transaction {transaction_id!r} was reversed by {existing}",
                              reversal_transaction_id=existing)
    dependents = uow.corrections.dependents(transaction_id)
    if dependents:
        raise HasDependents(f"later transactions depend on {transaction_id}: {', '.join(dependents)}",
                            dependents=dependents)
    if original["type"] not in REVERSIBLE:
        raise NotReversible(f"a {original['type']} transaction cannot be reversed: "
                            f"{HOW_TO_UNDO.get(original['type'], 'book an adjustment')}")
    postings = _mirror(uow.corrections.postings(transaction_id), original["type"])
    balances = uow.ledger.customer_balances(customer)
    for p in postings:
        if parse_customer_account(p.account) and p.amount < 0 and balances.get(p.account, 0) + p.amount < 0:
            raise InsufficientBalance(f"{p.account} holds {balances.get(p.account, 0)}, the reversal takes {-p.amount}",
                                      available=max(balances.get(p.account, 0), 0))
    available_before = available_points(uow, customer)
    draft = TransactionDraft(
        type="reversal", reference=Reference("transaction", transaction_id), postings=tuple(postings),
        occurred_at=now, description=describe.reversal(original["description"], reason),
        metadata={"reason": reason, "reverses": transaction_id, "original_type": original["type"]})
    posted = uow.ledger.post(program.id, draft, ctx, now, customer)
    uow.corrections.add_reversal(program_id=program_id, original_transaction_id=transaction_id,
                                 reversal_transaction_id=posted.id, reason=reason, actor=ctx.actor, created_at=now)
    points_credit = sum(p.amount for p in postings if p.asset == Asset.POINTS and parse_customer_account(p.account))
    _mirror_lots(uow, program, customer, transaction_id, posted.id, now, available_before, points_credit)
    if original["type"] == "purchase_accrual":
        purchase_pk = uow.purchases.pk_by_transaction(transaction_id)
        for release in uow.releases.unreleased_for_purchase(purchase_pk, source="purchase"):
            uow.releases.reverse(release["id"], release["amount"] - release["reversed_amount"])
    return {"transaction_id": posted.id, "reverses": transaction_id, "reason": reason, "actor": ctx.actor,
            "recorded_at": posted.recorded_at, "customer_id": customer.customer_id,
            "entries": [{"seq": e.seq, "account": e.account, "asset": e.asset, "amount": e.amount,
                         "balance_after": e.balance_after} for e in posted.entries],
            "balances": balances_of(uow, program.settings.currency, customer, now, False)}


def _mirror(original: list[dict[str, Any]], type_: str) -> list[Posting]:
    """The original's postings negated. A capture's hold is settled, so what it had reserved now
    sits in `available`: its mirror credits `available` with the captured part only."""
    totals: dict[tuple[str, str], int] = {}
    for p in original:
        account = p["account"]
        if type_ == "redemption_capture" and account.endswith("/reserved"):
            account = account[: -len("reserved")] + Bucket.AVAILABLE
        totals[(account, p["asset"])] = totals.get((account, p["asset"]), 0) - p["amount"]
    return [Posting(account, asset, amount) for (account, asset), amount in totals.items() if amount]


def _mirror_lots(uow: UnitOfWork, program, customer, original_id: str, reversal_id: str, now: datetime,  # noqa: ANN001
                 available_before: int, points_credit: int) -> None:
    """Points the mirror takes from the customer leave with the original's lots; points it gives
    back come from the lots the original consumed, with their old expiry (reissued if that has
    passed) and their share of the old value, repaying a negative balance first."""
    if points_credit < 0:
        consume_lots(uow, customer, -points_credit, reversal_id, now, prefer_transactions=(original_id,))
        return
    debt = max(-available_before, 0)
    left = points_credit
    for c in uow.corrections.consumed(original_id):
        if left <= 0:
            break
        c = {**c, "amount": min(c["amount"], left)}
        left -= c["amount"]
        expires_at = c["expires_at"]
        if expires_at is not None and expires_at <= now:
            expires_at = reissued_expiry(program.settings, now)
        lot_id = uow.lots.add(program_id=program.id, customer_pk=customer.pk, transaction_id=reversal_id,
                              source="reversal", amount=c["amount"], remaining=c["amount"],
                              value_at_issue=c["amount"] * c["value_at_issue"] // c["lot_amount"],
                              issued_at=now, available_at=now, expires_at=expires_at)
        repay = min(debt, c["amount"])
        if repay:
            uow.lots.consume([(lot_id, repay)], reversal_id)
            debt -= repay
