"""Storage for earning configuration versions, awards, campaign budgets, tier changes and expiry."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import Connection, func, insert, select, update

from .repositories import CUSTOMERS, LOTS, PROGRAM_CHANGES, PROGRAMS, PURCHASES, REDEMPTIONS, REFUNDS, _insert_ignore
from .tables import CampaignBudgetRow, EarningAwardRow, EarningConfigVersionRow, RedemptionEventRow, TierChangeRow

CONFIG_VERSIONS = EarningConfigVersionRow.__table__
AWARDS = EarningAwardRow.__table__
BUDGETS = CampaignBudgetRow.__table__
TIER_CHANGES = TierChangeRow.__table__
REDEMPTION_EVENTS = RedemptionEventRow.__table__


class SqlEarning:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def latest_config(self, program_id: str) -> dict[str, Any] | None:
        q = (select(CONFIG_VERSIONS.c.version, CONFIG_VERSIONS.c.config)
             .where(CONFIG_VERSIONS.c.program_id == program_id)
             .order_by(CONFIG_VERSIONS.c.version.desc()).limit(1))
        row = self.s.execute(q).mappings().first()
        return dict(row) if row else None

    def config(self, program_id: str, version: int) -> dict[str, Any] | None:
        q = select(CONFIG_VERSIONS.c.version, CONFIG_VERSIONS.c.config).where(
            CONFIG_VERSIONS.c.program_id == program_id, CONFIG_VERSIONS.c.version == version)
        row = self.s.execute(q).mappings().first()
        return dict(row) if row else None

    def add_config(self, program_id: str, version: int, config: dict[str, Any], at: datetime, actor: str,
                   request_id: str | None, before: dict[str, Any], after: dict[str, Any]) -> None:
        """A new version (a concurrent one violates the unique version: retried), and its audit record."""
        self.s.execute(insert(CONFIG_VERSIONS).values(program_id=program_id, version=version, config=config,
                                                      created_at=at, actor=actor, request_id=request_id))
        self.s.execute(update(PROGRAMS).where(PROGRAMS.c.id == program_id).values(earning_version=version))
        self.s.execute(insert(PROGRAM_CHANGES).values(program_id=program_id, actor=actor, request_id=request_id,
                                                      changed_at=at, before=before, after=after))

    # -- facts about a customer's earlier purchases and awards
    def purchase_span(self, customer_pk: int, before: datetime) -> tuple[datetime | None, datetime | None]:
        """The first and the latest of the customer's purchases that occurred before `before`."""
        q = select(func.min(PURCHASES.c.occurred_at), func.max(PURCHASES.c.occurred_at)).where(
            PURCHASES.c.customer_pk == customer_pk, PURCHASES.c.occurred_at < before)
        first, last = self.s.execute(q).one()
        return first, last

    def purchases_between(self, customer_pk: int, start: datetime, end: datetime) -> int:
        q = select(func.count()).select_from(PURCHASES).where(
            PURCHASES.c.customer_pk == customer_pk, PURCHASES.c.occurred_at >= start, PURCHASES.c.occurred_at < end)
        return self.s.execute(q).scalar_one()

    def awarded_between(self, customer_pk: int, source_id: str, start: datetime, end: datetime) -> int:
        q = select(func.coalesce(func.sum(AWARDS.c.points), 0)).where(
            AWARDS.c.customer_pk == customer_pk, AWARDS.c.source_id == source_id,
            AWARDS.c.awarded_at >= start, AWARDS.c.awarded_at < end)
        return int(self.s.execute(q).scalar_one())

    def occasions(self, customer_pk: int, source_ids: Sequence[str]) -> set[str]:
        q = select(AWARDS.c.source_id, AWARDS.c.occasion).where(
            AWARDS.c.customer_pk == customer_pk, AWARDS.c.source_id.in_(list(source_ids)),
            AWARDS.c.occasion.is_not(None))
        return {f"{row.source_id}:{row.occasion}" for row in self.s.execute(q)}

    def add_awards(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.s.execute(insert(AWARDS), list(rows))

    def budget_used(self, program_id: str, campaign_id: str, lock: bool) -> int:
        """Points a campaign has given; with `lock`, its budget row stays locked until commit."""
        if lock:
            self.s.execute(_insert_ignore(self.s, BUDGETS).values(program_id=program_id, campaign_id=campaign_id,
                                                                  used_points=0))
        q = select(BUDGETS.c.used_points).where(BUDGETS.c.program_id == program_id,
                                                BUDGETS.c.campaign_id == campaign_id)
        if lock:
            q = q.with_for_update()
        return self.s.execute(q).scalar_one_or_none() or 0

    def use_budget(self, program_id: str, campaign_id: str, points: int) -> None:
        self.s.execute(update(BUDGETS).where(BUDGETS.c.program_id == program_id, BUDGETS.c.campaign_id == campaign_id)
                       .values(used_points=BUDGETS.c.used_points + points))

    def budgets(self, program_id: str) -> dict[str, int]:
        q = select(BUDGETS.c.campaign_id, BUDGETS.c.used_points).where(BUDGETS.c.program_id == program_id)
        return {row.campaign_id: row.used_points for row in self.s.execute(q)}


class SqlTiers:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add_change(self, **fields: Any) -> None:
        self.s.execute(insert(TIER_CHANGES).values(**fields))

    def set_customer_tier(self, customer_pk: int, **values: Any) -> None:
        self.s.execute(update(CUSTOMERS).where(CUSTOMERS.c.pk == customer_pk).values(**values))

    def changes(self, customer_pk: int, limit: int = 50) -> list[dict[str, Any]]:
        q = (select(TIER_CHANGES).where(TIER_CHANGES.c.customer_pk == customer_pk)
             .order_by(TIER_CHANGES.c.id.desc()).limit(limit))
        return [dict(r) for r in self.s.execute(q).mappings()]

    def qualifying_spend(self, customer_pk: int, start: datetime, end: datetime) -> int:
        """Amounts of purchases that occurred in [start, end), net of every refund of them."""
        return self._net(customer_pk, start, end, PURCHASES.c.amount, REFUNDS.c.amount)

    def purchase_points(self, customer_pk: int, start: datetime, end: datetime) -> int:
        """Points earned by purchases that occurred in [start, end), net of their clawbacks."""
        return self._net(customer_pk, start, end, PURCHASES.c.points_earned, REFUNDS.c.points_reversed)

    def _net(self, customer_pk: int, start: datetime, end: datetime, gross: Any, refunded: Any) -> int:
        in_window = (PURCHASES.c.customer_pk == customer_pk, PURCHASES.c.occurred_at >= start,
                     PURCHASES.c.occurred_at < end)
        total = self.s.execute(select(func.coalesce(func.sum(gross), 0)).where(*in_window)).scalar_one()
        back = self.s.execute(select(func.coalesce(func.sum(refunded), 0))
                              .join_from(REFUNDS, PURCHASES, PURCHASES.c.id == REFUNDS.c.purchase_id)
                              .where(*in_window)).scalar_one()
        return int(total) - int(back)

    def due_for_evaluation(self, now: datetime, after_pk: int, limit: int) -> list[int]:
        """Customers whose evaluation date or manual override end has come (grace is checked by the caller)."""
        q = (select(CUSTOMERS.c.pk).where(CUSTOMERS.c.pk > after_pk,
                                          (CUSTOMERS.c.tier_evaluate_at <= now) | (CUSTOMERS.c.tier_manual_until <= now))
             .order_by(CUSTOMERS.c.pk).limit(limit))
        return list(self.s.execute(q).scalars())


class SqlExpiry:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def customers_with_due_lots(self, program_id: str, now: datetime, after_pk: int, limit: int) -> list[int]:
        q = (select(LOTS.c.customer_pk).where(LOTS.c.program_id == program_id, LOTS.c.expires_at <= now,
                                              LOTS.c.remaining > 0, LOTS.c.customer_pk > after_pk)
             .group_by(LOTS.c.customer_pk).order_by(LOTS.c.customer_pk).limit(limit))
        return list(self.s.execute(q).scalars())

    def customers_with_points(self, program_id: str, after_pk: int, limit: int) -> list[int]:
        q = (select(LOTS.c.customer_pk).where(LOTS.c.program_id == program_id, LOTS.c.remaining > 0,
                                              LOTS.c.customer_pk > after_pk)
             .group_by(LOTS.c.customer_pk).order_by(LOTS.c.customer_pk).limit(limit))
        return list(self.s.execute(q).scalars())

    def last_activity(self, customer_pk: int) -> datetime | None:
        """The latest purchase or captured redemption: what keeps points alive under inactivity expiry."""
        purchase = self.s.execute(select(func.max(PURCHASES.c.occurred_at))
                                  .where(PURCHASES.c.customer_pk == customer_pk)).scalar_one()
        capture = self.s.execute(
            select(func.max(REDEMPTION_EVENTS.c.at))
            .join_from(REDEMPTION_EVENTS, REDEMPTIONS, REDEMPTIONS.c.id == REDEMPTION_EVENTS.c.redemption_pk)
            .where(REDEMPTIONS.c.customer_pk == customer_pk, REDEMPTION_EVENTS.c.kind == "captured")).scalar_one()
        moments = [m for m in (purchase, capture) if m is not None]
        return max(moments) if moments else None

    def lot_consumed_by_type(self, lot_transaction_id: str, transaction_type: str) -> int:
        """How much of the lot credited by `lot_transaction_id` transactions of a type consumed."""
        from .repositories import LOT_CONSUMPTIONS, TRANSACTIONS
        q = (select(func.coalesce(func.sum(LOT_CONSUMPTIONS.c.amount), 0))
             .join_from(LOT_CONSUMPTIONS, LOTS, LOTS.c.id == LOT_CONSUMPTIONS.c.lot_id)
             .join(TRANSACTIONS, TRANSACTIONS.c.id == LOT_CONSUMPTIONS.c.transaction_id)
             .where(LOTS.c.transaction_id == lot_transaction_id, TRANSACTIONS.c.type == transaction_type))
        return int(self.s.execute(q).scalar_one())

    def upcoming(self, customer_pk: int, now: datetime) -> list[dict[str, Any]]:
        q = (select(LOTS.c.id, LOTS.c.remaining, LOTS.c.expires_at, LOTS.c.available_at, LOTS.c.source)
             .where(LOTS.c.customer_pk == customer_pk, LOTS.c.remaining > 0, LOTS.c.expires_at.is_not(None))
             .order_by(LOTS.c.expires_at, LOTS.c.id))
        return [dict(r) for r in self.s.execute(q).mappings()]
