"""The end of a membership: erasing a member's personal data, and closing the membership.

Erasure clears the profile's personal fields and keeps the ledger intact under the same customer
id (entries carry no personal data). Closing voids open holds, forfeits every point (Dr the
customer's buckets, Cr `forfeited`), writes off a negative balance (Dr `written_off`), and either
reports the cashback as still owed or, with `forfeit_cashback_on_close`, forfeits it too. A
closed member earns and redeems nothing more; their history stays readable, and a later refund of
their orders books nothing (their balances were settled at closure).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import ASSETS, BUCKETS, Asset, house_account
from ..domain.customers import PROFILE_FIELDS
from ..domain.transactions import Posting, Reference, TransactionDraft
from .customers import require_customer
from .lots import consume_lots
from .ports import BookingContext, UnitOfWork
from .upkeep import prepare_customer_for_write


def erase_personal_data(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> dict[str, Any]:
    """Clear email, phone, name, display name and birthday, and leave the leaderboard. Idempotent."""
    now = clock.now()
    customer = require_customer(uow, program_id, customer_id, lock=True)
    cleared = {field: None for field in PROFILE_FIELDS if field != "leaderboard_opt_in"}
    customer = uow.customers.update(customer, {**cleared, "leaderboard_opt_in": False, "erased_at": now}, now)
    return {"customer_id": customer_id, "erased_at": now, "status": customer.status}


def close_membership(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str,
                     ctx: BookingContext) -> dict[str, Any]:
    from .redemptions import void_for_closure

    now = clock.now()
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, customer_id, lock=True)
    prepare_customer_for_write(uow, now, program, customer, ctx)
    for hold in uow.redemptions.held_for_customer(customer.pk):
        void_for_closure(uow, now, program, customer, hold, ctx)
    balances = uow.ledger.customer_balances(customer)
    forfeit_cashback = program.settings.forfeit_cashback_on_close
    postings: list[Posting] = []
    forfeited = {str(a): 0 for a in ASSETS}
    written_off = {str(a): 0 for a in ASSETS}
    for asset in ASSETS:
        for bucket in BUCKETS:
            balance = balances[customer.account(asset, bucket)]
            if balance > 0 and (asset == Asset.POINTS or forfeit_cashback):
                postings += [Posting(customer.account(asset, bucket), asset, -balance),
                             Posting(house_account(asset, "forfeited"), asset, balance)]
                forfeited[asset] += balance
            elif balance < 0:  # a debt the member can no longer repay
                postings += [Posting(customer.account(asset, bucket), asset, -balance),
                             Posting(house_account(asset, "written_off"), asset, balance)]
                written_off[asset] += -balance
    transaction_id = None
    if postings:
        draft = TransactionDraft(
            type="customer_close", reference=Reference("customer", customer_id), postings=tuple(postings),
            occurred_at=now,
            description=describe.closure(forfeited[Asset.POINTS], forfeited[Asset.CASHBACK],
                                         program.settings.currency, forfeit_cashback),
            metadata={"forfeit_cashback_on_close": forfeit_cashback})
        transaction_id = uow.ledger.post(program_id, draft, ctx, now, customer).id
        if forfeited[Asset.POINTS]:
            consume_lots(uow, customer, forfeited[Asset.POINTS], transaction_id, now)
    # Pending value forfeited above must never be released later.
    for release in uow.releases.due(now=datetime.max.replace(tzinfo=timezone.utc), customer_pk=customer.pk):
        left = release["amount"] - release["reversed_amount"]
        if left > 0 and (release["asset"] == Asset.POINTS or forfeit_cashback):
            uow.releases.reverse(release["id"], left)
    uow.customers.update(customer, {"status": "closed", "closed_at": now}, now)
    owed = 0 if forfeit_cashback else sum(max(balances[customer.account(Asset.CASHBACK, b)], 0) for b in BUCKETS)
    return {"customer_id": customer_id, "status": "closed", "closed_at": now, "transaction_id": transaction_id,
            "points_forfeited": forfeited[Asset.POINTS], "cashback_forfeited": forfeited[Asset.CASHBACK],
            "cashback_owed": owed, "written_off": written_off}
