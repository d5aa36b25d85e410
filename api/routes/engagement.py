"""Engagement events, event rules and achievements (admin writes, every role reads), referrals,
a customer's badges, and the leaderboard."""
from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app, g

from ledger.domain.engagement import Achievement, EventRule, check_event
from ledger.services import achievements, earning, events, referrals

from ..http import (
    Blueprint, booking_context, from_dataclasses, idempotent_write, json_response, principal, program_id, read,
    requires, write,
)
from ..schemas.customers import CustomerPath
from ..schemas.earning import config_id
from ..schemas.engagement import (
    AchievementList, AchievementOut, AchievementPut, CustomerAchievementsOut, EventCreate, EventOut, EventRuleList,
    EventRuleOut, EventRulePut, LeaderboardArgs, LeaderboardOut, ReferralCardOut, ReferralList,
)
from .programs import ALL_ROLES

blp = Blueprint("engagement", __name__, url_prefix="/v1",
                description="Engagement events, achievements, referrals and the leaderboard")


class EventRulePath(ma.Schema):
    event_rule_id = config_id(required=True)


class AchievementPath(ma.Schema):
    achievement_id = config_id(required=True)


@blp.route("/events", methods=["POST"])
@blp.arguments(EventCreate)
@blp.response(201, EventOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def create_event(body: dict) -> Response:
    """Record an engagement event and award what the event rules give for it (capped per customer
    per period), then any achievement it completes. Idempotent by `event_id` (and the
    Idempotency-Key header): a replay answers the first status and body; the same event_id with
    another body is 409 `duplicate_event`. 422 `customer_blocked` for a blocked customer."""
    ledger = current_app.extensions["ledger"]
    check_event(body["type"], body.get("properties"))  # refused before any key is claimed
    cmd = events.EventCommand(event_id=body["event_id"], customer_id=body["customer_id"], type=body["type"],
                              occurred_at=body.get("occurred_at"), properties=body.get("properties"))
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: events.record_event(uow, ledger.clock, pid, cmd, ctx),
                            from_dataclasses(EventOut), 201, natural_key=("event", cmd.event_id))


def _list(kind: str, collection: str) -> dict:
    config = read(lambda uow: earning.current_config(uow, program_id()))
    return {"config_version": config.version,
            "items": [earning.item_view(kind, config, i) for i in sorted(config.items(collection), key=lambda i: i.id)]}


@blp.route("/event-rules", methods=["GET"])
@blp.response(200, EventRuleList)
@requires(*ALL_ROLES)
def list_event_rules() -> Response:
    """The event rules in force."""
    return json_response(EventRuleList().dump(_list("event_rule", "event_rules")))


@blp.route("/event-rules/<event_rule_id>", methods=["GET"])
@blp.arguments(EventRulePath, location="path", as_kwargs=True)
@blp.response(200, EventRuleOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_event_rule(event_rule_id: str) -> Response:
    """One event rule. 404 `event_rule_not_found`."""
    config, item = read(lambda uow: earning.get_item(uow, program_id(), "event_rule", event_rule_id))
    return json_response(EventRuleOut().dump(earning.item_view("event_rule", config, item)))


@blp.route("/event-rules/<event_rule_id>", methods=["PUT"])
@blp.arguments(EventRulePath, location="path", as_kwargs=True)
@blp.arguments(EventRulePut)
@blp.response(200, EventRuleOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_event_rule(body: dict, event_rule_id: str) -> Response:
    """Create or replace an event rule: `points` for each event of `event_type`, at most `cap_points`
    per customer per local `cap_period`. Versioned and audited like every configuration change."""
    ledger = current_app.extensions["ledger"]
    item = EventRule(id=event_rule_id, **body)
    config = write(lambda uow: earning.put_item(uow, ledger.clock, program_id(), "event_rule", item,
                                                principal().actor, g.request_id))
    return json_response(EventRuleOut().dump(earning.item_view("event_rule", config, item)))


@blp.route("/event-rules/<event_rule_id>", methods=["DELETE"])
@blp.arguments(EventRulePath, location="path", as_kwargs=True)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def delete_event_rule(event_rule_id: str) -> Response:
    """Remove an event rule from the next configuration version. 404 `event_rule_not_found`."""
    ledger = current_app.extensions["ledger"]
    write(lambda uow: earning.delete_item(uow, ledger.clock, program_id(), "event_rule", event_rule_id,
                                          principal().actor, g.request_id))
    return Response(status=204)


@blp.route("/achievements", methods=["GET"])
@blp.response(200, AchievementList)
@requires(*ALL_ROLES)
def list_achievements() -> Response:
    """The achievements in force."""
    return json_response(AchievementList().dump(_list("achievement", "achievements")))


@blp.route("/achievements/<achievement_id>", methods=["GET"])
@blp.arguments(AchievementPath, location="path", as_kwargs=True)
@blp.response(200, AchievementOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_achievement(achievement_id: str) -> Response:
    """One achievement. 404 `achievement_not_found`."""
    config, item = read(lambda uow: earning.get_item(uow, program_id(), "achievement", achievement_id))
    return json_response(AchievementOut().dump(earning.item_view("achievement", config, item)))


@blp.route("/achievements/<achievement_id>", methods=["PUT"])
@blp.arguments(AchievementPath, location="path", as_kwargs=True)
@blp.arguments(AchievementPut)
@blp.response(200, AchievementOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def put_achievement(body: dict, achievement_id: str) -> Response:
    """Create or replace an achievement (count, sum, streak, distinct) with its badge and optional
    points reward, once-only or repeatable per window. Progress is recomputed from purchases net of
    refunds and from events; a badge that stops holding after a refund is withdrawn and its reward
    taken back."""
    ledger = current_app.extensions["ledger"]
    item = Achievement(id=achievement_id, **body)
    config = write(lambda uow: earning.put_item(uow, ledger.clock, program_id(), "achievement", item,
                                                principal().actor, g.request_id))
    return json_response(AchievementOut().dump(earning.item_view("achievement", config, item)))


@blp.route("/achievements/<achievement_id>", methods=["DELETE"])
@blp.arguments(AchievementPath, location="path", as_kwargs=True)
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def delete_achievement(achievement_id: str) -> Response:
    """Retire an achievement: no new badges; badges already earned stay. 404 `achievement_not_found`."""
    ledger = current_app.extensions["ledger"]
    write(lambda uow: earning.delete_item(uow, ledger.clock, program_id(), "achievement", achievement_id,
                                          principal().actor, g.request_id))
    return Response(status=204)


@blp.route("/customers/<customer_id>/achievements", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, CustomerAchievementsOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_customer_achievements(customer_id: str) -> Response:
    """Badges earned (and withdrawn), and progress toward each achievement ("2 of 5 purchases this month")."""
    ledger = current_app.extensions["ledger"]
    view = read(lambda uow: achievements.achievements_of(uow, ledger.clock, program_id(), customer_id))
    return json_response(from_dataclasses(CustomerAchievementsOut).dump(view))


@blp.route("/customers/<customer_id>/referral", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, ReferralCardOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_referral(customer_id: str) -> Response:
    """The customer's referral code, a text to share, and the rewards it brings."""
    ledger = current_app.extensions["ledger"]
    card = read(lambda uow: referrals.referral_card(uow, ledger.clock, program_id(), customer_id))
    return json_response(from_dataclasses(ReferralCardOut).dump(card))


@blp.route("/customers/<customer_id>/referrals", methods=["GET"])
@blp.arguments(CustomerPath, location="path", as_kwargs=True)
@blp.response(200, ReferralList)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def list_referrals(customer_id: str) -> Response:
    """The customers this customer referred, newest first, with status (registered, purchased,
    rewarded, reversed, capped) and rewards."""
    ledger = current_app.extensions["ledger"]
    items = read(lambda uow: referrals.referrals_of(uow, ledger.clock, program_id(), customer_id))
    return json_response(ReferralList().dump({"items": items}))


@blp.route("/leaderboard", methods=["GET"])
@blp.arguments(LeaderboardArgs, location="query", as_kwargs=True)
@blp.response(200, LeaderboardOut)
@requires(*ALL_ROLES)
def get_leaderboard(period: str, limit: int) -> Response:
    """Customers who opted in (`leaderboard_opt_in`), by points earned in the current local week,
    month or year, net of clawbacks; display names only."""
    ledger = current_app.extensions["ledger"]
    data = read(lambda uow: events.leaderboard(uow, ledger.clock, program_id(), period, limit))
    return json_response(LeaderboardOut().dump(data))
