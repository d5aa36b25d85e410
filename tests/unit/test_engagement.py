"""Event types, referral identity checks, achievements' progress and streaks: pure domain."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ledger.domain.engagement import (
    REFERRAL_ALPHABET, Achievement, Activity, check_event, is_event_type, new_referral_code, normalise_email,
    normalise_phone, progress,
)
from ledger.domain.errors import ValidationFailed

PARIS = "Europe/Paris"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def test_event_types_and_nps_scores():
    assert is_event_type("review_posted") and is_event_type("custom.store_visit")
    assert not is_event_type("custom.") and not is_event_type("custom.Bad-Name") and not is_event_type("purchase")
    check_event("nps_response", {"score": 0})
    check_event("nps_response", {"score": 10})
    for bad in ({}, {"score": 11}, {"score": "9"}, {"score": True}, {"score": 9.5}):
        with pytest.raises(ValidationFailed):
            check_event("nps_response", bad)


def test_referral_codes_and_identity_normalisation():
    code = new_referral_code()
    assert len(code) == 10 and set(code) <= set(REFERRAL_ALPHABET)
    assert normalise_email("Ana.Smith+shop@Example.COM") == normalise_email("anasmith@example.com")
    assert normalise_email("ana@example.com") != normalise_email("ana@example.org")
    assert normalise_phone("+33 6 12 34 56 78") == normalise_phone("06.12.34.56.78")
    assert normalise_phone("12") is None and normalise_email("not an email") is None


def test_count_sum_and_distinct_within_a_local_month():
    items = [Activity(at("2026-11-30T23:30:00+00:00"), 1_000, ("shoes",)),  # 1 December in Paris
             Activity(at("2026-12-05T10:00:00+00:00"), 2_000, ("food",)),
             Activity(at("2026-11-20T10:00:00+00:00"), 5_000, ("toys",))]
    now = at("2026-12-10T12:00:00+00:00")
    count = Achievement(id="c", name="Regular", kind="count", threshold=2, window="month", repeatable=True)
    state = progress(count, items, now, PARIS)
    assert (state.value, state.holds, state.occasion) == (2, True, "2026-12")
    assert state.describe() == "2 of 2 purchases this month"
    spend = Achievement(id="s", name="Big spender", kind="sum", threshold=3_001, window="month")
    assert progress(spend, items, now, PARIS).value == 3_000 and not progress(spend, items, now, PARIS).holds
    distinct = Achievement(id="d", name="Explorer", kind="distinct", threshold=3)
    assert progress(distinct, items, now, PARIS).value == 3  # all time: shoes, food, toys


def test_weekly_streak_breaks_on_a_local_week_without_activity():
    weekly = Achievement(id="w", name="Three weeks", kind="streak", threshold=3, period="week")
    # Paris weeks: 16-22 Nov, 23-29 Nov, 30 Nov-6 Dec. Sunday 29 Nov 23:30Z is already Monday 30 Nov in Paris.
    items = [Activity(at("2026-11-18T12:00:00+00:00")), Activity(at("2026-11-25T12:00:00+00:00")),
             Activity(at("2026-11-29T23:30:00+00:00"))]
    state = progress(weekly, items, at("2026-12-02T12:00:00+00:00"), PARIS)
    assert (state.value, state.holds) == (3, True)
    # Without the 25 November purchase the week of 23-29 November is empty: the streak is 1.
    assert progress(weekly, [items[0], items[2]], at("2026-12-02T12:00:00+00:00"), PARIS).value == 1
    monthly = Achievement(id="m", name="Every month", kind="streak", threshold=2, period="month", repeatable=True)
    state = progress(monthly, [Activity(at("2026-10-31T23:30:00+00:00")), Activity(at("2026-12-01T12:00:00+00:00"))],
                     at("2026-12-01T12:00:00+00:00"), PARIS)
    assert (state.value, state.occasion) == (2, "2026-12")  # 31 Oct 23:30Z is November in Paris


def test_invalid_achievements_are_refused():
    for bad in (dict(kind="streak", threshold=2), dict(kind="sum", threshold=1, source="events", event_type="app_checkin"),
                dict(kind="count", threshold=0), dict(kind="count", threshold=1, source="events")):
        with pytest.raises(ValidationFailed):
            Achievement(id="x", name="x", **bad)
