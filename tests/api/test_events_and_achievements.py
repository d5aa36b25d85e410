"""Engagement events, event rules with caps, achievements (badges, progress, rewards that follow
refunds) and the leaderboard, through the API.

The clock is fixed at 2026-11-26T12:00Z, a Thursday in ISO week 48. Programs created here earn
1 point per euro (100 minor units), no cashback, points available at once. In Europe/Paris,
November is UTC+1 (summer time ended on 2026-10-25), so 23:30Z is already the next local day.
Every expected number is worked out by hand in the comments. Every test that writes ends with
`verify()`; every refused request is checked to write nothing (`row_counts`).
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import assert_problem, row_counts
from tests.helpers import account_total as _account_total, ledger_entries as _entries, transaction_legs as _legs

NOW = "2026-11-26T12:00:00+00:00"

BUILT_IN = {  # type -> properties sent with it
    "survey_completed": {"survey_id": "s-1"},
    "review_posted": {"rating": 5, "product": "boot"},
    "nps_response": {"score": 9},
    "profile_completed": None,
    "app_checkin": None,
    "social_share": {"network": "instagram"},
    "custom.webinar_attended": {"webinar": "w-1"},
}


# --------------------------------------------------------------------------- helpers


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _event(client: Any, program: Any, event_id: str, customer_id: str, type_: str, *,
           properties: dict | None = None, occurred_at: str | None = None,
           headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"event_id": event_id, "customer_id": customer_id, "type": type_}
    if properties is not None:
        body["properties"] = properties
    if occurred_at is not None:
        body["occurred_at"] = occurred_at
    return client.post("/v1/events", json=body, headers=program.headers("storefront", **(headers or {})))


def _rule(client: Any, program: Any, rule_id: str, event_type: str, points: int, **extra: Any) -> dict:
    return _ok(client.put(f"/v1/event-rules/{rule_id}", json={"event_type": event_type, "points": points, **extra},
                          headers=program.headers("admin")), 200)


def _achievement(client: Any, program: Any, achievement_id: str, **body: Any) -> dict:
    return _ok(client.put(f"/v1/achievements/{achievement_id}", json=body, headers=program.headers("admin")), 200)


def _bought(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, **extra: Any) -> dict:
    return _ok(buy(program, order_id, customer_id, amount, **extra))


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None,
            lines: list[dict] | None = None) -> dict:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    if lines is not None:
        body["lines"] = lines
    return _ok(client.post(f"/v1/purchases/{order_id}/refunds", json=body, headers=program.headers("storefront")))





def _activity(client: Any, program: Any, customer_id: str, type_: str | None = None) -> list[dict]:
    items = _ok(client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app")),
                200)["items"]
    return [i for i in items if type_ is None or i["type"] == type_]


def _points(client: Any, program: Any, customer_id: str) -> dict[str, int]:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")), 200)["points"]


def _achievements(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/achievements", headers=program.headers("app")), 200)


def _progress(client: Any, program: Any, customer_id: str, achievement_id: str) -> dict:
    items = [p for p in _achievements(client, program, customer_id)["progress"]
             if p["achievement_id"] == achievement_id]
    assert len(items) == 1, items
    return items[0]


def _badges(client: Any, program: Any, customer_id: str) -> list[dict]:
    return _achievements(client, program, customer_id)["badges"]


def _unlocked(achievement_id: str, name: str, occasion: str, points: int) -> dict:
    return {"achievement_id": achievement_id, "name": name, "occasion": occasion, "points": points}


def _leaderboard(client: Any, program: Any, query: str = "period=month&limit=10") -> dict:
    return _ok(client.get(f"/v1/leaderboard?{query}", headers=program.headers("app")), 200)


def _bucket(available: int, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}


def _promotion_legs(customer_id: str, points: int) -> dict[str, int]:
    return {"house/points/issued/promotion": -points, f"customer/{customer_id}/points/available": points}


# --------------------------------------------------------------------------- event types


def test_every_built_in_type_and_a_custom_type_is_stored_with_nothing_awarded_without_rules(
        app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    before = row_counts(app)

    for index, (type_, properties) in enumerate(BUILT_IN.items()):
        data = _ok(_event(client, program, f"e-{index}", "c-1", type_, properties=properties))
        assert data["event_id"] == f"e-{index}"
        assert data["customer_id"] == "c-1"
        assert data["type"] == type_
        assert data["properties"] == properties
        assert data["points_awarded"] == 0
        assert data["rewards"] == []
        assert data["transaction_id"] is None
        assert data["badges_unlocked"] == []
        assert data["occurred_at"] == NOW and data["recorded_at"] == NOW
        assert data["balances"]["points"] == _bucket(0)

    after = row_counts(app)
    assert after["events"] == before["events"] + len(BUILT_IN)
    assert after["transactions"] == before["transactions"]
    assert after["entries"] == before["entries"]
    assert verify().entries == 0


def test_event_rules_award_points_for_each_type_dr_issued_promotion(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    expected: dict[str, int] = {}
    for index, type_ in enumerate(BUILT_IN):
        points = 10 * (index + 1)  # 10, 20, ..., 70
        rule = _rule(client, program, f"r-{index}", type_, points, name=f"Thanks for {type_}")
        assert (rule["id"], rule["event_type"], rule["points"]) == (f"r-{index}", type_, points)
        assert (rule["cap_points"], rule["cap_period"]) == (None, None)
        expected[type_] = points

    total = 0
    for index, (type_, properties) in enumerate(BUILT_IN.items()):
        data = _ok(_event(client, program, f"e-{index}", "c-1", type_, properties=properties))
        points = expected[type_]
        total += points
        assert data["points_awarded"] == points
        assert data["rewards"] == [{"rule_id": f"r-{index}", "name": f"Thanks for {type_}", "points": points,
                                    "capped": False}]
        assert data["transaction_id"] is not None
        assert _legs(client, program, data["transaction_id"]) == _promotion_legs("c-1", points)
        assert data["balances"]["points"] == _bucket(total)

    assert total == 280
    assert _points(client, program, "c-1") == _bucket(280)
    rewards = _activity(client, program, "c-1", "event_reward")
    assert sorted(i["reference"]["id"] for i in rewards) == [f"e-{i}" for i in range(len(BUILT_IN))]
    assert {i["reference"]["kind"] for i in rewards} == {"event"}
    descriptions = {i["reference"]["id"]: i["description"] for i in rewards}
    assert descriptions["e-0"] == "Earned 10 points for survey completed"
    assert descriptions["e-6"] == "Earned 70 points for webinar attended"
    assert _account_total(client, program, "house/points/issued/promotion") == -280
    assert verify().entries == 2 * len(BUILT_IN)


def test_event_rule_rejects_an_unknown_event_type_and_a_cap_without_period(app, client, make_program):
    program = make_program()
    before = row_counts(app)
    admin = program.headers("admin")
    assert_problem(client.put("/v1/event-rules/r-1", json={"event_type": "tweeted", "points": 5}, headers=admin),
                   422, "validation_error", "event_type")
    assert_problem(client.put("/v1/event-rules/r-1", json={"event_type": "app_checkin", "points": 5,
                                                           "cap_points": 10}, headers=admin),
                   422, "validation_error", "cap_period")
    assert row_counts(app) == before


# --------------------------------------------------------------------------- refused events


BAD_EVENTS = [  # (type, properties, the field named)
    ("tweet_posted", None, "type"),
    ("custom.", None, "type"),
    ("custom.Webinar", None, "type"),
    ("custom.a-b", None, "type"),
    ("Survey_completed", None, "type"),
    ("custom." + "a" * 41, None, "type"),
    ("nps_response", None, "properties.score"),
    ("nps_response", {}, "properties.score"),
    ("nps_response", {"score": 11}, "properties.score"),
    ("nps_response", {"score": -1}, "properties.score"),
    ("nps_response", {"score": "7"}, "properties.score"),
    ("nps_response", {"score": 7.5}, "properties.score"),
    ("nps_response", {"score": True}, "properties.score"),
    ("nps_response", {"score": None}, "properties.score"),
]


def test_bad_type_or_nps_score_is_a_validation_error_and_writes_nothing(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-nps", "nps_response", 5)
    before = row_counts(app)

    for type_, properties, field in BAD_EVENTS:
        assert_problem(_event(client, program, "e-1", "c-1", type_, properties=properties), 422,
                       "validation_error", field)
        assert row_counts(app) == before, (type_, properties)

    # The refusals claimed nothing: the same event_id is free for a valid event; 0 and 10 are valid scores.
    data = _ok(_event(client, program, "e-1", "c-1", "nps_response", properties={"score": 0}))
    assert (data["points_awarded"], data["properties"]) == (5, {"score": 0})
    data = _ok(_event(client, program, "e-2", "c-1", "nps_response", properties={"score": 10, "comment": "ok"}))
    assert (data["points_awarded"], data["properties"]) == (5, {"score": 10, "comment": "ok"})
    verify()


def test_other_refused_events_write_nothing(app, client, make_program, enrol):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-1", "app_checkin", 5)
    before = row_counts(app)
    headers = program.headers("storefront")

    assert_problem(client.post("/v1/events", json={"event_id": "e-1", "type": "app_checkin"}, headers=headers),
                   422, "validation_error", "customer_id")
    assert_problem(client.post("/v1/events", json={"customer_id": "c-1", "type": "app_checkin"}, headers=headers),
                   422, "validation_error", "event_id")
    assert_problem(_event(client, program, "e-1", "nobody", "app_checkin"), 404, "customer_not_found")
    # More than 5 minutes ahead of the clock.
    assert_problem(_event(client, program, "e-1", "c-1", "app_checkin", occurred_at="2026-11-26T12:06:00Z"),
                   422, "validation_error", "occurred_at")
    # Only the storefront records events.
    response = client.post("/v1/events", json={"event_id": "e-1", "customer_id": "c-1", "type": "app_checkin"},
                           headers=program.headers("app"))
    assert_problem(response, 403, "forbidden")
    assert row_counts(app) == before


def test_blocked_customer_is_refused_with_customer_blocked_and_nothing_is_written(
        app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    enrol(program, "c-2")
    _rule(client, program, "r-1", "review_posted", 40)
    _ok(client.put("/v1/customers/c-1", json={"status": "blocked"}, headers=program.headers("admin")), 200)
    before = row_counts(app)

    assert_problem(_event(client, program, "e-1", "c-1", "review_posted"), 422, "customer_blocked")
    assert row_counts(app) == before
    assert _points(client, program, "c-1") == _bucket(0)

    # Nothing was claimed: the event_id is still free.
    data = _ok(_event(client, program, "e-1", "c-2", "review_posted"))
    assert data["points_awarded"] == 40
    assert verify().entries == 2


# --------------------------------------------------------------------------- idempotency


def test_replay_by_event_id_answers_byte_for_byte_and_books_once(app, client, make_program, enrol, clock, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-share", "social_share", 25)
    body = {"event_id": "e-1", "customer_id": "c-1", "type": "social_share",
            "properties": {"network": "instagram", "post": "p-9"}}
    headers = program.headers("storefront")

    first = client.post("/v1/events", json=body, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert "Idempotent-Replayed" not in first.headers
    assert first.get_json()["points_awarded"] == 25
    after_first = row_counts(app)

    # The same body (keys in another order) an hour later: the first answer, byte for byte.
    clock.advance(hours=1)
    reordered = {"properties": {"post": "p-9", "network": "instagram"}, "type": "social_share",
                 "customer_id": "c-1", "event_id": "e-1"}
    for again in (body, reordered):
        replay = client.post("/v1/events", json=again, headers=headers)
        assert replay.status_code == 201
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.get_data() == first.get_data()
    assert row_counts(app) == after_first

    # The same event_id with another body is a conflict, and writes nothing.
    for other in ({**body, "properties": {"network": "tiktok", "post": "p-9"}},
                  {**body, "type": "review_posted"},
                  {**body, "occurred_at": "2026-11-26T11:00:00Z"}):
        problem = assert_problem(client.post("/v1/events", json=other, headers=headers), 409, "duplicate_event")
        assert problem.get("key") == "e-1"
    assert row_counts(app) == after_first

    assert _points(client, program, "c-1") == _bucket(25)
    assert len(_activity(client, program, "c-1", "event_reward")) == 1
    assert verify().entries == 2


def test_the_same_event_id_is_a_conflict_for_another_customer(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    enrol(program, "c-2")
    _ok(_event(client, program, "e-1", "c-1", "app_checkin"))
    before = row_counts(app)
    assert_problem(_event(client, program, "e-1", "c-2", "app_checkin"), 409, "duplicate_event")
    assert row_counts(app) == before
    verify()


# --------------------------------------------------------------------------- caps


def test_cap_per_customer_per_local_day_in_paris(app, client, make_program, enrol, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    enrol(program, "c-2")
    _rule(client, program, "r-checkin", "app_checkin", 10, name="Daily check-in", cap_points=25, cap_period="day")

    # (occurred_at, points awarded, capped). Local day 24 November runs 23:00Z on the 23rd to
    # 23:00Z on the 24th: 10 + 10 + 5 = 25, then 0. 23:30Z on the 24th is 00:30 on the 25th in
    # Paris: a new day, 10 + 10 + 5 again. (A UTC day would have capped e-5.)
    plan = [
        ("e-1", "2026-11-24T08:00:00Z", 10, False),
        ("e-2", "2026-11-24T12:00:00Z", 10, False),
        ("e-3", "2026-11-24T22:30:00Z", 5, True),
        ("e-4", "2026-11-24T22:50:00Z", 0, True),
        ("e-5", "2026-11-24T23:30:00Z", 10, False),
        ("e-6", "2026-11-25T10:00:00Z", 10, False),
        ("e-7", "2026-11-25T20:00:00Z", 5, True),
        ("e-8", "2026-11-25T21:00:00Z", 0, True),
    ]
    total = 0
    for event_id, occurred_at, points, capped in plan:
        data = _ok(_event(client, program, event_id, "c-1", "app_checkin", occurred_at=occurred_at))
        total += points
        assert data["points_awarded"] == points, event_id
        assert data["rewards"] == [{"rule_id": "r-checkin", "name": "Daily check-in", "points": points,
                                    "capped": capped}], event_id
        assert data["occurred_at"].startswith(occurred_at[:19]), data["occurred_at"]
        if points:
            assert _legs(client, program, data["transaction_id"]) == _promotion_legs("c-1", points)
        else:
            assert data["transaction_id"] is None
        assert data["balances"]["points"]["available"] == total

    # The cap is per customer: c-2's first check-in of the 24th is not capped.
    other = _ok(_event(client, program, "e-9", "c-2", "app_checkin", occurred_at="2026-11-24T12:00:00Z"))
    assert (other["points_awarded"], other["rewards"][0]["capped"]) == (10, False)

    assert total == 50
    assert _points(client, program, "c-1") == _bucket(50)
    assert len(_activity(client, program, "c-1", "event_reward")) == 6
    assert verify().entries == 2 * 6 + 2


def test_two_rules_on_one_type_each_with_its_own_weekly_cap(client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "a-base", "social_share", 5, name="Share")
    _rule(client, program, "b-bonus", "social_share", 20, name="Share bonus", cap_points=30, cap_period="week")

    def rewards(base: int, bonus: int, capped: bool) -> list[dict]:
        return [{"rule_id": "a-base", "name": "Share", "points": base, "capped": False},
                {"rule_id": "b-bonus", "name": "Share bonus", "points": bonus, "capped": capped}]

    # Week 48: bonus 20, then 10 (30 - 20), then 0.
    first = _ok(_event(client, program, "e-1", "c-1", "social_share"))
    assert (first["points_awarded"], first["rewards"]) == (25, rewards(5, 20, False))
    assert _legs(client, program, first["transaction_id"]) == _promotion_legs("c-1", 25)
    second = _ok(_event(client, program, "e-2", "c-1", "social_share"))
    assert (second["points_awarded"], second["rewards"]) == (15, rewards(5, 10, True))
    third = _ok(_event(client, program, "e-3", "c-1", "social_share"))
    assert (third["points_awarded"], third["rewards"]) == (5, rewards(5, 0, True))
    assert _legs(client, program, third["transaction_id"]) == _promotion_legs("c-1", 5)
    # Sunday 22 November is week 47: a fresh cap.
    earlier = _ok(_event(client, program, "e-4", "c-1", "social_share", occurred_at="2026-11-22T12:00:00Z"))
    assert (earlier["points_awarded"], earlier["rewards"]) == (25, rewards(5, 20, False))

    assert _points(client, program, "c-1") == _bucket(25 + 15 + 5 + 25)
    verify()


def test_events_of_a_type_no_rule_rewards_are_stored_with_zero_points(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-survey", "survey_completed", 30)
    before = row_counts(app)

    data = _ok(_event(client, program, "e-1", "c-1", "review_posted", properties={"rating": 4}))
    assert (data["points_awarded"], data["rewards"], data["transaction_id"]) == (0, [], None)
    after = row_counts(app)
    assert after["events"] == before["events"] + 1
    assert (after["transactions"], after["entries"]) == (before["transactions"], before["entries"])

    # A rule deleted no longer rewards; the event is still stored.
    assert client.delete("/v1/event-rules/r-survey", headers=program.headers("admin")).status_code == 204
    data = _ok(_event(client, program, "e-2", "c-1", "survey_completed"))
    assert (data["points_awarded"], data["rewards"], data["transaction_id"]) == (0, [], None)
    assert row_counts(app)["events"] == before["events"] + 2
    assert verify().entries == 0


# --------------------------------------------------------------------------- achievements on purchases


def test_count_of_purchases_in_a_local_month_once_only(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    _achievement(client, program, "regular", name="Regular", kind="count", threshold=3, window="month",
                 reward_points=50)

    # 23:30Z on 31 October is 1 November in Paris: it counts for November; 22:30Z is still October.
    assert _bought(buy, program, "A-1", "c-1", 2_000, occurred_at="2026-10-31T23:30:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "A-2", "c-1", 2_000, occurred_at="2026-10-31T22:30:00Z")["badges_unlocked"] == []
    progress = _progress(client, program, "c-1", "regular")
    assert (progress["value"], progress["target"], progress["earned"]) == (1, 3, False)
    assert progress["text"] == "1 of 3 purchases this month"
    assert _bought(buy, program, "A-3", "c-1", 2_000, occurred_at="2026-11-10T10:00:00Z")["badges_unlocked"] == []
    assert _progress(client, program, "c-1", "regular")["text"] == "2 of 3 purchases this month"
    assert _badges(client, program, "c-1") == []

    third = _bought(buy, program, "A-4", "c-1", 2_000)
    assert third["badges_unlocked"] == [_unlocked("regular", "Regular", "once", 50)]
    assert third["balances"]["points"] == _bucket(4 * 20 + 50)
    # Once only: a fourth purchase this month unlocks nothing more.
    assert _bought(buy, program, "A-5", "c-1", 2_000)["badges_unlocked"] == []

    view = _achievements(client, program, "c-1")
    assert view["customer_id"] == "c-1"
    assert view["badges"] == [{"achievement_id": "regular", "name": "Regular", "occasion": "once",
                               "status": "earned", "points": 50, "earned_at": NOW, "revoked_at": None}]
    assert view["progress"] == [{"achievement_id": "regular", "name": "Regular", "kind": "count", "value": 4,
                                 "target": 3, "occasion": "once", "earned": True,
                                 "text": "3 of 3 purchases this month", "reward_points": 50}]
    rewards = _activity(client, program, "c-1", "achievement_reward")
    assert len(rewards) == 1
    assert rewards[0]["reference"] == {"kind": "achievement", "id": "regular:once"}
    assert rewards[0]["description"] == "Badge unlocked: Regular, 50 points"
    assert _legs(client, program, rewards[0]["transaction_id"]) == _promotion_legs("c-1", 50)
    assert _points(client, program, "c-1") == _bucket(5 * 20 + 50)
    verify()


def test_repeatable_once_per_window_and_once_only_side_by_side(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "monthly", name="Two a month", kind="count", threshold=2, window="month",
                 reward_points=20, repeatable=True)
    _achievement(client, program, "twice", name="Twice in a month", kind="count", threshold=2, window="month",
                 reward_points=7)

    assert _bought(buy, program, "O-1", "c-1", 1_000, occurred_at="2026-10-05T10:00:00Z")["badges_unlocked"] == []
    second = _bought(buy, program, "O-2", "c-1", 1_000, occurred_at="2026-10-06T10:00:00Z")
    assert second["badges_unlocked"] == [_unlocked("monthly", "Two a month", "2026-10", 20),
                                         _unlocked("twice", "Twice in a month", "once", 7)]
    assert _bought(buy, program, "O-3", "c-1", 1_000, occurred_at="2026-10-07T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "N-1", "c-1", 1_000, occurred_at="2026-11-02T10:00:00Z")["badges_unlocked"] == []
    november = buy(program, "N-2", "c-1", 1_000, occurred_at="2026-11-03T10:00:00Z")
    assert _ok(november)["badges_unlocked"] == [_unlocked("monthly", "Two a month", "2026-11", 20)]
    # A replayed purchase is the same answer and books no second reward.
    replay = buy(program, "N-2", "c-1", 1_000, occurred_at="2026-11-03T10:00:00Z")
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_data() == november.get_data()

    badges = _badges(client, program, "c-1")
    assert sorted((b["achievement_id"], b["occasion"], b["status"], b["points"]) for b in badges) == [
        ("monthly", "2026-10", "earned", 20), ("monthly", "2026-11", "earned", 20), ("twice", "once", "earned", 7)]
    monthly = _progress(client, program, "c-1", "monthly")
    assert (monthly["occasion"], monthly["earned"], monthly["text"]) == ("2026-11", True, "2 of 2 purchases this month")
    twice = _progress(client, program, "c-1", "twice")
    assert (twice["occasion"], twice["earned"]) == ("once", True)

    # 5 purchases of 10 points, rewards 20 + 7 + 20.
    assert _points(client, program, "c-1") == _bucket(50 + 47)
    assert len(_activity(client, program, "c-1", "achievement_reward")) == 3
    assert _account_total(client, program, "house/points/issued/promotion") == -47
    verify()


def test_sum_of_spend_progress_and_unlock(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "big", name="Big spender", kind="sum", threshold=10_000, reward_points=100)

    assert _bought(buy, program, "S-1", "c-1", 6_000)["badges_unlocked"] == []
    progress = _progress(client, program, "c-1", "big")
    assert (progress["value"], progress["text"]) == (6_000, "6000 of 10000 spent (minor units)")
    assert _bought(buy, program, "S-2", "c-1", 3_999)["badges_unlocked"] == []
    assert _progress(client, program, "c-1", "big")["text"] == "9999 of 10000 spent (minor units)"
    data = _bought(buy, program, "S-3", "c-1", 1)
    assert data["badges_unlocked"] == [_unlocked("big", "Big spender", "once", 100)]
    # 60 + 39 + 0 points from purchases, then 100 for the badge.
    assert data["balances"]["points"] == _bucket(199)
    verify()


def test_distinct_categories_follow_line_refunds(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "explorer", name="Explorer", kind="distinct", threshold=3, reward_points=30)

    first = _bought(buy, program, "D-1", "c-1", 7_500, lines=[
        {"sku": "boot", "category": "shoes", "quantity": 1, "unit_price": 5_000},
        {"sku": "cap", "category": "hats", "quantity": 2, "unit_price": 1_000},
        {"sku": "gift", "quantity": 1, "unit_price": 500},  # no category: counts for nothing
    ])
    assert (first["points_earned"], first["badges_unlocked"]) == (75, [])
    assert _progress(client, program, "c-1", "explorer")["text"] == "2 of 3 categories"
    # A second pair of shoes is no new category.
    assert _bought(buy, program, "D-2", "c-1", 1_000, lines=[
        {"sku": "sandal", "category": "shoes", "quantity": 1, "unit_price": 1_000}])["badges_unlocked"] == []
    third = _bought(buy, program, "D-3", "c-1", 3_000, lines=[
        {"sku": "tote", "category": "bags", "quantity": 1, "unit_price": 3_000}])
    assert third["badges_unlocked"] == [_unlocked("explorer", "Explorer", "once", 30)]
    assert _points(client, program, "c-1") == _bucket(75 + 10 + 30 + 30)  # 145

    # One cap of two returned: hats still count.
    refund = _refund(client, program, "D-1", "F-1", lines=[{"sku": "cap", "quantity": 1}])
    assert (refund["amount"], refund["points_reversed"]) == (1_000, 10)
    assert _badges(client, program, "c-1")[0]["status"] == "earned"
    # The other cap returned: no hats left, 2 of 3 categories, the badge and its 30 points go.
    refund = _refund(client, program, "D-1", "F-2", lines=[{"sku": "cap", "quantity": 1}])
    assert (refund["amount"], refund["points_reversed"]) == (1_000, 10)
    assert refund["balances"]["points"] == _bucket(145 - 10 - 10 - 30)
    badge = _badges(client, program, "c-1")[0]
    assert (badge["status"], badge["revoked_at"]) == ("revoked", NOW)
    assert _progress(client, program, "c-1", "explorer")["text"] == "2 of 3 categories"
    revoked = _activity(client, program, "c-1", "achievement_revoked")
    assert len(revoked) == 1
    assert _legs(client, program, revoked[0]["transaction_id"]) == {
        "house/points/issued/promotion": 30, "customer/c-1/points/available": -30}

    # A hat bought again earns the badge again.
    again = _bought(buy, program, "D-4", "c-1", 1_500, lines=[
        {"sku": "beanie", "category": "hats", "quantity": 1, "unit_price": 1_500}])
    assert again["badges_unlocked"] == [_unlocked("explorer", "Explorer", "once", 30)]
    assert again["balances"]["points"] == _bucket(95 + 15 + 30)
    verify()


def test_streak_of_weeks_breaks_at_a_week_boundary_decided_by_local_time(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-break")
    enrol(program, "c-bridge")
    _achievement(client, program, "weekly", name="Three weeks running", kind="streak", threshold=3,
                 period="week", reward_points=30)

    # Sunday 22 November 23:30Z is Monday 23 November 00:30 in Paris: week 48, not 47. Weeks 46 and
    # 48 have purchases, week 47 none: the streak is 1 (in UTC it would be 3).
    for order_id, at in (("B-1", "2026-11-12T10:00:00Z"), ("B-2", "2026-11-22T23:30:00Z"), ("B-3", None)):
        extra = {"occurred_at": at} if at else {}
        assert _bought(buy, program, order_id, "c-break", 1_000, **extra)["badges_unlocked"] == []
    progress = _progress(client, program, "c-break", "weekly")
    assert (progress["value"], progress["earned"], progress["text"]) == (1, False, "1 of 3 weeks in a row")

    # Sunday 15 November 23:30Z is Monday 16 November in Paris: week 47 bridges 46 and 48.
    assert _bought(buy, program, "G-1", "c-bridge", 1_000, occurred_at="2026-11-10T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "G-2", "c-bridge", 1_000, occurred_at="2026-11-15T23:30:00Z")["badges_unlocked"] == []
    assert _progress(client, program, "c-bridge", "weekly")["value"] == 0  # nothing yet in week 48
    third = _bought(buy, program, "G-3", "c-bridge", 1_000)
    assert third["badges_unlocked"] == [_unlocked("weekly", "Three weeks running", "once", 30)]
    progress = _progress(client, program, "c-bridge", "weekly")
    assert (progress["value"], progress["earned"], progress["text"]) == (3, True, "3 of 3 weeks in a row")
    assert _points(client, program, "c-bridge") == _bucket(30 + 30)

    # Refunding the week-47 purchase breaks the streak: the badge and its reward go.
    refund = _refund(client, program, "G-2", "F-1")
    assert refund["points_reversed"] == 10
    assert refund["balances"]["points"] == _bucket(60 - 10 - 30)
    assert [(b["status"], b["points"]) for b in _badges(client, program, "c-bridge")] == [("revoked", 30)]
    assert _progress(client, program, "c-bridge", "weekly")["text"] == "1 of 3 weeks in a row"
    assert _badges(client, program, "c-break") == []
    verify()


def test_a_backdated_purchase_that_completes_a_streak_ending_this_week_unlocks_it(
        client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    _achievement(client, program, "weekly", name="Three weeks running", kind="streak", threshold=3,
                 period="week", reward_points=30)
    assert _bought(buy, program, "G-1", "c-1", 1_000, occurred_at="2026-11-10T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "G-3", "c-1", 1_000)["badges_unlocked"] == []  # week 48; week 47 empty
    # Week 47's purchase arrives late (an offline till syncing): weeks 46, 47 and 48 now all hold a
    # purchase, a streak of 3 ending with the current week.
    late = _bought(buy, program, "G-2", "c-1", 1_000, occurred_at="2026-11-18T10:00:00Z")
    progress = _progress(client, program, "c-1", "weekly")
    assert (progress["value"], progress["text"]) == (3, "3 of 3 weeks in a row")
    assert late["badges_unlocked"] == [_unlocked("weekly", "Three weeks running", "once", 30)]
    assert progress["earned"] is True
    assert _points(client, program, "c-1") == _bucket(30 + 30)
    verify()


def test_repeatable_streak_is_earned_once_per_week(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "two-weeks", name="Two weeks running", kind="streak", threshold=2,
                 period="week", reward_points=5, repeatable=True)

    assert _bought(buy, program, "W-1", "c-1", 1_000, occurred_at="2026-11-11T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "W-2", "c-1", 1_000, occurred_at="2026-11-18T10:00:00Z")["badges_unlocked"] == [
        _unlocked("two-weeks", "Two weeks running", "2026-W47", 5)]
    assert _bought(buy, program, "W-3", "c-1", 1_000, occurred_at="2026-11-19T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "W-4", "c-1", 1_000)["badges_unlocked"] == [
        _unlocked("two-weeks", "Two weeks running", "2026-W48", 5)]
    assert _bought(buy, program, "W-5", "c-1", 1_000)["badges_unlocked"] == []
    progress = _progress(client, program, "c-1", "two-weeks")
    assert (progress["occasion"], progress["value"], progress["earned"]) == ("2026-W48", 3, True)
    assert progress["text"] == "2 of 2 weeks in a row"
    assert _points(client, program, "c-1") == _bucket(50 + 10)
    verify()


# --------------------------------------------------------------------------- achievements on events


def test_count_of_app_checkin_events_in_a_week(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-checkin", "app_checkin", 2)
    _achievement(client, program, "checkins", name="Regular visitor", kind="count", threshold=3, window="week",
                 source="events", event_type="app_checkin", reward_points=15)

    # Last week's check-in (Sunday 22 November, week 47) does not count for this week.
    assert _ok(_event(client, program, "e-0", "c-1", "app_checkin",
                      occurred_at="2026-11-22T12:00:00Z"))["badges_unlocked"] == []
    assert _ok(_event(client, program, "e-1", "c-1", "app_checkin"))["badges_unlocked"] == []
    assert _ok(_event(client, program, "e-2", "c-1", "app_checkin"))["badges_unlocked"] == []
    # Other types and purchases do not count.
    assert _ok(_event(client, program, "e-x", "c-1", "social_share"))["badges_unlocked"] == []
    assert _bought(buy, program, "P-1", "c-1", 1_000)["badges_unlocked"] == []
    progress = _progress(client, program, "c-1", "checkins")
    assert (progress["value"], progress["text"]) == (2, "2 of 3 app_checkin this week")

    third = _ok(_event(client, program, "e-3", "c-1", "app_checkin"))
    assert third["points_awarded"] == 2
    assert third["badges_unlocked"] == [_unlocked("checkins", "Regular visitor", "once", 15)]
    # 4 check-ins of 2 points, 10 for the purchase, 15 for the badge.
    assert third["balances"]["points"] == _bucket(8 + 10 + 15)
    assert _ok(_event(client, program, "e-4", "c-1", "app_checkin"))["badges_unlocked"] == []
    reward = _activity(client, program, "c-1", "achievement_reward")
    assert [r["reference"] for r in reward] == [{"kind": "achievement", "id": "checkins:once"}]
    assert _legs(client, program, reward[0]["transaction_id"]) == _promotion_legs("c-1", 15)
    verify()


def test_streak_of_months_with_an_event(client, make_program, enrol, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    _achievement(client, program, "loyal", name="Two months running", kind="streak", threshold=2, period="month",
                 source="events", event_type="custom.quiz_done", reward_points=12)

    # 31 October 23:30Z is 1 November in Paris: the same local month as 20 November.
    assert _ok(_event(client, program, "e-1", "c-1", "custom.quiz_done",
                      occurred_at="2026-10-31T23:30:00Z"))["badges_unlocked"] == []
    assert _ok(_event(client, program, "e-2", "c-1", "custom.quiz_done",
                      occurred_at="2026-11-20T10:00:00Z"))["badges_unlocked"] == []
    assert _progress(client, program, "c-1", "loyal")["text"] == "1 of 2 months in a row"
    # A late October event (22:30Z is still 31 October in Paris) completes the streak that ends
    # this month: October and November.
    data = _ok(_event(client, program, "e-3", "c-1", "custom.quiz_done", occurred_at="2026-10-31T22:30:00Z"))
    assert data["badges_unlocked"] == [_unlocked("loyal", "Two months running", "once", 12)]
    assert data["balances"]["points"] == _bucket(12)
    assert _ok(_event(client, program, "e-4", "c-1", "custom.quiz_done"))["badges_unlocked"] == []
    verify()


# --------------------------------------------------------------------------- refunds revoke


@pytest.mark.parametrize("policy", ["allow_negative", "write_off"])
def test_refund_revokes_the_badge_and_claws_back_its_reward(client, make_program, enrol, buy, verify, policy):
    program = make_program(clawback_policy=policy)
    enrol(program, "c-1", display_name="Chris", leaderboard_opt_in=True)
    _achievement(client, program, "big", name="Big spender", kind="sum", threshold=10_000, reward_points=100)

    assert _bought(buy, program, "S-1", "c-1", 6_000)["points_earned"] == 60
    second = _bought(buy, program, "S-2", "c-1", 4_000)
    assert second["badges_unlocked"] == [_unlocked("big", "Big spender", "once", 100)]
    assert second["balances"]["points"] == _bucket(200)
    # The customer spends 150 of their 200 points.
    _ok(client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points",
                                             "amount": 150}, headers=program.headers("storefront")))
    _ok(client.post("/v1/redemptions/R-1/capture", json={}, headers=program.headers("storefront")), 200)
    assert _points(client, program, "c-1") == _bucket(50)

    # Refunding 1,000 of S-2: it keeps 30 of its 40 points (10 back: 50 -> 40); spend is now 9,000,
    # so the badge goes and its 100 points with it: 40 collected, 60 short.
    refund = _refund(client, program, "S-2", "F-1", 1_000)
    assert refund["points_reversed"] == 10
    revoked = _activity(client, program, "c-1", "achievement_revoked")
    assert len(revoked) == 1
    assert revoked[0]["reference"] == {"kind": "achievement", "id": "big:once"}
    assert revoked[0]["description"] == "Badge Big spender withdrawn after a refund; 100 points taken back"
    legs = _legs(client, program, revoked[0]["transaction_id"])
    if policy == "allow_negative":
        assert refund["balances"]["points"] == _bucket(-60)
        assert legs == {"house/points/issued/promotion": 100, "customer/c-1/points/available": -100}
        assert _account_total(client, program, "house/points/written_off") == 0
    else:
        assert refund["balances"]["points"] == _bucket(0)
        assert legs == {"house/points/issued/promotion": 100, "customer/c-1/points/available": -40,
                        "house/points/written_off": -60}
        assert _account_total(client, program, "house/points/written_off") == -60
    view = _achievements(client, program, "c-1")
    assert [(b["achievement_id"], b["status"], b["points"], b["revoked_at"]) for b in view["badges"]] == [
        ("big", "revoked", 100, NOW)]
    assert view["progress"][0]["text"] == "9000 of 10000 spent (minor units)"
    assert view["progress"][0]["earned"] is False
    # Issued to the customer this month: 100 + 100 - 10 - 100.
    assert _leaderboard(client, program)["items"] == [{"rank": 1, "display_name": "Chris", "points": 90}]

    # Spending 1,000 more earns it again, with a new reward.
    third = _bought(buy, program, "S-3", "c-1", 1_000)
    assert third["badges_unlocked"] == [_unlocked("big", "Big spender", "once", 100)]
    expected = -60 + 10 + 100 if policy == "allow_negative" else 0 + 10 + 100
    assert third["balances"]["points"] == _bucket(expected)
    badges = _badges(client, program, "c-1")
    assert [(b["status"], b["revoked_at"]) for b in badges] == [("earned", None)]
    assert len(_activity(client, program, "c-1", "achievement_reward")) == 2
    assert _leaderboard(client, program)["items"] == [{"rank": 1, "display_name": "Chris", "points": 200}]
    verify()


def test_a_refund_that_leaves_the_achievement_holding_keeps_the_badge(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "big", name="Big spender", kind="sum", threshold=10_000, reward_points=100)
    _bought(buy, program, "S-1", "c-1", 7_000)
    assert _bought(buy, program, "S-2", "c-1", 5_000)["badges_unlocked"] != []

    refund = _refund(client, program, "S-2", "F-1", 2_000)  # 10,000 left: still holds
    assert refund["balances"]["points"] == _bucket(70 + 50 + 100 - 20)
    assert _badges(client, program, "c-1")[0]["status"] == "earned"
    assert _activity(client, program, "c-1", "achievement_revoked") == []

    refund = _refund(client, program, "S-2", "F-2", 1)  # 9,999 spent: the badge goes
    assert refund["points_reversed"] == 1  # 2,999 left of S-2 keeps 29 of its 30
    assert refund["balances"]["points"] == _bucket(200 - 1 - 100)
    assert _badges(client, program, "c-1")[0]["status"] == "revoked"
    verify()


def test_a_refund_that_leaves_the_earning_terms_met_keeps_a_badge_after_the_threshold_is_raised(
        client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "big", name="Big spender", kind="sum", threshold=5_000, reward_points=30)
    assert _bought(buy, program, "A-1", "c-1", 6_000)["badges_unlocked"] == [
        _unlocked("big", "Big spender", "once", 30)]
    _achievement(client, program, "big", name="Big spender", kind="sum", threshold=50_000, reward_points=30)
    _bought(buy, program, "A-2", "c-1", 1_000)
    # 1 euro back on A-2: spend is 6,900, still above the 5,000 the badge was earned for.
    refund = _refund(client, program, "A-2", "F-1", 100)
    assert refund["points_reversed"] == 1
    assert [b["status"] for b in _badges(client, program, "c-1")] == ["earned"]
    assert refund["balances"]["points"] == _bucket(60 + 30 + 10 - 1)
    verify()


def test_a_refund_revokes_only_the_window_that_no_longer_holds(client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "monthly", name="Two a month", kind="count", threshold=2, window="month",
                 reward_points=20, repeatable=True)
    for order_id, at in (("O-1", "2026-10-05T10:00:00Z"), ("O-2", "2026-10-06T10:00:00Z"),
                         ("N-1", "2026-11-02T10:00:00Z"), ("N-2", "2026-11-03T10:00:00Z")):
        _bought(buy, program, order_id, "c-1", 1_000, occurred_at=at)
    assert _points(client, program, "c-1") == _bucket(40 + 40)

    refund = _refund(client, program, "N-2", "F-1")  # the whole order: November has one purchase left
    assert refund["points_reversed"] == 10
    assert refund["balances"]["points"] == _bucket(80 - 10 - 20)
    badges = {b["occasion"]: b["status"] for b in _badges(client, program, "c-1")}
    assert badges == {"2026-10": "earned", "2026-11": "revoked"}
    revoked = _activity(client, program, "c-1", "achievement_revoked")
    assert [r["reference"] for r in revoked] == [{"kind": "achievement", "id": "monthly:2026-11"}]
    progress = _progress(client, program, "c-1", "monthly")
    assert (progress["text"], progress["earned"]) == ("1 of 2 purchases this month", False)

    again = _bought(buy, program, "N-3", "c-1", 1_000)
    assert again["badges_unlocked"] == [_unlocked("monthly", "Two a month", "2026-11", 20)]
    assert again["balances"]["points"] == _bucket(50 + 10 + 20)
    assert {b["occasion"]: b["status"] for b in _badges(client, program, "c-1")} == {
        "2026-10": "earned", "2026-11": "earned"}
    verify()


def test_achievements_of_an_unknown_customer_is_not_found(client, make_program):
    program = make_program()
    assert_problem(client.get("/v1/customers/nobody/achievements", headers=program.headers("app")), 404,
                   "customer_not_found")


def test_achievement_rejects_inconsistent_definitions(app, client, make_program):
    program = make_program()
    before = row_counts(app)
    admin = program.headers("admin")
    for body, field in (
            ({"name": "x", "kind": "streak", "threshold": 2}, "period"),
            ({"name": "x", "kind": "sum", "threshold": 2, "source": "events", "event_type": "app_checkin"}, "kind"),
            ({"name": "x", "kind": "count", "threshold": 2, "source": "events"}, "event_type"),
            ({"name": "x", "kind": "count", "threshold": 0}, "threshold"),
            ({"name": "x", "kind": "ladder", "threshold": 2}, "kind")):
        assert_problem(client.put("/v1/achievements/a-1", json=body, headers=admin), 422, "validation_error", field)
    assert row_counts(app) == before


# --------------------------------------------------------------------------- leaderboard


def test_leaderboard_lists_opted_in_customers_by_points_net_of_clawbacks(client, make_program, enrol, buy, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-alice", display_name="Alice", leaderboard_opt_in=True)
    enrol(program, "c-bob", display_name="Bob", leaderboard_opt_in=True)
    enrol(program, "c-carol", display_name="Carol")  # not opted in
    enrol(program, "c-dave", leaderboard_opt_in=True)  # no display name
    enrol(program, "c-erin", display_name="Erin", leaderboard_opt_in=True)
    _rule(client, program, "r-survey", "survey_completed", 10)

    _bought(buy, program, "A-1", "c-alice", 5_000)  # 50
    _ok(_event(client, program, "e-1", "c-alice", "survey_completed"))  # 10 -> 60
    _bought(buy, program, "B-1", "c-bob", 8_000)  # 80
    _refund(client, program, "B-1", "F-1", 5_000)  # -50 -> 30
    _bought(buy, program, "C-1", "c-carol", 20_000)  # 200, not listed
    _bought(buy, program, "D-1", "c-dave", 1_000, occurred_at="2026-10-31T23:30:00Z")  # 1 November locally: 10
    _bought(buy, program, "D-2", "c-dave", 2_000, occurred_at="2026-10-31T22:30:00Z")  # October locally: 20
    _bought(buy, program, "E-1", "c-erin", 9_000, occurred_at="2026-10-15T10:00:00Z")  # October: 90

    response = client.get("/v1/leaderboard?period=month&limit=10", headers=program.headers("app"))
    month = _ok(response, 200)
    assert month["period"] == "month"
    assert (month["from"], month["to"]) == ("2026-10-31T23:00:00+00:00", "2026-11-30T23:00:00+00:00")
    assert month["items"] == [{"rank": 1, "display_name": "Alice", "points": 60},
                              {"rank": 2, "display_name": "Bob", "points": 30},
                              {"rank": 3, "display_name": "Member", "points": 10}]
    raw = response.get_data(as_text=True)
    assert "c-alice" not in raw and "c-bob" not in raw and "c-dave" not in raw and "Carol" not in raw

    assert _leaderboard(client, program, "period=month&limit=2")["items"] == month["items"][:2]
    assert _leaderboard(client, program, "period=week")["items"] == month["items"][:2]
    # The year: Erin's 90 and Dave's 20 from October count; Bob and Dave tie at 30 (enrolment order).
    assert _leaderboard(client, program, "period=year")["items"] == [
        {"rank": 1, "display_name": "Erin", "points": 90}, {"rank": 2, "display_name": "Alice", "points": 60},
        {"rank": 3, "display_name": "Bob", "points": 30}, {"rank": 4, "display_name": "Member", "points": 30}]
    # The default is this month, 10 at most.
    assert _leaderboard(client, program, "")["items"] == month["items"]

    # Opting out removes a customer.
    _ok(client.put("/v1/customers/c-bob", json={"leaderboard_opt_in": False}, headers=program.headers("storefront")),
        200)
    assert [i["display_name"] for i in _leaderboard(client, program)["items"]] == ["Alice", "Member"]
    verify()


def test_leaderboard_refuses_bad_arguments(client, make_program):
    program = make_program()
    for query, field in (("period=day", "period"), ("period=decade", "period"), ("limit=0", "limit"),
                         ("limit=101", "limit"), ("limit=ten", "limit")):
        assert_problem(client.get(f"/v1/leaderboard?{query}", headers=program.headers("app")), 422,
                       "validation_error", field)


# --------------------------------------------------------------------------- edges


def test_daily_cap_on_the_25_hour_day_when_summer_time_ends(client, make_program, enrol, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    _rule(client, program, "r-1", "custom.quiz_done", 10, cap_points=20, cap_period="day")
    # Sunday 25 October 2026 in Paris runs from 22:00Z on the 24th (CEST) to 23:00Z on the 25th (CET).
    plan = [("e-1", "2026-10-24T21:30:00Z", 10),  # 23:30 on the 24th
            ("e-2", "2026-10-24T22:30:00Z", 10),  # 00:30 on the 25th
            ("e-3", "2026-10-25T12:00:00Z", 10),
            ("e-4", "2026-10-25T22:30:00Z", 0),   # 23:30 CET, still the 25th: the cap is used up
            ("e-5", "2026-10-25T23:00:00Z", 10)]  # 00:00 on the 26th
    for event_id, at, points in plan:
        data = _ok(_event(client, program, event_id, "c-1", "custom.quiz_done", occurred_at=at))
        assert data["points_awarded"] == points, event_id
    assert _points(client, program, "c-1") == _bucket(40)
    verify()


def test_streak_of_weeks_across_the_iso_year_end(client, make_program, enrol, buy, clock, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "weekly", name="Three weeks running", kind="streak", threshold=3,
                 period="week", reward_points=30, repeatable=True)
    clock.advance(days=41)  # Wednesday 6 January 2027, ISO week 2027-W01
    # 2026 has 53 ISO weeks: 22 Dec is 2026-W52, 31 Dec is 2026-W53.
    assert _bought(buy, program, "Y-1", "c-1", 1_000, occurred_at="2026-12-22T10:00:00Z")["badges_unlocked"] == []
    assert _bought(buy, program, "Y-2", "c-1", 1_000, occurred_at="2026-12-31T10:00:00Z")["badges_unlocked"] == []
    data = _bought(buy, program, "Y-3", "c-1", 1_000)
    assert data["badges_unlocked"] == [_unlocked("weekly", "Three weeks running", "2027-W01", 30)]
    verify()


def test_a_badge_without_reward_books_nothing_and_is_revoked_without_a_transaction(
        app, client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "first", name="First order", kind="count", threshold=1)
    before = row_counts(app)
    data = _bought(buy, program, "A-1", "c-1", 1_000)
    assert data["badges_unlocked"] == [_unlocked("first", "First order", "once", 0)]
    assert row_counts(app)["transactions"] == before["transactions"] + 1  # the accrual only
    _refund(client, program, "A-1", "F-1")
    assert [(b["status"], b["points"]) for b in _badges(client, program, "c-1")] == [("revoked", 0)]
    assert row_counts(app)["transactions"] == before["transactions"] + 2  # and the refund
    assert _activity(client, program, "c-1", "achievement_revoked") == []
    verify()


def test_events_do_not_complete_purchase_achievements_and_refunds_leave_event_badges(
        client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "buyer", name="Buyer", kind="count", threshold=1, reward_points=5)
    _achievement(client, program, "sharer", name="Sharer", kind="count", threshold=1, source="events",
                 event_type="social_share", reward_points=7)
    assert _ok(_event(client, program, "e-1", "c-1", "social_share"))["badges_unlocked"] == [
        _unlocked("sharer", "Sharer", "once", 7)]
    assert _bought(buy, program, "A-1", "c-1", 1_000)["badges_unlocked"] == [_unlocked("buyer", "Buyer", "once", 5)]
    refund = _refund(client, program, "A-1", "F-1")
    # 7 + 10 + 5, less the order's 10 and the buyer badge's 5; the event badge stays.
    assert refund["balances"]["points"] == _bucket(7)
    assert {b["achievement_id"]: b["status"] for b in _badges(client, program, "c-1")} == {
        "buyer": "revoked", "sharer": "earned"}
    verify()


def test_progress_moves_to_the_next_window(client, make_program, enrol, buy, clock, verify):
    program = make_program()
    enrol(program, "c-1")
    _achievement(client, program, "monthly", name="Two a month", kind="count", threshold=2, window="month",
                 reward_points=20, repeatable=True)
    _bought(buy, program, "N-1", "c-1", 1_000)
    _bought(buy, program, "N-2", "c-1", 1_000)
    clock.advance(days=6)  # 2 December
    progress = _progress(client, program, "c-1", "monthly")
    assert (progress["occasion"], progress["value"], progress["earned"]) == ("2026-12", 0, False)
    assert progress["text"] == "0 of 2 purchases this month"
    assert [b["occasion"] for b in _badges(client, program, "c-1")] == ["2026-11"]
    verify()


def test_event_under_an_idempotency_key_replays_and_a_new_key_replays_by_event_id(
        app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    _rule(client, program, "r-1", "profile_completed", 100)
    first = _event(client, program, "e-1", "c-1", "profile_completed", headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    counts = row_counts(app)
    for key in ("k-1", "k-2"):
        again = _event(client, program, "e-1", "c-1", "profile_completed", headers={"Idempotency-Key": key})
        assert (again.status_code, again.get_data()) == (201, first.get_data())
        assert again.headers.get("Idempotent-Replayed") == "true"
    assert row_counts(app) == counts
    assert _points(client, program, "c-1") == _bucket(100)
    verify()
