"""Retention analytics (docs/retention.md). Integers only: rates as numerator, denominator and
basis points; money in minor units of the program's currency."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validates_schema

from .common import instant


class RetentionArgs(ma.Schema):
    from_ = instant(data_key="from", metadata={"description": "Start of the period, inclusive (occurred time); "
                                                              "default: `to` minus 30 days"})
    to = instant(metadata={"description": "End of the period, exclusive (occurred time); default: now"})

    @validates_schema
    def _ordered(self, data: dict, **_kw) -> None:  # noqa: ANN003
        if data.get("from_") is not None and data.get("to") is not None and data["from_"] >= data["to"]:
            raise ma.ValidationError("must be after from", field_name="to")


class Rate(ma.Schema):
    """An exact ratio: `bps` = floor(numerator * 10000 / denominator), null when the denominator is 0."""

    numerator = fields.Integer(required=True)
    denominator = fields.Integer(required=True)
    bps = fields.Integer(required=True, allow_none=True,
                         metadata={"description": "numerator / denominator in basis points (x 10 000), floored"})


class MoneyAverage(ma.Schema):
    """Money per unit: `amount` = floor(numerator / denominator) minor units, null when the denominator is 0."""

    numerator = fields.Integer(required=True, metadata={"description": "Net revenue, minor units"})
    denominator = fields.Integer(required=True)
    amount = fields.Integer(required=True, allow_none=True, metadata={"description": "Minor units, floored"})


class RetentionCustomers(ma.Schema):
    active_at_start = fields.Integer(required=True, metadata={"description": "S: active at `from`"})
    active_at_end = fields.Integer(required=True, metadata={"description": "E: active at `to`"})
    new = fields.Integer(required=True, metadata={"description": "N: in E, first purchase in [from, to)"})
    retained = fields.Integer(required=True, metadata={"description": "In S and in E"})
    churned = fields.Integer(required=True, metadata={"description": "In S, not in E"})


class CohortValue(ma.Schema):
    month = fields.String(required=True, metadata={"description": "Local month of the first purchase, YYYY-MM",
                                                   "example": "2026-10"})
    customers = fields.Integer(required=True)
    net_revenue = fields.Integer(required=True, metadata={"description": "Their net revenue before `to`, minor units"})
    clv = fields.Nested(MoneyAverage, required=True, metadata={"description": "Net revenue per customer"})


class NpsOut(ma.Schema):
    score = fields.Integer(required=True, allow_none=True,
                           metadata={"description": "floor(100 * (promoters - detractors) / responses); null "
                                                    "without responses"})
    promoters = fields.Integer(required=True, metadata={"description": "Latest score 9 or 10"})
    passives = fields.Integer(required=True, metadata={"description": "Latest score 7 or 8"})
    detractors = fields.Integer(required=True, metadata={"description": "Latest score 0 to 6"})
    responses = fields.Integer(required=True, metadata={"description": "Customers who responded in the period"})


class ExpiringPoints(ma.Schema):
    members = fields.Integer(required=True, metadata={"description": "Members with points expiring in [from, to)"})
    points = fields.Integer(required=True, metadata={"description": "The points those lots still hold"})
    from_ = instant(data_key="from", attribute="from", required=True)
    to = instant(required=True)


class RetentionOut(ma.Schema):
    from_ = instant(data_key="from", attribute="from", required=True)
    to = instant(required=True)
    previous_from = instant(required=True, metadata={"description": "Start of the preceding period of equal length "
                                                                    "[previous_from, from), for net revenue retention"})
    activity_window_days = fields.Integer(required=True)
    currency = fields.String(required=True)
    timezone = fields.String(required=True, metadata={"description": "Cohort months are local months"})
    computed_at = instant(required=True, metadata={"description": "Refunds count as they stood at this instant"})
    orders = fields.Integer(required=True, metadata={"description": "Orders in the period, fully refunded ones "
                                                                    "left out"})
    net_revenue = fields.Integer(required=True, metadata={"description": "Of those orders, minor units"})
    purchasing_customers = fields.Integer(required=True)
    customers = fields.Nested(RetentionCustomers, required=True)
    repurchase_rate = fields.Nested(Rate, required=True, metadata={"description": "Orders from returning customers / orders"})
    customer_retention_rate = fields.Nested(Rate, required=True, metadata={"description": "(E - N) / S"})
    retained_share = fields.Nested(Rate, required=True, metadata={"description": "|S and E| / |S|"})
    churn_rate = fields.Nested(Rate, required=True, metadata={"description": "|S not in E| / |S|"})
    average_order_value = fields.Nested(MoneyAverage, required=True, metadata={"description": "Net revenue / orders"})
    purchase_frequency = fields.Nested(Rate, required=True, metadata={"description": "Orders / purchasing customers"})
    net_revenue_retention = fields.Nested(Rate, required=True, metadata={
        "description": "Net revenue of S in [from, to) / their net revenue in [previous_from, from)"})
    active_members = fields.Integer(required=True, metadata={"description": "|E|"})
    clv_cohorts = fields.List(fields.Nested(CohortValue), required=True)
    nps = fields.Nested(NpsOut, required=True)
    expiring_points = fields.Nested(ExpiringPoints, required=True)
