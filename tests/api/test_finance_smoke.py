"""One walk through the finance endpoints: the happy path of each, end to end."""
from __future__ import annotations

import json

from tests.helpers import assert_problem


def test_a_month_of_business_closes_and_verifies(client, app, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200, cashback_hold_days=30, redeem_minor_units=1, redeem_points=1)
    finance, admin, shop = program.headers("finance"), program.headers("admin"), program.headers("storefront")
    enrol(program, "c-1")
    enrol(program, "c-2")
    clock.set(clock.now().replace(month=10, day=5))
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201  # 100 points, 200 cashback pending
    clock.advance(days=1)
    assert buy(program, "O-2", "c-2", 5_000).status_code == 201
    clock.advance(days=1)
    hold = client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points",
                                                "amount": 40, "order_id": "O-3"}, headers=shop)
    assert hold.status_code == 201, hold.get_data(as_text=True)
    cap = client.post("/v1/redemptions/R-1/capture", json={"amount": 30}, headers=shop)
    assert cap.status_code == 200, cap.get_data(as_text=True)
    clock.advance(days=1)
    adj = client.post("/v1/adjustments", json={"adjustment_id": "A-1", "customer_id": "c-2", "asset": "points",
                                               "amount": 15, "reason": "parcel was late", "reason_code": "goodwill"},
                      headers=finance)
    assert adj.status_code == 201, adj.get_data(as_text=True)
    assert adj.get_json()["balances"]["points"]["available"] == 65

    clock.set(clock.now().replace(month=11, day=3))
    closed = client.post("/v1/ledger/periods/2026-10/close", headers=finance)
    assert closed.status_code == 201, closed.get_data(as_text=True)
    period = closed.get_json()
    assert period["trial_balance"]["totals"] == {"points": 0, "cashback": 0}
    points = period["liability"]["assets"]["points"]
    assert points["ties"] is True
    # 100 + 50 issued by purchases, 15 adjusted, 30 redeemed: 135 held at the end of October
    assert (points["opening"], points["issued"], points["adjusted"], points["redeemed"], points["closing"]) == \
        (0, 150, 15, 30, 135)
    again = client.post("/v1/ledger/periods/2026-10/close", headers=finance)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert_problem(client.post("/v1/ledger/periods/2026-11/close", headers=finance), 422, "period_not_ended")

    tb = client.get("/v1/ledger/trial-balance?as_of=2026-10-06T13:00:00Z", headers=finance).get_json()
    assert tb["totals"] == {"points": 0, "cashback": 0}
    lines = {line["account"]: line["balance"] for line in tb["accounts"]}
    assert lines["house/points/issued/purchase"] == -150
    as_of = client.get("/v1/customers/c-1/balances?as_of=2026-10-06T00:00:00Z", headers=finance).get_json()
    assert as_of["points"] == {"available": 100, "pending": 0, "reserved": 0}

    entries = client.get("/v1/ledger/entries?customer_id=c-1&limit=3", headers=finance).get_json()
    assert len(entries["items"]) == 3 and entries["next_cursor"]
    tx_id = entries["items"][0]["transaction_id"]
    tx = client.get(f"/v1/transactions/{tx_id}", headers=admin).get_json()
    assert tx["type"] == "purchase_accrual" and tx["entries"]

    export = client.get("/v1/ledger/export?format=ndjson", headers=finance)
    assert export.status_code == 200
    rows = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    assert sum(r["amount"] for r in rows) == 0 and len(rows) == verify().entries
    csv_export = client.get("/v1/ledger/export?format=csv", headers=finance).get_data(as_text=True)
    assert csv_export.splitlines()[0].startswith("seq,transaction_id")

    rev = client.post(f"/v1/transactions/{adj.get_json()['transaction_id']}/reverse", json={"reason": "wrong customer"},
                      headers=finance)
    assert rev.status_code == 201, rev.get_data(as_text=True)
    assert rev.get_json()["balances"]["points"]["available"] == 50
    assert_problem(client.post(f"/v1/transactions/{adj.get_json()['transaction_id']}/reverse",
                               json={"reason": "again"}, headers=finance), 409, "already_reversed")

    liability = client.get("/v1/reports/liability", headers=finance).get_json()
    assert liability["assets"]["points"]["ties"] is True
    assert liability["assets"]["points"]["opening"] == 135 and liability["assets"]["points"]["reversed"] == -15
    activity = client.get("/v1/reports/activity?from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z",
                          headers=finance).get_json()
    assert [p["period"] for p in activity["periods"]] == ["2026-10", "2026-11"]

    closure = client.post("/v1/customers/c-1/close", headers=admin)
    assert closure.status_code == 200, closure.get_data(as_text=True)
    assert closure.get_json()["points_forfeited"] == 70 and closure.get_json()["cashback_owed"] == 200
    assert_problem(buy(program, "O-9", "c-1", 1_000), 422, "customer_closed")
    erased = client.delete("/v1/customers/c-2/personal-data", headers=admin)
    assert erased.status_code == 200
    report = client.get("/v1/ledger/verify", headers=finance).get_json()
    assert report["ok"] is True and report["first_broken_seq"] is None, report
    verify()
