"""Refunds (issue 3): claw back exactly what the order earned, pending value first; give back the
points and cashback that paid for it; what cannot be clawed back goes negative or is written off.

Default program (conftest `program`): 1 point per euro available at once, 2% cashback pending 30 days.
Every test ends with `verify()`: the ledger sums to zero per asset, cached balances equal entries.
"""
from __future__ import annotations

from typing import Any

from ledger.services.releases import run_jobs
from tests.helpers import account_total as _account_total, ledger_entries as _entries, transaction_legs as _legs

PROBLEM = "application/problem+json"


# --------------------------------------------------------------------------- helpers


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None,
            lines: list[dict] | None = None, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    if lines is not None:
        body["lines"] = lines
    return client.post(f"/v1/purchases/{order_id}/refunds", json=body,
                       headers=program.headers("storefront", **(headers or {})))


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code and body["status"] == status, body
    return body


def _hold_and_capture(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int,
                      asset: str = "points", order_id: str | None = None, order_amount: int | None = None) -> None:
    body: dict[str, Any] = {"redemption_id": redemption_id, "customer_id": customer_id, "asset": asset,
                            "amount": amount}
    if order_id is not None:
        body["order_id"] = order_id
    if order_amount is not None:
        body["order_amount"] = order_amount
    _ok(client.post("/v1/redemptions", json=body, headers=program.headers("storefront")))
    _ok(client.post(f"/v1/redemptions/{redemption_id}/capture", json={}, headers=program.headers("storefront")), 200)


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")), 200)





def _activity(client: Any, program: Any, customer_id: str) -> list[dict]:
    return _ok(client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app")),
               200)["items"]


def _bucket(available: int, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}


def _uow(client: Any) -> Any:
    return client.application.extensions["ledger"].uow


def _bought(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, **extra: Any) -> dict:
    return _ok(buy(program, order_id, customer_id, amount, **extra))


# --------------------------------------------------------------------------- clawback of earnings


def test_full_refund_reverses_exactly_what_was_earned_pending_first(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 12_345)
    assert (purchase["points_earned"], purchase["cashback_earned"]) == (123, 246)

    data = _ok(_refund(client, program, "A-1", "F-1", 12_345))
    assert data["refund_id"] == "F-1"
    assert data["amount"] == 12_345
    assert data["points_reversed"] == purchase["points_earned"]
    assert data["cashback_reversed"] == purchase["cashback_earned"]
    assert (data["points_restored"], data["cashback_restored"]) == (0, 0)
    assert (data["points_uncollected"], data["cashback_uncollected"]) == (0, 0)
    assert data["balances"]["points"] == _bucket(0)
    assert data["balances"]["cashback"] == _bucket(0, 0)  # the pending cashback went

    assert _legs(client, program, data["transaction_id"]) == {
        "house/points/issued/purchase": 123, "customer/c-1/points/available": -123,
        "house/cashback/funding/purchase": 246, "customer/c-1/cashback/pending": -246,
    }
    # The pending release never happens.
    clock.advance(days=31)
    assert run_jobs(_uow(client), clock)["releases"] == 0
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _bucket(0) and balances["cashback"] == _bucket(0)
    assert "release" not in [item["type"] for item in _activity(client, program, "c-1")]
    assert verify().entries == 4 + 4


def test_refund_without_amount_refunds_the_rest(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    first = _ok(_refund(client, program, "A-1", "F-1", 4_000))
    rest = _ok(_refund(client, program, "A-1", "F-2"))
    assert rest["amount"] == 6_000
    assert first["points_reversed"] + rest["points_reversed"] == 100
    assert first["cashback_reversed"] + rest["cashback_reversed"] == 200
    _problem(_refund(client, program, "A-1", "F-3"), 422, "refund_exceeds_purchase")  # nothing left
    verify()


def test_partial_refunds_add_up_exactly_to_the_earnings(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 10_001)
    assert (purchase["points_earned"], purchase["cashback_earned"]) == (100, 200)

    refunds = [_ok(_refund(client, program, "A-1", f"F-{i}", amount))
               for i, amount in enumerate([3_333, 3_333, 3_335])]
    # What the order keeps: 10_001 -> 100/200, 6_668 -> 66/133, 3_335 -> 33/66, 0 -> 0/0.
    assert [r["points_reversed"] for r in refunds] == [34, 33, 33]
    assert [r["cashback_reversed"] for r in refunds] == [67, 67, 66]
    assert sum(r["points_reversed"] for r in refunds) == purchase["points_earned"]
    assert sum(r["cashback_reversed"] for r in refunds) == purchase["cashback_earned"]
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _bucket(0) and balances["cashback"] == _bucket(0)
    assert _account_total(client, program, "house/points/issued/purchase") == 0
    assert _account_total(client, program, "house/cashback/funding/purchase") == 0
    _problem(_refund(client, program, "A-1", "F-9", 1), 422, "refund_exceeds_purchase")
    verify()


def test_partial_refunds_add_up_at_awkward_rates(client, make_program, enrol, buy, verify):
    program = make_program(points_per_unit=7, unit_amount=300, cashback_rate_bps=333, cashback_hold_days=5)
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 9_999)
    assert purchase["points_earned"] == 9_999 * 7 // 300
    assert purchase["cashback_earned"] == 9_999 * 333 // 10_000
    amounts = [1, 1_234, 2_345, 299, 3_456, 2_664]
    assert sum(amounts) == 9_999
    refunds = [_ok(_refund(client, program, "A-1", f"F-{i}", amount)) for i, amount in enumerate(amounts)]
    assert all(r["points_reversed"] >= 0 and r["cashback_reversed"] >= 0 for r in refunds)
    assert sum(r["points_reversed"] for r in refunds) == purchase["points_earned"]
    assert sum(r["cashback_reversed"] for r in refunds) == purchase["cashback_earned"]
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _bucket(0) and balances["cashback"] == _bucket(0)
    verify()


def test_partial_refund_while_pending_leaves_only_the_rest_to_release(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    data = _ok(_refund(client, program, "A-1", "F-1", 5_000))
    assert (data["points_reversed"], data["cashback_reversed"]) == (50, 100)
    assert data["balances"]["cashback"] == _bucket(0, 100)
    clock.advance(days=31)
    assert run_jobs(_uow(client), clock)["releases"] == 1
    assert run_jobs(_uow(client), clock)["releases"] == 0
    balances = _balances(client, program, "c-1")
    assert balances["cashback"] == _bucket(100, 0) and balances["points"] == _bucket(50)
    verify()


def test_refund_of_pending_points(client, make_program, enrol, buy, clock, verify):
    program = make_program(points_hold_days=14, cashback_rate_bps=200, cashback_hold_days=30)
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 5_000)  # 50 points, 100 cents, all pending
    _bought(buy, program, "A-1", "c-1", 10_000)
    data = _ok(_refund(client, program, "A-1", "F-1", 2_500))
    assert (data["points_reversed"], data["cashback_reversed"]) == (25, 50)
    assert data["balances"]["points"] == _bucket(0, 125)
    assert _legs(client, program, data["transaction_id"])["customer/c-1/points/pending"] == -25
    clock.advance(days=15)
    assert run_jobs(_uow(client), clock)["releases"] == 2
    assert _balances(client, program, "c-1")["points"] == _bucket(125, 0)
    clock.advance(days=16)
    assert run_jobs(_uow(client), clock)["releases"] == 2
    assert _balances(client, program, "c-1")["cashback"] == _bucket(250, 0)
    rest = _ok(_refund(client, program, "A-1", "F-2"))
    assert (rest["points_reversed"], rest["cashback_reversed"]) == (75, 150)
    assert _balances(client, program, "c-1")["points"] == _bucket(50)
    assert _balances(client, program, "c-1")["cashback"] == _bucket(100)
    verify()


def test_refund_uses_the_rates_recorded_on_the_accrual(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    patched = client.patch("/v1/program", json={"points_per_unit": 10, "cashback_rate_bps": 500},
                           headers=program.headers("admin"))
    assert patched.status_code == 200, patched.get_data(as_text=True)
    data = _ok(_refund(client, program, "A-1", "F-1", 5_000))
    assert (data["points_reversed"], data["cashback_reversed"]) == (50, 100)
    rest = _ok(_refund(client, program, "A-1", "F-2"))
    assert (rest["points_reversed"], rest["cashback_reversed"]) == (50, 100)
    verify()


def test_refund_after_the_release_takes_from_available(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=31)
    assert run_jobs(_uow(client), clock)["releases"] == 1
    assert _balances(client, program, "c-1")["cashback"] == _bucket(200, 0)

    data = _ok(_refund(client, program, "A-1", "F-1", 5_000))
    assert (data["points_reversed"], data["cashback_reversed"]) == (50, 100)
    assert data["balances"]["cashback"] == _bucket(100, 0)
    assert _legs(client, program, data["transaction_id"]) == {
        "house/points/issued/purchase": 50, "customer/c-1/points/available": -50,
        "house/cashback/funding/purchase": 100, "customer/c-1/cashback/available": -100,
    }
    assert run_jobs(_uow(client), clock)["releases"] == 0
    verify()


def test_refund_after_the_window_but_before_the_job_releases_first(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=31)  # due, not yet booked
    data = _ok(_refund(client, program, "A-1", "F-1", 5_000))
    assert data["cashback_reversed"] == 100
    assert data["balances"]["cashback"] == _bucket(100, 0)
    assert run_jobs(_uow(client), clock)["releases"] == 0  # the refund's write booked the release
    assert [i["type"] for i in _activity(client, program, "c-1")] == ["refund", "release", "purchase_accrual"]
    verify()


# --------------------------------------------------------------------------- refunds by lines


LINES = [{"sku": "A", "quantity": 3, "unit_price": 1_000, "discount": 100},  # net 2_900
         {"sku": "B", "quantity": 1, "unit_price": 2_000}]                    # net 2_000
ORDER_WITH_LINES = {"lines": LINES, "tax": 500, "shipping": 300}             # amount 5_700


def test_refund_by_lines(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    purchase = _bought(buy, program, "L-1", "c-1", 5_700, **ORDER_WITH_LINES)
    assert (purchase["points_earned"], purchase["cashback_earned"]) == (57, 114)

    first = _ok(_refund(client, program, "L-1", "F-1", lines=[{"sku": "A", "quantity": 2}]))
    assert first["amount"] == 2 * 2_900 // 3  # 1_933
    # Keeps what 5_700 - 1_933 = 3_767 earns: 37 points, 75 cents.
    assert (first["points_reversed"], first["cashback_reversed"]) == (57 - 37, 114 - 75)

    _problem(_refund(client, program, "L-1", "F-2", lines=[{"sku": "A", "quantity": 2}]), 422,
             "refund_exceeds_purchase")  # 4 of 3 in all
    _problem(_refund(client, program, "L-1", "F-2", lines=[{"sku": "B", "quantity": 2}]), 422,
             "refund_exceeds_purchase")
    _problem(_refund(client, program, "L-1", "F-2", lines=[{"sku": "Z", "quantity": 1}]), 422,
             "refund_exceeds_purchase")

    _problem(_refund(client, program, "L-1", "F-2", lines=[{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]),
             422, "refund_exceeds_purchase")  # 2 + 2 of 3, counted across the lines of one refund
    second = _ok(_refund(client, program, "L-1", "F-2",
                         lines=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]))
    assert second["amount"] == 1 * 2_900 // 3 + 2_000  # 2_966
    # Tax, shipping and the rounding cent are refunded only through an amount.
    left = 5_700 - 1_933 - 2_966
    _problem(_refund(client, program, "L-1", "F-3", left + 1), 422, "refund_exceeds_purchase")
    last = _ok(_refund(client, program, "L-1", "F-3", left))
    refunds = [first, second, last]
    assert sum(r["points_reversed"] for r in refunds) == 57
    assert sum(r["cashback_reversed"] for r in refunds) == 114
    verify()


def test_refund_by_lines_of_an_order_without_lines(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 5_000)
    _problem(_refund(client, program, "A-1", "F-1", lines=[{"sku": "A", "quantity": 1}]), 422,
             "refund_exceeds_purchase")
    assert verify().entries == 4


# --------------------------------------------------------------------------- refusals, replays


def test_refunds_cannot_exceed_the_purchase(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _problem(_refund(client, program, "A-1", "F-1", 10_001), 422, "refund_exceeds_purchase")
    _ok(_refund(client, program, "A-1", "F-1", 6_000))
    count = len(_entries(client, program))
    _problem(_refund(client, program, "A-1", "F-2", 4_001), 422, "refund_exceeds_purchase")
    assert len(_entries(client, program)) == count  # a refused refund writes nothing
    _ok(_refund(client, program, "A-1", "F-2", 4_000))
    _problem(_refund(client, program, "A-1", "F-3", 1), 422, "refund_exceeds_purchase")
    verify()


def test_refund_of_an_unknown_order(client, program, make_program, enrol, buy, verify):
    _problem(_refund(client, program, "nope", "F-1", 100), 404, "order_not_found")
    other = make_program(name="Other shop")
    enrol(other, "c-1")
    _bought(buy, other, "A-1", "c-1", 10_000)
    _problem(_refund(client, program, "A-1", "F-1", 100), 404, "order_not_found")  # another program's order
    verify()


def test_duplicate_refund_and_exact_replay(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _bought(buy, program, "A-2", "c-1", 10_000)
    first = _refund(client, program, "A-1", "F-1", 3_000)
    assert first.status_code == 201
    count = len(_entries(client, program))

    again = _refund(client, program, "A-1", "F-1", 3_000)
    assert again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(_entries(client, program)) == count

    _problem(_refund(client, program, "A-1", "F-1", 3_001), 409, "duplicate_refund")
    _problem(_refund(client, program, "A-2", "F-1", 3_000), 409, "duplicate_refund")
    assert len(_entries(client, program)) == count
    assert _balances(client, program, "c-1")["points"] == _bucket(170)
    verify()


def test_refund_roles(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    for role in ("admin", "app", "finance"):
        _problem(client.post("/v1/purchases/A-1/refunds", json={"refund_id": "F-1"}, headers=program.headers(role)),
                 403, "forbidden")
    assert verify().entries == 4


# --------------------------------------------------------------------------- clawback policies


def _spent_program(make_program: Any, enrol: Any, buy: Any, client: Any, policy: str) -> Any:
    """A customer earned 100 points and 200 cents on A-1, then spent 80 points and 150 cents elsewhere."""
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0, clawback_policy=policy)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _hold_and_capture(client, program, "R-1", "c-1", 80)
    _hold_and_capture(client, program, "R-2", "c-1", 150, asset="cashback")
    assert _balances(client, program, "c-1")["points"] == _bucket(20)
    return program


def test_allow_negative_clawback_goes_negative_and_is_repaid(client, make_program, enrol, buy, verify):
    program = _spent_program(make_program, enrol, buy, client, "allow_negative")
    data = _ok(_refund(client, program, "A-1", "F-1"))
    assert (data["points_reversed"], data["cashback_reversed"]) == (100, 200)
    assert (data["points_uncollected"], data["cashback_uncollected"]) == (80, 150)
    assert data["balances"]["points"] == _bucket(-80)
    assert data["balances"]["cashback"] == _bucket(-150)
    assert _legs(client, program, data["transaction_id"]) == {
        "house/points/issued/purchase": 100, "customer/c-1/points/available": -100,
        "house/cashback/funding/purchase": 200, "customer/c-1/cashback/available": -200,
    }
    assert _account_total(client, program, "house/points/written_off") == 0

    # A later purchase repays the debt first.
    later = _bought(buy, program, "A-2", "c-1", 10_000)
    assert later["balances"]["points"] == _bucket(20)
    assert later["balances"]["cashback"] == _bucket(50)
    _problem(client.post("/v1/redemptions", json={"redemption_id": "R-3", "customer_id": "c-1", "asset": "points",
                                                  "amount": 21}, headers=program.headers("storefront")),
             422, "insufficient_balance")
    verify()


def test_allow_negative_debt_is_repaid_by_a_later_release(client, make_program, enrol, buy, clock, verify):
    program = make_program(points_hold_days=14)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points pending
    clock.advance(days=15)
    assert run_jobs(_uow(client), clock)["releases"] == 1
    _bought(buy, program, "A-2", "c-1", 10_000)  # 100 more, pending
    _hold_and_capture(client, program, "R-1", "c-1", 100)  # spends A-1's points
    data = _ok(_refund(client, program, "A-1", "F-1"))
    # A-1's value no longer sits in pending: it comes out of available. A-2's pending points are not A-1's.
    assert (data["points_reversed"], data["points_uncollected"]) == (100, 100)
    assert data["balances"]["points"] == _bucket(-100, 100)
    assert "customer/c-1/points/pending" not in _legs(client, program, data["transaction_id"])
    clock.advance(days=15)
    assert run_jobs(_uow(client), clock)["releases"] == 1
    assert _balances(client, program, "c-1")["points"] == _bucket(0, 0)
    verify()


def test_write_off_clawback_floors_at_zero(client, make_program, enrol, buy, verify):
    program = _spent_program(make_program, enrol, buy, client, "write_off")
    data = _ok(_refund(client, program, "A-1", "F-1"))
    assert (data["points_reversed"], data["cashback_reversed"]) == (100, 200)
    assert (data["points_uncollected"], data["cashback_uncollected"]) == (80, 150)
    assert data["balances"]["points"] == _bucket(0)
    assert data["balances"]["cashback"] == _bucket(0)
    assert _legs(client, program, data["transaction_id"]) == {
        "house/points/issued/purchase": 100, "customer/c-1/points/available": -20,
        "house/points/written_off": -80,
        "house/cashback/funding/purchase": 200, "customer/c-1/cashback/available": -50,
        "house/cashback/written_off": -150,
    }
    written_off = [e for e in _entries(client, program) if e["account"].endswith("/written_off")]
    assert sorted((e["account"], e["amount"]) for e in written_off) == [
        ("house/cashback/written_off", -150), ("house/points/written_off", -80)]

    later = _bought(buy, program, "A-2", "c-1", 10_000)  # nothing owed: all of it is spendable
    assert later["balances"]["points"] == _bucket(100)
    assert later["balances"]["cashback"] == _bucket(200)
    verify()


def test_write_off_takes_pending_first_then_available(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, clawback_policy="write_off")  # cashback pending 30 days
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _hold_and_capture(client, program, "R-1", "c-1", 90)
    data = _ok(_refund(client, program, "A-1", "F-1"))
    assert (data["points_uncollected"], data["cashback_uncollected"]) == (90, 0)
    assert data["balances"]["cashback"] == _bucket(0, 0)
    assert data["balances"]["points"] == _bucket(0)
    legs = _legs(client, program, data["transaction_id"])
    assert legs["customer/c-1/cashback/pending"] == -200
    assert legs["house/points/written_off"] == -90
    verify()


# --------------------------------------------------------------------------- orders paid with points


def _snapshot(client: Any, program: Any, customer_id: str) -> dict:
    balances = _balances(client, program, customer_id)
    return {"points": balances["points"], "cashback": balances["cashback"]}


def test_full_refund_of_a_points_paid_order_restores_the_customer(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 20_000)  # 200 points, 400 cents
    before = _snapshot(client, program, "c-1")
    assert before == {"points": _bucket(200), "cashback": _bucket(400)}

    _hold_and_capture(client, program, "P-1", "c-1", 150, order_id="A-1", order_amount=10_000)
    _hold_and_capture(client, program, "P-2", "c-1", 300, asset="cashback", order_id="A-1", order_amount=10_000)
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)  # the gross total, points-paid part included
    # The 450 cents paid with points (150 at 1 cent each) and cashback (300) do not earn: 9_550 does.
    assert (purchase["points_earned"], purchase["cashback_earned"]) == (95, 191)

    data = _ok(_refund(client, program, "A-1", "F-1", 10_000))
    assert (data["points_reversed"], data["cashback_reversed"]) == (95, 191)
    assert (data["points_restored"], data["cashback_restored"]) == (150, 300)
    assert (data["points_uncollected"], data["cashback_uncollected"]) == (0, 0)
    assert _snapshot(client, program, "c-1") == before
    assert {"points": data["balances"]["points"], "cashback": data["balances"]["cashback"]} == before
    legs = _legs(client, program, data["transaction_id"])
    assert legs["house/points/redeemed"] == -150 and legs["house/cashback/redeemed"] == -300
    assert _account_total(client, program, "house/points/redeemed") == 0
    assert _account_total(client, program, "house/cashback/redeemed") == 0
    verify()


def test_full_refund_of_a_points_paid_order_with_pending_cashback(client, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 20_000)  # 200 points, 400 cents pending
    before = _snapshot(client, program, "c-1")
    _hold_and_capture(client, program, "P-1", "c-1", 170, order_id="A-1", order_amount=10_000)
    _bought(buy, program, "A-1", "c-1", 10_000)

    data = _ok(_refund(client, program, "A-1", "F-1"))
    # 170 cents of the 10_000 were paid with points: 9_830 earned 98 points and 196 cents.
    assert (data["points_reversed"], data["cashback_reversed"], data["points_restored"]) == (98, 196, 170)
    assert _snapshot(client, program, "c-1") == before

    # The activity feed says what happened, and the signed changes add up.
    item = _activity(client, program, "c-1")[0]
    assert item["type"] == "refund"
    assert item["reference"]["id"] == "F-1"
    assert item["points"] == _bucket(-98 + 170)
    assert item["cashback"] == _bucket(0, -196)
    description = item["description"]
    assert "A-1" in description and "refund" in description.lower()
    assert "98 points" in description and "170 points" in description and "1.96 EUR" in description

    clock.advance(days=31)
    run_jobs(_uow(client), clock)
    after = _snapshot(client, program, "c-1")
    assert after == {"points": _bucket(200), "cashback": _bucket(400, 0)}  # only A-0's cashback released
    verify()


def test_partial_refunds_restore_the_paid_share_cumulatively(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 20_000)
    before = _snapshot(client, program, "c-1")
    _hold_and_capture(client, program, "P-1", "c-1", 150, order_id="A-1", order_amount=10_000)
    _hold_and_capture(client, program, "P-2", "c-1", 299, asset="cashback", order_id="A-1")
    _bought(buy, program, "A-1", "c-1", 10_000)

    refunds = [_ok(_refund(client, program, "A-1", f"F-{i}", amount))
               for i, amount in enumerate([3_333, 3_333, 3_334])]
    # Cumulatively floor(paid * R / A): 150 -> 49, 99, 150; 299 -> 99, 199, 299.
    assert [r["points_restored"] for r in refunds] == [49, 99 - 49, 150 - 99]
    assert [r["cashback_restored"] for r in refunds] == [99, 199 - 99, 299 - 199]
    # 449 of the 10_000 were paid with rewards: 9_551 earned 95 points (95.51) and 191 cents (191.02).
    # Kept after each refund: what 2/3 and 1/3 of that base earn, floored: 63, 31, 0 and 127, 63, 0.
    assert [r["points_reversed"] for r in refunds] == [95 - 63, 63 - 31, 31]
    assert [r["cashback_reversed"] for r in refunds] == [191 - 127, 127 - 63, 63]
    assert _snapshot(client, program, "c-1") == before
    verify()


def test_restore_is_not_counted_twice_with_a_replay(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 20_000)
    _hold_and_capture(client, program, "P-1", "c-1", 100, order_id="A-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    first = _refund(client, program, "A-1", "F-1", 5_000)
    assert first.get_json()["points_restored"] == 50
    again = _refund(client, program, "A-1", "F-1", 5_000)
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"
    second = _ok(_refund(client, program, "A-1", "F-2", 5_000))
    assert second["points_restored"] == 50
    assert _balances(client, program, "c-1")["points"] == _bucket(200)
    verify()


def test_refund_of_a_points_paid_order_after_spending_its_earnings(client, program, enrol, buy, verify):
    """allow_negative: the clawback of spent earnings and the restore of the paid points both land in available."""
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 5_000)  # 50 points
    _hold_and_capture(client, program, "P-1", "c-1", 50, order_id="A-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # +99: the 50 cents paid with points do not earn
    _hold_and_capture(client, program, "P-2", "c-1", 99)  # spends A-1's points elsewhere
    data = _ok(_refund(client, program, "A-1", "F-1"))
    assert (data["points_reversed"], data["points_restored"]) == (99, 50)
    assert data["balances"]["points"] == _bucket(-99 + 50)
    later = _bought(buy, program, "A-2", "c-1", 10_000)
    assert later["balances"]["points"] == _bucket(51)
    verify()


def test_refund_returns_only_what_the_orders_own_customer_paid(client, make_program, enrol, buy, verify):
    """Alice pays 100 points toward order O-1, which is then recorded for Bob: refunding O-1
    must not hand Alice's points to Bob."""
    shop = make_program(cashback_hold_days=0)
    enrol(shop, "alice")
    enrol(shop, "bob")
    assert buy(shop, "A-0", "alice", 10_000).status_code == 201
    sf = shop.headers("storefront")
    held = client.post("/v1/redemptions", headers=sf, json={
        "redemption_id": "R-1", "customer_id": "alice", "asset": "points", "amount": 100, "order_id": "O-1"})
    assert held.status_code == 201
    assert client.post("/v1/redemptions/R-1/capture", headers=sf, json={}).status_code == 200
    assert buy(shop, "O-1", "bob", 5_000).status_code == 201
    refund = client.post("/v1/purchases/O-1/refunds", headers=sf, json={"refund_id": "F-1"})
    assert refund.status_code == 201
    assert refund.get_json()["points_restored"] == 0
    assert refund.get_json()["points_reversed"] == 50
    bob = client.get("/v1/customers/bob/balances", headers=sf).get_json()["points"]
    alice = client.get("/v1/customers/alice/balances", headers=sf).get_json()["points"]
    assert bob["available"] == 0 and alice["available"] == 0
    verify()
