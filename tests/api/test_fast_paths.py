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
    return method == "GET" and app.wsgi_app._answer(environ) is not None


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
