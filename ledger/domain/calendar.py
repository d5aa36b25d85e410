"""Business days in the program's timezone: a day ends at local midnight, DST included.

Every function takes and returns aware instants; local dates never leave this module unlabelled.
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "year")


def cap_errors(cap_points: int | None, cap_period: str | None) -> list[dict[str, str]]:
    """What is wrong with a cap: its points and period go together, and the period is a local one."""
    errors = []
    if (cap_points is None) != (cap_period is None):
        errors.append({"field": "cap_period", "message": "cap_points and cap_period go together"})
    if cap_period is not None and cap_period not in PERIODS:
        errors.append({"field": "cap_period", "message": f"must be one of {', '.join(PERIODS)}"})
    return errors


def local_date(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()


def start_of_local_day(day: date, tz: str) -> datetime:
    """The UTC instant of local midnight at the start of `day`."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def end_of_local_day(day: date, tz: str) -> datetime:
    """The UTC instant at which `day` ends: the next local midnight (23 or 25 hours later across DST)."""
    return start_of_local_day(day + timedelta(days=1), tz)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (31 Jan + 1 month = 28 or 29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def last_day_of_month(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def period_start(instant: datetime, tz: str, period: str) -> datetime:
    """Start (UTC) of the local calendar day, ISO week (Monday), month or year containing `instant`."""
    day = local_date(instant, tz)
    if period == "day":
        first = day
    elif period == "week":
        first = day - timedelta(days=day.weekday())
    elif period == "month":
        first = day.replace(day=1)
    elif period == "year":
        first = day.replace(month=1, day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return start_of_local_day(first, tz)


def period_end(instant: datetime, tz: str, period: str) -> datetime:
    """Start (UTC) of the local period after the one containing `instant`."""
    start = period_start(instant, tz, period)
    day = local_date(start, tz)
    if period == "day":
        following = day + timedelta(days=1)
    elif period == "week":
        following = day + timedelta(days=7)
    elif period == "month":
        following = add_months(day, 1)
    else:
        following = day.replace(year=day.year + 1)
    return start_of_local_day(following, tz)


def period_key(instant: datetime, tz: str, period: str) -> str:
    """A label of the local period containing `instant`: 2026-11-26, 2026-W48, 2026-11, 2026."""
    day = local_date(instant, tz)
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    return str(day.year)


def birthday_month(birthday: str | None) -> int | None:
    """The month of a birthday stored as YYYY-MM-DD or --MM-DD (year unknown); None if absent."""
    if not birthday:
        return None
    try:
        return int(birthday[-5:-3])
    except ValueError:
        return None
