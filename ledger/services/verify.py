"""Verification of the ledger: what `ledger verify`, `GET /v1/ledger/verify` and the tests check."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..domain import chain
from .ports import UnitOfWork


@dataclass
class VerifyReport:
    """ok is True only when every transaction balances per asset, the ledger sums to zero per asset,
    every transaction has entries, every cached customer balance equals its entries (and every
    balance_after is the running sum), every customer's open points lots add up to their pending +
    reserved + max(available, 0) points, every hash-chain link recomputes from the previous link and
    the entry's content, every customer's stored head is the link of their last entry, and every
    seal recomputes from the heads it covers. `first_broken_seq` is the smallest seq named by any
    of these checks (None when intact)."""

    unbalanced_transactions: list[dict[str, Any]] = field(default_factory=list)
    nonzero_totals: list[dict[str, Any]] = field(default_factory=list)
    balance_mismatches: list[dict[str, Any]] = field(default_factory=list)
    balance_after_breaks: list[dict[str, Any]] = field(default_factory=list)
    transactions_without_entries: list[str] = field(default_factory=list)
    lot_mismatches: list[dict[str, Any]] = field(default_factory=list)
    chain_breaks: list[dict[str, Any]] = field(default_factory=list)
    head_mismatches: list[dict[str, Any]] = field(default_factory=list)
    seal_mismatches: list[dict[str, Any]] = field(default_factory=list)
    entries: int = 0
    chained_entries: int = 0
    seals: int = 0

    @property
    def ok(self) -> bool:
        return not (self.unbalanced_transactions or self.nonzero_totals or self.balance_mismatches
                    or self.balance_after_breaks or self.transactions_without_entries or self.lot_mismatches
                    or self.chain_breaks or self.head_mismatches or self.seal_mismatches)

    @property
    def first_broken_seq(self) -> int | None:
        """The first entry whose link does not recompute: that names the altered entry itself. Without
        a chain break, the first broken running balance, else the first entry of an unbalanced
        transaction."""
        for findings in (self.chain_breaks, self.balance_after_breaks, self.unbalanced_transactions):
            if findings:
                return min(f["seq"] for f in findings)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "first_broken_seq": self.first_broken_seq, **asdict(self)}


def verify_ledger(uow: UnitOfWork, program_id: str | None = None, limit: int = 20,
                  all_seals: bool = False) -> VerifyReport:
    """`all_seals`: recompute every seal, not only each program's latest (whose heads cover every
    chain up to it: a rewrite of anything sealed changes them). The links between seals are
    always checked."""
    totals = uow.audit.totals_by_program_asset(program_id=program_id)
    report = VerifyReport(
        unbalanced_transactions=uow.audit.unbalanced_transactions(limit, program_id=program_id),
        nonzero_totals=[t for t in totals if t["total"] != 0],
        balance_mismatches=uow.audit.balance_mismatches(limit, program_id=program_id),
        balance_after_breaks=uow.audit.balance_after_breaks(limit, program_id=program_id),
        transactions_without_entries=uow.audit.transactions_without_entries(limit, program_id=program_id),
        lot_mismatches=uow.audit.lot_mismatches(limit, program_id=program_id),
        entries=sum(t["entries"] for t in totals),
    )
    _verify_chains(uow, program_id, report, limit)
    _verify_seals(uow, program_id, report, limit, all_seals)
    return report


def _verify_chains(uow: UnitOfWork, program_id: str | None, report: VerifyReport, limit: int) -> None:
    """Each stored link must equal sha256(the stored previous link + the entry's content): a changed
    entry breaks its own link; a removed one breaks its successor's (or the head, at the end)."""
    last_link: dict[int, str | None] = {}
    for row in uow.books.chain_rows(program_id):
        customer = row.customer_pk
        previous = last_link.get(customer)
        if row.chain_hash is None:
            if previous is not None and len(report.chain_breaks) < limit:
                report.chain_breaks.append({"seq": row.seq, "customer_pk": customer, "reason": "missing link"})
            continue
        header = chain.transaction_header(
            transaction_id=row.transaction_id, type=row.type, reference_kind=row.reference_kind,
            reference_id=row.reference_id, actor=row.actor, request_id=row.request_id, occurred_at=row.occurred_at,
            recorded_at=row.transaction_recorded_at, description=row.description, details=row.details)
        expected = chain.link(previous, chain.entry_content(
            header, account=row.path, asset=row.asset, amount=row.amount, balance_after=row.balance_after,
            recorded_at=row.recorded_at))
        report.chained_entries += 1
        if expected != row.chain_hash and len(report.chain_breaks) < limit:
            report.chain_breaks.append({"seq": row.seq, "customer_pk": customer, "reason": "link does not recompute"})
        last_link[customer] = row.chain_hash
    for customer, head in uow.books.chain_heads(program_id).items():
        if last_link.get(customer) != head and len(report.head_mismatches) < limit:
            report.head_mismatches.append({"customer_pk": customer, "stored_head": head,
                                           "last_link": last_link.get(customer)})


def _verify_seals(uow: UnitOfWork, program_id: str | None, report: VerifyReport, limit: int,
                  all_seals: bool) -> None:
    seals = uow.books.seals(program_id)
    latest = {seal["program_id"]: seal["id"] for seal in seals}
    previous: dict[str, str | None] = {}
    for seal in seals:
        report.seals += 1
        pid = seal["program_id"]
        broken = seal["previous_digest"] != previous.get(pid)
        if all_seals or seal["id"] == latest[pid]:
            heads = uow.books.heads_at(pid, seal["through_seq"], seal["below_xid"])
            broken = broken or chain.seal_digest(seal["previous_digest"], heads) != seal["digest"]
        if broken and len(report.seal_mismatches) < limit:
            report.seal_mismatches.append({"seal_id": seal["id"], "program_id": pid,
                                           "sealed_at": seal["sealed_at"].isoformat()})
        previous[pid] = seal["digest"]


def seal_program(uow: UnitOfWork, program_id: str, now) -> dict[str, Any] | None:  # noqa: ANN001
    """Seal every customer's chain head (entries whose writers have finished), chained to the previous
    seal. Nothing new since the last seal: no seal. The program's lock serialises concurrent job
    runs: the second reads the first's seal as the last one, instead of forking the chain beside it."""
    uow.programs.lock(program_id)
    through_seq, below_xid = uow.books.seal_bound(program_id)
    seals = uow.books.seals(program_id)
    last = seals[-1] if seals else None
    if through_seq is None or (last is not None and last["through_seq"] >= through_seq):
        return None
    heads = uow.books.heads_at(program_id, through_seq, below_xid)
    previous = last["digest"] if last else None
    seal = {"program_id": program_id, "sealed_at": now, "through_seq": through_seq, "below_xid": below_xid,
            "customers": len(heads), "previous_digest": previous, "digest": chain.seal_digest(previous, heads)}
    uow.books.add_seal(**seal)
    return seal
