"""Referrals that resist abuse.

Every customer has a referral code. A referee names a code at enrolment or on their first purchase;
guards refuse the customer's own code (or one whose owner shares their normalised email or phone),
a circle (the code's owner was referred, directly or not, by this customer), a code given after
the referee has bought, and a blocked code owner. The referee's first purchase of at least
`referral_min_purchase` qualifies the referral: unless the referrer already has `referral_cap`
rewarded referrals in the local period (status `capped`, nothing rewarded), the referrer's reward
is booked `pending` until that purchase's return window has passed, and the referee's welcome
reward is usable at once (`on_first_order`) or after the window. A refund inside the window that
takes the purchase below the minimum reverses both (status `reversed`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.calendar import period_end, period_start
from ..domain.customers import Customer
from ..domain.engagement import normalise_email, normalise_phone
from ..domain.errors import (
    AlreadyReferred, CircularReferral, CustomerBlocked, RefereeAlreadyPurchased, SelfReferral, UnknownReferralCode,
)
from ..domain.programs import Program
from ..domain.transactions import Reference
from .customers import require_customer
from .ports import BookingContext, UnitOfWork
from .rewards import grant, take_back


def register(uow: UnitOfWork, now: datetime, program: Program, referee: Customer, code: str) -> Customer:
    """Record that `referee` (locked) was referred by the owner of `code`. Naming the same code again is a no-op.

    Registrations of a program are serialised (the program row's lock, rare and short): two
    concurrent registrations could otherwise each miss the other's link and close a circle."""
    uow.programs.lock(program.id)
    referrer = uow.customers.by_referral_code(program.id, code.strip().upper())
    if referrer is None:
        raise UnknownReferralCode(f"no customer of this program has the referral code {code!r}")
    existing = uow.referrals.of_referee(referee.pk)
    if existing is not None:
        if existing["referrer_pk"] == referrer.pk:
            return referee
        raise AlreadyReferred("this customer was already referred with another code")
    if referrer.pk == referee.pk:
        raise SelfReferral("a customer cannot use their own referral code")
    for normalise, field in ((normalise_email, "email"), (normalise_phone, "phone")):
        mine, theirs = normalise(getattr(referee, field)), normalise(getattr(referrer, field))
        if mine is not None and mine == theirs:
            raise SelfReferral(f"the code's owner has the same {field} as this customer")
    ancestor, seen = referrer, set()
    while ancestor.referred_by_pk is not None and ancestor.pk not in seen:
        seen.add(ancestor.pk)
        if ancestor.referred_by_pk == referee.pk:
            raise CircularReferral("the code's owner was referred by this customer")
        ancestor = uow.customers.by_pk(ancestor.referred_by_pk)
    if referrer.status == "blocked":
        raise CustomerBlocked("the owner of this referral code is blocked")
    if uow.earning.purchase_span(referee.pk, now + timedelta(days=36_500))[0] is not None:
        raise RefereeAlreadyPurchased("a referral code must be given before the customer's first purchase")
    uow.referrals.add(program_id=program.id, referrer_pk=referrer.pk, referee_pk=referee.pk, code=referrer.referral_code,
                      status="registered", created_at=now, updated_at=now)
    return uow.customers.update(referee, {"referred_by_pk": referrer.pk}, now)


def qualify(uow: UnitOfWork, now: datetime, program: Program, referee: Customer, purchase_pk: int, order_id: str,
            amount: int, occurred_at: datetime, ctx: BookingContext) -> list[dict[str, Any]]:
    """Reward a registered referral on the referee's first purchase that reaches the minimum.
    Returns the rewards triggered, for the purchase answer."""
    referral = uow.referrals.of_referee(referee.pk)
    settings = program.settings
    if referral is None or referral["status"] != "registered" or amount < settings.referral_min_purchase:
        return []
    referrer = uow.customers.lock_by_pk(referral["referrer_pk"])  # after the referee's lock: always in that order
    window_end = occurred_at + timedelta(days=settings.return_window_days)
    if referrer.status == "blocked":
        uow.referrals.update(referral["id"], status="reversed", reason="referrer_blocked", purchase_id=purchase_pk,
                             qualified_at=occurred_at, updated_at=now)
        return [{"role": "referrer", "customer_id": referrer.customer_id, "status": "reversed", "points": 0,
                 "cashback": 0, "available_at": None}]
    if settings.referral_cap is not None:
        period = settings.referral_cap_period
        tz = settings.timezone
        rewarded = uow.referrals.rewarded_between(referrer.pk, period_start(occurred_at, tz, period),
                                                  period_end(occurred_at, tz, period))
        if rewarded >= settings.referral_cap:
            uow.referrals.update(referral["id"], status="capped", purchase_id=purchase_pk, qualified_at=occurred_at,
                                 updated_at=now)
            return [{"role": "referrer", "customer_id": referrer.customer_id, "status": "capped", "points": 0,
                     "cashback": 0, "available_at": None}]
    reference = Reference("referral", referee.customer_id)
    triggered = []
    grant(uow, now, program, referrer, ctx, type_="referral_reward", reference=reference, source="referral",
          points=settings.referrer_reward_points, cashback=settings.referrer_reward_cashback,
          occurred_at=occurred_at, pending_until=window_end, release_purchase_pk=purchase_pk,
          description=describe.referral_reward("referrer", settings.referrer_reward_points,
                                               settings.referrer_reward_cashback, settings.currency,
                                               referee.display_name or "a friend", order_id, window_end),
          metadata={"role": "referrer", "referee": referee.customer_id, "order_id": order_id})
    if settings.referrer_reward_points or settings.referrer_reward_cashback:
        triggered.append({"role": "referrer", "customer_id": referrer.customer_id, "status": "pending",
                          "points": settings.referrer_reward_points, "cashback": settings.referrer_reward_cashback,
                          "available_at": window_end})
    at_once = settings.referee_reward_timing == "on_first_order"
    grant(uow, now, program, referee, ctx, type_="referral_reward", reference=reference, source="referral",
          points=settings.referee_reward_points, cashback=settings.referee_reward_cashback, occurred_at=occurred_at,
          pending_until=None if at_once else window_end, release_purchase_pk=purchase_pk,
          description=describe.referral_reward("referee", settings.referee_reward_points,
                                               settings.referee_reward_cashback, settings.currency,
                                               referrer.display_name or "a friend", order_id,
                                               None if at_once else window_end),
          metadata={"role": "referee", "referrer": referrer.customer_id, "order_id": order_id})
    if settings.referee_reward_points or settings.referee_reward_cashback:
        triggered.append({"role": "referee", "customer_id": referee.customer_id,
                          "status": "available" if at_once else "pending", "points": settings.referee_reward_points,
                          "cashback": settings.referee_reward_cashback, "available_at": now if at_once else window_end})
    uow.referrals.update(referral["id"], status="purchased", purchase_id=purchase_pk, qualified_at=occurred_at,
                         rewarded_at=window_end, referrer_points=settings.referrer_reward_points,
                         referrer_cashback=settings.referrer_reward_cashback,
                         referee_points=settings.referee_reward_points, referee_cashback=settings.referee_reward_cashback,
                         updated_at=now)
    return triggered


def reverse_after_refund(uow: UnitOfWork, now: datetime, program: Program, referee: Customer,
                         purchase: dict[str, Any], net_amount: int, ctx: BookingContext) -> None:
    """A refund inside the qualifying purchase's window that takes it below the minimum (or to
    nothing) reverses both rewards; after the window the rewards stand."""
    referral = uow.referrals.for_purchase(purchase["id"])
    if referral is None or referral["status"] != "purchased" or now >= referral["rewarded_at"]:
        return
    if net_amount >= max(program.settings.referral_min_purchase, 1):
        return
    referrer = uow.customers.lock_by_pk(referral["referrer_pk"])
    reference = Reference("referral", referee.customer_id)
    for role, customer in (("referrer", referrer), ("referee", referee)):
        points, cashback = referral[f"{role}_points"], referral[f"{role}_cashback"]
        if not points and not cashback:
            continue
        take_back(uow, now, program, customer, ctx, type_="referral_reversal", reference=reference, source="referral",
                  points=points, cashback=cashback,
                  pending_releases=uow.releases.unreleased_for_purchase(purchase["id"], "referral", customer.pk),
                  description=describe.referral_reversed(role, points, cashback, program.settings.currency,
                                                         purchase["order_id"]))
    uow.referrals.update(referral["id"], status="reversed", reason="refunded", updated_at=now)


def status_of(row: dict[str, Any], now: datetime) -> str:
    """`purchased` becomes `rewarded` once the qualifying purchase's window has passed."""
    if row["status"] == "purchased" and row["rewarded_at"] is not None and row["rewarded_at"] <= now:
        return "rewarded"
    return row["status"]


@dataclass(frozen=True, slots=True)
class ReferralCard:
    customer_id: str
    code: str
    share_text: str
    referred_by: str | None
    referrer_reward: dict[str, int]
    referee_reward: dict[str, int]


def referral_card(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> ReferralCard:
    program = uow.programs.get(program_id)
    customer = require_customer(uow, program_id, customer_id)
    s = program.settings
    gift = []
    if s.referee_reward_points:
        gift.append(describe.points(s.referee_reward_points))
    if s.referee_reward_cashback:
        gift.append(f"{describe.money(s.referee_reward_cashback, s.currency)} store credit")
    offer = f" and get {' and '.join(gift)}" if gift else ""
    text = f"Join {s.name} with my code {customer.referral_code}{offer}."
    referred_by = uow.customers.by_pk(customer.referred_by_pk).customer_id if customer.referred_by_pk else None
    return ReferralCard(customer_id=customer_id, code=customer.referral_code or "", share_text=text,
                        referred_by=referred_by,
                        referrer_reward={"points": s.referrer_reward_points, "cashback": s.referrer_reward_cashback},
                        referee_reward={"points": s.referee_reward_points, "cashback": s.referee_reward_cashback})


def referrals_of(uow: UnitOfWork, clock: Clock, program_id: str, customer_id: str) -> list[dict[str, Any]]:
    now = clock.now()
    customer = require_customer(uow, program_id, customer_id)
    return [{"referee_id": r["referee_id"], "status": status_of(r, now), "reason": r["reason"],
             "registered_at": r["created_at"], "qualified_at": r["qualified_at"], "rewarded_at": r["rewarded_at"],
             "referrer_reward": {"points": r["referrer_points"], "cashback": r["referrer_cashback"]},
             "referee_reward": {"points": r["referee_points"], "cashback": r["referee_cashback"]}}
            for r in uow.referrals.of_referrer(customer.pk)]
