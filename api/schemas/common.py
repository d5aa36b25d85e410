"""Fields and schemas shared by every resource."""
from __future__ import annotations

from datetime import timezone
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
MAX_AMOUNT = 10**14


class StrictInt(fields.Integer):
    """An integer and nothing else: not "7", not 7.0, not true."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def minor_amount(minimum: int = 1, maximum: int = MAX_AMOUNT, **kwargs: Any) -> StrictInt:
    """A non-negative integer amount in minor units (or points)."""
    return StrictInt(validate=validate.Range(min=minimum, max=maximum), **kwargs)


def identifier(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(ID_PATTERN, error="must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -"),
        metadata={"pattern": ID_PATTERN, "maxLength": 128, **kwargs.pop("metadata", {})},
        **kwargs,
    )


class Instant(fields.AwareDateTime):
    """An aware datetime that also exists in UTC (year 1 at +01:00 does not: refused, not a 500 later)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            result.astimezone(timezone.utc)
        except OverflowError:
            raise ma.ValidationError("out of range once converted to UTC") from None
        return result


def instant(**kwargs: Any) -> fields.AwareDateTime:
    """An ISO 8601 instant that carries an offset; a naive timestamp is refused."""
    return Instant(format="iso", **kwargs)


class FieldError(ma.Schema):
    field = fields.String(required=True, metadata={"example": "lines.0.quantity"})
    message = fields.String(required=True)


class Problem(ma.Schema):
    """RFC 9457 problem details, with our stable `code`."""

    type = fields.String(required=True, metadata={"example": "urn:loyalty-ledger:problem:validation_error"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True, metadata={"description": "Stable snake_case error code", "example": "validation_error"})
    errors = fields.List(fields.Nested(FieldError), metadata={"description": "Present on validation_error"})
    request_id = fields.String()
    program_id = fields.String(metadata={"description": "On program_already_created"})
    key_id = fields.String(metadata={"description": "On api_key_already_created"})
    # Extension members of the business-rule problems (LedgerError.extra in ledger/).
    key = fields.String(metadata={"description": "On duplicate_*: the natural key already used"})
    expected = fields.Integer(metadata={"description": "On lines_mismatch: the amount sent"})
    actual = fields.Integer(metadata={"description": "On lines_mismatch: what the lines come to"})
    sku = fields.String(metadata={"description": "On refund_exceeds_purchase, for a line"})
    refundable = fields.Integer(metadata={"description": "On refund_exceeds_purchase: what is left to refund"})
    available = fields.Integer(metadata={"description": "On insufficient_balance"})
    min = fields.Integer(metadata={"description": "On below_min_redeem: the smallest points redemption"})
    step = fields.Integer(metadata={"description": "On below_min_redeem: points redemptions are multiples of this"})
    max_value = fields.Integer(metadata={"description": "On exceeds_max_redeem_share: minor units"})
    held = fields.Integer(metadata={"description": "On capture_exceeds_hold"})
    redemption_status = fields.String(metadata={"description": "On redemption_not_held"})
    dependents = fields.List(fields.String(), metadata={"description": "On has_dependents: the transactions that "
                                                                       "depend on this one"})
    reversal_transaction_id = fields.String(metadata={"description": "On already_reversed: the reversal"})


class BucketBalances(ma.Schema):
    available = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    reserved = fields.Integer(required=True)


class Balances(ma.Schema):
    currency = fields.String(required=True)
    points = fields.Nested(BucketBalances, required=True)
    cashback = fields.Nested(BucketBalances, required=True, metadata={"description": "Minor units of the currency"})


class PageArgs(ma.Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Length(max=500))


class Reference(ma.Schema):
    kind = fields.String(required=True)
    id = fields.String(required=True)


class StrictBool(fields.Boolean):
    """true or false, not "yes" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value
