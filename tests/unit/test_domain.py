"""Pure domain rules: earning, reconciliation, balanced drafts, money, settings, accounts, cursors."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ledger.domain import describe
from ledger.domain.accounts import (
    ASSETS, BUCKETS, STANDARD_HOUSE_ACCOUNTS, Asset, Bucket, customer_account, house_account,
    parse_customer_account, purchase_source,
)
from ledger.domain.customers import Balances, BucketBalances, Customer
from ledger.domain.earning import PurchaseLine, check_lines_reconcile, purchase_earnings
from ledger.domain.errors import AmountTooLarge, InvariantViolation, LinesMismatch
from ledger.domain.money import INT64_MAX, INT64_MIN, fits_int64, is_valid_currency, minor_unit_exponent, one_major_unit
from ledger.domain.programs import ProgramSettings
from ledger.domain.transactions import Posting, Reference, TransactionDraft, transfer

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def settings(currency: str = "EUR", **kw) -> ProgramSettings:  # noqa: ANN003
    return ProgramSettings(name="Shop", currency=currency, **kw)


# --- purchase_earnings -------------------------------------------------------------------------

@pytest.mark.parametrize(("amount", "expected_points"), [
    (199, 1), (200, 2), (99, 0), (100, 1), (1, 0), (12_345, 123),
])
def test_one_point_per_euro_floors(amount, expected_points):
    assert purchase_earnings(amount, settings()).points == expected_points


def test_two_hundred_points_per_euro():
    s = settings(points_per_unit=200)
    assert s.unit_amount == 100
    assert purchase_earnings(1, s).points == 2  # 1 cent -> 200/100
    assert purchase_earnings(12_345, s).points == 24_690
    assert purchase_earnings(12_345, s).cashback == 0  # default rate is 0 bps


def test_one_point_per_hundred_yen():
    s = settings("JPY", unit_amount=100)
    assert s.unit_amount == 100
    assert purchase_earnings(99, s).points == 0
    assert purchase_earnings(100, s).points == 1
    assert purchase_earnings(1_999, s).points == 19
    # With the JPY default unit (one yen) every yen earns a point.
    assert purchase_earnings(1_999, settings("JPY")).points == 1_999


@pytest.mark.parametrize(("amount", "bps", "expected"), [
    (12_345, 200, 246),  # 246.9 floored
    (49, 200, 0),        # 0.98 floored
    (50, 200, 1),
    (9_999, 1, 0),       # 0.9999 floored
    (10_000, 1, 1),
    (777, 10_000, 777),  # 100 %
    (777, 0, 0),
])
def test_cashback_floors_in_basis_points(amount, bps, expected):
    assert purchase_earnings(amount, settings(cashback_rate_bps=bps)).cashback == expected


def test_zero_points_per_unit_earns_no_points():
    earned = purchase_earnings(10**9, settings(points_per_unit=0, cashback_rate_bps=100))
    assert (earned.points, earned.cashback) == (0, 10**7)


def test_earnings_that_would_not_fit_64_bits_are_refused():
    s = settings(points_per_unit=10_000, unit_amount=1)
    with pytest.raises(AmountTooLarge):
        purchase_earnings(2**62, s)
    assert purchase_earnings(INT64_MAX // 10_000, s).points == (INT64_MAX // 10_000) * 10_000


# --- check_lines_reconcile ---------------------------------------------------------------------

def test_lines_that_reconcile_pass():
    lines = [PurchaseLine("A", 2, 1_000, discount=150), PurchaseLine("B", 1, 500)]
    # 2*1000 - 150 + 500 = 2350; + tax 400 + shipping 250 = 3000
    assert check_lines_reconcile(3_000, lines, tax=400, shipping=250) is None
    assert check_lines_reconcile(0, [], tax=0, shipping=0) is None


def test_lines_that_do_not_add_up_are_a_mismatch():
    lines = [PurchaseLine("A", 2, 1_000)]
    with pytest.raises(LinesMismatch) as info:
        check_lines_reconcile(2_001, lines, tax=0, shipping=0)
    assert info.value.code == "lines_mismatch"
    assert info.value.status == 422
    assert info.value.extra == {"expected": 2_001, "actual": 2_000}


def test_tax_and_shipping_count_towards_the_total():
    lines = [PurchaseLine("A", 1, 1_000)]
    with pytest.raises(LinesMismatch):
        check_lines_reconcile(1_000, lines, tax=1, shipping=0)
    with pytest.raises(LinesMismatch):
        check_lines_reconcile(1_000, lines, tax=0, shipping=1)


def test_discount_above_the_line_total_is_refused_even_when_the_sum_matches():
    # Line 0 nets -50, line 1 nets 150: the sum (100) matches, but a line cannot be negative.
    lines = [PurchaseLine("A", 1, 100, discount=150), PurchaseLine("B", 1, 150)]
    with pytest.raises(LinesMismatch) as info:
        check_lines_reconcile(100, lines, tax=0, shipping=0)
    assert "lines.0" in info.value.detail


def test_discount_equal_to_the_line_total_is_allowed():
    assert check_lines_reconcile(0, [PurchaseLine("A", 3, 100, discount=300)], tax=0, shipping=0) is None


# --- TransactionDraft --------------------------------------------------------------------------

def draft(*postings: Posting) -> TransactionDraft:
    return TransactionDraft(type="test", reference=Reference("order", "o-1"), postings=postings,
                            occurred_at=T0, description="test")


def test_balanced_draft_is_accepted():
    d = draft(*transfer("points", "house/points/issued/purchase", "customer/c/points/available", 5),
              *transfer("cashback", "house/cashback/funding/purchase", "customer/c/cashback/pending", 7))
    assert [p.amount for p in d.postings] == [-5, 5, -7, 7]


def test_transfer_moves_value_out_of_the_debit_into_the_credit():
    assert transfer("points", "a", "b", 3) == (Posting("a", "points", -3), Posting("b", "points", 3))


def test_zero_posting_is_refused():
    with pytest.raises(InvariantViolation, match="zero"):
        draft(Posting("a", "points", 0), Posting("b", "points", 0))


def test_empty_draft_is_refused():
    with pytest.raises(InvariantViolation):
        draft()


def test_unbalanced_draft_is_refused():
    with pytest.raises(InvariantViolation, match="unbalanced"):
        draft(Posting("a", "points", -5), Posting("b", "points", 4))


def test_balance_is_per_asset_even_when_the_grand_total_is_zero():
    # -5 points + 5 cashback sums to zero overall, but neither asset balances.
    with pytest.raises(InvariantViolation, match="unbalanced"):
        draft(Posting("a", "points", -5), Posting("b", "cashback", 5))


def test_posting_outside_int64_is_refused_even_if_balanced():
    with pytest.raises(InvariantViolation, match="64 bits"):
        draft(Posting("a", "points", -(2**63)), Posting("b", "points", 2**63))
    assert fits_int64(INT64_MIN) and fits_int64(INT64_MAX)
    assert not fits_int64(INT64_MAX + 1) and not fits_int64(INT64_MIN - 1)


def test_extreme_but_fitting_postings_are_accepted():
    d = draft(Posting("a", "points", -INT64_MAX), Posting("b", "points", INT64_MAX))
    assert sum(p.amount for p in d.postings) == 0


# --- money and describe ------------------------------------------------------------------------

@pytest.mark.parametrize(("amount", "currency", "text"), [
    (12_345, "EUR", "123.45 EUR"),
    (5, "EUR", "0.05 EUR"),
    (0, "EUR", "0.00 EUR"),
    (-5, "EUR", "-0.05 EUR"),
    (-12_345, "EUR", "-123.45 EUR"),
    (12_345, "JPY", "12345 JPY"),
    (-7, "JPY", "-7 JPY"),
    (12_345, "BHD", "12.345 BHD"),
    (1, "KWD", "0.001 KWD"),
    (-1_000, "KWD", "-1.000 KWD"),
])
def test_money_is_exact(amount, currency, text):
    assert describe.money(amount, currency) == text


def test_points_sentence_pluralises():
    assert describe.points(1) == "1 point"
    assert describe.points(-1) == "-1 point"
    assert describe.points(0) == "0 points"
    assert describe.points(12_345) == "12,345 points"


def test_purchase_accrual_sentence():
    text = describe.purchase_accrual("A-1", 123, 246, "EUR", None, datetime(2026, 12, 26, tzinfo=timezone.utc))
    assert text == "Earned 123 points and 2.46 EUR cashback (pending until 2026-12-26) on order A-1"


@pytest.mark.parametrize(("code", "exponent"), [
    ("EUR", 2), ("USD", 2), ("JPY", 0), ("BHD", 3), ("KWD", 3),
    ("XAU", None), ("XXX", None), ("eur", None), ("Eur", None), ("ZZZ", None), ("EU", None), ("EURO", None),
    ("", None), ("E1R", None),
])
def test_minor_unit_exponent(code, exponent):
    assert minor_unit_exponent(code) == exponent
    assert is_valid_currency(code) is (exponent is not None)


def test_one_major_unit():
    assert one_major_unit("EUR") == 100
    assert one_major_unit("JPY") == 1
    assert one_major_unit("KWD") == 1_000
    with pytest.raises(ValueError):
        one_major_unit("XAU")


# --- ProgramSettings ---------------------------------------------------------------------------

def test_program_settings_defaults():
    s = settings()
    assert (s.timezone, s.points_per_unit, s.unit_amount, s.cashback_rate_bps) == ("UTC", 1, 100, 0)
    assert (s.cashback_hold_days, s.points_hold_days) == (30, 0)
    assert s.return_window_days == 30


@pytest.mark.parametrize(("currency", "unit"), [("EUR", 100), ("JPY", 1), ("BHD", 1_000)])
def test_unit_amount_defaults_to_one_major_unit(currency, unit):
    assert settings(currency).unit_amount == unit


def test_explicit_unit_amount_is_kept_and_clearing_it_restores_the_default():
    s = settings(unit_amount=250)
    assert s.unit_amount == 250
    assert s.merged({"unit_amount": None}).unit_amount == 100
    assert s.merged({"points_per_unit": 3}).unit_amount == 250


def test_unknown_currency_in_settings_is_refused():
    with pytest.raises(ValueError):
        settings("XAU")


def test_settings_round_trip_through_a_dict_ignoring_unknown_keys():
    s = settings(cashback_rate_bps=200, points_hold_days=14)
    assert ProgramSettings.from_dict({**s.to_dict(), "not_a_setting": 1}) == s


def test_return_window_is_the_longer_hold():
    assert settings(points_hold_days=45, cashback_hold_days=30).return_window_days == 45
    assert settings(points_hold_days=0, cashback_hold_days=0).return_window_days == 0


# --- accounts ----------------------------------------------------------------------------------

def test_account_paths():
    assert customer_account("c-1", Asset.POINTS, Bucket.AVAILABLE) == "customer/c-1/points/available"
    assert house_account("cashback", "funding/purchase") == "house/cashback/funding/purchase"
    assert purchase_source(Asset.POINTS) == "house/points/issued/purchase"
    assert purchase_source(Asset.CASHBACK) == "house/cashback/funding/purchase"


def test_parse_customer_account():
    assert parse_customer_account("customer/c.1@x:y/cashback/pending") == ("c.1@x:y", "cashback", "pending")
    assert parse_customer_account("house/points/issued/purchase") is None
    assert parse_customer_account("house/points/redeemed") is None
    for asset in ASSETS:
        for bucket in BUCKETS:
            assert parse_customer_account(customer_account("c", asset, bucket)) == ("c", asset, bucket)


def test_standard_house_accounts():
    paths = dict(STANDARD_HOUSE_ACCOUNTS)
    assert len(paths) == len(STANDARD_HOUSE_ACCOUNTS) == 16
    assert all(path.startswith(f"house/{asset}/") for path, asset in STANDARD_HOUSE_ACCOUNTS)
    assert paths["house/points/issued/purchase"] == "points"
    assert paths["house/cashback/funding/purchase"] == "cashback"
    for asset in ASSETS:
        assert purchase_source(asset) in paths


def test_customer_accounts_and_balances():
    customer = Customer(pk=1, program_id="p", customer_id="c-1", email=None, phone=None, name=None,
                        display_name=None, birthday=None, leaderboard_opt_in=False, status="active",
                        created_at=T0, updated_at=T0)
    assert len(customer.account_paths()) == 6
    assert customer.account("points", "reserved") == "customer/c-1/points/reserved"
    balances = Balances.from_accounts("EUR", "c-1", {"customer/c-1/points/available": 5,
                                                     "customer/c-1/cashback/pending": 7,
                                                     "customer/c-2/points/available": 99})
    assert balances.points == BucketBalances(available=5, pending=0, reserved=0)
    assert balances.cashback == BucketBalances(available=0, pending=7, reserved=0)


# --- api.cursors -------------------------------------------------------------------------------

def test_cursor_round_trip():
    from api.cursors import decode_cursor, encode_cursor

    filters = {"customer_id": "c-1"}
    for key in (0, 1, 42, 2**62):
        cursor = encode_cursor(key, filters)
        assert "=" not in cursor and "/" not in cursor and "+" not in cursor
        assert decode_cursor(cursor, filters) == key
    assert decode_cursor(None, filters) is None


def _encoded(payload: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize("make_bad", [
    lambda enc: enc(1, {"customer_id": "c-2"}),         # made for other filters
    lambda enc: enc(1, {"customer_id": "c-1"})[:-2],    # truncated
    lambda enc: "!!!not-base64!!!",
    lambda enc: "",
    lambda enc: _encoded(b"not json"),
    lambda enc: _encoded(b"[1, 2]"),
    lambda enc: _encoded(b'{"k": "1", "f": "x"}'),
    lambda enc: _encoded(b'{"k": true, "f": "x"}'),
    lambda enc: _encoded(b'{"k": 1.5, "f": "x"}'),
    lambda enc: _encoded(b'{"f": "x"}'),
])
def test_tampered_cursor_is_a_400_invalid_cursor(make_bad):
    from api.cursors import decode_cursor, encode_cursor
    from api.errors import ApiProblem

    filters = {"customer_id": "c-1"}
    with pytest.raises(ApiProblem) as info:
        decode_cursor(make_bad(encode_cursor), filters)
    assert info.value.status == 400
    assert info.value.code == "invalid_cursor"


def test_cursor_is_only_opaque_not_signed():
    """Documents the design: a cursor edited to another key with the right filters hash is accepted
    (it only moves the page boundary within the caller's own program)."""
    from api.cursors import _filters_hash, decode_cursor

    filters = {"customer_id": "c-1"}
    forged = _encoded(f'{{"k":7,"f":"{_filters_hash(filters)}"}}'.encode())
    assert decode_cursor(forged, filters) == 7


def test_cursor_with_bool_key_and_right_filters_is_refused():
    from api.cursors import _filters_hash, decode_cursor
    from api.errors import ApiProblem

    filters: dict = {}
    with pytest.raises(ApiProblem) as info:
        decode_cursor(_encoded(f'{{"k":true,"f":"{_filters_hash(filters)}"}}'.encode()), filters)
    assert info.value.code == "invalid_cursor"
