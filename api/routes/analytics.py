"""Retention analytics for finance and management."""
from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app

from ledger.services import analytics

from ..http import Blueprint, json_response, program_id, read, requires
from ..schemas.analytics import RetentionArgs, RetentionOut

blp = Blueprint("analytics", __name__, url_prefix="/v1/analytics", description="Retention analytics (finance, admin)")


@blp.route("/retention", methods=["GET"])
@blp.arguments(RetentionArgs, location="query", unknown=ma.RAISE)
@blp.response(200, RetentionOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin", "finance")
def retention(args: dict) -> Response:
    """Retention, churn, order value, lifetime value and NPS for a period.

    Figures for the period [`from`, `to`) (default: the 30 days before now), purchases dated by
    when they occurred: repurchase rate, customer retention rate, retained share and churn of the
    members active at `from` (a purchase in the program's `activity_window_days`), average order
    value, purchase frequency, net revenue retention against the preceding period of equal length,
    lifetime value per first-purchase month, NPS from each member's latest `nps_response` in the
    period, active members at `to`, and members with points expiring in the 30 days from `to`.
    Fully refunded orders count nowhere; refunds count as they stand now. Integers only: rates as
    `{numerator, denominator, bps}`, money in minor units (see docs/retention.md)."""
    now = current_app.extensions["ledger"].clock.now()
    pid = program_id()
    report = read(lambda uow: analytics.retention(uow, pid, args.get("from_"), args.get("to"), now))
    return json_response(RetentionOut().dump(report))
