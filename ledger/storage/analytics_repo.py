"""Storage for retention analytics (read-only): purchases, refunds and NPS responses of members.

Every query is per program, and reads customers of that program only (`customers.program_id`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import Connection, func, select

from .engagement_repos import EVENTS
from .repositories import CUSTOMERS, LOTS, PURCHASES, REFUNDS


class SqlAnalytics:
    def __init__(self, conn: Connection) -> None:
        self.s = conn

    def purchases(self, program_id: str, before: datetime, batch: int = 2000) -> Iterator[dict[str, Any]]:
        """Every purchase of the program's customers that occurred before `before`, with the sum of
        all its refunds' amounts (every refund recorded so far, whenever it occurred): `customer_pk,
        id, occurred_at, amount, refunded`, ordered by customer, then occurred_at, then id.
        Streamed from a server-side cursor: the report holds one customer's purchases at a time."""
        refunds = (select(REFUNDS.c.purchase_id, func.sum(REFUNDS.c.amount).label("refunded"))
                   .where(REFUNDS.c.program_id == program_id)
                   .group_by(REFUNDS.c.purchase_id).subquery())
        p = PURCHASES.c
        q = (select(p.customer_pk, p.id, p.occurred_at, p.amount,
                    func.coalesce(refunds.c.refunded, 0).label("refunded"))
             .join_from(PURCHASES, CUSTOMERS, CUSTOMERS.c.pk == p.customer_pk)
             .join(refunds, refunds.c.purchase_id == p.id, isouter=True)
             .where(p.program_id == program_id, CUSTOMERS.c.program_id == program_id, p.occurred_at < before)
             .order_by(p.customer_pk, p.occurred_at, p.id)
             .execution_options(yield_per=batch, stream_results=True))
        for row in self.s.execute(q).mappings():
            yield {**row, "refunded": int(row["refunded"])}  # PostgreSQL's SUM(bigint) is numeric

    def nps_responses(self, program_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """`nps_response` events of the program's customers that occurred in [start, end):
        `customer_pk, id, occurred_at, properties`."""
        e = EVENTS.c
        q = (select(e.customer_pk, e.id, e.occurred_at, e.properties)
             .join_from(EVENTS, CUSTOMERS, CUSTOMERS.c.pk == e.customer_pk)
             .where(e.program_id == program_id, CUSTOMERS.c.program_id == program_id, e.type == "nps_response",
                    e.occurred_at >= start, e.occurred_at < end)
             .order_by(e.customer_pk, e.occurred_at, e.id))
        return [dict(r) for r in self.s.execute(q).mappings()]

    def expiring_points(self, program_id: str, start: datetime, end: datetime) -> dict[str, int]:
        """Members with points lots that still hold points (`remaining > 0`, as they stand now) and
        expire in [start, end), and how many points those lots hold: `{members, points}`."""
        q = (select(func.count(func.distinct(LOTS.c.customer_pk)).label("members"),
                    func.coalesce(func.sum(LOTS.c.remaining), 0).label("points"))
             .join_from(LOTS, CUSTOMERS, CUSTOMERS.c.pk == LOTS.c.customer_pk)
             .where(LOTS.c.program_id == program_id, CUSTOMERS.c.program_id == program_id, LOTS.c.remaining > 0,
                    LOTS.c.expires_at >= start, LOTS.c.expires_at < end))
        row = self.s.execute(q).one()
        return {"members": int(row.members), "points": int(row.points)}
