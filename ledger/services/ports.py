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


class ProgramRepository(Protocol):
    def add(self, program: Program, creation_key_hash: str | None) -> None: ...
    def get(self, program_id: str) -> Program | None: ...
    def get_by_creation_key(self, creation_key_hash: str) -> Program | None: ...
    def save_settings(self, program_id: str, before: ProgramSettings, after: ProgramSettings,
                      at: datetime, actor: str, request_id: str | None) -> None: ...
    def changes(self, program_id: str, limit: int = 100) -> list[dict[str, Any]]: ...


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
    def lock_by_pk(self, customer_pk: int) -> Customer: ...
    def add(self, program_id: str, customer_id: str, profile: dict[str, Any], at: datetime) -> Customer: ...
    def update(self, customer: Customer, changes: dict[str, Any], at: datetime) -> Customer: ...


class LedgerRepository(Protocol):
    def open_customer_accounts(self, customer: Customer) -> None: ...
    def ensure_house_accounts(self, program_id: str, accounts: Iterable[tuple[str, str]]) -> None: ...
    def post(self, program_id: str, draft: TransactionDraft, ctx: BookingContext, recorded_at: datetime,
             customer: Customer | None) -> PostedTransaction:
        """Book a balanced draft: one transaction row, its entries, and the customer's cached balances."""
    def customer_balances(self, customer: Customer) -> dict[str, int]: ...
    def balance_view(self, program_id: str, customer_id: str,
                     now: datetime) -> tuple[str, dict[str, int], dict[str, int], dict[str, int]] | None:
        """(currency, cached balances by path, due pending value per asset, lapsed holds per asset)."""
    def entries(self, program_id: str, after_seq: int | None, limit: int) -> list[BookedEntry]: ...
    def customer_activity(self, customer: Customer, before_seq: int | None, limit: int) -> list[dict[str, Any]]: ...


class PurchaseRepository(Protocol):
    def add(self, **fields: Any) -> int: ...
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


class IdempotencyRepository(Protocol):
    def claim(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> IdempotencyClaim | int:
        """Claim a key: the new record's id, or the earlier claim (after waiting for it to commit)."""
    def complete(self, record_id: int, answer: StoredAnswer) -> None: ...


class AuditRepository(Protocol):
    def unbalanced_transactions(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def totals_by_program_asset(self) -> list[dict[str, Any]]: ...
    def balance_mismatches(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def balance_after_breaks(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def transactions_without_entries(self, limit: int = 20) -> list[str]: ...


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
