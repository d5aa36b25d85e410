"""Transactions and their postings as small immutable values.

Invariants checked on construction: no zero amount, and the postings of each
asset sum to zero. The database checks the same again (a deferred trigger on
PostgreSQL; the service and `ledger verify` on SQLite).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvariantViolation
from .money import fits_int64


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg: `amount` > 0 arrives in (Cr) `account`, < 0 leaves it (Dr)."""

    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class Reference:
    kind: str  # order, refund, redemption, event, adjustment, release
    id: str


@dataclass(frozen=True, slots=True)
class TransactionDraft:
    """A balanced business event, not yet booked."""

    type: str
    reference: Reference
    postings: tuple[Posting, ...]
    occurred_at: datetime
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.postings:
            raise InvariantViolation("a transaction needs at least one posting")
        sums: dict[str, int] = defaultdict(int)
        for p in self.postings:
            if p.amount == 0:
                raise InvariantViolation(f"zero-amount posting to {p.account}")
            if not fits_int64(p.amount):
                raise InvariantViolation(f"posting to {p.account} does not fit 64 bits")
            sums[p.asset] += p.amount
        unbalanced = {a: s for a, s in sums.items() if s != 0}
        if unbalanced:
            raise InvariantViolation(f"unbalanced transaction {self.type}: {unbalanced}")


def transfer(asset: str, debit: str, credit: str, amount: int) -> tuple[Posting, Posting]:
    """Move `amount` (> 0) out of `debit` into `credit`."""
    return Posting(debit, asset, -amount), Posting(credit, asset, amount)


@dataclass(frozen=True, slots=True)
class BookedEntry:
    seq: int
    transaction_id: str
    account: str
    asset: str
    amount: int
    recorded_at: datetime
    balance_after: int | None = None
