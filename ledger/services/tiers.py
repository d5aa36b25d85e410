"""Tiers: upgrade on the qualifying purchase, undo on its refund, downgrade only at evaluation.

- The metric (qualifying spend or purchase points, net of refunds) counts purchases that occurred
  in the window: the last `window_days` (rolling) or the local calendar year.
- Upgrade: right after a purchase, to the highest tier the metric reaches. The purchase itself
  earned at the tier held before it.
- Undo: a refund within the qualifying purchase's return window that takes the metric below the
  tier's threshold returns the customer to the tier held before (or the one they still qualify for).
- Evaluation: at the year's end (calendar) or the anniversary of the last change (rolling), plus
  `grace_days`, the metric over the window ending then decides: keep, or go down one tier (or to
  the tier qualified for). A manual tier holds until its end date and is no floor afterwards.
Every change, and every evaluation that keeps a tier, is a `tier_changes` row with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..domain.calendar import add_months, local_date, period_start, start_of_local_day
from ..domain.customers import Customer
from ..domain.earning_config import EarningConfig, Tier, TierLadder
from ..domain.errors import ValidationFailed
from ..domain.programs import Program
from .customers import require_customer
from .earning import config_for, current_config
from .ports import BookingContext, UnitOfWork, WrittenPurchase


def window_start(ladder: TierLadder, end: datetime, tz: str) -> datetime:
    if ladder.window == "calendar_year":
        return period_start(end - timedelta(microseconds=1), tz, "year")
    return end - timedelta(days=ladder.window_days)


def metric(uow: UnitOfWork, ladder: TierLadder, customer_pk: int, start: datetime, end: datetime) -> int:
    if ladder.metric == "purchase_points":
        return uow.tiers.purchase_points(customer_pk, start, end)
    return uow.tiers.qualifying_spend(customer_pk, start, end)


def metric_ending(uow: UnitOfWork, ladder: TierLadder, tz: str, customer_pk: int, end: datetime) -> int:
    """The metric over the window that ends at `end` (purchases at `end` included)."""
    end = end + timedelta(microseconds=1)
    return metric(uow, ladder, customer_pk, window_start(ladder, end, tz), end)


def next_evaluation(ladder: TierLadder, tz: str, after: datetime) -> datetime:
    """Calendar year: the next local 1 January; rolling: the local anniversary of `after`."""
    if ladder.window == "calendar_year":
        day = local_date(after, tz)
        return start_of_local_day(day.replace(year=day.year + 1, month=1, day=1), tz)
    return start_of_local_day(add_months(local_date(after, tz), 12), tz)


def decision_at(ladder: TierLadder, tz: str, evaluate_at: datetime) -> datetime:
    """When an evaluation decides: `grace_days` local days after the evaluation date, at local midnight."""
    return start_of_local_day(local_date(evaluate_at, tz) + timedelta(days=ladder.grace_days), tz)


def _change(uow: UnitOfWork, now: datetime, program: Program, ladder: TierLadder, customer: Customer,
            to: Tier, reason: str, metric_value: int | None, actor: str, purchase_id: int | None = None,
            manual_until: datetime | None = None, evaluate_at: datetime | None | str = "auto") -> None:
    tz = program.settings.timezone
    if evaluate_at == "auto":
        evaluate_at = None if ladder.rank(to.id) == 0 or manual_until else next_evaluation(ladder, tz, now)
    uow.tiers.add_change(program_id=program.id, customer_pk=customer.pk,
                         from_tier=ladder.get(customer.tier_id).id, to_tier=to.id, reason=reason,
                         metric=metric_value, purchase_id=purchase_id, manual_until=manual_until, changed_at=now,
                         actor=actor)
    uow.tiers.set_customer_tier(customer.pk, tier_id=to.id, tier_changed_at=now, tier_evaluate_at=evaluate_at,
                                tier_manual_until=manual_until)


def upgrade_after_purchase(uow: UnitOfWork, now: datetime, program: Program, config: EarningConfig,
                           customer: Customer, purchase: WrittenPurchase, ctx: BookingContext) -> None:
    ladder = config.ladder
    if len(ladder.tiers) < 2:
        return
    value = metric_ending(uow, ladder, program.settings.timezone, customer.pk, now)
    qualified = ladder.qualified_for(value)
    if ladder.rank(qualified.id) > ladder.rank(customer.tier_id):
        _change(uow, now, program, ladder, customer, qualified, "qualified", value, ctx.actor,
                purchase_id=purchase.purchase_pk, manual_until=None)


def undo_upgrade_after_refund(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                              purchase: dict[str, Any], ctx: BookingContext) -> None:
    """Undo the upgrade this purchase caused if it is refunded inside its return window and the
    customer no longer reaches the tier."""
    if customer.tier_id is None or customer.tier_manual_until is not None:
        return
    config = config_for(uow, program)
    ladder = config.ladder
    if len(ladder.tiers) < 2:
        return
    window_end = purchase["occurred_at"] + timedelta(days=program.settings.return_window_days)
    history = uow.tiers.changes(customer.pk, limit=2)
    if not history or now > window_end:
        return
    latest = history[0]
    if latest["reason"] != "qualified" or latest["purchase_id"] != purchase["id"] or latest["to_tier"] != customer.tier_id:
        return
    value = metric_ending(uow, ladder, program.settings.timezone, customer.pk, now)
    current = ladder.get(customer.tier_id)
    if value >= current.threshold:
        return
    back_rank = max(ladder.rank(latest["from_tier"]), ladder.rank(ladder.qualified_for(value).id))
    if back_rank >= ladder.rank(current.id):
        return
    earlier = history[1] if len(history) > 1 else None
    restored = ladder.tiers[back_rank]
    tz = program.settings.timezone
    if back_rank == 0:
        evaluate_at = None
    elif earlier is not None and earlier["to_tier"] == restored.id:
        evaluate_at = next_evaluation(ladder, tz, earlier["changed_at"])  # as it was before the upgrade
    else:
        evaluate_at = next_evaluation(ladder, tz, now)
    _change(uow, now, program, ladder, customer, restored, "upgrade_undone", value, ctx.actor,
            purchase_id=purchase["id"], evaluate_at=evaluate_at)


def evaluate_customer(uow: UnitOfWork, now: datetime, program: Program, customer: Customer,
                      ctx: BookingContext) -> str | None:
    """Evaluate a locked customer whose evaluation (or manual override end) has come; returns the reason booked."""
    ladder = config_for(uow, program).ladder
    tz = program.settings.timezone
    if len(ladder.tiers) < 2:
        return None
    current = ladder.get(customer.tier_id)
    if customer.tier_manual_until is not None:
        if customer.tier_manual_until > now:
            return None
        value = metric_ending(uow, ladder, tz, customer.pk, customer.tier_manual_until)
        _change(uow, now, program, ladder, customer, ladder.qualified_for(value), "manual_ended", value, ctx.actor,
                evaluate_at="auto")
        return "manual_ended"
    due = customer.tier_evaluate_at
    if due is None or decision_at(ladder, tz, due) > now:
        return None
    decided_at = decision_at(ladder, tz, due)
    if ladder.window == "calendar_year":
        value = metric(uow, ladder, customer.pk, period_start(due - timedelta(microseconds=1), tz, "year"),
                       decided_at + timedelta(microseconds=1))
    else:
        value = metric_ending(uow, ladder, tz, customer.pk, decided_at)
    if value >= current.threshold:
        _change(uow, now, program, ladder, customer, current, "evaluation_kept", value, ctx.actor,
                evaluate_at=next_evaluation(ladder, tz, due))
        return "evaluation_kept"
    if ladder.downgrade == "one_tier":
        target = ladder.tiers[max(ladder.rank(current.id) - 1, 0)]
    else:
        target = ladder.qualified_for(value)
    _change(uow, now, program, ladder, customer, target, "evaluation_downgrade", value, ctx.actor,
            evaluate_at=None if ladder.rank(target.id) == 0 else next_evaluation(ladder, tz, due))
    return "evaluation_downgrade"


def set_manual_tier(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str, tier_id: str,
                    until: datetime, ctx: BookingContext) -> dict[str, Any]:
    """An admin places a customer in a tier until `until`; afterwards the metric alone decides."""
    now = clock.now()
    program = uow.programs.get(program_id)
    ladder = current_config(uow, program_id).ladder
    if tier_id not in {t.id for t in ladder.tiers}:
        raise ValidationFailed([{"field": "tier_id", "message": "no such tier in the program's ladder"}])
    if until <= now:
        raise ValidationFailed([{"field": "until", "message": "must be in the future"}])
    customer = require_customer(uow, program_id, customer_id, lock=True)
    if customer.tier_id == tier_id and customer.tier_manual_until == until:
        return tier_status(uow, clock, program_id, customer_id)  # the same override again: nothing to record
    value = metric_ending(uow, ladder, program.settings.timezone, customer.pk, now)
    _change(uow, now, program, ladder, customer, ladder.get(tier_id), "manual", value, ctx.actor,
            manual_until=until, evaluate_at=None)
    return tier_status(uow, clock, program_id, customer_id)


@dataclass(frozen=True, slots=True)
class TierStatus:
    customer_id: str
    tier: dict[str, Any] | None
    metric: str
    window: dict[str, Any]
    progress: int
    next_tier: dict[str, Any] | None
    needed_for_next: int | None
    keep: dict[str, Any] | None
    manual_until: datetime | None
    history: list[dict[str, Any]]


def _tier_dict(tier: Tier) -> dict[str, Any]:
    return {"id": tier.id, "name": tier.name, "threshold": tier.threshold,
            "earn_multiplier_bps": tier.earn_multiplier_bps, "cashback_bonus_bps": tier.cashback_bonus_bps}


def tier_status(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> TierStatus:
    """Current tier, next tier and what is still needed to reach it, what keeping the current one
    needs and by when, and the recent changes with their reasons."""
    now = clock.now()
    program = uow.programs.get(program_id)
    tz = program.settings.timezone
    ladder = current_config(uow, program_id).ladder
    customer = require_customer(uow, program_id, customer_id)
    history = [{"from_tier": c["from_tier"], "to_tier": c["to_tier"], "reason": c["reason"], "metric": c["metric"],
                "changed_at": c["changed_at"], "manual_until": c["manual_until"]}
               for c in uow.tiers.changes(customer.pk, limit=20)]
    if not ladder.tiers:
        return TierStatus(customer_id, None, ladder.metric, {"kind": ladder.window, "from": None, "to": now}, 0,
                          None, None, None, None, history)
    start = window_start(ladder, now, tz)
    progress = metric_ending(uow, ladder, tz, customer.pk, now)
    current = ladder.get(customer.tier_id)
    rank = ladder.rank(current.id)
    nxt = ladder.tiers[rank + 1] if rank + 1 < len(ladder.tiers) else None
    keep = None
    if rank > 0 and customer.tier_manual_until is None and customer.tier_evaluate_at is not None:
        decided_at = decision_at(ladder, tz, customer.tier_evaluate_at)
        if ladder.window == "calendar_year":
            counted_from = period_start(customer.tier_evaluate_at - timedelta(microseconds=1), tz, "year")
        else:
            counted_from = decided_at - timedelta(days=ladder.window_days)
        # Purchases that will still be inside the window on the decision day.
        counted = metric(uow, ladder, customer.pk, counted_from, now + timedelta(microseconds=1))
        keep = {"threshold": current.threshold, "counted": counted, "needed": max(current.threshold - counted, 0),
                "by": decided_at}
    return TierStatus(
        customer_id=customer_id, tier=_tier_dict(current), metric=ladder.metric,
        window={"kind": ladder.window, "from": start, "to": now}, progress=progress,
        next_tier=_tier_dict(nxt) if nxt else None,
        needed_for_next=max(nxt.threshold - progress, 0) if nxt else None, keep=keep,
        manual_until=customer.tier_manual_until, history=history)


def run_tier_evaluations(uow_factory, clock: Clock, batch: int = 200,  # noqa: ANN001
                         is_retryable=None) -> dict[str, int]:  # noqa: ANN001
    """Evaluate every customer whose evaluation or override end has come; idempotent."""
    from .writes import transact

    now = clock.now()
    ctx = BookingContext(actor="job:run")
    done: dict[str, int] = {}
    after = 0
    while True:
        with uow_factory(write=False) as uow:
            due = uow.tiers.due_for_evaluation(now, after, batch)
        if not due:
            return done
        for customer_pk in due:
            after = customer_pk

            def work(uow: UnitOfWork, customer_pk: int = customer_pk) -> list[str]:
                reasons: list[str] = []
                for _ in range(50):  # catch up on every evaluation missed while the job did not run
                    customer = uow.customers.lock_by_pk(customer_pk)
                    program = uow.programs.get(customer.program_id)
                    reason = evaluate_customer(uow, now, program, customer, ctx)
                    if reason is None:
                        break
                    reasons.append(reason)
                return reasons

            for reason in transact(uow_factory, work, is_retryable):
                done[reason] = done.get(reason, 0) + 1
