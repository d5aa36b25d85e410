"""Programs and their settings, API keys, customers, list paging, health and the published spec
(issue 2, "The HTTP API (v1)"; ARCHITECTURE.md §3 to §5)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.helpers import assert_problem

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ROLES = ("admin", "storefront", "app", "finance")
SETTINGS = ("name", "currency", "timezone", "points_per_unit", "unit_amount", "cashback_rate_bps",
            "cashback_hold_days", "points_hold_days")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


def keys_of(client: Any, program: Any) -> list[dict]:
    response = client.get("/v1/api-keys", headers=program.headers("admin"))
    assert response.status_code == 200
    return response.get_json()["items"]


def key_named(client: Any, program: Any, role: str) -> dict:
    secret = program.keys[role]
    [key] = [k for k in keys_of(client, program) if k["role"] == role and secret.startswith(k["prefix"])]
    return key


# --------------------------------------------------------------------------- programs


@pytest.mark.parametrize("currency,unit_amount", [("EUR", 100), ("JPY", 1), ("BHD", 1000), ("USD", 100)])
def test_program_creation_answers_every_setting_with_its_default_and_four_keys(client, clock, currency, unit_amount):
    response = client.post("/v1/programs", json={"name": "Shop", "currency": currency}, headers=OPERATOR)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["id"]
    assert {k: data[k] for k in SETTINGS} == {
        "name": "Shop", "currency": currency, "timezone": "UTC", "points_per_unit": 1,
        "unit_amount": unit_amount, "cashback_rate_bps": 0, "cashback_hold_days": 30, "points_hold_days": 0,
    }
    assert instant(data["created_at"]) == clock.now()
    keys = data["api_keys"]
    assert set(keys) == set(ROLES)
    assert len(set(keys.values())) == 4
    assert all(isinstance(k, str) and len(k) >= 43 for k in keys.values())  # 256 bits, encoded
    for role, secret in keys.items():
        program = client.get("/v1/program", headers=bearer(secret))
        assert program.status_code == 200 and program.get_json()["id"] == data["id"]
    # each key carries its own role: only the storefront records purchases, only admin lists keys
    assert client.get("/v1/api-keys", headers=bearer(keys["admin"])).status_code == 200
    for role in ("storefront", "app", "finance"):
        assert client.get("/v1/api-keys", headers=bearer(keys[role])).status_code == 403


def test_program_creation_keeps_every_given_setting(client):
    body = {"name": "Tokyo shop", "currency": "JPY", "timezone": "Asia/Tokyo", "points_per_unit": 3,
            "unit_amount": 100, "cashback_rate_bps": 150, "cashback_hold_days": 14, "points_hold_days": 7}
    response = client.post("/v1/programs", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert {k: data[k] for k in SETTINGS} == body
    assert client.get("/v1/program", headers=bearer(data["api_keys"]["app"])).get_json() == \
        {k: v for k, v in data.items() if k != "api_keys"}


@pytest.mark.parametrize("role", ROLES)
def test_reading_the_program_never_shows_keys(client, program, role):
    response = client.get("/v1/program", headers=program.headers(role))
    assert response.status_code == 200
    data = response.get_json()
    assert "api_keys" not in data and "keys" not in data
    raw = response.get_data(as_text=True)
    for secret in program.keys.values():
        assert secret not in raw
    assert {k: data[k] for k in SETTINGS} == {k: program.body[k] for k in SETTINGS}
    assert data["id"] == program.id


def test_patch_changes_only_the_given_field_and_is_recorded(client, program, clock):
    before = client.get("/v1/program", headers=program.headers("admin")).get_json()
    clock.advance(minutes=5)
    response = client.patch("/v1/program", json={"cashback_rate_bps": 350}, headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    after = response.get_json()
    assert after == {**before, "cashback_rate_bps": 350}
    assert client.get("/v1/program", headers=program.headers("app")).get_json() == after
    [change] = client.get("/v1/program/changes", headers=program.headers("admin")).get_json()["items"]
    admin_key = key_named(client, program, "admin")
    assert admin_key["id"] in change["actor"]
    assert instant(change["changed_at"]) == clock.now()
    assert change["before"]["cashback_rate_bps"] == 200 and change["after"]["cashback_rate_bps"] == 350
    changed = {k for k in set(change["before"]) | set(change["after"])
               if change["before"].get(k) != change["after"].get(k)}
    assert changed == {"cashback_rate_bps"}


def test_patch_null_restores_the_default(client, make_program):
    program = make_program(timezone="Europe/Paris", points_per_unit=5, unit_amount=250, cashback_rate_bps=100,
                           cashback_hold_days=7, points_hold_days=3)
    nulls = {k: None for k in ("timezone", "points_per_unit", "unit_amount", "cashback_rate_bps",
                               "cashback_hold_days", "points_hold_days")}
    response = client.patch("/v1/program", json=nulls, headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert {k: data[k] for k in SETTINGS} == {
        "name": "Test shop", "currency": "EUR", "timezone": "UTC", "points_per_unit": 1, "unit_amount": 100,
        "cashback_rate_bps": 0, "cashback_hold_days": 30, "points_hold_days": 0,
    }


def test_every_patch_is_recorded_newest_first(client, program, clock):
    admin = program.headers("admin")
    for bps in (300, 400):
        clock.advance(minutes=1)
        assert client.patch("/v1/program", json={"cashback_rate_bps": bps}, headers=admin).status_code == 200
    clock.advance(minutes=1)
    assert client.patch("/v1/program", json={"cashback_rate_bps": None}, headers=admin).status_code == 200
    items = client.get("/v1/program/changes", headers=program.headers("finance")).get_json()["items"]
    assert [(c["before"]["cashback_rate_bps"], c["after"]["cashback_rate_bps"]) for c in items] == \
        [(400, 0), (300, 400), (200, 300)]
    times = [instant(c["changed_at"]) for c in items]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3


def test_patch_applies_to_the_next_purchase_only(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    first = buy(program, "A-1", "c-1", 1_234)
    assert first.get_json()["points_earned"] == 12
    # 200 points per euro
    response = client.patch("/v1/program", json={"points_per_unit": 200, "unit_amount": 100},
                            headers=program.headers("admin"))
    assert response.status_code == 200
    second = buy(program, "A-2", "c-1", 1_234)
    assert second.status_code == 201
    assert second.get_json()["points_earned"] == 2_468  # floor(1234 * 200 / 100)
    # the earlier purchase keeps what it earned
    assert client.get("/v1/purchases/A-1", headers=program.headers("app")).get_json()["points_earned"] == 12
    replay = buy(program, "A-1", "c-1", 1_234)
    assert replay.data == first.data
    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["points"]["available"] == 12 + 2_468
    verify()


def test_one_point_per_100_yen(client, make_program, enrol, buy, verify):
    program = make_program(currency="JPY")
    enrol(program, "c-1")
    assert buy(program, "J-1", "c-1", 12_345).get_json()["points_earned"] == 12_345  # 1 point per yen
    response = client.patch("/v1/program", json={"points_per_unit": 1, "unit_amount": 100},
                            headers=program.headers("admin"))
    assert response.status_code == 200 and response.get_json()["unit_amount"] == 100
    assert buy(program, "J-2", "c-1", 12_345).get_json()["points_earned"] == 123
    assert buy(program, "J-3", "c-1", 99).get_json()["points_earned"] == 0
    verify()


def test_patch_with_an_empty_body_changes_nothing(client, program):
    before = client.get("/v1/program", headers=program.headers("admin")).get_json()
    response = client.patch("/v1/program", json={}, headers=program.headers("admin"))
    assert response.status_code == 200
    assert response.get_json() == before
    assert client.get("/v1/program/changes", headers=program.headers("admin")).get_json()["items"] == []


# --------------------------------------------------------------------------- API keys


def test_create_an_api_key_shows_the_secret_once(client, program, clock):
    response = client.post("/v1/api-keys", json={"role": "finance", "name": "auditor"},
                           headers=program.headers("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["role"] == "finance" and created["name"] == "auditor"
    assert created["key"].startswith(created["prefix"])
    assert created["last_used_at"] is None and created["revoked_at"] is None
    assert instant(created["created_at"]) == clock.now()
    listed = client.get("/v1/api-keys", headers=program.headers("admin"))
    raw = listed.get_data(as_text=True)
    assert created["key"] not in raw
    for secret in program.keys.values():
        assert secret not in raw
    items = listed.get_json()["items"]
    assert len(items) == 5 and all("key" not in k for k in items)
    [mine] = [k for k in items if k["id"] == created["id"]]
    assert mine == {k: v for k, v in created.items() if k != "key"}
    # it works with its role and only its role
    assert client.get("/v1/ledger/entries", headers=bearer(created["key"])).status_code == 200
    assert client.get("/v1/api-keys", headers=bearer(created["key"])).status_code == 403


@pytest.mark.parametrize("body,field", [
    ({"role": "operator"}, "role"), ({"role": "root"}, "role"), ({}, "role"), ({"role": None}, "role"),
    ({"role": "app", "secret": "mine"}, "secret"), ({"role": "app", "name": ""}, "name"),
])
def test_create_an_api_key_with_bad_input(client, program, body, field):
    response = client.post("/v1/api-keys", json=body, headers=program.headers("admin"))
    assert_problem(response, 422, "validation_error", field)
    assert len(keys_of(client, program)) == 4


def test_rotate_revokes_the_old_key_at_once_and_keeps_the_role(client, program, enrol, clock):
    old = key_named(client, program, "storefront")
    clock.advance(minutes=3)
    response = client.post(f"/v1/api-keys/{old['id']}/rotate", headers=program.headers("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    new = response.get_json()
    assert new["id"] != old["id"] and new["key"] != program.keys["storefront"]
    assert new["role"] == "storefront" and new["name"] == old["name"]
    # the old key: 401 right away
    refused = client.put("/v1/customers/c-1", json={}, headers=program.headers("storefront"))
    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # the new key: works, as a storefront
    assert client.put("/v1/customers/c-1", json={}, headers=bearer(new["key"])).status_code == 201
    assert client.post("/v1/purchases", json={"order_id": "A-1", "customer_id": "c-1", "amount": 100,
                                              "currency": "EUR"}, headers=bearer(new["key"])).status_code == 201
    assert client.get("/v1/ledger/entries", headers=bearer(new["key"])).status_code == 403
    listed = {k["id"]: k for k in keys_of(client, program)}
    assert instant(listed[old["id"]]["revoked_at"]) == clock.now()
    assert listed[old["id"]]["replaced_by"] == new["id"]
    assert listed[new["id"]]["revoked_at"] is None
    # a revoked key cannot be rotated again
    assert_problem(client.post(f"/v1/api-keys/{old['id']}/rotate", headers=program.headers("admin")),
                   409, "api_key_revoked")
    assert len(keys_of(client, program)) == 5


def test_revoke_a_key(client, program, clock):
    key = key_named(client, program, "finance")
    assert client.get("/v1/ledger/entries", headers=program.headers("finance")).status_code == 200
    response = client.delete(f"/v1/api-keys/{key['id']}", headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    revoked = response.get_json()
    assert revoked["id"] == key["id"] and instant(revoked["revoked_at"]) == clock.now()
    assert "key" not in revoked
    assert_problem(client.get("/v1/ledger/entries", headers=program.headers("finance")), 401, "unauthorized")
    # revoking again answers the same
    clock.advance(minutes=5)
    again = client.delete(f"/v1/api-keys/{key['id']}", headers=program.headers("admin"))
    assert again.status_code == 200 and again.get_json() == revoked
    assert [k["revoked_at"] is not None for k in keys_of(client, program) if k["id"] == key["id"]] == [True]


@pytest.mark.parametrize("method,suffix", [("POST", "/rotate"), ("DELETE", "")])
def test_unknown_key_id_is_not_found(client, program, method, suffix):
    response = client.open(f"/v1/api-keys/key_doesnotexist{suffix}", method=method, headers=program.headers("admin"))
    assert_problem(response, 404, "api_key_not_found")
    assert len(keys_of(client, program)) == 4


def test_last_used_at_is_set_after_use(client, program, clock):
    created = client.post("/v1/api-keys", json={"role": "app"}, headers=program.headers("admin")).get_json()
    assert created["last_used_at"] is None
    [listed] = [k for k in keys_of(client, program) if k["id"] == created["id"]]
    assert listed["last_used_at"] is None
    clock.advance(minutes=10)
    first_use = clock.now()
    assert client.get("/v1/program", headers=bearer(created["key"])).status_code == 200
    [listed] = [k for k in keys_of(client, program) if k["id"] == created["id"]]
    assert instant(listed["last_used_at"]) == first_use
    clock.advance(hours=2)
    assert client.get("/v1/program", headers=bearer(created["key"])).status_code == 200
    [listed] = [k for k in keys_of(client, program) if k["id"] == created["id"]]
    assert first_use < instant(listed["last_used_at"]) <= clock.now()
    assert instant(listed["last_used_at"]) >= clock.now() - timedelta(minutes=1)
    # the admin key that lists is itself marked used
    admin = key_named(client, program, "admin")
    assert admin["last_used_at"] is not None


# --------------------------------------------------------------------------- customers

EMPTY_BALANCES = {"currency": "EUR", "points": {"available": 0, "pending": 0, "reserved": 0},
                  "cashback": {"available": 0, "pending": 0, "reserved": 0}}


def put(client: Any, program: Any, customer_id: str, body: Any, role: str = "storefront") -> Any:
    return client.put(f"/v1/customers/{customer_id}", json=body, headers=program.headers(role))


def test_put_enrols_with_201_then_updates_with_200(client, program, clock):
    profile = {"email": "ana@example.com", "phone": "+33 6 12 34 56 78", "name": "Ana Lima",
               "display_name": "Ana", "birthday": "1990-04-30", "leaderboard_opt_in": True}
    response = put(client, program, "c-1", profile)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert {k: data[k] for k in profile} == profile
    assert data["customer_id"] == "c-1"
    assert data["balances"] == EMPTY_BALANCES
    assert instant(data["created_at"]) == clock.now()
    clock.advance(minutes=1)
    response = put(client, program, "c-1", {"display_name": "Ana L."}, role="admin")
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    assert updated == {**data, "display_name": "Ana L.", "updated_at": updated["updated_at"]}
    assert instant(updated["updated_at"]) == clock.now()
    assert instant(updated["created_at"]) == instant(data["created_at"])
    assert client.get("/v1/customers/c-1", headers=program.headers("app")).get_json() == updated


def test_put_omitted_fields_stay_and_null_clears(client, program):
    put(client, program, "c-1", {"email": "ana@example.com", "name": "Ana", "phone": "+351 912 345 678",
                                 "leaderboard_opt_in": True})
    response = put(client, program, "c-1", {"name": None, "phone": None})
    assert response.status_code == 200
    data = response.get_json()
    assert data["email"] == "ana@example.com" and data["leaderboard_opt_in"] is True
    assert data["name"] is None and data["phone"] is None
    response = put(client, program, "c-1", {})
    assert response.status_code == 200
    assert response.get_json()["email"] == "ana@example.com"


def test_put_with_no_profile_enrols_an_empty_customer(client, program):
    response = client.put("/v1/customers/c-2", headers=program.headers("storefront"))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["email"] is None and data["name"] is None and data["balances"] == EMPTY_BALANCES


@pytest.mark.parametrize("body,field", [
    ({"email": "not-an-email"}, "email"),
    ({"email": "ana@"}, "email"),
    ({"email": 42}, "email"),
    ({"birthday": "30/04/1990"}, "birthday"),
    ({"birthday": "1990-02-30"}, "birthday"),
    ({"leaderboard_opt_in": "yes"}, "leaderboard_opt_in"),
    ({"leaderboard_opt_in": 1}, "leaderboard_opt_in"),
    ({"name": ""}, "name"),
    ({"phone": "call me"}, "phone"),
    ({"tier": "gold"}, "tier"),
    ({"customer_id": "c-9"}, "customer_id"),
])
def test_put_with_bad_input_is_refused(client, program, body, field):
    assert put(client, program, "c-1", {"email": "ana@example.com"}).status_code == 201
    before = client.get("/v1/customers/c-1", headers=program.headers("app")).get_json()
    assert_problem(put(client, program, "c-1", body), 422, "validation_error", field)
    assert_problem(put(client, program, "c-2", body), 422, "validation_error", field)
    assert client.get("/v1/customers/c-1", headers=program.headers("app")).get_json() == before
    assert_problem(client.get("/v1/customers/c-2", headers=program.headers("app")), 404, "customer_not_found")


def test_get_customer_shows_profile_and_balances(client, program, enrol, buy):
    enrol(program, "c-1", email="ana@example.com")
    buy(program, "A-1", "c-1", 10_000)
    data = client.get("/v1/customers/c-1", headers=program.headers("finance")).get_json()
    assert data["email"] == "ana@example.com"
    assert data["balances"] == {"currency": "EUR", "points": {"available": 100, "pending": 0, "reserved": 0},
                                "cashback": {"available": 0, "pending": 200, "reserved": 0}}
    assert data["balances"] == client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()


@pytest.mark.parametrize("suffix", ["", "/balances", "/activity"])
def test_unknown_customer_is_404(client, program, suffix):
    response = client.get(f"/v1/customers/nobody{suffix}", headers=program.headers("app"))
    assert_problem(response, 404, "customer_not_found")


def test_unknown_purchase_is_404(client, program):
    response = client.get("/v1/purchases/nothing", headers=program.headers("app"))
    assert_problem(response, 404, "purchase_not_found")


# --------------------------------------------------------------------------- paging


@pytest.fixture
def five_purchases(client, program, enrol, buy, clock):
    enrol(program, "c-1")
    for n in range(1, 6):
        clock.advance(minutes=1)
        assert buy(program, f"A-{n}", "c-1", 1_000 * n).status_code == 201
    return program


def pages(client: Any, url: str, headers: dict, limit: int) -> list[dict]:
    out, cursor, seen_cursors = [], None, set()
    for _ in range(100):
        sep = "&" if "?" in url else "?"
        page_url = f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(page_url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert set(page) >= {"items", "next_cursor"}
        out.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert page["items"], "a page that promises more must not be empty"
        assert cursor not in seen_cursors
        seen_cursors.add(cursor)
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("limit,sizes", [(2, [2, 2, 1]), (1, [1, 1, 1, 1, 1]), (5, [5]), (500, [5]), (3, [3, 2])])
def test_activity_pages_newest_first_without_gaps(client, five_purchases, limit, sizes):
    program = five_purchases
    result = pages(client, "/v1/customers/c-1/activity", program.headers("app"), limit)
    assert [len(p["items"]) for p in result] == sizes
    items = [item for page in result for item in page["items"]]
    assert [i["reference"] for i in items] == [{"kind": "order", "id": f"A-{n}"} for n in (5, 4, 3, 2, 1)]
    assert len({i["transaction_id"] for i in items}) == 5
    times = [instant(i["recorded_at"]) for i in items]
    assert times == sorted(times, reverse=True)
    assert items[0]["type"] == "purchase_accrual"
    assert items[0]["points"] == {"available": 50, "pending": 0, "reserved": 0}
    assert items[0]["cashback"] == {"available": 0, "pending": 100, "reserved": 0}
    assert all(isinstance(i["description"], str) and i["description"] for i in items)
    whole = client.get("/v1/customers/c-1/activity", headers=program.headers("app")).get_json()
    assert {k: whole[k] for k in ("items", "next_cursor")} == {"items": items, "next_cursor": None}


def test_activity_page_boundary_ends_with_a_null_cursor(client, program, enrol, buy):
    enrol(program, "c-1")
    for n in range(4):
        buy(program, f"A-{n}", "c-1", 1_000)
    result = pages(client, "/v1/customers/c-1/activity", program.headers("app"), 2)
    assert [len(p["items"]) for p in result] == [2, 2]


@pytest.mark.parametrize("limit,sizes", [(3, [3] * 6 + [2]), (7, [7, 7, 6]), (20, [20]), (1, [1] * 20)])
def test_entries_page_in_seq_order_without_gaps(client, five_purchases, limit, sizes):
    program = five_purchases
    result = pages(client, "/v1/ledger/entries", program.headers("finance"), limit)
    assert [len(p["items"]) for p in result] == sizes
    items = [item for page in result for item in page["items"]]
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    whole = client.get("/v1/ledger/entries?limit=500", headers=program.headers("admin")).get_json()
    assert {k: whole[k] for k in ("items", "next_cursor")} == {"items": items, "next_cursor": None}
    assert sum(i["amount"] for i in items) == 0
    for item in items:
        assert {"seq", "transaction_id", "account", "asset", "amount", "recorded_at"} <= set(item)
        instant(item["recorded_at"])


def _tampered(cursor: str) -> list[str]:
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    def enc(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    return [
        "not a cursor", "!!!!", "e30", flipped[:-5], enc({**raw, "f": "0" * 16}), enc({**raw, "k": "1"}),
        enc({"k": raw.get("k")}), enc([1, 2]), enc("x"), enc({**raw, "k": True}), "x" * 600,
    ]


@pytest.mark.parametrize("url,role", [("/v1/customers/c-1/activity", "app"), ("/v1/ledger/entries", "finance")])
def test_a_tampered_cursor_is_400_invalid_cursor(client, five_purchases, url, role):
    program = five_purchases
    cursor = client.get(f"{url}?limit=2", headers=program.headers(role)).get_json()["next_cursor"]
    assert cursor
    for bad in _tampered(cursor):
        response = client.get(url, query_string={"limit": 2, "cursor": bad}, headers=program.headers(role))
        assert response.status_code in (400, 422), (bad, response.get_data(as_text=True))
        if len(bad) <= 500:  # a cursor beyond the documented length may be refused as a validation error
            assert_problem(response, 400, "invalid_cursor")


def test_a_cursor_made_for_other_filters_is_invalid(client, five_purchases, enrol, buy):
    program = five_purchases
    enrol(program, "c-2")
    for n in range(3):
        buy(program, f"B-{n}", "c-2", 1_000)
    activity_cursor = client.get("/v1/customers/c-1/activity?limit=2",
                                 headers=program.headers("app")).get_json()["next_cursor"]
    entries_cursor = client.get("/v1/ledger/entries?limit=2",
                                headers=program.headers("finance")).get_json()["next_cursor"]
    response = client.get("/v1/customers/c-2/activity", query_string={"cursor": activity_cursor},
                          headers=program.headers("app"))
    assert_problem(response, 400, "invalid_cursor")
    response = client.get("/v1/customers/c-1/activity", query_string={"cursor": entries_cursor},
                          headers=program.headers("app"))
    assert_problem(response, 400, "invalid_cursor")


@pytest.mark.parametrize("url,role", [("/v1/customers/c-1/activity", "app"), ("/v1/ledger/entries", "finance")])
@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "2.5", ""])
def test_limit_out_of_range_is_422(client, five_purchases, url, role, limit):
    response = client.get(url, query_string={"limit": limit}, headers=five_purchases.headers(role))
    assert_problem(response, 422, "validation_error", "limit")


def test_default_limit_is_50(client, program, enrol, buy):
    enrol(program, "c-1")
    for n in range(13):  # 13 purchases * 4 entries = 52 entries
        buy(program, f"A-{n}", "c-1", 1_000)
    page = client.get("/v1/ledger/entries", headers=program.headers("finance")).get_json()
    assert len(page["items"]) == 50 and page["next_cursor"] is not None
    rest = client.get("/v1/ledger/entries", query_string={"cursor": page["next_cursor"]},
                      headers=program.headers("finance")).get_json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None


# --------------------------------------------------------------------------- health and spec


def test_healthz_and_readyz(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["status"] in ("ok", "ready")


def test_openapi_yaml_and_docs_are_served(client):
    import yaml

    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.get_data(as_text=True))
    assert spec["openapi"].startswith("3.")
    assert "/v1/purchases" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.get_data(as_text=True).lower()


def test_unknown_route_and_method_are_problems(client, program):
    assert_problem(client.get("/v1/nothing-here", headers=program.headers("admin")), 404, "not_found")
    response = client.delete("/v1/program", headers=program.headers("admin"))
    assert response.status_code == 405 and response.mimetype == "application/problem+json"
