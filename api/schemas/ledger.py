from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from .common import instant


class Entry(ma.Schema):
    seq = fields.Integer(required=True)
    transaction_id = fields.String(required=True)
    account = fields.String(required=True, metadata={"example": "customer/c-1/points/pending"})
    asset = fields.String(required=True, metadata={"enum": ["points", "cashback"]})
    amount = fields.Integer(required=True, metadata={"description": "Signed: > 0 arrives in the account"})
    balance_after = fields.Integer(allow_none=True, metadata={"description": "Customer accounts only"})
    recorded_at = instant(required=True)


class EntriesPage(ma.Schema):
    items = fields.List(fields.Nested(Entry), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class Health(ma.Schema):
    status = fields.String(required=True)
