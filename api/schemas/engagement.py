"""Events, event rules, achievements, referrals and the leaderboard."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ledger.domain.calendar import PERIODS
from ledger.domain.engagement import ACHIEVEMENT_KINDS, ACHIEVEMENT_SOURCES, BUILT_IN_EVENT_TYPES, STREAK_PERIODS

from .common import Balances, StrictBool, StrictInt, identifier, instant

EVENT_TYPE_TEXT = ("One of " + ", ".join(BUILT_IN_EVENT_TYPES) + ", or custom.<name> (a-z, 0-9, _); "
                   "nps_response needs properties.score, an integer 0 to 10")


class BadgeUnlocked(ma.Schema):
    achievement_id = fields.String(required=True)
    name = fields.String(required=True)
    occasion = fields.String(required=True, metadata={"description": "once, or the window it was earned for"})
    points = fields.Integer(required=True)


class ReferralRewardOut(ma.Schema):
    role = fields.String(required=True, metadata={"enum": ["referrer", "referee"]})
    customer_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["pending", "available", "capped", "reversed"]})
    points = fields.Integer(required=True)
    cashback = fields.Integer(required=True)
    available_at = instant(allow_none=True, required=True)


class EventCreate(ma.Schema):
    event_id = identifier(required=True)
    customer_id = identifier(required=True)
    type = fields.String(required=True, validate=validate.Length(min=1, max=60),
                         metadata={"description": EVENT_TYPE_TEXT})
    occurred_at = instant(metadata={"description": "When it happened; default now"})
    properties = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), validate=validate.Length(max=50))


class EventRewardOut(ma.Schema):
    rule_id = fields.String(required=True)
    name = fields.String(required=True)
    points = fields.Integer(required=True)
    capped = fields.Boolean(required=True)


class EventOut(ma.Schema):
    event_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    type = fields.String(required=True)
    properties = fields.Dict(allow_none=True)
    points_awarded = fields.Integer(required=True)
    rewards = fields.List(fields.Nested(EventRewardOut), required=True)
    transaction_id = fields.String(allow_none=True, required=True)
    occurred_at = instant(required=True)
    recorded_at = instant(required=True)
    balances = fields.Nested(Balances, required=True)
    badges_unlocked = fields.List(fields.Nested(BadgeUnlocked), required=True)


class EventRulePut(ma.Schema):
    event_type = fields.String(required=True, validate=validate.Length(min=1, max=60),
                               metadata={"description": EVENT_TYPE_TEXT})
    points = StrictInt(required=True, validate=validate.Range(1, 10**9))
    name = fields.String(validate=validate.Length(max=200), load_default="")
    cap_points = StrictInt(validate=validate.Range(1, 10**12), allow_none=True, load_default=None)
    cap_period = fields.String(validate=validate.OneOf(PERIODS), allow_none=True, load_default=None)


class EventRuleOut(EventRulePut):
    id = fields.String(required=True)
    config_version = fields.Integer(required=True)


class EventRuleList(ma.Schema):
    config_version = fields.Integer(required=True)
    items = fields.List(fields.Nested(EventRuleOut), required=True)


class AchievementPut(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"description": "The badge"})
    kind = fields.String(required=True, validate=validate.OneOf(ACHIEVEMENT_KINDS),
                         metadata={"description": "count: threshold purchases (or events) in the window; sum: spend "
                                   "of threshold minor units; streak: threshold consecutive weeks or months (period) "
                                   "with a purchase (or event); distinct: threshold distinct categories"})
    threshold = StrictInt(required=True, validate=validate.Range(1, 10**12))
    source = fields.String(validate=validate.OneOf(ACHIEVEMENT_SOURCES), load_default="purchases")
    event_type = fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=60))
    window = fields.String(validate=validate.OneOf(PERIODS), allow_none=True, load_default=None,
                           metadata={"description": "Local calendar window; null: all time"})
    period = fields.String(validate=validate.OneOf(STREAK_PERIODS), allow_none=True, load_default=None)
    reward_points = StrictInt(validate=validate.Range(0, 10**9), load_default=0)
    repeatable = StrictBool(load_default=False, metadata={"description": "Earned once per window, else once ever"})


class AchievementOut(AchievementPut):
    id = fields.String(required=True)
    config_version = fields.Integer(required=True)


class AchievementList(ma.Schema):
    config_version = fields.Integer(required=True)
    items = fields.List(fields.Nested(AchievementOut), required=True)


class BadgeOut(ma.Schema):
    achievement_id = fields.String(required=True)
    name = fields.String(required=True)
    occasion = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["earned", "revoked"]})
    points = fields.Integer(required=True)
    earned_at = instant(required=True)
    revoked_at = instant(allow_none=True, required=True)


class ProgressOut(ma.Schema):
    achievement_id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    value = fields.Integer(required=True)
    target = fields.Integer(required=True)
    occasion = fields.String(required=True)
    earned = fields.Boolean(required=True)
    text = fields.String(required=True, metadata={"example": "2 of 5 purchases this month"})
    reward_points = fields.Integer(required=True)


class CustomerAchievementsOut(ma.Schema):
    customer_id = fields.String(required=True)
    badges = fields.List(fields.Nested(BadgeOut), required=True)
    progress = fields.List(fields.Nested(ProgressOut), required=True)


class RewardAmount(ma.Schema):
    points = fields.Integer(required=True)
    cashback = fields.Integer(required=True)


class ReferralCardOut(ma.Schema):
    customer_id = fields.String(required=True)
    code = fields.String(required=True)
    share_text = fields.String(required=True)
    referred_by = fields.String(allow_none=True, required=True)
    referrer_reward = fields.Nested(RewardAmount, required=True)
    referee_reward = fields.Nested(RewardAmount, required=True)


class ReferralOut(ma.Schema):
    referee_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["registered", "purchased", "rewarded", "reversed",
                                                             "capped"]})
    reason = fields.String(allow_none=True, required=True)
    registered_at = instant(required=True)
    qualified_at = instant(allow_none=True, required=True)
    rewarded_at = instant(allow_none=True, required=True,
                          metadata={"description": "When the rewards become (or became) final and spendable"})
    referrer_reward = fields.Nested(RewardAmount, required=True)
    referee_reward = fields.Nested(RewardAmount, required=True)


class ReferralList(ma.Schema):
    items = fields.List(fields.Nested(ReferralOut), required=True)


class LeaderboardArgs(ma.Schema):
    period = fields.String(validate=validate.OneOf(("week", "month", "year")), load_default="month")
    limit = fields.Integer(validate=validate.Range(1, 100), load_default=10)


class LeaderboardEntry(ma.Schema):
    rank = fields.Integer(required=True)
    display_name = fields.String(required=True)
    points = fields.Integer(required=True)


class LeaderboardOut(ma.Schema):
    period = fields.String(required=True)
    from_ = instant(required=True, data_key="from", attribute="from")
    to = instant(required=True)
    items = fields.List(fields.Nested(LeaderboardEntry), required=True)
