"""Engagement events: stored as received, rewarded by the event rules in force, idempotent by event_id.

Each event rule for the event's type adds its points, limited by its cap per customer per local
period; the reward books Dr `issued/promotion`, Cr the customer's `available`. Events of a type no
rule rewards are still stored (NPS and achievements read them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.calendar import period_end, period_start
from ..domain.customers import Balances
from ..domain.engagement import check_event
from ..domain.errors import ValidationFailed
from ..domain.transactions import Reference
from . import achievements
from .customers import require_customer
from .earning import config_for
from .ports import BookingContext, UnitOfWork
from .queries import balances_of
from .rewards import grant
from .upkeep import prepare_customer_for_write

FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class EventCommand:
    event_id: str
    customer_id: str
    type: str
    occurred_at: datetime | None = None
    properties: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    event_id: str
    customer_id: str
    type: str
    points_awarded: int
    rewards: list[dict[str, Any]]
    transaction_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    balances: Balances
    badges_unlocked: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, Any] | None = None


def record_event(uow: UnitOfWork, clock: Clock, program_id: str, cmd: EventCommand, ctx: BookingContext) -> EventResult:
    now = clock.now()
    check_event(cmd.type, cmd.properties)
    if cmd.occurred_at is not None and cmd.occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed([{"field": "occurred_at", "message": "must not be in the future"}])
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, cmd.customer_id, lock=True)
    customer.refuse_unless_active("earn")
    prepare_customer_for_write(uow, now, program, customer, ctx)
    occurred_at = (cmd.occurred_at or now).astimezone(timezone.utc)
    config = config_for(uow, program)
    tz = program.settings.timezone
    rewards = []
    for rule in sorted(config.event_rules, key=lambda r: r.id):
        if rule.event_type != cmd.type:
            continue
        points = rule.points
        if rule.cap_points is not None:
            used = uow.events.points_between(customer.pk, cmd.type, period_start(occurred_at, tz, rule.cap_period),
                                             period_end(occurred_at, tz, rule.cap_period), rule.id)
            points = max(min(points, rule.cap_points - used), 0)
        rewards.append({"rule_id": rule.id, "name": rule.name, "points": points, "capped": points < rule.points})
    total = sum(r["points"] for r in rewards)
    transaction_id = grant(uow, now, program, customer, ctx, type_="event_reward",
                           reference=Reference("event", cmd.event_id), source="promotion", points=total, cashback=0,
                           occurred_at=occurred_at, description=describe.event_reward(total, cmd.type),
                           metadata={"event_type": cmd.type})
    uow.events.add(program_id=program_id, event_id=cmd.event_id, customer_pk=customer.pk, type=cmd.type,
                   properties=cmd.properties, points=total, rewards=rewards, transaction_id=transaction_id,
                   occurred_at=occurred_at, recorded_at=now)
    unlocked = achievements.check_after(uow, now, program, config, customer, occurred_at, f"events:{cmd.type}", ctx)
    return EventResult(event_id=cmd.event_id, customer_id=cmd.customer_id, type=cmd.type, points_awarded=total,
                       rewards=rewards, transaction_id=transaction_id, occurred_at=occurred_at, recorded_at=now,
                       balances=balances_of(uow, program.settings.currency, customer, now, include_due=False),
                       badges_unlocked=unlocked, properties=cmd.properties)


def leaderboard(uow: UnitOfWork, clock: Clock, program_id: str, period: str, limit: int) -> dict[str, Any]:
    """Customers who opted in, by points issued to them in the current local period, net of clawbacks."""
    now = clock.now()
    program = uow.programs.get(program_id)
    tz = program.settings.timezone
    start, end = period_start(now, tz, period), period_end(now, tz, period)
    rows = uow.leaderboard.top(program_id, start, end, limit)
    return {"period": period, "from": start, "to": end,
            "items": [{"rank": index + 1, "display_name": row["display_name"] or "Member", "points": int(row["points"])}
                      for index, row in enumerate(rows)]}
