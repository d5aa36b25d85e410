"""Finance: reading the ledger, as-of balances, trial balance, verification, periods, corrections,
reports."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate, validates_schema

from .common import Balances, PageArgs, StrictInt, identifier, instant

def asset(**kwargs) -> fields.String:  # noqa: ANN003
    return fields.String(validate=validate.OneOf(("points", "cashback")), metadata={"enum": ["points", "cashback"]},
                         **kwargs)
MAX_ADJUSTMENT = 10**14


class _Window(ma.Schema):
    @validates_schema
    def _ordered(self, data: dict, **_kw) -> None:  # noqa: ANN003
        if data.get("from") is not None and data.get("to") is not None and data["from"] >= data["to"]:
            raise ma.ValidationError("must be after from", field_name="to")


def _window_fields() -> dict:
    return {"from": instant(metadata={"description": "Recorded at or after this instant"}),
            "to": instant(metadata={"description": "Recorded before this instant"})}


class EntryFilters(ma.Schema.from_dict({
    "account": fields.String(validate=validate.Length(min=1, max=300),
                             metadata={"description": "An account path; a trailing * matches a prefix",
                                       "example": "house/points/*"}),
    "customer_id": identifier(metadata={"description": "Entries of this customer's transactions (house legs too)"}),
    "asset": asset(),
    "type": fields.String(validate=validate.Length(min=1, max=40), metadata={"example": "purchase_accrual"}),
    "reference_kind": fields.String(validate=validate.Length(min=1, max=20), metadata={"example": "order"}),
    "reference_id": fields.String(validate=validate.Length(min=1, max=128)),
    **_window_fields(),
}, name="EntryFilterFields"), _Window):
    pass


class EntryListArgs(EntryFilters, PageArgs):
    pass


class ExportArgs(EntryFilters):
    format = fields.String(load_default="ndjson", validate=validate.OneOf(("ndjson", "csv")))


class Entry(ma.Schema):
    seq = fields.Integer(required=True)
    transaction_id = fields.String(required=True)
    transaction_type = fields.String()
    customer_id = fields.String(allow_none=True)
    reference_kind = fields.String()
    reference_id = fields.String()
    account = fields.String(required=True, metadata={"example": "customer/c-1/points/pending"})
    asset = fields.String(required=True, metadata={"enum": ["points", "cashback"]})
    amount = fields.Integer(required=True, metadata={"description": "Signed: > 0 arrives in the account (Cr)"})
    balance_after = fields.Integer(allow_none=True, metadata={"description": "Customer accounts only"})
    recorded_at = instant(required=True)
    chain_hash = fields.String(allow_none=True, metadata={"description": "This entry's link in its customer's hash chain"})


class EntriesPage(ma.Schema):
    items = fields.List(fields.Nested(Entry), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "null on the last page"})
    resume_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "The position after this page, also on the last one: pass it as `cursor` later to read "
                       "what was committed since, without missing any entry"})


class TransactionPath(ma.Schema):
    transaction_id = fields.String(required=True, validate=validate.Length(min=1, max=40))


class TransactionEntry(ma.Schema):
    seq = fields.Integer(required=True)
    account = fields.String(required=True)
    asset = fields.String(required=True)
    amount = fields.Integer(required=True)
    balance_after = fields.Integer(allow_none=True)
    chain_hash = fields.String(allow_none=True)


class TransactionOut(ma.Schema):
    transaction_id = fields.String(required=True, attribute="id")
    type = fields.String(required=True)
    customer_id = fields.String(allow_none=True)
    reference = fields.Function(lambda tx: {"kind": tx["reference_kind"], "id": tx["reference_id"]},
                                metadata={"description": "{kind, id}"})
    description = fields.String(required=True)
    reason = fields.String(allow_none=True, metadata={"description": "Why: adjustments and reversals"})
    actor = fields.String(required=True, metadata={"description": "API key id or job name"})
    request_id = fields.String(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    occurred_at = instant(required=True)
    recorded_at = instant(required=True)
    late = fields.Boolean(metadata={"description": "Dated in a month that was closed when it was recorded"})
    details = fields.Dict()
    reversed_by = fields.String(allow_none=True)
    reverses = fields.String(allow_none=True)
    entries = fields.List(fields.Nested(TransactionEntry), required=True)


class ReverseIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ReversalOut(ma.Schema):
    transaction_id = fields.String(required=True)
    reverses = fields.String(required=True)
    reason = fields.String(required=True)
    actor = fields.String(required=True)
    customer_id = fields.String(required=True)
    recorded_at = instant(required=True)
    entries = fields.List(fields.Nested(TransactionEntry), required=True)
    balances = fields.Nested(Balances, required=True)


class AsOfArgs(ma.Schema):
    as_of = instant(metadata={"description": "Recorded time; default now"})


class TrialBalanceLine(ma.Schema):
    account = fields.String(required=True, metadata={"description": "A house account, or customer/*/{asset}/{bucket}"})
    asset = fields.String(required=True)
    balance = fields.Integer(required=True)
    accounts = fields.Integer(allow_none=True, metadata={"description": "Customer lines: how many accounts"})


class TrialBalanceOut(ma.Schema):
    as_of = instant(required=True)
    accounts = fields.List(fields.Nested(TrialBalanceLine), required=True)
    totals = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "Per asset: zero in a sound ledger"})
    rollup_as_of = instant(allow_none=True, metadata={"description": "The daily roll-up the answer starts from"})


class AsOfBalancesOut(Balances):
    as_of = instant()


class VerifyOut(ma.Schema):
    ok = fields.Boolean(required=True)
    first_broken_seq = fields.Integer(required=True, allow_none=True)
    entries = fields.Integer(required=True)
    chained_entries = fields.Integer(required=True)
    seals = fields.Integer(required=True)
    chain_breaks = fields.List(fields.Dict(), required=True)
    head_mismatches = fields.List(fields.Dict(), required=True)
    seal_mismatches = fields.List(fields.Dict(), required=True)
    unbalanced_transactions = fields.List(fields.Dict(), required=True)
    nonzero_totals = fields.List(fields.Dict(), required=True)
    balance_mismatches = fields.List(fields.Dict(), required=True)
    balance_after_breaks = fields.List(fields.Dict(), required=True)
    transactions_without_entries = fields.List(fields.String(), required=True)
    lot_mismatches = fields.List(fields.Dict(), required=True)


class PeriodPath(ma.Schema):
    period = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="YYYY-MM"),
                           metadata={"example": "2026-10"})


class PeriodOut(ma.Schema):
    period = fields.String(required=True)
    starts_at = instant(required=True)
    ends_at = instant(required=True)
    closed_at = instant(required=True)
    actor = fields.String(required=True)
    trial_balance = fields.Dict(required=True)
    liability = fields.Dict(required=True)


class PeriodList(ma.Schema):
    items = fields.List(fields.Nested(PeriodOut), required=True)


class AdjustmentIn(ma.Schema):
    adjustment_id = identifier(required=True)
    customer_id = identifier(required=True)
    asset = asset(required=True)
    amount = StrictInt(required=True, validate=[validate.Range(min=-MAX_ADJUSTMENT, max=MAX_ADJUSTMENT),
                                                validate.NoneOf((0,), error="must not be zero")],
                       metadata={"description": "Positive adds to the customer's available balance; negative removes"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    reason_code = fields.String(load_default="correction",
                                validate=validate.OneOf(("goodwill", "correction", "fraud_removal")))



class AdjustmentPath(ma.Schema):
    adjustment_id = identifier(required=True)


class AdjustmentOut(ma.Schema):
    adjustment_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    asset = fields.String(required=True)
    amount = fields.Integer(required=True)
    reason = fields.String(required=True)
    reason_code = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["booked", "pending_approval"]})
    requested_by = fields.String(required=True)
    approved_by = fields.String(allow_none=True)
    transaction_id = fields.String(allow_none=True)
    created_at = instant(required=True)
    booked_at = instant(allow_none=True)
    balances = fields.Nested(Balances, allow_none=True)


class LiabilityArgs(ma.Schema):
    as_of = instant(metadata={"description": "Closing instant (recorded time); default now"})
    from_ = instant(data_key="from", metadata={"description": "Opening instant; default the end of the last "
                                                              "closed period, else the start of as_of's month"})


class ActivityArgs(ma.Schema):
    from_ = instant(data_key="from", metadata={"description": "Default: the start of to's local month"})
    to = instant(metadata={"description": "Default: now"})
    granularity = fields.String(load_default="month", validate=validate.OneOf(("day", "month")))

    @validates_schema
    def _ordered(self, data: dict, **_kw) -> None:  # noqa: ANN003
        if data.get("from_") is not None and data.get("to") is not None and data["from_"] >= data["to"]:
            raise ma.ValidationError("must be after from", field_name="to")


class LiabilityOut(ma.Schema):
    """The roll-forward per asset (see docs/finance.md): opening + issued - clawed_back - redeemed -
    expired - forfeited + adjusted + reversed + debts_written_off = closing = held + receivable, in units
    and in money."""

    currency = fields.String(required=True)
    from_ = fields.String(data_key="from", attribute="from", required=True)
    as_of = fields.String(required=True)
    assets = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)
    trial_balance_totals = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class BreakageRow(ma.Schema):
    month = fields.String(required=True)
    issued = fields.Integer(required=True)
    clawed_back = fields.Integer(required=True)
    reversed = fields.Integer(required=True, metadata={
        "description": "Taken back by reversing the adjustment or accrual that issued them (booked in error)"})
    expired = fields.Integer(required=True, metadata={
        "description": "Expired from the month's lots; an expiry that finance reversed does not count"})
    breakage_bps = fields.Integer(required=True, allow_none=True, metadata={
        "description": "expired / (issued - clawed_back - reversed), basis points, floored"})


class ActivityOut(ma.Schema):
    currency = fields.String(required=True)
    from_ = fields.String(data_key="from", attribute="from", required=True)
    to = fields.String(required=True)
    granularity = fields.String(required=True)
    periods = fields.List(fields.Dict(), required=True)
    breakage = fields.List(fields.Nested(BreakageRow), required=True)
    late_transactions = fields.List(fields.Dict(), required=True)


class ClosureOut(ma.Schema):
    customer_id = fields.String(required=True)
    status = fields.String(required=True)
    closed_at = instant(required=True)
    transaction_id = fields.String(allow_none=True)
    points_forfeited = fields.Integer(required=True)
    cashback_forfeited = fields.Integer(required=True)
    cashback_owed = fields.Integer(required=True, metadata={"description": "Minor units still owed to the member"})
    written_off = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class ErasureOut(ma.Schema):
    customer_id = fields.String(required=True)
    status = fields.String(required=True)
    erased_at = instant(required=True)
