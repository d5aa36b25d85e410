"""Database tables. Every amount is BIGINT; every instant is stored in UTC.

The schema itself is created only by the Alembic migrations, which also add the
triggers and CHECK constraints these models cannot express.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import BigIntPK, UTCDateTime


def _pk() -> Any:
    return Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))


def _bigint(nullable: bool = False, **kw: Any) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(BigInteger, nullable=nullable, **kw))


def _instant(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(UTCDateTime, nullable=nullable))


def _str(length: int, nullable: bool = False, **kw: Any) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(String(length), nullable=nullable, **kw))


class ProgramRow(SQLModel, table=True):
    __tablename__ = "programs"
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    currency: str = _str(3)
    settings: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    creation_key_hash: Optional[str] = Field(default=None, sa_column=Column(String(64), unique=True, nullable=True))
    earning_version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class ProgramChangeRow(SQLModel, table=True):
    """Audit record of a settings change: who, when, before, after."""

    __tablename__ = "program_changes"
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False, index=True))
    actor: str = _str(80)
    request_id: Optional[str] = _str(80, nullable=True)
    changed_at: datetime = _instant()
    before: dict = Field(sa_column=Column(JSON, nullable=False))
    after: dict = Field(sa_column=Column(JSON, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key: only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False, index=True))
    role: str = _str(20)
    name: Optional[str] = _str(128, nullable=True)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prefix: str = _str(16)
    created_at: datetime = _instant()
    last_used_at: Optional[datetime] = _instant(nullable=True)
    revoked_at: Optional[datetime] = _instant(nullable=True)
    replaced_by: Optional[str] = _str(40, nullable=True)


class CustomerRow(SQLModel, table=True):
    """An enrolled customer. Its row is the lock every write for the customer takes."""

    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("program_id", "customer_id", name="uq_customers_program_customer"),)
    pk: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_id: str = _str(128)
    email: Optional[str] = _str(320, nullable=True)
    phone: Optional[str] = _str(40, nullable=True)
    name: Optional[str] = _str(200, nullable=True)
    display_name: Optional[str] = _str(100, nullable=True)
    birthday: Optional[str] = _str(10, nullable=True)
    leaderboard_opt_in: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    status: str = Field(default="active", sa_column=Column(String(20), nullable=False))
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    # A cache of the customer's latest tier_changes row, kept under the customer's lock.
    tier_id: Optional[str] = _str(40, nullable=True)
    tier_changed_at: Optional[datetime] = _instant(nullable=True)
    tier_evaluate_at: Optional[datetime] = _instant(nullable=True)
    tier_manual_until: Optional[datetime] = _instant(nullable=True)
    referral_code: Optional[str] = _str(16, nullable=True)
    referred_by_pk: Optional[int] = _bigint(nullable=True)
    chain_head: Optional[str] = _str(64, nullable=True)  # the link of the customer's latest entry
    erased_at: Optional[datetime] = _instant(nullable=True)
    closed_at: Optional[datetime] = _instant(nullable=True)


class AccountRow(SQLModel, table=True):
    """A ledger account. `balance` is cached for customer accounts only (None for house accounts)."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("program_id", "path", name="uq_accounts_program_path"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    path: str = _str(300)
    asset: str = _str(10)
    customer_pk: Optional[int] = Field(
        default=None, sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=True, index=True))
    balance: Optional[int] = _bigint(nullable=True)
    last_seq: Optional[int] = _bigint(nullable=True)
    bucket: Optional[str] = _str(20, nullable=True)  # customer accounts: available, pending, reserved


class TransactionRow(SQLModel, table=True):
    """A booked business event. Append-only: the database refuses UPDATE and DELETE."""

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_customer_seq", "customer_pk", "seq"),
        Index("ix_transactions_program_reference", "program_id", "reference_kind", "reference_id"),
    )
    seq: Optional[int] = _pk()
    id: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    type: str = _str(40)
    reference_kind: str = _str(20)
    reference_id: str = _str(128)
    description: str = Field(sa_column=Column(Text, nullable=False))
    actor: str = _str(80)
    request_id: Optional[str] = _str(80, nullable=True)
    idempotency_key: Optional[str] = _str(255, nullable=True)
    occurred_at: datetime = _instant()
    recorded_at: datetime = _instant()
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class EntryRow(SQLModel, table=True):
    """One posting of a transaction. Append-only; amount is never zero."""

    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_program_seq", "program_id", "seq"),
        Index("ix_entries_account_seq", "account_id", "seq"),
    )
    seq: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    transaction_id: str = Field(sa_column=Column(String(40), ForeignKey("transactions.id"), nullable=False, index=True))
    account_id: int = Field(sa_column=Column(BigInteger, ForeignKey("accounts.id"), nullable=False))
    asset: str = _str(10)
    amount: int = _bigint()
    balance_after: Optional[int] = _bigint(nullable=True)
    recorded_at: datetime = _instant()
    # PostgreSQL: the writing transaction's xid8 (a server default); readers page below their xmin.
    xid: Optional[int] = _bigint(nullable=True)
    chain_hash: Optional[str] = _str(64, nullable=True)


class PurchaseRow(SQLModel, table=True):
    __tablename__ = "purchases"
    __table_args__ = (UniqueConstraint("program_id", "order_id", name="uq_purchases_program_order"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    order_id: str = _str(128)
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False, index=True))
    transaction_id: Optional[str] = _str(40, nullable=True)
    amount: int = _bigint()
    currency: str = _str(3)
    tax: int = _bigint()
    shipping: int = _bigint()
    channel: Optional[str] = _str(40, nullable=True)
    lines: Optional[list] = Field(default=None, sa_column=Column(JSON, nullable=True))
    points_earned: int = _bigint()
    cashback_earned: int = _bigint()
    occurred_at: datetime = _instant()
    recorded_at: datetime = _instant()
    earn_rates: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))
    config_version: Optional[int] = _bigint(nullable=True)
    earning: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))  # {paid, facts, trace}


class PointsLotRow(SQLModel, table=True):
    """A credit of points: spent soonest-expiring first; `remaining` is a cache of its consumptions."""

    __tablename__ = "points_lots"
    __table_args__ = (Index("ix_points_lots_customer_expiry", "customer_pk", "expires_at"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    transaction_id: str = Field(sa_column=Column(String(40), ForeignKey("transactions.id"), nullable=False))
    source: str = _str(40)
    amount: int = _bigint()
    remaining: int = _bigint()
    value_at_issue: int = _bigint()
    issued_at: datetime = _instant()
    available_at: datetime = _instant()
    expires_at: Optional[datetime] = _instant(nullable=True)


class LotConsumptionRow(SQLModel, table=True):
    """Which lot a debit of points consumed, and how much of it."""

    __tablename__ = "lot_consumptions"
    id: Optional[int] = _pk()
    lot_id: int = Field(sa_column=Column(BigInteger, ForeignKey("points_lots.id"), nullable=False, index=True))
    transaction_id: str = Field(sa_column=Column(String(40), ForeignKey("transactions.id"), nullable=False, index=True))
    amount: int = _bigint()


class PendingReleaseRow(SQLModel, table=True):
    """Value credited to `pending` that becomes `available` at `release_at` (end of the return window)."""

    __tablename__ = "pending_releases"
    __table_args__ = (
        Index("ix_pending_releases_customer_due", "customer_pk", "release_at"),
        Index("ix_pending_releases_due", "released_transaction_id", "release_at"),
    )
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    purchase_id: int = Field(sa_column=Column(BigInteger, ForeignKey("purchases.id"), nullable=False))
    asset: str = _str(10)
    amount: int = _bigint()
    release_at: datetime = _instant()
    released_transaction_id: Optional[str] = _str(40, nullable=True)
    reversed_amount: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    source: str = Field(default="purchase", sa_column=Column(String(20), nullable=False, server_default="purchase"))


class RedemptionRow(SQLModel, table=True):
    """A checkout redemption: a hold of points or cashback, then captured, voided or expired."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("program_id", "redemption_id", name="uq_redemptions_program_redemption"),
        Index("ix_redemptions_customer_status_expiry", "customer_pk", "status", "expires_at"),
        Index("ix_redemptions_status_expiry", "status", "expires_at"),
        Index("ix_redemptions_program_order", "program_id", "order_id"),
    )
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    redemption_id: str = _str(128)
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    asset: str = _str(10)
    amount: int = _bigint()
    value: int = _bigint()
    captured_amount: Optional[int] = _bigint(nullable=True)
    order_id: Optional[str] = _str(128, nullable=True)
    order_amount: Optional[int] = _bigint(nullable=True)
    status: str = _str(20)
    expires_at: datetime = _instant()
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    hold_transaction_id: str = _str(40)
    settle_transaction_id: Optional[str] = _str(40, nullable=True)


class RedemptionEventRow(SQLModel, table=True):
    """What happened to a redemption, in order. Append-only."""

    __tablename__ = "redemption_events"
    id: Optional[int] = _pk()
    redemption_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("redemptions.id"), nullable=False, index=True))
    kind: str = _str(20)
    at: datetime = _instant()
    amount: Optional[int] = _bigint(nullable=True)
    expires_at: Optional[datetime] = _instant(nullable=True)
    transaction_id: Optional[str] = _str(40, nullable=True)
    actor: str = _str(80)


class RefundRow(SQLModel, table=True):
    """A refund of (part of) a purchase and what it reversed and restored. Append-only."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("program_id", "refund_id", name="uq_refunds_program_refund"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    refund_id: str = _str(128)
    purchase_id: int = Field(sa_column=Column(BigInteger, ForeignKey("purchases.id"), nullable=False, index=True))
    amount: int = _bigint()
    lines: Optional[list] = Field(default=None, sa_column=Column(JSON, nullable=True))
    points_reversed: int = _bigint()
    cashback_reversed: int = _bigint()
    points_restored: int = _bigint()
    cashback_restored: int = _bigint()
    points_uncollected: int = _bigint()
    cashback_uncollected: int = _bigint()
    transaction_id: Optional[str] = _str(40, nullable=True)
    occurred_at: datetime = _instant()
    recorded_at: datetime = _instant()
    points_unexpired: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class IdempotencyRow(SQLModel, table=True):
    """A claimed key and the first answer given under it (status and exact body bytes).

    scope `header` holds Idempotency-Key values; `order`, `refund`, ... hold natural keys.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("program_id", "scope", "key", name="uq_idempotency_program_scope_key"),)
    id: Optional[int] = _pk()
    program_id: str = _str(40)
    scope: str = _str(20)
    key: str = _str(255)
    fingerprint: str = _str(64)
    status_code: Optional[int] = Field(default=None, sa_column=Column(Integer, nullable=True))
    body: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _instant()


class EarningConfigVersionRow(SQLModel, table=True):
    """One version of a program's rules, campaigns and tier ladder. Append-only; the latest is in force."""

    __tablename__ = "earning_config_versions"
    __table_args__ = (UniqueConstraint("program_id", "version", name="uq_earning_config_versions"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    version: int = _bigint()
    config: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _instant()
    actor: str = _str(80)
    request_id: Optional[str] = _str(64, nullable=True)


class EarningAwardRow(SQLModel, table=True):
    """What a rule or campaign added to one purchase: counts toward caps, budgets and once-a-year. Append-only."""

    __tablename__ = "earning_awards"
    __table_args__ = (Index("ix_earning_awards_customer_source", "customer_pk", "source_id", "awarded_at"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    purchase_id: int = Field(sa_column=Column(BigInteger, ForeignKey("purchases.id"), nullable=False))
    source: str = _str(20)
    source_id: str = _str(40)
    occasion: Optional[str] = _str(20, nullable=True)
    points: int = _bigint()
    awarded_at: datetime = _instant()


class CampaignBudgetRow(SQLModel, table=True):
    """Points a budgeted campaign has given away; its row is the lock that keeps the budget."""

    __tablename__ = "campaign_budgets"
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), primary_key=True))
    campaign_id: str = Field(sa_column=Column(String(40), primary_key=True))
    used_points: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class TierChangeRow(SQLModel, table=True):
    """Every change of a customer's tier, and every evaluation that kept it, with its reason. Append-only."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_customer", "customer_pk", "id"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    from_tier: Optional[str] = _str(40, nullable=True)
    to_tier: str = _str(40)
    reason: str = _str(30)
    metric: Optional[int] = _bigint(nullable=True)
    purchase_id: Optional[int] = _bigint(nullable=True)
    manual_until: Optional[datetime] = _instant(nullable=True)
    changed_at: datetime = _instant()
    actor: str = _str(80)


class ReferralRow(SQLModel, table=True):
    """A referee and who referred them; status registered -> purchased (rewards pending) -> reversed, or capped."""

    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("referee_pk", name="uq_referrals_referee"),
                      Index("ix_referrals_referrer", "referrer_pk", "qualified_at"))
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    referrer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    referee_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    code: str = _str(16)
    status: str = _str(20)
    reason: Optional[str] = _str(40, nullable=True)
    purchase_id: Optional[int] = _bigint(nullable=True)
    referrer_points: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    referrer_cashback: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    referee_points: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    referee_cashback: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    qualified_at: Optional[datetime] = _instant(nullable=True)
    rewarded_at: Optional[datetime] = _instant(nullable=True)  # the end of the qualifying purchase's window
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class EventRow(SQLModel, table=True):
    """An engagement event as received, and the points it earned. Append-only."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("program_id", "event_id", name="uq_events_program_event"),
                      Index("ix_events_customer_type", "customer_pk", "type", "occurred_at"))
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    event_id: str = _str(128)
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    type: str = _str(60)
    properties: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))
    points: int = _bigint()
    rewards: Optional[list] = Field(default=None, sa_column=Column(JSON, nullable=True))  # per event rule
    transaction_id: Optional[str] = _str(40, nullable=True)
    occurred_at: datetime = _instant()
    recorded_at: datetime = _instant()


class CustomerAchievementRow(SQLModel, table=True):
    """A badge a customer earned for one occasion; revoked when what earned it no longer holds."""

    __tablename__ = "customer_achievements"
    __table_args__ = (UniqueConstraint("customer_pk", "achievement_id", "occasion", name="uq_customer_achievements"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    achievement_id: str = _str(40)
    name: str = _str(200)
    occasion: str = _str(20)
    status: str = _str(20)
    points: int = _bigint()
    window_at: datetime = _instant()  # an instant inside the window that earned it
    definition: dict = Field(sa_column=Column(JSON, nullable=False))  # the achievement as it was when earned
    transaction_id: Optional[str] = _str(40, nullable=True)
    revoke_transaction_id: Optional[str] = _str(40, nullable=True)
    earned_at: datetime = _instant()
    revoked_at: Optional[datetime] = _instant(nullable=True)


class ChainSealRow(SQLModel, table=True):
    """A program-level seal over every customer's chain head, each seal chained to the previous one.

    It covers the entries with seq <= through_seq (and, on PostgreSQL, xid < below_xid: writers that
    had finished when the seal was taken), so a later recomputation covers exactly the same entries."""

    __tablename__ = "chain_seals"
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    sealed_at: datetime = _instant()
    through_seq: int = _bigint()
    below_xid: Optional[int] = _bigint(nullable=True)
    customers: int = _bigint()
    previous_digest: Optional[str] = _str(64, nullable=True)
    digest: str = _str(64)


class BalanceRollupRow(SQLModel, table=True):
    """Balances at `as_of` (entries recorded before it): house accounts by path, customer accounts
    summed per bucket as `customer/*/{asset}/{bucket}`. Append-only."""

    __tablename__ = "balance_rollups"
    __table_args__ = (UniqueConstraint("program_id", "as_of", "account", name="uq_balance_rollups"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    as_of: datetime = _instant()
    account: str = _str(300)
    asset: str = _str(10)
    balance: int = _bigint()
    accounts: int = _bigint()


class LedgerPeriodRow(SQLModel, table=True):
    """A closed month: its trial balance and liability report as they stood at its end. Append-only."""

    __tablename__ = "ledger_periods"
    __table_args__ = (UniqueConstraint("program_id", "period", name="uq_ledger_periods"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    period: str = _str(7)
    starts_at: datetime = _instant()
    ends_at: datetime = _instant()
    closed_at: datetime = _instant()
    actor: str = _str(80)
    request_id: Optional[str] = _str(80, nullable=True)
    trial_balance: dict = Field(sa_column=Column(JSON, nullable=False))
    liability: dict = Field(sa_column=Column(JSON, nullable=False))


class AdjustmentRow(SQLModel, table=True):
    """A manual correction by finance: booked at once, or pending a second finance key's approval."""

    __tablename__ = "adjustments"
    __table_args__ = (UniqueConstraint("program_id", "adjustment_id", name="uq_adjustments_program_adjustment"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    adjustment_id: str = _str(128)
    customer_pk: int = Field(sa_column=Column(BigInteger, ForeignKey("customers.pk"), nullable=False))
    asset: str = _str(10)
    amount: int = _bigint()
    reason: str = Field(sa_column=Column(Text, nullable=False))
    reason_code: str = _str(40)
    status: str = _str(20)
    requested_by: str = _str(80)
    approved_by: Optional[str] = _str(80, nullable=True)
    transaction_id: Optional[str] = _str(40, nullable=True)
    created_at: datetime = _instant()
    booked_at: Optional[datetime] = _instant(nullable=True)


class ReversalRow(SQLModel, table=True):
    """The reversal of a transaction; unique per original, so a transaction is reversed at most once."""

    __tablename__ = "reversals"
    __table_args__ = (UniqueConstraint("original_transaction_id", name="uq_reversals_original"),)
    id: Optional[int] = _pk()
    program_id: str = Field(sa_column=Column(String(40), ForeignKey("programs.id"), nullable=False))
    original_transaction_id: str = Field(sa_column=Column(String(40), ForeignKey("transactions.id"), nullable=False))
    reversal_transaction_id: str = Field(sa_column=Column(String(40), ForeignKey("transactions.id"), nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    actor: str = _str(80)
    created_at: datetime = _instant()
