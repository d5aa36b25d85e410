"""Storage for retention analytics (read-only): purchases, refunds and NPS responses of members."""
from __future__ import annotations

from sqlalchemy.orm import Session


class SqlAnalytics:
    def __init__(self, session: Session) -> None:
        self.s = session
