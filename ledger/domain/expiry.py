"""When points expire. Days end at midnight in the program's timezone, DST included."""
from __future__ import annotations

from datetime import datetime, timedelta

from .calendar import add_months, end_of_local_day, last_day_of_month, local_date
from .programs import ProgramSettings


def lot_expires_at(settings: ProgramSettings, available_at: datetime) -> datetime | None:
    """Under fixed expiry: the end of the local day `points_life_days` (or `points_life_months`) after
    the day the lot became available, or the end of that month. None under other policies."""
    if settings.points_expiry != "fixed":
        return None
    day = local_date(available_at, settings.timezone)
    if settings.points_life_days is not None:
        last = day + timedelta(days=settings.points_life_days)
    else:
        last = add_months(day, settings.points_life_months or 0)
    if settings.points_life_end_of_month:
        last = last_day_of_month(last)
    return end_of_local_day(last, settings.timezone)


def inactivity_expiry(settings: ProgramSettings, last_activity: datetime) -> datetime | None:
    """Under inactivity expiry: the end of the local day `inactivity_days` after the last purchase or redemption."""
    if settings.points_expiry != "inactivity" or settings.inactivity_days is None:
        return None
    day = local_date(last_activity, settings.timezone) + timedelta(days=settings.inactivity_days)
    return end_of_local_day(day, settings.timezone)


def reissued_expiry(settings: ProgramSettings, now: datetime) -> datetime:
    """Restored points whose lot already expired, under `reissue`: `reissue_days` from today, to the day's end."""
    return end_of_local_day(local_date(now, settings.timezone) + timedelta(days=settings.reissue_days),
                            settings.timezone)
