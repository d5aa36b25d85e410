"""Hand-built answers on the hottest routes agree with what their marshmallow schemas would dump."""
from __future__ import annotations

import json
import re
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.http import plain
from api.routes.customers import balances_body
from api.routes.purchases import purchase_body
from api.schemas.common import Balances as BalancesSchema
from api.schemas.purchases import PurchaseOut
from ledger.domain.customers import Balances, BucketBalances
from ledger.services.purchases import PurchaseResult
from tests.conftest import OPERATOR_TOKEN

amounts = st.integers(min_value=-(2**63), max_value=2**63 - 1)
buckets = st.builds(BucketBalances, available=amounts, pending=amounts, reserved=amounts)


@settings(max_examples=200, deadline=None)
@given(st.builds(Balances, currency=st.sampled_from(["EUR", "JPY", "USD"]), points=buckets, cashback=buckets))
def test_balances_body_is_what_the_schema_dumps(balances: Balances) -> None:
    body = balances_body(balances)
    assert body == BalancesSchema().dump(plain(balances))
    assert json.dumps(body) == json.dumps(BalancesSchema().dump(plain(balances)))  # same keys in the same order


texts = st.text(max_size=8)
instants = st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-3, minutes=-30))]))
badges = st.fixed_dictionaries({"achievement_id": texts, "name": texts, "occasion": texts, "points": amounts})
referral_rewards = st.fixed_dictionaries({
    "role": st.sampled_from(["referrer", "referee"]), "customer_id": texts,
    "status": st.sampled_from(["pending", "available", "capped", "reversed"]), "points": amounts, "cashback": amounts,
    "available_at": st.none() | instants})
purchase_results = st.builds(
    PurchaseResult, order_id=texts, customer_id=texts, transaction_id=st.none() | texts, amount=amounts,
    currency=st.sampled_from(["EUR", "JPY"]), points_earned=amounts, cashback_earned=amounts,
    points_status=st.sampled_from([None, "pending", "available"]), cashback_status=st.sampled_from([None, "pending"]),
    points_available_at=st.none() | instants, cashback_available_at=st.none() | instants, occurred_at=instants,
    recorded_at=instants, balances=st.builds(Balances, currency=st.just("EUR"), points=buckets, cashback=buckets),
    config_version=st.integers(min_value=0, max_value=2**31), badges_unlocked=st.lists(badges, max_size=2),
    referral_rewards=st.lists(referral_rewards, max_size=2), lines=st.none(), trace=st.none())


@settings(max_examples=200, deadline=None)
@given(purchase_results)
def test_purchase_body_is_what_the_schema_dumps(result: PurchaseResult) -> None:
    body = purchase_body(result)
    expected = PurchaseOut().dump(plain(result))
    assert body == expected
    assert json.dumps(body) == json.dumps(expected)  # same keys in the same order


def test_balances_on_the_wire_are_integers(client, program, enrol, buy) -> None:  # noqa: ANN001
    """PostgreSQL sums come back as NUMERIC: the read turns them into integers before anything adds them up."""
    enrol(program, "c-1")
    assert buy(program, "o-1", "c-1", 1234).status_code == 201
    response = client.get("/v1/customers/c-1/balances", headers=program.headers("app"))
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"currency": "EUR", "points": {"available": 12, "pending": 0, "reserved": 0},
                    "cashback": {"available": 0, "pending": 24, "reserved": 0}}
    assert all(type(value) is int for asset in ("points", "cashback") for value in body[asset].values())


def test_only_query_schemas_that_load_nothing_from_nothing_are_skipped() -> None:
    import marshmallow as ma

    from api.http import _loads_nothing_from_empty
    from api.schemas.common import PageArgs
    from api.schemas.finance import AsOfArgs

    class Required(ma.Schema):
        since = ma.fields.String(required=True)

    class Checked(ma.Schema):
        since = ma.fields.String()

        @ma.validates_schema
        def check(self, data, **kwargs):  # noqa: ANN001, ANN003, ANN201
            pass

    assert _loads_nothing_from_empty(AsOfArgs)
    assert not _loads_nothing_from_empty(PageArgs)  # limit defaults to 50
    assert not _loads_nothing_from_empty(Required)
    assert not _loads_nothing_from_empty(Checked)


def test_query_arguments_are_still_checked_when_sent(client, program, enrol) -> None:  # noqa: ANN001
    enrol(program, "c-1")
    headers = program.headers("app")
    assert client.get("/v1/customers/c-1/balances", headers=headers).status_code == 200
    unknown = client.get("/v1/customers/c-1/balances?asof=2026-01-01T00:00:00Z", headers=headers)
    assert unknown.status_code == 422 and unknown.get_json()["code"] == "validation_error"
    assert client.get("/v1/customers/c-1/balances?as_of=yesterday", headers=headers).status_code == 422
    listing = client.get("/v1/customers/c-1/activity", headers=headers)
    assert listing.status_code == 200  # PageArgs' default limit still applies without a query string


# --- GET /v1/customers/{id}/balances below Flask (api/fast_paths.py) ---------------------------------

def _both_ways(app: Any, monkeypatch: pytest.MonkeyPatch, method: str, url: str,
               headers: dict[str, str]) -> tuple[Any, Any]:
    """The same request answered by the app as served (fast path in front) and by Flask alone."""
    served = app.test_client().open(url, method=method, headers=headers)
    with monkeypatch.context() as patched:
        patched.setattr(app, "wsgi_app", app.wsgi_app.wsgi_app)
        flask_only = app.test_client().open(url, method=method, headers=headers)
    return served, flask_only


def _same_answer(served: Any, flask_only: Any) -> None:
    assert served.status == flask_only.status
    assert served.get_data() == flask_only.get_data()
    assert list(served.headers.items()) == list(flask_only.headers.items())  # same headers, same order


def _taken(app: Any, url: str, headers: dict[str, str], method: str = "GET") -> bool:
    """Whether the fast path answers this request itself (rather than handing it to Flask)."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=url.split("?")[0], query_string=url.partition("?")[2], method=method,
                             headers=headers).get_environ()
    return method == "GET" and app.wsgi_app._balances(environ) is not None


@pytest.mark.parametrize("role", ["admin", "storefront", "app", "finance"])
def test_balance_read_below_flask_answers_byte_for_byte_as_the_route(app, program, enrol, buy, monkeypatch,
                                                                     role) -> None:
    enrol(program, "c-1")
    assert buy(program, "o-1", "c-1", 123_456).status_code == 201
    headers = program.headers(role, **{"X-Request-Id": "req-parity-1"})
    assert _taken(app, "/v1/customers/c-1/balances", headers)
    served, flask_only = _both_ways(app, monkeypatch, "GET", "/v1/customers/c-1/balances", headers)
    assert served.status_code == 200
    assert served.get_json()["points"]["available"] == 1234
    _same_answer(served, flask_only)


def test_balance_read_below_flask_makes_a_request_id_like_the_route(app, program, enrol) -> None:
    enrol(program, "c-1")
    client = app.test_client()
    ids = {client.get("/v1/customers/c-1/balances", headers=program.headers("app")).headers["X-Request-Id"]
           for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"req_[0-9a-f]{16}", rid) for rid in ids)
    bad = client.get("/v1/customers/c-1/balances", headers=program.headers("app", **{"X-Request-Id": "a b"}))
    assert re.fullmatch(r"req_[0-9a-f]{16}", bad.headers["X-Request-Id"])


@pytest.mark.parametrize("case", [
    "unknown customer", "as_of", "unknown query argument", "no key", "basic scheme", "unknown key",
    "operator token", "id with a space", "id too long", "trailing slash", "POST", "HEAD", "revoked key",
])
def test_everything_but_the_plain_balance_read_is_answered_by_flask(app, program, enrol, monkeypatch,
                                                                     case) -> None:
    enrol(program, "c-1")
    url, method = "/v1/customers/c-1/balances", "GET"
    headers = program.headers("app", **{"X-Request-Id": "req-parity-2"})
    if case == "unknown customer":
        url = "/v1/customers/nobody/balances"
    elif case == "as_of":
        url += "?as_of=2030-01-01T00:00:00Z"
    elif case == "unknown query argument":
        url += "?asof=x"
    elif case == "no key":
        del headers["Authorization"]
    elif case == "basic scheme":
        headers["Authorization"] = "Basic " + program.keys["app"]
    elif case == "unknown key":
        headers["Authorization"] = "Bearer llk_not-a-key"
    elif case == "operator token":
        headers["Authorization"] = f"Bearer {OPERATOR_TOKEN}"
    elif case == "id with a space":
        url = "/v1/customers/c%201/balances"
    elif case == "id too long":
        url = f"/v1/customers/{'c' * 129}/balances"
    elif case == "trailing slash":
        url += "/"
    elif case in ("POST", "HEAD"):
        method = case
    elif case == "revoked key":
        created = app.test_client().post("/v1/api-keys", json={"role": "app", "name": "old phone"},
                                         headers=program.headers("admin")).get_json()
        assert app.test_client().delete(f"/v1/api-keys/{created['id']}",
                                        headers=program.headers("admin")).status_code == 200
        headers["Authorization"] = f"Bearer {created['key']}"
    assert not _taken(app, url, headers, method)
    served, flask_only = _both_ways(app, monkeypatch, method, url, headers)
    expected = {"unknown customer": 404, "as_of": 200, "unknown query argument": 422, "no key": 401,
                "basic scheme": 401, "unknown key": 401, "operator token": 401, "id with a space": 422,
                "id too long": 422, "trailing slash": 404, "POST": 405, "HEAD": 200, "revoked key": 401}[case]
    assert served.status_code == expected, served.get_data(as_text=True)
    _same_answer(served, flask_only)


def test_a_database_error_on_the_fast_path_is_answered_by_flask(app, program, enrol, monkeypatch) -> None:
    """The fast path swallows nothing: on any failure Flask runs the request again and answers it."""
    from ledger.services import queries

    enrol(program, "c-1")
    calls = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(queries, "customer_balances", broken)
    response = app.test_client().get("/v1/customers/c-1/balances", headers=program.headers("app"))
    assert len(calls) == 2  # tried below Flask, then by the route
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"


# --- POST /v1/purchases below Flask (api/fast_paths.py) ------------------------------------------------

class _Counted:
    """Flask's WSGI app, counting the requests the fast path hands to it."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app, self.calls = wsgi_app, 0

    def __call__(self, environ: dict, start_response: Any) -> Any:
        self.calls += 1
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def flask_behind(app: Any, monkeypatch: pytest.MonkeyPatch) -> _Counted:
    counted = _Counted(app.wsgi_app.wsgi_app)
    monkeypatch.setattr(app.wsgi_app, "wsgi_app", counted)
    return counted


def _purchase(app: Any, headers: dict[str, str], data: str | bytes, flask_only: bool = False,
              content_type: str = "application/json", url: str = "/v1/purchases") -> Any:
    wsgi = app.wsgi_app
    if flask_only:
        behind = wsgi.wsgi_app
        app.wsgi_app = behind.wsgi_app if isinstance(behind, _Counted) else behind  # not counted
    try:
        return app.test_client().post(url, data=data, headers=headers, content_type=content_type)
    finally:
        app.wsgi_app = wsgi


def _order(order_id: str, customer_id: str, amount: int = 12_345, **extra: Any) -> str:
    return json.dumps({"order_id": order_id, "customer_id": customer_id, "amount": amount, "currency": "EUR", **extra})


def _same_purchase_answer(served: Any, flask_only: Any, order_id: str, customer_id: str) -> None:
    """Equal, key order included, once the route's answer takes the fast path's order and customer
    ids (each request named its own) and transaction id (a new one per transaction)."""
    assert served.status == flask_only.status
    assert list(served.headers.items()) == list(flask_only.headers.items())
    body, other = served.get_json(), flask_only.get_json()
    assert (other["order_id"], other["customer_id"]) != (order_id, customer_id)
    other.update(order_id=order_id, customer_id=customer_id)
    assert (body["transaction_id"] is None) == (other["transaction_id"] is None)
    other["transaction_id"] = body["transaction_id"]
    assert json.dumps(body) == json.dumps(other)


@pytest.mark.parametrize("extra_headers", [{}, {"Idempotency-Key": "key-1"}], ids=["natural key", "header key"])
def test_a_purchase_below_flask_answers_as_the_route_and_replays_as_it(app, program, enrol, flask_behind,
                                                                         verify, extra_headers) -> None:
    enrol(program, "c-1")
    enrol(program, "c-2")
    fast_headers = program.headers("storefront", **{"X-Request-Id": "req-purchase-1"}, **extra_headers)
    flask_headers = program.headers("storefront", **{"X-Request-Id": "req-purchase-1"},
                                    **{k: v.replace("1", "2") for k, v in extra_headers.items()})
    flask_behind.calls = 0
    served = _purchase(app, fast_headers, _order("o-1", "c-1"))
    assert flask_behind.calls == 0  # answered below Flask
    flask_only = _purchase(app, flask_headers, _order("o-2", "c-2"), flask_only=True)
    assert served.status_code == 201 and served.get_json()["points_earned"] == 123
    assert served.get_json()["balances"]["points"]["available"] == 123
    _same_purchase_answer(served, flask_only, "o-1", "c-1")

    replay = _purchase(app, fast_headers, _order("o-1", "c-1"))
    flask_replay = _purchase(app, flask_headers, _order("o-2", "c-2"), flask_only=True)
    assert flask_behind.calls == 0
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_data() == served.get_data()
    _same_purchase_answer(replay, flask_replay, "o-1", "c-1")

    activity = app.test_client().get("/v1/customers/c-1/activity", headers=program.headers("app")).get_json()
    assert [item["type"] for item in activity["items"]] == ["purchase_accrual"]  # the replay booked nothing
    verify()


@pytest.mark.parametrize("key", [None, "key-1"], ids=["natural key", "header key"])
def test_a_purchase_the_rules_refuse_gets_the_routes_answer(app, program, enrol, flask_behind, key) -> None:
    """Under an Idempotency-Key the refusal is stored, and answered below Flask; without one nothing is
    stored, the refusal is raised, and the route answers it (running the write again, refused again)."""
    enrol(program, "c-1")
    enrol(program, "c-2")
    extra = {"Idempotency-Key": key} if key else {}
    headers = program.headers("storefront", **{"X-Request-Id": "req-purchase-2"}, **extra)
    flask_behind.calls = 0
    served = _purchase(app, headers, _order("o-1", "c-1", currency="USD"))
    assert flask_behind.calls == (0 if key else 1)
    flask_only = _purchase(app, {**headers, **({"Idempotency-Key": "key-2"} if key else {})},
                           _order("o-2", "c-2", currency="USD"), flask_only=True)
    assert served.status_code == 422 and served.get_json()["code"] == "currency_mismatch"
    assert served.status == flask_only.status
    assert list(served.headers.items()) == list(flask_only.headers.items())
    assert served.get_data() == flask_only.get_data()


@pytest.mark.parametrize("case", [
    "malformed JSON", "not JSON", "form body", "empty body", "schema refuses", "unknown field", "JSON array",
    "no key", "app key", "unknown key", "operator token", "bad Idempotency-Key", "query string",
    "trailing slash", "unknown customer",
])
def test_everything_but_the_plain_purchase_is_answered_by_flask(app, program, enrol, flask_behind, case) -> None:
    enrol(program, "c-1")
    enrol(program, "c-2")
    headers = program.headers("storefront", **{"X-Request-Id": "req-purchase-3"})
    url, content_type = "/v1/purchases", "application/json"
    data, other = _order("o-1", "c-1"), _order("o-2", "c-2")
    if case == "malformed JSON":
        data = other = '{"order_id": "o-1",'
    elif case == "not JSON":
        content_type = "text/plain"
    elif case == "form body":
        content_type, data, other = "application/x-www-form-urlencoded", "order_id=o-1", "order_id=o-2"
    elif case == "empty body":
        data = other = ""
    elif case == "schema refuses":
        data, other = _order("o-1", "c-1", amount=-5), _order("o-2", "c-2", amount=-5)
    elif case == "unknown field":
        data, other = _order("o-1", "c-1", coupon="X"), _order("o-2", "c-2", coupon="X")
    elif case == "JSON array":
        data, other = f"[{data}]", f"[{other}]"
    elif case == "no key":
        del headers["Authorization"]
    elif case == "app key":
        headers = program.headers("app", **{"X-Request-Id": "req-purchase-3"})
    elif case == "unknown key":
        headers["Authorization"] = "Bearer llk_not-a-key"
    elif case == "operator token":
        headers["Authorization"] = f"Bearer {OPERATOR_TOKEN}"
    elif case == "bad Idempotency-Key":
        headers["Idempotency-Key"] = "a key with spaces"
    elif case == "query string":
        url += "?source=pos"
    elif case == "trailing slash":
        url += "/"
    elif case == "unknown customer":
        data, other = _order("o-1", "nobody-1"), _order("o-2", "nobody-2")
    flask_behind.calls = 0
    served = _purchase(app, headers, data, content_type=content_type, url=url)
    flask_only = _purchase(app, headers, other, flask_only=True, content_type=content_type, url=url)
    expected = {"malformed JSON": 400, "not JSON": 415, "form body": 415, "empty body": 422, "schema refuses": 422,
                "unknown field": 422, "JSON array": 422, "no key": 401, "app key": 403, "unknown key": 401,
                "operator token": 401, "bad Idempotency-Key": 422, "query string": 201, "trailing slash": 404,
                "unknown customer": 404}[case]
    assert served.status_code == expected, served.get_data(as_text=True)
    assert served.status == flask_only.status
    assert list(served.headers.items()) == list(flask_only.headers.items())
    if expected == 201:
        _same_purchase_answer(served, flask_only, "o-1", "c-1")
    elif case == "unknown customer":
        assert served.get_json()["code"] == flask_only.get_json()["code"] == "customer_not_found"
        assert served.get_data() == flask_only.get_data().replace(b"nobody-2", b"nobody-1")
    else:
        assert served.get_data() == flask_only.get_data()
    assert flask_behind.calls == 1


def test_a_purchase_that_fails_below_flask_is_run_again_by_the_route(app, program, enrol, flask_behind,
                                                                     monkeypatch, verify) -> None:
    """A failed attempt wrote nothing, so the route runs the write afresh and books it once."""
    from ledger.services import purchases

    enrol(program, "c-1")
    record, calls = purchases.record_purchase, []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the worker lost its database")
        return record(*args, **kwargs)

    monkeypatch.setattr(purchases, "record_purchase", fails_once)
    flask_behind.calls = 0
    response = _purchase(app, program.headers("storefront"), _order("o-1", "c-1"))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert len(calls) == 2 and flask_behind.calls == 1
    activity = app.test_client().get("/v1/customers/c-1/activity", headers=program.headers("app")).get_json()
    assert [item["type"] for item in activity["items"]] == ["purchase_accrual"]
    verify()


def test_the_one_statement_balance_read_sums_what_is_due_per_asset(app, client, make_program, enrol, buy, clock,
                                                                    verify) -> None:
    """`GET .../balances` (one statement, `SqlLedger.balance_view`) shows what the profile
    (`balances_of`: cached balances, then the due releases and lapsed holds read one by one) shows,
    with pending value due and holds lapsed in both assets, a release part-reversed by a refund, and
    another customer's due value that must not count."""
    from ledger.services.releases import run_jobs

    program = make_program(cashback_rate_bps=200, points_hold_days=14, cashback_hold_days=30)
    for customer_id in ("c-1", "c-2", "c-3"):
        enrol(program, customer_id)
    headers = program.headers("storefront")
    assert buy(program, "A-1", "c-1", 10_000).status_code == 201  # 100 points and 200 cents, pending
    assert buy(program, "B-1", "c-2", 7_000).status_code == 201
    clock.advance(days=31)
    assert run_jobs(app.extensions["ledger"].uow, clock)["releases"] == 2  # one per purchase, both assets
    assert client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()["cashback"] == {
        "available": 200, "pending": 0, "reserved": 0}
    assert buy(program, "A-2", "c-1", 5_000).status_code == 201  # 50 points, 100 cents, pending
    assert buy(program, "B-2", "c-2", 3_000).status_code == 201
    for redemption_id, asset, amount in (("R-1", "points", 30), ("R-2", "cashback", 80)):
        body = {"redemption_id": redemption_id, "customer_id": "c-1", "asset": asset, "amount": amount}
        assert client.post("/v1/redemptions", json=body, headers=headers).status_code == 201
    refund = client.post("/v1/purchases/A-2/refunds", json={"refund_id": "F-1", "amount": 2_000}, headers=headers)
    assert refund.status_code == 201, refund.get_data(as_text=True)
    clock.advance(days=31)  # A-2's and B-2's releases are due and the holds have lapsed; no job has run

    for customer_id in ("c-1", "c-2", "c-3"):
        read = client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app"))
        profile = client.get(f"/v1/customers/{customer_id}", headers=program.headers("app"))
        assert read.status_code == profile.status_code == 200
        assert read.get_json() == profile.get_json()["balances"], customer_id
    shown = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    # Points: 100 + 50 - 20 clawed back, none held; cashback: 200 + (100 - 40 reversed), none held.
    assert shown["points"] == {"available": 130, "pending": 0, "reserved": 0}
    assert shown["cashback"] == {"available": 260, "pending": 0, "reserved": 0}
    assert client.get("/v1/customers/c-3/balances", headers=program.headers("app")).get_json()["points"] == {
        "available": 0, "pending": 0, "reserved": 0}
    verify()


def test_a_purchase_earns_by_the_program_settings_of_its_moment(client, program, enrol, buy, verify) -> None:
    """The write path keeps parsed settings by their stored text: a change is seen by the next purchase,
    and going back to earlier settings earns by them again."""
    enrol(program, "c-1")
    earned = []
    for order_id, patch in (("A-1", None), ("A-2", {"points_per_unit": 10, "cashback_rate_bps": 500}),
                            ("A-3", {"points_per_unit": 1, "cashback_rate_bps": 200}), ("A-4", None)):
        if patch is not None:
            assert client.patch("/v1/program", json=patch, headers=program.headers("admin")).status_code == 200
        data = buy(program, order_id, "c-1", 10_000).get_json()
        earned.append((data["points_earned"], data["cashback_earned"]))
    assert earned == [(100, 200), (1_000, 500), (100, 200), (100, 200)]
    verify()
