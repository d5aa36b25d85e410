"""Hand-built answers on the hottest routes agree with what their marshmallow schemas would dump."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from api.http import plain
from api.routes.customers import balances_body
from api.schemas.common import Balances as BalancesSchema
from ledger.domain.customers import Balances, BucketBalances

amounts = st.integers(min_value=-(2**63), max_value=2**63 - 1)
buckets = st.builds(BucketBalances, available=amounts, pending=amounts, reserved=amounts)


@settings(max_examples=200, deadline=None)
@given(st.builds(Balances, currency=st.sampled_from(["EUR", "JPY", "USD"]), points=buckets, cashback=buckets))
def test_balances_body_is_what_the_schema_dumps(balances: Balances) -> None:
    body = balances_body(balances)
    assert body == BalancesSchema().dump(plain(balances))
    assert json.dumps(body) == json.dumps(BalancesSchema().dump(plain(balances)))  # same keys in the same order


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
