from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from .common import Balances, BucketBalances, Reference, StrictBool, identifier, instant


class CustomerPut(ma.Schema):
    """Omitted fields stay as they were; null clears a field."""

    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    phone = fields.String(allow_none=True, validate=validate.Regexp(r"^\+?[0-9 ().-]{3,40}$"))
    name = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    display_name = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    birthday = fields.Date(allow_none=True, metadata={"example": "1990-04-30"})
    leaderboard_opt_in = StrictBool(allow_none=True)
    status = fields.String(validate=validate.OneOf(("active", "blocked")),
                           metadata={"description": "Admin only: a blocked customer can neither earn nor redeem"})
    referred_by = fields.String(validate=validate.Regexp(r"^ *[A-Za-z0-9]{1,16} *$", error="a referral code: 1 to 16 "
                                                                                          "letters and digits"),
                                metadata={"description": "A referral code, before the customer's first purchase"})


class CustomerOut(ma.Schema):
    customer_id = fields.String(required=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    display_name = fields.String(allow_none=True)
    birthday = fields.String(allow_none=True)
    leaderboard_opt_in = fields.Boolean(required=True)
    status = fields.String(required=True)
    referral_code = fields.String(allow_none=True, required=True)
    created_at = instant(required=True)
    updated_at = instant(required=True)
    balances = fields.Nested(Balances, required=True)


class CustomerPath(ma.Schema):
    customer_id = identifier(required=True)


class ActivityItem(ma.Schema):
    transaction_id = fields.String(required=True)
    type = fields.String(required=True)
    description = fields.String(required=True)
    points = fields.Nested(BucketBalances, required=True, metadata={"description": "Signed change per bucket"})
    cashback = fields.Nested(BucketBalances, required=True, metadata={"description": "Signed change per bucket"})
    occurred_at = instant(required=True)
    recorded_at = instant(required=True)
    reference = fields.Nested(Reference, required=True)


class ActivityPage(ma.Schema):
    items = fields.List(fields.Nested(ActivityItem), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
