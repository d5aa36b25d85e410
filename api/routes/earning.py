"""Earning rules, campaigns and tiers (admin writes, every role reads); a customer's tier and
coming expirations. Every change writes a new configuration version and an audit record."""
from __future__ import annotations

from flask import Response, current_app, g

from ledger.domain.earning_config import campaign_from_dict, ladder_from_dict, rule_from_dict
from ledger.services import earning as use_cases
from ledger.services import expiry, tiers

from ..http import Blueprint, booking_context, from_dataclasses, json_response, principal, program_id, read, requires, write
from ..schemas.customers import CustomerPath
from ..schemas.earning import (
    CampaignList, CampaignOut, CampaignPut, ExpiringOut, RuleList, RuleOut, RulePut, TierOverride, TiersOut, TiersPut,
    TierStatusOut, config_id,
)
from .programs import ALL_ROLES

import marshmallow as ma

blp = Blueprint("earning", __name__, url_prefix="/v1", description="Earning rules, campaigns, tiers and expiry")


class RulePath(ma.Schema):
    rule_id = config_id(required=True)


class CampaignPath(ma.Schema):
    campaign_id = config_id(required=True)


@blp.route("/rules", methods=["GET"])
@blp.response(200, RuleList)
@requires(*ALL_ROLES)
def list_rules() -> Response:
    """The earning rules in force, with the configuration version."""
    config = read(lambda uow: use_cases.current_config(uow, program_id()))
    return json_response(RuleList().dump({"config_version": config.version,
                                          "items": [use_cases.item_view("rule", config, r) for r in
                                                    sorted(config.rules, key=lambda r: (r.priority, r.id))]}))


@blp.route("/rules/<rule_id>", methods=["GET"])
@blp.arguments(RulePath, location="path", as_kwargs=True)
@blp.response(200, RuleOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_rule(rule_id: str) -> Response:
    """One earning rule. 404 `rule_not_found`."""
    config, rule = read(lambda uow: use_cases.get_rule(uow, program_id(), rule_id))
    return json_response(RuleOut().dump(use_cases.item_view("rule", config, rule)))


@blp.route("/rules/<rule_id>", methods=["PUT"])
@blp.arguments(RulePath, location="path", as_kwargs=True)
@blp.arguments(RulePut)
@blp.response(200, RuleOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_rule(body: dict, rule_id: str) -> Response:
    """Create or replace an earning rule: a multiplier on matching lines or a fixed bonus per
    matching order, with conditions (categories, SKUs, channels, minimum spend) and an optional cap
    per customer per local period. A new configuration version applies to purchases that start
    after it; earlier purchases (and their refunds) keep the version they used. Repeating the same
    body changes nothing."""
    ledger = current_app.extensions["ledger"]
    rule = rule_from_dict({"id": rule_id, **body})
    config = write(lambda uow: use_cases.put_rule(uow, ledger.clock, program_id(), rule, principal().actor,
                                                  g.request_id))
    return json_response(RuleOut().dump(use_cases.item_view("rule", config, rule)))


@blp.route("/rules/<rule_id>", methods=["DELETE"])
@blp.arguments(RulePath, location="path", as_kwargs=True)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def delete_rule(rule_id: str) -> Response:
    """Remove a rule from the next configuration version. 404 `rule_not_found` if it is not in force."""
    ledger = current_app.extensions["ledger"]
    write(lambda uow: use_cases.delete_rule(uow, ledger.clock, program_id(), rule_id, principal().actor, g.request_id))
    return Response(status=204)


def _campaign_view(uow, campaign_id: str) -> dict:  # noqa: ANN001
    from ledger.domain.errors import CampaignNotFound
    program = uow.programs.get(program_id())
    config = use_cases.current_config(uow, program.id)
    for view in use_cases.campaign_views(uow, program, config):
        if view["id"] == campaign_id:
            return view
    raise CampaignNotFound(f"no campaign {campaign_id!r} in this program")


@blp.route("/campaigns", methods=["GET"])
@blp.response(200, CampaignList)
@requires(*ALL_ROLES)
def list_campaigns() -> Response:
    """The campaigns in force, with what each budget has given and has left."""
    def views(uow):  # noqa: ANN001, ANN202
        program = uow.programs.get(program_id())
        config = use_cases.current_config(uow, program.id)
        return {"config_version": config.version, "items": use_cases.campaign_views(uow, program, config)}
    return json_response(CampaignList().dump(read(views)))


@blp.route("/campaigns/<campaign_id>", methods=["GET"])
@blp.arguments(CampaignPath, location="path", as_kwargs=True)
@blp.response(200, CampaignOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_campaign(campaign_id: str) -> Response:
    """One campaign and its budget. 404 `campaign_not_found`."""
    return json_response(CampaignOut().dump(read(lambda uow: _campaign_view(uow, campaign_id))))


@blp.route("/campaigns/<campaign_id>", methods=["PUT"])
@blp.arguments(CampaignPath, location="path", as_kwargs=True)
@blp.arguments(CampaignPut)
@blp.response(200, CampaignOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_campaign(body: dict, campaign_id: str) -> Response:
    """Create or replace a campaign (window, birthday, anniversary, winback, frequency): a multiplier
    and/or a bonus, with conditions and an optional budget after which it stops. Windows are local
    days in the program's timezone. What a budget has given is kept when the campaign is replaced."""
    ledger = current_app.extensions["ledger"]
    campaign = campaign_from_dict({"id": campaign_id, **body})

    def action(uow):  # noqa: ANN001, ANN202
        use_cases.put_campaign(uow, ledger.clock, program_id(), campaign, principal().actor, g.request_id)
        return _campaign_view(uow, campaign_id)
    return json_response(CampaignOut().dump(write(action)))


@blp.route("/campaigns/<campaign_id>", methods=["DELETE"])
@blp.arguments(CampaignPath, location="path", as_kwargs=True)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def delete_campaign(campaign_id: str) -> Response:
    """End a campaign: removed from the next configuration version. 404 `campaign_not_found`."""
    ledger = current_app.extensions["ledger"]
    write(lambda uow: use_cases.delete_campaign(uow, ledger.clock, program_id(), campaign_id, principal().actor,
                                                g.request_id))
    return Response(status=204)


def _ladder_view(config) -> dict:  # noqa: ANN001
    return {**config.to_dict()["ladder"], "config_version": config.version}


@blp.route("/tiers", methods=["GET"])
@blp.response(200, TiersOut)
@requires(*ALL_ROLES)
def get_tiers() -> Response:
    """The tier ladder and how tiers are earned, kept and lost."""
    config = read(lambda uow: use_cases.current_config(uow, program_id()))
    return json_response(TiersOut().dump(_ladder_view(config)))


@blp.route("/tiers", methods=["PUT"])
@blp.arguments(TiersPut)
@blp.response(200, TiersOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_tiers(body: dict) -> Response:
    """Replace the tier ladder: tiers by ascending threshold (the first at 0), the metric
    (qualifying_spend or purchase_points, net of refunds), the window (rolling window_days or the
    local calendar year), grace_days before a downgrade, and how far a downgrade goes (one_tier or
    to_qualified). Upgrades happen on the qualifying purchase; downgrades only at evaluation."""
    ledger = current_app.extensions["ledger"]
    ladder = ladder_from_dict(body)
    config = write(lambda uow: use_cases.put_ladder(uow, ledger.clock, program_id(), ladder, principal().actor,
                                                    g.request_id))
    return json_response(TiersOut().dump(_ladder_view(config)))


@blp.route("/customers/<customer_id>/tier", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, TierStatusOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_customer_tier(customer_id: str) -> Response:
    """The customer's tier, the next one and what is still needed to reach it, what keeping the
    current one needs and by when, and the recent changes with their reasons."""
    ledger = current_app.extensions["ledger"]
    status = read(lambda uow: tiers.tier_status(uow, ledger.clock, program_id(), customer_id))
    return json_response(from_dataclasses(TierStatusOut).dump(status))


@blp.route("/customers/<customer_id>/tier", methods=["PUT"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.arguments(TierOverride)
@blp.response(200, TierStatusOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_customer_tier(body: dict, customer_id: str) -> Response:
    """Place the customer in a tier until a date (a manual override, recorded with who set it).
    Until then no evaluation moves them down; afterwards their metric alone decides: no floor.
    Repeating the same tier and date changes nothing."""
    ledger = current_app.extensions["ledger"]
    ctx = booking_context()
    status = write(lambda uow: tiers.set_manual_tier(uow, ledger.clock, program_id(), customer_id, body["tier_id"],
                                                     body["until"], ctx))
    return json_response(from_dataclasses(TierStatusOut).dump(status))


@blp.route("/customers/<customer_id>/expiring", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, ExpiringOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_expiring(customer_id: str) -> Response:
    """Points that will expire, by date, soonest first: `expires_at` is the local midnight that ends
    `last_day` in the program's timezone."""
    ledger = current_app.extensions["ledger"]
    data = read(lambda uow: expiry.coming_expirations(uow, ledger.clock, program_id(), customer_id))
    return json_response(ExpiringOut().dump(data))
