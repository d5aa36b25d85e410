"""Earning configuration (rules, campaigns, tier ladder) and the facts a purchase's earning needs.

The configuration is one versioned document per program: every admin change writes a new version
and an audit record (who, when, before, after). Facts are read only when a rule or campaign needs
them, so a program without rules costs one query more per purchase.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Callable

from ..domain.calendar import birthday_month, local_date, period_end, period_start
from ..domain.customers import Customer
from ..domain.earning import EarningFacts, EarningResult, OrderToEarn, compute_earnings
from ..clock import Clock
from ..domain.earning_config import Campaign, EarningConfig, EarningRule, TierLadder
from ..domain.errors import AchievementNotFound, CampaignNotFound, EventRuleNotFound, RuleNotFound
from ..domain.programs import Program
from .ports import UnitOfWork, WrittenPurchase


def current_config(uow: UnitOfWork, program_id: str) -> EarningConfig:
    row = uow.earning.latest_config(program_id)
    return EarningConfig.from_dict({**row["config"], "version": row["version"]}) if row else EarningConfig()


# Versions never change once written, so they are cached per process (bounded, thread-safe enough:
# a lost insert only means one more read).
_VERSIONS: dict[tuple[str, int], EarningConfig] = {}
_VERSIONS_MAX = 1024


def config_at(uow: UnitOfWork, program_id: str, version: int | None) -> EarningConfig:
    if not version:
        return EarningConfig()
    cached = _VERSIONS.get((program_id, version))
    if cached is not None:
        return cached
    row = uow.earning.config(program_id, version)
    if row is None:
        return EarningConfig()
    config = EarningConfig.from_dict({**row["config"], "version": row["version"]})
    if len(_VERSIONS) >= _VERSIONS_MAX:
        _VERSIONS.clear()
    _VERSIONS[(program_id, version)] = config
    return config


def config_for(uow: UnitOfWork, program: Program) -> EarningConfig:
    """The configuration in force for a program row just read: no query without rules, else cached."""
    return config_at(uow, program.id, program.earning_version)


def change_config(uow: UnitOfWork, program_id: str, change: Callable[[EarningConfig], EarningConfig],
                  subject: str, before: Any, after: Callable[[EarningConfig], Any], at: datetime, actor: str,
                  request_id: str | None) -> EarningConfig:
    """Write the next version of the configuration; `subject` names what changed in the audit trail."""
    config = current_config(uow, program_id)
    changed = replace(change(config), version=config.version + 1)
    document = changed.to_dict()
    document.pop("version")
    uow.earning.add_config(program_id, changed.version, document, at, actor, request_id,
                           before={subject: before, "config_version": config.version},
                           after={subject: after(changed), "config_version": changed.version})
    return changed


def paid_with_rewards(uow: UnitOfWork, program: Program, order_id: str, customer: Customer) -> int:
    """Money value of the points and cashback this customer captured for the order: it never earns."""
    total = 0
    for row in uow.redemptions.captured_for_order(program.id, order_id):
        if row["customer_pk"] != customer.pk:
            continue
        amount = row["captured_amount"]
        total += program.settings.points_value(amount) if row["asset"] == "points" else amount
    return total


def gather_facts(uow: UnitOfWork, program: Program, config: EarningConfig, customer: Customer,
                 occurred_at: datetime, lock_budgets: bool) -> EarningFacts:
    """What the rules and campaigns in force need to know, as of the purchase's local day.

    With `lock_budgets`, the budget row of every budgeted campaign running that day is locked
    (sorted by id) until commit, so concurrent purchases never spend a budget twice."""
    tz = program.settings.timezone
    day = local_date(occurred_at, tz)
    end = occurred_at + timedelta(microseconds=1)
    facts: dict[str, Any] = {"occurred_at": occurred_at, "timezone": tz,
                             "birthday_month": birthday_month(customer.birthday),
                             "tier_id": customer.tier_id if config.ladder.tiers else None}
    campaigns = [c for c in config.campaigns if c.runs_on(day)]
    kinds = {c.kind for c in campaigns}
    if kinds & {"anniversary", "winback"}:
        first, last = uow.earning.purchase_span(customer.pk, occurred_at)
        facts["first_purchase_on"] = local_date(first, tz) if first else None
        facts["last_purchase_on"] = local_date(last, tz) if last else None
    periods = {c.period for c in campaigns if c.kind == "frequency" and c.period}
    facts["purchases_in_period"] = {
        period: uow.earning.purchases_between(customer.pk, period_start(occurred_at, tz, period), end)
        for period in sorted(periods)}
    # A cap counts everything its rule added in the purchase's whole local period, including
    # purchases dated later than this one (a back-dated purchase must not get the room twice).
    facts["rule_used"] = {
        rule.id: uow.earning.awarded_between(customer.pk, rule.id, period_start(occurred_at, tz, rule.cap_period),
                                             period_end(occurred_at, tz, rule.cap_period))
        for rule in config.rules if rule.cap_period}
    once = [c.id for c in campaigns if c.kind in ("birthday", "anniversary", "frequency")]
    facts["occasions_awarded"] = frozenset(uow.earning.occasions(customer.pk, once)) if once else frozenset()
    budget_left = {}
    for campaign in sorted(campaigns, key=lambda c: c.id):
        if campaign.budget_points is None and campaign.budget_value is None:
            continue
        budget = (campaign.budget_points if campaign.budget_points is not None
                  else program.settings.points_for_value(campaign.budget_value))
        budget_left[campaign.id] = max(budget - uow.earning.budget_used(program.id, campaign.id, lock_budgets), 0)
    facts["budget_left"] = budget_left
    return EarningFacts(**facts)


def earn(uow: UnitOfWork, program: Program, config: EarningConfig, customer: Customer, order: OrderToEarn,
         occurred_at: datetime, lock_budgets: bool) -> tuple[EarningResult, EarningFacts]:
    facts = gather_facts(uow, program, config, customer, occurred_at, lock_budgets)
    tier = config.ladder.get(facts.tier_id) if config.ladder.tiers else None
    return compute_earnings(order, config, program.settings, facts, tier=tier), facts


def record_awards(uow: UnitOfWork, program: Program, config: EarningConfig, customer: Customer,
                  purchase: WrittenPurchase, result: EarningResult, occurred_at: datetime) -> None:
    """Keep what each rule and campaign added, for caps, once-a-year campaigns and budgets."""
    if not result.awards:
        return  # and the purchase's id is not needed (reading it would send its deferred write)
    purchase_pk = purchase.purchase_pk
    budgeted = {c.id for c in config.campaigns if c.budget_points is not None or c.budget_value is not None}
    uow.earning.add_awards([
        {"program_id": program.id, "customer_pk": customer.pk, "purchase_id": purchase_pk, "source": award.source,
         "source_id": award.source_id, "occasion": award.occasion, "points": award.points, "awarded_at": occurred_at}
        for award in result.awards])
    for award in result.awards:
        if award.source == "campaign" and award.source_id in budgeted:
            uow.earning.use_budget(program.id, award.source_id, award.points)


# -- the admin API's use cases: each change is a new version, unless it changes nothing

COLLECTIONS = {"rule": "rules", "campaign": "campaigns", "event_rule": "event_rules", "achievement": "achievements"}


def _item_dict(kind: str, item: Any) -> Any:
    if item is None:
        return None
    return EarningConfig(**{COLLECTIONS[kind]: (item,)}).to_dict()[COLLECTIONS[kind]][0]


def item_view(kind: str, config: EarningConfig, item: Any) -> dict[str, Any]:
    """A rule, campaign, event rule or achievement as the admin API shows it, with the version in force."""
    return {**_item_dict(kind, item), "config_version": config.version}


def put_item(uow: UnitOfWork, clock: Clock, program_id: str, kind: str, item: Any, actor: str,
             request_id: str | None) -> EarningConfig:
    """Create or replace a rule, campaign, event rule or achievement: the next configuration version."""
    collection = COLLECTIONS[kind]
    config = current_config(uow, program_id)
    before = next((i for i in config.items(collection) if i.id == item.id), None)
    if before == item:
        return config  # a repeated PUT: nothing new to record
    return change_config(uow, program_id, lambda c: c.with_item(collection, item), f"{kind}:{item.id}",
                         _item_dict(kind, before), lambda changed: _item_dict(kind, item), clock.now(), actor,
                         request_id)


def delete_item(uow: UnitOfWork, clock: Clock, program_id: str, kind: str, item_id: str, actor: str,
                request_id: str | None) -> EarningConfig:
    collection = COLLECTIONS[kind]
    config = current_config(uow, program_id)
    before = next((i for i in config.items(collection) if i.id == item_id), None)
    if before is None:
        raise NOT_FOUND[kind](f"no {kind.replace('_', ' ')} {item_id!r} in this program")
    return change_config(uow, program_id, lambda c: c.without_item(collection, item_id), f"{kind}:{item_id}",
                         _item_dict(kind, before), lambda changed: None, clock.now(), actor, request_id)


def get_item(uow: UnitOfWork, program_id: str, kind: str, item_id: str) -> tuple[EarningConfig, Any]:
    config = current_config(uow, program_id)
    for item in config.items(COLLECTIONS[kind]):
        if item.id == item_id:
            return config, item
    raise NOT_FOUND[kind](f"no {kind.replace('_', ' ')} {item_id!r} in this program")


def put_rule(uow: UnitOfWork, clock: Clock, program_id: str, rule: EarningRule, actor: str,
             request_id: str | None) -> EarningConfig:
    return put_item(uow, clock, program_id, "rule", rule, actor, request_id)


def delete_rule(uow: UnitOfWork, clock: Clock, program_id: str, rule_id: str, actor: str,
                request_id: str | None) -> EarningConfig:
    return delete_item(uow, clock, program_id, "rule", rule_id, actor, request_id)


def put_campaign(uow: UnitOfWork, clock: Clock, program_id: str, campaign: Campaign, actor: str,
                 request_id: str | None) -> EarningConfig:
    return put_item(uow, clock, program_id, "campaign", campaign, actor, request_id)


def delete_campaign(uow: UnitOfWork, clock: Clock, program_id: str, campaign_id: str, actor: str,
                    request_id: str | None) -> EarningConfig:
    return delete_item(uow, clock, program_id, "campaign", campaign_id, actor, request_id)


NOT_FOUND = {"rule": RuleNotFound, "campaign": CampaignNotFound, "event_rule": EventRuleNotFound,
             "achievement": AchievementNotFound}


def put_ladder(uow: UnitOfWork, clock: Clock, program_id: str, ladder: TierLadder, actor: str,
               request_id: str | None) -> EarningConfig:
    """Replace the tier ladder. Customers keep their tier id; one no longer in the ladder counts as the base tier."""
    config = current_config(uow, program_id)
    if config.ladder == ladder:
        return config
    document = EarningConfig(ladder=config.ladder).to_dict()["ladder"]
    return change_config(uow, program_id, lambda c: replace(c, ladder=ladder), "tiers", document,
                         lambda changed: changed.to_dict()["ladder"], clock.now(), actor, request_id)


def get_rule(uow: UnitOfWork, program_id: str, rule_id: str) -> tuple[EarningConfig, EarningRule]:
    return get_item(uow, program_id, "rule", rule_id)


def campaign_views(uow: UnitOfWork, program: Program, config: EarningConfig) -> list[dict[str, Any]]:
    """Each campaign as configured, with what its budget has given and has left."""
    used = uow.earning.budgets(program.id)
    views = []
    for campaign in sorted(config.campaigns, key=lambda c: (c.priority, c.id)):
        budget = (campaign.budget_points if campaign.budget_points is not None
                  else program.settings.points_for_value(campaign.budget_value)
                  if campaign.budget_value is not None else None)
        spent = used.get(campaign.id, 0)
        views.append({**item_view("campaign", config, campaign), "starts_on": campaign.starts_on,
                      "ends_on": campaign.ends_on, "budget_used_points": spent,
                      "budget_left_points": None if budget is None else max(budget - spent, 0)})
    return views
