"""Referrals (issue 5): codes, abuse guards, rewards pending until the qualifying purchase's return
window has passed, reversal by refunds inside the window, caps per referrer per local period,
blocked customers.

The usual program here (`_program`): 1 point per euro available at once, no purchase cashback,
cashback held 30 days (so the return window is 30 days); the referrer earns 500 points and 3.00 EUR
cashback, the referee 200 welcome points, on a first purchase of at least 50.00 EUR.
A referee's qualifying purchase of 60.00 EUR at T0 (2026-11-26T12:00Z) therefore earns them 60
points at once, and its window ends at 2026-12-26T12:00Z.
Every test that writes ends with `verify()`: the ledger sums to zero, cached balances equal entries.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ledger.domain.engagement import REFERRAL_ALPHABET
from ledger.services.releases import run_jobs
from tests.conftest import T0
from tests.helpers import assert_problem, row_counts

WINDOW_END = T0 + timedelta(days=30)  # 2026-12-26T12:00Z
REFERRAL = {"referrer_reward_points": 500, "referrer_reward_cashback": 300, "referee_reward_points": 200,
            "referral_min_purchase": 5_000}


# --------------------------------------------------------------------------- helpers


def _program(make_program: Any, **settings: Any) -> Any:
    return make_program(**{**REFERRAL, **settings})


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _put(client: Any, program: Any, customer_id: str, role: str = "storefront", **body: Any) -> Any:
    return client.put(f"/v1/customers/{customer_id}", json=body, headers=program.headers(role))


def _card(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/referral", headers=program.headers("app")), 200)


def _code(client: Any, program: Any, customer_id: str) -> str:
    return _card(client, program, customer_id)["code"]


def _referrals(client: Any, program: Any, customer_id: str) -> list[dict]:
    return _ok(client.get(f"/v1/customers/{customer_id}/referrals", headers=program.headers("app")), 200)["items"]


def _statuses(client: Any, program: Any, customer_id: str) -> dict[str, str]:
    return {r["referee_id"]: r["status"] for r in _referrals(client, program, customer_id)}


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")), 200)


def _bucket(available: int = 0, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}


def _activity(client: Any, program: Any, customer_id: str) -> list[dict]:
    page = _ok(client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app")), 200)
    assert page["next_cursor"] is None
    return page["items"]


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None) -> Any:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    return client.post(f"/v1/purchases/{order_id}/refunds", json=body, headers=program.headers("storefront"))


def _hold(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int) -> Any:
    return client.post("/v1/redemptions", json={"redemption_id": redemption_id, "customer_id": customer_id,
                                                "asset": "points", "amount": amount},
                       headers=program.headers("storefront"))


def _jobs(client: Any, clock: Any) -> dict[str, int]:
    return run_jobs(client.application.extensions["ledger"].uow, clock)


def _referred(client: Any, program: Any, enrol: Any, referee: str, referrer: str = "A", **profile: Any) -> dict:
    """Enrol `referee` with the referrer's code (the referrer enrolled already)."""
    return enrol(program, referee, referred_by=_code(client, program, referrer), **profile)


def _reward(role: str, customer_id: str, status: str, points: int, cashback: int,
            available_at: datetime | None) -> dict:
    return {"role": role, "customer_id": customer_id, "status": status, "points": points, "cashback": cashback,
            "available_at": available_at}


def _rewards(answer: dict) -> list[dict]:
    """The purchase answer's referral_rewards with instants parsed."""
    return [{**r, "available_at": _at(r["available_at"])} for r in answer["referral_rewards"]]


def _refused(app: Any, response_fn: Any, status: int, code: str, field: str | None = None) -> dict:
    """Assert the request is refused with `code` and writes nothing at all."""
    before = row_counts(app)
    body = assert_problem(response_fn(), status, code, field)
    assert row_counts(app) == before
    return body


# --------------------------------------------------------------------------- the referral card


def test_referral_card_has_the_code_and_a_share_text(client, make_program, enrol, verify):
    program = _program(make_program, referee_reward_cashback=500)
    enrolled = enrol(program, "A", display_name="Ana")

    card = _card(client, program, "A")
    code = card["code"]
    assert code == enrolled["referral_code"]
    assert len(code) == 10 and set(code) <= set(REFERRAL_ALPHABET)
    assert card == {"customer_id": "A", "code": code,
                    "share_text": f"Join Test shop with my code {code} and get 200 points and 5.00 EUR store credit.",
                    "referred_by": None,
                    "referrer_reward": {"points": 500, "cashback": 300},
                    "referee_reward": {"points": 200, "cashback": 500}}
    for role in ("admin", "storefront", "finance"):  # any key reads it
        assert _ok(client.get("/v1/customers/A/referral", headers=program.headers(role)), 200) == card
    # Codes are per customer.
    enrol(program, "B")
    assert _code(client, program, "B") != code
    assert_problem(client.get("/v1/customers/nobody/referral", headers=program.headers("app")), 404,
                   "customer_not_found")
    verify()


def test_share_text_without_a_welcome_reward(client, make_program, enrol, verify):
    program = make_program(name="Plain shop", referrer_reward_points=100)
    enrol(program, "A")
    card = _card(client, program, "A")
    assert card["share_text"] == f"Join Plain shop with my code {card['code']}."
    assert card["referee_reward"] == {"points": 0, "cashback": 0}
    assert card["referrer_reward"] == {"points": 100, "cashback": 0}
    verify()


# --------------------------------------------------------------------------- registering a referral


def test_enrolment_with_a_code_registers_the_referral(app, client, make_program, enrol, verify):
    program = _program(make_program)
    enrol(program, "A")
    code = _code(client, program, "A")

    # The code is read case-insensitively and trimmed.
    response = _put(client, program, "B", referred_by=f" {code.lower()} ")
    assert _ok(response, 201)["customer_id"] == "B"
    assert _card(client, program, "B")["referred_by"] == "A"
    assert _card(client, program, "A")["referred_by"] is None
    [referral] = _referrals(client, program, "A")
    assert _at(referral.pop("registered_at")) == T0
    assert referral == {"referee_id": "B", "status": "registered", "reason": None, "qualified_at": None,
                        "rewarded_at": None, "referrer_reward": {"points": 0, "cashback": 0},
                        "referee_reward": {"points": 0, "cashback": 0}}
    assert _referrals(client, program, "B") == []
    # Registering is not rewarding: nobody has anything yet.
    assert _balances(client, program, "A")["points"] == _bucket()

    # Naming the same code again is a no-op; another code is a conflict. Neither writes anything.
    before = row_counts(app)
    assert _ok(_put(client, program, "B", referred_by=code), 200)["customer_id"] == "B"
    assert row_counts(app) == before
    enrol(program, "C")
    _refused(app, lambda: _put(client, program, "B", referred_by=_code(client, program, "C")), 409,
             "already_referred")
    assert _card(client, program, "B")["referred_by"] == "A"
    assert [r["referee_id"] for r in _referrals(client, program, "A")] == ["B"]
    assert _referrals(client, program, "C") == []
    verify()


def test_an_existing_customer_may_give_a_code_before_buying(client, make_program, enrol, verify):
    program = _program(make_program)
    enrol(program, "A")
    enrol(program, "B", email="b@example.com")
    assert _ok(_put(client, program, "B", referred_by=_code(client, program, "A")), 200)["email"] == "b@example.com"
    assert _statuses(client, program, "A") == {"B": "registered"}
    verify()


def test_code_on_the_first_purchase_registers_and_qualifies(client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A", display_name="Ana")
    enrol(program, "B", display_name="Bea")

    answer = _ok(buy(program, "B-1", "B", 6_000, referred_by=_code(client, program, "A")))
    assert (answer["points_earned"], answer["cashback_earned"]) == (60, 0)
    assert _rewards(answer) == [_reward("referrer", "A", "pending", 500, 300, WINDOW_END),
                                _reward("referee", "B", "pending", 200, 0, WINDOW_END)]
    # The answer's balances include the welcome reward, pending.
    assert answer["balances"]["points"] == _bucket(60, 200)
    assert _card(client, program, "B")["referred_by"] == "A"
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    assert _balances(client, program, "A")["cashback"] == _bucket(0, 300)
    [referral] = _referrals(client, program, "A")
    assert referral["referee_id"] == "B" and referral["status"] == "purchased" and referral["reason"] is None
    assert _at(referral["qualified_at"]) == T0 and _at(referral["rewarded_at"]) == WINDOW_END
    assert referral["referrer_reward"] == {"points": 500, "cashback": 300}
    assert referral["referee_reward"] == {"points": 200, "cashback": 0}

    [reward_a] = [i for i in _activity(client, program, "A") if i["type"] == "referral_reward"]
    assert reward_a["points"] == _bucket(0, 500) and reward_a["cashback"] == _bucket(0, 300)
    assert reward_a["description"] == ("Referral reward: 500 points and 3.00 EUR cashback for referring Bea, "
                                       "who placed order B-1 (pending until 2026-12-26)")
    [reward_b] = [i for i in _activity(client, program, "B") if i["type"] == "referral_reward"]
    assert reward_b["points"] == _bucket(0, 200)
    assert reward_b["description"] == ("Welcome reward: 200 points for joining with Ana's referral code, "
                                       "on order B-1 (pending until 2026-12-26)")

    # A later purchase (even with the same code again) triggers nothing more.
    later = _ok(buy(program, "B-2", "B", 9_000, referred_by=_code(client, program, "A")))
    assert later["referral_rewards"] == []
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    verify()


def test_a_replayed_qualifying_purchase_answers_the_same_and_rewards_once(app, client, make_program, enrol, buy,
                                                                           verify):
    program = _program(make_program)
    enrol(program, "A")
    enrol(program, "B")
    code = _code(client, program, "A")
    first = buy(program, "B-1", "B", 6_000, referred_by=code)
    assert first.status_code == 201
    before = row_counts(app)
    again = buy(program, "B-1", "B", 6_000, referred_by=code)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_data() == first.get_data()
    assert row_counts(app) == before
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    verify()


def test_purchases_without_a_referral_have_no_referral_rewards(client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    assert _ok(buy(program, "A-1", "A", 6_000))["referral_rewards"] == []
    verify()


# --------------------------------------------------------------------------- guards


def test_unknown_code_is_refused_and_writes_nothing(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    other = _program(make_program)
    enrol(program, "A")
    enrol(other, "X")
    foreign = _code(client, other, "X")  # a code of another program is unknown here

    for code in ("ZZZZZZZZZZ", foreign):
        _refused(app, lambda: _put(client, program, "NEW", referred_by=code), 422, "unknown_referral_code")
        assert_problem(client.get("/v1/customers/NEW", headers=program.headers("app")), 404, "customer_not_found")
        _refused(app, lambda: _put(client, program, "A", referred_by=code), 422, "unknown_referral_code")
        _refused(app, lambda: buy(program, "A-1", "A", 6_000, referred_by=code), 422, "unknown_referral_code")
    # The refused order id was not taken.
    assert _ok(buy(program, "A-1", "A", 6_000))["order_id"] == "A-1"
    verify()


def test_own_code_is_self_referral(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    code = _code(client, program, "A")
    _refused(app, lambda: _put(client, program, "A", referred_by=code), 422, "self_referral")
    _refused(app, lambda: buy(program, "A-1", "A", 6_000, referred_by=code), 422, "self_referral")
    assert _card(client, program, "A")["referred_by"] is None
    verify()


def test_same_normalised_email_is_self_referral(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A", email="anasmith@example.com")
    code = _code(client, program, "A")

    # A new customer: refused, and not enrolled either.
    _refused(app, lambda: _put(client, program, "B", email="Ana.Smith+x@Example.com", referred_by=code), 422,
             "self_referral")
    assert_problem(client.get("/v1/customers/B", headers=program.headers("app")), 404, "customer_not_found")
    # An existing customer changing to that email in the same request: refused as a whole.
    enrol(program, "C", email="carla@example.com")
    _refused(app, lambda: _put(client, program, "C", email="ana.smith@example.com", referred_by=code), 422,
             "self_referral")
    assert _ok(client.get("/v1/customers/C", headers=program.headers("app")), 200)["email"] == "carla@example.com"
    # The same email on the purchase path.
    enrol(program, "D", email="ANASMITH+shop@example.com")
    _refused(app, lambda: buy(program, "D-1", "D", 6_000, referred_by=code), 422, "self_referral")
    # Another domain is another mailbox.
    assert _put(client, program, "E", email="anasmith@example.org", referred_by=code).status_code == 201
    assert _statuses(client, program, "A") == {"E": "registered"}
    verify()


def test_same_phone_is_self_referral(app, client, make_program, enrol, verify):
    program = _program(make_program)
    enrol(program, "A", phone="+44 7700 900123")
    code = _code(client, program, "A")
    _refused(app, lambda: _put(client, program, "B", phone="07700 900123", referred_by=code), 422, "self_referral")
    _refused(app, lambda: _put(client, program, "B", phone="(0)7700-900-123", referred_by=code), 422,
             "self_referral")
    assert _put(client, program, "B", phone="07700 900124", referred_by=code).status_code == 201
    verify()


def test_circular_referral_is_refused(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B", "A")  # A refers B
    _refused(app, lambda: _put(client, program, "A", referred_by=_code(client, program, "B")), 422,
             "circular_referral")
    _refused(app, lambda: buy(program, "A-1", "A", 6_000, referred_by=_code(client, program, "B")), 422,
             "circular_referral")
    # Through a chain: A refers B, B refers C; A may not use C's code.
    _referred(client, program, enrol, "C", "B")
    _refused(app, lambda: _put(client, program, "A", referred_by=_code(client, program, "C")), 422,
             "circular_referral")
    assert _card(client, program, "A")["referred_by"] is None
    # Someone outside the chain may refer A.
    enrol(program, "Z")
    assert _ok(_put(client, program, "A", referred_by=_code(client, program, "Z")), 200)["customer_id"] == "A"
    verify()


def test_a_code_after_the_referees_first_purchase_is_refused(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    enrol(program, "B")
    _ok(buy(program, "B-1", "B", 1_000))
    code = _code(client, program, "A")
    _refused(app, lambda: _put(client, program, "B", referred_by=code), 422, "referee_already_purchased")
    _refused(app, lambda: buy(program, "B-2", "B", 6_000, referred_by=code), 422, "referee_already_purchased")
    assert _referrals(client, program, "A") == []
    assert _card(client, program, "B")["referred_by"] is None
    verify()


def test_a_blocked_code_owner_cannot_refer(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    code = _code(client, program, "A")
    assert _ok(_put(client, program, "A", role="admin", status="blocked"), 200)["status"] == "blocked"
    _refused(app, lambda: _put(client, program, "B", referred_by=code), 422, "customer_blocked")
    enrol(program, "C")
    _refused(app, lambda: buy(program, "C-1", "C", 6_000, referred_by=code), 422, "customer_blocked")
    # Unblocked, the code works again.
    assert _ok(_put(client, program, "A", role="admin", status="active"), 200)["status"] == "active"
    assert _put(client, program, "B", referred_by=code).status_code == 201
    verify()


def test_a_referrer_blocked_before_the_qualifying_purchase_gets_nothing(client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(_put(client, program, "A", role="admin", status="blocked"), 200)
    answer = _ok(buy(program, "B-1", "B", 6_000))
    assert _rewards(answer) == [_reward("referrer", "A", "reversed", 0, 0, None)]
    assert answer["balances"]["points"] == _bucket(60)
    assert _balances(client, program, "A")["points"] == _bucket()
    [referral] = _referrals(client, program, "A")
    assert (referral["status"], referral["reason"]) == ("reversed", "referrer_blocked")
    verify()


# --------------------------------------------------------------------------- blocked customers


def test_only_the_admin_may_block(app, client, make_program, enrol, verify):
    program = _program(make_program)
    enrol(program, "A")
    _refused(app, lambda: _put(client, program, "A", status="blocked"), 422, "validation_error", "status")
    _refused(app, lambda: _put(client, program, "NEW", status="active"), 422, "validation_error", "status")
    _refused(app, lambda: _put(client, program, "A", role="admin", status="banned"), 422, "validation_error",
             "status")
    assert _ok(client.get("/v1/customers/A", headers=program.headers("app")), 200)["status"] == "active"
    verify()


def test_a_blocked_customer_can_neither_purchase_nor_redeem(app, client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    _ok(buy(program, "A-1", "A", 6_000))  # 60 points available
    assert _ok(_put(client, program, "A", role="admin", status="blocked"), 200)["status"] == "blocked"
    assert _ok(client.get("/v1/customers/A", headers=program.headers("app")), 200)["status"] == "blocked"

    _refused(app, lambda: buy(program, "A-2", "A", 6_000), 422, "customer_blocked")
    _refused(app, lambda: _hold(client, program, "R-1", "A", 10), 422, "customer_blocked")
    assert _balances(client, program, "A")["points"] == _bucket(60)
    # A blocked customer may still be read and unblocked.
    assert _ok(_put(client, program, "A", role="admin", status="active"), 200)["status"] == "active"
    assert _ok(buy(program, "A-2", "A", 6_000))["points_earned"] == 60
    assert _ok(_hold(client, program, "R-1", "A", 10))["status"] == "held"
    verify()


def test_an_admin_may_enrol_a_customer_as_blocked(app, client, make_program, buy, verify):
    program = _program(make_program)
    assert _ok(_put(client, program, "A", role="admin", status="blocked"), 201)["status"] == "blocked"
    _refused(app, lambda: buy(program, "A-1", "A", 6_000), 422, "customer_blocked")
    verify()


# --------------------------------------------------------------------------- rewards and their window


def test_referrer_reward_is_pending_until_the_window_has_passed(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    assert _statuses(client, program, "A") == {"B": "purchased"}

    clock.advance(days=30, seconds=-1)
    _jobs(client, clock)
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    assert _balances(client, program, "A")["cashback"] == _bucket(0, 300)
    assert _balances(client, program, "B")["points"] == _bucket(60, 200)
    assert _statuses(client, program, "A") == {"B": "purchased"}

    clock.advance(seconds=1)  # the window ends: 2026-12-26T12:00Z
    assert _statuses(client, program, "A") == {"B": "rewarded"}
    assert _jobs(client, clock)["releases"] == 2  # the referrer's and the referee's referral rewards
    assert _balances(client, program, "A")["points"] == _bucket(500)
    assert _balances(client, program, "A")["cashback"] == _bucket(300)
    assert _balances(client, program, "B")["points"] == _bucket(260)
    [release] = [i for i in _activity(client, program, "A") if i["type"] == "release"]
    assert release["points"] == _bucket(500, -500) and release["cashback"] == _bucket(300, -300)
    assert release["description"] == "Referral reward of 500 points and 3.00 EUR cashback can now be spent"
    [referral] = _referrals(client, program, "A")
    assert referral["status"] == "rewarded" and _at(referral["rewarded_at"]) == WINDOW_END
    assert _jobs(client, clock)["releases"] == 0  # released once
    verify()


def test_the_window_is_the_longer_hold(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, points_hold_days=45, cashback_hold_days=10)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    answer = _ok(buy(program, "B-1", "B", 6_000))
    window_end = T0 + timedelta(days=45)
    assert _rewards(answer) == [_reward("referrer", "A", "pending", 500, 300, window_end),
                                _reward("referee", "B", "pending", 200, 0, window_end)]
    clock.advance(days=44)
    _jobs(client, clock)
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    clock.advance(days=1)
    _jobs(client, clock)
    assert _balances(client, program, "A")["points"] == _bucket(500)
    assert _balances(client, program, "A")["cashback"] == _bucket(300)
    verify()


def test_referee_reward_on_first_order_is_available_at_once(client, make_program, enrol, buy, verify):
    program = _program(make_program, referee_reward_timing="on_first_order", referee_reward_cashback=150)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    answer = _ok(buy(program, "B-1", "B", 6_000))
    assert _rewards(answer) == [_reward("referrer", "A", "pending", 500, 300, WINDOW_END),
                                _reward("referee", "B", "available", 200, 150, T0)]
    assert answer["balances"]["points"] == _bucket(260)
    assert answer["balances"]["cashback"] == _bucket(150)
    [reward_b] = [i for i in _activity(client, program, "B") if i["type"] == "referral_reward"]
    assert reward_b["points"] == _bucket(200) and reward_b["cashback"] == _bucket(150)
    # Usable at once.
    assert _ok(_hold(client, program, "R-1", "B", 260))["status"] == "held"
    # The referrer's reward is still pending.
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    verify()


def test_referee_reward_on_first_order_is_clawed_back_by_a_refund(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referee_reward_timing="on_first_order")
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=3)
    refund = _ok(_refund(client, program, "B-1", "F-1"))
    assert refund["points_reversed"] == 60
    assert refund["balances"]["points"] == _bucket(0)  # 260 - 60 (the order's) - 200 (the welcome reward)
    assert _balances(client, program, "B")["points"] == _bucket(0)
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _balances(client, program, "A")["cashback"] == _bucket()
    [referral] = _referrals(client, program, "A")
    assert (referral["status"], referral["reason"]) == ("reversed", "refunded")
    [taken_b] = [i for i in _activity(client, program, "B") if i["type"] == "referral_reversal"]
    assert taken_b["points"] == _bucket(-200)
    assert taken_b["description"] == "200 points welcome reward taken back: order B-1 was refunded"
    verify()


def test_a_spent_welcome_reward_is_clawed_back_into_a_negative_balance(client, make_program, enrol, buy, clock,
                                                                        verify):
    program = _program(make_program, referee_reward_timing="on_first_order")
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    _ok(_hold(client, program, "R-1", "B", 260))
    _ok(client.post("/v1/redemptions/R-1/capture", json={}, headers=program.headers("storefront")), 200)
    assert _balances(client, program, "B")["points"] == _bucket(0)
    clock.advance(days=1)
    _ok(_refund(client, program, "B-1", "F-1"))
    # allow_negative: the order's 60 and the welcome 200 are owed.
    assert _balances(client, program, "B")["points"] == _bucket(-260)
    assert _statuses(client, program, "A") == {"B": "reversed"}
    verify()


def test_referee_reward_after_window_is_pending(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referee_reward_timing="after_window")
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    answer = _ok(buy(program, "B-1", "B", 6_000))
    assert _rewards(answer)[1] == _reward("referee", "B", "pending", 200, 0, WINDOW_END)
    assert answer["balances"]["points"] == _bucket(60, 200)
    assert_problem(_hold(client, program, "R-1", "B", 61), 422, "insufficient_balance")
    clock.advance(days=30)
    _jobs(client, clock)
    assert _balances(client, program, "B")["points"] == _bucket(260)
    verify()


def test_a_smaller_first_purchase_does_not_qualify(client, make_program, enrol, buy, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    small = _ok(buy(program, "B-1", "B", 4_999))
    assert small["referral_rewards"] == []
    assert small["balances"]["points"] == _bucket(49)
    assert _statuses(client, program, "A") == {"B": "registered"}
    assert _balances(client, program, "A")["points"] == _bucket()
    # The first purchase that reaches the minimum qualifies.
    answer = _ok(buy(program, "B-2", "B", 5_000))
    assert _rewards(answer) == [_reward("referrer", "A", "pending", 500, 300, WINDOW_END),
                                _reward("referee", "B", "pending", 200, 0, WINDOW_END)]
    assert _statuses(client, program, "A") == {"B": "purchased"}
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    verify()


def test_rewards_worth_nothing_are_not_listed(client, make_program, enrol, buy, verify):
    program = make_program(referee_reward_points=200)  # nothing for the referrer
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    answer = _ok(buy(program, "B-1", "B", 100))  # no minimum
    assert _rewards(answer) == [_reward("referee", "B", "pending", 200, 0, WINDOW_END)]
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _statuses(client, program, "A") == {"B": "purchased"}
    verify()


def test_the_referrers_own_write_releases_a_due_reward(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=30)
    answer = _ok(buy(program, "A-1", "A", 1_000))  # no jobs ran: the purchase releases what is due first
    assert answer["balances"]["points"] == _bucket(510)
    assert answer["balances"]["cashback"] == _bucket(300)
    verify()


def test_referee_purchase_cashback_and_welcome_reward_are_released_apart(client, make_program, enrol, buy, clock,
                                                                         verify):
    program = _program(make_program, cashback_rate_bps=200)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    answer = _ok(buy(program, "B-1", "B", 6_000))
    assert (answer["points_earned"], answer["cashback_earned"]) == (60, 120)
    assert answer["balances"]["points"] == _bucket(60, 200)
    assert answer["balances"]["cashback"] == _bucket(0, 120)
    clock.advance(days=30)
    assert _jobs(client, clock)["releases"] == 3  # the referrer's reward; the referee's cashback and reward
    assert _balances(client, program, "B")["points"] == _bucket(260)
    assert _balances(client, program, "B")["cashback"] == _bucket(120)
    assert _balances(client, program, "A")["points"] == _bucket(500)
    verify()


# --------------------------------------------------------------------------- refunds


def test_a_refund_inside_the_window_takes_pending_cashback_and_reward_apart(client, make_program, enrol, buy, clock,
                                                                            verify):
    program = _program(make_program, cashback_rate_bps=200)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=10)
    refund = _ok(_refund(client, program, "B-1", "F-1"))
    assert (refund["points_reversed"], refund["cashback_reversed"]) == (60, 120)
    assert refund["balances"]["points"] == _bucket(0)
    assert refund["balances"]["cashback"] == _bucket(0)
    assert _balances(client, program, "A")["points"] == _bucket()
    clock.advance(days=30)
    assert _jobs(client, clock)["releases"] == 0
    verify()


def test_a_refund_inside_the_window_reverses_both_rewards(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))

    clock.advance(days=30, seconds=-1)  # the last second of the window
    refund = _ok(_refund(client, program, "B-1", "F-1"))
    assert refund["balances"]["points"] == _bucket(0)  # 60 clawed back, 200 pending reversed
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _balances(client, program, "A")["cashback"] == _bucket()
    [referral] = _referrals(client, program, "A")
    assert (referral["status"], referral["reason"]) == ("reversed", "refunded")
    [taken_a] = [i for i in _activity(client, program, "A") if i["type"] == "referral_reversal"]
    assert taken_a["points"] == _bucket(0, -500) and taken_a["cashback"] == _bucket(0, -300)
    assert taken_a["description"] == ("500 points and 3.00 EUR cashback referral reward taken back: "
                                      "order B-1 was refunded")
    [taken_b] = [i for i in _activity(client, program, "B") if i["type"] == "referral_reversal"]
    assert taken_b["points"] == _bucket(0, -200)

    # Nothing is released later, and the reversed referral stays reversed.
    clock.advance(days=1)
    assert _jobs(client, clock)["releases"] == 0
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _statuses(client, program, "A") == {"B": "reversed"}
    # A later purchase of the referee does not qualify the referral again.
    assert _ok(buy(program, "B-2", "B", 6_000))["referral_rewards"] == []
    assert _balances(client, program, "A")["points"] == _bucket()
    verify()


def test_partial_refunds_reverse_only_below_the_minimum(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=2)

    _ok(_refund(client, program, "B-1", "F-1", 1_000))  # 5_000 left: still qualifies
    assert _statuses(client, program, "A") == {"B": "purchased"}
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    assert _balances(client, program, "B")["points"] == _bucket(50, 200)  # the order keeps 50 of its 60

    _ok(_refund(client, program, "B-1", "F-2", 1))  # 4_999 left: below the minimum
    [referral] = _referrals(client, program, "A")
    assert (referral["status"], referral["reason"]) == ("reversed", "refunded")
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _balances(client, program, "A")["cashback"] == _bucket()
    assert _balances(client, program, "B")["points"] == _bucket(49)  # floor(4_999 / 100), welcome reward gone

    # Refunding the rest changes nothing more for the referral.
    _ok(_refund(client, program, "B-1", "F-3"))
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _balances(client, program, "B")["points"] == _bucket(0)
    verify()


def test_without_a_minimum_only_a_full_refund_reverses(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referral_min_purchase=0)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    _ok(_refund(client, program, "B-1", "F-1", 5_999))  # 1 cent left
    assert _statuses(client, program, "A") == {"B": "purchased"}
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    _ok(_refund(client, program, "B-1", "F-2", 1))
    assert _statuses(client, program, "A") == {"B": "reversed"}
    assert _balances(client, program, "A")["points"] == _bucket()
    verify()


def test_a_spent_welcome_reward_is_written_off_under_write_off(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referee_reward_timing="on_first_order", clawback_policy="write_off")
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    _ok(_hold(client, program, "R-1", "B", 260))
    _ok(client.post("/v1/redemptions/R-1/capture", json={}, headers=program.headers("storefront")), 200)
    _ok(_refund(client, program, "B-1", "F-1"))
    assert _balances(client, program, "B")["points"] == _bucket(0)
    assert _balances(client, program, "A")["points"] == _bucket()
    assert _statuses(client, program, "A") == {"B": "reversed"}
    verify()


def test_a_refund_after_the_window_reverses_nothing(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=30)
    _jobs(client, clock)

    refund = _ok(_refund(client, program, "B-1", "F-1"))
    assert refund["points_reversed"] == 60
    assert refund["balances"]["points"] == _bucket(200)  # the welcome reward stands
    assert _balances(client, program, "A")["points"] == _bucket(500)
    assert _balances(client, program, "A")["cashback"] == _bucket(300)
    assert _statuses(client, program, "A") == {"B": "rewarded"}
    assert not [i for i in _activity(client, program, "A") if i["type"] == "referral_reversal"]
    verify()


def test_a_refund_after_the_window_before_the_jobs_ran_reverses_nothing(client, make_program, enrol, buy, clock,
                                                                         verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=30)
    _ok(_refund(client, program, "B-1", "F-1"))
    assert _statuses(client, program, "A") == {"B": "rewarded"}
    _jobs(client, clock)
    assert _balances(client, program, "A")["points"] == _bucket(500)
    assert _balances(client, program, "B")["points"] == _bucket(200)
    verify()


def test_refunding_a_non_qualifying_purchase_leaves_the_referral_registered(client, make_program, enrol, buy,
                                                                             verify):
    program = _program(make_program)
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _ok(buy(program, "B-1", "B", 1_000))
    _ok(_refund(client, program, "B-1", "F-1"))
    assert _statuses(client, program, "A") == {"B": "registered"}
    assert _rewards(_ok(buy(program, "B-2", "B", 6_000)))[0] == _reward("referrer", "A", "pending", 500, 300,
                                                                        WINDOW_END)
    verify()


# --------------------------------------------------------------------------- caps


def test_cap_per_referrer_per_month(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referral_cap=2, referral_cap_period="month")
    enrol(program, "A")
    for referee in ("B", "C", "D", "E"):
        _referred(client, program, enrol, referee)

    assert _rewards(_ok(buy(program, "B-1", "B", 6_000)))[0]["status"] == "pending"
    assert _rewards(_ok(buy(program, "C-1", "C", 6_000)))[0]["status"] == "pending"
    capped = _ok(buy(program, "D-1", "D", 6_000))
    assert _rewards(capped) == [_reward("referrer", "A", "capped", 0, 0, None)]
    assert capped["balances"]["points"] == _bucket(60)  # no welcome reward either
    assert _balances(client, program, "A")["points"] == _bucket(0, 1_000)
    assert _balances(client, program, "A")["cashback"] == _bucket(0, 600)
    referrals = {r["referee_id"]: r for r in _referrals(client, program, "A")}
    assert {k: r["status"] for k, r in referrals.items()} == {"B": "purchased", "C": "purchased", "D": "capped",
                                                             "E": "registered"}
    assert [r["referee_id"] for r in _referrals(client, program, "A")] == ["E", "D", "C", "B"]  # newest first
    assert referrals["D"]["referrer_reward"] == {"points": 0, "cashback": 0}
    assert referrals["D"]["referee_reward"] == {"points": 0, "cashback": 0}
    assert referrals["D"]["rewarded_at"] is None and _at(referrals["D"]["qualified_at"]) == T0

    clock.advance(days=5)  # 2026-12-01T12:00Z: a new month
    window_end = T0 + timedelta(days=35)
    assert _rewards(_ok(buy(program, "E-1", "E", 6_000))) == [
        _reward("referrer", "A", "pending", 500, 300, window_end),
        _reward("referee", "E", "pending", 200, 0, window_end)]
    assert _balances(client, program, "A")["points"] == _bucket(0, 1_500)
    assert _statuses(client, program, "A") == {"B": "purchased", "C": "purchased", "D": "capped", "E": "purchased"}
    # A capped referral never qualifies again.
    assert _ok(buy(program, "D-2", "D", 6_000))["referral_rewards"] == []
    verify()


def test_cap_counts_the_local_period(client, make_program, enrol, buy, clock, verify):
    # Auckland is UTC+13 in November: T0 is 27 November 01:00 there.
    program = _program(make_program, timezone="Pacific/Auckland", referral_cap=1, referral_cap_period="month")
    enrol(program, "A")
    for referee in ("B", "C", "D"):
        _referred(client, program, enrol, referee)
    assert _rewards(_ok(buy(program, "B-1", "B", 6_000)))[0]["status"] == "pending"

    clock.advance(days=3, hours=22, minutes=59)  # 2026-11-30T10:59Z: 23:59 on 30 November in Auckland
    assert _rewards(_ok(buy(program, "C-1", "C", 6_000)))[0]["status"] == "capped"
    clock.advance(minutes=2)  # 2026-11-30T11:01Z: 1 December in Auckland, still November in UTC
    assert _rewards(_ok(buy(program, "D-1", "D", 6_000)))[0]["status"] == "pending"
    assert _balances(client, program, "A")["points"] == _bucket(0, 1_000)
    verify()


def test_a_reversed_referral_frees_its_place_under_the_cap(client, make_program, enrol, buy, clock, verify):
    program = _program(make_program, referral_cap=1, referral_cap_period="month")
    enrol(program, "A")
    _referred(client, program, enrol, "B")
    _referred(client, program, enrol, "C")
    _ok(buy(program, "B-1", "B", 6_000))
    _ok(_refund(client, program, "B-1", "F-1"))
    assert _statuses(client, program, "A") == {"B": "reversed", "C": "registered"}
    assert _rewards(_ok(buy(program, "C-1", "C", 6_000)))[0]["status"] == "pending"
    assert _balances(client, program, "A")["points"] == _bucket(0, 500)
    verify()


def test_cap_per_week(client, make_program, enrol, buy, clock, verify):
    # T0 is a Thursday; the ISO week ends on Monday 2026-11-30T00:00Z.
    program = _program(make_program, referral_cap=1, referral_cap_period="week")
    enrol(program, "A")
    for referee in ("B", "C", "D"):
        _referred(client, program, enrol, referee)
    _ok(buy(program, "B-1", "B", 6_000))
    clock.advance(days=3, hours=11, minutes=59)  # Sunday 23:59
    assert _rewards(_ok(buy(program, "C-1", "C", 6_000)))[0]["status"] == "capped"
    clock.advance(minutes=1)  # Monday 00:00
    assert _rewards(_ok(buy(program, "D-1", "D", 6_000)))[0]["status"] == "pending"
    verify()
