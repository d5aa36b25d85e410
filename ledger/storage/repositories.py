"""SQL repositories. Core statements on the SQLModel tables: one round trip where one will do."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import (
    BigInteger, Connection, and_, bindparam, case, cast, delete, exists, func, insert, select, true, update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ..domain import chain
from ..domain.accounts import ASSETS, Asset
from ..domain.errors import AmountTooLarge
from ..domain.ids import new_id
from ..domain.money import fits_int64
from ..domain.customers import PROFILE_FIELDS, Customer
from ..domain.engagement import new_referral_code
from ..domain.programs import Program, ProgramSettings
from ..domain.transactions import BookedEntry, TransactionDraft
from ..services.ports import (
    ApiKey, BookingContext, ClaimTaken, IdempotencyClaim, PostedTransaction, StoredAnswer, TransactionToBook, UpkeepDue,
    WrittenPurchase,
)
from . import driver
from .driver import Prepared, driver_rows
from .types import as_utc, pg_array, refuse_naive
from .tables import (
    AccountRow, ApiKeyRow, CustomerRow, EntryRow, IdempotencyRow, LotConsumptionRow, PendingReleaseRow, PointsLotRow,
    ProgramChangeRow, ProgramRow, PurchaseRow, RedemptionEventRow, RedemptionRow, RefundRow, TransactionRow,
)

PROGRAMS = ProgramRow.__table__
PROGRAM_CHANGES = ProgramChangeRow.__table__
API_KEYS = ApiKeyRow.__table__
CUSTOMERS = CustomerRow.__table__
ACCOUNTS = AccountRow.__table__
TRANSACTIONS = TransactionRow.__table__
ENTRIES = EntryRow.__table__
PURCHASES = PurchaseRow.__table__
LOTS = PointsLotRow.__table__
RELEASES = PendingReleaseRow.__table__
IDEMPOTENCY = IdempotencyRow.__table__
LOT_CONSUMPTIONS = LotConsumptionRow.__table__
REDEMPTIONS = RedemptionRow.__table__
REDEMPTION_EVENTS = RedemptionEventRow.__table__
REFUNDS = RefundRow.__table__


def _insert_ignore(conn: Connection, table: Any):  # noqa: ANN202
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    return _insert_ignore_for(conn.dialect.name, table)


# The checkout path's statements are built once and run with parameters: building a statement
# (coercions, `.values()`) cost more Python time than the database took to run it.
@functools.cache
def _insert_ignore_for(dialect: str, table: Any, returning: str | None = None):  # noqa: ANN202
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing()
    return statement.returning(table.c[returning]) if returning else statement


@functools.cache
def _insert_returning(table: Any, column: str):  # noqa: ANN202
    """INSERT INTO table (the keys of the parameters) ... RETURNING column."""
    return insert(table).returning(table.c[column])


class SqlPrograms:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    @staticmethod
    def _program(row: Any) -> Program:
        return Program(id=row.id, settings=ProgramSettings.from_dict(row.settings), created_at=row.created_at,
                       earning_version=row.earning_version)

    def add(self, program: Program, creation_key_hash: str | None) -> None:
        self.s.execute(insert(PROGRAMS).values(
            id=program.id, currency=program.currency, settings=program.settings.to_dict(),
            created_at=program.created_at, updated_at=program.created_at, creation_key_hash=creation_key_hash,
        ))

    def get(self, program_id: str) -> Program | None:
        row = self.s.execute(_PROGRAM_BY_ID, {"program_id": program_id}).first()
        return self._program(row) if row else None

    def lock(self, program_id: str) -> None:
        """Serialise rare program-wide work (referral registration, chain seals) until commit."""
        self.s.execute(select(PROGRAMS.c.id).where(PROGRAMS.c.id == program_id).with_for_update(key_share=True))

    def all(self) -> list[Program]:
        return [self._program(row) for row in self.s.execute(select(PROGRAMS).order_by(PROGRAMS.c.id))]

    def get_by_creation_key(self, creation_key_hash: str) -> Program | None:
        row = self.s.execute(
            select(PROGRAMS).where(PROGRAMS.c.creation_key_hash == creation_key_hash)).first()
        return self._program(row) if row else None

    def save_settings(self, program_id: str, before: ProgramSettings, after: ProgramSettings,
                      at: datetime, actor: str, request_id: str | None) -> None:
        self.s.execute(update(PROGRAMS).where(PROGRAMS.c.id == program_id)
                       .values(settings=after.to_dict(), updated_at=at))
        self.s.execute(insert(PROGRAM_CHANGES).values(
            program_id=program_id, actor=actor, request_id=request_id, changed_at=at,
            before=before.to_dict(), after=after.to_dict()))

    def changes(self, program_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.s.execute(select(PROGRAM_CHANGES).where(PROGRAM_CHANGES.c.program_id == program_id)
                              .order_by(PROGRAM_CHANGES.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]


class SqlApiKeys:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    @staticmethod
    def _key(row: Any) -> ApiKey:
        return ApiKey(id=row.id, program_id=row.program_id, role=row.role, name=row.name, prefix=row.prefix,
                      created_at=row.created_at, last_used_at=row.last_used_at, revoked_at=row.revoked_at,
                      replaced_by=row.replaced_by)

    def add(self, key: ApiKey, key_hash: str) -> None:
        self.s.execute(insert(API_KEYS).values(
            id=key.id, program_id=key.program_id, role=key.role, name=key.name, key_hash=key_hash,
            prefix=key.prefix, created_at=key.created_at))

    def get(self, program_id: str, key_id: str) -> ApiKey | None:
        row = self.s.execute(select(API_KEYS).where(
            API_KEYS.c.id == key_id, API_KEYS.c.program_id == program_id)).first()
        return self._key(row) if row else None

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self.s.execute(select(API_KEYS).where(API_KEYS.c.key_hash == key_hash)).first()
        return self._key(row) if row else None

    def list(self, program_id: str) -> list[ApiKey]:
        rows = self.s.execute(select(API_KEYS).where(API_KEYS.c.program_id == program_id)
                              .order_by(API_KEYS.c.created_at, API_KEYS.c.id)).all()
        return [self._key(r) for r in rows]

    def revoke(self, key_id: str, at: datetime, replaced_by: str | None = None) -> None:
        self.s.execute(update(API_KEYS).where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_at.is_(None))
                       .values(revoked_at=at, replaced_by=replaced_by))

    def touch(self, key_id: str, at: datetime) -> None:
        self.s.execute(update(API_KEYS).where(API_KEYS.c.id == key_id).values(last_used_at=at))


class SqlCustomers:
    def __init__(self, conn: Connection, ledger: "SqlLedger | None" = None) -> None:
        self.s = conn
        self._ledger = ledger

    @staticmethod
    def _customer(row: Any) -> Customer:
        return Customer(pk=row.pk, program_id=row.program_id, customer_id=row.customer_id, email=row.email,
                        phone=row.phone, name=row.name, display_name=row.display_name, birthday=row.birthday,
                        leaderboard_opt_in=row.leaderboard_opt_in, status=row.status,
                        created_at=row.created_at, updated_at=row.updated_at, tier_id=row.tier_id,
                        tier_changed_at=row.tier_changed_at, tier_evaluate_at=row.tier_evaluate_at,
                        tier_manual_until=row.tier_manual_until, referral_code=row.referral_code,
                        referred_by_pk=row.referred_by_pk)

    def get(self, program_id: str, customer_id: str) -> Customer | None:
        row = self.s.execute(_CUSTOMER_BY_ID, {"program_id": program_id, "customer_id": customer_id}).first()
        return self._customer(row) if row else None

    def lock(self, program_id: str, customer_id: str) -> Customer | None:
        # FOR UPDATE is a no-op on SQLite, where BEGIN IMMEDIATE already serialises writers.
        # FOR NO KEY UPDATE: writers of one customer still queue, but rows that merely reference
        # the customer (a referral naming them) are not blocked by its lock.
        row = self.s.execute(_LOCK_CUSTOMER, {"program_id": program_id, "customer_id": customer_id}).first()
        return self._customer(row) if row else None

    def lock_with_program(self, program_id: str, customer_id: str,
                          now: datetime | None = None) -> tuple[Program, Customer | None]:
        """The program and the customer's lock in one statement. The program row is as of the
        statement's start, as if read just before taking the lock. On PostgreSQL, given `now`, the
        accounts and upkeep flags that `SqlLedger.load_for_write(customer, now)` would read come in
        the same round trip (`ledger_lock_customer_for_write`, migration 0007) and are handed to it;
        that call reads the program after the lock."""
        if now is not None and self._ledger is not None and self.s.dialect.name == "postgresql":
            return self._lock_for_write(program_id, customer_id, now)
        row = _LOCK_CUSTOMER_WITH_PROGRAM.first(self.s, {"program_id": program_id, "customer_id": customer_id})
        if row is None:
            return SqlPrograms(self.s).get(program_id), None
        program = Program(id=program_id, settings=ProgramSettings.from_dict(row.program_settings),
                          created_at=row.program_created_at, earning_version=row.program_earning_version)
        return program, self._customer(row)

    def _lock_for_write(self, program_id: str, customer_id: str, now: datetime) -> tuple[Program, Customer | None]:
        refuse_naive(now)
        params = {"program_id": program_id, "customer_id": customer_id, "now": now}
        claim = driver.take(self.s, "claim")
        if claim is None:
            rows = driver_rows(self.s, _LOCK_FOR_WRITE_ON_POSTGRESQL, params)
        else:  # the unit of work's idempotency claim goes first, in the same round trip
            rows = driver_rows(self.s, _LOCK_FOR_WRITE_AFTER_CLAIM, {**claim.params, **params})
            claim.done(rows)  # raises ClaimTaken if the key was claimed before (then no lock was taken)
            rows = [row for row in rows if row.pk is not None]
        if not rows:
            return SqlPrograms(self.s).get(program_id), None
        (row,) = rows
        # Instants as the UTCDateTime columns would return them (the text bypasses their processors).
        customer = self._customer(row._replace(**{name: as_utc(getattr(row, name)) for name in _CUSTOMER_INSTANTS}))
        program = Program(id=program_id, settings=_program_settings(row.program_settings),
                          created_at=as_utc(row.program_created_at), earning_version=row.program_earning_version)
        accounts = dict(zip(row.account_paths or (), zip(row.account_ids or (), row.account_balances or ())))
        due = (UpkeepDue(releases_due=row.releases_due, holds_lapsed=row.holds_lapsed,
                         has_captures=row.has_captures) if accounts else UpkeepDue())
        self._ledger.prefetched(customer, accounts, row.chain_head if accounts else None,
                                as_utc(row.latest_recorded_at), now, due)
        return program, customer

    def lock_by_pk(self, customer_pk: int) -> Customer:
        row = self.s.execute(select(CUSTOMERS).where(CUSTOMERS.c.pk == customer_pk)
                             .with_for_update(key_share=True)).one()
        return self._customer(row)

    def add(self, program_id: str, customer_id: str, profile: dict[str, Any], at: datetime) -> Customer:
        values = {f: profile.get(f) for f in PROFILE_FIELDS}
        values["leaderboard_opt_in"] = bool(values["leaderboard_opt_in"])
        code = new_referral_code()  # 50 random bits; a clash fails the unique index and the write is retried
        pk = self.s.execute(insert(CUSTOMERS).values(
            program_id=program_id, customer_id=customer_id, status="active", created_at=at, updated_at=at,
            referral_code=code, **values).returning(CUSTOMERS.c.pk)).scalar_one()
        return Customer(pk=pk, program_id=program_id, customer_id=customer_id, status="active",
                        created_at=at, updated_at=at, referral_code=code, **values)

    def by_referral_code(self, program_id: str, code: str) -> Customer | None:
        row = self.s.execute(select(CUSTOMERS).where(CUSTOMERS.c.program_id == program_id,
                                                     CUSTOMERS.c.referral_code == code)).first()
        return self._customer(row) if row else None

    def by_pk(self, customer_pk: int) -> Customer:
        return self._customer(self.s.execute(select(CUSTOMERS).where(CUSTOMERS.c.pk == customer_pk)).one())

    def update(self, customer: Customer, changes: dict[str, Any], at: datetime) -> Customer:
        if "leaderboard_opt_in" in changes:
            changes = {**changes, "leaderboard_opt_in": bool(changes["leaderboard_opt_in"])}
        self.s.execute(update(CUSTOMERS).where(CUSTOMERS.c.pk == customer.pk).values(updated_at=at, **changes))
        row = self.s.execute(select(CUSTOMERS).where(CUSTOMERS.c.pk == customer.pk)).one()
        return self._customer(row)


def _balance_view():  # noqa: ANN202
    """The customer's program currency and accounts, each with the pending value due and the lapsed
    holds of its asset. Those two sums are taken once per asset (for the customer, found by an
    uncorrelated subquery, so each runs once) and picked by the account's asset: as subqueries
    correlated with the account row they ran once per account, six times each."""
    a, c, r, h = ACCOUNTS.c, CUSTOMERS.c, RELEASES.c, REDEMPTIONS.c
    now, program_id, customer_id = bindparam("now"), bindparam("program_id"), bindparam("customer_id")
    customer_pk = (select(c.pk).where(c.program_id == program_id, c.customer_id == customer_id)
                   .scalar_subquery())

    def by_asset(amount, asset, *where):  # noqa: ANN001, ANN202
        # sum() of BIGINT is NUMERIC on PostgreSQL: cast back, so the amounts arrive as int like every other.
        return select(*(func.coalesce(cast(func.sum(amount).filter(asset == name), BigInteger), 0).label(name)
                        for name in ASSETS)).where(*where)

    due = by_asset(r.amount - r.reversed_amount, r.asset, r.customer_pk == customer_pk,
                   r.released_transaction_id.is_(None), r.release_at <= now).subquery("due")
    lapsed = by_asset(h.amount, h.asset, h.customer_pk == customer_pk, h.status == "held",
                      h.expires_at <= now).subquery("lapsed")

    def of_the_account(sums):  # noqa: ANN001, ANN202
        return case((a.asset == Asset.POINTS, sums.c[Asset.POINTS]), else_=sums.c[Asset.CASHBACK])

    return (select(PROGRAMS.c.currency, a.path, a.asset, a.balance, of_the_account(due).label("due"),
                   of_the_account(lapsed).label("lapsed"))
            .select_from(CUSTOMERS.join(PROGRAMS, PROGRAMS.c.id == c.program_id)
                         .join(ACCOUNTS, a.customer_pk == c.pk).join(due, true()).join(lapsed, true()))
            .where(c.program_id == program_id, c.customer_id == customer_id))


def _customer_accounts():  # noqa: ANN202
    a = ACCOUNTS.c
    return (select(a.id, a.path, a.balance, ENTRIES.c.recorded_at, CUSTOMERS.c.chain_head)
            .join_from(ACCOUNTS, CUSTOMERS, CUSTOMERS.c.pk == a.customer_pk)
            .join(ENTRIES, ENTRIES.c.seq == a.last_seq, isouter=True)
            .where(a.customer_pk == bindparam("customer_pk")))


def _accounts_for_write():  # noqa: ANN202
    """`_customer_accounts` plus three flags that do not depend on the account row (evaluated once)."""
    r, h = RELEASES.c, REDEMPTIONS.c
    pk, now = bindparam("customer_pk"), bindparam("now")
    releases_due = exists().where(r.customer_pk == pk, r.released_transaction_id.is_(None), r.release_at <= now,
                                  r.amount > r.reversed_amount)
    holds_lapsed = exists().where(h.customer_pk == pk, h.status == "held", h.expires_at <= now)
    has_captures = exists().where(h.customer_pk == pk, h.status == "captured")
    return _customer_accounts().add_columns(releases_due.label("releases_due"), holds_lapsed.label("holds_lapsed"),
                                            has_captures.label("has_captures"))


# PostgreSQL: what SQLite books in four statements (transaction, entries, balances, chain head) in
# one round trip, with data-modifying CTEs. The entries and balances come as arrays, so the text is
# the same for every booking (psycopg caches it and the server keeps it prepared). Entries are
# inserted in posting order (WITH ORDINALITY), so ordering the result by seq pairs each seq with its posting.
_BOOK_ON_POSTGRESQL = """
WITH tx AS (
    INSERT INTO transactions (id, program_id, customer_pk, type, reference_kind, reference_id, description,
                              actor, request_id, idempotency_key, occurred_at, recorded_at, details)
    VALUES (%(id)s, %(program_id)s, %(customer_pk)s, %(type)s, %(reference_kind)s, %(reference_id)s,
            %(description)s, %(actor)s, %(request_id)s, %(idempotency_key)s, %(occurred_at)s, %(recorded_at)s,
            %(details)s::json)
    RETURNING seq
), booked AS (
    INSERT INTO entries (program_id, transaction_id, account_id, asset, amount, balance_after, recorded_at,
                         chain_hash)
    SELECT %(program_id)s, %(id)s, e.account_id, e.asset, e.amount, e.balance_after, %(recorded_at)s, e.chain_hash
      FROM unnest(%(e_account_id)s::bigint[], %(e_asset)s::varchar[], %(e_amount)s::bigint[],
                  %(e_balance_after)s::bigint[], %(e_chain_hash)s::varchar[])
           WITH ORDINALITY AS e(account_id, asset, amount, balance_after, chain_hash, n)
     ORDER BY e.n
    RETURNING seq, account_id
), balances AS (
    UPDATE accounts SET balance = b.balance,
                        last_seq = (SELECT max(booked.seq) FROM booked WHERE booked.account_id = b.id)
      FROM unnest(%(b_account_id)s::bigint[], %(b_balance)s::bigint[]) AS b(id, balance)
     WHERE accounts.id = b.id
), chain AS (
    UPDATE customers SET chain_head = %(chain_head)s WHERE pk = %(customer_pk)s
)
SELECT tx.seq AS transaction_seq, booked.seq FROM tx, booked ORDER BY booked.seq
"""


# PostgreSQL: a purchase row, its pending releases and its points lot in one round trip (all three
# are written under the customer's lock, so each round trip saved shortens the lock).
_LOT_COLUMNS = ("transaction_id", "source", "amount", "value_at_issue", "issued_at", "available_at", "expires_at")
_PURCHASE_ON_POSTGRESQL = """
WITH purchase AS (
    INSERT INTO purchases (program_id, order_id, customer_pk, transaction_id, amount, currency, tax, shipping,
                           channel, lines, points_earned, cashback_earned, occurred_at, recorded_at, earn_rates,
                           config_version, earning)
    VALUES (%(program_id)s, %(order_id)s, %(customer_pk)s, %(transaction_id)s, %(amount)s, %(currency)s, %(tax)s,
            %(shipping)s, %(channel)s, %(lines)s::json, %(points_earned)s, %(cashback_earned)s, %(occurred_at)s,
            %(recorded_at)s, %(earn_rates)s::json, %(config_version)s, %(earning)s::json)
    RETURNING id
), releases AS (
    INSERT INTO pending_releases (program_id, customer_pk, purchase_id, asset, amount, release_at)
    SELECT %(program_id)s, %(customer_pk)s, purchase.id, r.asset, r.amount, r.release_at
      FROM purchase, unnest(%(r_asset)s::varchar[], %(r_amount)s::bigint[], %(r_release_at)s::timestamptz[])
                     WITH ORDINALITY AS r(asset, amount, release_at, n)
     ORDER BY r.n
), lot AS (
    INSERT INTO points_lots (program_id, customer_pk, transaction_id, source, amount, remaining, value_at_issue,
                             issued_at, available_at, expires_at)
    SELECT %(program_id)s, %(customer_pk)s, %(l_transaction_id)s, %(l_source)s, %(l_amount)s::bigint,
           %(l_amount)s::bigint, %(l_value_at_issue)s::bigint, %(l_issued_at)s::timestamptz,
           %(l_available_at)s::timestamptz, %(l_expires_at)s::timestamptz
     WHERE %(has_lot)s
    RETURNING id
)
SELECT purchase.id, (SELECT id FROM lot) AS lot_id FROM purchase
"""

# The booking's CTEs alone, for statements that write rows naming the transaction with it.
_BOOKING_CTES = _BOOK_ON_POSTGRESQL[:_BOOK_ON_POSTGRESQL.index("SELECT tx.seq")].rstrip()

# PostgreSQL: a purchase that earns, in one round trip: the booking's CTEs, then the purchase's (its
# parameters prefixed with p_). Foreign keys from the purchase and the lot to the transaction are
# checked at the end of the statement, when the transaction row is there. Deferred (`driver.defer`)
# so that the stored answer goes with it.
_SHARED_WITH_THE_BOOKING = {"program_id": "program_id", "customer_pk": "customer_pk", "transaction_id": "id",
                            "l_transaction_id": "id"}  # the purchase's parameter -> the booking's
_PURCHASE_WITH_ACCRUAL_CTES = (
    _BOOKING_CTES + ","
    + re.sub(r"%\((\w+)\)s", lambda m: f"%({_SHARED_WITH_THE_BOOKING.get(m[1], 'p_' + m[1])})s",
             _PURCHASE_ON_POSTGRESQL[:_PURCHASE_ON_POSTGRESQL.index("SELECT purchase.id")]
             .replace("WITH purchase AS", " purchase AS", 1)).rstrip())
_PURCHASE_WITH_ACCRUAL_SELECT = ("SELECT tx.seq AS transaction_seq, booked.seq, (SELECT id FROM purchase) AS purchase_id,"
                                 " (SELECT id FROM lot) AS lot_id FROM tx, booked ORDER BY booked.seq")

# PostgreSQL: a hold in one round trip, deferred (`driver.defer`) to go with the stored answer: the
# booking's CTEs, the redemption row (naming the transaction) and its "held" event (h_ and ev_
# parameters: the booking's own are unprefixed, e_ and b_).
_HOLD_CTES = _BOOKING_CTES + """,
 redemption AS (
    INSERT INTO redemptions (program_id, redemption_id, customer_pk, asset, amount, value, captured_amount,
                             order_id, order_amount, status, expires_at, created_at, updated_at,
                             hold_transaction_id)
    VALUES (%(program_id)s, %(h_redemption_id)s, %(customer_pk)s, %(h_asset)s, %(h_amount)s, %(h_value)s,
            %(h_captured_amount)s::bigint, %(h_order_id)s, %(h_order_amount)s::bigint, %(h_status)s,
            %(h_expires_at)s, %(h_created_at)s, %(h_updated_at)s, %(id)s)
    RETURNING id
), held AS (
    INSERT INTO redemption_events (redemption_pk, kind, at, amount, expires_at, transaction_id, actor)
    SELECT redemption.id, %(ev_kind)s, %(ev_at)s, %(ev_amount)s::bigint, %(ev_expires_at)s::timestamptz, %(id)s,
           %(ev_actor)s
      FROM redemption
)"""
# The booking's own parameter names never take the prefixes the rows written with it use.
assert not any(name.startswith(("p_", "h_", "ev_", "answer_")) for name in re.findall(r"%\((\w+)\)s", _BOOK_ON_POSTGRESQL))
_HOLD_SELECT = "SELECT tx.seq AS transaction_seq, booked.seq FROM tx, booked ORDER BY booked.seq"
_HOLD_COLUMNS = ("redemption_id", "asset", "amount", "value", "captured_amount", "order_id", "order_amount", "status",
                 "expires_at", "created_at", "updated_at")
_HOLD_EVENT_COLUMNS = ("kind", "at", "amount", "expires_at", "actor")

# PostgreSQL: a deferred write (`driver.defer`) with the stored answer of the claims it completes.
_COMPLETED_CTE = """, completed AS (
    UPDATE idempotency_records SET status_code = %(answer_status)s::integer, body = %(answer_body)s
     WHERE id IN (%(answer_record_id)s::bigint, %(answer_other_record_id)s::bigint)
)"""


# Built once: constructing this statement cost more than running it.
_BALANCE_VIEW = Prepared(_balance_view())
_CUSTOMER_ACCOUNTS = _customer_accounts()
_ACCOUNTS_FOR_WRITE = Prepared(_accounts_for_write())
_PROGRAM_BY_ID = select(PROGRAMS).where(PROGRAMS.c.id == bindparam("program_id"))
# FOR NO KEY UPDATE (key_share): see SqlCustomers.lock.
_CUSTOMER_BY_ID = select(CUSTOMERS).where(CUSTOMERS.c.program_id == bindparam("program_id"),
                                         CUSTOMERS.c.customer_id == bindparam("customer_id"))
_LOCK_CUSTOMER = _CUSTOMER_BY_ID.with_for_update(key_share=True)
# The lock call's columns (migration 0007), the program's settings as text: psycopg would parse the
# JSON on every purchase, and the same text always makes the same settings (`_program_settings`).
_LOCK_FOR_WRITE_COLUMNS = (
    "pk", "program_id", "customer_id", "email", "phone", "name", "display_name", "birthday", "leaderboard_opt_in",
    "status", "created_at", "updated_at", "tier_id", "tier_changed_at", "tier_evaluate_at", "tier_manual_until",
    "referral_code", "referred_by_pk", "program_settings", "program_created_at", "program_earning_version",
    "account_ids", "account_paths", "account_balances", "latest_recorded_at", "chain_head", "releases_due",
    "holds_lapsed", "has_captures")


def _lock_for_write_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{name}::text AS {name}" if name == "program_settings" else f"{alias}.{name}"
                     for name in _LOCK_FOR_WRITE_COLUMNS)


_LOCK_FOR_WRITE_ON_POSTGRESQL = (f"SELECT {_lock_for_write_columns('l')} "
                                 "FROM ledger_lock_customer_for_write(%(program_id)s, %(customer_id)s, %(now)s) l")
# PostgreSQL: an idempotency claim, deferred (`SqlIdempotency.claim_later`) to go with the next statement.
_CLAIM_CTE = """WITH claimed AS (
    INSERT INTO idempotency_records (program_id, scope, key, fingerprint, created_at)
    VALUES (%(claim_program_id)s, %(claim_scope)s, %(claim_key)s, %(claim_fingerprint)s, %(claim_created_at)s)
    ON CONFLICT DO NOTHING
    RETURNING id
)"""
_CLAIM_SELECT = "SELECT (SELECT id FROM claimed) AS claim_id"
# The claim, then the customer's lock only if the claim is new: the lateral subquery's condition on
# the claim is a one-time filter, checked before the function is called, so a retry whose key was
# claimed before takes no lock. One row, with the lock call's columns null if it returned none.
_LOCK_FOR_WRITE_AFTER_CLAIM = _CLAIM_CTE + """
SELECT c.claim_id, """ + _lock_for_write_columns("l") + """
  FROM (SELECT (SELECT id FROM claimed) AS claim_id) c
  LEFT JOIN LATERAL (SELECT * FROM ledger_lock_customer_for_write(%(program_id)s, %(customer_id)s, %(now)s)
                      WHERE c.claim_id IS NOT NULL) l ON true"""


@functools.lru_cache(maxsize=256)
def _program_settings(text: str) -> ProgramSettings:
    """Settings stored as `text` (JSON). Settings are immutable, so one instance serves every request."""
    return ProgramSettings.from_dict(json.loads(text))


_CUSTOMER_INSTANTS = ("created_at", "updated_at", "tier_changed_at", "tier_evaluate_at", "tier_manual_until")


_LOCK_CUSTOMER_WITH_PROGRAM = Prepared(
    _CUSTOMER_BY_ID.add_columns(PROGRAMS.c.settings.label("program_settings"),
                                PROGRAMS.c.created_at.label("program_created_at"),
                                PROGRAMS.c.earning_version.label("program_earning_version"))
    .join_from(CUSTOMERS, PROGRAMS, PROGRAMS.c.id == CUSTOMERS.c.program_id)
    .with_for_update(of=CUSTOMERS, key_share=True))
_INSERT_ENTRIES = insert(ENTRIES).returning(ENTRIES.c.seq, sort_by_parameter_order=True)
_UPDATE_BALANCES = (update(ACCOUNTS).where(ACCOUNTS.c.id == bindparam("account_id"))
                    .values(balance=bindparam("new_balance"), last_seq=bindparam("new_last_seq")))
_UPDATE_CHAIN_HEAD = (update(CUSTOMERS).where(CUSTOMERS.c.pk == bindparam("customer_pk"))
                      .values(chain_head=bindparam("new_head")))
# One or two claims (a natural key's and a header key's) get the same answer in one statement.
_COMPLETE_IDEMPOTENCY = Prepared(
    update(IDEMPOTENCY).where(IDEMPOTENCY.c.id.in_([bindparam("record_id"), bindparam("other_record_id")]))
    .values(status_code=bindparam("new_status"), body=bindparam("new_body")))
_CLAIM_ON_POSTGRESQL = Prepared(
    postgresql.insert(IDEMPOTENCY)
    .values(**{name: bindparam(f"claim_{name}") for name in ("program_id", "scope", "key", "fingerprint", "created_at")})
    .on_conflict_do_nothing().returning(IDEMPOTENCY.c.id))


@dataclass(frozen=True, slots=True)
class _Booking:
    """A transaction as `SqlLedger.prepare` computed it: the rows to write, not yet written."""

    customer: Customer
    draft: TransactionDraft
    transaction: dict[str, Any]
    rows: list[dict[str, Any]]
    new_balances: dict[int, int]  # account id -> cached balance after the transaction
    head: str  # the customer's chain head after it

    def params(self) -> dict[str, Any]:
        """`_BOOK_ON_POSTGRESQL`'s parameters, bound as the column types would bind them (the text
        bypasses them): JSON as text, aware instants."""
        transaction, rows = self.transaction, self.rows
        refuse_naive(transaction["occurred_at"], transaction["recorded_at"])
        return {**transaction, "details": json.dumps(transaction["details"]), "chain_head": self.head,
                "e_account_id": pg_array([r["account_id"] for r in rows]),
                "e_asset": pg_array([r["asset"] for r in rows]),
                "e_amount": pg_array([r["amount"] for r in rows]),
                "e_balance_after": pg_array([r["balance_after"] for r in rows]),
                "e_chain_hash": pg_array([r["chain_hash"] for r in rows]),
                "b_account_id": pg_array(self.new_balances), "b_balance": pg_array(self.new_balances.values())}


class SqlLedger:
    """Books transactions. Customer balances are cached per account, in the same database transaction."""

    # House account ids never change once created: cached per process.
    _house_ids: dict[tuple[str, str], int] = {}

    def __init__(self, conn: Connection) -> None:
        self.s = conn
        self._customer_accounts: dict[int, dict[str, tuple[int, int]]] = {}
        self._chains: dict[int, tuple[str | None, datetime | None]] = {}  # pk -> (chain head, last recorded_at)
        self._prefetched_due: dict[int, tuple[datetime, UpkeepDue]] = {}  # pk -> (now, flags) read by the lock

    def open_customer_accounts(self, customer: Customer) -> None:
        self.s.execute(insert(ACCOUNTS), [
            {"program_id": customer.program_id, "path": path, "asset": path.split("/")[2],
             "customer_pk": customer.pk, "balance": 0, "bucket": path.split("/")[3]}
            for path in customer.account_paths()
        ])

    def ensure_house_accounts(self, program_id: str, accounts: Iterable[tuple[str, str]]) -> None:
        rows = [{"program_id": program_id, "path": path, "asset": asset, "balance": None} for path, asset in accounts]
        if rows:
            self.s.execute(_insert_ignore(self.s, ACCOUNTS), rows)

    def _house_account_id(self, program_id: str, path: str, asset: str) -> int:
        cache_key = (program_id, path)
        account_id = self._house_ids.get(cache_key)
        if account_id is not None:
            return account_id
        lookup = select(ACCOUNTS.c.id).where(ACCOUNTS.c.program_id == program_id, ACCOUNTS.c.path == path)
        account_id = self.s.execute(lookup).scalar_one_or_none()
        if account_id is not None:
            self._house_ids[cache_key] = account_id  # committed earlier: safe to remember
            return account_id
        # Created in this transaction, which may still roll back: not cached.
        self.ensure_house_accounts(program_id, [(path, asset)])
        return self.s.execute(lookup).scalar_one()

    def _load_customer_accounts(self, customer: Customer) -> dict[str, tuple[int, int]]:
        """path -> (account id, cached balance). Kept for the rest of this unit of work, where the
        customer's lock (taken before any write) keeps it true; `post` updates it.

        Read in its own statement after the lock, never joined into the locking SELECT: under READ
        COMMITTED a SELECT ... FOR UPDATE that waited re-reads only the rows it locks, so joined
        account rows would come from the stale snapshot (tests/integration/test_concurrency.py
        catches the lost updates that follows)."""
        accounts = self._customer_accounts.get(customer.pk)
        if accounts is None:
            rows = self.s.execute(_CUSTOMER_ACCOUNTS, {"customer_pk": customer.pk}).all()
            accounts = self._remember_accounts(customer, rows)
        return accounts

    def _remember_accounts(self, customer: Customer, rows: Sequence[Any]) -> dict[str, tuple[int, int]]:
        latest = max((r.recorded_at for r in rows if r.recorded_at is not None), default=None)
        return self._remember(customer, {r.path: (r.id, r.balance) for r in rows},
                              rows[0].chain_head if rows else None, latest)

    def _remember(self, customer: Customer, accounts: dict[str, tuple[int, int]], chain_head: str | None,
                  latest: datetime | None) -> dict[str, tuple[int, int]]:
        self._customer_accounts[customer.pk] = accounts
        self._chains[customer.pk] = (chain_head, latest)
        return accounts

    def prefetched(self, customer: Customer, accounts: dict[str, tuple[int, int]], chain_head: str | None,
                   latest: datetime | None, now: datetime, due: UpkeepDue) -> None:
        """What `load_for_write(customer, now)` reads (path -> (account id, cached balance), the chain
        head, the latest entry's time, the flags), read by the customer's lock (`SqlCustomers.lock_with_program`)."""
        self._remember(customer, accounts, chain_head, latest)
        self._prefetched_due[customer.pk] = (now, due)

    def load_for_write(self, customer: Customer, now: datetime) -> UpkeepDue:
        """The accounts (as `_load_customer_accounts`) and what upkeep is due, in one statement after the
        lock, unless the lock read them already (for the same instant)."""
        prefetched = self._prefetched_due.pop(customer.pk, None)
        if prefetched is not None and prefetched[0] == now:
            return prefetched[1]
        rows = _ACCOUNTS_FOR_WRITE.all(self.s, {"customer_pk": customer.pk, "now": now})
        self._remember_accounts(customer, rows)
        if not rows:
            return UpkeepDue()
        return UpkeepDue(releases_due=bool(rows[0].releases_due), holds_lapsed=bool(rows[0].holds_lapsed),
                         has_captures=bool(rows[0].has_captures))

    def post(self, program_id: str, draft: TransactionDraft, ctx: BookingContext, recorded_at: datetime,
             customer: Customer | None, transaction_id: str | None = None) -> PostedTransaction:
        booking = self.prepare(program_id, draft, ctx, recorded_at, customer, transaction_id)
        if self.s.dialect.name == "postgresql":
            booked = driver_rows(self.s, _BOOK_ON_POSTGRESQL, booking.params())
            return self.booked(booking, booked[0].transaction_seq, [r.seq for r in booked])
        transaction, rows = booking.transaction, booking.rows
        seq = self.s.execute(_insert_returning(TRANSACTIONS, "seq"), transaction).scalar_one()
        seqs = self.s.execute(_INSERT_ENTRIES, rows).scalars().all()
        last_seq_by_account = {row["account_id"]: s for row, s in zip(rows, seqs)}
        if booking.new_balances:
            self.s.execute(
                _UPDATE_BALANCES,
                [{"account_id": a, "new_balance": b, "new_last_seq": last_seq_by_account[a]}
                 for a, b in booking.new_balances.items()],
            )
        self.s.execute(_UPDATE_CHAIN_HEAD, {"customer_pk": booking.customer.pk, "new_head": booking.head})
        return self.booked(booking, seq, seqs)

    def prepare(self, program_id: str, draft: TransactionDraft, ctx: BookingContext, recorded_at: datetime,
                customer: Customer | None, transaction_id: str | None = None) -> _Booking:
        """The rows `post` writes (entries with their chain links and balances after), written by
        nothing yet; `booked` then records them as written."""
        if customer is None:
            raise ValueError("every transaction belongs to a customer: its chain needs the customer's lock")
        accounts = self._load_customer_accounts(customer)
        head, latest = self._chains[customer.pk]
        # Recorded times never go backwards on a customer's accounts (a request that read the clock
        # before waiting for the lock books no earlier than the one it waited for), so balance_after
        # answers as-of reads.
        if latest is not None and latest > recorded_at:
            recorded_at = latest
        transaction_id = transaction_id or new_id("txn")
        header = chain.transaction_header(
            transaction_id=transaction_id, type=draft.type, reference_kind=draft.reference.kind,
            reference_id=draft.reference.id, actor=ctx.actor, request_id=ctx.request_id,
            occurred_at=draft.occurred_at, recorded_at=recorded_at, description=draft.description,
            details=draft.metadata)
        transaction = dict(
            id=transaction_id, program_id=program_id, customer_pk=customer.pk, type=draft.type,
            reference_kind=draft.reference.kind, reference_id=draft.reference.id, description=draft.description,
            actor=ctx.actor, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key,
            occurred_at=draft.occurred_at, recorded_at=recorded_at, details=draft.metadata)

        rows: list[dict[str, Any]] = []
        new_balances: dict[int, int] = {}
        for posting in draft.postings:
            if posting.account in accounts:
                account_id, balance = accounts[posting.account]
                balance = new_balances.get(account_id, balance) + posting.amount
                if not fits_int64(balance):
                    raise AmountTooLarge(f"the balance of {posting.account} would not fit a 64-bit integer")
                new_balances[account_id] = balance
                balance_after: int | None = balance
            else:
                if posting.account.startswith("customer/"):
                    raise ValueError(f"{posting.account} is not an account of the locked customer")
                account_id = self._house_account_id(program_id, posting.account, posting.asset)
                balance_after = None
            head = chain.link(head, chain.entry_content(
                header, account=posting.account, asset=posting.asset, amount=posting.amount,
                balance_after=balance_after, recorded_at=recorded_at))
            rows.append({"program_id": program_id, "transaction_id": transaction_id, "account_id": account_id,
                         "asset": posting.asset, "amount": posting.amount, "balance_after": balance_after,
                         "recorded_at": recorded_at, "chain_hash": head})
        return _Booking(customer, draft, transaction, rows, new_balances, head)

    def booked(self, booking: _Booking, seq: int, seqs: Sequence[int]) -> PostedTransaction:
        """Record a prepared booking as written (its transaction's seq, its entries' seqs in posting
        order): `advance`, and the posted transaction."""
        self.advance(booking)
        transaction = booking.transaction
        entries = tuple(
            BookedEntry(seq=s, transaction_id=transaction["id"], account=p.account, asset=p.asset, amount=p.amount,
                        recorded_at=transaction["recorded_at"], balance_after=row["balance_after"])
            for p, row, s in zip(booking.draft.postings, booking.rows, seqs)
        )
        return PostedTransaction(id=transaction["id"], seq=seq, recorded_at=transaction["recorded_at"],
                                 entries=entries)

    def post_deferred(self, program_id: str, transaction: TransactionToBook, ctes: str, select: str,
                      params: dict[str, Any], done: Callable[[list[Any]], None]) -> None:
        """PostgreSQL: `post`, as the first CTEs (`_BOOKING_CTES`) of a statement whose further CTEs
        (in `ctes`, after the booking's) write rows naming the transaction with `params`; the
        statement is deferred (`driver.defer`) to go with the stored answer, and `done` gets its
        rows. This unit of work's cached balances move on at once."""
        booking = self.prepare(program_id, transaction.draft, transaction.ctx, transaction.recorded_at,
                               transaction.customer, transaction.transaction_id)
        self.advance(booking)
        driver.defer(self.s, driver.DeferredWrite(ctes, select, {**booking.params(), **params}, done))

    def advance(self, booking: _Booking) -> None:
        """This unit of work's cached balances and chain head move on to a prepared booking, which
        is written, or will be before the unit of work commits."""
        customer = booking.customer
        self._chains[customer.pk] = (booking.head, booking.transaction["recorded_at"])
        accounts = self._customer_accounts[customer.pk]
        for path, (account_id, _balance) in list(accounts.items()):
            if account_id in booking.new_balances:
                accounts[path] = (account_id, booking.new_balances[account_id])

    def balance_view(self, program_id: str, customer_id: str,
                     now: datetime) -> tuple[str, dict[str, int], dict[str, int], dict[str, int]] | None:
        """(currency, cached balance by path, due pending value per asset, lapsed holds per asset) in one
        statement: the hot balance read (see domain.customers.as_seen for what the customer is shown)."""
        rows = _BALANCE_VIEW.all(self.s, {"program_id": program_id, "customer_id": customer_id, "now": now})
        if not rows:
            return None
        return (rows[0].currency, {row.path: row.balance for row in rows},
                {row.asset: row.due for row in rows}, {row.asset: row.lapsed for row in rows})

    def customer_balances(self, customer: Customer) -> dict[str, int]:
        return {path: balance for path, (_id, balance) in self._load_customer_accounts(customer).items()}

    def entries(self, program_id: str, after_seq: int | None, limit: int) -> list[BookedEntry]:
        e, a = ENTRIES.c, ACCOUNTS.c
        q = (select(e.seq, e.transaction_id, a.path, e.asset, e.amount, e.recorded_at, e.balance_after)
             .join_from(ENTRIES, ACCOUNTS, e.account_id == a.id)
             .where(e.program_id == program_id).order_by(e.seq).limit(limit))
        if after_seq is not None:
            q = q.where(e.seq > after_seq)
        return [BookedEntry(seq=r.seq, transaction_id=r.transaction_id, account=r.path, asset=r.asset,
                            amount=r.amount, recorded_at=r.recorded_at, balance_after=r.balance_after)
                for r in self.s.execute(q)]

    def customer_activity(self, customer: Customer, before_seq: int | None, limit: int) -> list[dict[str, Any]]:
        t, e, a = TRANSACTIONS.c, ENTRIES.c, ACCOUNTS.c
        q = (select(t.seq, t.id, t.type, t.description, t.occurred_at, t.recorded_at, t.reference_kind,
                    t.reference_id)
             .where(t.customer_pk == customer.pk).order_by(t.seq.desc()).limit(limit))
        if before_seq is not None:
            q = q.where(t.seq < before_seq)
        transactions = [dict(r) for r in self.s.execute(q).mappings()]
        if not transactions:
            return []
        ids = [tx["id"] for tx in transactions]
        legs = self.s.execute(
            select(e.transaction_id, a.path, e.amount)
            .join_from(ENTRIES, ACCOUNTS, e.account_id == a.id)
            .where(e.transaction_id.in_(ids), a.customer_pk == customer.pk)).all()
        by_tx: dict[str, list[tuple[str, int]]] = {}
        for leg in legs:
            by_tx.setdefault(leg.transaction_id, []).append((leg.path, leg.amount))
        for tx in transactions:
            tx["legs"] = by_tx.get(tx["id"], [])
        return transactions



class _DeferredPurchase(driver.Pending):
    """A purchase written with its accrual by a deferred statement (`driver.defer`): it goes with the
    stored answer, or before anything else the unit of work sends; reading an id sends it now."""

    def resolve(self, rows: list[Any]) -> None:
        self.value = (rows[0].purchase_id, rows[0].lot_id)

    @property
    def purchase_pk(self) -> int:
        return self.get()[0]

    @property
    def lot_id(self) -> int | None:
        return self.get()[1]


class SqlPurchases:
    def __init__(self, conn: Connection, ledger: SqlLedger | None = None) -> None:
        self.s = conn
        self.ledger = ledger or SqlLedger(conn)

    def add(self, **fields: Any) -> int:
        return self.s.execute(_insert_returning(PURCHASES, "id"), fields).scalar_one()

    def add_with_releases_and_lot(self, purchase: dict[str, Any], releases: list[dict[str, Any]],
                                  lot: dict[str, Any] | None,
                                  accrual: TransactionToBook | None = None) -> WrittenPurchase | "_DeferredPurchase":
        if self.s.dialect.name != "postgresql":
            if accrual is not None:
                self.ledger.post(purchase["program_id"], accrual.draft, accrual.ctx, accrual.recorded_at,
                                 accrual.customer, accrual.transaction_id)
            pk = self.add(**purchase)
            for release in releases:
                SqlReleases(self.s).add(program_id=purchase["program_id"], customer_pk=purchase["customer_pk"],
                                        purchase_id=pk, **release)
            return WrittenPurchase(pk, SqlLots(self.s).add(**lot) if lot is not None else None)
        # Bound as the column types would bind them (the text bypasses them): JSON as text (None as
        # JSON null, as SQLAlchemy's JSON type stores it), aware instants.
        refuse_naive(purchase["occurred_at"], purchase["recorded_at"], *(r["release_at"] for r in releases),
                     *((lot["issued_at"], lot["available_at"], lot["expires_at"]) if lot is not None else ()))
        lot = lot or {}
        params = {**purchase, **{f"l_{k}": lot.get(k) for k in _LOT_COLUMNS}, "has_lot": bool(lot),
                  "lines": json.dumps(purchase["lines"]), "earn_rates": json.dumps(purchase["earn_rates"]),
                  "earning": json.dumps(purchase["earning"]),
                  "r_asset": pg_array([r["asset"] for r in releases]),
                  "r_amount": pg_array([r["amount"] for r in releases]),
                  "r_release_at": pg_array([r["release_at"] for r in releases])}
        if accrual is None:
            (row,) = driver_rows(self.s, _PURCHASE_ON_POSTGRESQL, params)
            return WrittenPurchase(row.id, row.lot_id)
        if (purchase["customer_pk"], purchase["transaction_id"], lot.get("transaction_id")) != (
                accrual.customer.pk, accrual.transaction_id, accrual.transaction_id if lot else None):
            raise ValueError("a purchase's accrual is booked for its own customer and transaction id")
        written = _DeferredPurchase(self.s)
        # One parameter per value (psycopg caches a statement's parsing only up to 50 parameters).
        self.ledger.post_deferred(
            purchase["program_id"], accrual, _PURCHASE_WITH_ACCRUAL_CTES, _PURCHASE_WITH_ACCRUAL_SELECT,
            {f"p_{k}": v for k, v in params.items() if k not in _SHARED_WITH_THE_BOOKING}, written.resolve)
        return written

    def by_pk(self, purchase_pk: int) -> dict[str, Any]:
        return dict(self.s.execute(select(PURCHASES).where(PURCHASES.c.id == purchase_pk)).mappings().one())

    def transaction_ids_of(self, purchase_pk: int) -> list[str]:
        tx = self.s.execute(select(PURCHASES.c.transaction_id).where(PURCHASES.c.id == purchase_pk)).scalar_one()
        return [tx] if tx else []

    def pk_by_transaction(self, transaction_id: str) -> int | None:
        return self.s.execute(select(PURCHASES.c.id).where(PURCHASES.c.transaction_id == transaction_id)
                              ).scalar_one_or_none()

    def order_id_of(self, purchase_pk: int) -> str:
        return self.s.execute(select(PURCHASES.c.order_id).where(PURCHASES.c.id == purchase_pk)).scalar_one()

    def get(self, program_id: str, order_id: str) -> dict[str, Any] | None:
        row = self.s.execute(
            select(PURCHASES, CUSTOMERS.c.customer_id)
            .join_from(PURCHASES, CUSTOMERS, CUSTOMERS.c.pk == PURCHASES.c.customer_pk)
            .where(PURCHASES.c.program_id == program_id, PURCHASES.c.order_id == order_id)).mappings().first()
        return dict(row) if row else None


class SqlLots:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add(self, **fields: Any) -> int:
        return self.s.execute(_insert_returning(LOTS, "id"), fields).scalar_one()

    def open_lots(self, customer_pk: int) -> list[dict[str, Any]]:
        """Lots with points left, in spending order: soonest expiry first, no expiry last, ties oldest first."""
        q = (select(LOTS.c.id, LOTS.c.remaining, LOTS.c.expires_at, LOTS.c.transaction_id, LOTS.c.issued_at,
                    LOTS.c.available_at)
             .where(LOTS.c.customer_pk == customer_pk, LOTS.c.remaining > 0)
             .order_by(LOTS.c.expires_at.is_(None), LOTS.c.expires_at, LOTS.c.id))
        return [dict(r) for r in self.s.execute(q).mappings()]

    def consume(self, consumptions: Sequence[tuple[int, int]], transaction_id: str) -> None:
        """Record that `transaction_id` took `amount` from each lot, and lower its remaining."""
        if not consumptions:
            return
        self.s.execute(insert(LOT_CONSUMPTIONS), [
            {"lot_id": lot_id, "transaction_id": transaction_id, "amount": amount} for lot_id, amount in consumptions])
        self.s.execute(
            update(LOTS).where(LOTS.c.id == bindparam("lot")).values(remaining=LOTS.c.remaining - bindparam("taken")),
            [{"lot": lot_id, "taken": amount} for lot_id, amount in consumptions])

    def consumed_by(self, transaction_ids: Sequence[str]) -> list[dict[str, Any]]:
        q = (select(LOT_CONSUMPTIONS.c.lot_id, LOT_CONSUMPTIONS.c.amount, LOTS.c.expires_at)
             .join_from(LOT_CONSUMPTIONS, LOTS, LOTS.c.id == LOT_CONSUMPTIONS.c.lot_id)
             .where(LOT_CONSUMPTIONS.c.transaction_id.in_(list(transaction_ids))))
        return [dict(r) for r in self.s.execute(q).mappings()]


class SqlReleases:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add(self, **fields: Any) -> int:
        return self.s.execute(_insert_returning(RELEASES, "id"), fields).scalar_one()

    def due(self, *, now: datetime, customer_pk: int | None = None, program_id: str | None = None,
            limit: int | None = None) -> list[dict[str, Any]]:
        r = RELEASES.c
        q = (select(RELEASES)
             .where(r.released_transaction_id.is_(None), r.release_at <= now, r.amount > r.reversed_amount)
             .order_by(r.release_at, r.id).limit(limit))
        if customer_pk is not None:
            q = q.where(r.customer_pk == customer_pk)
        if program_id is not None:
            q = q.where(r.program_id == program_id)
        return [dict(row) for row in self.s.execute(q).mappings()]

    def due_customers(self, *, now: datetime, limit: int = 200) -> list[int]:
        r = RELEASES.c
        q = (select(r.customer_pk).where(r.released_transaction_id.is_(None), r.release_at <= now,
                                         r.amount > r.reversed_amount)
             .group_by(r.customer_pk).order_by(r.customer_pk).limit(limit))
        return list(self.s.execute(q).scalars())

    def mark_released(self, release_ids: Sequence[int], transaction_id: str) -> None:
        self.s.execute(update(RELEASES).where(
            and_(RELEASES.c.id.in_(list(release_ids)), RELEASES.c.released_transaction_id.is_(None)))
            .values(released_transaction_id=transaction_id))

    def unreleased_for_purchase(self, purchase_pk: int, source: str = "purchase",
                                customer_pk: int | None = None) -> list[dict[str, Any]]:
        """Pending value tied to a purchase not yet released: its own accrual's (source purchase), or a
        referral reward's (source referral, for the referrer or the referee)."""
        q = select(RELEASES).where(RELEASES.c.purchase_id == purchase_pk, RELEASES.c.released_transaction_id.is_(None),
                                   RELEASES.c.amount > RELEASES.c.reversed_amount, RELEASES.c.source == source)
        if customer_pk is not None:
            q = q.where(RELEASES.c.customer_pk == customer_pk)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def reverse(self, release_pk: int, amount: int) -> None:
        """A refund reversed `amount` of this pending value: it will not be released."""
        self.s.execute(update(RELEASES).where(RELEASES.c.id == release_pk)
                       .values(reversed_amount=RELEASES.c.reversed_amount + amount))



class SqlIdempotency:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def claim(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> IdempotencyClaim | int:
        # On PostgreSQL the INSERT waits for a concurrent, uncommitted claim of the same key to end.
        values = dict(program_id=program_id, scope=scope, key=key, fingerprint=fingerprint, created_at=at)
        if self.s.dialect.name == "postgresql":
            claimed = _CLAIM_ON_POSTGRESQL.first(self.s, {f"claim_{name}": value for name, value in values.items()})
            record_id = claimed.id if claimed else None
        else:
            record_id = self.s.execute(_insert_ignore_for("sqlite", IDEMPOTENCY, "id"), values).scalar_one_or_none()
        if record_id is not None:
            return record_id
        return self._earlier(program_id, scope, key)

    def _earlier(self, program_id: str, scope: str, key: str) -> IdempotencyClaim:
        row = self.s.execute(select(IDEMPOTENCY).where(
            IDEMPOTENCY.c.program_id == program_id, IDEMPOTENCY.c.scope == scope,
            IDEMPOTENCY.c.key == key)).one()
        answer = StoredAnswer(row.status_code, row.body) if row.status_code is not None else None
        return IdempotencyClaim(record_id=row.id, fingerprint=row.fingerprint, answer=answer)

    def claim_later(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> "_ClaimTicket":
        if self.s.dialect.name != "postgresql":
            return _ClaimTicket(self.s, ClaimTaken.unless_new(self.claim(program_id, scope, key, fingerprint, at)))
        refuse_naive(at)
        ticket = _ClaimTicket(self.s)

        def claimed(rows: list[Any]) -> None:
            record_id = rows[0].claim_id
            ticket.value = record_id if record_id is not None else self._earlier(program_id, scope, key)
            ClaimTaken.unless_new(ticket.value)

        driver.defer(self.s, driver.DeferredWrite(_CLAIM_CTE, _CLAIM_SELECT, {
            "claim_program_id": program_id, "claim_scope": scope, "claim_key": key,
            "claim_fingerprint": fingerprint, "claim_created_at": at.astimezone(timezone.utc)}, claimed, kind="claim"))
        return ticket

    def complete(self, record_ids: tuple[int, ...], answer: StoredAnswer) -> None:
        if not 1 <= len(record_ids) <= 2:
            raise ValueError(f"one or two claims at a time, not {len(record_ids)}")
        deferred = driver.take(self.s, "write") if self.s.dialect.name == "postgresql" else None
        if deferred is not None:  # the write the answer is for, and the answer, in one round trip
            deferred.done(driver_rows(self.s, deferred.ctes + _COMPLETED_CTE + "\n" + deferred.select, {
                **deferred.params, "answer_record_id": record_ids[0], "answer_other_record_id": record_ids[-1],
                "answer_status": answer.status, "answer_body": answer.body}))
            return
        _COMPLETE_IDEMPOTENCY.all(self.s, {"record_id": record_ids[0], "other_record_id": record_ids[-1],
                                           "new_status": answer.status, "new_body": answer.body})

    def purge_header_keys(self, before: datetime, after_id: int, limit: int) -> tuple[int, datetime | None, int | None]:
        i = IDEMPOTENCY.c
        rows = self.s.execute(select(i.id, i.scope, i.created_at).where(i.id > after_id).order_by(i.id)
                              .limit(limit)).all()
        if not rows:
            return 0, None, None
        doomed = [row.id for row in rows if row.scope == "header" and row.created_at < before]
        if doomed:
            self.s.execute(delete(IDEMPOTENCY).where(i.id.in_(doomed)))
        return len(doomed), min(row.created_at for row in rows), rows[-1].id


class _ClaimTicket(driver.Pending):
    """`SqlIdempotency.claim_later`'s claim: its result once a statement has sent it."""

    def result(self) -> IdempotencyClaim | int:
        try:
            return self.get()
        except ClaimTaken:  # sent now, and claimed before: the earlier claim is the result
            return self.value


def _ints(row: Any) -> dict[str, Any]:
    """PostgreSQL sums of BIGINT are NUMERIC (Decimal): back to int, so findings serialise as JSON numbers."""
    from decimal import Decimal

    return {k: int(v) if isinstance(v, Decimal) else v for k, v in dict(row).items()}


class SqlAudit:
    """Whole-ledger checks: balanced transactions, a ledger summing to zero, cached balances = entries.
    Each takes an optional program id; without it, every program is checked."""

    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def unbalanced_transactions(self, limit: int = 20, program_id: str | None = None) -> list[dict[str, Any]]:
        e = ENTRIES.c
        q = (select(e.transaction_id, e.asset, func.sum(e.amount).label("total"), func.min(e.seq).label("seq"))
             .group_by(e.transaction_id, e.asset).having(func.sum(e.amount) != 0).limit(limit))
        if program_id is not None:
            q = q.where(e.program_id == program_id)
        return [_ints(r) for r in self.s.execute(q).mappings()]

    def totals_by_program_asset(self, program_id: str | None = None) -> list[dict[str, Any]]:
        e = ENTRIES.c
        where = [e.program_id == program_id] if program_id is not None else []
        if self.s.dialect.name != "sqlite":
            q = select(e.program_id, e.asset, func.sum(e.amount).label("total"), func.count().label("entries")) \
                .where(*where).group_by(e.program_id, e.asset)
            return [{**r, "total": int(r["total"])} for r in self.s.execute(q).mappings()]
        # SQLite's SUM overflows past 64 bits, which house accounts may reach in aggregate: sum each
        # transaction in SQL (it fits) and add those up in Python.
        q = select(e.program_id, e.asset, func.sum(e.amount).label("total"), func.count().label("entries")) \
            .where(*where).group_by(e.program_id, e.asset, e.transaction_id)
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.s.execute(q):
            t = totals.setdefault((r.program_id, r.asset), {"program_id": r.program_id, "asset": r.asset,
                                                            "total": 0, "entries": 0})
            t["total"] += r.total
            t["entries"] += r.entries
        return list(totals.values())

    def balance_mismatches(self, limit: int = 20, program_id: str | None = None) -> list[dict[str, Any]]:
        a, e = ACCOUNTS.c, ENTRIES.c
        customer_accounts = select(a.id).where(a.customer_pk.is_not(None))
        sums = (select(e.account_id, func.sum(e.amount).label("total"))
                .where(e.account_id.in_(customer_accounts)).group_by(e.account_id)).subquery()
        q = (select(a.id, a.path, a.balance, func.coalesce(sums.c.total, 0).label("entries_total"))
             .join_from(ACCOUNTS, sums, sums.c.account_id == a.id, isouter=True)
             .where(a.customer_pk.is_not(None), a.balance != func.coalesce(sums.c.total, 0)).limit(limit))
        if program_id is not None:
            q = q.where(a.program_id == program_id)
        return [_ints(r) for r in self.s.execute(q).mappings()]

    def balance_after_breaks(self, limit: int = 20, program_id: str | None = None) -> list[dict[str, Any]]:
        """Customer entries whose balance_after is not the running sum of the account's entries."""
        e = ENTRIES.c
        running = func.sum(e.amount).over(partition_by=e.account_id, order_by=e.seq)
        inner = select(e.seq, e.account_id, e.balance_after, running.label("running")) \
            .where(e.balance_after.is_not(None))
        if program_id is not None:
            inner = inner.where(e.program_id == program_id)
        inner = inner.subquery()
        q = select(inner).where(inner.c.balance_after != inner.c.running).order_by(inner.c.seq).limit(limit)
        return [_ints(r) for r in self.s.execute(q).mappings()]

    def lot_mismatches(self, limit: int = 20, program_id: str | None = None) -> list[dict[str, Any]]:
        """Customers whose open points lots do not add up to pending + reserved + max(available, 0)."""
        from sqlalchemy import case

        a = ACCOUNTS.c
        held = func.sum(case(
            (a.path.like("%/points/available"), case((a.balance > 0, a.balance), else_=0)),
            (a.path.like("%/points/pending"), a.balance),
            (a.path.like("%/points/reserved"), a.balance),
            else_=0)).label("points")
        holdings = select(a.customer_pk, held).where(a.customer_pk.is_not(None))
        if program_id is not None:
            holdings = holdings.where(a.program_id == program_id)
        holdings = holdings.group_by(a.customer_pk).subquery()
        lots = (select(LOTS.c.customer_pk, func.sum(LOTS.c.remaining).label("remaining"))
                .group_by(LOTS.c.customer_pk).subquery())
        q = (select(holdings.c.customer_pk, holdings.c.points, func.coalesce(lots.c.remaining, 0).label("lots"))
             .join_from(holdings, lots, lots.c.customer_pk == holdings.c.customer_pk, isouter=True)
             .where(holdings.c.points != func.coalesce(lots.c.remaining, 0)).limit(limit))
        return [_ints(r) for r in self.s.execute(q).mappings()]

    def transactions_without_entries(self, limit: int = 20, program_id: str | None = None) -> list[str]:
        t, e = TRANSACTIONS.c, ENTRIES.c
        q = select(t.id).where(~select(e.seq).where(e.transaction_id == t.id).exists()).limit(limit)
        if program_id is not None:
            q = q.where(t.program_id == program_id)
        return list(self.s.execute(q).scalars())


class SqlRedemptions:
    def __init__(self, conn: Connection, ledger: SqlLedger | None = None) -> None:
        self.s = conn
        self.ledger = ledger or SqlLedger(conn)

    def add(self, **fields: Any) -> int:
        return self.s.execute(_insert_returning(REDEMPTIONS, "id"), fields).scalar_one()

    def add_hold(self, row: dict[str, Any], event: dict[str, Any], hold: TransactionToBook) -> None:
        """A hold: its transaction (booked as `SqlLedger.post` books it), the redemption row and its
        event (both naming the transaction). On PostgreSQL one statement, deferred to go with the
        stored answer (`driver.defer`); this unit of work's cached balances include it at once."""
        if (row["customer_pk"], row["hold_transaction_id"], event["transaction_id"]) != (
                hold.customer.pk, hold.transaction_id, hold.transaction_id):
            raise ValueError("a hold's rows name its own customer and transaction")
        if self.s.dialect.name != "postgresql":
            self.ledger.post(row["program_id"], hold.draft, hold.ctx, hold.recorded_at, hold.customer,
                             hold.transaction_id)
            self.add_event(redemption_pk=self.add(**row), **event)
            return
        refuse_naive(row["expires_at"], row["created_at"], row["updated_at"], event["at"],
                     *([event["expires_at"]] if event["expires_at"] is not None else []))
        self.ledger.post_deferred(
            row["program_id"], hold, _HOLD_CTES, _HOLD_SELECT,
            {**{f"h_{k}": row[k] for k in _HOLD_COLUMNS}, **{f"ev_{k}": event[k] for k in _HOLD_EVENT_COLUMNS}},
            lambda rows: None)

    def get(self, program_id: str, redemption_id: str) -> dict[str, Any] | None:
        row = self.s.execute(
            select(REDEMPTIONS, CUSTOMERS.c.customer_id)
            .join_from(REDEMPTIONS, CUSTOMERS, CUSTOMERS.c.pk == REDEMPTIONS.c.customer_pk)
            .where(REDEMPTIONS.c.program_id == program_id, REDEMPTIONS.c.redemption_id == redemption_id)
        ).mappings().first()
        return dict(row) if row else None

    def update(self, redemption_pk: int, **changes: Any) -> None:
        self.s.execute(update(REDEMPTIONS).where(REDEMPTIONS.c.id == redemption_pk).values(**changes))

    def add_event(self, **fields: Any) -> None:
        self.s.execute(insert(REDEMPTION_EVENTS), fields)

    def events(self, redemption_pk: int) -> list[dict[str, Any]]:
        q = select(REDEMPTION_EVENTS).where(REDEMPTION_EVENTS.c.redemption_pk == redemption_pk) \
            .order_by(REDEMPTION_EVENTS.c.id)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def expired_holds(self, customer_pk: int, now: datetime) -> list[dict[str, Any]]:
        q = select(REDEMPTIONS).where(REDEMPTIONS.c.customer_pk == customer_pk, REDEMPTIONS.c.status == "held",
                                      REDEMPTIONS.c.expires_at <= now).order_by(REDEMPTIONS.c.id)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def customers_with_expired_holds(self, now: datetime, limit: int = 200) -> list[int]:
        q = (select(REDEMPTIONS.c.customer_pk).where(REDEMPTIONS.c.status == "held", REDEMPTIONS.c.expires_at <= now)
             .group_by(REDEMPTIONS.c.customer_pk).order_by(REDEMPTIONS.c.customer_pk).limit(limit))
        return list(self.s.execute(q).scalars())

    def held_for_customer(self, customer_pk: int) -> list[dict[str, Any]]:
        q = select(REDEMPTIONS).where(REDEMPTIONS.c.customer_pk == customer_pk, REDEMPTIONS.c.status == "held")
        return [dict(r) for r in self.s.execute(q).mappings()]

    def captured_for_order(self, program_id: str, order_id: str) -> list[dict[str, Any]]:
        """Captures that paid for the order, without those whose capture finance has reversed."""
        from .finance_repos import REVERSALS

        reversed_ = select(REVERSALS.c.id).where(REVERSALS.c.original_transaction_id
                                                 == REDEMPTIONS.c.settle_transaction_id)
        q = select(REDEMPTIONS).where(REDEMPTIONS.c.program_id == program_id, REDEMPTIONS.c.order_id == order_id,
                                      REDEMPTIONS.c.status == "captured", REDEMPTIONS.c.captured_amount > 0,
                                      ~reversed_.exists())
        return [dict(r) for r in self.s.execute(q).mappings()]


class SqlRefunds:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add(self, **fields: Any) -> int:
        return self.s.execute(_insert_returning(REFUNDS, "id"), fields).scalar_one()

    def for_purchase(self, purchase_pk: int) -> list[dict[str, Any]]:
        q = select(REFUNDS).where(REFUNDS.c.purchase_id == purchase_pk).order_by(REFUNDS.c.id)
        return [dict(r) for r in self.s.execute(q).mappings()]
