"""Points expiry: fixed life (days, months, end of month), inactivity, holds, DST, refunds of expired
points, restored points, the `expiring` read, and cashback, which never expires.

Programs here: 1 point per euro (10_000 cents earn 100 points), points available at once unless
points_hold_days says otherwise, timezone Europe/Paris (UTC+1 in winter, UTC+2 in summer; summer
time 2026-03-29..2026-10-25 and from 2027-03-28). The clock starts at 2026-11-26T12:00Z (13:00 local).
A day ends at the next local midnight: in winter 23:00Z, in summer 22:00Z.
Signs of ledger entries: > 0 arrives in the account. Every expected number is computed by hand in
the comments; every test ends with `verify()`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.services.releases import run_jobs
from tests.helpers import account_total as _account_total, ledger_entries as _entries, transaction_legs as _legs

PARIS = "Europe/Paris"
UTC = timezone.utc


# --------------------------------------------------------------------------- helpers


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _set(clock: Any, instant: str) -> None:
    """Move the FixedClock to `instant` (forwards or backwards)."""
    clock.advance(seconds=(_at(instant) - clock.now()).total_seconds())


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _fixed(make_program: Any, **settings: Any) -> Any:
    """Fixed expiry, 10 days, Paris; 2% cashback pending 30 days (the default hold)."""
    return make_program(**{"timezone": PARIS, "points_expiry": "fixed", "points_life_days": 10,
                           "cashback_rate_bps": 200, **settings})


def _patch(client: Any, program: Any, **changes: Any) -> dict:
    return _ok(client.patch("/v1/program", json=changes, headers=program.headers("admin")))


def _bought(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, **extra: Any) -> dict:
    return _ok(buy(program, order_id, customer_id, amount, **extra), 201)


def _hold(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int, **extra: Any) -> dict:
    body = {"redemption_id": redemption_id, "customer_id": customer_id, "asset": "points", "amount": amount, **extra}
    return _ok(client.post("/v1/redemptions", json=body, headers=program.headers("storefront")), 201)


def _capture(client: Any, program: Any, redemption_id: str) -> dict:
    return _ok(client.post(f"/v1/redemptions/{redemption_id}/capture", json={},
                           headers=program.headers("storefront")))


def _hold_and_capture(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int,
                      **extra: Any) -> dict:
    _hold(client, program, redemption_id, customer_id, amount, **extra)
    return _capture(client, program, redemption_id)


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None) -> dict:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    return _ok(client.post(f"/v1/purchases/{order_id}/refunds", json=body,
                           headers=program.headers("storefront")), 201)


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")))


def _points(client: Any, program: Any, customer_id: str) -> dict:
    return _balances(client, program, customer_id)["points"]


def _pts(available: int, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}





def _activity(client: Any, program: Any, customer_id: str) -> list[dict]:
    return _ok(client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app")))["items"]


def _expiries(client: Any, program: Any, customer_id: str) -> list[tuple[dict, dict[str, int]]]:
    """The customer's points_expiry transactions, oldest first, as (activity item, legs). Cashback
    never expires: no expiry transaction moves any cashback."""
    found = []
    for item in reversed(_activity(client, program, customer_id)):
        if item["type"] != "points_expiry":
            continue
        legs = _legs(client, program, item["transaction_id"])
        assert item["cashback"] == _pts(0), item
        assert not [account for account in legs if "/cashback/" in account], legs
        found.append((item, legs))
    return found


def _expiry_legs(customer_id: str, points: int) -> dict[str, int]:
    return {f"customer/{customer_id}/points/available": -points, "house/points/expired": points}


def _expiring(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/expiring", headers=program.headers("app")))


def _items(expiring: dict) -> list[tuple[int, datetime, str]]:
    return [(i["points"], _at(i["expires_at"]), i["last_day"]) for i in expiring["items"]]


def _jobs(client: Any, clock: Any) -> int:
    return run_jobs(client.application.extensions["ledger"].uow, clock)["expired_points"]


# --------------------------------------------------------------------------- fixed life in days


def test_fixed_life_lots_expire_at_the_end_of_their_local_day(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program)
    enrol(program, "c-1")
    # 2026-11-26 13:00 local: 100 points, 200 cashback (2% of 10_000) pending 30 days.
    # Last day 2026-11-26 + 10 = 2026-12-06, which ends at 2026-12-07T00:00+01:00 = 2026-12-06T23:00Z.
    first = _bought(buy, program, "A-1", "c-1", 10_000)
    assert (first["points_earned"], first["cashback_earned"]) == (100, 200)
    clock.advance(days=2)
    # 2026-11-28: 50 points, 100 cashback; last day 2026-12-08, expires 2026-12-08T23:00Z.
    assert _bought(buy, program, "A-2", "c-1", 5_000)["points_earned"] == 50

    _set(clock, "2026-12-06T22:59:59Z")  # 23:59:59 local on the last day: still valid
    assert _jobs(client, clock) == 0
    assert _points(client, program, "c-1") == _pts(150)

    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 100  # exactly the first lot
    assert _points(client, program, "c-1") == _pts(50)  # 150 - 100
    [(item, legs)] = _expiries(client, program, "c-1")
    assert legs == _expiry_legs("c-1", 100)
    assert item["points"] == _pts(-100)
    assert _at(item["occurred_at"]) == datetime(2026, 12, 6, 23, tzinfo=UTC)
    assert item["reference"]["kind"] == "expiry"
    assert item["description"] == "100 points expired at the end of their life; they were valid until 2026-12-06"

    _set(clock, "2026-12-08T22:59:59Z")
    assert _jobs(client, clock) == 0
    _set(clock, "2026-12-08T23:00:00Z")
    assert _jobs(client, clock) == 50
    assert _points(client, program, "c-1") == _pts(0)
    second = _expiries(client, program, "c-1")[1]
    assert second[1] == _expiry_legs("c-1", 50)
    assert second[0]["description"] == "50 points expired at the end of their life; they were valid until 2026-12-08"
    # The cashback is untouched: 200 + 100 still pending until 2026-12-26/28.
    assert _balances(client, program, "c-1")["cashback"] == _pts(0, 300)
    assert _account_total(client, program, "house/points/expired") == 150
    assert verify().entries == 4 + 4 + 2 + 2  # two accruals (points + cashback legs), two expiries


def test_capture_spends_the_soonest_expiring_lot_first(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program, points_life_days=30)
    enrol(program, "c-1")
    # 2026-11-26: 100 points, last day 2026-11-26 + 30 = 2026-12-26 -> 2026-12-26T23:00Z.
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=1)
    _patch(client, program, points_life_days=5)
    # 2026-11-27: 50 points, last day 2026-12-02 -> 2026-12-02T23:00Z: newer, but expires sooner.
    _bought(buy, program, "A-2", "c-1", 5_000)
    clock.advance(days=1)
    # 60 points spent: all 50 of A-2's lot first, then 10 of A-1's, which keeps 90.
    assert _hold_and_capture(client, program, "R-1", "c-1", 60)["balances"]["points"] == _pts(90)
    assert _items(_expiring(client, program, "c-1")) == [(90, datetime(2026, 12, 26, 23, tzinfo=UTC), "2026-12-26")]

    _set(clock, "2026-12-02T23:00:00Z")
    assert _jobs(client, clock) == 0  # A-2's lot is spent: nothing of it left to expire
    assert _points(client, program, "c-1") == _pts(90)
    _set(clock, "2026-12-26T23:00:00Z")
    assert _jobs(client, clock) == 90  # only what is left of the later lot
    assert _points(client, program, "c-1") == _pts(0)
    assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 90)]
    verify()


def test_lots_without_expiry_are_spent_last(client, make_program, enrol, buy, clock, verify):
    program = make_program(timezone=PARIS)  # points_expiry none
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, never expire (issued under "none")
    _patch(client, program, points_expiry="fixed", points_life_days=10)
    _bought(buy, program, "A-2", "c-1", 5_000)  # 50 points, last day 2026-12-06 -> 2026-12-06T23:00Z
    expiring = _expiring(client, program, "c-1")
    assert expiring["policy"] == "fixed" and expiring["total"] == 50
    assert _items(expiring) == [(50, datetime(2026, 12, 6, 23, tzinfo=UTC), "2026-12-06")]

    clock.advance(days=1)
    # 60 points: the 50 that expire first, then 10 of the lot without expiry (90 left).
    _hold_and_capture(client, program, "R-1", "c-1", 60)
    assert _expiring(client, program, "c-1")["items"] == []

    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 0
    clock.advance(days=400)
    assert _jobs(client, clock) == 0
    assert _points(client, program, "c-1") == _pts(90)  # 150 - 60
    assert _expiries(client, program, "c-1") == []
    verify()


@pytest.mark.parametrize("end", ["void", "capture 25"])
def test_held_points_do_not_expire_while_held(client, make_program, enrol, buy, clock, verify, end):
    program = _fixed(make_program)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, expire 2026-12-06T23:00Z
    _set(clock, "2026-12-06T22:00:00Z")
    _hold(client, program, "R-1", "c-1", 40, ttl_seconds=86_400)  # live until 2026-12-07T22:00Z

    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 60  # 100 - 40 held
    assert _points(client, program, "c-1") == _pts(0, 0, 40)
    _set(clock, "2026-12-07T01:00:00Z")
    assert _jobs(client, clock) == 0  # still held: still protected
    assert _points(client, program, "c-1") == _pts(0, 0, 40)

    if end == "void":
        _ok(client.post("/v1/redemptions/R-1/void", json={}, headers=program.headers("storefront")))
        back, spent = 40, 0  # all 40 go back to available, from a lot whose life is over
    else:
        _ok(client.post("/v1/redemptions/R-1/capture", json={"amount": 25}, headers=program.headers("storefront")))
        back, spent = 15, 25  # 40 - 25 go back
    assert _jobs(client, clock) == back  # what the hold gave back expires at the next run
    assert _jobs(client, clock) == 0
    assert _points(client, program, "c-1") == _pts(0)
    assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 60),
                                                                      _expiry_legs("c-1", back)]
    assert _account_total(client, program, "house/points/expired") == 100 - spent
    verify()


# --------------------------------------------------------------------------- DST, months


@pytest.mark.parametrize("bought_at, life_days, last_day, ends_at", [
    # 2026-10-14 12:00 local (CEST) + 10 = 2026-10-24; ends 2026-10-25T00:00+02:00 = 2026-10-24T22:00Z.
    ("2026-10-14T10:00:00Z", 10, "2026-10-24", "2026-10-24T22:00:00Z"),
    # + 10 = 2026-10-25, the 25-hour day; ends 2026-10-26T00:00+01:00 = 2026-10-25T23:00Z.
    ("2026-10-15T10:00:00Z", 10, "2026-10-25", "2026-10-25T23:00:00Z"),
    # 2026-11-26 + 121 (4 + 31 + 31 + 28 + 27) = 2027-03-27; ends 2027-03-28T00:00+01:00 = 2027-03-27T23:00Z.
    ("2026-11-26T12:00:00Z", 121, "2027-03-27", "2027-03-27T23:00:00Z"),
    # + 122 = 2027-03-28, the 23-hour day; ends 2027-03-29T00:00+02:00 = 2027-03-28T22:00Z.
    ("2026-11-26T12:00:00Z", 122, "2027-03-28", "2027-03-28T22:00:00Z"),
    # 2026-11-26T23:30Z is already 2026-11-27 00:30 local: + 10 = 2026-12-07 -> 2026-12-07T23:00Z.
    ("2026-11-26T23:30:00Z", 10, "2026-12-07", "2026-12-07T23:00:00Z"),
])
def test_expiry_at_local_midnight_around_dst(client, make_program, enrol, buy, clock, verify,
                                             bought_at, life_days, last_day, ends_at):
    _set(clock, bought_at)
    program = _fixed(make_program, points_life_days=life_days, cashback_rate_bps=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points
    assert _items(_expiring(client, program, "c-1")) == [(100, _at(ends_at), last_day)]

    clock.advance(seconds=(_at(ends_at) - clock.now()).total_seconds() - 1)
    assert _jobs(client, clock) == 0  # one second before local midnight
    assert _points(client, program, "c-1") == _pts(100)
    clock.advance(seconds=1)
    assert clock.now() == _at(ends_at)
    assert _jobs(client, clock) == 100
    [(item, legs)] = _expiries(client, program, "c-1")
    assert legs == _expiry_legs("c-1", 100)
    assert item["description"].endswith(f"valid until {last_day}")
    verify()


def test_points_life_in_months_and_to_the_end_of_the_month(client, make_program, enrol, buy, clock, verify):
    program = make_program(timezone=PARIS, points_expiry="fixed", points_life_months=1,
                           points_life_end_of_month=True)
    enrol(program, "c-1")
    # 2026-11-26 + 1 month = 2026-12-26, to the end of December: 2026-12-31 -> 2027-01-01T00:00+01:00 = 2026-12-31T23:00Z.
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points
    _patch(client, program, points_life_months=4)
    # 2026-11-26 + 4 months = 2027-03-26 -> 2027-03-31 (summer time) -> 2027-04-01T00:00+02:00 = 2027-03-31T22:00Z.
    _bought(buy, program, "A-3", "c-1", 3_000)  # 30 points
    assert _items(_expiring(client, program, "c-1")) == [
        (100, datetime(2026, 12, 31, 23, tzinfo=UTC), "2026-12-31"),
        (30, datetime(2027, 3, 31, 22, tzinfo=UTC), "2027-03-31")]

    _set(clock, "2026-12-31T22:59:59Z")
    assert _jobs(client, clock) == 0
    _set(clock, "2026-12-31T23:00:00Z")
    assert _jobs(client, clock) == 100
    assert _points(client, program, "c-1") == _pts(30)

    _set(clock, "2027-01-31T12:00:00Z")
    _patch(client, program, points_life_months=1, points_life_end_of_month=False)
    # 2027-01-31 + 1 month = 2027-02-31, clamped to 2027-02-28 -> 2027-03-01T00:00+01:00 = 2027-02-28T23:00Z.
    _bought(buy, program, "A-2", "c-1", 2_000)  # 20 points
    _patch(client, program, points_life_months=3)
    # 2027-01-31 + 3 months = 2027-04-31, clamped to 2027-04-30 -> 2027-05-01T00:00+02:00 = 2027-04-30T22:00Z.
    _bought(buy, program, "A-4", "c-1", 500)  # 5 points
    assert _items(_expiring(client, program, "c-1")) == [
        (20, datetime(2027, 2, 28, 23, tzinfo=UTC), "2027-02-28"),
        (30, datetime(2027, 3, 31, 22, tzinfo=UTC), "2027-03-31"),
        (5, datetime(2027, 4, 30, 22, tzinfo=UTC), "2027-04-30")]

    _set(clock, "2027-02-28T23:00:00Z")
    assert _jobs(client, clock) == 20
    _set(clock, "2027-03-31T21:59:59Z")
    assert _jobs(client, clock) == 0
    _set(clock, "2027-03-31T22:00:00Z")
    assert _jobs(client, clock) == 30
    _set(clock, "2027-04-30T22:00:00Z")
    assert _jobs(client, clock) == 5
    assert _points(client, program, "c-1") == _pts(0)
    assert [legs for _, legs in _expiries(client, program, "c-1")] == [
        _expiry_legs("c-1", 100), _expiry_legs("c-1", 20), _expiry_legs("c-1", 30), _expiry_legs("c-1", 5)]
    verify()


# --------------------------------------------------------------------------- idempotence, upkeep


def test_job_is_idempotent_and_a_later_write_expires_the_same(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program)
    for customer in ("c-1", "c-2"):
        enrol(program, customer)
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points each, expire 2026-12-06T23:00Z
    _bought(buy, program, "B-1", "c-2", 10_000)

    _set(clock, "2026-12-06T23:00:00Z")
    # c-2 buys first: the upkeep before the purchase expires its 100, then it earns 10 new points.
    purchase = _bought(buy, program, "B-2", "c-2", 1_000)
    assert purchase["balances"]["points"] == _pts(10)
    assert _jobs(client, clock) == 100  # c-1's only: c-2's are done
    count = len(_entries(client, program))
    assert _jobs(client, clock) == 0  # the second run at the same instant
    assert len(_entries(client, program)) == count
    _bought(buy, program, "A-2", "c-1", 1_000)  # a write after the job expires nothing more
    assert _points(client, program, "c-1") == _pts(10)
    assert _points(client, program, "c-2") == _pts(10)

    [(by_job, job_legs)] = _expiries(client, program, "c-1")
    [(by_write, write_legs)] = _expiries(client, program, "c-2")
    assert job_legs == _expiry_legs("c-1", 100)
    assert write_legs == _expiry_legs("c-2", 100)
    for key in ("description", "occurred_at", "points", "cashback"):
        assert by_job[key] == by_write[key], key
    # c-2's expiry is booked before its purchase: newest first, B-2, expiry, B-1.
    assert [i["type"] for i in _activity(client, program, "c-2")] == ["purchase_accrual", "points_expiry",
                                                                       "purchase_accrual"]
    assert _account_total(client, program, "house/points/expired") == 200
    verify()


# --------------------------------------------------------------------------- refunds


@pytest.mark.parametrize("expired_by", ["job", "the refund's upkeep"])
def test_refund_of_an_expired_lot_takes_it_back_from_expiry(client, make_program, enrol, buy, clock, verify,
                                                            expired_by):
    program = _fixed(make_program)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points (expire 2026-12-06T23:00Z), 200 cashback pending
    if expired_by == "job":
        _set(clock, "2026-12-06T23:00:00Z")
        assert _jobs(client, clock) == 100

    _set(clock, "2026-12-07T10:00:00Z")  # cashback still pending (until 2026-12-26)
    refund = _refund(client, program, "A-1", "F-1")  # the upkeep books the expiry first if no job did
    [(_, expiry_legs)] = _expiries(client, program, "c-1")
    assert expiry_legs == _expiry_legs("c-1", 100)
    assert (refund["points_reversed"], refund["cashback_reversed"]) == (100, 200)
    assert refund["points_uncollected"] == 0
    assert refund["balances"]["points"] == _pts(0)  # not -100: the customer is not charged twice
    assert refund["balances"]["cashback"] == _pts(0)
    assert _legs(client, program, refund["transaction_id"]) == {
        "house/points/issued/purchase": 100, "house/points/expired": -100,
        "house/cashback/funding/purchase": 200, "customer/c-1/cashback/pending": -200}
    assert _account_total(client, program, "house/points/expired") == 0  # 100 - 100
    assert _activity(client, program, "c-1")[0]["points"] == _pts(0)

    clock.advance(days=60)
    assert _jobs(client, clock) == 0
    assert _points(client, program, "c-1") == _pts(0)
    verify()


def test_refunds_after_partial_spending_and_partial_expiry(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 200 cashback; expire 2026-12-06T23:00Z
    _set(clock, "2026-12-01T12:00:00Z")
    _bought(buy, program, "A-2", "c-1", 5_000)  # 50 points, 100 cashback; last day 2026-12-11 -> 23:00Z
    clock.advance(days=1)
    _hold_and_capture(client, program, "R-1", "c-1", 30)  # from A-1's lot (soonest): 70 left of it
    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 70
    assert _points(client, program, "c-1") == _pts(50)

    _set(clock, "2026-12-07T12:00:00Z")
    # Half: the order keeps 50 points (and 100 cashback), so 50 go back; 70 of its lot expired,
    # so all 50 come from expiry and none from the customer.
    half = _refund(client, program, "A-1", "F-1", 5_000)
    assert (half["points_reversed"], half["cashback_reversed"], half["points_uncollected"]) == (50, 100, 0)
    assert half["balances"]["points"] == _pts(50)
    assert _legs(client, program, half["transaction_id"]) == {
        "house/points/issued/purchase": 50, "house/points/expired": -50,
        "house/cashback/funding/purchase": 100, "customer/c-1/cashback/pending": -100}
    # The rest: 50 more; only 70 - 50 = 20 expired ones are left, so 30 come from available (50 -> 20).
    rest = _refund(client, program, "A-1", "F-2")
    assert (rest["points_reversed"], rest["cashback_reversed"], rest["points_uncollected"]) == (50, 100, 0)
    assert rest["balances"]["points"] == _pts(20)
    assert _legs(client, program, rest["transaction_id"]) == {
        "house/points/issued/purchase": 50, "house/points/expired": -20, "customer/c-1/points/available": -30,
        "house/cashback/funding/purchase": 100, "customer/c-1/cashback/pending": -100}
    assert _account_total(client, program, "house/points/expired") == 0  # 70 - 50 - 20

    # The 30 came out of A-2's lot: 20 of it left, expiring at the end of 2026-12-11.
    assert _items(_expiring(client, program, "c-1")) == [(20, datetime(2026, 12, 11, 23, tzinfo=UTC), "2026-12-11")]
    _set(clock, "2026-12-11T23:00:00Z")
    assert _jobs(client, clock) == 20
    assert _points(client, program, "c-1") == _pts(0)
    verify()


def _paid_with_points(client: Any, make_program: Any, enrol: Any, buy: Any, clock: Any, policy: str) -> Any:
    """A-1 earns 100 points (expire 2026-12-06T23:00Z); a day later 40 of them (worth 40 cents) pay for
    order O-9 of 50 cents, which earns floor((50 - 40) / 100) = 0 points. 60 of A-1's lot are left."""
    program = _fixed(make_program, restored_after_expiry=policy, cashback_rate_bps=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=1)
    _hold_and_capture(client, program, "R-1", "c-1", 40, order_id="O-9", order_amount=50)
    assert _bought(buy, program, "O-9", "c-1", 50)["points_earned"] == 0
    return program


def test_restored_points_keep_the_latest_expiry_of_the_lots_they_came_from(client, make_program, enrol, buy,
                                                                           clock, verify):
    program = _paid_with_points(client, make_program, enrol, buy, clock, "reissue")
    clock.advance(days=1)  # 2026-11-28
    _bought(buy, program, "B-1", "c-1", 5_000)  # 50 points, last day 2026-12-08 -> 2026-12-08T23:00Z
    # 80 points pay for O-8 (1_000 cents, earns floor(920 / 100) = 9): 60 from A-1's lot, then 20 from B-1's.
    _hold_and_capture(client, program, "R-2", "c-1", 80, order_id="O-8", order_amount=1_000)
    assert _bought(buy, program, "O-8", "c-1", 1_000)["points_earned"] == 9  # last day 2026-12-08 too
    _set(clock, "2026-12-01T12:00:00Z")  # before both expiries: O-9's 40 keep A-1's date
    assert _refund(client, program, "O-9", "F-1")["points_restored"] == 40
    _set(clock, "2026-12-07T12:00:00Z")  # A-1's date has passed, B-1's has not: O-8's 80 keep B-1's
    refund = _refund(client, program, "O-8", "F-2")
    # 2026-12-06T23:00Z has passed: the refund's upkeep first expires O-9's restored 40 (A-1's date).
    # Then 80 restored and O-8's own 9 points clawed back (from its own lot): 30 + 9 + 80 - 9 = 110.
    assert (refund["points_restored"], refund["points_reversed"]) == (80, 9)
    assert refund["balances"]["points"] == _pts(110)
    assert _items(_expiring(client, program, "c-1")) == [
        (110, datetime(2026, 12, 8, 23, tzinfo=UTC), "2026-12-08")]  # 30 of B-1 + 80 restored
    _set(clock, "2026-12-08T23:00:00Z")
    assert _jobs(client, clock) == 110
    assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 40),
                                                                      _expiry_legs("c-1", 110)]
    verify()


@pytest.mark.parametrize("policy", ["reissue", "expire"])
def test_restored_points_whose_lot_expired(client, make_program, enrol, buy, clock, verify, policy):
    program = _paid_with_points(client, make_program, enrol, buy, clock, policy)
    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 60  # 100 - 40 spent

    _set(clock, "2026-12-07T12:00:00Z")
    refund = _refund(client, program, "O-9", "F-1")
    assert refund["points_restored"] == 40  # 40 * 50 / 50
    if policy == "reissue":
        assert _legs(client, program, refund["transaction_id"]) == {"house/points/redeemed": -40,
                                                                    "customer/c-1/points/available": 40}
        # A new life of 30 days: 2026-12-07 + 30 = 2027-01-06 -> 2027-01-06T23:00Z.
        assert refund["balances"]["points"] == _pts(40)
        assert _items(_expiring(client, program, "c-1")) == [(40, datetime(2027, 1, 6, 23, tzinfo=UTC), "2027-01-06")]
        _set(clock, "2027-01-06T22:59:59Z")
        assert _jobs(client, clock) == 0
        assert _points(client, program, "c-1") == _pts(40)
        _set(clock, "2027-01-06T23:00:00Z")
        assert _jobs(client, clock) == 40
        assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 60),
                                                                          _expiry_legs("c-1", 40)]
    else:
        # Their lot's life ended on 2026-12-06: the refund books them from redeemed straight to
        # expired, in its own transaction; the customer's balance never shows them.
        assert _legs(client, program, refund["transaction_id"]) == {"house/points/redeemed": -40,
                                                                    "house/points/expired": 40}
        assert refund["balances"]["points"] == _pts(0)
        assert _expiring(client, program, "c-1")["items"] == []
        assert "40 points you paid with had already expired" in _activity(client, program, "c-1")[0]["description"]
        assert _jobs(client, clock) == 0
        assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 60)]
    assert _points(client, program, "c-1") == _pts(0)
    assert _account_total(client, program, "house/points/expired") == 100  # 60 + 40
    verify()


def test_restored_points_expire_at_once_despite_an_unrelated_hold(client, make_program, enrol, buy, clock, verify):
    program = _paid_with_points(client, make_program, enrol, buy, clock, "expire")
    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 60
    _set(clock, "2026-12-07T10:00:00Z")  # 11:00 local
    _bought(buy, program, "B-1", "c-1", 5_000)  # 50 points, last day 2026-12-17 -> 2026-12-17T23:00Z
    _hold(client, program, "R-2", "c-1", 30, ttl_seconds=86_400)  # 30 of B-1's points: 20 available
    refund = _refund(client, program, "O-9", "F-1")
    assert refund["points_restored"] == 40
    # The 40 restored points' life ended on 2026-12-06: all 40 go to expired; the hold still holds B-1's 30.
    assert refund["balances"]["points"] == _pts(20, 0, 30)
    assert _legs(client, program, refund["transaction_id"]) == {"house/points/redeemed": -40,
                                                                "house/points/expired": 40}
    assert [legs for _, legs in _expiries(client, program, "c-1")] == [_expiry_legs("c-1", 60)]
    _capture(client, program, "R-2")
    assert _points(client, program, "c-1") == _pts(20)  # 50 - 30
    verify()


def test_restored_points_expire_at_once_rather_than_repay_a_debt(client, make_program, enrol, buy, clock, verify):
    program = _paid_with_points(client, make_program, enrol, buy, clock, "expire")
    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 60
    _bought(buy, program, "B-1", "c-1", 5_000)  # 50 points
    _hold_and_capture(client, program, "R-2", "c-1", 50)  # spent: 0 available
    assert _refund(client, program, "B-1", "F-0")["balances"]["points"] == _pts(-50)  # spent, then clawed back
    refund = _refund(client, program, "O-9", "F-1")
    assert refund["points_restored"] == 40
    # Their life ended on 2026-12-06: they go to expired (40) and the debt stays -50.
    assert refund["balances"]["points"] == _pts(-50)
    assert _legs(client, program, refund["transaction_id"]) == {"house/points/redeemed": -40,
                                                                "house/points/expired": 40}
    assert _account_total(client, program, "house/points/expired") == 100  # 60 + 40
    verify()


# --------------------------------------------------------------------------- inactivity


def test_inactivity_expires_everything_after_days_without_activity(client, make_program, enrol, buy, clock,
                                                                   verify):
    program = make_program(timezone=PARIS, points_expiry="inactivity", inactivity_days=30,
                           cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 200 cashback available
    # 2026-11-26 + 30 = 2026-12-26 -> 2026-12-26T23:00Z.
    expiring = _expiring(client, program, "c-1")
    assert expiring["policy"] == "inactivity"
    assert _at(expiring["last_activity_at"]) == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert _items(expiring) == [(100, datetime(2026, 12, 26, 23, tzinfo=UTC), "2026-12-26")]

    _set(clock, "2026-12-16T12:00:00Z")
    _bought(buy, program, "A-2", "c-1", 5_000)  # 50 points, 100 cashback; now 2026-12-16 + 30 = 2027-01-15
    _set(clock, "2026-12-26T23:00:00Z")
    assert _jobs(client, clock) == 0
    assert _points(client, program, "c-1") == _pts(150)

    _set(clock, "2027-01-10T12:00:00Z")
    _hold_and_capture(client, program, "R-1", "c-1", 10)  # a captured redemption: 2027-01-10 + 30 = 2027-02-09
    _set(clock, "2027-01-15T23:00:00Z")
    assert _jobs(client, clock) == 0
    assert _items(_expiring(client, program, "c-1")) == [(140, datetime(2027, 2, 9, 23, tzinfo=UTC), "2027-02-09")]

    _set(clock, "2027-02-09T22:59:59Z")
    assert _jobs(client, clock) == 0
    _set(clock, "2027-02-09T23:00:00Z")
    assert _jobs(client, clock) == 140  # 150 - 10
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _pts(0)
    assert balances["cashback"] == _pts(300)  # 200 + 100: cashback never expires
    [(item, legs)] = _expiries(client, program, "c-1")
    assert legs == _expiry_legs("c-1", 140)
    assert item["description"] == ("140 points expired without a purchase or redemption for too long; "
                                   "they were valid until 2027-02-09")
    verify()


# --------------------------------------------------------------------------- the expiring read, cashback


def test_expiring_lists_amounts_by_date_soonest_first(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, last day 2026-12-06
    _bought(buy, program, "A-2", "c-1", 2_000)  # 20 points, same day
    clock.advance(days=3)  # 2026-11-29
    _patch(client, program, points_life_days=5)
    _bought(buy, program, "A-3", "c-1", 3_000)  # 30 points, last day 2026-12-04 -> 23:00Z
    _patch(client, program, points_hold_days=7)
    # 10 points pending until 2026-12-06T12:00Z; life from then: 2026-12-06 + 5 = 2026-12-11 -> 23:00Z.
    pending = _bought(buy, program, "A-4", "c-1", 1_000)
    assert _at(pending["points_available_at"]) == datetime(2026, 12, 6, 12, tzinfo=UTC)

    expiring = _expiring(client, program, "c-1")
    assert (expiring["customer_id"], expiring["policy"], expiring["total"]) == ("c-1", "fixed", 160)
    assert expiring["last_activity_at"] is None
    assert _items(expiring) == [
        (30, datetime(2026, 12, 4, 23, tzinfo=UTC), "2026-12-04"),
        (120, datetime(2026, 12, 6, 23, tzinfo=UTC), "2026-12-06"),  # 100 + 20
        (10, datetime(2026, 12, 11, 23, tzinfo=UTC), "2026-12-11")]

    _set(clock, "2026-12-04T23:00:00Z")
    assert _jobs(client, clock) == 30
    _set(clock, "2026-12-06T23:00:00Z")
    assert _jobs(client, clock) == 120
    assert _points(client, program, "c-1") == _pts(10)  # released at 12:00Z
    assert _items(_expiring(client, program, "c-1")) == [(10, datetime(2026, 12, 11, 23, tzinfo=UTC), "2026-12-11")]
    _set(clock, "2026-12-11T23:00:00Z")
    assert _jobs(client, clock) == 10
    assert _expiring(client, program, "c-1")["total"] == 0
    verify()


def test_cashback_never_expires(client, make_program, enrol, buy, clock, verify):
    program = _fixed(make_program, cashback_rate_bps=500, cashback_hold_days=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 500 cashback available at once
    clock.advance(days=2 * 365)
    assert _jobs(client, clock) == 100
    _bought(buy, program, "A-2", "c-1", 2_000)  # 20 points, 100 cashback
    clock.advance(days=2 * 365)
    assert _jobs(client, clock) == 20
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _pts(0)
    assert balances["cashback"] == _pts(600)  # 500 + 100
    assert len(_expiries(client, program, "c-1")) == 2  # each checked for cashback legs
    assert not [e for e in _entries(client, program) if e["account"].startswith("house/cashback/expired")]
    verify()

