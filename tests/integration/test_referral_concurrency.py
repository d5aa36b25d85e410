"""Referrals under concurrent writers (PostgreSQL, real parallel connections: one Flask test client
per thread, released together by a barrier).

Program: the referrer earns 500 points and 3.00 EUR cashback, the referee 200 welcome points, on a
first purchase of at least 50.00 EUR; 1 point per euro at once; return window 30 days.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.integration.test_concurrency import run_together

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
pg_only = pytest.mark.skipif(BACKEND != "postgresql", reason="needs real parallel connections: run with "
                             "LEDGER_TEST_BACKEND=postgresql (SQLite serialises writers)")
N = 10
REFERRAL = {"referrer_reward_points": 500, "referrer_reward_cashback": 300, "referee_reward_points": 200,
            "referral_min_purchase": 5_000}


def _code(client: Any, program: Any, customer_id: str) -> str:
    response = client.get(f"/v1/customers/{customer_id}/referral", headers=program.headers("app"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["code"]


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    response = client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app"))
    assert response.status_code == 200
    return response.get_json()


def _referrals(client: Any, program: Any, customer_id: str) -> list[dict]:
    response = client.get(f"/v1/customers/{customer_id}/referrals", headers=program.headers("app"))
    assert response.status_code == 200
    return response.get_json()["items"]


def _post(app: Any, program: Any, body: dict) -> tuple[int, bytes, dict]:
    response = app.test_client().post("/v1/purchases", json=body, headers=program.headers("storefront"))
    return response.status_code, response.get_data(), dict(response.headers)


def _put(app: Any, program: Any, customer_id: str, body: dict) -> tuple[int, dict]:
    response = app.test_client().put(f"/v1/customers/{customer_id}", json=body, headers=program.headers("storefront"))
    return response.status_code, response.get_json()


def _reward_transactions(client: Any, program: Any, customer_id: str) -> list[dict]:
    response = client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app"))
    assert response.status_code == 200
    return [i for i in response.get_json()["items"] if i["type"] == "referral_reward"]


@pg_only
def test_parallel_copies_of_the_qualifying_purchase_reward_once(app, client, make_program, enrol, verify) -> None:
    program = make_program(**REFERRAL)
    enrol(program, "A")
    enrol(program, "B")
    body = {"order_id": "B-1", "customer_id": "B", "amount": 6_000, "currency": "EUR",
            "referred_by": _code(client, program, "A")}

    results = run_together(N, lambda i: _post(app, program, body))

    assert [status for status, _, _ in results] == [201] * N, [r[1][:300] for r in results]
    assert len({raw for _, raw, _ in results}) == 1, "every copy must answer byte for byte the same"
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in results]
    assert replayed.count("true") == N - 1 and replayed.count(None) == 1
    answer = json.loads(results[0][1])
    assert [(r["role"], r["status"], r["points"], r["cashback"]) for r in answer["referral_rewards"]] == [
        ("referrer", "pending", 500, 300), ("referee", "pending", 200, 0)]

    assert _balances(client, program, "A")["points"] == {"available": 0, "pending": 500, "reserved": 0}
    assert _balances(client, program, "A")["cashback"] == {"available": 0, "pending": 300, "reserved": 0}
    assert _balances(client, program, "B")["points"] == {"available": 60, "pending": 200, "reserved": 0}
    assert [r["status"] for r in _referrals(client, program, "A")] == ["purchased"]
    assert len(_reward_transactions(client, program, "A")) == 1
    assert len(_reward_transactions(client, program, "B")) == 1
    verify()


@pg_only
def test_parallel_different_first_purchases_of_one_referee_reward_once(app, client, make_program, enrol,
                                                                       verify) -> None:
    program = make_program(**REFERRAL)
    enrol(program, "A")
    enrol(program, "B")
    code = _code(client, program, "A")

    results = run_together(N, lambda i: _post(app, program, {
        "order_id": f"B-{i}", "customer_id": "B", "amount": 6_000, "currency": "EUR", "referred_by": code}))

    assert [status for status, _, _ in results] == [201] * N, [r[1][:300] for r in results]
    rewarded = [json.loads(raw)["referral_rewards"] for _, raw, _ in results]
    assert sum(1 for r in rewarded if r) == 1, rewarded
    assert _balances(client, program, "A")["points"] == {"available": 0, "pending": 500, "reserved": 0}
    assert _balances(client, program, "B")["points"] == {"available": 60 * N, "pending": 200, "reserved": 0}
    assert [r["status"] for r in _referrals(client, program, "A")] == ["purchased"]
    verify()


@pg_only
def test_parallel_first_purchases_of_many_referees_respect_the_cap(app, client, make_program, enrol,
                                                                   verify) -> None:
    program = make_program(**REFERRAL, referral_cap=3, referral_cap_period="month")
    enrol(program, "A")
    code = _code(client, program, "A")
    for i in range(N):
        enrol(program, f"R-{i}", referred_by=code)

    results = run_together(N, lambda i: _post(app, program, {
        "order_id": f"O-{i}", "customer_id": f"R-{i}", "amount": 6_000, "currency": "EUR"}))

    assert [status for status, _, _ in results] == [201] * N, [r[1][:300] for r in results]
    referrer_status = sorted(json.loads(raw)["referral_rewards"][0]["status"] for _, raw, _ in results)
    assert referrer_status == ["capped"] * (N - 3) + ["pending"] * 3
    assert _balances(client, program, "A")["points"] == {"available": 0, "pending": 1_500, "reserved": 0}
    assert _balances(client, program, "A")["cashback"] == {"available": 0, "pending": 900, "reserved": 0}
    statuses = sorted(r["status"] for r in _referrals(client, program, "A"))
    assert statuses == ["capped"] * (N - 3) + ["purchased"] * 3
    verify()


@pg_only
def test_two_customers_naming_each_others_code_at_once_make_no_circle(app, client, make_program, enrol,
                                                                      verify) -> None:
    program = make_program(**REFERRAL)
    pairs = N // 2
    for i in range(pairs):
        enrol(program, f"X-{i}")
        enrol(program, f"Y-{i}")
    codes = {f"{side}-{i}": _code(client, program, f"{side}-{i}") for i in range(pairs) for side in "XY"}

    def name_the_other(k: int) -> tuple[int, dict]:
        i, side = divmod(k, 2)
        me, other = (f"X-{i}", f"Y-{i}") if side == 0 else (f"Y-{i}", f"X-{i}")
        return _put(app, program, me, {"referred_by": codes[other]})

    # register() reads the code owner's chain without locking it; what keeps the two apart is that each
    # referral row's foreign key needs a KEY SHARE lock on the other customer, whom the other request
    # holds FOR UPDATE: a deadlock, retried, after which the second request sees the circle.
    results = run_together(2 * pairs, name_the_other)

    for i in range(pairs):
        pair = results[2 * i: 2 * i + 2]
        # Exactly one of the two may register; the other is a circle.
        assert sorted(status for status, _ in pair) == [200, 422], (i, pair)
        assert [body["code"] for status, body in pair if status == 422] == ["circular_referral"], (i, pair)
    verify()



@pg_only
def test_two_referrals_registered_at_once_never_close_a_circle(app, client, make_program, enrol, verify) -> None:
    # For each triple: B already refers C. At the same moment B names A's code (A would refer B) and A
    # names C's code (C would refer A): A -> B -> C -> A. Whichever registers second must see the circle.
    program = make_program(**REFERRAL)
    triples = N // 2
    for i in range(triples):
        enrol(program, f"A-{i}")
        enrol(program, f"B-{i}")
        enrol(program, f"C-{i}", referred_by=_code(client, program, f"B-{i}"))
    codes = {c: _code(client, program, c) for i in range(triples) for c in (f"A-{i}", f"C-{i}")}

    def register(k: int) -> tuple[int, dict]:
        i, side = divmod(k, 2)
        if side == 0:
            return _put(app, program, f"B-{i}", {"referred_by": codes[f"A-{i}"]})
        return _put(app, program, f"A-{i}", {"referred_by": codes[f"C-{i}"]})

    results = run_together(2 * triples, register)

    for i in range(triples):
        pair = results[2 * i: 2 * i + 2]
        assert sorted(status for status, _ in pair) == [200, 422], (i, pair)
        assert [body["code"] for status, body in pair if status == 422] == ["circular_referral"], (i, pair)
        # Nobody is their own (indirect) referrer.
        seen, customer = [], f"A-{i}"
        while customer is not None and customer not in seen:
            seen.append(customer)
            card = client.get(f"/v1/customers/{customer}/referral", headers=program.headers("app")).get_json()
            customer = card["referred_by"]
        assert customer is None, f"circle {' <- '.join(seen + [customer])}"
    verify()
