"""Storage for referrals, engagement events, customers' achievements and the leaderboard."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import Connection, func, insert, select, update

from .repositories import ACCOUNTS, CUSTOMERS, ENTRIES, PURCHASES, REFUNDS, TRANSACTIONS
from .tables import CustomerAchievementRow, EventRow, ReferralRow

REFERRALS = ReferralRow.__table__
EVENTS = EventRow.__table__
ACHIEVEMENTS = CustomerAchievementRow.__table__


class SqlReferrals:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add(self, **fields: Any) -> int:
        return self.s.execute(insert(REFERRALS).values(**fields).returning(REFERRALS.c.id)).scalar_one()

    def of_referee(self, referee_pk: int) -> dict[str, Any] | None:
        row = self.s.execute(select(REFERRALS).where(REFERRALS.c.referee_pk == referee_pk)).mappings().first()
        return dict(row) if row else None

    def for_purchase(self, purchase_pk: int) -> dict[str, Any] | None:
        row = self.s.execute(select(REFERRALS).where(REFERRALS.c.purchase_id == purchase_pk)).mappings().first()
        return dict(row) if row else None

    def update(self, referral_pk: int, **changes: Any) -> None:
        self.s.execute(update(REFERRALS).where(REFERRALS.c.id == referral_pk).values(**changes))

    def rewarded_between(self, referrer_pk: int, start: datetime, end: datetime) -> int:
        """Referrals of this referrer that earned it a reward (not reversed) and qualified in [start, end)."""
        q = select(func.count()).select_from(REFERRALS).where(
            REFERRALS.c.referrer_pk == referrer_pk, REFERRALS.c.status == "purchased",
            REFERRALS.c.qualified_at >= start, REFERRALS.c.qualified_at < end)
        return self.s.execute(q).scalar_one()

    def of_referrer(self, referrer_pk: int) -> list[dict[str, Any]]:
        q = (select(REFERRALS, CUSTOMERS.c.customer_id.label("referee_id"))
             .join_from(REFERRALS, CUSTOMERS, CUSTOMERS.c.pk == REFERRALS.c.referee_pk)
             .where(REFERRALS.c.referrer_pk == referrer_pk).order_by(REFERRALS.c.id.desc()))
        return [dict(r) for r in self.s.execute(q).mappings()]


class SqlEvents:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def add(self, **fields: Any) -> int:
        return self.s.execute(insert(EVENTS).values(**fields).returning(EVENTS.c.id)).scalar_one()

    def points_between(self, customer_pk: int, event_type: str, start: datetime, end: datetime,
                       rule_id: str) -> int:
        """What one event rule awarded the customer for events that occurred in [start, end)."""
        q = select(EVENTS.c.rewards).where(EVENTS.c.customer_pk == customer_pk, EVENTS.c.type == event_type,
                                           EVENTS.c.occurred_at >= start, EVENTS.c.occurred_at < end)
        return sum(reward["points"] for (rewards,) in self.s.execute(q) for reward in rewards or ()
                   if reward["rule_id"] == rule_id)

    def moments(self, customer_pk: int, event_type: str) -> list[datetime]:
        q = select(EVENTS.c.occurred_at).where(EVENTS.c.customer_pk == customer_pk, EVENTS.c.type == event_type)
        return list(self.s.execute(q).scalars())


class SqlAchievements:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def of_customer(self, customer_pk: int) -> list[dict[str, Any]]:
        q = select(ACHIEVEMENTS).where(ACHIEVEMENTS.c.customer_pk == customer_pk).order_by(ACHIEVEMENTS.c.id)
        return [dict(r) for r in self.s.execute(q).mappings()]

    def add(self, **fields: Any) -> int:
        return self.s.execute(insert(ACHIEVEMENTS).values(**fields).returning(ACHIEVEMENTS.c.id)).scalar_one()

    def update(self, row_id: int, **changes: Any) -> None:
        self.s.execute(update(ACHIEVEMENTS).where(ACHIEVEMENTS.c.id == row_id).values(**changes))

    def purchases(self, customer_pk: int) -> list[dict[str, Any]]:
        """The customer's purchases with what refunds took: amount, lines and per-refund lines."""
        purchases = [dict(r) for r in self.s.execute(
            select(PURCHASES.c.id, PURCHASES.c.occurred_at, PURCHASES.c.amount, PURCHASES.c.lines)
            .where(PURCHASES.c.customer_pk == customer_pk)).mappings()]
        refunds: dict[int, list[dict[str, Any]]] = {}
        for row in self.s.execute(
                select(REFUNDS.c.purchase_id, REFUNDS.c.amount, REFUNDS.c.lines)
                .join_from(REFUNDS, PURCHASES, PURCHASES.c.id == REFUNDS.c.purchase_id)
                .where(PURCHASES.c.customer_pk == customer_pk)).mappings():
            refunds.setdefault(row["purchase_id"], []).append(dict(row))
        for purchase in purchases:
            purchase["refunds"] = refunds.get(purchase["id"], [])
        return purchases


class SqlLeaderboard:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def top(self, program_id: str, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        """Opted-in customers by points issued to them in [start, end) (occurred time), net of clawbacks:
        minus the sum of their transactions' entries on `house/points/issued/...` accounts."""
        issued = (select(TRANSACTIONS.c.customer_pk.label("customer_pk"),
                         (-func.sum(ENTRIES.c.amount)).label("points"))
                  .join_from(ENTRIES, TRANSACTIONS, TRANSACTIONS.c.id == ENTRIES.c.transaction_id)
                  .join(ACCOUNTS, ACCOUNTS.c.id == ENTRIES.c.account_id)
                  .where(ENTRIES.c.program_id == program_id, ACCOUNTS.c.path.like("house/points/issued/%"),
                         TRANSACTIONS.c.occurred_at >= start, TRANSACTIONS.c.occurred_at < end)
                  .group_by(TRANSACTIONS.c.customer_pk).subquery())
        q = (select(CUSTOMERS.c.display_name, CUSTOMERS.c.customer_id, issued.c.points)
             .join_from(issued, CUSTOMERS, CUSTOMERS.c.pk == issued.c.customer_pk)
             .where(CUSTOMERS.c.leaderboard_opt_in.is_(True), CUSTOMERS.c.status == "active", issued.c.points > 0)
             .order_by(issued.c.points.desc(), CUSTOMERS.c.pk).limit(limit))
        return [dict(r) for r in self.s.execute(q).mappings()]
