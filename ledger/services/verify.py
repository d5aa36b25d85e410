"""Verification of the whole ledger: what `ledger verify` and the tests check after every run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .ports import UnitOfWork


@dataclass
class VerifyReport:
    """ok is True only when every transaction balances per asset, every program's ledger sums to
    zero per asset, every transaction has entries, every cached customer balance equals its entries
    (and every balance_after is the running sum), and every customer's open points lots add up to
    their pending + reserved + max(available, 0) points."""

    unbalanced_transactions: list[dict[str, Any]] = field(default_factory=list)
    nonzero_totals: list[dict[str, Any]] = field(default_factory=list)
    balance_mismatches: list[dict[str, Any]] = field(default_factory=list)
    balance_after_breaks: list[dict[str, Any]] = field(default_factory=list)
    transactions_without_entries: list[str] = field(default_factory=list)
    lot_mismatches: list[dict[str, Any]] = field(default_factory=list)
    entries: int = 0

    @property
    def ok(self) -> bool:
        return not (self.unbalanced_transactions or self.nonzero_totals or self.balance_mismatches
                    or self.balance_after_breaks or self.transactions_without_entries or self.lot_mismatches)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def verify_ledger(uow: UnitOfWork) -> VerifyReport:
    totals = uow.audit.totals_by_program_asset()
    return VerifyReport(
        unbalanced_transactions=uow.audit.unbalanced_transactions(),
        nonzero_totals=[t for t in totals if t["total"] != 0],
        balance_mismatches=uow.audit.balance_mismatches(),
        balance_after_breaks=uow.audit.balance_after_breaks(),
        transactions_without_entries=uow.audit.transactions_without_entries(),
        lot_mismatches=uow.audit.lot_mismatches(),
        entries=sum(t["entries"] for t in totals),
    )
