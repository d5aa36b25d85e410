"""Every replay rule of ARCHITECTURE.md §2: natural keys, the Idempotency-Key header, what is
stored and what is not, fingerprints over canonical JSON, and the calls that show secrets once."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.helpers import assert_problem, row_counts

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def assert_replay_of(replay: Any, first: Any) -> None:
    """Same status, same body byte for byte, same media type, flagged as a replay."""
    assert replay.status_code == first.status_code, (replay.status_code, replay.get_data(as_text=True))
    assert replay.data == first.data
    assert replay.mimetype == first.mimetype
    assert replay.headers.get("Idempotent-Replayed") == "true"


def assert_fresh(response: Any) -> None:
    assert "Idempotent-Replayed" not in response.headers


def purchase(order_id: str = "A-1", customer_id: str = "c-1", amount: int = 5_000, **extra: Any) -> dict:
    return {"order_id": order_id, "customer_id": customer_id, "amount": amount, "currency": "EUR", **extra}


@pytest.fixture
def shop(program, enrol):
    enrol(program, "c-1")
    return program


def post(client: Any, shop: Any, body: Any, key: str | None = None, role: str = "storefront",
         path: str = "/v1/purchases") -> Any:
    headers = shop.headers(role, **({"Idempotency-Key": key} if key is not None else {}))
    return client.post(path, json=body, headers=headers)


def post_raw(client: Any, shop: Any, raw: bytes, key: str | None = None) -> Any:
    headers = shop.headers("storefront", **({"Idempotency-Key": key} if key is not None else {}))
    return client.post("/v1/purchases", data=raw, content_type="application/json", headers=headers)


# --------------------------------------------------------------------------- replays


def test_replay_by_natural_key_returns_the_first_answer_and_writes_nothing(client, app, shop, verify):
    first = post(client, shop, purchase())
    assert first.status_code == 201
    assert_fresh(first)
    before, entries = row_counts(app), verify().entries
    for _ in range(3):
        assert_replay_of(post(client, shop, purchase()), first)
    assert row_counts(app) == before
    assert verify().entries == entries == 4


def test_replay_by_idempotency_key_returns_the_first_answer_and_writes_nothing(client, app, shop, verify):
    first = post(client, shop, purchase(), key="k-1")
    assert first.status_code == 201
    assert_fresh(first)
    before = row_counts(app)
    assert_replay_of(post(client, shop, purchase(), key="k-1"), first)
    # the natural key answers the same, with or without a (new) Idempotency-Key
    assert_replay_of(post(client, shop, purchase()), first)
    assert_replay_of(post(client, shop, purchase(), key="k-2"), first)
    assert row_counts(app) == before
    assert verify().entries == 4


def test_a_replay_is_the_first_answer_even_after_state_and_settings_change(client, app, shop, clock, verify):
    first = post(client, shop, purchase(), key="k-1")
    assert first.status_code == 201
    assert post(client, shop, purchase(order_id="A-2", amount=7_000)).status_code == 201
    assert client.patch("/v1/program", json={"points_per_unit": 50}, headers=shop.headers("admin")).status_code == 200
    clock.advance(hours=24)  # keys are kept at least 24 hours
    before = row_counts(app)
    assert_replay_of(post(client, shop, purchase(), key="k-1"), first)
    assert_replay_of(post(client, shop, purchase()), first)
    assert row_counts(app) == before
    verify()


def test_same_idempotency_key_with_another_body_is_reused(client, app, shop, verify):
    assert post(client, shop, purchase(), key="k-1").status_code == 201
    before = row_counts(app)
    for other in (purchase(order_id="A-2"), purchase(amount=5_001), purchase(channel="web")):
        assert_problem(post(client, shop, other, key="k-1"), 422, "idempotency_key_reused")
    assert row_counts(app) == before
    assert client.get("/v1/purchases/A-2", headers=shop.headers("app")).status_code == 404
    assert verify().entries == 4


def test_a_default_sent_explicitly_is_another_body(client, app, shop):
    """The fingerprint is over the body as sent, before defaults are applied."""
    assert post(client, shop, purchase(), key="k-1").status_code == 201
    before = row_counts(app)
    assert_problem(post(client, shop, purchase(tax=0), key="k-1"), 422, "idempotency_key_reused")
    assert_problem(post(client, shop, purchase(tax=0)), 409, "duplicate_order")
    assert row_counts(app) == before


def test_same_idempotency_key_on_another_path_is_reused(client, app, shop):
    assert post(client, shop, purchase(), key="k-1").status_code == 201
    keys_before = client.get("/v1/api-keys", headers=shop.headers("admin")).get_json()["items"]
    before = row_counts(app)
    response = post(client, shop, {"role": "app"}, key="k-1", role="admin", path="/v1/api-keys")
    assert_problem(response, 422, "idempotency_key_reused")
    assert "key" not in response.get_json()
    storefront_id = next(k["id"] for k in keys_before if k["role"] == "storefront")
    response = post(client, shop, None, key="k-1", role="admin", path=f"/v1/api-keys/{storefront_id}/rotate")
    assert_problem(response, 422, "idempotency_key_reused")
    assert row_counts(app) == before
    assert client.get("/v1/api-keys", headers=shop.headers("admin")).get_json()["items"] == keys_before
    assert client.get("/v1/customers/c-1", headers=shop.headers("storefront")).status_code == 200


def test_same_order_id_with_another_body_is_a_duplicate_order(client, app, shop, verify):
    first = post(client, shop, purchase())
    assert first.status_code == 201
    before = row_counts(app)
    for other in (purchase(amount=6_000), purchase(occurred_at="2026-11-26T11:00:00Z"), purchase(channel="pos")):
        body = assert_problem(post(client, shop, other), 409, "duplicate_order")
        assert "A-1" in body["detail"]
    assert row_counts(app) == before
    assert client.get("/v1/purchases/A-1", headers=shop.headers("app")).get_json()["amount"] == 5_000
    assert_replay_of(post(client, shop, purchase()), first)
    assert verify().entries == 4


def test_duplicate_order_under_a_new_idempotency_key_books_nothing(client, app, shop, verify):
    assert post(client, shop, purchase()).status_code == 201
    entries = verify().entries
    first = post(client, shop, purchase(amount=6_000), key="k-9")
    assert_problem(first, 409, "duplicate_order")
    # a business answer under a key is stored: the same key and body replay it
    assert_replay_of(post(client, shop, purchase(amount=6_000), key="k-9"), first)
    assert verify().entries == entries
    assert client.get("/v1/purchases/A-1", headers=shop.headers("app")).get_json()["amount"] == 5_000


def test_business_failure_under_a_key_is_stored_and_replayed(client, app, program, enrol, verify):
    body = purchase(customer_id="c-late")
    first = post(client, program, body, key="k-1")
    assert_problem(first, 404, "customer_not_found")
    assert_fresh(first)
    enrol(program, "c-late")
    before = row_counts(app)
    replay = post(client, program, body, key="k-1")
    assert_replay_of(replay, first)
    assert_problem(replay, 404, "customer_not_found")
    assert row_counts(app) == before
    assert verify().entries == 0
    # the client fixes the state and retries with a new key: that one books, and the natural
    # key was not claimed by the failure
    fresh = post(client, program, body, key="k-2")
    assert fresh.status_code == 201, fresh.get_data(as_text=True)
    assert_fresh(fresh)
    assert verify().entries == 4
    # the old key still answers its stored failure; the natural key replays the success
    assert_replay_of(post(client, program, body, key="k-1"), first)
    assert_replay_of(post(client, program, body), fresh)
    assert verify().entries == 4


def test_currency_mismatch_under_a_key_is_stored_and_replayed(client, app, shop, verify):
    body = purchase(currency="USD")
    first = post(client, shop, body, key="k-1")
    assert_problem(first, 422, "currency_mismatch")
    before = row_counts(app)
    assert_replay_of(post(client, shop, body, key="k-1"), first)
    assert row_counts(app) == before
    assert verify().entries == 0


def test_business_failure_without_a_key_is_not_stored(client, app, program, enrol, verify):
    body = purchase(customer_id="c-late")
    before = row_counts(app)
    first = post(client, program, body)
    assert_problem(first, 404, "customer_not_found")
    assert row_counts(app) == before  # neither an answer nor the natural key was stored
    again = post(client, program, body)
    assert_problem(again, 404, "customer_not_found")
    assert_fresh(again)
    enrol(program, "c-late")
    response = post(client, program, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert_fresh(response)
    assert verify().entries == 4


@pytest.mark.parametrize("invalid", [
    pytest.param({"amount": "5000"}, id="string-amount"),
    pytest.param({"amount": 0}, id="zero-amount"),
    pytest.param({"occurred_at": "2026-11-26T10:00:00"}, id="naive-time"),
    pytest.param({"coupon": "X"}, id="unknown-field"),
])
def test_validation_failures_are_never_stored(client, app, shop, verify, invalid):
    before = row_counts(app)
    bad = post(client, shop, purchase(**invalid), key="k-1")
    assert_problem(bad, 422, "validation_error")
    assert_fresh(bad)
    assert row_counts(app) == before
    good = post(client, shop, purchase(), key="k-1")
    assert good.status_code == 201, good.get_data(as_text=True)
    assert_fresh(good)
    # and after the key is taken, an invalid body is still a validation error, not a reuse
    assert_problem(post(client, shop, purchase(**invalid), key="k-1"), 422, "validation_error")
    assert verify().entries == 4


def test_malformed_json_under_a_key_is_not_stored(client, app, shop):
    before = row_counts(app)
    assert_problem(post_raw(client, shop, b'{"order_id": ', key="k-1"), 400, "malformed_json")
    assert row_counts(app) == before
    assert post(client, shop, purchase(), key="k-1").status_code == 201


def test_idempotency_keys_are_scoped_to_the_program(client, make_program, enrol, verify):
    a = make_program(name="A")
    b = make_program(name="B")
    enrol(a, "c-1")
    enrol(b, "c-2")
    first_a = post(client, a, purchase(order_id="A-1", customer_id="c-1"), key="shared")
    first_b = post(client, b, purchase(order_id="B-7", customer_id="c-2", amount=9_000), key="shared")
    assert first_a.status_code == first_b.status_code == 201
    assert_fresh(first_b)
    assert first_b.get_json()["order_id"] == "B-7"
    assert_replay_of(post(client, a, purchase(order_id="A-1", customer_id="c-1"), key="shared"), first_a)
    assert_replay_of(post(client, b, purchase(order_id="B-7", customer_id="c-2", amount=9_000), key="shared"), first_b)
    assert verify().entries == 4  # points only (no cashback rate): 2 entries per purchase


def test_canonical_json_key_order_and_whitespace_is_a_replay(client, app, shop, verify):
    body = purchase(lines=[{"sku": "S-1", "quantity": 2, "unit_price": 2_500}], channel="web")
    compact = json.dumps(body, separators=(",", ":")).encode()
    first = post_raw(client, shop, compact, key="k-1")
    assert first.status_code == 201, first.get_data(as_text=True)
    before = row_counts(app)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4).encode()
    reordered_lines = (b'{\n "lines" : [ {"unit_price":2500 , "sku":"S-1","quantity":2} ],\n'
                       b' "channel":"w\\u0065b", "currency":"EUR","amount":5000,\t"customer_id":"c-1",'
                       b'"order_id":"A-1"}\n')
    for raw in (reordered, reordered_lines):
        assert_replay_of(post_raw(client, shop, raw, key="k-1"), first)  # by Idempotency-Key
        assert_replay_of(post_raw(client, shop, raw), first)  # by natural key
    assert row_counts(app) == before
    assert verify().entries == 4


def test_idempotency_key_longer_than_255_characters_is_refused(client, app, shop):
    before = row_counts(app)
    response = post(client, shop, purchase(), key="k" * 256)
    body = assert_problem(response, 422, "validation_error")
    assert any(e["field"].lower() == "idempotency-key" for e in body["errors"]), body
    assert row_counts(app) == before
    assert client.get("/v1/purchases/A-1", headers=shop.headers("app")).status_code == 404
    first = post(client, shop, purchase(), key="k" * 255)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert_replay_of(post(client, shop, purchase(), key="k" * 255), first)


def test_a_too_long_idempotency_key_is_refused_on_program_creation(client, app):
    before = row_counts(app)
    response = client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"},
                           headers={**OPERATOR, "Idempotency-Key": "p" * 256})
    assert_problem(response, 422, "validation_error")
    assert row_counts(app) == before


# --------------------------------------------------------------------------- secrets are shown once


def test_program_creation_repeated_with_one_key_is_program_already_created(client, app):
    headers = {**OPERATOR, "Idempotency-Key": "create-shop-1"}
    first = client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"}, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    program_id = first.get_json()["id"]
    before = row_counts(app)
    for _ in range(2):
        again = client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"}, headers=headers)
        body = assert_problem(again, 409, "program_already_created")
        assert body["program_id"] == program_id
        assert "api_keys" not in body
        for secret in first.get_json()["api_keys"].values():
            assert secret not in again.get_data(as_text=True)
    assert row_counts(app) == before
    # another key creates another program
    other = client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"},
                        headers={**OPERATOR, "Idempotency-Key": "create-shop-2"})
    assert other.status_code == 201 and other.get_json()["id"] != program_id


def test_program_creation_with_a_used_key_and_another_body_creates_nothing(client, app):
    headers = {**OPERATOR, "Idempotency-Key": "create-shop-1"}
    assert client.post("/v1/programs", json={"name": "Shop", "currency": "EUR"}, headers=headers).status_code == 201
    before = row_counts(app)
    response = client.post("/v1/programs", json={"name": "Other", "currency": "JPY"}, headers=headers)
    # either the key's program is named (409) or the key is reported reused (422): never a second program
    assert response.status_code in (409, 422), response.get_data(as_text=True)
    assert_problem(response, response.status_code,
                   "program_already_created" if response.status_code == 409 else "idempotency_key_reused")
    assert row_counts(app) == before


def test_program_creation_without_a_key_is_not_deduplicated(client, app):
    body = {"name": "Shop", "currency": "EUR"}
    first = client.post("/v1/programs", json=body, headers=OPERATOR)
    second = client.post("/v1/programs", json=body, headers=OPERATOR)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]


def test_api_key_creation_repeated_with_one_key_is_api_key_already_created(client, app, program):
    admin = program.headers("admin", **{"Idempotency-Key": "new-kiosk-key"})
    first = client.post("/v1/api-keys", json={"role": "app", "name": "kiosk"}, headers=admin)
    assert first.status_code == 201, first.get_data(as_text=True)
    created = first.get_json()
    assert created["key"] and created["role"] == "app"
    before = row_counts(app)
    for _ in range(2):
        again = client.post("/v1/api-keys", json={"role": "app", "name": "kiosk"}, headers=admin)
        body = assert_problem(again, 409, "api_key_already_created")
        assert body["key_id"] == created["id"]
        assert created["key"] not in again.get_data(as_text=True)
    assert row_counts(app) == before
    listed = client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]
    assert [k["id"] for k in listed if k["name"] == "kiosk"] == [created["id"]]
    assert len(listed) == 5
    assert all("key" not in k for k in listed)
    # with the same key and another body: a reuse, and still one kiosk key
    other = client.post("/v1/api-keys", json={"role": "finance", "name": "kiosk"}, headers=admin)
    assert_problem(other, 422, "idempotency_key_reused")
    assert len(client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]) == 5


def test_api_key_rotation_repeated_with_one_key_rotates_once(client, app, program):
    listed = client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]
    app_key_id = next(k["id"] for k in listed if k["role"] == "app")
    admin = program.headers("admin", **{"Idempotency-Key": "rotate-app-1"})
    first = client.post(f"/v1/api-keys/{app_key_id}/rotate", headers=admin)
    assert first.status_code == 201, first.get_data(as_text=True)
    new = first.get_json()
    before = row_counts(app)
    again = client.post(f"/v1/api-keys/{app_key_id}/rotate", headers=admin)
    body = assert_problem(again, 409, "api_key_already_created")
    assert body["key_id"] == new["id"]
    assert new["key"] not in again.get_data(as_text=True)
    assert row_counts(app) == before
    # the rotated key works; only one replacement exists
    assert client.get("/v1/program", headers={"Authorization": f"Bearer {new['key']}"}).status_code == 200
    listed = client.get("/v1/api-keys", headers=program.headers("admin")).get_json()["items"]
    assert len(listed) == 5
    assert [k["replaced_by"] for k in listed if k["id"] == app_key_id] == [new["id"]]


def test_a_retry_answers_as_first_even_when_the_request_would_now_be_refused(client, program, enrol, buy) -> None:
    """The order id's claim goes to the database with the customer's lock (PostgreSQL), after the
    purchase's checks in Python have started: a retry of an order that was booked still replays its
    answer once the customer is closed, rather than the refusal a new order would get."""
    enrol(program, "c-1")
    first = buy(program, "o-1", "c-1", 10_000)
    assert first.status_code == 201
    closed = client.post("/v1/customers/c-1/close", headers=program.headers("admin"))
    assert closed.status_code == 200, closed.get_data(as_text=True)
    retry = buy(program, "o-1", "c-1", 10_000)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    refused = buy(program, "o-2", "c-1", 10_000)
    assert refused.status_code == 422, refused.get_data(as_text=True)
    changed = buy(program, "o-1", "c-1", 20_000)
    assert changed.status_code == 409 and changed.get_json()["code"] == "duplicate_order"


# --------------------------------------------------------------------------- retention


def test_purged_header_keys_are_free_again_and_natural_keys_still_replay(client, app, shop, clock, database_url,
                                                                          verify):
    """`ledger jobs purge-keys` deletes Idempotency-Key records older than N days (never under 1) and
    keeps natural keys: a late retry of a purged key is still answered by its order id, booked once."""
    import subprocess
    import sys
    from pathlib import Path

    from ledger.services.retention import purge_idempotency_keys

    first = post(client, shop, purchase("A-1"), key="K-1")  # day 0
    assert first.status_code == 201
    clock.advance(days=2)
    assert post(client, shop, purchase("A-2"), key="K-2").status_code == 201  # day 2
    clock.advance(days=1, seconds=1)  # K-1 is three days old, K-2 one
    factory = app.extensions["ledger"].uow
    with pytest.raises(ValueError, match="at least 24 hours"):
        purge_idempotency_keys(factory, clock, 0)
    assert purge_idempotency_keys(factory, clock, 2, batch=1) == 1  # one record a batch: the walk by id

    assert_problem(post(client, shop, purchase("A-9"), key="K-2"), 422, "idempotency_key_reused")  # K-2 kept
    assert_replay_of(post(client, shop, purchase("A-1"), key="K-1"), first)  # by the order id, booked once
    fresh = post(client, shop, purchase("A-3"), key="K-1")  # K-1 is free: a new request under it is new
    assert fresh.status_code == 201
    assert_fresh(fresh)
    assert purge_idempotency_keys(factory, clock, 2) == 0

    ledger_cli = str(Path(sys.executable).parent / "ledger")

    def purge(days: str) -> subprocess.CompletedProcess:
        return subprocess.run([ledger_cli, "--database-url", database_url, "jobs", "purge-keys", "--older-than-days",
                               days, "--as-of", (clock.now() + timedelta(days=5)).isoformat()],
                              capture_output=True, text=True, timeout=60)

    refused = purge("0")
    assert refused.returncode != 0 and "at least 24 hours" in refused.stderr
    done = purge("1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"job": "purge-keys", "deleted": 2}  # K-2 and the new K-1
    assert [item["type"] for item in client.get("/v1/customers/c-1/activity", headers=shop.headers("app"))
            .get_json()["items"]].count("purchase_accrual") == 3  # nothing twice
    verify()
