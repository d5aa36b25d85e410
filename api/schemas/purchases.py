from __future__ import annotations

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates

from ledger.domain.money import is_valid_currency

from .common import Balances, StrictInt, minor_amount, identifier, instant
from .earning import EarningTrace
from .engagement import BadgeUnlocked, ReferralRewardOut


class PurchaseLine(ma.Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=128))
    category = fields.String(validate=validate.Length(min=1, max=128), allow_none=True)
    quantity = StrictInt(required=True, validate=validate.Range(min=1, max=10**6))
    unit_price = minor_amount(required=True)
    discount = minor_amount(minimum=0, load_default=0)


class PurchaseCreate(ma.Schema):
    order_id = identifier(required=True)
    customer_id = identifier(required=True)
    amount = minor_amount(required=True, metadata={"description": "Gross order total in minor units: every tender, "
                                                            "tax and shipping included"})
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"), metadata={"example": "EUR"})
    occurred_at = instant(metadata={"description": "When the purchase happened; default now"})
    channel = fields.String(validate=validate.Length(min=1, max=40))
    tax = minor_amount(minimum=0, load_default=0)
    shipping = minor_amount(minimum=0, load_default=0)
    lines = fields.List(fields.Nested(PurchaseLine), validate=validate.Length(max=1000))
    referred_by = fields.String(validate=validate.Regexp(r"^ *[A-Za-z0-9]{1,16} *$", error="a referral code: 1 to 16 "
                                                                                          "letters and digits"),
                                metadata={"description": "A referral code, on the customer's first purchase"})

    @validates("currency")
    def _currency(self, value: str, **_kw) -> None:  # noqa: ANN003
        if not is_valid_currency(value):
            raise ValidationError("not a current ISO 4217 currency code with minor units")


class PurchaseOut(ma.Schema):
    order_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    transaction_id = fields.String(required=True, allow_none=True,
                                   metadata={"description": "null when the purchase earned nothing"})
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    points_earned = fields.Integer(required=True)
    cashback_earned = fields.Integer(required=True)
    points_status = fields.String(allow_none=True, required=True, metadata={"enum": ["pending", "available", None]})
    cashback_status = fields.String(allow_none=True, required=True)
    points_available_at = instant(allow_none=True, required=True)
    cashback_available_at = instant(allow_none=True, required=True)
    occurred_at = instant(required=True)
    recorded_at = instant(required=True)
    balances = fields.Nested(Balances, required=True)
    config_version = fields.Integer(required=True, metadata={"description": "The earning configuration version used "
                                                             "(0: no rules, campaigns or tiers yet)"})
    badges_unlocked = fields.List(fields.Nested(BadgeUnlocked), required=True,
                                  metadata={"description": "Achievements this purchase completed"})
    referral_rewards = fields.List(fields.Nested(ReferralRewardOut), required=True,
                                   metadata={"description": "Referral rewards this purchase triggered"})


class PurchaseSimulation(PurchaseOut):
    trace = fields.Nested(EarningTrace, required=True)


class PurchaseDetail(ma.Schema):
    order_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    transaction_id = fields.String(required=True, allow_none=True)
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    tax = fields.Integer(required=True)
    shipping = fields.Integer(required=True)
    channel = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(PurchaseLine), allow_none=True)
    points_earned = fields.Integer(required=True)
    cashback_earned = fields.Integer(required=True)
    occurred_at = instant(required=True)
    recorded_at = instant(required=True)
    config_version = fields.Integer(required=True)
    trace = fields.Nested(EarningTrace, allow_none=True, required=True)


class OrderPath(ma.Schema):
    order_id = identifier(required=True)
