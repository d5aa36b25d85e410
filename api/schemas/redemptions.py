from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from .common import Balances, StrictInt, identifier, instant, minor_amount
from .purchases import PurchaseLine

ASSETS = ("points", "cashback")


class HoldCreate(ma.Schema):
    redemption_id = identifier(required=True)
    customer_id = identifier(required=True)
    asset = fields.String(required=True, validate=validate.OneOf(ASSETS))
    amount = minor_amount(required=True, metadata={"description": "Points, or cashback in minor units"})
    order_id = identifier()
    order_amount = minor_amount(metadata={"description": "The order's gross total: bounds the share redeemed"})
    ttl_seconds = StrictInt(validate=validate.Range(min=1, max=86_400),
                            metadata={"description": "Default: the program's hold_ttl_seconds"})


class CaptureBody(ma.Schema):
    amount = minor_amount(minimum=0, metadata={"description": "Default: everything held"})


class ExtendBody(ma.Schema):
    ttl_seconds = StrictInt(required=True, validate=validate.Range(min=1, max=86_400))


class EmptyBody(ma.Schema):
    pass


class RedemptionPath(ma.Schema):
    redemption_id = identifier(required=True)


class RedemptionEvent(ma.Schema):
    event = fields.String(required=True, metadata={"enum": ["held", "extended", "captured", "voided", "expired"]})
    at = instant(required=True)
    amount = fields.Integer(allow_none=True)
    expires_at = instant(allow_none=True)
    transaction_id = fields.String(allow_none=True)


class RedemptionOut(ma.Schema):
    redemption_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["held", "captured", "voided", "expired"]})
    asset = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Held"})
    captured_amount = fields.Integer(allow_none=True)
    value = fields.Integer(required=True, metadata={"description": "Money value in minor units"})
    order_id = fields.String(allow_none=True)
    order_amount = fields.Integer(allow_none=True)
    expires_at = instant(required=True)
    created_at = instant(required=True)
    balances = fields.Nested(Balances, allow_none=True)
    history = fields.List(fields.Nested(RedemptionEvent), allow_none=True)


class QuoteRequest(ma.Schema):
    customer_id = identifier(required=True)
    amount = minor_amount(required=True)
    tax = minor_amount(minimum=0, load_default=0)
    shipping = minor_amount(minimum=0, load_default=0)
    lines = fields.List(fields.Nested(PurchaseLine), validate=validate.Length(max=1000))


class QuotePoints(ma.Schema):
    max = fields.Integer(required=True)
    min = fields.Integer(required=True)
    step = fields.Integer(required=True)
    value = fields.Integer(required=True, metadata={"description": "Money value of `max`, minor units"})


class QuoteCashback(ma.Schema):
    max = fields.Integer(required=True)


class PendingUntil(ma.Schema):
    points = instant(allow_none=True, required=True)
    cashback = instant(allow_none=True, required=True)


class EarnPreview(ma.Schema):
    points = fields.Integer(required=True)
    cashback = fields.Integer(required=True)
    pending_until = fields.Nested(PendingUntil, required=True)


class QuoteOut(ma.Schema):
    points = fields.Nested(QuotePoints, required=True)
    cashback = fields.Nested(QuoteCashback, required=True)
    earn_preview = fields.Nested(EarnPreview, required=True)


class RefundLine(ma.Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=128))
    quantity = StrictInt(required=True, validate=validate.Range(min=1, max=10**6))


class RefundCreate(ma.Schema):
    refund_id = identifier(required=True)
    amount = minor_amount(metadata={"description": "Gross value returned; default the rest of the order"})
    lines = fields.List(fields.Nested(RefundLine), validate=validate.Length(min=1, max=1000))
    occurred_at = instant()


class RefundOut(ma.Schema):
    refund_id = fields.String(required=True)
    order_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    transaction_id = fields.String(required=True, allow_none=True)
    amount = fields.Integer(required=True)
    points_reversed = fields.Integer(required=True)
    cashback_reversed = fields.Integer(required=True)
    points_restored = fields.Integer(required=True)
    cashback_restored = fields.Integer(required=True)
    points_uncollected = fields.Integer(required=True)
    cashback_uncollected = fields.Integer(required=True)
    recorded_at = instant(required=True)
    balances = fields.Nested(Balances, required=True)
