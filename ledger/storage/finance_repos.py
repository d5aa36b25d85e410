"""Storage for finance: reading the ledger (paged, exported, as of an instant), roll-ups, closed
periods, chain seals, adjustments and reversals."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Iterator, Sequence

from sqlalchemy import BigInteger, Connection, and_, case, cast, exists, func, insert, literal, select, text, update

from .repositories import ACCOUNTS, CUSTOMERS, ENTRIES, LOT_CONSUMPTIONS, LOTS, REDEMPTIONS, REFUNDS, RELEASES, \
    TRANSACTIONS, PURCHASES
from .tables import AdjustmentRow, BalanceRollupRow, ChainSealRow, LedgerPeriodRow, ReversalRow

SEALS = ChainSealRow.__table__
ROLLUPS = BalanceRollupRow.__table__
PERIODS = LedgerPeriodRow.__table__
ADJUSTMENTS = AdjustmentRow.__table__
REVERSALS = ReversalRow.__table__

_ENTRY_COLUMNS = (ENTRIES.c.seq, ENTRIES.c.xid, ENTRIES.c.transaction_id, ACCOUNTS.c.path.label("account"),
                  ENTRIES.c.asset, ENTRIES.c.amount, ENTRIES.c.balance_after, ENTRIES.c.recorded_at,
                  ENTRIES.c.chain_hash)


def _customer_bucket_key():  # noqa: ANN202
    """`customer/*/{asset}/{bucket}`: how a trial balance shows the customer accounts, summed per bucket."""
    return literal("customer/*/") + ACCOUNTS.c.asset + literal("/") + ACCOUNTS.c.bucket


class SqlBooks:
    """Reads of the ledger for finance, and the stored roll-ups, periods and seals."""

    def __init__(self, conn: Connection) -> None:
        self.s = conn
        self.postgres = conn.dialect.name == "postgresql"

    # -- commit-safe positions -------------------------------------------------------------------
    # Writers still running in this database (cluster-wide xmin would also wait for other databases'
    # transactions): the in-progress xids of the current snapshot whose low 32 bits belong to a
    # session of this database. A writer that commits after the snapshot is read later anyway.
    _HORIZON = text("""
        WITH s AS (SELECT pg_current_snapshot() AS snap),
             here AS (SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
                      WHERE datname = current_database() AND backend_xid IS NOT NULL
                        AND pid <> pg_backend_pid())
        SELECT coalesce(
            (SELECT min(x8::text::bigint) FROM s, pg_snapshot_xip(s.snap) AS x8
             WHERE x8::text::bigint % 4294967296 IN (SELECT x FROM here)),
            (SELECT pg_snapshot_xmax(snap)::text::bigint FROM s))""")

    def safe_xid(self) -> int | None:
        """PostgreSQL: the oldest writer of this database still running (or, when none is, the next
        xid to be assigned). Every entry with a smaller xid has committed (or never will): a reader
        that pages only below it never skips an entry that commits later. SQLite commits writers one
        at a time, in seq order: None.

        Reads pg_stat_activity, so the service's readers must see its writers' sessions (the same
        database role, or pg_read_all_stats)."""
        if not self.postgres:
            return None
        self.s.execute(text("SELECT pg_stat_clear_snapshot()"))  # statistics are cached per transaction
        return self.s.execute(self._HORIZON).scalar_one()

    def wait_for_older_writers(self, timeout: float = 10.0) -> bool:
        """PostgreSQL: wait until every writer of this database that began before this transaction
        has finished, so that sums over past instants are final. True when they have."""
        if not self.postgres:
            return True
        own = self.s.execute(text("SELECT (pg_current_xact_id()::text)::bigint")).scalar_one()
        deadline = time.monotonic() + timeout
        while True:
            if self.safe_xid() >= own:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    # -- entries -------------------------------------------------------------------------------
    def _filtered(self, program_id: str, f: dict[str, Any]):  # noqa: ANN202
        e, t, a = ENTRIES.c, TRANSACTIONS.c, ACCOUNTS.c
        q = (select(*_ENTRY_COLUMNS, t.type.label("transaction_type"), t.reference_kind, t.reference_id,
                    CUSTOMERS.c.customer_id)
             .join_from(ENTRIES, ACCOUNTS, a.id == e.account_id)
             .join(TRANSACTIONS, t.id == e.transaction_id)
             .join(CUSTOMERS, CUSTOMERS.c.pk == t.customer_pk, isouter=True)
             .where(e.program_id == program_id))
        if f.get("account"):
            account = f["account"]
            q = q.where(a.path.like(account[:-1].replace("%", r"\%").replace("_", r"\_") + "%", escape="\\")
                        if account.endswith("*") else a.path == account)
        if f.get("customer_pk") is not None:
            q = q.where(t.customer_pk == f["customer_pk"])
        if f.get("asset"):
            q = q.where(e.asset == f["asset"])
        if f.get("type"):
            q = q.where(t.type == f["type"])
        if f.get("reference_kind"):
            q = q.where(t.reference_kind == f["reference_kind"])
        if f.get("reference_id"):
            q = q.where(t.reference_id == f["reference_id"])
        if f.get("from") is not None:
            q = q.where(e.recorded_at >= f["from"])
        if f.get("to") is not None:
            q = q.where(e.recorded_at < f["to"])
        return q

    def entries_page(self, program_id: str, filters: dict[str, Any], after: tuple[int, int] | None,
                     limit: int) -> list[dict[str, Any]]:
        """Entries in commit-safe order: (xid, seq) below the reader's xmin on PostgreSQL, seq on SQLite."""
        e = ENTRIES.c
        q = self._filtered(program_id, filters).limit(limit)
        if self.postgres:
            below = self.safe_xid()
            q = q.where(e.xid < below).order_by(e.xid, e.seq)
            if after is not None:
                q = q.where(func.row(e.xid, e.seq) > func.row(after[0], after[1]))
        else:
            q = q.order_by(e.seq)
            if after is not None:
                q = q.where(e.seq > after[1])
        return [dict(r) for r in self.s.execute(q).mappings()]

    def export(self, program_id: str, filters: dict[str, Any], batch: int = 2000) -> Iterator[dict[str, Any]]:
        """Every matching entry in seq order, streamed in batches from a server-side cursor."""
        t = TRANSACTIONS.c
        q = (self._filtered(program_id, filters)
             .add_columns(t.actor, t.occurred_at, t.description, t.request_id)
             .order_by(ENTRIES.c.seq)
             .execution_options(yield_per=batch, stream_results=True))
        for row in self.s.execute(q).mappings():
            yield dict(row)

    def transaction(self, program_id: str, transaction_id: str) -> dict[str, Any] | None:
        t = TRANSACTIONS.c
        row = self.s.execute(
            select(TRANSACTIONS, CUSTOMERS.c.customer_id)
            .join_from(TRANSACTIONS, CUSTOMERS, CUSTOMERS.c.pk == t.customer_pk, isouter=True)
            .where(t.program_id == program_id, t.id == transaction_id)).mappings().first()
        if row is None:
            return None
        tx = dict(row)
        tx["entries"] = [dict(r) for r in self.s.execute(
            select(*_ENTRY_COLUMNS).join_from(ENTRIES, ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
            .where(ENTRIES.c.transaction_id == transaction_id).order_by(ENTRIES.c.seq)).mappings()]
        r = REVERSALS.c
        tx["reversed_by"] = self.s.execute(select(r.reversal_transaction_id)
                                           .where(r.original_transaction_id == transaction_id)).scalar_one_or_none()
        tx["reverses"] = self.s.execute(select(r.original_transaction_id)
                                        .where(r.reversal_transaction_id == transaction_id)).scalar_one_or_none()
        return tx

    # -- balances as of an instant ----------------------------------------------------------------
    def customer_balances_as_of(self, customer_pk: int, as_of: datetime) -> dict[str, int]:
        """path -> balance after the last entry recorded before `as_of`; one indexed lookup per account
        (recorded times never go backwards on a customer's accounts)."""
        a, e = ACCOUNTS.c, ENTRIES.c
        last = (select(e.balance_after).where(e.account_id == a.id, e.recorded_at < as_of)
                .order_by(e.recorded_at.desc(), e.seq.desc()).limit(1).scalar_subquery())
        rows = self.s.execute(select(a.path, func.coalesce(last, 0).label("balance"))
                              .where(a.customer_pk == customer_pk)).all()
        return {r.path: r.balance for r in rows}

    def rollup_before(self, program_id: str, as_of: datetime) -> tuple[datetime | None, list[dict[str, Any]]]:
        """The latest roll-up at or before `as_of`, and its rows."""
        at = self.s.execute(select(func.max(ROLLUPS.c.as_of))
                            .where(ROLLUPS.c.program_id == program_id, ROLLUPS.c.as_of <= as_of)).scalar_one()
        if at is None:
            return None, []
        rows = self.s.execute(select(ROLLUPS.c.account, ROLLUPS.c.asset, ROLLUPS.c.balance, ROLLUPS.c.accounts)
                              .where(ROLLUPS.c.program_id == program_id, ROLLUPS.c.as_of == at)).mappings()
        return at, [dict(r) for r in rows]

    def latest_rollup_at(self, program_id: str) -> datetime | None:
        return self.s.execute(select(func.max(ROLLUPS.c.as_of)).where(ROLLUPS.c.program_id == program_id)).scalar_one()

    def sums_between(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]:
        """Per trial-balance line: the sum of the entries recorded in [start, end). Summed per
        transaction and account first, so that SQLite's 64-bit SUM cannot overflow on a house account."""
        e, a = ENTRIES.c, ACCOUNTS.c
        key = case((a.customer_pk.is_(None), a.path), else_=_customer_bucket_key())
        q = (select(key.label("account"), e.asset, func.sum(e.amount).label("total"))
             .join_from(ENTRIES, ACCOUNTS, a.id == e.account_id)
             .where(e.program_id == program_id, e.recorded_at < end))
        if start is not None:
            q = q.where(e.recorded_at >= start)
        totals: dict[tuple[str, str], int] = {}
        if self.postgres:
            q = q.group_by(key, e.asset)
        else:
            q = q.group_by(key, e.asset, e.transaction_id)
        for r in self.s.execute(q):
            totals[(r.account, r.asset)] = totals.get((r.account, r.asset), 0) + int(r.total)
        return [{"account": k[0], "asset": k[1], "total": v} for k, v in totals.items()]

    def account_counts(self, program_id: str, start: datetime | None, before: datetime) -> dict[str, int]:
        """Customer accounts per trial-balance line, of customers enrolled in [start, before)."""
        a, c = ACCOUNTS.c, CUSTOMERS.c
        key = _customer_bucket_key()
        q = (select(key.label("account"), func.count()).join_from(ACCOUNTS, CUSTOMERS, c.pk == a.customer_pk)
             .where(c.program_id == program_id, c.created_at < before).group_by(key))
        if start is not None:
            q = q.where(c.created_at >= start)
        return {r[0]: r[1] for r in self.s.execute(q).all()}

    def house_accounts(self, program_id: str) -> list[tuple[str, str]]:
        a = ACCOUNTS.c
        return [(r.path, r.asset) for r in self.s.execute(
            select(a.path, a.asset).where(a.program_id == program_id, a.customer_pk.is_(None)))]

    def add_rollup(self, program_id: str, as_of: datetime, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.s.execute(insert(ROLLUPS), [{"program_id": program_id, "as_of": as_of, **r} for r in rows])

    def first_entry_at(self, program_id: str, since: datetime | None = None) -> datetime | None:
        """When the first entry recorded at or after `since` (or at all) was recorded."""
        q = select(func.min(ENTRIES.c.recorded_at)).where(ENTRIES.c.program_id == program_id)
        if since is not None:
            q = q.where(ENTRIES.c.recorded_at >= since)
        return self.s.execute(q).scalar_one()

    # -- reports -------------------------------------------------------------------------------
    def house_movements(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]:
        """House-account entries in [start, end) summed per account, transaction type and sign."""
        e, a, t = ENTRIES.c, ACCOUNTS.c, TRANSACTIONS.c
        sign = case((e.amount > 0, 1), else_=-1)
        q = (select(a.path.label("account"), e.asset, t.type, sign.label("sign"), func.sum(e.amount).label("total"))
             .join_from(ENTRIES, ACCOUNTS, a.id == e.account_id)
             .join(TRANSACTIONS, t.id == e.transaction_id)
             .where(e.program_id == program_id, a.customer_pk.is_(None), e.recorded_at < end))
        if start is not None:
            q = q.where(e.recorded_at >= start)
        group = (a.path, e.asset, t.type, sign) if self.postgres else (a.path, e.asset, t.type, sign, t.id)
        totals: dict[tuple, int] = {}
        for r in self.s.execute(q.group_by(*group)):
            k = (r.account, r.asset, r.type, r.sign)
            totals[k] = totals.get(k, 0) + int(r.total)
        return [{"account": k[0], "asset": k[1], "type": k[2], "sign": k[3], "total": v} for k, v in totals.items()]

    def negative_balances(self, program_id: str, as_of: datetime) -> dict[str, int]:
        """Per asset: the sum of customer `available` balances below zero at `as_of` (a receivable)."""
        a, e = ACCOUNTS.c, ENTRIES.c
        last = (select(e.balance_after).where(e.account_id == a.id, e.recorded_at < as_of)
                .order_by(e.recorded_at.desc(), e.seq.desc()).limit(1).scalar_subquery())
        inner = (select(a.asset, last.label("balance"))
                 .where(a.program_id == program_id, a.bucket == "available")).subquery()
        rows = self.s.execute(select(inner.c.asset, func.sum(inner.c.balance))
                              .where(inner.c.balance < 0).group_by(inner.c.asset)).all()
        return {r[0]: int(r[1]) for r in rows}

    def lots_at(self, program_id: str, as_of: datetime) -> list[tuple[int, int, int]]:
        """(amount, value_at_issue, remaining at `as_of`) of every lot issued before `as_of` and not used up."""
        c, t = LOT_CONSUMPTIONS.c, TRANSACTIONS.c
        used = (select(cast(func.coalesce(func.sum(c.amount), 0), BigInteger)).join_from(LOT_CONSUMPTIONS, TRANSACTIONS,
                                                                       t.id == c.transaction_id)
                .where(c.lot_id == LOTS.c.id, t.recorded_at < as_of).scalar_subquery())
        q = (select(LOTS.c.amount, LOTS.c.value_at_issue, (LOTS.c.amount - used).label("remaining"))
             .join_from(LOTS, TRANSACTIONS, TRANSACTIONS.c.id == LOTS.c.transaction_id)
             .where(LOTS.c.program_id == program_id, TRANSACTIONS.c.recorded_at < as_of))
        return [(r.amount, r.value_at_issue, r.remaining) for r in self.s.execute(q) if r.remaining > 0]

    def lots_issued(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]:
        t = TRANSACTIONS.c
        q = (select(LOTS.c.source, t.type, LOTS.c.amount, LOTS.c.value_at_issue)
             .join_from(LOTS, TRANSACTIONS, t.id == LOTS.c.transaction_id)
             .where(LOTS.c.program_id == program_id, t.recorded_at < end))
        if start is not None:
            q = q.where(t.recorded_at >= start)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def consumptions(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]:
        """Consumptions in [start, end) with their lot and how much of it earlier consumptions took."""
        c, t = LOT_CONSUMPTIONS.c, TRANSACTIONS.c
        before = cast(func.coalesce(func.sum(c.amount).over(partition_by=c.lot_id, order_by=c.id), 0), BigInteger) \
            - c.amount
        inner = (select(c.amount, before.label("taken_before"), LOTS.c.amount.label("lot_amount"),
                        LOTS.c.value_at_issue, t.type, t.recorded_at)
                 .join_from(LOT_CONSUMPTIONS, LOTS, LOTS.c.id == c.lot_id)
                 .join(TRANSACTIONS, t.id == c.transaction_id)
                 .where(LOTS.c.program_id == program_id)).subquery()
        q = select(inner).where(inner.c.recorded_at < end)
        if start is not None:
            q = q.where(inner.c.recorded_at >= start)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def lot_fates(self, program_id: str, as_of: datetime, clawbacks: Sequence[str]) -> list[dict[str, Any]]:
        """Per lot issued before `as_of` (restored and reversal lots excluded): when, how many points,
        and how many of them expired, were clawed back, and were taken back by a reversal of the
        transaction that issued them, before `as_of`. Points of an expiry that finance reversed before
        `as_of` did not expire: the reversal gave them back (in lots of its own)."""
        c, t, issue = LOT_CONSUMPTIONS.c, TRANSACTIONS.c, TRANSACTIONS.alias("issue")
        undone = exists().where(REVERSALS.c.original_transaction_id == t.id, REVERSALS.c.created_at < as_of)
        taken = (select(c.lot_id,
                        cast(func.sum(case((and_(t.type == "points_expiry", ~undone), c.amount), else_=0)),
                             BigInteger).label("expired"),
                        cast(func.sum(case((t.type.in_(list(clawbacks)), c.amount), else_=0)), BigInteger)
                        .label("clawed_back"),
                        cast(func.sum(case((t.type == "reversal", c.amount), else_=0)), BigInteger).label("reversed"))
                 .join_from(LOT_CONSUMPTIONS, TRANSACTIONS, t.id == c.transaction_id)
                 .where(t.recorded_at < as_of).group_by(c.lot_id)).subquery()
        q = (select(LOTS.c.issued_at, LOTS.c.amount.label("issued"),
                    func.coalesce(taken.c.expired, 0).label("expired"),
                    func.coalesce(taken.c.clawed_back, 0).label("clawed_back"),
                    func.coalesce(taken.c.reversed, 0).label("reversed"))
             .join_from(LOTS, issue, issue.c.id == LOTS.c.transaction_id)
             .join(taken, taken.c.lot_id == LOTS.c.id, isouter=True)
             .where(LOTS.c.program_id == program_id, issue.c.recorded_at < as_of,
                    LOTS.c.source.not_in(["refund_restore", "reversal"])))
        return [dict(r) for r in self.s.execute(q).mappings()]

    def late_transactions(self, program_id: str, start: datetime | None, end: datetime | None,
                          transaction_id: str | None = None) -> list[dict[str, Any]]:
        """Transactions recorded in [start, end) (or the one `transaction_id`) whose occurred_at lies in
        a month closed before they were recorded."""
        t, p = TRANSACTIONS.c, PERIODS.c
        q = (select(t.id, t.type, t.occurred_at, t.recorded_at, p.period)
             .join_from(TRANSACTIONS, PERIODS, (p.program_id == t.program_id) & (t.occurred_at >= p.starts_at)
                        & (t.occurred_at < p.ends_at) & (p.closed_at <= t.recorded_at))
             .where(t.program_id == program_id).order_by(t.seq))
        if end is not None:
            q = q.where(t.recorded_at < end)
        if start is not None:
            q = q.where(t.recorded_at >= start)
        if transaction_id is not None:
            q = q.where(t.id == transaction_id)
        return [dict(r) for r in self.s.execute(q).mappings()]

    # -- closed periods ------------------------------------------------------------------------
    def period(self, program_id: str, period: str) -> dict[str, Any] | None:
        row = self.s.execute(select(PERIODS).where(PERIODS.c.program_id == program_id,
                                                   PERIODS.c.period == period)).mappings().first()
        return dict(row) if row else None

    def periods(self, program_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.s.execute(select(PERIODS).where(PERIODS.c.program_id == program_id)
                                                .order_by(PERIODS.c.period)).mappings()]

    def add_period(self, **fields: Any) -> None:
        self.s.execute(insert(PERIODS).values(**fields))

    def last_closed_before(self, program_id: str, at: datetime) -> dict[str, Any] | None:
        row = self.s.execute(select(PERIODS).where(PERIODS.c.program_id == program_id, PERIODS.c.ends_at <= at)
                             .order_by(PERIODS.c.ends_at.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    # -- hash chains and seals -----------------------------------------------------------------
    def chain_rows(self, program_id: str | None = None, batch: int = 2000) -> Iterator[Any]:
        """Every entry with its transaction header, per customer in seq order: what the chains cover."""
        e, t, a = ENTRIES.c, TRANSACTIONS.c, ACCOUNTS.c
        q = (select(t.customer_pk, e.seq, e.transaction_id, t.type, t.reference_kind, t.reference_id, t.actor,
                    t.request_id, t.occurred_at, t.recorded_at.label("transaction_recorded_at"), t.description,
                    t.details, a.path, e.asset, e.amount, e.balance_after, e.recorded_at, e.chain_hash)
             .join_from(ENTRIES, TRANSACTIONS, t.id == e.transaction_id)
             .join(ACCOUNTS, a.id == e.account_id)
             .order_by(t.customer_pk, e.seq).execution_options(yield_per=batch, stream_results=True))
        if program_id is not None:
            q = q.where(e.program_id == program_id)
        yield from self.s.execute(q)

    def chain_heads(self, program_id: str | None = None) -> dict[int, str | None]:
        q = select(CUSTOMERS.c.pk, CUSTOMERS.c.chain_head)
        if program_id is not None:
            q = q.where(CUSTOMERS.c.program_id == program_id)
        return {r.pk: r.chain_head for r in self.s.execute(q)}

    def heads_at(self, program_id: str, through_seq: int, below_xid: int | None) -> list[tuple[int, str]]:
        """Each customer's stored link of their last entry among those a seal covers."""
        e, t = ENTRIES.c, TRANSACTIONS.c
        last = (select(t.customer_pk, func.max(e.seq).label("seq"))
                .join_from(ENTRIES, TRANSACTIONS, t.id == e.transaction_id)
                .where(e.program_id == program_id, e.seq <= through_seq, e.chain_hash.is_not(None)))
        if below_xid is not None:
            last = last.where(e.xid < below_xid)
        last = last.group_by(t.customer_pk).subquery()
        rows = self.s.execute(select(last.c.customer_pk, ENTRIES.c.chain_hash)
                              .join_from(last, ENTRIES, ENTRIES.c.seq == last.c.seq)).all()
        return [(r.customer_pk, r.chain_hash) for r in rows]

    def seal_bound(self, program_id: str) -> tuple[int | None, int | None]:
        """(through_seq, below_xid) for a new seal: the entries whose writers had all finished."""
        below = self.safe_xid()
        q = select(func.max(ENTRIES.c.seq)).where(ENTRIES.c.program_id == program_id)
        if below is not None:
            q = q.where(ENTRIES.c.xid < below)
        return self.s.execute(q).scalar_one(), below

    def seals(self, program_id: str | None = None) -> list[dict[str, Any]]:
        q = select(SEALS).order_by(SEALS.c.program_id, SEALS.c.id)
        if program_id is not None:
            q = q.where(SEALS.c.program_id == program_id)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def add_seal(self, **fields: Any) -> None:
        self.s.execute(insert(SEALS).values(**fields))


class SqlCorrections:
    """Adjustments and reversals, and what a reversal must check first."""

    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add_adjustment(self, **fields: Any) -> int:
        return self.s.execute(insert(ADJUSTMENTS).values(**fields).returning(ADJUSTMENTS.c.id)).scalar_one()

    def adjustment(self, program_id: str, adjustment_id: str, lock: bool = False) -> dict[str, Any] | None:
        q = (select(ADJUSTMENTS, CUSTOMERS.c.customer_id)
             .join_from(ADJUSTMENTS, CUSTOMERS, CUSTOMERS.c.pk == ADJUSTMENTS.c.customer_pk)
             .where(ADJUSTMENTS.c.program_id == program_id, ADJUSTMENTS.c.adjustment_id == adjustment_id))
        if lock:
            q = q.with_for_update(of=ADJUSTMENTS)
        row = self.s.execute(q).mappings().first()
        return dict(row) if row else None

    def mark_booked(self, adjustment_pk: int, **changes: Any) -> None:
        self.s.execute(update(ADJUSTMENTS).where(ADJUSTMENTS.c.id == adjustment_pk).values(status="booked", **changes))

    def reversal_of(self, transaction_id: str) -> str | None:
        return self.s.execute(select(REVERSALS.c.reversal_transaction_id)
                              .where(REVERSALS.c.original_transaction_id == transaction_id)).scalar_one_or_none()

    def is_reversal(self, transaction_id: str) -> bool:
        return self.s.execute(select(REVERSALS.c.id)
                              .where(REVERSALS.c.reversal_transaction_id == transaction_id)).first() is not None

    def add_reversal(self, **fields: Any) -> None:
        self.s.execute(insert(REVERSALS).values(**fields))

    def postings(self, transaction_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.s.execute(
            select(ACCOUNTS.c.path.label("account"), ENTRIES.c.asset, ENTRIES.c.amount)
            .join_from(ENTRIES, ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
            .where(ENTRIES.c.transaction_id == transaction_id).order_by(ENTRIES.c.seq)).mappings()]

    def dependents(self, transaction_id: str) -> list[str]:
        """Later transactions that build on this one: refunds and releases of its purchase, the
        settlement of its hold, and any transaction that consumed points from the lots it credited."""
        found: list[str] = []
        p = PURCHASES.c
        purchase = select(p.id).where(p.transaction_id == transaction_id).scalar_subquery()
        found += self.s.execute(select(REFUNDS.c.transaction_id).where(REFUNDS.c.purchase_id == purchase,
                                                                       REFUNDS.c.transaction_id.is_not(None))).scalars()
        found += self.s.execute(select(RELEASES.c.released_transaction_id)
                                .where(RELEASES.c.purchase_id == purchase,
                                       RELEASES.c.released_transaction_id.is_not(None))).scalars()
        found += self.s.execute(select(REDEMPTIONS.c.settle_transaction_id)
                                .where(REDEMPTIONS.c.hold_transaction_id == transaction_id,
                                       REDEMPTIONS.c.settle_transaction_id.is_not(None))).scalars()
        c = LOT_CONSUMPTIONS.c
        found += self.s.execute(select(c.transaction_id).join_from(LOT_CONSUMPTIONS, LOTS, LOTS.c.id == c.lot_id)
                                .where(LOTS.c.transaction_id == transaction_id,
                                       c.transaction_id != transaction_id)).scalars()
        return sorted(set(found))

    def consumed(self, transaction_id: str) -> list[dict[str, Any]]:
        """The lots a transaction consumed: to give them back when it is reversed."""
        c = LOT_CONSUMPTIONS.c
        return [dict(r) for r in self.s.execute(
            select(c.lot_id, c.amount, LOTS.c.amount.label("lot_amount"), LOTS.c.value_at_issue, LOTS.c.expires_at,
                   LOTS.c.source, LOTS.c.available_at)
            .join_from(LOT_CONSUMPTIONS, LOTS, LOTS.c.id == c.lot_id)
            .where(c.transaction_id == transaction_id).order_by(c.id)).mappings()]

    def credited_lots(self, transaction_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.s.execute(
            select(LOTS.c.id, LOTS.c.remaining).where(LOTS.c.transaction_id == transaction_id)).mappings()]
