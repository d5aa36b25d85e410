"""The books read back what was booked, at any past instant (issue 6).

Each example drives one program through the HTTP API: enrolments, purchases (some dated earlier
than they are recorded), refunds (part or the rest, some refused), holds of points or cashback
(captured in full or in part, voided, or left to lapse), adjustments, clock advances (by minutes to
days, and onto UTC midnights and a few seconds either side of them and of the five-minute roll-up
margin), and the jobs (releases, lapsed holds, daily roll-ups, seals), so that roll-ups exist and
trial balances start from them. Then, at random past instants (every recorded_at itself, and a
microsecond either side of it, and the midnights around them):

- the trial balance sums to zero per asset;
- every trial-balance line equals the sum of the entries recorded before that instant (house
  accounts one by one, customer accounts per `customer/*/{asset}/{bucket}`), every line whose
  entries do not sum to zero is shown, and customer lines count the customers enrolled before it;
- the answer starts from the latest roll-up at or before the instant: one per UTC midnight from
  the day after the first entry up to the last job run less five minutes;
- each customer's balances as of that instant equal the sum of their entries recorded before it;
- the entries, read in pages of a random size, are the whole list once, in seq order.

Each example gets its own database (a copy of the migrated template, as every test does), because
the jobs sweep every program and roll up every day since a program's first entry: in one shared
database, each example would pay for the days of all the ones before it.
Runs on whichever backend the suite runs on (LEDGER_TEST_BACKEND).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import datetime, time, timedelta, timezone
from typing import Any, Iterator

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ledger.clock import FixedClock
from tests.conftest import OPERATOR_TOKEN, T0

UTC = timezone.utc
US = timedelta(microseconds=1)
ROLLUP_MARGIN = timedelta(minutes=5)
ASSETS = ("points", "cashback")
BUCKETS = ("available", "pending", "reserved")
CUSTOMERS = ("c-0", "c-1", "c-2", "c-3")

program_settings = st.fixed_dictionaries({
    "cashback_rate_bps": st.sampled_from([0, 200, 1_000]),
    "points_hold_days": st.sampled_from([0, 0, 1]),
    "cashback_hold_days": st.sampled_from([0, 1, 2]),
    "clawback_policy": st.sampled_from(["allow_negative", "write_off"]),
})

customer = st.sampled_from(CUSTOMERS)
buy = st.tuples(st.just("buy"), customer, st.integers(500, 30_000) | st.sampled_from([1, 99, 100, 10_000]),
                st.sampled_from([None, None, 1, 30]))  # occurred so many hours before it is recorded
refund = st.tuples(st.just("refund"), st.integers(0, 50), st.sampled_from(["rest", "part", "part", "too_much"]))
hold = st.tuples(st.just("hold"), customer, st.sampled_from(ASSETS), st.sampled_from(["half", "all", "one", "more"]),
                 st.sampled_from(["capture", "capture_part", "void", "lapse"]))
operation = st.one_of(
    buy, buy, buy, refund, refund, hold, hold,
    st.tuples(st.just("enrol"), customer),
    st.tuples(st.just("adjust"), customer, st.sampled_from(ASSETS), st.sampled_from([25, 300, 1, -1, -50])),
    st.tuples(st.just("advance"), st.sampled_from([60, 899, 901, 3_600, 6 * 3_600, 86_400, 3 * 86_400])),
    st.tuples(st.just("midnight"), st.sampled_from([-60, -1, 0, 0, 1, 299, 300, 301])),
    st.tuples(st.just("jobs")),
)


@contextmanager
def fresh_app(database_factory: Any) -> Iterator[tuple[Any, Any, FixedClock]]:
    from api import create_app

    url = database_factory.new()
    clock = FixedClock(T0)
    app = create_app({"DATABASE_URL": url, "OPERATOR_TOKEN": OPERATOR_TOKEN, "CLOCK": clock, "DB_POOL_SIZE": 5})
    app.config["TESTING"] = True
    try:
        yield app, app.test_client(), clock
    finally:
        app.extensions["ledger"].engines.dispose()
        database_factory.drop(url)


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), UTC)


def read_entries(client: Any, headers: dict[str, str], limit: int) -> list[dict]:
    out, cursor = [], None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/ledger/entries", query_string=query, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert len(page["items"]) <= limit
        if page["next_cursor"] is not None:
            assert len(page["items"]) == limit
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(chosen=program_settings, opening=st.lists(st.integers(2_000, 30_000), min_size=2, max_size=2),
       ops=st.lists(operation, min_size=8, max_size=30), data=st.data())
def test_books_at_any_past_instant_equal_the_entries(database_factory, chosen, opening, ops, data):
    from ledger.services.releases import run_jobs

    with fresh_app(database_factory) as (app, client, clock):
        created = client.post("/v1/programs", json={"name": "Books", "currency": "EUR", **chosen},
                              headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert created.status_code == 201, created.get_data(as_text=True)
        keys = created.get_json()["api_keys"]

        def as_(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {keys[role]}"}

        shop, finance = as_("storefront"), as_("finance")
        enrolled: dict[str, datetime] = {}
        orders: list[str] = []
        job_runs: list[datetime] = []
        serial = iter(range(10_000))

        def enrol(who: str) -> None:
            response = client.put(f"/v1/customers/{who}", json={}, headers=shop)
            assert response.status_code in (200, 201), response.get_data(as_text=True)
            enrolled.setdefault(who, clock.now())

        for op in [("buy", "c-0", opening[0], None), ("buy", "c-1", opening[1], None), *ops]:
            kind, args = op[0], op[1:]
            if kind == "enrol":
                enrol(args[0])
            elif kind == "buy":
                who, amount, hours_before = args
                if who not in enrolled:
                    enrol(who)
                order_id = f"O-{next(serial)}"
                body = {"order_id": order_id, "customer_id": who, "amount": amount, "currency": "EUR"}
                if hours_before is not None:
                    body["occurred_at"] = (clock.now() - timedelta(hours=hours_before)).isoformat()
                response = client.post("/v1/purchases", json=body, headers=shop)
                assert response.status_code == 201, response.get_data(as_text=True)
                orders.append(order_id)
            elif kind == "refund" and orders:
                pick, how = args
                order_id = orders[pick % len(orders)]
                body: dict[str, Any] = {"refund_id": f"RF-{next(serial)}"}
                if how != "rest":
                    detail = client.get(f"/v1/purchases/{order_id}", headers=shop).get_json()
                    body["amount"] = max(1, detail["amount"] // 3) if how == "part" else detail["amount"] + 1
                response = client.post(f"/v1/purchases/{order_id}/refunds", json=body, headers=shop)
                assert response.status_code in (201, 422), response.get_data(as_text=True)
                if response.status_code == 422:
                    assert response.get_json()["code"] == "refund_exceeds_purchase"
            elif kind == "hold":
                who, asset, size, then = args
                if who not in enrolled:
                    continue
                balances = client.get(f"/v1/customers/{who}/balances", headers=shop).get_json()
                available = balances[asset]["available"]
                amount = {"half": max(available // 2, 1), "all": max(available, 1), "one": 1,
                          "more": max(available, 0) + 1}[size]
                redemption_id = f"R-{next(serial)}"
                response = client.post("/v1/redemptions", json={"redemption_id": redemption_id, "customer_id": who,
                                                                "asset": asset, "amount": amount}, headers=shop)
                if response.status_code == 422:
                    assert response.get_json()["code"] == "insufficient_balance", response.get_data(as_text=True)
                    continue
                assert response.status_code == 201, response.get_data(as_text=True)
                if then == "capture":
                    settle = client.post(f"/v1/redemptions/{redemption_id}/capture", json={}, headers=shop)
                elif then == "capture_part":
                    settle = client.post(f"/v1/redemptions/{redemption_id}/capture", json={"amount": amount // 2},
                                         headers=shop)
                elif then == "void":
                    settle = client.post(f"/v1/redemptions/{redemption_id}/void", json={}, headers=shop)
                else:
                    continue  # lapses after the program's hold_ttl_seconds (900)
                assert settle.status_code == 200, settle.get_data(as_text=True)
            elif kind == "adjust":
                who, asset, amount = args
                if who not in enrolled:
                    continue
                response = client.post("/v1/adjustments", json={
                    "adjustment_id": f"A-{next(serial)}", "customer_id": who, "asset": asset, "amount": amount,
                    "reason": "property test", "reason_code": "goodwill"}, headers=finance)
                assert response.status_code in (201, 422), response.get_data(as_text=True)
                if response.status_code == 422:
                    assert amount < 0 and response.get_json()["code"] == "insufficient_balance"
            elif kind == "advance":
                clock.advance(seconds=args[0])
            elif kind == "midnight":
                target = next_midnight(clock.now()) + timedelta(seconds=args[0])
                clock.set(max(target, clock.now()))
            elif kind == "jobs":
                done = run_jobs(app.extensions["ledger"].uow, clock)
                assert set(done) >= {"rollups", "seals"}
                job_runs.append(clock.now())
        # cross at least one midnight with the jobs, so that every example has a roll-up to start from
        clock.set(next_midnight(clock.now()) + ROLLUP_MARGIN + timedelta(seconds=data.draw(
            st.sampled_from([0, 1, 3_600]), label="after the margin")))
        run_jobs(app.extensions["ledger"].uow, clock)
        job_runs.append(clock.now())
        again = run_jobs(app.extensions["ledger"].uow, clock)
        assert (again["rollups"], again["seals"]) == (0, 0)

        rows = read_entries(client, finance, 500)
        assert [r["seq"] for r in rows] == sorted({r["seq"] for r in rows})
        assert read_entries(client, finance, data.draw(st.integers(1, 9), label="page size")) == rows
        per_tx: Counter = Counter()
        for r in rows:
            assert r["amount"] != 0
            per_tx[r["transaction_id"], r["asset"]] += r["amount"]
        assert all(v == 0 for v in per_tx.values())

        stamps = sorted({datetime.fromisoformat(r["recorded_at"]) for r in rows})
        # A roll-up closes each day that has entries, once a job ran ROLLUP_MARGIN after its end.
        rollups: list[datetime] = []
        if stamps:
            rollups = sorted({next_midnight(stamp) for stamp in stamps
                              if next_midnight(stamp) + ROLLUP_MARGIN <= max(job_runs)})
        candidates = {T0 - US, T0, clock.now() + US, *rollups}
        for stamp in stamps:
            candidates |= {stamp - US, stamp, stamp + US}
        for midnight in rollups:
            candidates |= {midnight - US, midnight + US}
        candidates |= set(enrolled.values())
        instants = data.draw(st.lists(st.sampled_from(sorted(candidates)), min_size=1, max_size=10, unique=True),
                             label="instants")

        event(f"roll-ups: {'none' if not rollups else '1' if len(rollups) == 1 else 'several'}")
        event(f"entries: {'none' if not rows else 'under 20' if len(rows) < 20 else '20 or more'}")
        kinds = len({r["transaction_type"] for r in rows})
        event(f"transaction types: {'1-2' if kinds <= 2 else '3-4' if kinds <= 4 else '5 or more'}")
        for as_of in instants:
            earlier = [r for r in rows if datetime.fromisoformat(r["recorded_at"]) < as_of]
            expected: Counter = Counter()
            per_account: Counter = Counter()
            for r in earlier:
                parts = r["account"].split("/")
                expected[f"customer/*/{parts[2]}/{parts[3]}" if parts[0] == "customer" else r["account"]] += r["amount"]
                per_account[r["account"]] += r["amount"]
            response = client.get("/v1/ledger/trial-balance", query_string={"as_of": as_of.isoformat()},
                                  headers=finance)
            assert response.status_code == 200, response.get_data(as_text=True)
            tb = response.get_json()
            assert tb["totals"] == {"points": 0, "cashback": 0}, as_of
            lines = {line["account"]: line for line in tb["accounts"]}
            customers = sum(1 for at in enrolled.values() if at < as_of)
            for account in expected:
                assert account in lines, (as_of, account)
            for account, line in lines.items():
                assert line["balance"] == expected[account], (as_of, account, line, expected[account])
                assert line["accounts"] == (customers if account.startswith("customer/") else None), (as_of, account)
            for asset in ASSETS:
                assert sum(line["balance"] for line in tb["accounts"] if line["asset"] == asset) == 0
            used = max((m for m in rollups if m <= as_of), default=None)
            shown = datetime.fromisoformat(tb["rollup_as_of"]) if tb["rollup_as_of"] else None
            assert shown == used, (as_of, shown, used)
            event("an instant answered from a roll-up" if used else "an instant before every roll-up")

            for who in enrolled:
                response = client.get(f"/v1/customers/{who}/balances", query_string={"as_of": as_of.isoformat()},
                                      headers=finance)
                assert response.status_code == 200, response.get_data(as_text=True)
                got = response.get_json()
                assert {a: got[a] for a in ASSETS} == {
                    a: {b: per_account[f"customer/{who}/{a}/{b}"] for b in BUCKETS} for a in ASSETS}, (as_of, who)
