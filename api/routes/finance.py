"""Corrections and reports for finance: adjustments (with a second approver above a threshold),
the liability roll-forward and the activity report."""
from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app

from ledger.services import books, corrections, reports
from ledger.services.books import jsonable

from ..http import (
    Blueprint, booking_context, idempotent_write, json_response, program_id, read, requires, with_balances,
)
from ..schemas.finance import (
    ActivityArgs, ActivityOut, AdjustmentIn, AdjustmentOut, AdjustmentPath, LiabilityArgs, LiabilityOut,
)

blp = Blueprint("finance", __name__, url_prefix="/v1", description="Adjustments and reports in money (finance)")


@blp.route("/adjustments", methods=["POST"])
@blp.arguments(AdjustmentIn)
@blp.response(201, AdjustmentOut, description="Booked")
@blp.alt_response(202, schema=AdjustmentOut, description="Pending approval: nothing booked yet", success=True)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("finance")
def create_adjustment(body: dict) -> Response:
    """Add to (positive `amount`) or take from (negative) a customer's available balance, with a
    required `reason`. `reason_code` (goodwill, correction, fraud_removal; default correction)
    selects the house account `issued/adjustment/{code}` or `funding/adjustment/{code}`. Worth more
    than the program's `adjustment_approval_threshold` (minor units; points at the redemption
    rate): 202 `pending_approval`, nothing booked until another finance key approves. Idempotent by
    `adjustment_id`; another body under the same id is 409 `duplicate_adjustment`. 422
    `insufficient_balance` when a negative adjustment takes more than is available."""
    ledger = current_app.extensions["ledger"]
    cmd = corrections.AdjustmentCommand(**body)
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: corrections.request_adjustment(uow, ledger.clock, pid, cmd, ctx),
                            with_balances(AdjustmentOut), 201, natural_key=("adjustment", cmd.adjustment_id),
                            status_of=lambda result: 202 if result["status"] == "pending_approval" else 201)


@blp.route("/adjustments/<adjustment_id>/approve", methods=["POST"])
@blp.arguments(AdjustmentPath, location="path", as_kwargs=True)
@blp.response(200, AdjustmentOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("finance")
def approve_adjustment(adjustment_id: str) -> Response:
    """Book an adjustment that was pending approval. The key that requested it may not approve it
    (403 `same_approver`); 409 `adjustment_not_pending` once booked (a repeat replays the first answer)."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: corrections.approve_adjustment(uow, ledger.clock, pid, adjustment_id, ctx),
                            with_balances(AdjustmentOut), 200, natural_key=("approval", adjustment_id))


@blp.route("/adjustments/<adjustment_id>", methods=["GET"])
@blp.arguments(AdjustmentPath, location="path", as_kwargs=True)
@blp.response(200, AdjustmentOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin", "finance")
def get_adjustment(adjustment_id: str) -> Response:
    """An adjustment, booked or pending approval."""
    row = read(lambda uow: corrections.get_adjustment(uow, program_id(), adjustment_id))
    return json_response(with_balances(AdjustmentOut).dump(row))


@blp.route("/reports/liability", methods=["GET"])
@blp.arguments(LiabilityArgs, location="query", unknown=ma.RAISE)
@blp.response(200, LiabilityOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin", "finance")
def liability(args: dict) -> Response:
    """What the program owes its members, per asset, as a roll-forward from `from` to `as_of`
    (recorded time): opening + issued (per source) - clawed back (the collected part) - redeemed
    (net of restores) - expired - forfeited + adjusted + reversed + debts written off at closure =
    closing, in units and in money (cashback in minor units; points at each lot's value when
    issued). Closing = held + receivable (negative balances); `ties` says the roll-forward equals
    the trial balance."""
    as_of = args.get("as_of") or books.just_after_now(current_app.extensions["ledger"].clock)
    report = read(lambda uow: reports.liability_report(uow, program_id(), as_of, args.get("from_")))
    return json_response(LiabilityOut().dump(jsonable(report)))


@blp.route("/reports/activity", methods=["GET"])
@blp.arguments(ActivityArgs, location="query", unknown=ma.RAISE)
@blp.response(200, ActivityOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin", "finance")
def activity(args: dict) -> Response:
    """Per local day or month in [`from`, `to`) (recorded time): issued, redeemed, expired, clawed
    back, adjusted, forfeited and reversed, per asset, in units and money; the breakage rate per
    issue month; and the transactions booked late into closed months."""
    to = args.get("to") or books.just_after_now(current_app.extensions["ledger"].clock)
    report = read(lambda uow: reports.activity_report(uow, program_id(), args.get("from_"), to,
                                                      args["granularity"]))
    return json_response(ActivityOut().dump(jsonable(report)))
