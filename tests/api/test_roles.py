"""Roles (ARCHITECTURE.md §4), authentication failures (§3) and tenant isolation.

The 403 cases are derived from ROLE_TABLE, one row per route that exists, and a test checks
that every /v1 route of the app has a row: a new route without one fails here.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.helpers import assert_problem, row_counts

ROLES = ("admin", "storefront", "app", "finance")
ALL = ROLES
OPERATOR = "operator"

# §4, row by row:
#   program settings, API keys: write                    -> admin
#   program settings (without keys): read                -> all four
#   enrol and update customers                           -> admin, storefront
#   purchases (write)                                    -> storefront
#   reads of one customer; purchases                     -> all four
#   ledger entries                                       -> admin, finance
# GET /v1/program/changes is the audit trail of settings changes (actor key ids, request ids):
# served to admin and finance, like the other audit reads (ledger entries).
ROLE_TABLE: list[tuple[str, str, tuple[str, ...]]] = [
    ("POST", "/v1/programs", (OPERATOR,)),
    ("GET", "/v1/program", ALL),
    ("PATCH", "/v1/program", ("admin",)),
    ("GET", "/v1/program/changes", ("admin", "finance")),
    ("GET", "/v1/api-keys", ("admin",)),
    ("POST", "/v1/api-keys", ("admin",)),
    ("POST", "/v1/api-keys/<key_id>/rotate", ("admin",)),
    ("DELETE", "/v1/api-keys/<key_id>", ("admin",)),
    ("PUT", "/v1/customers/<customer_id>", ("admin", "storefront")),
    ("GET", "/v1/customers/<customer_id>", ALL),
    ("GET", "/v1/customers/<customer_id>/balances", ALL),
    ("GET", "/v1/customers/<customer_id>/activity", ALL),
    ("POST", "/v1/purchases", ("storefront",)),
    ("GET", "/v1/purchases/<order_id>", ALL),
    ("GET", "/v1/ledger/entries", ("admin", "finance")),
    # purchases, refunds, redemptions, quote -> storefront; reads of redemptions -> all four
    ("POST", "/v1/purchases/<order_id>/refunds", ("storefront",)),
    ("POST", "/v1/redemptions", ("storefront",)),
    ("GET", "/v1/redemptions/<redemption_id>", ALL),
    ("POST", "/v1/redemptions/<redemption_id>/capture", ("storefront",)),
    ("POST", "/v1/redemptions/<redemption_id>/void", ("storefront",)),
    ("POST", "/v1/redemptions/<redemption_id>/extend", ("storefront",)),
    ("POST", "/v1/checkout/quote", ("storefront",)),
    ("POST", "/v1/purchases/simulate", ("storefront",)),
    ("GET", "/v1/rules", ALL),
    ("GET", "/v1/rules/<rule_id>", ALL),
    ("PUT", "/v1/rules/<rule_id>", ("admin",)),
    ("DELETE", "/v1/rules/<rule_id>", ("admin",)),
    ("GET", "/v1/campaigns", ALL),
    ("GET", "/v1/campaigns/<campaign_id>", ALL),
    ("PUT", "/v1/campaigns/<campaign_id>", ("admin",)),
    ("DELETE", "/v1/campaigns/<campaign_id>", ("admin",)),
    ("GET", "/v1/tiers", ALL),
    ("PUT", "/v1/tiers", ("admin",)),
    ("GET", "/v1/customers/<customer_id>/tier", ALL),
    ("PUT", "/v1/customers/<customer_id>/tier", ("admin",)),
    ("GET", "/v1/customers/<customer_id>/expiring", ALL),
    ("POST", "/v1/events", ("storefront",)),
    ("GET", "/v1/event-rules", ALL),
    ("GET", "/v1/event-rules/<event_rule_id>", ALL),
    ("PUT", "/v1/event-rules/<event_rule_id>", ("admin",)),
    ("DELETE", "/v1/event-rules/<event_rule_id>", ("admin",)),
    ("GET", "/v1/achievements", ALL),
    ("GET", "/v1/achievements/<achievement_id>", ALL),
    ("PUT", "/v1/achievements/<achievement_id>", ("admin",)),
    ("DELETE", "/v1/achievements/<achievement_id>", ("admin",)),
    ("GET", "/v1/customers/<customer_id>/achievements", ALL),
    ("GET", "/v1/customers/<customer_id>/referral", ALL),
    ("GET", "/v1/customers/<customer_id>/referrals", ALL),
    ("GET", "/v1/leaderboard", ALL),
    # ledger entries, transactions, export, trial balance, verify -> admin, finance
    ("GET", "/v1/ledger/export", ("admin", "finance")),
    ("GET", "/v1/ledger/trial-balance", ("admin", "finance")),
    ("GET", "/v1/ledger/verify", ("admin", "finance")),
    ("GET", "/v1/ledger/periods", ("admin", "finance")),
    ("GET", "/v1/ledger/periods/<period>", ("admin", "finance")),
    ("GET", "/v1/transactions/<transaction_id>", ("admin", "finance")),
    ("GET", "/v1/adjustments/<adjustment_id>", ("admin", "finance")),
    # adjustments, reversals, period close -> finance
    ("POST", "/v1/ledger/periods/<period>/close", ("finance",)),
    ("POST", "/v1/transactions/<transaction_id>/reverse", ("finance",)),
    ("POST", "/v1/adjustments", ("finance",)),
    ("POST", "/v1/adjustments/<adjustment_id>/approve", ("finance",)),
    # reports and analytics -> admin, finance
    ("GET", "/v1/reports/liability", ("admin", "finance")),
    ("GET", "/v1/reports/activity", ("admin", "finance")),
    ("GET", "/v1/analytics/retention", ("admin", "finance")),
    # personal data and closure: program administration -> admin
    ("DELETE", "/v1/customers/<customer_id>/personal-data", ("admin",)),
    ("POST", "/v1/customers/<customer_id>/close", ("admin",)),
]

# A well-formed request per route, so an allowed role gets past validation too.
SAMPLE_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/programs"): {"name": "Other shop", "currency": "EUR"},
    ("PATCH", "/v1/program"): {"points_per_unit": 2},
    ("POST", "/v1/api-keys"): {"role": "app", "name": "kiosk"},
    ("PUT", "/v1/customers/<customer_id>"): {"email": "ana@example.com"},
    ("POST", "/v1/purchases"): {"order_id": "R-1", "customer_id": "c-1", "amount": 1_000, "currency": "EUR"},
    ("POST", "/v1/purchases/<order_id>/refunds"): {"refund_id": "F-1", "amount": 100},
    ("POST", "/v1/redemptions"): {"redemption_id": "H-2", "customer_id": "c-1", "asset": "points", "amount": 10},
    ("POST", "/v1/redemptions/<redemption_id>/capture"): {"amount": 5},
    ("POST", "/v1/redemptions/<redemption_id>/void"): {},
    ("POST", "/v1/redemptions/<redemption_id>/extend"): {"ttl_seconds": 60},
    ("POST", "/v1/checkout/quote"): {"customer_id": "c-1", "amount": 1_000},
    ("POST", "/v1/purchases/simulate"): {"order_id": "S-1", "customer_id": "c-1", "amount": 1_000, "currency": "EUR"},
    ("PUT", "/v1/rules/<rule_id>"): {"name": "Double", "kind": "multiplier", "multiplier_bps": 20_000},
    ("PUT", "/v1/campaigns/<campaign_id>"): {"name": "Weekend", "kind": "window", "multiplier_bps": 20_000,
                                             "starts_on": "2026-11-28", "ends_on": "2026-11-29"},
    ("PUT", "/v1/tiers"): {"tiers": [{"id": "member", "name": "Member", "threshold": 0},
                                     {"id": "gold", "name": "Gold", "threshold": 100_000}]},
    ("PUT", "/v1/customers/<customer_id>/tier"): {"tier_id": "gold", "until": "2027-06-01T00:00:00Z"},
    ("POST", "/v1/events"): {"event_id": "E-1", "customer_id": "c-1", "type": "review_posted"},
    ("PUT", "/v1/event-rules/<event_rule_id>"): {"event_type": "review_posted", "points": 20},
    ("PUT", "/v1/achievements/<achievement_id>"): {"name": "Regular", "kind": "count", "threshold": 3,
                                                   "window": "month"},
    ("POST", "/v1/adjustments"): {"adjustment_id": "ADJ-2", "customer_id": "c-1", "asset": "points", "amount": 5,
                                  "reason": "goodwill for a late parcel", "reason_code": "goodwill"},
    ("POST", "/v1/transactions/<transaction_id>/reverse"): {"reason": "booked twice by mistake"},
}


def key_id_of(client: Any, program: Any, role: str) -> str:
    """The id of the program's original key for `role` (matched by its visible prefix)."""
    secret = program.keys[role]
    items = client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]
    [key] = [k for k in items if k["role"] == role and secret.startswith(k["prefix"])]
    return key["id"]


@pytest.fixture
def world(client, program, enrol, buy):
    """A program with customer c-1 and purchase P-1 and a spare app key, so every path names something."""
    enrol(program, "c-1")
    assert buy(program, "P-1", "c-1", 5_000).status_code == 201
    spare = client.post("/v1/api-keys", json={"role": "app", "name": "spare"}, headers=program.headers("admin"))
    assert spare.status_code == 201
    held = client.post("/v1/redemptions", json={"redemption_id": "H-1", "customer_id": "c-1", "asset": "points",
                                                "amount": 10}, headers=program.headers("storefront"))
    assert held.status_code == 201, held.get_data(as_text=True)
    admin = program.headers("admin")
    for path in ("/v1/rules/<rule_id>", "/v1/campaigns/<campaign_id>", "/v1/tiers", "/v1/event-rules/<event_rule_id>",
                 "/v1/achievements/<achievement_id>"):
        body = SAMPLE_BODIES[("PUT", path)]
        path = (path.replace("<rule_id>", "double").replace("<campaign_id>", "weekend")
                .replace("<event_rule_id>", "reviews").replace("<achievement_id>", "regular"))
        assert client.put(path, json=body, headers=admin).status_code == 200
    finance = program.headers("finance")
    adjusted = client.post("/v1/adjustments", json={"adjustment_id": "ADJ-1", "customer_id": "c-1",
                                                    "asset": "points", "amount": 7, "reason": "welcome gesture"},
                           headers=finance)
    assert adjusted.status_code == 201, adjusted.get_data(as_text=True)
    closed = client.post("/v1/ledger/periods/2026-10/close", headers=finance)
    assert closed.status_code == 201, closed.get_data(as_text=True)
    return {"program": program, "key_id": spare.get_json()["id"], "customer_id": "c-1", "order_id": "P-1",
            "redemption_id": "H-1", "rule_id": "double", "campaign_id": "weekend", "event_rule_id": "reviews",
            "achievement_id": "regular", "transaction_id": adjusted.get_json()["transaction_id"],
            "adjustment_id": "ADJ-1", "period": "2026-10"}


@pytest.fixture
def bare(program):
    """Just a program: enough where the answer must not depend on what the path names (401, 403)."""
    return {"program": program, "key_id": "key_0000000000000000000000", "customer_id": "c-1", "order_id": "P-1",
            "redemption_id": "H-1", "rule_id": "double", "campaign_id": "weekend", "event_rule_id": "reviews",
            "achievement_id": "regular", "transaction_id": "txn_0000000000000000000000", "adjustment_id": "ADJ-1",
            "period": "2026-10"}


def concrete(rule: str, world: dict) -> str:
    return (rule.replace("<key_id>", world["key_id"]).replace("<customer_id>", world["customer_id"])
            .replace("<order_id>", world["order_id"]).replace("<redemption_id>", world["redemption_id"])
            .replace("<rule_id>", world["rule_id"]).replace("<campaign_id>", world["campaign_id"])
            .replace("<event_rule_id>", world["event_rule_id"]).replace("<achievement_id>", world["achievement_id"])
            .replace("<transaction_id>", world["transaction_id"]).replace("<adjustment_id>", world["adjustment_id"])
            .replace("<period>", world["period"]))


def call(client: Any, method: str, rule: str, world: dict, headers: dict[str, str], body: Any = None) -> Any:
    path = concrete(rule, world)
    if body is None:
        body = SAMPLE_BODIES.get((method, rule))
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.open(path, method=method, **kwargs)


def _pairs(allowed: bool) -> list[Any]:
    out = []
    for method, rule, roles in ROLE_TABLE:
        for role in ROLES:
            if (role in roles) == allowed:
                out.append(pytest.param(method, rule, role, id=f"{method} {rule} as {role}"))
    return out


# --------------------------------------------------------------------------- the table covers every route


def test_role_table_covers_every_v1_route(app):
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    table = {(method, rule) for method, rule, _ in ROLE_TABLE}
    assert routes - table == set(), f"routes without a role-table row: {sorted(routes - table)}"
    assert table - routes == set(), f"role-table rows without a route: {sorted(table - routes)}"
    assert len(table) == len(ROLE_TABLE), "duplicate rows in ROLE_TABLE"


# --------------------------------------------------------------------------- 403 / allowed


@pytest.mark.parametrize("method,rule,role", _pairs(allowed=False))
def test_a_role_not_in_the_table_is_forbidden_and_writes_nothing(client, app, world, method, rule, role):
    """Against real resources (the customer, order and key exist), so a 403 is not a 404 in disguise;
    then with a malformed body, since roles are checked before the body is read."""
    program = world["program"]
    before = row_counts(app)
    expected = (401, "unauthorized") if rule == "/v1/programs" else (403, "forbidden")
    response = call(client, method, rule, world, program.headers(role))
    problem = assert_problem(response, *expected)
    assert problem["detail"]
    if rule == "/v1/programs":  # the operator token only: an API key is not a credential here
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    response = client.open(concrete(rule, world), method=method, data=b"{not json", content_type="application/json",
                           headers=program.headers(role))
    assert_problem(response, *expected)
    assert row_counts(app) == before


def test_forbidden_comes_before_lookup(client, app, bare):
    """A path naming nothing still answers 403 to a role that may not call the route at all."""
    program = bare["program"]
    for method, rule, roles in ROLE_TABLE:
        for role in ROLES:
            if role not in roles and rule != "/v1/programs":
                response = call(client, method, rule, bare, program.headers(role))
                assert response.status_code == 403, (method, rule, role, response.get_data(as_text=True))


@pytest.mark.parametrize("method,rule,role", _pairs(allowed=True))
def test_a_role_in_the_table_is_let_through(client, world, method, rule, role):
    program = world["program"]
    response = call(client, method, rule, world, program.headers(role))
    assert response.status_code not in (401, 403), (response.status_code, response.get_data(as_text=True))
    assert response.status_code < 500, response.get_data(as_text=True)
    if method == "GET":
        assert response.status_code == 200, response.get_data(as_text=True)


def test_the_operator_token_creates_programs(client):
    response = client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"},
                           headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert response.status_code == 201


def test_the_operator_token_is_not_an_api_key(client, app, bare):
    before = row_counts(app)
    for method, rule, roles in ROLE_TABLE:
        if roles == (OPERATOR,):
            continue
        response = call(client, method, rule, bare, {"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert_problem(response, 401, "unauthorized")
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, rule)
    assert row_counts(app) == before


def test_an_admin_key_cannot_create_programs(client, app, program):
    before = row_counts(app)
    for role in ROLES:
        response = client.post("/v1/programs", json={"name": "Mine", "currency": "EUR"}, headers=program.headers(role))
        assert_problem(response, 401, "unauthorized")
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert row_counts(app) == before


# --------------------------------------------------------------------------- 401


BAD_CREDENTIALS: list[Any] = [
    pytest.param(lambda program: {}, id="missing-header"),
    pytest.param(lambda program: {"Authorization": ""}, id="empty-header"),
    pytest.param(lambda program: {"Authorization": "Bearer"}, id="bearer-without-token"),
    pytest.param(lambda program: {"Authorization": "Bearer   "}, id="bearer-blank-token"),
    pytest.param(lambda program: {"Authorization": f"Basic {program.keys['admin']}"}, id="basic-scheme"),
    pytest.param(lambda program: {"Authorization": f"Token {program.keys['admin']}"}, id="token-scheme"),
    pytest.param(lambda program: {"Authorization": program.keys["admin"]}, id="no-scheme"),
    pytest.param(lambda program: {"Authorization": "Bearer llk_unknownunknownunknownunknownunknownunkno"},
                 id="unknown-key"),
    pytest.param(lambda program: {"Authorization": f"Bearer {program.keys['admin']}x"}, id="key-plus-a-char"),
    pytest.param(lambda program: {"Authorization": f"Bearer {program.keys['admin'][:-1]}"}, id="truncated-key"),
    pytest.param(lambda program: {"X-Api-Key": program.keys["admin"]}, id="other-header"),
]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_bad_credentials_are_401_with_www_authenticate_on_every_route(client, app, world,
                                                                      credentials: Callable[[Any], dict]):
    before = row_counts(app)
    for method, rule, _roles in ROLE_TABLE:
        response = call(client, method, rule, world, credentials(world["program"]))
        assert_problem(response, 401, "unauthorized")
        assert response.headers.get("WWW-Authenticate", "").split(" ")[0] == "Bearer", (method, rule)
    assert row_counts(app) == before


@pytest.mark.parametrize("role", ROLES)
def test_a_revoked_key_is_401_at_once(client, app, world, role):
    program = world["program"]
    admin = program.headers("admin")
    if role == "admin":  # revoke the original admin key with a second admin key
        second = client.post("/v1/api-keys", json={"role": "admin"}, headers=admin).get_json()["key"]
        admin = {"Authorization": f"Bearer {second}"}
    key_id = key_id_of(client, program, role)
    assert client.get("/v1/program", headers=program.headers(role)).status_code == 200
    response = client.delete(f"/v1/api-keys/{key_id}", headers=admin)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["revoked_at"] is not None
    for method, rule, _roles in ROLE_TABLE:
        before = row_counts(app)
        response = call(client, method, rule, world, program.headers(role))
        assert_problem(response, 401, "unauthorized")
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert row_counts(app) == before


# --------------------------------------------------------------------------- tenant isolation


@pytest.fixture
def two_programs(client, make_program, enrol, buy):
    a = make_program(name="Shop A", cashback_rate_bps=200)
    b = make_program(name="Shop B", cashback_rate_bps=500)
    enrol(a, "c-1", email="a@example.com")
    assert buy(a, "A-1", "c-1", 10_000).status_code == 201
    return a, b


@pytest.mark.parametrize("role", ROLES)
def test_another_programs_customer_and_purchase_are_not_found(client, two_programs, role):
    a, b = two_programs
    for suffix in ("", "/balances", "/activity"):
        assert client.get(f"/v1/customers/c-1{suffix}", headers=a.headers(role)).status_code == 200
        response = client.get(f"/v1/customers/c-1{suffix}", headers=b.headers(role))
        body = assert_problem(response, 404, "customer_not_found")
        assert "a@example.com" not in json.dumps(body)
    assert client.get("/v1/purchases/A-1", headers=a.headers(role)).status_code == 200
    assert_problem(client.get("/v1/purchases/A-1", headers=b.headers(role)), 404, "purchase_not_found")


def test_a_purchase_for_another_programs_customer_is_customer_not_found(client, app, two_programs, buy):
    _, b = two_programs
    before = row_counts(app)
    assert_problem(buy(b, "B-1", "c-1", 10_000), 404, "customer_not_found")
    assert row_counts(app) == before


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_another_programs_entries_are_not_listed(client, two_programs, enrol, buy, role):
    a, b = two_programs
    a_entries = client.get("/v1/ledger/entries", headers=a.headers(role)).get_json()["items"]
    assert len(a_entries) == 4
    assert client.get("/v1/ledger/entries", headers=b.headers(role)).get_json() == {
        "items": [], "next_cursor": None, "resume_cursor": None}
    enrol(b, "c-9")
    assert buy(b, "B-1", "c-9", 10_000).status_code == 201
    b_entries = client.get("/v1/ledger/entries", headers=b.headers(role)).get_json()["items"]
    assert len(b_entries) == 4
    assert {e["seq"] for e in a_entries}.isdisjoint(e["seq"] for e in b_entries)
    assert {e["transaction_id"] for e in a_entries}.isdisjoint(e["transaction_id"] for e in b_entries)
    assert all("c-1" not in e["account"] for e in b_entries)
    # a's list did not grow with b's purchase
    assert client.get("/v1/ledger/entries", headers=a.headers(role)).get_json()["items"] == a_entries


def test_another_programs_api_keys_cannot_be_seen_rotated_or_revoked(client, app, two_programs):
    a, b = two_programs
    a_key_ids = {k["id"] for k in client.get("/v1/api-keys", headers=a.headers("admin")).get_json()["items"]}
    b_key_ids = {k["id"] for k in client.get("/v1/api-keys", headers=b.headers("admin")).get_json()["items"]}
    assert a_key_ids.isdisjoint(b_key_ids) and len(a_key_ids) == len(b_key_ids) == 4
    a_storefront = key_id_of(client, a, "storefront")
    before = row_counts(app)
    assert_problem(client.post(f"/v1/api-keys/{a_storefront}/rotate", headers=b.headers("admin")),
                   404, "api_key_not_found")
    assert_problem(client.delete(f"/v1/api-keys/{a_storefront}", headers=b.headers("admin")),
                   404, "api_key_not_found")
    assert row_counts(app) == before
    # a's key still works and is neither revoked nor replaced
    assert client.get("/v1/customers/c-1", headers=a.headers("storefront")).status_code == 200
    [key] = [k for k in client.get("/v1/api-keys", headers=a.headers("admin")).get_json()["items"]
             if k["id"] == a_storefront]
    assert key["revoked_at"] is None and key["replaced_by"] is None


def test_each_key_sees_its_own_program(client, two_programs):
    a, b = two_programs
    for role in ROLES:
        assert client.get("/v1/program", headers=a.headers(role)).get_json()["id"] == a.id
        assert client.get("/v1/program", headers=b.headers(role)).get_json()["id"] == b.id
    client.patch("/v1/program", json={"points_per_unit": 7}, headers=b.headers("admin"))
    assert client.get("/v1/program", headers=a.headers("app")).get_json()["points_per_unit"] == 1
    assert client.get("/v1/program/changes", headers=a.headers("admin")).get_json()["items"] == []


def test_same_customer_and_order_ids_live_independently_in_two_programs(client, two_programs, enrol, buy, verify):
    a, b = two_programs
    enrolled = client.put("/v1/customers/c-1", json={"email": "b@example.com"}, headers=b.headers("storefront"))
    assert enrolled.status_code == 201  # enrolled in b, not an update of a's c-1
    response = buy(b, "A-1", "c-1", 20_000)  # same order id, other body: not a duplicate in b
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    assert response.get_json()["cashback_earned"] == 1_000  # b's 5%
    a_customer = client.get("/v1/customers/c-1", headers=a.headers("app")).get_json()
    b_customer = client.get("/v1/customers/c-1", headers=b.headers("app")).get_json()
    assert a_customer["email"] == "a@example.com" and b_customer["email"] == "b@example.com"
    assert a_customer["balances"]["points"]["available"] == 100
    assert a_customer["balances"]["cashback"]["pending"] == 200
    assert b_customer["balances"]["points"]["available"] == 200
    assert b_customer["balances"]["cashback"]["pending"] == 1_000
    assert client.get("/v1/purchases/A-1", headers=a.headers("app")).get_json()["amount"] == 10_000
    assert client.get("/v1/purchases/A-1", headers=b.headers("app")).get_json()["amount"] == 20_000
    a_activity = client.get("/v1/customers/c-1/activity", headers=a.headers("app")).get_json()["items"]
    b_activity = client.get("/v1/customers/c-1/activity", headers=b.headers("app")).get_json()["items"]
    assert len(a_activity) == len(b_activity) == 1
    assert a_activity[0]["transaction_id"] != b_activity[0]["transaction_id"]
    # a replay in a is still a replay of a's answer
    again = buy(a, "A-1", "c-1", 10_000)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["cashback_earned"] == 200
    verify()
