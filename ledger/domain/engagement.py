"""Engagement: event types and rules, achievements and their progress, referral codes.

Progress is always recomputed from what still holds (purchases net of refunds, stored events),
never counted up incrementally, so a refund can only make an achievement stop holding, and the
reward follows.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Sequence

from .calendar import PERIODS, add_months, cap_errors, local_date, period_key, period_start
from .errors import ValidationFailed

BUILT_IN_EVENT_TYPES = ("survey_completed", "review_posted", "nps_response", "profile_completed", "app_checkin",
                        "social_share")
CUSTOM_EVENT = re.compile(r"^custom\.[a-z0-9_]{1,40}$")
ACHIEVEMENT_KINDS = ("count", "sum", "streak", "distinct")
ACHIEVEMENT_SOURCES = ("purchases", "events")
STREAK_PERIODS = ("week", "month")
REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


def is_event_type(value: str) -> bool:
    return value in BUILT_IN_EVENT_TYPES or bool(CUSTOM_EVENT.match(value))


def check_event(event_type: str, properties: dict[str, Any] | None) -> None:
    """Refuses an unknown type, and an nps_response without an integer `score` from 0 to 10."""
    if not is_event_type(event_type):
        raise ValidationFailed([{"field": "type", "message": "one of " + ", ".join(BUILT_IN_EVENT_TYPES)
                                 + ", or custom.<name> (a-z, 0-9, _)"}])
    if event_type == "nps_response":
        score = (properties or {}).get("score")
        if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
            raise ValidationFailed([{"field": "properties.score", "message": "an integer from 0 to 10"}])


def new_referral_code() -> str:
    """10 characters of a 32-letter alphabet: 50 bits, not guessable, easy to read aloud."""
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(10))


def normalise_email(email: str | None) -> str | None:
    """Lower case, and for the local part: no dots and no +tag (the usual aliases of one mailbox)."""
    if not email or "@" not in email:
        return None
    local, domain = email.strip().lower().rsplit("@", 1)
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def normalise_phone(phone: str | None) -> str | None:
    digits = re.sub(r"\D", "", phone or "")
    return digits[-9:] if len(digits) >= 6 else None  # the national number, whatever the prefix


@dataclass(frozen=True, slots=True)
class EventRule:
    """Points for an event type, optionally at most `cap_points` per customer per local `cap_period`."""

    id: str
    event_type: str
    points: int
    name: str = ""
    cap_points: int | None = None
    cap_period: str | None = None

    def __post_init__(self) -> None:
        errors = []
        if not is_event_type(self.event_type):
            errors.append({"field": "event_type", "message": "not a known event type (or custom.<name>)"})
        errors += cap_errors(self.cap_points, self.cap_period)
        if errors:
            raise ValidationFailed(errors)


@dataclass(frozen=True, slots=True)
class Achievement:
    """A badge for something a customer did, with an optional points reward.

    - count: `threshold` purchases (or events of `event_type`) within the window;
    - sum: spend of at least `threshold` minor units (purchases net of refunds) within the window;
    - streak: a purchase (or an event of `event_type`, e.g. app_checkin) in each of `threshold`
      consecutive local weeks or months (`period`), ending with the current one;
    - distinct: purchases in `threshold` distinct categories within the window.
    The window is the local calendar `window` (week, month, year) or, when None, all time.
    Once-only achievements are earned once; repeatable ones once per window (per streak period).
    """

    id: str
    name: str
    kind: str
    threshold: int
    source: str = "purchases"
    event_type: str | None = None
    window: str | None = None
    period: str | None = None
    reward_points: int = 0
    repeatable: bool = False

    def __post_init__(self) -> None:
        errors = []
        if self.kind not in ACHIEVEMENT_KINDS:
            errors.append({"field": "kind", "message": f"must be one of {', '.join(ACHIEVEMENT_KINDS)}"})
        if self.source not in ACHIEVEMENT_SOURCES:
            errors.append({"field": "source", "message": "purchases or events"})
        if self.source == "events" and (self.event_type is None or not is_event_type(self.event_type)):
            errors.append({"field": "event_type", "message": "an achievement on events names a known event type"})
        if self.source == "events" and self.kind in ("sum", "distinct"):
            errors.append({"field": "kind", "message": "sum and distinct count purchases"})
        if self.kind == "streak" and self.period not in STREAK_PERIODS:
            errors.append({"field": "period", "message": "a streak counts weeks or months"})
        if self.kind != "streak" and self.window is not None and self.window not in PERIODS:
            errors.append({"field": "window", "message": f"must be one of {', '.join(PERIODS)}, or null for all time"})
        if self.threshold < 1:
            errors.append({"field": "threshold", "message": "must be at least 1"})
        if errors:
            raise ValidationFailed(errors)

    def occasion(self, at: datetime, tz: str) -> str:
        """What the achievement is earned for: once ever, or the window (streak: the period) containing `at`."""
        if not self.repeatable:
            return "once"
        if self.kind == "streak":
            return period_key(at, tz, self.period or "week")
        return period_key(at, tz, self.window) if self.window else "once"

    def window_bounds(self, at: datetime, tz: str) -> tuple[datetime | None, datetime | None]:
        """[start, end) of what counts toward the occasion containing `at` (None: unbounded)."""
        from .calendar import period_end
        if self.kind == "streak":
            return None, period_end(at, tz, self.period or "week")
        if self.window is None:
            return None, None
        return period_start(at, tz, self.window), period_end(at, tz, self.window)


@dataclass(frozen=True, slots=True)
class Activity:
    """One purchase (net of refunds) or event, as achievements see it."""

    at: datetime
    amount: int = 0  # net amount of a purchase
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    achievement: Achievement
    value: int
    target: int
    holds: bool
    occasion: str

    def describe(self) -> str:
        a = self.achievement
        unit = {"count": "purchases" if a.source == "purchases" else a.event_type or "events",
                "sum": "spent (minor units)", "distinct": "categories",
                "streak": f"{a.period}s in a row"}[a.kind]
        when = f" this {a.window}" if a.window and a.kind != "streak" else ""
        return f"{min(self.value, self.target)} of {self.target} {unit}{when}"


def progress(achievement: Achievement, items: Sequence[Activity], at: datetime, tz: str) -> Progress:
    """How far `items` (already restricted to what counts: net of refunds, of the right source) go
    toward the occasion of `achievement` containing `at`."""
    start, end = achievement.window_bounds(at, tz)
    inside = [i for i in items if (start is None or i.at >= start) and (end is None or i.at < end)]
    if achievement.kind == "count":
        value = len(inside)
    elif achievement.kind == "sum":
        value = sum(i.amount for i in inside)
    elif achievement.kind == "distinct":
        value = len({c for i in inside for c in i.categories})
    else:
        value = _streak(achievement.period or "week", inside, at, tz)
    return Progress(achievement, value, achievement.threshold, value >= achievement.threshold,
                    achievement.occasion(at, tz))


def _streak(period: str, items: Sequence[Activity], at: datetime, tz: str) -> int:
    """Consecutive local periods with at least one item, ending with the period containing `at`."""
    active = {period_key(i.at, tz, period) for i in items}
    day = local_date(at, tz)
    length = 0
    while True:
        if period_key(_at_local(day, tz), tz, period) not in active:
            return length
        length += 1
        day = day - timedelta(days=7) if period == "week" else add_months(day.replace(day=1), -1)


def _at_local(day: date, tz: str) -> datetime:
    from .calendar import start_of_local_day
    return start_of_local_day(day, tz)
