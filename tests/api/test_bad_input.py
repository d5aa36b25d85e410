"""Every bad input of the foundation issue (issue 2, "Bad input"; ARCHITECTURE.md §2, §3, §6).

Each refusal must be an RFC 9457 problem (`application/problem+json` with type, title, status,
detail and a stable `code`), name the offending field on a 422 `validation_error`, and write
nothing: every table keeps its row count and the ledger still verifies with the same entries.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.helpers import assert_problem, row_counts

MAX = 10**14
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- helpers


def assert_has_offset(value: str) -> None:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None, value


@pytest.fixture
def shop(program, enrol):
    """The default EUR program with one enrolled customer and one recorded purchase."""
    enrol(program, "c-1")
    return program


@pytest.fixture
def nothing_written(app, client, shop, verify):
    """Snapshot before the bad request; call the returned function to assert nothing changed."""
    before_counts = row_counts(app)
    before_entries = verify().entries
    before_balances = client.get("/v1/customers/c-1/balances", headers=shop.headers("app")).get_json()

    def check() -> None:
        assert row_counts(app) == before_counts
        assert verify().entries == before_entries
        assert client.get("/v1/customers/c-1/balances", headers=shop.headers("app")).get_json() == before_balances

    return check


def purchase_body(**overrides: Any) -> dict:
    body = {"order_id": "A-1", "customer_id": "c-1", "amount": 1_000, "currency": "EUR"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


def post_purchase(client: Any, shop: Any, body: Any) -> Any:
    return client.post("/v1/purchases", json=body, headers=shop.headers("storefront"))


def line(**overrides: Any) -> dict:
    base = {"sku": "SKU-1", "quantity": 1, "unit_price": 1_000}
    base.update(overrides)
    return base


# --------------------------------------------------------------------------- purchase: amounts

BAD_AMOUNTS = [
    pytest.param("7", id="string"),
    pytest.param(7.0, id="float-integral"),
    pytest.param(7.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative"),
    pytest.param(-(10**14), id="very-negative"),
    pytest.param(MAX + 1, id="max+1"),
    pytest.param(10**30, id="10^30"),
    pytest.param([7], id="list"),
    pytest.param({"value": 7}, id="object"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amount_is_refused_naming_the_field(client, shop, nothing_written, amount):
    response = post_purchase(client, shop, purchase_body(amount=amount))
    assert_problem(response, 422, "validation_error", "amount")
    nothing_written()
    assert client.get("/v1/purchases/A-1", headers=shop.headers("app")).status_code == 404


@pytest.mark.parametrize("amount", [1, MAX])
def test_amount_bounds_are_accepted(client, shop, verify, amount):
    response = post_purchase(client, shop, purchase_body(amount=amount))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["points_earned"] == amount // 100
    verify()


@pytest.mark.parametrize("unit_price", BAD_AMOUNTS)
def test_bad_unit_price_is_refused_naming_the_line_field(client, shop, nothing_written, unit_price):
    body = purchase_body(amount=1_000, lines=[line(unit_price=unit_price)])
    assert_problem(post_purchase(client, shop, body), 422, "validation_error", "lines.0.unit_price")
    nothing_written()


def test_unit_price_at_the_maximum_is_accepted(client, shop, verify):
    body = purchase_body(amount=MAX, lines=[line(unit_price=MAX)])
    assert post_purchase(client, shop, body).status_code == 201
    verify()


BAD_NON_NEGATIVE = [
    pytest.param(-1, id="negative"),
    pytest.param(MAX + 1, id="max+1"),
    pytest.param(10**30, id="10^30"),
    pytest.param("5", id="string"),
    pytest.param(5.0, id="float"),
    pytest.param(True, id="bool"),
]


@pytest.mark.parametrize("name", ["tax", "shipping"])
@pytest.mark.parametrize("value", BAD_NON_NEGATIVE)
def test_bad_tax_or_shipping_is_refused(client, shop, nothing_written, name, value):
    assert_problem(post_purchase(client, shop, purchase_body(**{name: value})), 422, "validation_error", name)
    nothing_written()


@pytest.mark.parametrize("value", BAD_NON_NEGATIVE)
def test_bad_line_discount_is_refused(client, shop, nothing_written, value):
    body = purchase_body(lines=[line(), line(sku="SKU-2", discount=value)], amount=2_000)
    assert_problem(post_purchase(client, shop, body), 422, "validation_error", "lines.1.discount")
    nothing_written()


def test_zero_tax_shipping_and_discount_are_allowed(client, shop, verify):
    body = purchase_body(amount=1_000, tax=0, shipping=0, lines=[line(discount=0)])
    response = post_purchase(client, shop, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    verify()


def test_maximum_tax_shipping_and_discount_are_allowed(client, shop, verify):
    # 2 * 10^14 - 10^14 (discount) + 10^14 (tax) + 10^14 (shipping) > 10^14 = amount max:
    # so keep the total in range while each part reaches its own maximum.
    body = purchase_body(amount=MAX, tax=MAX // 2, shipping=MAX // 2 - 1,
                         lines=[line(quantity=1, unit_price=MAX, discount=MAX - 1)])
    response = post_purchase(client, shop, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = purchase_body(order_id="A-2", amount=MAX, tax=MAX, shipping=0,
                         lines=[line(quantity=1, unit_price=MAX, discount=MAX)])
    response = post_purchase(client, shop, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    verify()


@pytest.mark.parametrize("quantity", [
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative"),
    pytest.param(10**6 + 1, id="max+1"),
    pytest.param("1", id="string"),
    pytest.param(1.0, id="float"),
    pytest.param(None, id="null"),
])
def test_bad_quantity_is_refused(client, shop, nothing_written, quantity):
    body = purchase_body(amount=1_000, lines=[line(quantity=quantity)])
    assert_problem(post_purchase(client, shop, body), 422, "validation_error", "lines.0.quantity")
    nothing_written()


def test_quantity_at_the_maximum_is_accepted(client, shop, verify):
    body = purchase_body(amount=10**6 * 10**8, lines=[line(quantity=10**6, unit_price=10**8)])
    assert post_purchase(client, shop, body).status_code == 201
    verify()


# --------------------------------------------------------------------------- purchase: shape


@pytest.mark.parametrize("missing", ["order_id", "customer_id", "amount", "currency"])
def test_missing_required_field_is_named(client, shop, nothing_written, missing):
    assert_problem(post_purchase(client, shop, purchase_body(**{missing: _DROP})), 422, "validation_error", missing)
    nothing_written()


@pytest.mark.parametrize("missing", ["sku", "quantity", "unit_price"])
def test_missing_required_line_field_is_named(client, shop, nothing_written, missing):
    bad_line = {k: v for k, v in line().items() if k != missing}
    body = purchase_body(lines=[bad_line])
    assert_problem(post_purchase(client, shop, body), 422, "validation_error", f"lines.0.{missing}")
    nothing_written()


def test_unknown_top_level_field_is_refused(client, shop, nothing_written):
    assert_problem(post_purchase(client, shop, purchase_body(coupon="FREE")), 422, "validation_error", "coupon")
    nothing_written()


def test_unknown_field_inside_a_line_is_refused(client, shop, nothing_written):
    body = purchase_body(lines=[line(colour="red")])
    assert_problem(post_purchase(client, shop, body), 422, "validation_error", "lines.0.colour")
    nothing_written()


@pytest.mark.parametrize("lines", [pytest.param("SKU-1", id="string"), pytest.param({"sku": "x"}, id="object"),
                                   pytest.param(["SKU-1"], id="list-of-strings")])
def test_lines_of_the_wrong_type_are_refused(client, shop, nothing_written, lines):
    body = purchase_body(lines=lines)
    response = post_purchase(client, shop, body)
    problem = assert_problem(response, 422, "validation_error")
    assert all(e["field"].startswith("lines") for e in problem["errors"]), problem
    nothing_written()


def test_unknown_currency_code_is_refused(client, shop, nothing_written):
    response = post_purchase(client, shop, purchase_body(currency="ZZZ"))
    assert response.status_code == 422
    # The service may refuse it as a malformed value (naming the field) or as not the program's currency.
    code = response.get_json()["code"]
    assert code in ("validation_error", "currency_mismatch"), code
    assert_problem(response, 422, code, "currency" if code == "validation_error" else None)
    nothing_written()


def test_another_real_currency_is_a_currency_mismatch(client, shop, nothing_written):
    assert_problem(post_purchase(client, shop, purchase_body(currency="USD")), 422, "currency_mismatch")
    nothing_written()


@pytest.mark.parametrize("currency", ["eur", "Eur", "EURO", "EU", "", "E1R", 978, None])
def test_malformed_currency_is_a_validation_error(client, shop, nothing_written, currency):
    assert_problem(post_purchase(client, shop, purchase_body(currency=currency)), 422, "validation_error", "currency")
    nothing_written()


BAD_IDS = [
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("", id="empty"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("café", id="unicode"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a%b", id="percent"),
    pytest.param("<script>", id="angle"),
    pytest.param(42, id="number"),
]


@pytest.mark.parametrize("name", ["order_id", "customer_id"])
@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids_in_a_purchase_are_refused(client, shop, nothing_written, name, value):
    assert_problem(post_purchase(client, shop, purchase_body(**{name: value})), 422, "validation_error", name)
    nothing_written()


def test_ids_of_128_allowed_characters_are_accepted(client, shop, enrol, verify):
    customer_id = ("Az09._:@-" * 15)[:128]
    order_id = ("o" * 127) + "9"
    enrol(shop, customer_id)
    body = purchase_body(order_id=order_id, customer_id=customer_id)
    assert post_purchase(client, shop, body).status_code == 201
    assert client.get(f"/v1/purchases/{order_id}", headers=shop.headers("app")).status_code == 200
    verify()


@pytest.mark.parametrize("path_id", [
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("a%20b", id="space"),
    pytest.param("caf%C3%A9", id="unicode"),
    pytest.param("a%3Cb%3E", id="angle"),
    pytest.param("a%25b", id="percent"),
])
def test_bad_customer_id_in_the_put_path_is_refused(client, app, shop, nothing_written, path_id):
    response = client.put(f"/v1/customers/{path_id}", json={"email": "x@example.com"},
                          headers=shop.headers("storefront"))
    assert_problem(response, 422, "validation_error", "customer_id")
    nothing_written()


def test_slash_in_the_put_path_is_refused(client, app, shop, nothing_written):
    # WSGI decodes %2F before routing, so "a/b" can never be one path segment: the request names
    # no customer resource at all. Whatever the refusal, it is a problem and it writes nothing.
    response = client.put("/v1/customers/a%2Fb", json={}, headers=shop.headers("storefront"))
    assert response.status_code in (404, 422), response.status_code
    assert_problem(response, response.status_code,
                   "not_found" if response.status_code == 404 else "validation_error")
    nothing_written()


@pytest.mark.parametrize("path_id", ["x" * 129, "a%20b", "caf%C3%A9"])
def test_bad_ids_in_read_paths_are_refused(client, shop, path_id):
    for suffix in ("", "/balances", "/activity"):
        response = client.get(f"/v1/customers/{path_id}{suffix}", headers=shop.headers("app"))
        assert_problem(response, 422, "validation_error", "customer_id")
    assert_problem(client.get(f"/v1/purchases/{path_id}", headers=shop.headers("app")),
                   422, "validation_error", "order_id")


@pytest.mark.parametrize("occurred_at", [
    pytest.param("2026-11-26T10:00:00", id="naive"),
    pytest.param("2026-11-26 10:00:00", id="naive-space"),
    pytest.param("2026-11-26", id="date-only"),
    pytest.param("yesterday", id="words"),
    pytest.param("2026-13-40T10:00:00Z", id="impossible-date"),
    pytest.param(1_700_000_000, id="epoch-number"),
    pytest.param(None, id="null"),
])
def test_bad_occurred_at_is_refused(client, shop, nothing_written, occurred_at):
    response = post_purchase(client, shop, purchase_body(occurred_at=occurred_at))
    assert_problem(response, 422, "validation_error", "occurred_at")
    nothing_written()


def test_occurred_at_with_an_offset_round_trips_as_utc(client, shop, verify):
    response = post_purchase(client, shop, purchase_body(occurred_at="2026-11-26T11:30:00+02:00"))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert datetime.fromisoformat(data["occurred_at"]) == datetime.fromisoformat("2026-11-26T09:30:00+00:00")
    assert_has_offset(data["occurred_at"])
    # the first answer, its replays and later reads all give the same instant, in UTC
    assert datetime.fromisoformat(data["occurred_at"]).utcoffset().total_seconds() == 0, data["occurred_at"]
    # stored in UTC: read back, it is the same instant, in UTC
    detail = client.get("/v1/purchases/A-1", headers=shop.headers("app")).get_json()
    assert datetime.fromisoformat(detail["occurred_at"]) == datetime.fromisoformat("2026-11-26T09:30:00+00:00")
    assert datetime.fromisoformat(detail["occurred_at"]).utcoffset().total_seconds() == 0, detail["occurred_at"]
    activity = client.get("/v1/customers/c-1/activity", headers=shop.headers("app")).get_json()["items"]
    assert datetime.fromisoformat(activity[0]["occurred_at"]) == datetime.fromisoformat("2026-11-26T09:30:00+00:00")
    verify()


@pytest.mark.parametrize("lines,tax,shipping", [
    pytest.param([line(unit_price=999)], 0, 0, id="short-by-one"),
    pytest.param([line(unit_price=1_000)], 1, 0, id="tax-overshoots"),
    pytest.param([line(unit_price=500), line(sku="S2", unit_price=400)], 0, 0, id="two-lines-short"),
    pytest.param([line(quantity=2, unit_price=500, discount=1)], 0, 0, id="discount-unaccounted"),
    pytest.param([line(unit_price=900)], 0, 99, id="shipping-short"),
    pytest.param([line(unit_price=1_000, discount=1_001)], 1_001, 1_000, id="discount-over-line-total"),
    pytest.param([], 0, 0, id="no-lines"),
])
def test_lines_that_do_not_reconcile_are_refused(client, shop, nothing_written, lines, tax, shipping):
    body = purchase_body(amount=1_000, lines=lines, tax=tax, shipping=shipping)
    assert_problem(post_purchase(client, shop, body), 422, "lines_mismatch")
    nothing_written()


def test_lines_that_reconcile_are_accepted(client, shop, verify):
    body = purchase_body(amount=1_000, tax=100, shipping=50,
                         lines=[line(quantity=3, unit_price=250, discount=50), line(sku="S2", unit_price=150)])
    response = post_purchase(client, shop, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    verify()


# --------------------------------------------------------------------------- purchase: body encoding

MALFORMED = [
    pytest.param(b'{"order_id": "A-1", ', id="truncated"),
    pytest.param(b"{'order_id': 'A-1'}", id="single-quotes"),
    pytest.param(b'{"order_id": "A-1",}', id="trailing-comma"),
    pytest.param(b'{"amount": ' + b"9" * 5000 + b"}", id="5000-digit-integer"),
    pytest.param(b'{"amount": ' + b"1" * 4301 + b"}", id="4301-digit-integer"),
    pytest.param(b'{"amount": NaN}', id="NaN"),
    pytest.param(b'{"amount": Infinity}', id="Infinity"),
    pytest.param(b'{"amount": -Infinity}', id="-Infinity"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"[" * 100_000, id="deep-nesting"),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_json_is_a_400(client, shop, nothing_written, data):
    response = client.post("/v1/purchases", data=data, content_type="application/json",
                           headers=shop.headers("storefront"))
    assert_problem(response, 400, "malformed_json")
    nothing_written()


def test_huge_integer_inside_a_valid_document_is_malformed_not_a_500(client, shop, nothing_written):
    raw = json.dumps(purchase_body(amount=0)).replace('"amount": 0', '"amount": ' + "7" * 5000).encode()
    response = client.post("/v1/purchases", data=raw, content_type="application/json",
                           headers=shop.headers("storefront"))
    assert_problem(response, 400, "malformed_json")
    nothing_written()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_is_a_415(client, shop, nothing_written, content_type):
    response = client.post("/v1/purchases", data=json.dumps(purchase_body()), content_type=content_type,
                           headers=shop.headers("storefront"))
    assert_problem(response, 415, "unsupported_media_type")
    nothing_written()


def test_a_body_without_content_type_is_a_415(client, shop, nothing_written):
    response = client.post("/v1/purchases", data=json.dumps(purchase_body()), headers=shop.headers("storefront"))
    assert_problem(response, 415, "unsupported_media_type")
    nothing_written()


@pytest.mark.parametrize("body", [pytest.param([purchase_body()], id="array"), pytest.param("A-1", id="string"),
                                  pytest.param(7, id="number"), pytest.param(None, id="null")])
def test_a_json_body_that_is_not_an_object_is_a_422(client, shop, nothing_written, body):
    response = client.post("/v1/purchases", data=json.dumps(body), content_type="application/json",
                           headers=shop.headers("storefront"))
    assert_problem(response, 422, "validation_error")
    nothing_written()


def test_an_empty_body_names_the_required_fields(client, shop, nothing_written):
    response = client.post("/v1/purchases", data=b"", content_type="application/json",
                           headers=shop.headers("storefront"))
    problem = assert_problem(response, 422, "validation_error")
    assert {"order_id", "customer_id", "amount", "currency"} <= {e["field"] for e in problem["errors"]}
    nothing_written()


def test_unknown_customer_is_a_404(client, shop, nothing_written):
    assert_problem(post_purchase(client, shop, purchase_body(customer_id="nobody")), 404, "customer_not_found")
    nothing_written()


# --------------------------------------------------------------------------- computed overflow


def test_largest_single_purchase_fits_64_bits(client, make_program, enrol, verify):
    """10^14 minor units at 10,000 points per 1 minor unit: 10^18 points, within 64 bits."""
    shop = make_program(points_per_unit=10_000, unit_amount=1, cashback_rate_bps=10_000, cashback_hold_days=0)
    enrol(shop, "c-1")
    response = post_purchase(client, shop, purchase_body(amount=MAX))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["points_earned"] == 10**18
    assert data["cashback_earned"] == MAX
    assert data["balances"]["points"]["available"] == 10**18
    verify()


def test_a_balance_that_would_overflow_64_bits_is_refused_with_422(client, app, make_program, enrol, verify):
    """The single-purchase maximum fits, but balances add up: the tenth 10^18-point purchase
    would take the balance to 10^19 > 2^63 - 1. The issue: refuse with 422 any result that
    would not fit 64 bits (never a 500, never a wrapped or partial write)."""
    shop = make_program(points_per_unit=10_000, unit_amount=1)
    enrol(shop, "c-1")
    for n in range(9):
        response = post_purchase(client, shop, purchase_body(order_id=f"A-{n}", amount=MAX))
        assert response.status_code == 201, response.get_data(as_text=True)
    balances = client.get("/v1/customers/c-1/balances", headers=shop.headers("app")).get_json()
    assert balances["points"]["available"] == 9 * 10**18 <= INT64_MAX
    before = row_counts(app)
    response = post_purchase(client, shop, purchase_body(order_id="A-9", amount=MAX))
    assert response.status_code == 422, (response.status_code, response.get_data(as_text=True))
    assert_problem(response, 422, "amount_too_large")
    assert row_counts(app) == before
    assert client.get("/v1/customers/c-1/balances", headers=shop.headers("app")).get_json() == balances
    # a purchase that still fits goes through
    fits = INT64_MAX - 9 * 10**18  # points that still fit
    response = post_purchase(client, shop, purchase_body(order_id="A-10", amount=fits // 10_000))
    assert response.status_code == 201, response.get_data(as_text=True)
    verify()


# --------------------------------------------------------------------------- program creation

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def create_program(client: Any, body: Any, **kwargs: Any) -> Any:
    return client.post("/v1/programs", json=body, headers=OPERATOR, **kwargs)


@pytest.mark.parametrize("overrides,field", [
    pytest.param({"currency": "ZZZ"}, "currency", id="unknown-currency"),
    pytest.param({"currency": "XAU"}, "currency", id="gold-no-exponent"),
    pytest.param({"currency": "XXX"}, "currency", id="no-currency-code"),
    pytest.param({"currency": "eur"}, "currency", id="lowercase"),
    pytest.param({"currency": "EURO"}, "currency", id="four-letters"),
    pytest.param({"currency": 978}, "currency", id="numeric"),
    pytest.param({"currency": None}, "currency", id="null-currency"),
    pytest.param({"timezone": "Mars/Olympus"}, "timezone", id="bad-timezone"),
    pytest.param({"timezone": "../../etc/passwd"}, "timezone", id="path-timezone"),
    pytest.param({"timezone": ""}, "timezone", id="empty-timezone"),
    pytest.param({"points_per_unit": 10_001}, "points_per_unit", id="points_per_unit-max+1"),
    pytest.param({"points_per_unit": -1}, "points_per_unit", id="points_per_unit-negative"),
    pytest.param({"points_per_unit": "1"}, "points_per_unit", id="points_per_unit-string"),
    pytest.param({"points_per_unit": 1.5}, "points_per_unit", id="points_per_unit-float"),
    pytest.param({"unit_amount": 0}, "unit_amount", id="unit_amount-zero"),
    pytest.param({"cashback_rate_bps": -1}, "cashback_rate_bps", id="bps-negative"),
    pytest.param({"cashback_rate_bps": 10_001}, "cashback_rate_bps", id="bps-max+1"),
    pytest.param({"cashback_hold_days": 366}, "cashback_hold_days", id="cashback-hold-366"),
    pytest.param({"cashback_hold_days": -1}, "cashback_hold_days", id="cashback-hold-negative"),
    pytest.param({"points_hold_days": 366}, "points_hold_days", id="points-hold-366"),
    pytest.param({"points_hold_days": True}, "points_hold_days", id="points-hold-bool"),
    pytest.param({"name": _DROP}, "name", id="missing-name"),
    pytest.param({"name": ""}, "name", id="empty-name"),
    pytest.param({"name": None}, "name", id="null-name"),
    pytest.param({"currency": _DROP}, "currency", id="missing-currency"),
    pytest.param({"api_keys": {"admin": "mine"}}, "api_keys", id="unknown-field"),
    pytest.param({"id": "prg_mine"}, "id", id="id-not-settable"),
])
def test_bad_program_creation_is_refused(client, app, overrides, field):
    body = {"name": "Shop", "currency": "EUR", **overrides}
    body = {k: v for k, v in body.items() if v is not _DROP}
    before = row_counts(app)
    assert_problem(create_program(client, body), 422, "validation_error", field)
    assert row_counts(app) == before


def test_program_creation_body_encoding_errors(client, app):
    before = row_counts(app)
    response = client.post("/v1/programs", data=b'{"name": ', content_type="application/json", headers=OPERATOR)
    assert_problem(response, 400, "malformed_json")
    response = client.post("/v1/programs", data=b"name=Shop", content_type="text/plain", headers=OPERATOR)
    assert_problem(response, 415, "unsupported_media_type")
    response = client.post("/v1/programs", data=b"[]", content_type="application/json", headers=OPERATOR)
    assert_problem(response, 422, "validation_error")
    assert row_counts(app) == before


@pytest.mark.parametrize("overrides", [
    {"points_per_unit": 0}, {"points_per_unit": 10_000}, {"cashback_rate_bps": 10_000},
    {"cashback_hold_days": 365, "points_hold_days": 365}, {"cashback_hold_days": 0},
    {"timezone": "Europe/Paris"}, {"currency": "JPY"}, {"currency": "BHD"},
])
def test_program_creation_accepts_the_bounds(make_program, overrides):
    program = make_program(**overrides)
    for name, value in overrides.items():
        assert program.body[name] == value


@pytest.mark.parametrize("patch,field", [
    pytest.param({"points_per_unit": 10_001}, "points_per_unit", id="points_per_unit"),
    pytest.param({"cashback_rate_bps": -1}, "cashback_rate_bps", id="bps"),
    pytest.param({"points_hold_days": 366}, "points_hold_days", id="hold"),
    pytest.param({"timezone": "Mars/Olympus"}, "timezone", id="timezone"),
    pytest.param({"unit_amount": "100"}, "unit_amount", id="unit_amount-string"),
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    pytest.param({"api_keys": {}}, "api_keys", id="keys-not-a-setting"),
    pytest.param({"name": None}, "name", id="name-cannot-be-cleared"),
])
def test_bad_program_patch_is_refused(client, app, program, patch, field):
    before_program = client.get("/v1/program", headers=program.headers("admin")).get_json()
    before = row_counts(app)
    response = client.patch("/v1/program", json=patch, headers=program.headers("admin"))
    assert_problem(response, 422, "validation_error", field)
    assert row_counts(app) == before
    assert client.get("/v1/program", headers=program.headers("admin")).get_json() == before_program


def test_changing_the_currency_is_refused(client, app, program):
    before = row_counts(app)
    response = client.patch("/v1/program", json={"currency": "USD"}, headers=program.headers("admin"))
    assert_problem(response, 422, "immutable_setting")
    response = client.patch("/v1/program", json={"currency": "USD", "points_per_unit": 5},
                            headers=program.headers("admin"))
    assert_problem(response, 422, "immutable_setting")
    assert row_counts(app) == before
    data = client.get("/v1/program", headers=program.headers("app")).get_json()
    assert data["currency"] == "EUR" and data["points_per_unit"] == 1


def test_repeating_the_same_currency_in_a_patch_is_allowed(client, program):
    response = client.patch("/v1/program", json={"currency": "EUR", "points_per_unit": 3},
                            headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["points_per_unit"] == 3


# --------------------------------------------------------------------------- timestamps out


def test_every_timestamp_in_answers_carries_an_offset(client, shop, verify):
    response = post_purchase(client, shop, purchase_body(amount=5_000))
    assert response.status_code == 201
    data = response.get_json()
    for name in ("occurred_at", "recorded_at", "points_available_at", "cashback_available_at"):
        assert_has_offset(data[name])
    detail = client.get("/v1/purchases/A-1", headers=shop.headers("app")).get_json()
    assert_has_offset(detail["occurred_at"])
    assert_has_offset(detail["recorded_at"])
    customer = client.get("/v1/customers/c-1", headers=shop.headers("app")).get_json()
    assert_has_offset(customer["created_at"])
    assert_has_offset(customer["updated_at"])
    for item in client.get("/v1/customers/c-1/activity", headers=shop.headers("app")).get_json()["items"]:
        assert_has_offset(item["occurred_at"])
        assert_has_offset(item["recorded_at"])
    entries = client.get("/v1/ledger/entries", headers=shop.headers("finance")).get_json()["items"]
    assert entries
    for entry in entries:
        assert_has_offset(entry["recorded_at"])
    assert_has_offset(client.get("/v1/program", headers=shop.headers("app")).get_json()["created_at"])
    for key in client.get("/v1/api-keys", headers=shop.headers("admin")).get_json()["items"]:
        assert_has_offset(key["created_at"])
        if key["last_used_at"] is not None:
            assert_has_offset(key["last_used_at"])
    client.patch("/v1/program", json={"points_per_unit": 2}, headers=shop.headers("admin"))
    for change in client.get("/v1/program/changes", headers=shop.headers("admin")).get_json()["items"]:
        assert_has_offset(change["changed_at"])
    verify()


def test_the_ledger_still_verifies_when_house_totals_exceed_64_bits(client, make_program, enrol, verify):
    """Each customer balance stays within 64 bits, but the house account they were issued from
    sums over every customer: two customers at 9 * 10^18 points put `issued/purchase` at
    -1.8 * 10^19. Checking the books must not overflow (nor answer a 500)."""
    shop = make_program(points_per_unit=10_000, unit_amount=1)
    for customer_id in ("c-1", "c-2"):
        enrol(shop, customer_id)
        for n in range(9):
            response = post_purchase(client, shop, purchase_body(order_id=f"{customer_id}-{n}",
                                                                 customer_id=customer_id, amount=MAX))
            assert response.status_code == 201, response.get_data(as_text=True)
    assert verify().entries == 2 * 9 * 2
    entries = client.get("/v1/ledger/entries?limit=500", headers=shop.headers("finance"))
    assert entries.status_code == 200
    assert sum(e["amount"] for e in entries.get_json()["items"]) == 0
