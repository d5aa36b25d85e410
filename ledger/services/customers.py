"""Enrolment and profile updates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..domain.customers import PROFILE_FIELDS, Balances, Customer
from ..domain.errors import CustomerNotFound
from .ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class EnrolmentResult:
    customer: Customer
    created: bool
    balances: Balances


def enrol_or_update(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str,
                    changes: dict[str, Any]) -> EnrolmentResult:
    """PUT semantics of a merge: an omitted field stays as it was, None clears it. `status`
    (active, blocked) is the admin's to change; `referred_by` registers a referral (see referrals)."""
    from .queries import balances_of

    from .referrals import register

    program = uow.programs.get(program_id)
    referred_by = changes.get("referred_by")
    status = changes.get("status")
    changes = {k: v for k, v in changes.items() if k in PROFILE_FIELDS}
    customer = uow.customers.lock(program_id, customer_id)
    now = clock.now()
    if customer is None:
        customer = uow.customers.add(program_id, customer_id, changes, now)
        uow.ledger.open_customer_accounts(customer)
        created = True
    else:
        if any(getattr(customer, k) != v for k, v in changes.items()):
            customer = uow.customers.update(customer, changes, now)
        created = False
    if status is not None and status != customer.status:
        if customer.status == "closed":
            from ..domain.errors import CustomerClosed
            raise CustomerClosed(f"customer {customer_id!r} is closed: a closed membership is not reopened")
        customer = uow.customers.update(customer, {"status": status}, now)
    if referred_by:
        customer = register(uow, now, program, customer, referred_by)
    return EnrolmentResult(customer=customer, created=created,
                           balances=balances_of(uow, program.settings.currency, customer, now))


def require_customer(uow: UnitOfWork, program_id: str, customer_id: str, *, lock: bool = False) -> Customer:
    return enrolled((uow.customers.lock if lock else uow.customers.get)(program_id, customer_id), customer_id)


def enrolled(customer: Customer | None, customer_id: str) -> Customer:
    """The customer found for `customer_id`; 404 `customer_not_found` when there is none."""
    if customer is None:
        raise CustomerNotFound(f"customer {customer_id!r} is not enrolled in this program")
    return customer
