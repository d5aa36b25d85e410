"""Customers: enrolment, profile, balances, activity."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import marshmallow as ma
from flask import Response, current_app

from ledger.domain.customers import Balances, Customer
from ledger.services import books, membership, queries
from ledger.services import customers as use_cases

from ..cursors import decode_cursor, encode_cursor
from ledger.domain.errors import ValidationFailed

from ..http import (
    Blueprint, booking_context, idempotent_write, json_response, principal, program_id, read, requires, write,
)
from ..schemas.common import PageArgs
from ..schemas.customers import ActivityPage, CustomerOut, CustomerPath, CustomerPut
from ..schemas.finance import AsOfArgs, AsOfBalancesOut, ClosureOut, ErasureOut
from .programs import ALL_ROLES

blp = Blueprint("customers", __name__, url_prefix="/v1/customers", description="Enrolled customers")


def balances_body(balances: Balances) -> dict:
    """Exactly what the `Balances` schema dumps, built directly: this is the hottest read, and the
    generic dump was a tenth of its time. tests/api/test_fast_paths.py holds the two equal."""
    points, cashback = balances.points, balances.cashback
    return {"currency": balances.currency,
            "points": {"available": points.available, "pending": points.pending, "reserved": points.reserved},
            "cashback": {"available": cashback.available, "pending": cashback.pending,
                         "reserved": cashback.reserved}}


def customer_dict(customer: Customer, balances: Balances) -> dict:
    data = {k: v for k, v in asdict(customer).items() if k not in ("pk", "program_id", "referred_by_pk")}
    data["balances"] = asdict(balances)
    return data


@blp.route("/<customer_id>", methods=["PUT"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.arguments(CustomerPut)
@blp.response(200, CustomerOut, description="Updated")
@blp.alt_response(201, schema=CustomerOut, description="Enrolled", success=True)
@requires("admin", "storefront")
def put_customer(body: dict, customer_id: str) -> Response:
    """Enrol (201) or update (200) a customer: an omitted field stays as it was, null clears it.
    `status` (active or blocked) may be set by the admin key only (422 `validation_error` otherwise). `referred_by`
    registers the owner of that referral code as the referrer: 422 `unknown_referral_code`,
    `self_referral`, `circular_referral`, `referee_already_purchased`, `customer_blocked`;
    409 `already_referred` for another code."""
    ledger = current_app.extensions["ledger"]
    if "status" in body and principal().role != "admin":
        raise ValidationFailed([{"field": "status", "message": "only the admin key may block or unblock a customer"}])
    if body.get("birthday") is not None:
        body["birthday"] = body["birthday"].isoformat()
    result = write(lambda uow: use_cases.enrol_or_update(uow, ledger.clock, program_id(), customer_id, body))
    return json_response(CustomerOut().dump(customer_dict(result.customer, result.balances)),
                         201 if result.created else 200)


@blp.route("/<customer_id>", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, CustomerOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_customer(customer_id: str) -> Response:
    """Profile and balances."""
    now = current_app.extensions["ledger"].clock.now()
    customer, balances = read(lambda uow: queries.customer_profile(uow, now, program_id(), customer_id))
    return json_response(CustomerOut().dump(customer_dict(customer, balances)))


@blp.route("/<customer_id>/balances", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.arguments(AsOfArgs, location="query", as_kwargs=True, unknown=ma.RAISE)
@blp.response(200, AsOfBalancesOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_balances(customer_id: str, as_of: datetime | None = None) -> Response:
    """Available, pending and reserved, per asset: points, and cashback in minor units. With
    `as_of` (recorded time), the balances as the ledger stood then: the balance after each
    account's last entry recorded before that instant (nothing is shown as due or lapsed)."""
    ledger = current_app.extensions["ledger"]
    if as_of is not None:
        pid = program_id()
        by_asset = read(lambda uow: (uow.programs.get(pid).settings.currency,
                                     books.customer_balances_as_of(uow, pid, customer_id, as_of)))
        currency, balances_ = by_asset
        return json_response(AsOfBalancesOut().dump({"currency": currency, **balances_, "as_of": as_of}))
    now = ledger.clock.now()
    balances = read(lambda uow: queries.customer_balances(uow, now, program_id(), customer_id), single_statement=True)
    return json_response(balances_body(balances))


@blp.route("/<customer_id>/personal-data", methods=["DELETE"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, ErasureOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def erase_personal_data(customer_id: str) -> Response:
    """Erase the member's personal data (email, phone, name, display name, birthday; off the
    leaderboard). The ledger stays intact under the same customer id. Idempotent."""
    ledger = current_app.extensions["ledger"]
    result = write(lambda uow: membership.erase_personal_data(uow, ledger.clock, program_id(), customer_id))
    return json_response(ErasureOut().dump(result))


@blp.route("/<customer_id>/close", methods=["POST"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, ClosureOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def close_customer(customer_id: str) -> Response:
    """Close the membership: open holds are voided, every point is forfeited (Dr the member's
    buckets, Cr `forfeited`), a negative balance is written off, and the cashback is reported as
    `cashback_owed` (or forfeited too under the program's `forfeit_cashback_on_close`). The member
    then earns and redeems nothing (422 `customer_closed`); their history stays readable. A
    repeat replays the first answer."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: membership.close_membership(uow, ledger.clock, pid, customer_id, ctx),
                            ClosureOut(), 200, natural_key=("closure", customer_id))


@blp.route("/<customer_id>/activity", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, ActivityPage)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_activity(customer_id: str, limit: int, cursor: str | None = None) -> Response:
    """One item per transaction, newest first, with the signed change to each bucket."""
    filters = {"customer_id": customer_id}
    before = decode_cursor(cursor, filters)
    items = read(lambda uow: queries.customer_activity(uow, program_id(), customer_id, before, limit + 1))
    next_cursor = encode_cursor(items[limit - 1].seq, filters) if len(items) > limit else None
    return json_response(ActivityPage().dump({"items": [asdict(i) for i in items[:limit]],
                                              "next_cursor": next_cursor}))
