"""Reads: balances, activity, entries. Balances are O(1): cached rows, never a sum over history."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime


from ..domain.accounts import parse_customer_account
from ..domain.customers import Balances, BucketBalances, Customer, as_seen
from ..domain.transactions import BookedEntry
from ..domain.errors import CustomerNotFound
from .customers import require_customer
from .ports import UnitOfWork


def balances_of(uow: UnitOfWork, currency: str, customer: Customer, now: datetime,
                include_due: bool = True) -> Balances:
    """Cached balances, with pending value whose window has passed, and holds that have lapsed, shown
    as available even before the job or the customer's next write books them (`include_due=False`
    after a write, which has booked them already)."""
    cached = uow.ledger.customer_balances(customer)
    due: dict[str, int] = defaultdict(int)
    lapsed: dict[str, int] = defaultdict(int)
    if include_due:
        for row in uow.releases.due(now=now, customer_pk=customer.pk):
            due[row["asset"]] += row["amount"] - row["reversed_amount"]
        for row in uow.redemptions.expired_holds(customer.pk, now):
            lapsed[row["asset"]] += row["amount"]
    return Balances.from_accounts(currency, customer.customer_id, as_seen(customer.customer_id, cached, due, lapsed))


def customer_balances(uow: UnitOfWork, now: datetime, program_id: str, customer_id: str) -> Balances:
    """The hot read of the mobile app: one statement (`ledger.balance_view`), same answer as `balances_of`."""
    view = uow.ledger.balance_view(program_id, customer_id, now)
    if view is None:
        raise CustomerNotFound(f"customer {customer_id!r} is not enrolled in this program")
    currency, cached, due, lapsed = view
    return Balances.from_accounts(currency, customer_id, as_seen(customer_id, cached, due, lapsed))


@dataclass(frozen=True, slots=True)
class ActivityItem:
    transaction_id: str
    seq: int
    type: str
    description: str
    points: BucketBalances
    cashback: BucketBalances
    occurred_at: datetime
    recorded_at: datetime
    reference: dict[str, str]


def customer_activity(uow: UnitOfWork, program_id: str, customer_id: str, before_seq: int | None,
                      limit: int) -> list[ActivityItem]:
    """One item per transaction, newest first, with the signed change to each bucket."""
    customer = require_customer(uow, program_id, customer_id)
    items = []
    for tx in uow.ledger.customer_activity(customer, before_seq, limit):
        changes: dict[str, dict[str, int]] = {"points": {}, "cashback": {}}
        for path, amount in tx["legs"]:
            parsed = parse_customer_account(path)
            if parsed:
                _cid, asset, bucket = parsed
                changes[asset][bucket] = changes[asset].get(bucket, 0) + amount
        items.append(ActivityItem(
            transaction_id=tx["id"], seq=tx["seq"], type=tx["type"], description=tx["description"],
            points=BucketBalances(**changes["points"]), cashback=BucketBalances(**changes["cashback"]),
            occurred_at=tx["occurred_at"], recorded_at=tx["recorded_at"],
            reference={"kind": tx["reference_kind"], "id": tx["reference_id"]},
        ))
    return items


def ledger_entries(uow: UnitOfWork, program_id: str, after_seq: int | None, limit: int) -> list[BookedEntry]:
    return uow.ledger.entries(program_id, after_seq, limit)


def customer_profile(uow: UnitOfWork, now: datetime, program_id: str, customer_id: str) -> tuple[Customer, Balances]:
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, customer_id)
    return customer, balances_of(uow, program.settings.currency, customer, now)


