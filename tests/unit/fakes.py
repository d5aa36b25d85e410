"""An in-memory unit of work for the use cases, with real commit and rollback semantics.

It mirrors what ledger/storage/repositories.py does, as far as the use cases can tell:
- a unit of work works on a deep copy of the committed state; `commit()` publishes it,
  leaving the `with` block without `commit()` (or `rollback()`) discards it;
- `savepoint()` snapshots the working state and restores it if the block raises;
- customer postings must name an account of the customer being booked (else ValueError),
  house accounts appear on first use, customer balances are cached with `balance_after`.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Iterator, Sequence

from ledger.domain.customers import PROFILE_FIELDS, Customer
from ledger.domain.ids import new_id
from ledger.domain.programs import Program, ProgramSettings
from ledger.domain.transactions import BookedEntry, TransactionDraft
from ledger.services.ports import (
    ApiKey, BookingContext, ClaimTaken, IdempotencyClaim, PostedTransaction, StoredAnswer, TransactionToBook,
    UpkeepDue, WrittenPurchase,
)


@dataclass
class State:
    """Everything the fake database holds. Deep-copied wholesale for transactions and savepoints."""

    next_id: int = 1
    programs: dict[str, Program] = field(default_factory=dict)
    creation_keys: dict[str, str] = field(default_factory=dict)  # hash -> program id
    program_changes: list[dict[str, Any]] = field(default_factory=list)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    key_hashes: dict[str, str] = field(default_factory=dict)  # key id -> hash
    customers: dict[int, Customer] = field(default_factory=dict)
    # (program_id, path) -> {"asset", "customer_pk", "balance" (None for house accounts)}
    accounts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    purchases: dict[int, dict[str, Any]] = field(default_factory=dict)
    lots: dict[int, dict[str, Any]] = field(default_factory=dict)
    lot_consumptions: list[dict[str, Any]] = field(default_factory=list)
    releases: dict[int, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[int, dict[str, Any]] = field(default_factory=dict)
    redemptions: dict[int, dict[str, Any]] = field(default_factory=dict)  # none are created by these use cases
    config_versions: list[dict[str, Any]] = field(default_factory=list)
    awards: list[dict[str, Any]] = field(default_factory=list)
    budgets: dict[tuple[str, str], int] = field(default_factory=dict)
    tier_changes: list[dict[str, Any]] = field(default_factory=list)

    def new_pk(self) -> int:
        pk = self.next_id
        self.next_id += 1
        return pk


class FakeStore:
    """The committed state shared by every unit of work of one factory."""

    def __init__(self) -> None:
        self.state = State()
        self.commits = 0


class _Repo:
    def __init__(self, uow: "FakeUnitOfWork") -> None:
        self._uow = uow

    @property
    def _s(self) -> State:
        return self._uow.state


class FakePrograms(_Repo):
    def add(self, program: Program, creation_key_hash: str | None) -> None:
        self._s.programs[program.id] = program
        if creation_key_hash is not None:
            self._s.creation_keys[creation_key_hash] = program.id

    def get(self, program_id: str) -> Program | None:
        return self._s.programs.get(program_id)

    def all(self) -> list[Program]:
        return sorted(self._s.programs.values(), key=lambda p: p.id)

    def get_by_creation_key(self, creation_key_hash: str) -> Program | None:
        program_id = self._s.creation_keys.get(creation_key_hash)
        return self._s.programs.get(program_id) if program_id else None

    def save_settings(self, program_id: str, before: ProgramSettings, after: ProgramSettings,
                      at: datetime, actor: str, request_id: str | None) -> None:
        program = self._s.programs[program_id]
        self._s.programs[program_id] = Program(id=program.id, settings=after, created_at=program.created_at)
        self._s.program_changes.append({"program_id": program_id, "actor": actor, "request_id": request_id,
                                        "changed_at": at, "before": before.to_dict(), "after": after.to_dict()})

    def changes(self, program_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return [c for c in reversed(self._s.program_changes) if c["program_id"] == program_id][:limit]

    def lock(self, program_id: str) -> None:
        """Nothing to do: the fakes run one unit of work at a time."""


class FakeApiKeys(_Repo):
    def add(self, key: ApiKey, key_hash: str) -> None:
        self._s.api_keys[key.id] = key
        self._s.key_hashes[key.id] = key_hash

    def get(self, program_id: str, key_id: str) -> ApiKey | None:
        key = self._s.api_keys.get(key_id)
        return key if key is not None and key.program_id == program_id else None

    def by_hash(self, key_hash: str) -> ApiKey | None:
        for key_id, stored in self._s.key_hashes.items():
            if stored == key_hash:
                return self._s.api_keys[key_id]
        return None

    def list(self, program_id: str) -> list[ApiKey]:
        return sorted((k for k in self._s.api_keys.values() if k.program_id == program_id),
                      key=lambda k: (k.created_at, k.id))

    def revoke(self, key_id: str, at: datetime, replaced_by: str | None = None) -> None:
        key = self._s.api_keys[key_id]
        if key.revoked_at is None:
            self._s.api_keys[key_id] = replace(key, revoked_at=at, replaced_by=replaced_by)

    def touch(self, key_id: str, at: datetime) -> None:
        self._s.api_keys[key_id] = replace(self._s.api_keys[key_id], last_used_at=at)


class FakeCustomers(_Repo):
    def lock_with_program(self, program_id: str, customer_id: str,
                          now: datetime | None = None) -> tuple[Any, Customer | None]:
        return self._uow.programs.get(program_id), self.lock(program_id, customer_id)

    def get(self, program_id: str, customer_id: str) -> Customer | None:
        for customer in self._s.customers.values():
            if customer.program_id == program_id and customer.customer_id == customer_id:
                return customer
        return None

    def lock(self, program_id: str, customer_id: str) -> Customer | None:
        customer = self.get(program_id, customer_id)
        if customer is not None:
            self._uow.locked.add(customer.pk)
        return customer

    def lock_by_pk(self, customer_pk: int) -> Customer:
        customer = self._s.customers[customer_pk]  # KeyError like the SQL `.one()` raising
        self._uow.locked.add(customer_pk)
        return customer

    def add(self, program_id: str, customer_id: str, profile: dict[str, Any], at: datetime) -> Customer:
        if self.get(program_id, customer_id) is not None:
            raise ValueError(f"duplicate customer {customer_id!r}")  # the unique constraint
        values = {f: profile.get(f) for f in PROFILE_FIELDS}
        values["leaderboard_opt_in"] = bool(values["leaderboard_opt_in"])
        customer = Customer(pk=self._s.new_pk(), program_id=program_id, customer_id=customer_id, status="active",
                            created_at=at, updated_at=at, **values)
        self._s.customers[customer.pk] = customer
        self._uow.locked.add(customer.pk)
        return customer

    def update(self, customer: Customer, changes: dict[str, Any], at: datetime) -> Customer:
        if "leaderboard_opt_in" in changes:
            changes = {**changes, "leaderboard_opt_in": bool(changes["leaderboard_opt_in"])}
        updated = replace(self._s.customers[customer.pk], updated_at=at, **changes)
        self._s.customers[customer.pk] = updated
        return updated


class FakeLedger(_Repo):
    def open_customer_accounts(self, customer: Customer) -> None:
        for path in customer.account_paths():
            key = (customer.program_id, path)
            if key in self._s.accounts:
                raise ValueError(f"account {path} already exists")  # the unique constraint
            self._s.accounts[key] = {"asset": path.split("/")[2], "customer_pk": customer.pk, "balance": 0}

    def ensure_house_accounts(self, program_id: str, accounts: Iterable[tuple[str, str]]) -> None:
        for path, asset in accounts:
            self._s.accounts.setdefault((program_id, path), {"asset": asset, "customer_pk": None, "balance": None})

    def post(self, program_id: str, draft: TransactionDraft, ctx: BookingContext, recorded_at: datetime,
             customer: Customer | None, transaction_id: str | None = None) -> PostedTransaction:
        s = self._s
        transaction_id = transaction_id or new_id("txn")
        seq = s.new_pk()
        s.transactions.append({
            "id": transaction_id, "seq": seq, "program_id": program_id,
            "customer_pk": customer.pk if customer else None, "type": draft.type,
            "reference_kind": draft.reference.kind, "reference_id": draft.reference.id,
            "description": draft.description, "actor": ctx.actor, "request_id": ctx.request_id,
            "idempotency_key": ctx.idempotency_key, "occurred_at": draft.occurred_at, "recorded_at": recorded_at,
            "details": dict(draft.metadata),
        })
        booked = []
        for posting in draft.postings:
            account = s.accounts.get((program_id, posting.account))
            if posting.account.startswith("customer/"):
                if account is None or customer is None or account["customer_pk"] != customer.pk:
                    raise ValueError(f"{posting.account} is not an account of the locked customer")
                account["balance"] += posting.amount
                balance_after: int | None = account["balance"]
            else:
                if account is None:
                    self.ensure_house_accounts(program_id, [(posting.account, posting.asset)])
                balance_after = None
            entry = BookedEntry(seq=s.new_pk(), transaction_id=transaction_id, account=posting.account,
                                asset=posting.asset, amount=posting.amount, recorded_at=recorded_at,
                                balance_after=balance_after)
            s.entries.append({"program_id": program_id, "entry": entry})
            booked.append(entry)
        return PostedTransaction(id=transaction_id, seq=seq, recorded_at=recorded_at, entries=tuple(booked))

    def balance_view(self, program_id: str, customer_id: str,
                     now: datetime) -> tuple[str, dict[str, int], dict[str, int], dict[str, int]] | None:
        customer = self._uow.customers.get(program_id, customer_id)
        if customer is None:
            return None
        due: dict[str, int] = {}
        for row in self._uow.releases.due(now=now, customer_pk=customer.pk):
            due[row["asset"]] = due.get(row["asset"], 0) + row["amount"] - row["reversed_amount"]
        lapsed: dict[str, int] = {}
        for row in self._uow.redemptions.expired_holds(customer.pk, now):
            lapsed[row["asset"]] = lapsed.get(row["asset"], 0) + row["amount"]
        currency = self._uow.programs.get(program_id).settings.currency
        return currency, self.customer_balances(customer), due, lapsed

    def load_for_write(self, customer: Customer, now: datetime) -> UpkeepDue:
        uow = self._uow
        return UpkeepDue(
            releases_due=bool(uow.releases.due(now=now, customer_pk=customer.pk)),
            holds_lapsed=bool(uow.redemptions.expired_holds(customer.pk, now)),
            has_captures=any(r["customer_pk"] == customer.pk and r["status"] == "captured"
                             for r in self._s.redemptions.values()))

    def customer_balances(self, customer: Customer) -> dict[str, int]:
        return {path: a["balance"] for (pid, path), a in self._s.accounts.items()
                if pid == customer.program_id and a["customer_pk"] == customer.pk}

    def entries(self, program_id: str, after_seq: int | None, limit: int) -> list[BookedEntry]:
        found = [e["entry"] for e in self._s.entries if e["program_id"] == program_id
                 and (after_seq is None or e["entry"].seq > after_seq)]
        return sorted(found, key=lambda e: e.seq)[:limit]

    def customer_activity(self, customer: Customer, before_seq: int | None, limit: int) -> list[dict[str, Any]]:
        own = {path for (pid, path), a in self._s.accounts.items()
               if pid == customer.program_id and a["customer_pk"] == customer.pk}
        transactions = sorted((t for t in self._s.transactions if t["customer_pk"] == customer.pk
                               and (before_seq is None or t["seq"] < before_seq)),
                              key=lambda t: t["seq"], reverse=True)[:limit]
        out = []
        for tx in transactions:
            legs = [(e["entry"].account, e["entry"].amount) for e in self._s.entries
                    if e["entry"].transaction_id == tx["id"] and e["entry"].account in own]
            out.append({k: tx[k] for k in ("seq", "id", "type", "description", "occurred_at", "recorded_at",
                                           "reference_kind", "reference_id")} | {"legs": legs})
        return out


class FakePurchases(_Repo):
    def add_with_releases_and_lot(self, purchase: dict[str, Any], releases: list[dict[str, Any]],
                                  lot: dict[str, Any] | None, accrual: TransactionToBook | None = None) -> WrittenPurchase:
        if accrual is not None:
            self._uow.ledger.post(purchase["program_id"], accrual.draft, accrual.ctx, accrual.recorded_at,
                                  accrual.customer, accrual.transaction_id)
        pk = self.add(**purchase)
        for release in releases:
            self._uow.releases.add(program_id=purchase["program_id"], customer_pk=purchase["customer_pk"],
                                   purchase_id=pk, **release)
        return WrittenPurchase(pk, self._uow.lots.add(**lot) if lot is not None else None)

    def add(self, **fields: Any) -> int:
        s = self._s
        if any(p["program_id"] == fields["program_id"] and p["order_id"] == fields["order_id"]
               for p in s.purchases.values()):
            raise ValueError(f"duplicate order {fields['order_id']!r}")  # the unique natural key
        pk = s.new_pk()
        s.purchases[pk] = {"id": pk, **copy.deepcopy(fields)}
        return pk

    def get(self, program_id: str, order_id: str) -> dict[str, Any] | None:
        for purchase in self._s.purchases.values():
            if purchase["program_id"] == program_id and purchase["order_id"] == order_id:
                return dict(purchase)
        return None

    def order_id_of(self, purchase_pk: int) -> str:
        return self._s.purchases[purchase_pk]["order_id"]

    def transaction_ids_of(self, purchase_pk: int) -> list[str]:
        tx = self._s.purchases[purchase_pk]["transaction_id"]
        return [tx] if tx else []


class FakeLots(_Repo):
    def add(self, **fields: Any) -> int:
        pk = self._s.new_pk()
        self._s.lots[pk] = {"id": pk, **fields}
        return pk

    def open_lots(self, customer_pk: int) -> list[dict[str, Any]]:
        """Lots with points left: soonest expiry first, no expiry last, ties oldest first."""
        lots = [lot for lot in self._s.lots.values() if lot["customer_pk"] == customer_pk and lot["remaining"] > 0]
        lots.sort(key=lambda lot: (lot["expires_at"] is None, lot["expires_at"] or "", lot["id"]))
        return [dict(lot) for lot in lots]

    def consume(self, consumptions: Sequence[tuple[int, int]], transaction_id: str) -> None:
        for lot_id, amount in consumptions:
            self._s.lot_consumptions.append({"lot_id": lot_id, "transaction_id": transaction_id, "amount": amount})
            self._s.lots[lot_id]["remaining"] -= amount


class FakeReleases(_Repo):
    def add(self, **fields: Any) -> int:
        pk = self._s.new_pk()
        self._s.releases[pk] = {"id": pk, "released_transaction_id": None, "reversed_amount": 0, **fields}
        return pk

    def _due(self, now: datetime) -> list[dict[str, Any]]:
        return sorted((r for r in self._s.releases.values()
                       if r["released_transaction_id"] is None and r["release_at"] <= now
                       and r["amount"] > r["reversed_amount"]),
                      key=lambda r: (r["release_at"], r["id"]))

    def due(self, *, now: datetime, customer_pk: int | None = None, program_id: str | None = None,
            limit: int | None = None) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._due(now)
                if (customer_pk is None or r["customer_pk"] == customer_pk)
                and (program_id is None or r["program_id"] == program_id)]
        return rows[:limit]

    def due_customers(self, *, now: datetime, limit: int = 200) -> list[int]:
        return sorted({r["customer_pk"] for r in self._due(now)})[:limit]

    def mark_released(self, release_ids: Sequence[int], transaction_id: str) -> None:
        for release_id in release_ids:
            row = self._s.releases[release_id]
            if row["released_transaction_id"] is None:
                row["released_transaction_id"] = transaction_id


@dataclass(frozen=True)
class _KnownClaim:
    value: int

    def result(self) -> int:
        return self.value


class FakeIdempotency(_Repo):
    def claim(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> IdempotencyClaim | int:
        for record in self._s.idempotency.values():
            if (record["program_id"], record["scope"], record["key"]) == (program_id, scope, key):
                answer = StoredAnswer(record["status"], record["body"]) if record["status"] is not None else None
                return IdempotencyClaim(record_id=record["id"], fingerprint=record["fingerprint"], answer=answer)
        pk = self._s.new_pk()
        self._s.idempotency[pk] = {"id": pk, "program_id": program_id, "scope": scope, "key": key,
                                   "fingerprint": fingerprint, "created_at": at, "status": None, "body": None}
        return pk

    def claim_later(self, program_id: str, scope: str, key: str, fingerprint: str, at: datetime) -> "_KnownClaim":
        return _KnownClaim(ClaimTaken.unless_new(self.claim(program_id, scope, key, fingerprint, at)))

    def complete(self, record_ids: tuple[int, ...], answer: StoredAnswer) -> None:
        assert 1 <= len(record_ids) <= 2, record_ids
        for record_id in record_ids:
            record = self._s.idempotency[record_id]
            record["status"], record["body"] = answer.status, answer.body

    def purge_header_keys(self, before: datetime, after_id: int, limit: int) -> tuple[int, datetime | None, int | None]:
        records = sorted((r for r in self._s.idempotency.values() if r["id"] > after_id), key=lambda r: r["id"])[:limit]
        if not records:
            return 0, None, None
        doomed = [r["id"] for r in records if r["scope"] == "header" and r["created_at"] < before]
        for record_id in doomed:
            del self._s.idempotency[record_id]
        return len(doomed), min(r["created_at"] for r in records), records[-1]["id"]


class FakeRedemptions(_Repo):
    """Only what the purchase and release use cases read: lapsed holds (none unless a test adds one)."""

    def _expired(self, now: datetime) -> list[dict[str, Any]]:
        return sorted((r for r in self._s.redemptions.values() if r["status"] == "held" and r["expires_at"] <= now),
                      key=lambda r: r["id"])

    def expired_holds(self, customer_pk: int, now: datetime) -> list[dict[str, Any]]:
        return [dict(r) for r in self._expired(now) if r["customer_pk"] == customer_pk]

    def customers_with_expired_holds(self, now: datetime, limit: int = 200) -> list[int]:
        return sorted({r["customer_pk"] for r in self._expired(now)})[:limit]

    def captured_for_order(self, program_id: str, order_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._s.redemptions.values() if r.get("order_id") == order_id
                and r["status"] == "captured" and r.get("captured_amount", 0) > 0]


class FakeEarning(_Repo):
    def latest_config(self, program_id: str) -> dict[str, Any] | None:
        rows = [r for r in self._s.config_versions if r["program_id"] == program_id]
        return dict(max(rows, key=lambda r: r["version"])) if rows else None

    def config(self, program_id: str, version: int) -> dict[str, Any] | None:
        rows = [r for r in self._s.config_versions if r["program_id"] == program_id and r["version"] == version]
        return dict(rows[0]) if rows else None

    def add_config(self, program_id: str, version: int, config: dict[str, Any], at: datetime, actor: str,
                   request_id: str | None, before: dict[str, Any], after: dict[str, Any]) -> None:
        if self.config(program_id, version):
            raise ValueError("duplicate version")  # the unique (program_id, version)
        self._s.config_versions.append({"program_id": program_id, "version": version, "config": copy.deepcopy(config)})
        self._s.programs[program_id] = replace(self._s.programs[program_id], earning_version=version)
        self._s.program_changes.append({"program_id": program_id, "actor": actor, "request_id": request_id,
                                        "changed_at": at, "before": before, "after": after})

    def _purchases(self, customer_pk: int) -> list[dict[str, Any]]:
        return [p for p in self._s.purchases.values() if p["customer_pk"] == customer_pk]

    def purchase_span(self, customer_pk: int, before: datetime) -> tuple[datetime | None, datetime | None]:
        moments = [p["occurred_at"] for p in self._purchases(customer_pk) if p["occurred_at"] < before]
        return (min(moments), max(moments)) if moments else (None, None)

    def purchases_between(self, customer_pk: int, start: datetime, end: datetime) -> int:
        return sum(1 for p in self._purchases(customer_pk) if start <= p["occurred_at"] < end)

    def awarded_between(self, customer_pk: int, source_id: str, start: datetime, end: datetime) -> int:
        return sum(a["points"] for a in self._s.awards if a["customer_pk"] == customer_pk
                   and a["source_id"] == source_id and start <= a["awarded_at"] < end)

    def occasions(self, customer_pk: int, source_ids: Sequence[str]) -> set[str]:
        return {f"{a['source_id']}:{a['occasion']}" for a in self._s.awards
                if a["customer_pk"] == customer_pk and a["source_id"] in source_ids and a["occasion"]}

    def add_awards(self, rows: Sequence[dict[str, Any]]) -> None:
        self._s.awards.extend(dict(r) for r in rows)

    def budget_used(self, program_id: str, campaign_id: str, lock: bool) -> int:
        return self._s.budgets.get((program_id, campaign_id), 0)

    def use_budget(self, program_id: str, campaign_id: str, points: int) -> None:
        key = (program_id, campaign_id)
        self._s.budgets[key] = self._s.budgets.get(key, 0) + points

    def budgets(self, program_id: str) -> dict[str, int]:
        return {c: used for (p, c), used in self._s.budgets.items() if p == program_id}


class FakeTiers(_Repo):
    def add_change(self, **fields: Any) -> None:
        self._s.tier_changes.append({"id": self._s.new_pk(), **fields})

    def set_customer_tier(self, customer_pk: int, **values: Any) -> None:
        self._s.customers[customer_pk] = replace(self._s.customers[customer_pk], **values)

    def changes(self, customer_pk: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = [c for c in self._s.tier_changes if c["customer_pk"] == customer_pk]
        return [dict(c) for c in reversed(rows)][:limit]

    def _net(self, customer_pk: int, start: datetime, end: datetime, field_name: str) -> int:
        return sum(p[field_name] for p in self._s.purchases.values()
                   if p["customer_pk"] == customer_pk and start <= p["occurred_at"] < end)

    def qualifying_spend(self, customer_pk: int, start: datetime, end: datetime) -> int:
        return self._net(customer_pk, start, end, "amount")  # these use cases record no refunds

    def purchase_points(self, customer_pk: int, start: datetime, end: datetime) -> int:
        return self._net(customer_pk, start, end, "points_earned")

    def due_for_evaluation(self, now: datetime, after_pk: int, limit: int) -> list[int]:
        return sorted(pk for pk, c in self._s.customers.items() if pk > after_pk and (
            (c.tier_evaluate_at and c.tier_evaluate_at <= now) or (c.tier_manual_until and c.tier_manual_until <= now)))[:limit]


class FakeUnitOfWork:
    """Works on a private copy of the store's state; only `commit()` publishes it."""

    def __init__(self, store: FakeStore, *, write: bool = False) -> None:
        self.store = store
        self.write = write
        self.state: State | None = None
        self.locked: set[int] = set()
        self.programs = FakePrograms(self)
        self.api_keys = FakeApiKeys(self)
        self.customers = FakeCustomers(self)
        self.ledger = FakeLedger(self)
        self.purchases = FakePurchases(self)
        self.lots = FakeLots(self)
        self.releases = FakeReleases(self)
        self.idempotency = FakeIdempotency(self)
        self.redemptions = FakeRedemptions(self)
        self.earning = FakeEarning(self)
        self.tiers = FakeTiers(self)

    def __enter__(self) -> "FakeUnitOfWork":
        self.state = copy.deepcopy(self.store.state)
        self.locked = set()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()
        self.state = None

    def commit(self) -> None:
        if not self.write:
            raise RuntimeError("commit() on a read-only unit of work")
        self.store.state = copy.deepcopy(self.state)
        self.store.commits += 1

    def rollback(self) -> None:
        if self.state is not None:
            self.state = copy.deepcopy(self.store.state)
        self.locked = set()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        snapshot = copy.deepcopy(self.state)
        try:
            yield
        except BaseException:
            self.state = snapshot
            raise


class FakeUnitOfWorkFactory:
    """`factory(write=True)` -> a unit of work on the shared store; nothing is ever retryable."""

    def __init__(self) -> None:
        self.store = FakeStore()

    def __call__(self, *, write: bool = False, autocommit: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, write=write)

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        return False

    @property
    def state(self) -> State:
        """The committed state, for assertions."""
        return self.store.state
