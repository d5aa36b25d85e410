from __future__ import annotations

import zoneinfo

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates

from ledger.domain.money import is_valid_currency
from ledger.domain.programs import ROLES

from .common import StrictBool, StrictInt, instant


def _check_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("unknown IANA time zone") from None


SETTINGS_RANGES = {
    "points_per_unit": (0, 10_000),
    "unit_amount": (1, 10**9),
    "cashback_rate_bps": (0, 10_000),
    "cashback_hold_days": (0, 365),
    "points_hold_days": (0, 365),
    "redeem_minor_units": (1, 10**6),
    "redeem_points": (1, 10**6),
    "min_redeem_points": (0, 10**9),
    "redeem_step_points": (1, 10**6),
    "max_redeem_share_bps": (0, 10_000),
    "hold_ttl_seconds": (1, 86_400),
    "points_life_days": (1, 36_500),
    "points_life_months": (1, 1_200),
    "inactivity_days": (1, 36_500),
    "reissue_days": (1, 36_500),
    "referrer_reward_points": (0, 10**9),
    "referrer_reward_cashback": (0, 10**9),
    "referee_reward_points": (0, 10**9),
    "referee_reward_cashback": (0, 10**9),
    "referral_min_purchase": (0, 10**12),
    "referral_cap": (1, 10**6),
    "adjustment_approval_threshold": (0, 10**14),
    "activity_window_days": (1, 3660),
}
CLAWBACK_POLICIES = ("allow_negative", "write_off")
EXPIRY_POLICIES = ("none", "fixed", "inactivity")
RESTORED_AFTER_EXPIRY = ("reissue", "expire")


def _settings_fields(allow_none: bool) -> dict:
    def bounded(name: str, description: str | None = None) -> StrictInt:
        meta = {"description": description} if description else {}
        return StrictInt(validate=validate.Range(*SETTINGS_RANGES[name]), allow_none=allow_none, metadata=meta)

    return {
        "name": fields.String(validate=validate.Length(min=1, max=200), allow_none=allow_none),
        "timezone": fields.String(validate=_check_timezone, allow_none=allow_none,
                                  metadata={"example": "Europe/Paris", "description": "IANA name; default UTC"}),
        "points_per_unit": bounded("points_per_unit", "Points earned per unit_amount spent (default 1)"),
        "unit_amount": bounded("unit_amount", "Minor units per earning unit (default one major unit)"),
        "cashback_rate_bps": bounded("cashback_rate_bps", "Cashback in basis points of the amount (default 0)"),
        "cashback_hold_days": bounded("cashback_hold_days", "Days cashback stays pending (default 30)"),
        "points_hold_days": bounded("points_hold_days", "Days points stay pending (default 0)"),
        "redeem_minor_units": bounded("redeem_minor_units", "Minor units that redeem_points are worth (default 1)"),
        "redeem_points": bounded("redeem_points", "Points worth redeem_minor_units (default 1)"),
        "min_redeem_points": bounded("min_redeem_points", "Smallest points redemption (default 0)"),
        "redeem_step_points": bounded("redeem_step_points", "Points redemptions are multiples of this (default 1)"),
        "max_redeem_share_bps": bounded("max_redeem_share_bps",
                                        "Largest share of an order payable with points or cashback (default 10000)"),
        "hold_ttl_seconds": bounded("hold_ttl_seconds", "How long a redemption hold lasts (default 900)"),
        "clawback_policy": fields.String(validate=validate.OneOf(CLAWBACK_POLICIES), allow_none=allow_none,
                                         metadata={"description": "When a refund claws back more than the customer "
                                                   "has: allow_negative (default) or write_off"}),
        "earn_on_tax": StrictBool(allow_none=allow_none, metadata={"description": "Whether tax earns (default true)"}),
        "earn_on_shipping": StrictBool(allow_none=allow_none,
                                       metadata={"description": "Whether shipping earns (default true)"}),
        "excluded_categories": fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                                           validate=validate.Length(max=200), allow_none=allow_none,
                                           metadata={"description": "Line categories that earn nothing (gift cards)"}),
        "excluded_skus": fields.List(fields.String(validate=validate.Length(min=1, max=128)),
                                     validate=validate.Length(max=1000), allow_none=allow_none,
                                     metadata={"description": "SKUs that earn nothing"}),
        "points_expiry": fields.String(validate=validate.OneOf(EXPIRY_POLICIES), allow_none=allow_none,
                                       metadata={"description": "none (default); fixed: each lot lives "
                                                 "points_life_days or points_life_months from when it becomes "
                                                 "available, to the end of that local day (or month); inactivity: "
                                                 "all available points expire after inactivity_days without a "
                                                 "purchase or redemption"}),
        "points_life_days": bounded("points_life_days", "Life of a points lot in days (fixed expiry)"),
        "points_life_months": bounded("points_life_months", "Life of a points lot in months (fixed expiry)"),
        "points_life_end_of_month": StrictBool(allow_none=allow_none,
                                               metadata={"description": "Extend each lot's life to the end of "
                                                         "its local month (default false)"}),
        "inactivity_days": bounded("inactivity_days", "Days without a purchase or redemption before points expire"),
        "restored_after_expiry": fields.String(validate=validate.OneOf(RESTORED_AFTER_EXPIRY), allow_none=allow_none,
                                               metadata={"description": "Points a refund restores whose lot has "
                                                         "already expired: reissue (default) or expire"}),
        "reissue_days": bounded("reissue_days", "Life of reissued restored points (default 30)"),
        "referrer_reward_points": bounded("referrer_reward_points", "Points for the referrer (default 0)"),
        "referrer_reward_cashback": bounded("referrer_reward_cashback", "Cashback (minor units) for the referrer"),
        "referee_reward_points": bounded("referee_reward_points", "Welcome points for the referee (default 0)"),
        "referee_reward_cashback": bounded("referee_reward_cashback", "Welcome cashback (minor units) for the referee"),
        "referral_min_purchase": bounded("referral_min_purchase",
                                         "Smallest first purchase (net of refunds) that qualifies a referral"),
        "referral_cap": bounded("referral_cap", "Rewarded referrals per referrer per referral_cap_period (default none)"),
        "referral_cap_period": fields.String(validate=validate.OneOf(("day", "week", "month", "year")),
                                             allow_none=allow_none, metadata={"description": "default month"}),
        "referee_reward_timing": fields.String(validate=validate.OneOf(("on_first_order", "after_window")),
                                               allow_none=allow_none,
                                               metadata={"description": "When the referee's welcome reward is "
                                                         "usable: on_first_order (reversed if that order is refunded) "
                                                         "or after_window (default)"}),
        "adjustment_approval_threshold": bounded(
            "adjustment_approval_threshold",
            "Adjustments worth more than this (minor units; points at the redemption rate) wait for a second "
            "finance key's approval (default none)"),
        "activity_window_days": bounded("activity_window_days",
                                        "Retention analytics: a member is active with a purchase in the last "
                                        "this many days (default 365)"),
        "forfeit_cashback_on_close": StrictBool(allow_none=allow_none,
                                                metadata={"description": "Whether closing a member forfeits the "
                                                          "cashback owed to them (default false: reported as owed)"}),
    }


_SettingsFields = ma.Schema.from_dict(_settings_fields(False), name="_SettingsFields")


class ProgramCreate(_SettingsFields):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"),
                             metadata={"description": "ISO 4217 code; cannot change later", "example": "EUR"})

    @validates("currency")
    def _currency(self, value: str, **_kw) -> None:  # noqa: ANN003
        if not is_valid_currency(value):
            raise ValidationError("not a current ISO 4217 currency code with minor units")


class ProgramPatch(ma.Schema.from_dict(_settings_fields(True), name="_PatchFields")):
    """A JSON merge patch of the settings: null restores a default; `currency` may be repeated, not changed."""

    currency = fields.String()


class ProgramOut(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    currency = fields.String(required=True)
    timezone = fields.String(required=True)
    points_per_unit = fields.Integer(required=True)
    unit_amount = fields.Integer(required=True)
    cashback_rate_bps = fields.Integer(required=True)
    cashback_hold_days = fields.Integer(required=True)
    points_hold_days = fields.Integer(required=True)
    redeem_minor_units = fields.Integer(required=True)
    redeem_points = fields.Integer(required=True)
    min_redeem_points = fields.Integer(required=True)
    redeem_step_points = fields.Integer(required=True)
    max_redeem_share_bps = fields.Integer(required=True)
    hold_ttl_seconds = fields.Integer(required=True)
    clawback_policy = fields.String(required=True)
    earn_on_tax = fields.Boolean(required=True)
    earn_on_shipping = fields.Boolean(required=True)
    excluded_categories = fields.List(fields.String(), required=True)
    excluded_skus = fields.List(fields.String(), required=True)
    points_expiry = fields.String(required=True)
    points_life_days = fields.Integer(allow_none=True)
    points_life_months = fields.Integer(allow_none=True)
    points_life_end_of_month = fields.Boolean(required=True)
    inactivity_days = fields.Integer(allow_none=True)
    restored_after_expiry = fields.String(required=True)
    reissue_days = fields.Integer(required=True)
    referrer_reward_points = fields.Integer(required=True)
    referrer_reward_cashback = fields.Integer(required=True)
    referee_reward_points = fields.Integer(required=True)
    referee_reward_cashback = fields.Integer(required=True)
    referral_min_purchase = fields.Integer(required=True)
    referral_cap = fields.Integer(allow_none=True)
    referral_cap_period = fields.String(required=True)
    referee_reward_timing = fields.String(required=True)
    adjustment_approval_threshold = fields.Integer(allow_none=True)
    activity_window_days = fields.Integer(required=True)
    forfeit_cashback_on_close = fields.Boolean(required=True)
    created_at = instant(required=True)


class ApiKeyOut(ma.Schema):
    id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    name = fields.String(allow_none=True)
    prefix = fields.String(required=True, metadata={"description": "First characters of the key, to recognise it"})
    created_at = instant(required=True)
    last_used_at = instant(allow_none=True)
    revoked_at = instant(allow_none=True)
    replaced_by = fields.String(allow_none=True)


class IssuedApiKeyOut(ApiKeyOut):
    key = fields.String(required=True, metadata={"description": "The secret: shown once, store it now"})


class ApiKeys(ma.Schema):
    admin = fields.String(required=True)
    storefront = fields.String(required=True)
    app = fields.String(required=True)
    finance = fields.String(required=True)


class ProgramCreated(ProgramOut):
    api_keys = fields.Nested(ApiKeys, required=True, metadata={"description": "Shown once"})


class ApiKeyCreate(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    name = fields.String(validate=validate.Length(min=1, max=128), allow_none=True)


class ApiKeyList(ma.Schema):
    items = fields.List(fields.Nested(ApiKeyOut), required=True)


class ProgramChangeOut(ma.Schema):
    actor = fields.String(required=True)
    request_id = fields.String(allow_none=True)
    changed_at = instant(required=True)
    before = fields.Dict(required=True)
    after = fields.Dict(required=True)


class ProgramChanges(ma.Schema):
    items = fields.List(fields.Nested(ProgramChangeOut), required=True)
