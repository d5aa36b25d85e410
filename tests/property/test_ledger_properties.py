"""Random sequences of operations against the HTTP API, checked against an in-memory model.

One Hypothesis state machine per test: each example creates its own program (programs are
isolated, so one database serves every example) and drives enrolments, purchases (new,
replayed, conflicting, for unknown customers, in another currency), settings patches, clock
advances and the release job. After every step:

- every enrolled customer's balances (GET) equal the model, where pending value whose window
  has passed shows as available;
- `verify()` holds: every transaction balances per asset, the ledger sums to zero per asset,
  cached balances equal their entries;
- the program's entries, summed per account, equal the model's booked balances, and their count
  is exactly what the model booked;
- each customer's activity lists exactly the model's transactions, newest first.

Runs on whichever backend the suite runs on (LEDGER_TEST_BACKEND).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from ledger.domain.money import one_major_unit

CUSTOMERS = ("c-0", "c-1", "c-2", "c-3")
UNKNOWN = "ghost"  # never enrolled
ORDERS = tuple(f"o-{i}" for i in range(6))
CURRENCIES = ("EUR", "JPY", "BHD")
DEFAULTS = {"points_per_unit": 1, "cashback_rate_bps": 0, "cashback_hold_days": 30, "points_hold_days": 0}

hold_days = st.sampled_from([0, 1, 7, 30])  # small, so that clock advances reach them
amounts = st.one_of(st.integers(1, 10**9), st.sampled_from([1, 99, 100, 199, 200, 999, 1_000, 10_000]))
points_per_unit = st.one_of(st.sampled_from([0, 1, 200]), st.integers(0, 10_000))
unit_amount = st.one_of(st.sampled_from([1, 100, 1_000]), st.integers(1, 10**9))
cashback_bps = st.one_of(st.sampled_from([0, 1, 200]), st.integers(0, 10_000))

# Holds and cashback always set (so that pending value and releases are common); the earning
# rate sometimes left to its defaults (1 point per major unit).
initial_settings = st.fixed_dictionaries({
    "cashback_rate_bps": cashback_bps, "points_hold_days": hold_days, "cashback_hold_days": hold_days,
}, optional={"points_per_unit": points_per_unit, "unit_amount": unit_amount})
_patch_values = {
    "points_per_unit": st.none() | points_per_unit,
    "unit_amount": st.none() | unit_amount,
    "cashback_rate_bps": st.none() | cashback_bps,
    "points_hold_days": st.none() | hold_days,
    "cashback_hold_days": st.none() | hold_days,
}
# A non-empty merge patch; null restores a setting's default.
patches = st.sets(st.sampled_from(sorted(_patch_values)), min_size=1).flatmap(
    lambda names: st.fixed_dictionaries({name: _patch_values[name] for name in sorted(names)}))


@dataclass
class Grant:
    """Value a purchase credited to one customer bucket of one asset."""

    customer: str
    order_id: str
    asset: str
    amount: int
    release_at: datetime | None  # None: credited to available at once
    released: bool = False  # the release transaction is booked

    def available_at(self, now: datetime) -> bool:
        return self.release_at is None or self.release_at <= now

    def booked_available(self) -> bool:
        return self.release_at is None or self.released


def test_random_operations_keep_the_ledger_consistent(app, client, make_program, clock, verify):
    from ledger.services.releases import run_release_job

    uow_factory = app.extensions["ledger"].uow

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.program = None
            self.currency = "EUR"
            self.settings: dict = {}
            self.enrolled: set[str] = set()
            self.orders: dict[str, dict] = {}  # order_id -> {"body", "data"} of the first, successful answer
            self.grants: list[Grant] = []
            # customer -> batches of (type, order_id), oldest first; a batch holds the releases booked together
            self.transactions: dict[str, list[frozenset[tuple[str, str]]]] = defaultdict(list)
            self.entry_count = 0
            self.fresh_orders = 0

        # --- helpers ---------------------------------------------------------------------------

        def headers(self, role: str) -> dict[str, str]:
            return self.program.headers(role)

        def expected_balances(self, customer: str) -> dict:
            now = clock.now()
            out = {"currency": self.currency}
            for asset in ("points", "cashback"):
                grants = [g for g in self.grants if g.customer == customer and g.asset == asset]
                available = sum(g.amount for g in grants if g.available_at(now))
                pending = sum(g.amount for g in grants) - available
                out[asset] = {"available": available, "pending": pending, "reserved": 0}
            return out

        def book_releases(self, customer: str) -> int:
            """What release_due_for_customer books: one transaction per purchase with due value."""
            now = clock.now()
            due: dict[str, list[Grant]] = defaultdict(list)
            for g in self.grants:
                if g.customer == customer and not g.released and g.release_at is not None and g.release_at <= now:
                    due[g.order_id].append(g)
            for order_id, grants in due.items():
                for g in grants:
                    g.released = True
                self.entry_count += 2 * len(grants)
            if due:  # one release per purchase; their order within one run is not part of the contract
                self.transactions[customer].append(frozenset(("release", order_id) for order_id in due))
            return len(due)

        def assert_problem(self, response, status: int, code: str) -> None:  # noqa: ANN001
            assert response.status_code == status, response.get_data(as_text=True)
            assert response.mimetype == "application/problem+json"
            assert response.get_json()["code"] == code
            assert "Idempotent-Replayed" not in response.headers

        # --- rules -----------------------------------------------------------------------------

        @initialize(currency=st.sampled_from(CURRENCIES), initial=initial_settings,
                    members=st.sets(st.sampled_from(CUSTOMERS), min_size=1))
        def create_program(self, currency: str, initial: dict, members: set[str]) -> None:
            self.currency = currency
            self.program = make_program(currency=currency, **initial)
            self.settings = {**DEFAULTS, "unit_amount": one_major_unit(currency), **initial}
            for name, value in self.settings.items():
                assert self.program.body[name] == value, name
            for customer in sorted(members):  # most purchases should find their customer
                self.put_customer(customer, None)

        @rule(customer=st.sampled_from(CUSTOMERS), email=st.none() | st.just("x@example.com"))
        def enrol(self, customer: str, email: str | None) -> None:
            self.put_customer(customer, email)

        def put_customer(self, customer: str, email: str | None) -> None:
            body = {} if email is None else {"email": email}
            response = client.put(f"/v1/customers/{customer}", json=body, headers=self.headers("storefront"))
            assert response.status_code == (200 if customer in self.enrolled else 201), response.get_data(as_text=True)
            self.enrolled.add(customer)
            assert response.get_json()["balances"] == self.expected_balances(customer)

        @rule(order_id=st.sampled_from(ORDERS), customer=st.sampled_from(CUSTOMERS + (UNKNOWN,)), amount=amounts,
              foreign=st.integers(0, 9).map(lambda n: n == 0))  # one purchase in ten in another currency
        def purchase(self, order_id: str, customer: str, amount: int, foreign: bool) -> None:
            currency = "USD" if foreign else self.currency
            self.post_purchase({"order_id": order_id, "customer_id": customer, "amount": amount,
                                "currency": currency})

        @precondition(lambda self: self.enrolled)
        @rule(data=st.data(), amount=amounts)
        def new_purchase(self, data: st.DataObject, amount: int) -> None:
            """A fresh order for an enrolled customer: always books (or earns nothing)."""
            customer = data.draw(st.sampled_from(sorted(self.enrolled)))
            self.fresh_orders += 1
            self.post_purchase({"order_id": f"n-{self.fresh_orders}", "customer_id": customer, "amount": amount,
                                "currency": self.currency})

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            order_id = data.draw(st.sampled_from(sorted(self.orders)))
            self.post_purchase(dict(self.orders[order_id]["body"]))

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), change=st.sampled_from(["amount", "customer", "channel", "tax"]))
        def conflicting_purchase(self, data: st.DataObject, change: str) -> None:
            order_id = data.draw(st.sampled_from(sorted(self.orders)))
            body = dict(self.orders[order_id]["body"])
            if change == "amount":
                body["amount"] += 1
            elif change == "customer":
                body["customer_id"] = data.draw(st.sampled_from([c for c in CUSTOMERS if c != body["customer_id"]]))
            elif change == "channel":
                body["channel"] = "web"
            else:
                body["tax"] = 0  # the default, but the body as sent differs
            self.post_purchase(body)

        def post_purchase(self, body: dict) -> None:
            order_id, customer = body["order_id"], body["customer_id"]
            response = client.post("/v1/purchases", json=body, headers=self.headers("storefront"))
            first = self.orders.get(order_id)
            if first is not None:
                if first["body"] == body:
                    assert response.status_code == 201
                    assert response.headers.get("Idempotent-Replayed") == "true"
                    assert response.data == first["data"]
                else:
                    self.assert_problem(response, 409, "duplicate_order")
                return
            if body["currency"] != self.currency:
                self.assert_problem(response, 422, "currency_mismatch")
                return
            if customer not in self.enrolled:
                self.assert_problem(response, 404, "customer_not_found")
                return

            assert response.status_code == 201, response.get_data(as_text=True)
            assert "Idempotent-Replayed" not in response.headers
            self.book_releases(customer)  # the purchase releases the customer's due value first
            s, now, amount = self.settings, clock.now(), body["amount"]
            earned = {"points": amount * s["points_per_unit"] // s["unit_amount"],
                      "cashback": amount * s["cashback_rate_bps"] // 10_000}
            holds = {"points": s["points_hold_days"], "cashback": s["cashback_hold_days"]}
            data = response.get_json()
            assert (data["points_earned"], data["cashback_earned"]) == (earned["points"], earned["cashback"])
            for asset, value in earned.items():
                status = None if value == 0 else ("pending" if holds[asset] else "available")
                assert data[f"{asset}_status"] == status, asset
                if value:
                    release_at = now + timedelta(days=holds[asset]) if holds[asset] else None
                    self.grants.append(Grant(customer, order_id, asset, value, release_at))
                    self.entry_count += 2
            if any(earned.values()):
                assert data["transaction_id"] is not None
                self.transactions[customer].append(frozenset({("purchase_accrual", order_id)}))
            else:
                assert data["transaction_id"] is None
            assert data["balances"] == self.expected_balances(customer)
            self.orders[order_id] = {"body": body, "data": response.data}

        @rule(changes=patches)
        def patch_settings(self, changes: dict) -> None:
            response = client.patch("/v1/program", json=changes, headers=self.headers("admin"))
            assert response.status_code == 200, response.get_data(as_text=True)
            for name, value in changes.items():
                if value is None:
                    value = one_major_unit(self.currency) if name == "unit_amount" else DEFAULTS[name]
                self.settings[name] = value
            data = response.get_json()
            assert {k: data[k] for k in self.settings} == self.settings
            got = client.get("/v1/program", headers=self.headers("app")).get_json()
            assert {k: got[k] for k in self.settings} == self.settings

        # Whole hold periods land exactly on release_at (released at release_at, not after).
        @rule(days=st.sampled_from([0, 1, 7, 30]) | st.integers(0, 40), seconds=st.sampled_from([0, 0, 0, 1, 3_600]))
        def advance_clock(self, days: int, seconds: int) -> None:
            clock.advance(days=days, seconds=seconds)

        @precondition(lambda self: any(g.release_at and not g.released for g in self.grants))
        @rule(data=st.data(), extra=st.sampled_from([timedelta(0), timedelta(0), timedelta(seconds=-1)]))
        def advance_to_a_release(self, data: st.DataObject, extra: timedelta) -> None:
            """Move the clock exactly onto (or one second before) a pending release_at."""
            now = clock.now()
            targets = sorted({g.release_at for g in self.grants if g.release_at and g.release_at + extra > now})
            if targets:
                target = data.draw(st.sampled_from(targets)) + extra
                clock.advance(seconds=(target - now).total_seconds())
                assert clock.now() == target

        @rule()
        def release_job(self) -> None:
            released = run_release_job(uow_factory, clock)
            expected = sum(self.book_releases(c) for c in sorted(self.enrolled))
            assert released == expected

        # --- invariants ------------------------------------------------------------------------

        @invariant()
        def balances_match_the_model(self) -> None:
            if self.program is None:
                return
            for customer in sorted(self.enrolled):
                response = client.get(f"/v1/customers/{customer}/balances", headers=self.headers("app"))
                assert response.status_code == 200
                assert response.get_json() == self.expected_balances(customer), customer

        @invariant()
        def ledger_verifies_and_entries_match_the_model(self) -> None:
            if self.program is None:
                return
            verify()
            entries, cursor = [], None
            while True:
                query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = client.get("/v1/ledger/entries", query_string=query, headers=self.headers("finance"))
                assert page.status_code == 200
                body = page.get_json()
                entries += body["items"]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert len(entries) == self.entry_count
            assert [e["seq"] for e in entries] == sorted({e["seq"] for e in entries})
            sums: Counter = Counter()
            for e in entries:
                assert e["amount"] != 0
                sums[e["account"]] += e["amount"]
            expected: Counter = Counter()
            for g in self.grants:
                bucket = "available" if g.booked_available() else "pending"
                expected[f"customer/{g.customer}/{g.asset}/{bucket}"] += g.amount
                source = "house/points/issued/purchase" if g.asset == "points" else "house/cashback/funding/purchase"
                expected[source] -= g.amount
            assert +sums == +expected and -sums == -expected  # Counter's unary ops drop zero totals

        @invariant()
        def activity_matches_the_model(self) -> None:
            if self.program is None:
                return
            for customer in sorted(self.enrolled):
                response = client.get(f"/v1/customers/{customer}/activity", query_string={"limit": 500},
                                      headers=self.headers("app"))
                assert response.status_code == 200
                items = response.get_json()["items"]
                got = [(item["type"], item["reference"]["id"]) for item in items]
                batches = list(reversed(self.transactions[customer]))
                assert len(got) == sum(len(batch) for batch in batches), customer
                for batch in batches:  # newest first, batch by batch
                    assert frozenset(got[:len(batch)]) == batch, customer
                    got = got[len(batch):]

        def teardown(self) -> None:
            # Release everything still held so the next example's release-job counts are exact:
            # the clock and the database are shared by every example of this test.
            clock.advance(days=400)
            run_release_job(uow_factory, clock)

    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    ))
