"""What the use cases need from storage. The SQL unit of work implements it; tests may fake it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ContextManager, Iterable, Protocol, Sequence

from ..domain.customers import Customer
from ..domain.programs import Program, ProgramSettings
from ..domain.transactions import BookedEntry, TransactionDraft


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given to a write: replayed byte for byte."""

    status: int
    body: str


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A key claimed earlier (by this or another request). `answer` is None only mid-flight."""

    record_id: int
    fingerprint: str
    answer: StoredAnswer | None


class ClaimTaken(Exception):
    """Raised by the statement that sent a claim made with `claim_later` when the key was claimed
    before: nothing of that statement's own was done (a customer lock, say, was not taken)."""

    def __init__(self, claim: IdempotencyClaim) -> None:
        super().__init__(f"idempotency record {claim.record_id} claimed earlier")
        self.claim = claim

    @staticmethod
    def unless_new(claim: IdempotencyClaim | int) -> int:
        """A new claim's record id; raises ClaimTaken for an earlier claim."""
        if isinstance(claim, IdempotencyClaim):
            raise ClaimTaken(claim)
        return claim


class ClaimTicket(Protocol):
    def result(self) -> IdempotencyClaim | int:
        """What `claim` would have returned, sending the claim now if no statement has yet."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    program_id: str
    role: str
    name: str | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None


@dataclass(frozen=True, slots=True)
class BookingContext:
    """Who booked a transaction and under which request."""

    actor: str
    request_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class PostedTransaction:
    id: str
    seq: int
    recorded_at: datetime
    entries: tuple[BookedEntry, ...]


@dataclass(frozen=True, slots=True)
class TransactionToBook:
    """A transaction booked with the row it belongs to (a purchase's accrual, a hold):
    `LedgerRepository.post`'s arguments, the id chosen beforehand (the rows name it)."""

    draft: TransactionDraft
    ctx: BookingContext
    recorded_at: datetime
    customer: Customer
    transaction_id: str


@dataclass(frozen=True, slots=True)
class WrittenPurchase:
    """The ids a purchase row and its points lot were given."""

    purchase_pk: int
    lot_id: int | None


@dataclass(frozen=True, slots=True)
class UpkeepDue:
    """What a write must do first for a locked customer, read with its accounts in one statement.
    A false flag is exact (nothing of that kind exists), so its query can be skipped."""

    releases_due: bool = True   # pending value whose release time has come
    holds_lapsed: bool = True   # holds past their expiry, not yet voided
    has_captures: bool = True   # the customer has captured a redemption (an order may have been paid with it)


class ProgramRepository(Protocol):
    def add(self, program: Program, creation_key_hash: str | None) -> None: ...
    def get(self, program_id: str) -> Program | None: ...
    def get_by_creation_key(self, creation_key_hash: str) -> Program | None: ...
    def save_settings(self, program_id: str, before: ProgramSettings, after: ProgramSettings,
                      at: datetime, actor: str, request_id: str | None) -> None: ...
    def changes(self, program_id: str, limit: int = 100) -> list[dict[str, Any]]: ...
    def lock(self, program_id: str) -> None:
        """Serialise rare program-wide work (referral registration, chain seals) until commit."""


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey, key_hash: str) -> None: ...
    def get(self, program_id: str, key_id: str) -> ApiKey | None: ...
    def by_hash(self, key_hash: str) -> ApiKey | None: ...
    def list(self, program_id: str) -> list[ApiKey]: ...
    def revoke(self, key_id: str, at: datetime, replaced_by: str | None = None) -> None: ...
    def touch(self, key_id: str, at: datetime) -> None: ...


class CustomerRepository(Protocol):
    def get(self, program_id: str, customer_id: str) -> Customer | None: ...
    def lock(self, program_id: str, customer_id: str) -> Customer | None:
        """Take the customer's row lock (held to commit); every write for a customer does first."""
    def lock_with_program(self, program_id: str, customer_id: str,
                          now: datetime | None = None) -> tuple[Program, Customer | None]:
        """`programs.get` and `lock` in one round trip (the checkout path). Given `now`, a store may
        also read what `ledger.load_for_write(customer, now)` needs in that round trip."""
    def lock_by_pk(self, customer_pk: int) -> Customer: ...
    def add(self, program_id: str, customer_id: str, profile: dict[str, Any], at: datetime) -> Customer: ...
    def update(self, customer: Customer, changes: dict[str, Any], at: datetime) -> Customer: ...


class LedgerRepository(Protocol):
    def open_customer_accounts(self, customer: Customer) -> None: ...
    def ensure_house_accounts(self, program_id: str, accounts: Iterable[tuple[str, str]]) -> None: ...
    def post(self, program_id: str, draft: TransactionDraft, ctx: BookingContext, recorded_at: datetime,
             customer: Customer | None, transaction_id: str | None = None) -> PostedTransaction:
        """Book a balanced draft: one transaction row (a new id unless given), its entries, and the
        customer's cached balances."""
    def customer_balances(self, customer: Customer) -> dict[str, int]: ...
    def load_for_write(self, customer: Customer, now: datetime) -> UpkeepDue:
        """After the customer's lock: load its accounts for this unit of work and say what upkeep is due."""
    def balance_view(self, program_id: str, customer_id: str,
                     now: datetime) -> tuple[str, dict[str, int], dict[str, int], dict[str, int]] | None:
        """(currency, cached balances by path, due pending value per asset, lapsed holds per asset)."""
    def entries(self, program_id: str, after_seq: int | None, limit: int) -> list[BookedEntry]: ...
    def customer_activity(self, customer: Customer, before_seq: int | None, limit: int) -> list[dict[str, Any]]: ...


class PurchaseRepository(Protocol):
    def add(self, **fields: Any) -> int: ...
    def add_with_releases_and_lot(self, purchase: dict[str, Any], releases: list[dict[str, Any]],
                                  lot: dict[str, Any] | None,
                                  accrual: TransactionToBook | None = None) -> WrittenPurchase:
        """The purchase's accrual (booked as `LedgerRepository.post` books it), the purchase row, its
        pending releases (asset, amount, release_at) and its points lot, in one round trip where the
        database allows. The customer's cached balances include the accrual at once; the write itself
        may wait to go with the stored answer (PostgreSQL), so read the returned ids only when needed:
        reading one sends the write."""
    def order_id_of(self, purchase_pk: int) -> str: ...
    def get(self, program_id: str, order_id: str) -> dict[str, Any] | None: ...


class LotRepository(Protocol):
    def add(self, **fields: Any) -> int: ...


class ReleaseRepository(Protocol):
    def add(self, **fields: Any) -> int: ...
    def due(self, *, now: datetime, customer_pk: int | None = None, program_id: str | None = None,
            limit: int | None = None) -> list[dict[str, Any]]: ...
    def due_customers(self, *, now: datetime, limit: int = 200) -> list[int]: ...
    def mark_released(self, release_ids: Sequence[int], transaction_id: str) -> None: ...


class EarningRepository(Protocol):
    """Versions of the earning configuration, and the facts and awards earning needs."""

    def latest_config(self, program_id: str) -> dict[str, Any] | None: ...
    def config(self, program_id: str, version: int) -> dict[str, Any] | None: ...
    def add_config(self, program_id: str, version: int, config: dict[str, Any], at: datetime, actor: str,
                   request_id: str | None, before: dict[str, Any], after: dict[str, Any]) -> None: ...
    def purchase_span(self, customer_pk: int, before: datetime) -> tuple[datetime | None, datetime | None]: ...
    def purchases_between(self, customer_pk: int, start: datetime, end: datetime) -> int: ...
    def awarded_between(self, customer_pk: int, source_id: str, start: datetime, end: datetime) -> int: ...
    def occasions(self, customer_pk: int, source_ids: Sequence[str]) -> set[str]: ...
    def add_awards(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def budget_used(self, program_id: str, campaign_id: str, lock: bool) -> int: ...
    def use_budget(self, program_id: str, campaign_id: str, points: int) -> None: ...
    def budgets(self, program_id: str) -> dict[str, int]: ...


class TierRepository(Protocol):
    def add_change(self, **fields: Any) -> None: ...
    def set_customer_tier(self, customer_pk: int, **values: Any) -> None: ...
    def changes(self, customer_pk: int, limit: int = 50) -> list[dict[str, Any]]: ...
    def qualifying_spend(self, customer_pk: int, start: datetime, end: datetime) -> int: ...
    def purchase_points(self, customer_pk: int, start: datetime, end: datetime) -> int: ...
    def due_for_evaluation(self, now: datetime, after_pk: int, limit: int) -> list[int]: ...


class IdempotencyRepository(Protocol):
    def claim(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> IdempotencyClaim | int:
        """Claim a key: the new record's id, or the earlier claim (after waiting for it to commit)."""
    def claim_later(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> ClaimTicket:
        """`claim`, sent with the unit of work's next statement (PostgreSQL: the customer's lock takes
        it in the same round trip); that statement raises `ClaimTaken` if the key was claimed before."""
    def complete(self, record_ids: tuple[int, ...], answer: StoredAnswer) -> None:
        """Store `answer` on one or two claims (a natural key's and a header key's) at once."""
    def purge_header_keys(self, before: datetime, after_id: int, limit: int) -> tuple[int, datetime | None, int | None]:
        """Among the next `limit` records after `after_id` (by id), delete the Idempotency-Key
        records created before `before`; (how many, the oldest instant seen, the last id seen), the
        last two None when there are no records left."""


class AuditRepository(Protocol):
    def unbalanced_transactions(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def totals_by_program_asset(self) -> list[dict[str, Any]]: ...
    def balance_mismatches(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def balance_after_breaks(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def transactions_without_entries(self, limit: int = 20) -> list[str]: ...


class BooksRepository(Protocol):
    """Finance reads (storage/finance_repos.py SqlBooks): entries in commit-safe order, balances as
    of an instant, roll-ups, closed periods, chain heads and seals."""

    def safe_xid(self) -> int | None: ...
    def wait_for_older_writers(self, timeout: float = 10.0) -> bool: ...
    def entries_page(self, program_id: str, filters: dict[str, Any], after: tuple[int, int] | None,
                     limit: int) -> list[dict[str, Any]]: ...
    def export(self, program_id: str, filters: dict[str, Any], batch: int = 2000) -> Iterable[dict[str, Any]]: ...
    def transaction(self, program_id: str, transaction_id: str) -> dict[str, Any] | None: ...
    def customer_balances_as_of(self, customer_pk: int, as_of: datetime) -> dict[str, int]: ...
    def rollup_before(self, program_id: str, as_of: datetime) -> tuple[datetime | None, list[dict[str, Any]]]: ...
    def sums_between(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]: ...
    def add_rollup(self, program_id: str, as_of: datetime, rows: Sequence[dict[str, Any]]) -> None: ...
    def house_movements(self, program_id: str, start: datetime | None, end: datetime) -> list[dict[str, Any]]: ...
    def add_period(self, **fields: Any) -> None: ...
    def seals(self, program_id: str | None = None) -> list[dict[str, Any]]: ...
    def add_seal(self, **fields: Any) -> None: ...


class CorrectionsRepository(Protocol):
    """Adjustments and reversals (storage/finance_repos.py SqlCorrections)."""

    def add_adjustment(self, **fields: Any) -> int: ...
    def adjustment(self, program_id: str, adjustment_id: str, lock: bool = False) -> dict[str, Any] | None: ...
    def mark_booked(self, adjustment_pk: int, **changes: Any) -> None: ...
    def reversal_of(self, transaction_id: str) -> str | None: ...
    def add_reversal(self, **fields: Any) -> None: ...
    def dependents(self, transaction_id: str) -> list[str]: ...


class UnitOfWork(Protocol):
    programs: ProgramRepository
    api_keys: ApiKeyRepository
    customers: CustomerRepository
    ledger: LedgerRepository
    purchases: PurchaseRepository
    lots: LotRepository
    releases: ReleaseRepository
    idempotency: IdempotencyRepository
    audit: AuditRepository
    earning: EarningRepository
    tiers: TierRepository
    books: BooksRepository
    corrections: CorrectionsRepository
    analytics: Any  # storage/analytics_repo.py SqlAnalytics: read-only queries for retention analytics

    def __enter__(self) -> "UnitOfWork": ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def savepoint(self) -> ContextManager[None]: ...
    def ping(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False, autocommit: bool = False) -> UnitOfWork:
        """`autocommit`: a read of one statement, with no transaction around it."""
    def is_retryable(self, exc: BaseException) -> bool: ...
