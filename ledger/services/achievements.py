"""Achievements: progress recomputed from what still holds, rewards that follow it.

After a purchase or an event, each achievement is checked for the occasion containing that moment;
one that holds and was not earned for that occasion is earned, and its reward booked (Dr
`issued/promotion`). After a refund, every badge the customer holds is checked again on the window
that earned it; one that no longer holds is revoked and its reward taken back under the program's
clawback policy. A badge revoked can be earned again when it holds again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.customers import Customer
from ..domain.earning_config import EarningConfig
from ..domain.engagement import Achievement, Activity, progress
from ..domain.programs import Program
from ..domain.transactions import Reference
from .customers import require_customer
from .earning import current_config
from .ports import BookingContext, UnitOfWork
from .rewards import grant, take_back


def _definition(achievement: Achievement) -> dict[str, Any]:
    return EarningConfig(achievements=(achievement,)).to_dict()["achievements"][0]


def _purchase_activities(uow: UnitOfWork, customer: Customer) -> list[Activity]:
    """Purchases net of refunds: a fully refunded one no longer counts; a returned line's category
    counts only while some of it is kept."""
    activities = []
    for purchase in uow.achievements.purchases(customer.pk):
        net = purchase["amount"] - sum(r["amount"] for r in purchase["refunds"])
        if net <= 0:
            continue
        returned: dict[str, int] = {}
        for refund in purchase["refunds"]:
            for sku, quantity in refund["lines"] or ():
                returned[sku] = returned.get(sku, 0) + quantity
        categories = set()
        for line in purchase["lines"] or ():
            kept = line["quantity"] - returned.get(line["sku"], 0)
            returned[line["sku"]] = max(returned.get(line["sku"], 0) - line["quantity"], 0)
            if kept > 0 and line.get("category"):
                categories.add(line["category"])
        activities.append(Activity(at=purchase["occurred_at"], amount=net, categories=tuple(sorted(categories))))
    return activities


def _activities(uow: UnitOfWork, customer: Customer, achievement: Achievement,
                cache: dict[str, list[Activity]]) -> list[Activity]:
    key = "purchases" if achievement.source == "purchases" else f"event:{achievement.event_type}"
    if key not in cache:
        cache[key] = (_purchase_activities(uow, customer) if achievement.source == "purchases"
                      else [Activity(at=at) for at in uow.events.moments(customer.pk, achievement.event_type)])
    return cache[key]


def check_after(uow: UnitOfWork, now: datetime, program: Program, config: EarningConfig, customer: Customer,
                at: datetime, source: str, ctx: BookingContext) -> list[dict[str, Any]]:
    """Earn what now holds for the occasion containing `at` (a purchase's or an event's moment);
    returns the badges unlocked."""
    if not config.achievements:
        return []
    tz = program.settings.timezone
    held = {(row["achievement_id"], row["occasion"]): row for row in uow.achievements.of_customer(customer.pk)}
    cache: dict[str, list[Activity]] = {}
    unlocked = []
    for achievement in sorted(config.achievements, key=lambda a: a.id):
        if achievement.source != source.split(":")[0]:
            continue
        if achievement.source == "events" and f"events:{achievement.event_type}" != source:
            continue
        # The occasion of the purchase or event, and today's: a back-dated purchase can complete
        # a streak (or a window) that ends now.
        for moment in sorted({at, now}):
            state = progress(achievement, _activities(uow, customer, achievement, cache), moment, tz)
            row = held.get((achievement.id, state.occasion))
            if state.holds and (row is None or row["status"] != "earned"):
                break
        else:
            continue
        transaction_id = grant(
            uow, now, program, customer, ctx, type_="achievement_reward",
            reference=Reference("achievement", f"{achievement.id}:{state.occasion}"), source="promotion",
            points=achievement.reward_points, cashback=0, occurred_at=now,
            description=describe.achievement_reward(achievement.name, achievement.reward_points),
            metadata={"achievement_id": achievement.id, "occasion": state.occasion})
        fields = dict(status="earned", points=achievement.reward_points, window_at=moment,
                      transaction_id=transaction_id, revoke_transaction_id=None, earned_at=now, revoked_at=None,
                      name=achievement.name, definition=_definition(achievement))
        if row is None:
            row_id = uow.achievements.add(program_id=program.id, customer_pk=customer.pk,
                                          achievement_id=achievement.id, occasion=state.occasion, **fields)
        else:
            row_id = row["id"]
            uow.achievements.update(row_id, **fields)
        held[(achievement.id, state.occasion)] = {"id": row_id, "status": "earned"}
        unlocked.append({"achievement_id": achievement.id, "name": achievement.name, "occasion": state.occasion,
                         "points": achievement.reward_points})
    return unlocked


def recheck_after_refund(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                         ctx: BookingContext) -> list[dict[str, Any]]:
    """Revoke every earned badge that no longer holds on the window that earned it, under the
    definition it was earned with; returns them."""
    rows = [row for row in uow.achievements.of_customer(customer.pk) if row["status"] == "earned"]
    cache: dict[str, list[Activity]] = {}
    revoked = []
    for row in rows:
        # Checked against the achievement as it was when earned: raising a threshold later does not
        # take badges back.
        achievement = Achievement(**row["definition"])
        if achievement.source != "purchases":
            continue
        if progress(achievement, _activities(uow, customer, achievement, cache), row["window_at"],
                    program.settings.timezone).holds:
            continue
        transaction_id = None
        if row["points"]:
            transaction_id = take_back(
                uow, now, program, customer, ctx, type_="achievement_revoked",
                reference=Reference("achievement", f"{row['achievement_id']}:{row['occasion']}"), source="promotion",
                points=row["points"], cashback=0,
                description=describe.achievement_revoked(row["name"], row["points"]),
                prefer_transactions=(row["transaction_id"],) if row["transaction_id"] else ())
        uow.achievements.update(row["id"], status="revoked", revoke_transaction_id=transaction_id, revoked_at=now)
        revoked.append({"achievement_id": row["achievement_id"], "name": row["name"], "occasion": row["occasion"],
                        "points": row["points"]})
    return revoked


@dataclass(frozen=True, slots=True)
class AchievementsView:
    customer_id: str
    badges: list[dict[str, Any]]
    progress: list[dict[str, Any]]


def achievements_of(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> AchievementsView:
    """Badges earned (and withdrawn), and progress toward every achievement's current occasion."""
    now = clock.now()
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, customer_id)
    config = current_config(uow, program_id)
    rows = uow.achievements.of_customer(customer.pk)
    badges = [{"achievement_id": r["achievement_id"], "name": r["name"], "occasion": r["occasion"],
               "status": r["status"], "points": r["points"], "earned_at": r["earned_at"], "revoked_at": r["revoked_at"]}
              for r in rows]
    earned = {(r["achievement_id"], r["occasion"]) for r in rows if r["status"] == "earned"}
    cache: dict[str, list[Activity]] = {}
    toward = []
    for achievement in sorted(config.achievements, key=lambda a: a.id):
        state = progress(achievement, _activities(uow, customer, achievement, cache), now, program.settings.timezone)
        toward.append({"achievement_id": achievement.id, "name": achievement.name, "kind": achievement.kind,
                       "value": state.value, "target": state.target, "occasion": state.occasion,
                       "earned": (achievement.id, state.occasion) in earned
                       or (not achievement.repeatable and (achievement.id, "once") in earned),
                       "text": state.describe(), "reward_points": achievement.reward_points})
    return AchievementsView(customer_id=customer_id, badges=badges, progress=toward)
