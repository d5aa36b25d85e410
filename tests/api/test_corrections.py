"""Corrections by finance and the end of a membership: adjustments (with a second approver above a
threshold), reversals, closure and erasure.

Bookings (ARCHITECTURE.md §1; signs: > 0 arrives in the account):
- adjustment: `house/points/issued/adjustment/{code}` or `house/cashback/funding/adjustment/{code}`
  opposite the customer's `available`;
- reversal: the exact mirror of the original, into the buckets where the value sits now;
- closure: open holds voided, every point forfeited (Cr `house/points/forfeited`), a negative
  balance written off (Dr `written_off`), cashback owed (or forfeited with forfeit_cashback_on_close).

Default program (conftest `program`): 1 point per euro, available at once; 2% cashback pending 30
days; one point is worth one cent. Every test ends with `verify()`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from ledger.services.releases import run_jobs
from tests.helpers import account_total, assert_problem, ledger_entries, row_counts

UTC = timezone.utc


# --------------------------------------------------------------------------- helpers


def _ok(response: Any, status: int = 201) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def _adjust(client: Any, program: Any, adjustment_id: str, customer_id: str, asset: str, amount: int,
            reason: str | None = "goodwill gesture", headers: dict[str, str] | None = None, role: str = "finance",
            **extra: Any) -> Any:
    body: dict[str, Any] = {"adjustment_id": adjustment_id, "customer_id": customer_id, "asset": asset,
                            "amount": amount, **extra}
    if reason is not None:
        body["reason"] = reason
    return client.post("/v1/adjustments", json=body, headers={**program.headers(role), **(headers or {})})


def _reverse(client: Any, program: Any, transaction_id: str, reason: str = "booked in error",
             role: str = "finance", headers: dict[str, str] | None = None) -> Any:
    return client.post(f"/v1/transactions/{transaction_id}/reverse", json={"reason": reason},
                       headers={**program.headers(role), **(headers or {})})


def _tx(client: Any, program: Any, transaction_id: str) -> dict:
    return _ok(client.get(f"/v1/transactions/{transaction_id}", headers=program.headers("finance")), 200)


def _legs(tx: dict) -> dict[str, int]:
    """A transaction's entries (from GET /v1/transactions/{id}) summed per account."""
    legs: dict[str, int] = {}
    for e in tx["entries"]:
        legs[e["account"]] = legs.get(e["account"], 0) + e["amount"]
    return legs


def _balances(client: Any, program: Any, customer_id: str) -> dict:
    return _ok(client.get(f"/v1/customers/{customer_id}/balances", headers=program.headers("app")), 200)


def _b(available: int, pending: int = 0, reserved: int = 0) -> dict[str, int]:
    return {"available": available, "pending": pending, "reserved": reserved}


def _tx_ids(client: Any, program: Any, type_: str, reference_id: str | None = None) -> list[str]:
    """Ids of the transactions of a type (and reference), in booking order."""
    ids: list[str] = []
    for e in ledger_entries(client, program):
        if e["transaction_type"] == type_ and (reference_id is None or e["reference_id"] == reference_id):
            if e["transaction_id"] not in ids:
                ids.append(e["transaction_id"])
    return ids


def _reversed(client: Any, program: Any, original_id: str, response: Any, reason: str,
              legs: dict[str, int]) -> dict:
    """Check a 201 reversal: its legs, its links both ways, its reason in the description, and that
    the answer's entries are the transaction's. Returns the answer."""
    rev = _ok(response)
    assert rev["reverses"] == original_id and rev["reason"] == reason
    rtx = _tx(client, program, rev["transaction_id"])
    assert _legs(rtx) == legs
    assert [(e["account"], e["amount"]) for e in rev["entries"]] == \
        [(e["account"], e["amount"]) for e in rtx["entries"]]
    assert rtx["type"] == "reversal" and rtx["reference"] == {"kind": "transaction", "id": original_id}
    assert rtx["reverses"] == original_id and rtx["reversed_by"] is None
    assert rtx["reason"] == reason and reason in rtx["description"]
    original = _tx(client, program, original_id)
    assert original["reversed_by"] == rev["transaction_id"] and original["reverses"] is None
    assert original["description"] in rtx["description"]
    return rev


def _hold(client: Any, program: Any, redemption_id: str, customer_id: str, amount: int, asset: str = "points",
          **extra: Any) -> dict:
    body = {"redemption_id": redemption_id, "customer_id": customer_id, "asset": asset, "amount": amount, **extra}
    return _ok(client.post("/v1/redemptions", json=body, headers=program.headers("storefront")))


def _capture(client: Any, program: Any, redemption_id: str, amount: int | None = None) -> dict:
    body = {} if amount is None else {"amount": amount}
    return _ok(client.post(f"/v1/redemptions/{redemption_id}/capture", json=body,
                           headers=program.headers("storefront")), 200)


def _refund(client: Any, program: Any, order_id: str, refund_id: str, amount: int | None = None) -> Any:
    body: dict[str, Any] = {"refund_id": refund_id}
    if amount is not None:
        body["amount"] = amount
    return client.post(f"/v1/purchases/{order_id}/refunds", json=body, headers=program.headers("storefront"))


def _bought(buy: Any, program: Any, order_id: str, customer_id: str, amount: int, **extra: Any) -> dict:
    return _ok(buy(program, order_id, customer_id, amount, **extra))


def _jobs(app: Any, clock: Any) -> dict[str, int]:
    return run_jobs(app.extensions["ledger"].uow, clock)


def _key_id(client: Any, program: Any, role: str) -> str:
    items = _ok(client.get("/v1/api-keys", headers=program.headers("admin")), 200)["items"]
    [key] = [k for k in items if k["role"] == role and program.keys[role].startswith(k["prefix"])]
    return key["id"]


def _second_finance_key(client: Any, program: Any) -> tuple[str, dict[str, str]]:
    created = _ok(client.post("/v1/api-keys", json={"role": "finance", "name": "second approver"},
                              headers=program.headers("admin")))
    return created["id"], {"Authorization": f"Bearer {created['key']}"}


def _entry_count(client: Any, program: Any) -> int:
    return len(ledger_entries(client, program))


# =========================================================================== 1. adjustments


def test_points_adjustments_both_signs_book_against_the_reason_code_account(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points available, 200 cents pending
    finance_key = _key_id(client, program, "finance")

    added = _adjust(client, program, "ADJ-1", "c-1", "points", 25, reason="parcel was late", reason_code="goodwill")
    data = _ok(added)
    assert "Idempotent-Replayed" not in added.headers
    assert (data["adjustment_id"], data["customer_id"], data["asset"], data["amount"]) == ("ADJ-1", "c-1", "points", 25)
    assert (data["status"], data["reason"], data["reason_code"]) == ("booked", "parcel was late", "goodwill")
    assert data["requested_by"] == f"api_key:{finance_key}" and data["approved_by"] is None
    assert data["transaction_id"] and data["booked_at"] is not None
    assert data["balances"]["points"] == _b(125)
    assert data["balances"]["cashback"] == _b(0, 200)
    tx = _tx(client, program, data["transaction_id"])
    assert tx["type"] == "adjustment" and tx["reference"] == {"kind": "adjustment", "id": "ADJ-1"}
    assert tx["customer_id"] == "c-1" and tx["reason"] == "parcel was late"
    assert "parcel was late" in tx["description"]
    assert tx["actor"] == f"api_key:{finance_key}"
    assert tx["reversed_by"] is None and tx["reverses"] is None
    assert _legs(tx) == {"house/points/issued/adjustment/goodwill": -25, "customer/c-1/points/available": 25}

    taken = _ok(_adjust(client, program, "ADJ-2", "c-1", "points", -30, reason="fraudulent review reward",
                        reason_code="fraud_removal"))
    assert taken["balances"]["points"] == _b(95)
    assert _legs(_tx(client, program, taken["transaction_id"])) == {
        "house/points/issued/adjustment/fraud_removal": 30, "customer/c-1/points/available": -30}

    default = _ok(_adjust(client, program, "ADJ-3", "c-1", "points", 5, reason="typo in the import"))
    assert default["reason_code"] == "correction"
    assert _legs(_tx(client, program, default["transaction_id"])) == {
        "house/points/issued/adjustment/correction": -5, "customer/c-1/points/available": 5}

    assert _balances(client, program, "c-1")["points"] == _b(100)
    assert account_total(client, program, "house/points/issued/adjustment/goodwill") == -25
    assert account_total(client, program, "house/points/issued/adjustment/fraud_removal") == 30
    assert account_total(client, program, "house/points/issued/adjustment/correction") == -5
    assert account_total(client, program, "house/points/issued/purchase") == -100
    assert verify().entries == 4 + 3 * 2


def test_cashback_adjustments_both_signs_touch_available_only(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 200 cents pending
    added = _ok(_adjust(client, program, "ADJ-1", "c-1", "cashback", 300, reason_code="goodwill"))
    assert added["balances"]["cashback"] == _b(300, 200)
    assert _legs(_tx(client, program, added["transaction_id"])) == {
        "house/cashback/funding/adjustment/goodwill": -300, "customer/c-1/cashback/available": 300}

    taken = _ok(_adjust(client, program, "ADJ-2", "c-1", "cashback", -120, reason="double credit"))
    assert taken["reason_code"] == "correction"
    assert taken["balances"]["cashback"] == _b(180, 200)
    assert _legs(_tx(client, program, taken["transaction_id"])) == {
        "house/cashback/funding/adjustment/correction": 120, "customer/c-1/cashback/available": -120}

    # Pending cashback is not available: 181 is more than the 180 available.
    count = _entry_count(client, program)
    body = assert_problem(_adjust(client, program, "ADJ-3", "c-1", "cashback", -181), 422, "insufficient_balance")
    assert body.get("available") == 180
    assert _entry_count(client, program) == count
    assert _balances(client, program, "c-1")["cashback"] == _b(180, 200)
    assert _balances(client, program, "c-1")["points"] == _b(100)
    verify()


def test_negative_points_adjustment_beyond_available_is_refused_and_writes_nothing(client, app, program, enrol,
                                                                                    buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _hold(client, program, "R-1", "c-1", 30)  # reserved points are not available: 70 are
    before = row_counts(app)
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", -71), 422, "insufficient_balance")
    assert row_counts(app) == before
    assert_problem(client.get("/v1/adjustments/ADJ-1", headers=program.headers("finance")), 404,
                   "adjustment_not_found")
    # A natural key is claimed only by a successful write: the same id succeeds once the state allows it.
    data = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", -70))
    assert data["balances"]["points"] == _b(0, 0, 30)
    verify()


def test_adjustment_validation_writes_nothing(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    before = row_counts(app)
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10, reason=None), 422, "validation_error",
                   field="reason")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10, reason=""), 422, "validation_error",
                   field="reason")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 0), 422, "validation_error", field="amount")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", "7"), 422, "validation_error", field="amount")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 1.5), 422, "validation_error", field="amount")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "gold", 10), 422, "validation_error", field="asset")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10, reason_code="whim"), 422,
                   "validation_error", field="reason_code")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10, approved_by="me"), 422,
                   "validation_error", field="approved_by")
    # A validation failure is never stored, even under an Idempotency-Key.
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 0, headers={"Idempotency-Key": "k-1"}), 422,
                   "validation_error", field="amount")
    assert row_counts(app) == before
    assert _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 10, headers={"Idempotency-Key": "k-1"}))[
        "balances"]["points"] == _b(110)
    verify()


def test_adjustment_of_an_unknown_customer_is_404(client, app, program, make_program, enrol, verify):
    before = row_counts(app)
    assert_problem(_adjust(client, program, "ADJ-1", "nobody", "points", 10), 404, "customer_not_found")
    assert row_counts(app) == before
    other = make_program(name="Other shop")
    enrol(other, "c-9")
    before = row_counts(app)
    assert_problem(_adjust(client, program, "ADJ-1", "c-9", "points", 10), 404, "customer_not_found")
    assert row_counts(app) == before
    verify()


def test_adjustments_are_for_finance_only(client, app, program, enrol, verify):
    enrol(program, "c-1")
    before = row_counts(app)
    for role in ("admin", "storefront", "app"):
        assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10, role=role), 403, "forbidden")
    assert row_counts(app) == before
    verify()


def test_adjustment_replay_conflict_and_idempotency_key(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    enrol(program, "c-2")
    _bought(buy, program, "A-1", "c-1", 10_000)
    first = _adjust(client, program, "ADJ-1", "c-1", "points", 15, reason_code="goodwill")
    assert first.status_code == 201
    count = _entry_count(client, program)
    tables = row_counts(app)

    again = _adjust(client, program, "ADJ-1", "c-1", "points", 15, reason_code="goodwill")
    assert again.status_code == 201 and again.data == first.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    # Any other body under the same adjustment_id is a conflict, and writes nothing.
    for other in ({"amount": 16}, {"asset": "cashback"}, {"reason": "another reason"}, {"reason_code": "correction"}):
        body = {"customer_id": "c-1", "asset": "points", "amount": 15, "reason": "goodwill gesture",
                "reason_code": "goodwill", **other}
        assert_problem(_adjust(client, program, "ADJ-1", **body), 409, "duplicate_adjustment")
    assert_problem(_adjust(client, program, "ADJ-1", "c-2", "points", 15, reason_code="goodwill"), 409,
                   "duplicate_adjustment")
    assert _entry_count(client, program) == count
    assert row_counts(app) == tables

    keyed = _adjust(client, program, "ADJ-2", "c-1", "cashback", 40, headers={"Idempotency-Key": "adj-key-2"})
    assert keyed.status_code == 201
    count = _entry_count(client, program)
    replay = _adjust(client, program, "ADJ-2", "c-1", "cashback", 40, headers={"Idempotency-Key": "adj-key-2"})
    assert replay.status_code == 201 and replay.data == keyed.data
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert_problem(_adjust(client, program, "ADJ-3", "c-1", "cashback", 40, headers={"Idempotency-Key": "adj-key-2"}),
                   422, "idempotency_key_reused")
    assert _entry_count(client, program) == count
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(115) and balances["cashback"] == _b(40, 200)
    verify()


def test_refused_adjustment_under_an_idempotency_key_is_replayed(client, program, enrol, buy, verify):
    """§2: under an Idempotency-Key a business-rule failure is stored and replayed."""
    enrol(program, "c-1")
    first = _adjust(client, program, "ADJ-1", "c-1", "points", -10, headers={"Idempotency-Key": "k-neg"})
    assert_problem(first, 422, "insufficient_balance")
    _bought(buy, program, "A-1", "c-1", 10_000)
    again = _adjust(client, program, "ADJ-1", "c-1", "points", -10, headers={"Idempotency-Key": "k-neg"})
    assert again.status_code == 422 and again.data == first.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    # A new key, now that the state allows it, books it.
    assert _ok(_adjust(client, program, "ADJ-1", "c-1", "points", -10, headers={"Idempotency-Key": "k-neg-2"}))[
        "balances"]["points"] == _b(90)
    verify()


# =========================================================================== 2. approval


def test_adjustment_above_the_threshold_waits_for_a_second_finance_key(client, app, make_program, enrol, buy,
                                                                       verify):
    # One point is worth 5 cents: 200 points are worth exactly the 1_000-cent threshold.
    program = make_program(cashback_rate_bps=200, adjustment_approval_threshold=1_000, redeem_minor_units=5,
                           redeem_points=1)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points
    requester = _key_id(client, program, "finance")
    before = row_counts(app)
    count = _entry_count(client, program)

    pending = client.post("/v1/adjustments", json={"adjustment_id": "ADJ-BIG", "customer_id": "c-1",
                                                   "asset": "points", "amount": 201, "reason": "migration gap",
                                                   "reason_code": "correction"},
                          headers=program.headers("finance"))
    data = _ok(pending, 202)
    assert (data["status"], data["amount"], data["requested_by"]) == ("pending_approval", 201, f"api_key:{requester}")
    assert data["transaction_id"] is None and data["approved_by"] is None and data["booked_at"] is None
    assert data["balances"] is None
    assert _entry_count(client, program) == count
    after = row_counts(app)
    for table in ("entries", "transactions", "points_lots", "lot_consumptions"):
        assert after[table] == before[table], table
    assert after["adjustments"] == before["adjustments"] + 1
    assert _balances(client, program, "c-1")["points"] == _b(100)
    shown = _ok(client.get("/v1/adjustments/ADJ-BIG", headers=program.headers("finance")), 200)
    assert shown["status"] == "pending_approval" and shown["transaction_id"] is None
    assert {k: v for k, v in shown.items() if k != "balances"} == {k: v for k, v in data.items() if k != "balances"}
    assert _ok(client.get("/v1/adjustments/ADJ-BIG", headers=program.headers("admin")), 200)["status"] == \
        "pending_approval"
    replay = client.post("/v1/adjustments", json={"adjustment_id": "ADJ-BIG", "customer_id": "c-1",
                                                  "asset": "points", "amount": 201, "reason": "migration gap",
                                                  "reason_code": "correction"},
                         headers=program.headers("finance"))
    assert replay.status_code == 202 and replay.data == pending.data
    assert replay.headers.get("Idempotent-Replayed") == "true"

    # The requester may not approve it; nothing changes.
    assert_problem(client.post("/v1/adjustments/ADJ-BIG/approve", headers=program.headers("finance")), 403,
                   "same_approver")
    assert _ok(client.get("/v1/adjustments/ADJ-BIG", headers=program.headers("finance")), 200)["status"] == \
        "pending_approval"
    assert _entry_count(client, program) == count
    for role in ("admin", "storefront", "app"):
        assert_problem(client.post("/v1/adjustments/ADJ-BIG/approve", headers=program.headers(role)), 403, "forbidden")

    approver_id, approver = _second_finance_key(client, program)
    approved = client.post("/v1/adjustments/ADJ-BIG/approve", headers=approver)
    booked = _ok(approved, 200)
    assert booked["status"] == "booked" and booked["transaction_id"]
    assert booked["requested_by"] == f"api_key:{requester}" and booked["approved_by"] == f"api_key:{approver_id}"
    assert booked["booked_at"] is not None
    assert booked["balances"]["points"] == _b(301)
    tx = _tx(client, program, booked["transaction_id"])
    assert _legs(tx) == {"house/points/issued/adjustment/correction": -201, "customer/c-1/points/available": 201}
    assert tx["type"] == "adjustment" and tx["reason"] == "migration gap"
    assert tx["actor"] == f"api_key:{approver_id}"
    assert tx["details"].get("requested_by") == f"api_key:{requester}"
    assert tx["details"].get("approved_by") == f"api_key:{approver_id}"
    shown = _ok(client.get("/v1/adjustments/ADJ-BIG", headers=program.headers("finance")), 200)
    assert (shown["status"], shown["transaction_id"], shown["approved_by"]) == \
        ("booked", booked["transaction_id"], f"api_key:{approver_id}")

    count = _entry_count(client, program)
    again = client.post("/v1/adjustments/ADJ-BIG/approve", headers=approver)
    assert again.status_code == 200 and again.data == approved.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _entry_count(client, program) == count
    assert _balances(client, program, "c-1")["points"] == _b(301)
    verify()


def test_threshold_is_exclusive_and_counts_either_sign(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0, adjustment_approval_threshold=1_000,
                           redeem_minor_units=5, redeem_points=1)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 100_000)  # 1_000 points, 2_000 cents, all available
    # Exactly the threshold: booked at once.
    assert _ok(_adjust(client, program, "P-AT", "c-1", "points", 200))["status"] == "booked"  # 200 * 5 = 1_000
    assert _ok(_adjust(client, program, "P-AT-NEG", "c-1", "points", -200))["status"] == "booked"
    assert _ok(_adjust(client, program, "C-AT", "c-1", "cashback", 1_000))["status"] == "booked"
    assert _ok(_adjust(client, program, "C-AT-NEG", "c-1", "cashback", -1_000))["status"] == "booked"
    # Above it, either sign: pending.
    for adjustment_id, asset, amount in (("P-UP", "points", 201), ("P-DOWN", "points", -201),
                                         ("C-UP", "cashback", 1_001), ("C-DOWN", "cashback", -1_001)):
        assert _ok(_adjust(client, program, adjustment_id, "c-1", asset, amount), 202)["status"] == "pending_approval"
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(1_000) and balances["cashback"] == _b(2_000)
    _, approver = _second_finance_key(client, program)
    down = _ok(client.post("/v1/adjustments/P-DOWN/approve", headers=approver), 200)
    assert down["balances"]["points"] == _b(799)
    assert _legs(_tx(client, program, down["transaction_id"])) == {
        "house/points/issued/adjustment/correction": 201, "customer/c-1/points/available": -201}
    verify()


def test_approving_a_booked_or_unknown_adjustment(client, make_program, enrol, buy, verify):
    program = make_program(adjustment_approval_threshold=1_000)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    booked = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 10))
    assert booked["status"] == "booked"
    _, approver = _second_finance_key(client, program)
    count = _entry_count(client, program)
    assert_problem(client.post("/v1/adjustments/ADJ-1/approve", headers=approver), 409, "adjustment_not_pending")
    assert_problem(client.post("/v1/adjustments/ADJ-1/approve", headers=program.headers("finance")), 409,
                   "adjustment_not_pending")
    assert_problem(client.post("/v1/adjustments/nope/approve", headers=approver), 404, "adjustment_not_found")
    assert_problem(client.get("/v1/adjustments/nope", headers=program.headers("finance")), 404,
                   "adjustment_not_found")
    assert _entry_count(client, program) == count
    assert _balances(client, program, "c-1")["points"] == _b(110)
    verify()


def test_approval_of_a_negative_adjustment_checks_the_balance_at_approval(client, make_program, enrol, buy,
                                                                          verify):
    program = make_program(adjustment_approval_threshold=100)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 50_000)  # 500 points
    assert _ok(_adjust(client, program, "ADJ-1", "c-1", "points", -300), 202)["status"] == "pending_approval"
    _hold(client, program, "R-1", "c-1", 250)
    _capture(client, program, "R-1")  # 250 left
    _, approver = _second_finance_key(client, program)
    count = _entry_count(client, program)
    assert_problem(client.post("/v1/adjustments/ADJ-1/approve", headers=approver), 422, "insufficient_balance")
    assert _entry_count(client, program) == count
    assert _ok(client.get("/v1/adjustments/ADJ-1", headers=approver), 200)["status"] == "pending_approval"
    verify()


# =========================================================================== 3. reversals


def test_reversal_of_adjustments_of_both_signs_and_assets(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 200 cents pending
    plus = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 40, reason_code="goodwill"))
    minus = _ok(_adjust(client, program, "ADJ-2", "c-1", "points", -30, reason_code="fraud_removal"))
    cash = _ok(_adjust(client, program, "ADJ-3", "c-1", "cashback", 250, reason_code="goodwill"))
    cash_minus = _ok(_adjust(client, program, "ADJ-4", "c-1", "cashback", -50))
    assert cash_minus["balances"]["points"] == _b(110) and cash_minus["balances"]["cashback"] == _b(200, 200)
    finance_key = _key_id(client, program, "finance")

    plus_legs = _legs(_tx(client, program, plus["transaction_id"]))
    rev = _reversed(client, program, plus["transaction_id"],
                    _reverse(client, program, plus["transaction_id"], reason="wrong customer"), "wrong customer",
                    {k: -v for k, v in plus_legs.items()})
    assert rev["customer_id"] == "c-1" and rev["actor"] == f"api_key:{finance_key}"
    assert rev["balances"]["points"] == _b(70)
    assert rev["recorded_at"] is not None
    assert {e["account"]: e["amount"] for e in rev["entries"]} == {
        "house/points/issued/adjustment/goodwill": 40, "customer/c-1/points/available": -40}

    back = _reversed(client, program, minus["transaction_id"],
                     _reverse(client, program, minus["transaction_id"], reason="the review was genuine"),
                     "the review was genuine",
                     {"house/points/issued/adjustment/fraud_removal": -30, "customer/c-1/points/available": 30})
    assert back["balances"]["points"] == _b(100)
    # The +250 cashback cannot be taken back while only 200 are available; undo the -50 first.
    assert_problem(_reverse(client, program, cash["transaction_id"]), 422, "insufficient_balance")
    undo_minus = _reversed(client, program, cash_minus["transaction_id"],
                           _reverse(client, program, cash_minus["transaction_id"]), "booked in error",
                           {"house/cashback/funding/adjustment/correction": -50, "customer/c-1/cashback/available": 50})
    assert undo_minus["balances"]["cashback"] == _b(250, 200)
    undo_cash = _reversed(client, program, cash["transaction_id"], _reverse(client, program, cash["transaction_id"]),
                          "booked in error",
                          {"house/cashback/funding/adjustment/goodwill": 250, "customer/c-1/cashback/available": -250})
    assert undo_cash["balances"]["cashback"] == _b(0, 200)
    for account in ("house/points/issued/adjustment/goodwill", "house/points/issued/adjustment/fraud_removal",
                    "house/cashback/funding/adjustment/goodwill", "house/cashback/funding/adjustment/correction"):
        assert account_total(client, program, account) == 0, account
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(100) and balances["cashback"] == _b(0, 200)
    assert len(_tx_ids(client, program, "reversal")) == 4
    verify()


def test_reversal_of_a_points_expiry_gives_the_points_back_with_a_new_expiry(client, app, make_program, enrol,
                                                                             buy, clock, verify):
    # Fixed life of 10 days in UTC: bought on 2026-11-26, the points last through 2026-12-06.
    program = make_program(points_expiry="fixed", points_life_days=10, timezone="UTC")
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _bought(buy, program, "A-2", "c-1", 5_000)
    clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 20))  # lasts through 2026-12-07
    clock.set(datetime(2026, 12, 7, 0, 0, 1, tzinfo=UTC))
    assert _jobs(app, clock)["expired_points"] == 150
    [expiry] = _tx_ids(client, program, "points_expiry")
    assert _legs(_tx(client, program, expiry)) == {"customer/c-1/points/available": -150, "house/points/expired": 150}
    assert _balances(client, program, "c-1")["points"] == _b(20)

    clock.set(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    rev = _reversed(client, program, expiry, _reverse(client, program, expiry, reason="expiry notice never sent"),
                    "expiry notice never sent", {"customer/c-1/points/available": 150, "house/points/expired": -150})
    assert rev["balances"]["points"] == _b(170)
    assert account_total(client, program, "house/points/expired") == 0
    # Their old expiry has passed: they are reissued for reissue_days (30), through 2027-01-06.
    expiring = _ok(client.get("/v1/customers/c-1/expiring", headers=program.headers("app")), 200)
    assert expiring["total"] == 170
    assert [(i["points"], i["last_day"]) for i in expiring["items"]] == [(20, "2026-12-07"), (150, "2027-01-06")]
    assert expiring["items"][1]["expires_at"] in ("2027-01-07T00:00:00Z", "2027-01-07T00:00:00+00:00")

    clock.set(datetime(2026, 12, 8, 0, 0, 1, tzinfo=UTC))
    assert _jobs(app, clock)["expired_points"] == 20
    clock.set(datetime(2027, 1, 6, 23, 59, tzinfo=UTC))
    assert _jobs(app, clock)["expired_points"] == 0
    assert _balances(client, program, "c-1")["points"] == _b(150)
    clock.set(datetime(2027, 1, 7, 0, 0, 1, tzinfo=UTC))
    assert _jobs(app, clock)["expired_points"] == 150
    assert _balances(client, program, "c-1")["points"] == _b(0)
    assert account_total(client, program, "house/points/expired") == 170
    verify()


def test_reversal_of_a_purchase_with_its_value_still_pending(client, app, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 5_000)  # 50 points, 100 cents pending: stays
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points available, 200 cents pending
    legs = {"house/points/issued/purchase": 100, "customer/c-1/points/available": -100,
            "house/cashback/funding/purchase": 200, "customer/c-1/cashback/pending": -200}
    assert {k: -v for k, v in _legs(_tx(client, program, purchase["transaction_id"])).items()} == legs
    rev = _reversed(client, program, purchase["transaction_id"],
                    _reverse(client, program, purchase["transaction_id"], reason="test order"), "test order", legs)
    assert rev["balances"]["points"] == _b(50) and rev["balances"]["cashback"] == _b(0, 100)

    # A refund of the reversed order claws back nothing more; the release frees only A-0's cashback.
    refund = _ok(_refund(client, program, "A-1", "F-1"))
    assert (refund["points_reversed"], refund["cashback_reversed"]) == (0, 0)
    assert (refund["points_restored"], refund["cashback_restored"]) == (0, 0)
    assert (refund["points_uncollected"], refund["cashback_uncollected"]) == (0, 0)
    clock.advance(days=31)
    assert _jobs(app, clock)["releases"] == 1
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(50) and balances["cashback"] == _b(100, 0)
    assert account_total(client, program, "house/points/issued/purchase") == -50
    assert account_total(client, program, "house/cashback/funding/purchase") == -100
    verify()


def test_reversal_of_a_purchase_with_pending_points(client, app, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200, points_hold_days=14, cashback_hold_days=30)
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)
    rev = _reversed(client, program, purchase["transaction_id"], _reverse(client, program, purchase["transaction_id"]),
                    "booked in error", {"house/points/issued/purchase": 100, "customer/c-1/points/pending": -100,
                                        "house/cashback/funding/purchase": 200, "customer/c-1/cashback/pending": -200})
    assert rev["balances"]["points"] == _b(0, 0) and rev["balances"]["cashback"] == _b(0, 0)
    clock.advance(days=31)
    assert _jobs(app, clock)["releases"] == 0
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(0) and balances["cashback"] == _b(0)
    verify()


def test_reversal_of_a_purchase_with_its_value_available(client, app, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 200 cents available at once
    rev = _reversed(client, program, purchase["transaction_id"], _reverse(client, program, purchase["transaction_id"]),
                    "booked in error", {"house/points/issued/purchase": 100, "customer/c-1/points/available": -100,
                                        "house/cashback/funding/purchase": 200,
                                        "customer/c-1/cashback/available": -200})
    assert rev["balances"]["points"] == _b(0) and rev["balances"]["cashback"] == _b(0)
    refund = _ok(_refund(client, program, "A-1", "F-1", 4_000))
    assert (refund["points_reversed"], refund["cashback_reversed"]) == (0, 0)
    assert (refund["points_uncollected"], refund["cashback_uncollected"]) == (0, 0)
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(0) and balances["cashback"] == _b(0)
    assert account_total(client, program, "house/points/written_off") == 0
    verify()


def test_reversal_of_a_capture_returns_the_points_once(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 10_000)  # 100 points
    _hold(client, program, "R-1", "c-1", 40, order_id="O-1")
    _capture(client, program, "R-1", 30)  # reserved -40, redeemed +30, available +10
    [capture] = _tx_ids(client, program, "redemption_capture", "R-1")
    assert _legs(_tx(client, program, capture)) == {"customer/c-1/points/reserved": -40,
                                                    "house/points/redeemed": 30, "customer/c-1/points/available": 10}
    order = _bought(buy, program, "O-1", "c-1", 10_000)  # 30 cents paid with points do not earn: 99 points
    assert order["points_earned"] == 99
    assert _balances(client, program, "c-1")["points"] == _b(169)

    # The hold is settled, so what it had reserved sits in available: the mirror credits the captured 30 there.
    rev = _reversed(client, program, capture, _reverse(client, program, capture, reason="points charged twice"),
                    "points charged twice", {"customer/c-1/points/available": 30, "house/points/redeemed": -30})
    assert rev["balances"]["points"] == _b(199)
    assert account_total(client, program, "house/points/redeemed") == 0

    # The refund claws back the order's earnings but does not restore the points a second time.
    refund = _ok(_refund(client, program, "O-1", "F-1"))
    assert (refund["points_reversed"], refund["points_restored"]) == (99, 0)
    assert _balances(client, program, "c-1")["points"] == _b(100)
    assert account_total(client, program, "house/points/redeemed") == 0
    verify()


def test_reversal_of_a_cashback_capture_returns_it_once(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0)
    enrol(program, "c-1")
    _bought(buy, program, "A-0", "c-1", 50_000)  # 500 points, 1_000 cents available
    _hold(client, program, "R-1", "c-1", 300, asset="cashback", order_id="O-1")
    _capture(client, program, "R-1")
    [capture] = _tx_ids(client, program, "redemption_capture", "R-1")
    order = _bought(buy, program, "O-1", "c-1", 10_000)  # 300 paid with cashback: 9_700 earn 97 points, 194 cents
    assert (order["points_earned"], order["cashback_earned"]) == (97, 194)
    assert _balances(client, program, "c-1")["cashback"] == _b(894)

    rev = _reversed(client, program, capture, _reverse(client, program, capture, reason="paid by card"),
                    "paid by card", {"customer/c-1/cashback/available": 300, "house/cashback/redeemed": -300})
    assert rev["balances"]["cashback"] == _b(1_194)
    refund = _ok(_refund(client, program, "O-1", "F-1"))
    assert (refund["cashback_reversed"], refund["cashback_restored"]) == (194, 0)
    balances = _balances(client, program, "c-1")
    assert balances["cashback"] == _b(1_000) and balances["points"] == _b(500)
    assert account_total(client, program, "house/cashback/redeemed") == 0
    verify()


def test_reversal_of_an_event_reward(client, program, enrol, verify):
    enrol(program, "c-1")
    assert client.put("/v1/event-rules/r-review", json={"event_type": "review_posted", "points": 40},
                      headers=program.headers("admin")).status_code == 200
    event = _ok(client.post("/v1/events", json={"event_id": "E-1", "customer_id": "c-1", "type": "review_posted"},
                            headers=program.headers("storefront")))
    assert event["points_awarded"] == 40
    assert _legs(_tx(client, program, event["transaction_id"])) == {
        "house/points/issued/promotion": -40, "customer/c-1/points/available": 40}
    rev = _reversed(client, program, event["transaction_id"],
                    _reverse(client, program, event["transaction_id"], reason="review was removed"),
                    "review was removed", {"house/points/issued/promotion": 40, "customer/c-1/points/available": -40})
    assert rev["balances"]["points"] == _b(0)
    assert account_total(client, program, "house/points/issued/promotion") == 0
    verify()


# --------------------------------------------------------------------------- refusals


def test_second_reversal_is_already_reversed(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    adj = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 10))
    rev = _ok(_reverse(client, program, adj["transaction_id"]))
    before = row_counts(app)
    body = assert_problem(_reverse(client, program, adj["transaction_id"], reason="again"), 409, "already_reversed")
    assert body["reversal_transaction_id"] == rev["transaction_id"]
    # Under an Idempotency-Key too, and a reversal itself is never reversed.
    assert_problem(_reverse(client, program, adj["transaction_id"], headers={"Idempotency-Key": "rev-2"}), 409,
                   "already_reversed")
    assert_problem(_reverse(client, program, rev["transaction_id"]), 409, "not_reversible")
    after = row_counts(app)
    assert {t: after[t] for t in ("entries", "transactions", "reversals")} == \
        {t: before[t] for t in ("entries", "transactions", "reversals")}
    assert _balances(client, program, "c-1")["points"] == _b(100)
    verify()


def test_reversal_replays_under_an_idempotency_key(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    adj = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 10))
    first = _reverse(client, program, adj["transaction_id"], headers={"Idempotency-Key": "rev-1"})
    assert first.status_code == 201
    again = _reverse(client, program, adj["transaction_id"], headers={"Idempotency-Key": "rev-1"})
    assert again.status_code == 201 and again.data == first.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(_tx_ids(client, program, "reversal")) == 1
    verify()


def test_a_purchase_with_a_refund_or_a_release_has_dependents(client, app, program, enrol, buy, clock, verify):
    enrol(program, "c-1")
    refunded = _bought(buy, program, "A-1", "c-1", 10_000)
    refund = _ok(_refund(client, program, "A-1", "F-1", 5_000))
    released = _bought(buy, program, "A-2", "c-1", 10_000)
    clock.advance(days=31)
    assert _jobs(app, clock)["releases"] == 2
    releases = {_tx(client, program, t)["reference"]["id"]: t for t in _tx_ids(client, program, "release")}
    assert set(releases) == {"A-1", "A-2"}  # A-1's cashback left after the refund, A-2's
    before = row_counts(app)
    body = assert_problem(_reverse(client, program, refunded["transaction_id"]), 409, "has_dependents")
    assert body["dependents"] == sorted([refund["transaction_id"], releases["A-1"]])
    assert refund["transaction_id"] in body["detail"]
    body = assert_problem(_reverse(client, program, released["transaction_id"]), 409, "has_dependents")
    assert body["dependents"] == [releases["A-2"]]
    assert row_counts(app) == before
    verify()


def test_a_purchase_whose_points_were_spent_has_dependents(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)
    _hold(client, program, "R-1", "c-1", 60)
    _capture(client, program, "R-1", 50)
    [capture] = _tx_ids(client, program, "redemption_capture", "R-1")
    before = row_counts(app)
    body = assert_problem(_reverse(client, program, purchase["transaction_id"]), 409, "has_dependents")
    assert body["dependents"] == [capture]  # the capture consumed the purchase's lot
    assert row_counts(app) == before
    assert _balances(client, program, "c-1")["points"] == _b(50)
    verify()


def test_holds_refunds_reversals_are_not_reversible(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _hold(client, program, "R-1", "c-1", 20)
    [hold] = _tx_ids(client, program, "redemption_hold", "R-1")
    refund = _ok(_refund(client, program, "A-1", "F-1", 1_000))
    adj = _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 5))
    rev = _ok(_reverse(client, program, adj["transaction_id"]))
    before = row_counts(app)
    assert_problem(_reverse(client, program, hold), 409, "not_reversible")
    assert_problem(_reverse(client, program, refund["transaction_id"]), 409, "not_reversible")
    assert_problem(_reverse(client, program, rev["transaction_id"]), 409, "not_reversible")
    assert_problem(_reverse(client, program, "tx_does_not_exist"), 404, "transaction_not_found")
    assert row_counts(app) == before
    verify()


def test_a_captured_hold_has_dependents(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    _hold(client, program, "R-1", "c-1", 20)
    _capture(client, program, "R-1")
    [hold] = _tx_ids(client, program, "redemption_hold", "R-1")
    [capture] = _tx_ids(client, program, "redemption_capture", "R-1")
    body = assert_problem(_reverse(client, program, hold), 409, "has_dependents")
    assert body["dependents"] == [capture]
    verify()


def test_a_transaction_of_another_program_is_not_found(client, program, make_program, enrol, buy, verify):
    other = make_program(name="Other shop")
    enrol(other, "c-1")
    purchase = _bought(buy, other, "A-1", "c-1", 10_000)
    assert_problem(_reverse(client, program, purchase["transaction_id"]), 404, "transaction_not_found")
    assert_problem(client.get(f"/v1/transactions/{purchase['transaction_id']}", headers=program.headers("finance")),
                   404, "transaction_not_found")
    assert _balances(client, other, "c-1")["points"] == _b(100)
    verify()


def test_reversing_a_spent_cashback_adjustment_is_insufficient_balance(client, app, program, enrol, verify):
    enrol(program, "c-1")
    adj = _ok(_adjust(client, program, "ADJ-1", "c-1", "cashback", 300))
    _hold(client, program, "R-1", "c-1", 250, asset="cashback")
    _capture(client, program, "R-1")
    before = row_counts(app)
    body = assert_problem(_reverse(client, program, adj["transaction_id"]), 422, "insufficient_balance")
    assert body.get("available") == 50
    assert row_counts(app) == before
    assert _tx(client, program, adj["transaction_id"])["reversed_by"] is None
    assert _balances(client, program, "c-1")["cashback"] == _b(50)
    verify()


def test_reversals_are_for_finance_only(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    purchase = _bought(buy, program, "A-1", "c-1", 10_000)
    before = row_counts(app)
    for role in ("admin", "storefront", "app"):
        assert_problem(_reverse(client, program, purchase["transaction_id"], role=role), 403, "forbidden")
    assert_problem(client.post(f"/v1/transactions/{purchase['transaction_id']}/reverse", json={},
                               headers=program.headers("finance")), 422, "validation_error", field="reason")
    assert_problem(client.post(f"/v1/transactions/{purchase['transaction_id']}/reverse", json={"reason": ""},
                               headers=program.headers("finance")), 422, "validation_error", field="reason")
    assert row_counts(app) == before
    verify()


# =========================================================================== 4. closure


def _close(client: Any, program: Any, customer_id: str, role: str = "admin") -> Any:
    return client.post(f"/v1/customers/{customer_id}/close", headers=program.headers(role))


def test_closure_voids_holds_forfeits_points_and_keeps_cashback_owed(client, app, make_program, enrol, buy, clock,
                                                                     verify):
    program = make_program(cashback_rate_bps=200, points_hold_days=14, cashback_hold_days=10)
    enrol(program, "c-1")
    enrol(program, "c-2")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points and 200 cents, pending
    _bought(buy, program, "B-1", "c-2", 10_000)  # another member, untouched by the closure
    clock.advance(days=15)
    _jobs(app, clock)
    _bought(buy, program, "A-2", "c-1", 5_000)  # 50 points and 100 cents, pending
    _hold(client, program, "R-1", "c-1", 30)
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(70, 50, 30) and balances["cashback"] == _b(200, 100)

    response = _close(client, program, "c-1")
    data = _ok(response, 200)
    assert (data["customer_id"], data["status"]) == ("c-1", "closed")
    assert (data["points_forfeited"], data["cashback_owed"], data["cashback_forfeited"]) == (150, 300, 0)
    assert data["written_off"] == {"points": 0, "cashback": 0}
    assert _legs(_tx(client, program, data["transaction_id"])) == {
        "customer/c-1/points/available": -100, "customer/c-1/points/pending": -50, "house/points/forfeited": 150}
    assert _tx(client, program, data["transaction_id"])["type"] == "customer_close"
    # The hold was voided first: its 30 points went back to available, then were forfeited.
    redemption = _ok(client.get("/v1/redemptions/R-1", headers=program.headers("app")), 200)
    assert redemption["status"] == "voided"
    [void] = _tx_ids(client, program, "redemption_void", "R-1")
    assert _legs(_tx(client, program, void)) == {"customer/c-1/points/reserved": -30,
                                                 "customer/c-1/points/available": 30}
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(0) and balances["cashback"] == _b(200, 100)
    assert account_total(client, program, "house/points/forfeited") == 150
    assert account_total(client, program, "house/cashback/forfeited") == 0

    # A repeat replays the first answer.
    count = _entry_count(client, program)
    again = _close(client, program, "c-1")
    assert again.status_code == 200 and again.data == response.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _entry_count(client, program) == count

    # The release job never releases the forfeited pending points; the cashback stays owed.
    clock.advance(days=15)
    _jobs(app, clock)
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(0, 0, 0)
    assert balances["cashback"] == _b(300, 0)  # still owed: A-2's cashback was released as usual
    assert account_total(client, program, "house/points/forfeited") == 150
    assert _balances(client, program, "c-2")["points"] == _b(100) and \
        _balances(client, program, "c-2")["cashback"] == _b(200)
    verify()


def test_a_closed_member_earns_and_redeems_nothing_but_stays_readable(client, app, program, enrol, buy, verify):
    enrol(program, "c-1", email="c1@example.com")
    assert client.put("/v1/event-rules/r-checkin", json={"event_type": "app_checkin", "points": 5},
                      headers=program.headers("admin")).status_code == 200
    _bought(buy, program, "A-1", "c-1", 10_000)
    closed = _ok(_close(client, program, "c-1"), 200)
    assert closed["points_forfeited"] == 100 and closed["cashback_owed"] == 200
    before = row_counts(app)
    assert_problem(buy(program, "A-2", "c-1", 1_000), 422, "customer_closed")
    assert_problem(client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1",
                                                        "asset": "cashback", "amount": 10},
                               headers=program.headers("storefront")), 422, "customer_closed")
    assert_problem(client.post("/v1/events", json={"event_id": "E-1", "customer_id": "c-1", "type": "app_checkin"},
                               headers=program.headers("storefront")), 422, "customer_closed")
    assert_problem(_adjust(client, program, "ADJ-1", "c-1", "points", 10), 422, "customer_closed")
    assert_problem(client.put("/v1/customers/c-1", json={"status": "active"}, headers=program.headers("admin")), 422,
                   "customer_closed")
    assert row_counts(app) == before

    profile = _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200)
    assert profile["status"] == "closed" and profile["email"] == "c1@example.com"
    assert _balances(client, program, "c-1")["cashback"] == _b(0, 200)
    activity = _ok(client.get("/v1/customers/c-1/activity", headers=program.headers("app")), 200)["items"]
    assert [i["type"] for i in activity] == ["customer_close", "purchase_accrual"]
    assert activity[0]["points"] == _b(-100)
    verify()


def test_closure_with_forfeit_cashback_on_close(client, app, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=10, forfeit_cashback_on_close=True)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=11)
    _jobs(app, clock)
    _bought(buy, program, "A-2", "c-1", 5_000)
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(150) and balances["cashback"] == _b(200, 100)

    data = _ok(_close(client, program, "c-1"), 200)
    assert (data["points_forfeited"], data["cashback_owed"], data["cashback_forfeited"]) == (150, 0, 300)
    assert data["written_off"] == {"points": 0, "cashback": 0}
    assert _legs(_tx(client, program, data["transaction_id"])) == {
        "customer/c-1/points/available": -150, "house/points/forfeited": 150,
        "customer/c-1/cashback/available": -200, "customer/c-1/cashback/pending": -100,
        "house/cashback/forfeited": 300}
    clock.advance(days=11)
    assert _jobs(app, clock)["releases"] == 0
    balances = _balances(client, program, "c-1")
    assert balances["points"] == _b(0) and balances["cashback"] == _b(0)
    assert account_total(client, program, "house/cashback/forfeited") == 300
    verify()


def test_closure_writes_off_a_negative_points_balance(client, app, make_program, enrol, buy, clock, verify):
    program = make_program(points_hold_days=14, clawback_policy="allow_negative")
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    clock.advance(days=15)
    _jobs(app, clock)
    _hold(client, program, "R-1", "c-1", 80)
    _capture(client, program, "R-1")
    _bought(buy, program, "A-2", "c-1", 5_000)  # 50 points pending
    _ok(_refund(client, program, "A-1", "F-1"))  # 100 clawed back from the 20 available
    assert _balances(client, program, "c-1")["points"] == _b(-80, 50)

    data = _ok(_close(client, program, "c-1"), 200)
    assert data["points_forfeited"] == 50
    assert data["written_off"] == {"points": 80, "cashback": 0}
    assert _legs(_tx(client, program, data["transaction_id"])) == {
        "customer/c-1/points/available": 80, "house/points/written_off": -80,
        "customer/c-1/points/pending": -50, "house/points/forfeited": 50}
    assert _balances(client, program, "c-1")["points"] == _b(0)
    clock.advance(days=15)
    _jobs(app, clock)
    assert _balances(client, program, "c-1")["points"] == _b(0)
    verify()


def test_closure_writes_off_a_negative_cashback_balance(client, make_program, enrol, buy, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=0, clawback_policy="allow_negative")
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points, 200 cents available
    _hold(client, program, "R-1", "c-1", 150, asset="cashback")
    _capture(client, program, "R-1")
    _ok(_refund(client, program, "A-1", "F-1"))
    assert _balances(client, program, "c-1")["cashback"] == _b(-150)

    data = _ok(_close(client, program, "c-1"), 200)
    assert data["written_off"] == {"points": 0, "cashback": 150}
    assert data["cashback_owed"] == 0 and data["cashback_forfeited"] == 0
    assert _legs(_tx(client, program, data["transaction_id"])) == {
        "customer/c-1/cashback/available": 150, "house/cashback/written_off": -150}
    assert _balances(client, program, "c-1")["cashback"] == _b(0)
    verify()


def test_a_pending_adjustment_cannot_be_approved_after_closure(client, app, make_program, enrol, buy, verify):
    program = make_program(adjustment_approval_threshold=10)
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    assert _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 50), 202)["status"] == "pending_approval"
    _ok(_close(client, program, "c-1"), 200)
    _, approver = _second_finance_key(client, program)
    before = row_counts(app)
    assert_problem(client.post("/v1/adjustments/ADJ-1/approve", headers=approver), 422, "customer_closed")
    assert row_counts(app) == before
    assert _balances(client, program, "c-1")["points"] == _b(0)
    verify()


def test_a_refund_after_closure_leaves_no_debt_on_the_closed_account(client, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)  # 100 points available, 200 cents pending
    closed = _ok(_close(client, program, "c-1"), 200)
    assert closed["points_forfeited"] == 100
    _refund(client, program, "A-1", "F-1")
    points = _balances(client, program, "c-1")["points"]
    assert min(points.values()) >= 0, points
    verify()


def test_closure_roles_and_unknown_customer(client, app, program, enrol, buy, verify):
    enrol(program, "c-1")
    _bought(buy, program, "A-1", "c-1", 10_000)
    before = row_counts(app)
    for role in ("storefront", "app", "finance"):
        assert_problem(_close(client, program, "c-1", role=role), 403, "forbidden")
    assert_problem(_close(client, program, "nobody"), 404, "customer_not_found")
    assert row_counts(app) == before
    nothing = _ok(_close(client, program, "c-1"), 200)
    assert nothing["status"] == "closed"
    verify()


def test_closure_of_a_member_with_nothing_books_nothing(client, program, enrol, verify):
    enrol(program, "c-1")
    data = _ok(_close(client, program, "c-1"), 200)
    assert data["transaction_id"] is None
    assert (data["points_forfeited"], data["cashback_owed"], data["cashback_forfeited"]) == (0, 0, 0)
    assert data["written_off"] == {"points": 0, "cashback": 0}
    assert _entry_count(client, program) == 0
    assert _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200)["status"] == "closed"
    verify()


# =========================================================================== 5. erasure


PERSONAL = {"email": "ann.example@example.com", "phone": "+33 1 23 45 67 89", "name": "Ann Example",
            "display_name": "Annie", "birthday": "1990-04-30", "leaderboard_opt_in": True}


def test_erasure_clears_personal_data_and_leaves_the_ledger_intact(client, app, program, enrol, buy, clock,
                                                                   verify):
    enrol(program, "c-1", **PERSONAL)
    _bought(buy, program, "A-1", "c-1", 10_000)
    _ok(_adjust(client, program, "ADJ-1", "c-1", "points", 10, reason="welcome back"))
    entries = ledger_entries(client, program)
    balances = _balances(client, program, "c-1")
    activity = _ok(client.get("/v1/customers/c-1/activity", headers=program.headers("app")), 200)
    profile = _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200)
    assert profile["email"] == PERSONAL["email"] and profile["leaderboard_opt_in"] is True

    response = client.delete("/v1/customers/c-1/personal-data", headers=program.headers("admin"))
    data = _ok(response, 200)
    assert data["customer_id"] == "c-1" and data["status"] == "active"
    assert datetime.fromisoformat(data["erased_at"].replace("Z", "+00:00")) == clock.now()
    erased = client.get("/v1/customers/c-1", headers=program.headers("admin"))
    after = _ok(erased, 200)
    assert {k: after[k] for k in PERSONAL} == {"email": None, "phone": None, "name": None, "display_name": None,
                                              "birthday": None, "leaderboard_opt_in": False}
    raw = erased.get_data(as_text=True)
    for value in ("ann.example", "Ann Example", "Annie", "1990-04-30", "23 45 67"):
        assert value not in raw
    assert after["balances"] == profile["balances"]
    assert {k: v for k, v in after.items() if k not in PERSONAL} == \
        {k: v for k, v in profile.items() if k not in PERSONAL}
    assert ledger_entries(client, program) == entries
    assert _balances(client, program, "c-1") == balances
    assert _ok(client.get("/v1/customers/c-1/activity", headers=program.headers("app")), 200) == activity
    report = _ok(client.get("/v1/ledger/verify", headers=program.headers("finance")), 200)
    assert report["ok"] is True and report["first_broken_seq"] is None

    clock.advance(hours=1)
    again = _ok(client.delete("/v1/customers/c-1/personal-data", headers=program.headers("admin")), 200)
    assert again["customer_id"] == "c-1"
    assert {k: v for k, v in _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200).items()
            if k in PERSONAL} == {k: after[k] for k in PERSONAL}
    assert ledger_entries(client, program) == entries
    verify()


def test_erasure_roles_and_unknown_customer(client, app, program, enrol, verify):
    enrol(program, "c-1", **PERSONAL)
    before = row_counts(app)
    for role in ("storefront", "app", "finance"):
        assert_problem(client.delete("/v1/customers/c-1/personal-data", headers=program.headers(role)), 403,
                       "forbidden")
    assert_problem(client.delete("/v1/customers/nobody/personal-data", headers=program.headers("admin")), 404,
                   "customer_not_found")
    assert row_counts(app) == before
    assert _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200)["email"] == PERSONAL["email"]
    verify()


def test_erasure_of_a_closed_member(client, program, enrol, buy, verify):
    enrol(program, "c-1", **PERSONAL)
    _bought(buy, program, "A-1", "c-1", 10_000)
    _ok(_close(client, program, "c-1"), 200)
    entries = ledger_entries(client, program)
    data = _ok(client.delete("/v1/customers/c-1/personal-data", headers=program.headers("admin")), 200)
    assert data["status"] == "closed"
    profile = _ok(client.get("/v1/customers/c-1", headers=program.headers("app")), 200)
    assert profile["email"] is None and profile["status"] == "closed"
    assert ledger_entries(client, program) == entries
    verify()
