"""Earning rules, campaigns, tiers, the earning trace, tier status and coming expirations."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ledger.domain.calendar import PERIODS
from ledger.domain.earning_config import CAMPAIGN_KINDS, DOWNGRADES, RULE_KINDS, TIER_METRICS, TIER_WINDOWS

from .common import StrictInt, instant, minor_amount

CONFIG_ID_PATTERN = r"^[A-Za-z0-9._-]{1,40}$"
FRACTION = "An exact value written as a fraction n/d (or an integer): no rounding has happened yet"


def config_id(**kwargs) -> fields.String:  # noqa: ANN003
    return fields.String(validate=validate.Regexp(CONFIG_ID_PATTERN, error="must be 1 to 40 characters of A-Z a-z 0-9 . _ -"),
                         metadata={"pattern": CONFIG_ID_PATTERN, "maxLength": 40}, **kwargs)


def _strings(max_items: int, **kwargs) -> fields.List:  # noqa: ANN003
    return fields.List(fields.String(validate=validate.Length(min=1, max=128)), validate=validate.Length(max=max_items),
                       load_default=list, **kwargs)


def _multiplier(**kwargs) -> StrictInt:  # noqa: ANN003
    return StrictInt(validate=validate.Range(0, 1_000_000), load_default=10_000,
                     metadata={"description": "Basis points: 10000 = x1, 20000 = x2. Multipliers stack additively: "
                                              "each adds (multiplier_bps - 10000) / 10000 of the base points"}, **kwargs)


class ConditionsSchema(ma.Schema):
    categories = _strings(200, metadata={"description": "Lines in these categories match (with skus: either)"})
    skus = _strings(1000, metadata={"description": "Lines with these SKUs match; both lists empty: every counted line"})
    channels = fields.List(fields.String(validate=validate.Length(min=1, max=40)), validate=validate.Length(max=20),
                           load_default=list, metadata={"description": "Orders from these channels match (web, store, "
                                                        "app, ...); empty: every channel"})
    min_spend = minor_amount(minimum=0, load_default=0,
                             metadata={"description": "Earning base of the matching lines the order must reach"})


class RulePut(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(RULE_KINDS))
    multiplier_bps = _multiplier()
    bonus_points = StrictInt(validate=validate.Range(0, 10**9), load_default=0,
                             metadata={"description": "Whole points per matching order (kind bonus)"})
    conditions = fields.Nested(ConditionsSchema, load_default=dict)
    cap_points = StrictInt(validate=validate.Range(1, 10**12), allow_none=True, load_default=None,
                           metadata={"description": "Most points this rule adds per customer per cap_period"})
    cap_period = fields.String(validate=validate.OneOf(PERIODS), allow_none=True, load_default=None,
                               metadata={"description": "Local calendar day, ISO week, month or year"})
    priority = StrictInt(validate=validate.Range(-1000, 1000), load_default=0,
                         metadata={"description": "Order in the trace (then id); results do not depend on it"})


class RuleOut(RulePut):
    id = fields.String(required=True)
    config_version = fields.Integer(required=True, metadata={"description": "The configuration version in force"})


class RuleList(ma.Schema):
    config_version = fields.Integer(required=True)
    items = fields.List(fields.Nested(RuleOut), required=True)


class CampaignPut(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(CAMPAIGN_KINDS),
                         metadata={"description": "window: every purchase in [starts_on, ends_on]; birthday: first "
                                   "purchase in the customer's birthday month, once a year; anniversary: first purchase "
                                   "in the month of the first purchase's anniversary, once a year; winback: a purchase "
                                   "after inactive_days without one; frequency: the nth_purchase-th in the period"})
    multiplier_bps = _multiplier()
    bonus_points = StrictInt(validate=validate.Range(0, 10**9), load_default=0)
    conditions = fields.Nested(ConditionsSchema, load_default=dict)
    starts_on = fields.Date(allow_none=True, load_default=None,
                            metadata={"description": "First local day (program timezone), included"})
    ends_on = fields.Date(allow_none=True, load_default=None, metadata={"description": "Last local day, included"})
    budget_points = StrictInt(validate=validate.Range(1, 10**12), allow_none=True, load_default=None,
                              metadata={"description": "Points the campaign may give in all; it stops once spent"})
    budget_value = minor_amount(allow_none=True, load_default=None,
                                metadata={"description": "Budget in money: points valued at the redemption rate"})
    inactive_days = StrictInt(validate=validate.Range(1, 3650), allow_none=True, load_default=None)
    nth_purchase = StrictInt(validate=validate.Range(1, 1000), allow_none=True, load_default=None)
    period = fields.String(validate=validate.OneOf(PERIODS), allow_none=True, load_default=None)
    priority = StrictInt(validate=validate.Range(-1000, 1000), load_default=0)


class CampaignOut(CampaignPut):
    id = fields.String(required=True)
    config_version = fields.Integer(required=True)
    budget_used_points = fields.Integer(required=True, metadata={"description": "Points given so far (all customers)"})
    budget_left_points = fields.Integer(allow_none=True, required=True,
                                        metadata={"description": "null when the campaign has no budget"})


class CampaignList(ma.Schema):
    config_version = fields.Integer(required=True)
    items = fields.List(fields.Nested(CampaignOut), required=True)


class TierSchema(ma.Schema):
    id = config_id(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    threshold = StrictInt(required=True, validate=validate.Range(0, 10**15),
                          metadata={"description": "Metric needed: minor units of spend, or points"})
    earn_multiplier_bps = StrictInt(validate=validate.Range(0, 1_000_000), load_default=10_000)
    cashback_bonus_bps = StrictInt(validate=validate.Range(0, 10_000), load_default=0,
                                   metadata={"description": "Added to the program's cashback_rate_bps"})


class TiersPut(ma.Schema):
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(max=20),
                        metadata={"description": "By ascending threshold; the first has threshold 0. Empty: no tiers"})
    metric = fields.String(validate=validate.OneOf(TIER_METRICS), load_default="qualifying_spend",
                           metadata={"description": "qualifying_spend: purchase amounts net of refunds; "
                                     "purchase_points: points earned on purchases net of clawbacks"})
    window = fields.String(validate=validate.OneOf(TIER_WINDOWS), load_default="rolling")
    window_days = StrictInt(validate=validate.Range(1, 3660), load_default=365)
    grace_days = StrictInt(validate=validate.Range(0, 3660), load_default=0)
    downgrade = fields.String(validate=validate.OneOf(DOWNGRADES), load_default="one_tier")


class TiersOut(TiersPut):
    config_version = fields.Integer(required=True)


class TierOverride(ma.Schema):
    tier_id = config_id(required=True)
    until = instant(required=True, metadata={"description": "The tier holds until then; afterwards it is no floor"})


class TierBrief(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    threshold = fields.Integer(required=True)
    earn_multiplier_bps = fields.Integer(required=True)
    cashback_bonus_bps = fields.Integer(required=True)


class TierWindow(ma.Schema):
    kind = fields.String(required=True)
    from_ = instant(allow_none=True, data_key="from", attribute="from", required=True)
    to = instant(required=True)


class TierKeep(ma.Schema):
    threshold = fields.Integer(required=True)
    counted = fields.Integer(required=True, metadata={"description": "What already counts toward the decision"})
    needed = fields.Integer(required=True)
    by = instant(required=True, metadata={"description": "When the evaluation decides (evaluation date + grace)"})


class TierChangeOut(ma.Schema):
    from_tier = fields.String(allow_none=True, required=True)
    to_tier = fields.String(required=True)
    reason = fields.String(required=True, metadata={"enum": ["qualified", "upgrade_undone", "evaluation_kept",
                                                             "evaluation_downgrade", "manual", "manual_ended"]})
    metric = fields.Integer(allow_none=True, required=True)
    changed_at = instant(required=True)
    manual_until = instant(allow_none=True, required=True)


class TierStatusOut(ma.Schema):
    customer_id = fields.String(required=True)
    tier = fields.Nested(TierBrief, allow_none=True, required=True)
    metric = fields.String(required=True)
    window = fields.Nested(TierWindow, required=True)
    progress = fields.Integer(required=True, metadata={"description": "The metric over the window now"})
    next_tier = fields.Nested(TierBrief, allow_none=True, required=True)
    needed_for_next = fields.Integer(allow_none=True, required=True)
    keep = fields.Nested(TierKeep, allow_none=True, required=True,
                         metadata={"description": "What keeping the current tier needs and by when; null for the "
                                   "base tier and under a manual tier"})
    manual_until = instant(allow_none=True, required=True)
    history = fields.List(fields.Nested(TierChangeOut), required=True)


class Expiration(ma.Schema):
    points = fields.Integer(required=True)
    expires_at = instant(required=True, metadata={"description": "The local midnight at which they expire"})
    last_day = fields.Date(required=True, metadata={"description": "Last local day the points can be spent"})


class ExpiringOut(ma.Schema):
    customer_id = fields.String(required=True)
    policy = fields.String(required=True)
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(Expiration), required=True)
    last_activity_at = instant(allow_none=True, required=True)


class TraceMultiplier(ma.Schema):
    source = fields.String(required=True, metadata={"enum": ["rule", "campaign", "tier"]})
    id = fields.String(required=True)
    name = fields.String(required=True)
    multiplier_bps = fields.Integer(required=True)
    points = fields.String(required=True, metadata={"description": FRACTION})


class TraceLine(ma.Schema):
    line = fields.String(required=True, metadata={"description": "Line index, or order, tax, shipping"})
    sku = fields.String(allow_none=True, required=True)
    category = fields.String(allow_none=True, required=True)
    net = fields.Integer(required=True)
    counted = fields.Boolean(required=True)
    excluded_because = fields.String(allow_none=True, required=True)
    base = fields.String(required=True, metadata={"description": "Net times the earning share. " + FRACTION})
    base_points = fields.String(required=True, metadata={"description": FRACTION})
    multipliers = fields.List(fields.Nested(TraceMultiplier), required=True)
    exact_points = fields.String(required=True, metadata={"description": FRACTION})
    points = fields.Integer(required=True, metadata={"description": "After the order's rounding"})
    exact_cashback = fields.String(required=True, metadata={"description": FRACTION})
    cashback = fields.Integer(required=True)


class TraceBonus(ma.Schema):
    source = fields.String(required=True)
    id = fields.String(required=True)
    name = fields.String(required=True)
    points = fields.Integer(required=True)


class TraceCap(ma.Schema):
    source = fields.String(required=True)
    id = fields.String(required=True)
    limit_left = fields.Integer(required=True)
    wanted = fields.String(required=True)
    granted = fields.String(required=True)


class TraceBase(ma.Schema):
    amount = fields.Integer(required=True)
    paid_with_rewards = fields.Integer(required=True)
    earning_share = fields.String(required=True, metadata={"description": "(amount - paid_with_rewards) / amount"})
    tax_counted = fields.Boolean(required=True)
    shipping_counted = fields.Boolean(required=True)
    points_per_unit = fields.Integer(required=True)
    unit_amount = fields.Integer(required=True)
    cashback_rate_bps = fields.Integer(required=True)


class TraceRounding(ma.Schema):
    exact_points = fields.String(required=True)
    line_points = fields.Integer(required=True)
    remainders_allocated = fields.Integer(required=True)
    exact_cashback = fields.String(required=True)
    cashback = fields.Integer(required=True)


class TraceTier(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    earn_multiplier_bps = fields.Integer(required=True)
    cashback_bonus_bps = fields.Integer(required=True)


class EarningTrace(ma.Schema):
    config_version = fields.Integer(required=True)
    base = fields.Nested(TraceBase, required=True)
    tier = fields.Nested(TraceTier, allow_none=True, required=True)
    lines = fields.List(fields.Nested(TraceLine), required=True)
    bonuses = fields.List(fields.Nested(TraceBonus), required=True)
    caps = fields.List(fields.Nested(TraceCap), required=True)
    rounding = fields.Nested(TraceRounding, required=True)
    points = fields.Integer(required=True, metadata={"description": "Sum of the lines' points and the bonuses"})
    cashback = fields.Integer(required=True)
