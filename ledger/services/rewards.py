"""Granting and taking back standalone rewards (referrals, events, achievements).

A grant books Dr `house/points/issued/{source}` (points) or `house/cashback/funding/{source}`
(cashback), Cr the customer's `pending` (with a release at `pending_until`) or `available`, and
records a points lot. Taking back is the mirror, pending value first; what the customer no longer
has goes negative in `available` (allow_negative) or is written off (write_off), as for refunds.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from ..domain.accounts import Asset, Bucket, house_account
from ..domain.customers import Customer
from ..domain.expiry import lot_expires_at
from ..domain.programs import Program
from ..domain.transactions import Posting, Reference, TransactionDraft
from .lots import available_points, consume_lots, credit_lot
from .ports import BookingContext, UnitOfWork


def source_account(asset: str, source: str) -> str:
    return house_account(asset, f"issued/{source}" if asset == Asset.POINTS else f"funding/{source}")


def grant(uow: UnitOfWork, now: datetime, program: Program, customer: Customer, ctx: BookingContext, *,
          type_: str, reference: Reference, source: str, points: int, cashback: int, description: str,
          occurred_at: datetime, pending_until: datetime | None = None, release_purchase_pk: int | None = None,
          release_source: str = "referral", metadata: dict | None = None) -> str | None:
    """Book a reward; returns its transaction id (None when it is worth nothing)."""
    amounts = {Asset.POINTS: points, Asset.CASHBACK: cashback}
    bucket = Bucket.PENDING if pending_until else Bucket.AVAILABLE
    postings = []
    for asset, amount in amounts.items():
        if amount > 0:
            postings += [Posting(source_account(asset, source), asset, -amount),
                         Posting(customer.account(asset, bucket), asset, amount)]
    if not postings:
        return None
    available_before = available_points(uow, customer)
    draft = TransactionDraft(type=type_, reference=reference, postings=tuple(postings), occurred_at=occurred_at,
                             description=description, metadata=metadata or {})
    transaction_id = uow.ledger.post(program.id, draft, ctx, now, customer).id
    for asset, amount in amounts.items():
        if amount > 0 and pending_until:
            uow.releases.add(program_id=program.id, customer_pk=customer.pk, purchase_id=release_purchase_pk,
                             asset=asset.value, amount=amount, release_at=pending_until, source=release_source)
    if points > 0:
        available_at = pending_until or now
        credit_lot(uow, program.settings, customer, points, transaction_id, source, now, available_at=available_at,
                   available_before=None if pending_until else available_before,
                   expires_at=lot_expires_at(program.settings, available_at))
    return transaction_id


def reverse_pending(uow: UnitOfWork, releases: Sequence[dict], asset: str, amount: int) -> int:
    """Take up to `amount` of `asset` from unreleased pending value (the releases shrink); returns how much."""
    taken = 0
    for release in releases:
        if release["asset"] != asset:
            continue
        take = min(amount - taken, release["amount"] - release["reversed_amount"])
        if take > 0:
            uow.releases.reverse(release["id"], take)
            taken += take
    return taken


def debit_available(postings: list[Posting], balances: dict[str, int], customer: Customer, asset: str,
                    amount: int, clawback_policy: str) -> tuple[int, int]:
    """Take `amount` from the customer's `available`: what is there is collected; the rest goes
    negative (allow_negative) or to `written_off` (write_off). Appends the postings, updates
    `balances`; returns (collected, uncollected)."""
    available_account = customer.account(asset, Bucket.AVAILABLE)
    collected = min(amount, max(balances.get(available_account, 0), 0))
    short = amount - collected
    debit = collected + (short if clawback_policy == "allow_negative" else 0)
    if debit:
        postings.append(Posting(available_account, asset, -debit))
        balances[available_account] = balances.get(available_account, 0) - debit
    if short and clawback_policy == "write_off":
        postings.append(Posting(house_account(asset, "written_off"), asset, -short))
    return collected, short


def take_back(uow: UnitOfWork, now: datetime, program: Program, customer: Customer, ctx: BookingContext, *,
              type_: str, reference: Reference, source: str, points: int, cashback: int, description: str,
              pending_releases: list[dict] = (), prefer_transactions: tuple[str, ...] = ()) -> str | None:
    """Reverse a reward: from the unreleased `pending_releases` first, then from `available`. A closed
    membership's balances were settled at closure: nothing is taken back from it."""
    if customer.status == "closed":
        return None
    amounts = {Asset.POINTS: points, Asset.CASHBACK: cashback}
    balances = dict(uow.ledger.customer_balances(customer))
    postings: list[Posting] = []
    taken_points = 0
    for asset, amount in amounts.items():
        if amount <= 0:
            continue
        from_pending = reverse_pending(uow, pending_releases, asset, amount)
        postings.append(Posting(source_account(asset, source), asset, amount))
        if from_pending:
            postings.append(Posting(customer.account(asset, Bucket.PENDING), asset, -from_pending))
        collectible, _ = debit_available(postings, balances, customer, asset, amount - from_pending,
                                         program.settings.clawback_policy)
        if asset == Asset.POINTS:
            taken_points = from_pending + collectible
    if not postings:
        return None
    draft = TransactionDraft(type=type_, reference=reference, postings=tuple(postings), occurred_at=now,
                             description=description, metadata={"clawback_policy": program.settings.clawback_policy})
    transaction_id = uow.ledger.post(program.id, draft, ctx, now, customer).id
    consume_lots(uow, customer, taken_points, transaction_id, now, prefer_transactions=prefer_transactions)
    return transaction_id
