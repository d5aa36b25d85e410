"""Engagement events under concurrency (PostgreSQL, real parallel connections).

One Flask test client per thread, all released together by a barrier: copies of one event
(same event_id, same body) award exactly once and all answer the same bytes; distinct events of
a capped rule for one customer never give more than the cap.
"""
from __future__ import annotations
from tests.helpers import ledger_entries

import json
import os
from collections import Counter
from typing import Any

import pytest

from tests.integration.test_concurrency import run_together

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
pg_only = pytest.mark.skipif(BACKEND != "postgresql", reason="needs real parallel connections: run with "
                             "LEDGER_TEST_BACKEND=postgresql (SQLite serialises writers)")
N = 10

pytestmark = pg_only


def _post_event(app: Any, program: Any, body: dict) -> tuple[int, bytes, dict]:
    client = app.test_client()  # one client per thread
    response = client.post("/v1/events", json=body, headers=program.headers("storefront"))
    return response.status_code, response.get_data(), dict(response.headers)


def _event_rewards(client: Any, program: Any, customer_id: str) -> list[dict]:
    response = client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app"))
    assert response.status_code == 200
    return [item for item in response.get_json()["items"] if item["type"] == "event_reward"]


def _available(client: Any, program: Any, customer_id: str) -> int:
    return client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")).get_json()[
        "points"]["available"]


def test_concurrent_copies_of_one_event_award_once(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    assert client.put("/v1/event-rules/r-review", json={"event_type": "review_posted", "points": 40},
                      headers=program.headers("admin")).status_code == 200
    body = {"event_id": "E-1", "customer_id": "c-1", "type": "review_posted", "properties": {"rating": 5}}

    results = run_together(N, lambda i: _post_event(app, program, body))

    assert [status for status, _, _ in results] == [201] * N, [raw[:300] for _, raw, _ in results]
    assert len({raw for _, raw, _ in results}) == 1, "every copy must answer byte for byte the same"
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in results]
    assert replayed.count("true") == N - 1 and replayed.count(None) == 1
    answer = json.loads(results[0][1])
    assert answer["points_awarded"] == 40 and answer["transaction_id"] is not None

    rewards = _event_rewards(client, program, "c-1")
    assert [(r["transaction_id"], r["reference"]["id"]) for r in rewards] == [(answer["transaction_id"], "E-1")]
    entries = ledger_entries(client, program)
    assert {e["transaction_id"] for e in entries} == {answer["transaction_id"]}
    assert _available(client, program, "c-1") == 40
    assert verify().entries == 2


def test_concurrent_distinct_events_never_exceed_the_cap(app, client, make_program, enrol, verify):
    program = make_program(timezone="Europe/Paris")
    enrol(program, "c-1")
    assert client.put("/v1/event-rules/r-checkin", json={
        "event_type": "app_checkin", "points": 10, "cap_points": 35, "cap_period": "day"},
        headers=program.headers("admin")).status_code == 200

    results = run_together(N, lambda i: _post_event(app, program, {
        "event_id": f"E-{i}", "customer_id": "c-1", "type": "app_checkin"}))

    assert [status for status, _, _ in results] == [201] * N, [raw[:300] for _, raw, _ in results]
    answers = [json.loads(raw) for _, raw, _ in results]
    # 10 points each, 35 a day: 10 + 10 + 10 + 5, then nothing, whatever the order.
    assert sorted(a["points_awarded"] for a in answers) == [0] * (N - 4) + [5, 10, 10, 10]
    assert Counter(a["rewards"][0]["capped"] for a in answers) == Counter({True: N - 3, False: 3})
    # The balances each answer saw are a serial history.
    assert sorted(a["balances"]["points"]["available"] for a in answers) == [10, 20, 30] + [35] * (N - 3)

    assert len(_event_rewards(client, program, "c-1")) == 4
    assert _available(client, program, "c-1") == 35
    assert sum(e["amount"] for e in ledger_entries(client, program) if e["account"] == "house/points/issued/promotion") == -35
    assert verify().entries == 8


def test_concurrent_events_unlock_an_achievement_once(app, client, make_program, enrol, verify):
    program = make_program()
    enrol(program, "c-1")
    assert client.put("/v1/achievements/checkins", json={
        "name": "Regular visitor", "kind": "count", "threshold": 3, "window": "week", "source": "events",
        "event_type": "app_checkin", "reward_points": 15}, headers=program.headers("admin")).status_code == 200

    results = run_together(N, lambda i: _post_event(app, program, {
        "event_id": f"E-{i}", "customer_id": "c-1", "type": "app_checkin"}))

    assert [status for status, _, _ in results] == [201] * N, [raw[:300] for _, raw, _ in results]
    unlocked = [json.loads(raw)["badges_unlocked"] for _, raw, _ in results]
    assert sorted(map(len, unlocked)) == [0] * (N - 1) + [1]
    assert [b for u in unlocked for b in u] == [
        {"achievement_id": "checkins", "name": "Regular visitor", "occasion": "once", "points": 15}]
    badges = client.get("/v1/customers/c-1/achievements", headers=program.headers("app")).get_json()["badges"]
    assert [(b["achievement_id"], b["status"]) for b in badges] == [("checkins", "earned")]
    assert _available(client, program, "c-1") == 15
    assert verify().entries == 2
