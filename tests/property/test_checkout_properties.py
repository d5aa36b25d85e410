"""Random checkout sequences against the HTTP API, checked against an in-memory model (issue 7).

One Hypothesis state machine per test: each example creates its own program (clawback policy,
hold periods, earning, cashback and redemption rates drawn at random; programs are isolated, so one
database serves every example), enrols two or three customers and gives each an opening purchase.
Then it drives, through the Flask test client: purchases (some with lines, some for an order that
points already paid for), refunds (the rest, a partial amount, by lines, refused ones), holds of
points and cashback (some against an order), captures (all, part, nothing, too much), voids,
extends, settings patches, clock advances (onto and around hold expiries and return windows), the
jobs, exact replays of earlier writes, and ids reused with another body.

The model computes every amount itself from the documented rules (services/refunds.py,
services/redemptions.py, docs/DESIGN.md), never from the service's answers:

- a purchase of amount A for which the customer captured rewards worth P earns
  floor((A - P) * rate): the part paid with rewards never earns (issue 4);
- after refunds, the order keeps min(earned, floor(V * (A - P) / A * rate)) at the rates recorded
  on the purchase, where V is the value left: A minus refunds by amount, and for an order with
  lines, each SKU's net times the share of its quantity not returned, plus tax and shipping, minus
  refunds by amount; the drop is reversed,
  pending value first, then from `available`; what is not there is `uncollected`: `available`
  goes negative (allow_negative) or it goes to `house/{asset}/written_off` (write_off); captured
  redemptions carrying the order's id come back cumulatively floor(paid * R / A), booked before
  the clawback so that the clawback can take from them;
- hold, capture x of h (h - x back to available), void; a hold lapses at expires_at (<= now);
  capture and void share one key per redemption (the first wins, its exact repeat replays, anything
  else is redemption_not_held); extend is keyed by redemption and body (docs/DESIGN.md).

After every step:

- `verify()`: every transaction balances per asset, the ledger sums to zero per asset, cached
  balances equal their entries, open points lots match the balances;
- every customer's balances (GET) equal the model, where due pending value and lapsed holds
  count as available even before anything books them;
- the program's entries: their count is exactly what the model booked, and their sums per account
  (customer buckets as booked, house accounts: issued/funding, redeemed, written_off) equal it;
- no overdraft but by the clawback policy: `available` only ever drops below zero in a refund under
  allow_negative, never by more than that policy's uncollected total (so never under write_off);
  pending and reserved never go negative.

Every answer is checked too: a refused operation (insufficient_balance, below_min_redeem,
exceeds_max_redeem_share, redemption_not_held, hold_expired, capture_exceeds_hold,
refund_exceeds_purchase, lines_mismatch, duplicate_*) answers its problem and changes nothing
(the invariants above run right after it); a replay answers the first status and bytes with
`Idempotent-Replayed: true` and changes nothing; under an Idempotency-Key a refusal is replayed too.

Runs on whichever backend the suite runs on (LEDGER_TEST_BACKEND).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

ASSETS = ("points", "cashback")
CUSTOMERS = ("c-0", "c-1", "c-2")
SKUS = ("A", "B", "C")
PROBLEM = "application/problem+json"
SOURCE = {"points": "house/points/issued/purchase", "cashback": "house/cashback/funding/purchase"}


def _flatten(drawn: dict) -> dict:
    points_per_unit, unit_amount = drawn.pop("earning")
    redeem_minor_units, redeem_points = drawn.pop("redeem")
    min_redeem_points, redeem_step_points, max_redeem_share_bps = drawn.pop("limits")
    return {**drawn, "points_per_unit": points_per_unit, "unit_amount": unit_amount,
            "redeem_minor_units": redeem_minor_units, "redeem_points": redeem_points,
            "min_redeem_points": min_redeem_points, "redeem_step_points": redeem_step_points,
            "max_redeem_share_bps": max_redeem_share_bps}


program_settings = st.fixed_dictionaries({
    "clawback_policy": st.sampled_from(["allow_negative", "write_off"]),
    "points_hold_days": st.sampled_from([0, 0, 1, 7]),
    "cashback_hold_days": st.sampled_from([0, 1, 7]),
    "cashback_rate_bps": st.sampled_from([0, 200, 333, 1_000, 10_000]),
    "earning": st.sampled_from([(1, 100), (7, 300), (1, 1), (0, 100), (3, 1_000)]),  # points_per_unit, unit_amount
    "redeem": st.sampled_from([(1, 1), (100, 200), (3, 7), (1, 100), (50, 1)]),  # redeem_minor_units, redeem_points
    "limits": st.sampled_from([(0, 1, 10_000), (0, 1, 5_000), (10, 5, 10_000)]),  # min, step, max share
    "hold_ttl_seconds": st.sampled_from([900, 3_600]),
}).map(_flatten)

_patch_values = {
    "clawback_policy": st.sampled_from(["allow_negative", "write_off"]),
    "cashback_rate_bps": st.sampled_from([0, 200, 333, 10_000]),
    "points_per_unit": st.sampled_from([0, 1, 7]),
    "unit_amount": st.sampled_from([1, 100, 300]),
    "points_hold_days": st.sampled_from([0, 1, 7]),
    "cashback_hold_days": st.sampled_from([0, 1, 7]),
    "redeem_minor_units": st.sampled_from([1, 3, 100]),
    "redeem_points": st.sampled_from([1, 7, 200]),
}
patches = st.sets(st.sampled_from(sorted(_patch_values)), min_size=1, max_size=3).flatmap(
    lambda names: st.fixed_dictionaries({name: _patch_values[name] for name in sorted(names)}))

amounts = st.one_of(st.integers(1, 50_000), st.sampled_from([1, 99, 100, 10_000, 12_345]))
keyed = st.integers(0, 3).map(lambda n: n == 0)  # one write in four carries an Idempotency-Key


@st.composite
def order_lines(draw: Any) -> tuple[list[dict], int, int]:
    lines = []
    for sku in draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True)):
        quantity, unit_price = draw(st.integers(1, 4)), draw(st.integers(1, 5_000))
        line = {"sku": sku, "quantity": quantity, "unit_price": unit_price}
        discount = draw(st.sampled_from([0, 0, 1]) | st.integers(0, quantity * unit_price))
        if discount:
            line["discount"] = discount
        lines.append(line)
    tax, shipping = draw(st.sampled_from([0, 0, 250])), draw(st.sampled_from([0, 0, 499]))
    if sum(line["quantity"] * line["unit_price"] - line.get("discount", 0) for line in lines) + tax + shipping == 0:
        shipping = 1  # an amount is at least 1
    return lines, tax, shipping


@dataclass
class Grant:
    """Value a purchase put in `pending` for one asset, until release_at."""

    customer: str
    order_id: str
    asset: str
    amount: int
    release_at: datetime
    reversed: int = 0  # taken back by refunds while still pending
    released: bool = False  # the release transaction is booked

    @property
    def remaining(self) -> int:
        return self.amount - self.reversed


@dataclass
class Order:
    order_id: str
    customer: str
    amount: int
    earned: dict[str, int]
    rates: dict[str, int]  # as recorded on the accrual
    lines: list[dict] | None
    grants: dict[str, Grant] = field(default_factory=dict)
    refunded: int = 0
    returned: Counter = field(default_factory=Counter)  # sku -> quantity refunded by lines
    restored: dict[str, int] = field(default_factory=lambda: {"points": 0, "cashback": 0})
    paid_value: int = 0  # rewards captured for the order by its customer before it was recorded
    by_amount: int = 0  # refunded by amount rather than by lines

    def value_left(self, returned: Counter, by_amount: int) -> Fraction:
        if not self.lines:
            return Fraction(self.amount - by_amount)
        bought = self.bought()
        lines_net = sum(net for _, net in bought.values())
        left = Fraction(self.amount - lines_net)  # tax and shipping
        for sku, (quantity, net) in bought.items():
            left += Fraction(net * (quantity - returned[sku]), quantity)
        return max(left - by_amount, Fraction(0))

    def kept(self, asset: str, returned: Counter, by_amount: int) -> int:
        """What the order keeps with `returned` quantities and `by_amount` refunded."""
        base = self.value_left(returned, by_amount) * Fraction(self.amount - self.paid_value, self.amount)
        if asset == "points":
            would = base * self.rates["points_per_unit"] // self.rates["unit_amount"]
        else:
            would = base * self.rates["cashback_rate_bps"] // 10_000
        return min(self.earned[asset], int(would))

    def bought(self) -> dict[str, tuple[int, int]]:
        """sku -> (quantity, net) over the order's lines."""
        out: dict[str, tuple[int, int]] = {}
        for line in self.lines or []:
            quantity, net = out.get(line["sku"], (0, 0))
            out[line["sku"]] = (quantity + line["quantity"],
                                net + line["quantity"] * line["unit_price"] - line.get("discount", 0))
        return out


@dataclass
class Redemption:
    redemption_id: str
    customer: str
    asset: str
    amount: int
    value: int
    order_id: str | None
    body: dict
    expires_at: datetime
    status: str = "held"  # held (lapsed once expires_at <= now), captured, voided
    captured: int = 0
    expiry_booked: bool = False
    settle: tuple[str, dict, int, bytes] | None = None  # the capture or void that won: path, body, status, bytes
    extends: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # ttl_seconds -> first answer

    def lapsed(self, now: datetime) -> bool:
        return self.status == "held" and self.expires_at <= now


@dataclass
class Write:
    """A write as sent and its first answer: replaying it must answer the same bytes."""

    path: str
    body: dict
    headers: dict[str, str]
    status: int
    data: bytes


def test_random_checkouts_keep_every_balance_exact(app, client, make_program, clock, verify):
    from ledger.services.releases import run_jobs

    uow_factory = app.extensions["ledger"].uow

    class CheckoutMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.program = None
            self.settings: dict[str, Any] = {}
            self.customers: list[str] = []
            self.base: dict[tuple[str, str], int] = {}  # available, but for due pending value and lapsed holds
            self.grants: list[Grant] = []
            self.orders: dict[str, Order] = {}
            self.planned: dict[str, str] = {}  # order_id held against before it is bought -> its customer
            self.redemptions: dict[str, Redemption] = {}
            self.refunds: dict[str, tuple[str, dict]] = {}  # refund_id -> (order_id, body)
            self.writes: list[Write] = []
            self.house: Counter = Counter()
            self.entry_count = 0
            self.uncollected_allowed: Counter = Counter()  # (customer, asset) -> allow_negative shortfalls
            self.counter = 0
            self.repeats = self.patches = 0  # bounded, so that the steps go to the checkout itself
            self.step: tuple | None = None  # ("refund", customer, policy) when the last step booked a refund
            self.shown: dict[tuple[str, str], int] = {}  # available as last read

        # --- model ---------------------------------------------------------------------------

        def fresh(self, prefix: str) -> str:
            self.counter += 1
            return f"{prefix}-{self.counter}"

        def holds_of(self, customer: str, asset: str) -> list[Redemption]:
            return [r for r in self.redemptions.values()
                    if r.customer == customer and r.asset == asset and r.status == "held"]

        def grants_of(self, customer: str, asset: str) -> list[Grant]:
            return [g for g in self.grants if g.customer == customer and g.asset == asset]

        def expected_balances(self, customer: str) -> dict:
            """As a customer sees them now: due pending value and lapsed holds count as available."""
            now = clock.now()
            out: dict[str, Any] = {"currency": "EUR"}
            for asset in ASSETS:
                grants, holds = self.grants_of(customer, asset), self.holds_of(customer, asset)
                out[asset] = {
                    "available": (self.base[customer, asset]
                                  + sum(g.remaining for g in grants if g.release_at <= now)
                                  + sum(h.amount for h in holds if h.expires_at <= now)),
                    "pending": sum(g.remaining for g in grants if g.release_at > now),
                    "reserved": sum(h.amount for h in holds if h.expires_at > now),
                }
            return out

        def available(self, customer: str, asset: str) -> int:
            return self.expected_balances(customer)[asset]["available"]

        def booked_sums(self) -> Counter:
            """What the entries of each account must add up to, with only what was booked moved."""
            sums = Counter(self.house)
            for customer in self.customers:
                for asset in ASSETS:
                    grants, holds = self.grants_of(customer, asset), self.holds_of(customer, asset)
                    prefix = f"customer/{customer}/{asset}"
                    sums[f"{prefix}/available"] += (self.base[customer, asset]
                                                    + sum(g.remaining for g in grants if g.released)
                                                    + sum(h.amount for h in holds if h.expiry_booked))
                    sums[f"{prefix}/pending"] += sum(g.remaining for g in grants if not g.released)
                    sums[f"{prefix}/reserved"] += sum(h.amount for h in holds if not h.expiry_booked)
            return sums

        def upkeep(self, customer: str) -> tuple[int, int]:
            """What every write for a customer (and the jobs) books first: due releases, one transaction
            per purchase, and the expiry of lapsed holds. Returns (releases, expiries)."""
            now = clock.now()
            due: dict[str, list[Grant]] = defaultdict(list)
            for g in self.grants:
                if g.customer == customer and not g.released and g.release_at <= now and g.remaining > 0:
                    due[g.order_id].append(g)
            for grants in due.values():
                for g in grants:
                    g.released = True
                self.entry_count += 2 * len(grants)
            expired = 0
            for r in self.redemptions.values():
                if r.customer == customer and r.lapsed(now) and not r.expiry_booked:
                    r.expiry_booked = True
                    self.entry_count += 2
                    expired += 1
            return len(due), expired

        def pick_redemption(self, data: st.DataObject) -> Redemption:
            """Mostly a hold still live, else any redemption (settled, lapsed)."""
            now = clock.now()
            live = sorted(i for i, r in self.redemptions.items() if r.status == "held" and r.expires_at > now)
            if live and data.draw(st.integers(0, 3), label="any redemption") > 0:
                return self.redemptions[data.draw(st.sampled_from(live))]
            return self.redemptions[data.draw(st.sampled_from(sorted(self.redemptions)))]

        def points_value(self, points: int) -> int:
            return points * self.settings["redeem_minor_units"] // self.settings["redeem_points"]

        # --- HTTP ----------------------------------------------------------------------------

        def post(self, path: str, body: dict, with_key: bool) -> tuple[Any, dict[str, str]]:
            headers = self.program.headers("storefront")
            if with_key:
                headers["Idempotency-Key"] = self.fresh("key")
            return client.post(path, json=body, headers=headers), headers

        def accepted(self, response: Any, status: int, path: str, body: dict, headers: dict[str, str]) -> dict:
            assert response.status_code == status, response.get_data(as_text=True)
            assert response.mimetype == "application/json"
            assert "Idempotent-Replayed" not in response.headers
            self.writes.append(Write(path, body, headers, status, response.data))
            return response.get_json()

        def refused(self, response: Any, status: int, code: str, path: str, body: dict,
                    headers: dict[str, str]) -> None:
            assert response.status_code == status, (code, response.get_data(as_text=True))
            assert response.mimetype == PROBLEM
            assert response.get_json()["code"] == code, response.get_data(as_text=True)
            assert "Idempotent-Replayed" not in response.headers
            if "Idempotency-Key" in headers:  # stored under the key: its replay answers the same refusal
                self.writes.append(Write(path, body, headers, status, response.data))

        @staticmethod
        def replayed(response: Any, status: int, data: bytes) -> None:
            assert response.status_code == status, response.get_data(as_text=True)
            assert response.headers.get("Idempotent-Replayed") == "true"
            assert response.data == data

        def check_redemption(self, r: Redemption) -> None:
            got = client.get(f"/v1/redemptions/{r.redemption_id}", headers=self.program.headers("app"))
            assert got.status_code == 200, got.get_data(as_text=True)
            shown = got.get_json()
            status = "expired" if r.lapsed(clock.now()) else r.status
            assert shown["status"] == status
            assert shown["captured_amount"] == {"captured": r.captured, "voided": 0}.get(status)
            assert datetime.fromisoformat(shown["expires_at"]) == r.expires_at
            assert (shown["asset"], shown["amount"], shown["customer_id"]) == (r.asset, r.amount, r.customer)

        def check_redemption_answer(self, data: dict, r: Redemption) -> None:
            assert data["redemption_id"] == r.redemption_id and data["customer_id"] == r.customer
            assert (data["status"], data["asset"], data["amount"], data["value"]) == (r.status, r.asset, r.amount,
                                                                                       r.value)
            assert data["captured_amount"] == {"captured": r.captured, "voided": 0}.get(r.status)
            assert data["order_id"] == r.order_id
            assert datetime.fromisoformat(data["expires_at"]) == r.expires_at
            assert data["balances"] == self.expected_balances(r.customer)

        # --- setup ---------------------------------------------------------------------------

        @initialize(chosen=program_settings, members=st.integers(2, 3),
                    opening=st.lists(st.integers(1, 50_000) | order_lines(), min_size=3, max_size=3))
        def create_program(self, chosen: dict, members: int, opening: list) -> None:
            self.program = make_program(**chosen)
            self.settings = dict(chosen)
            for name, value in chosen.items():
                assert self.program.body[name] == value, name
            for customer in CUSTOMERS[:members]:
                response = client.put(f"/v1/customers/{customer}", json={}, headers=self.program.headers("storefront"))
                assert response.status_code == 201, response.get_data(as_text=True)
                self.customers.append(customer)
                for asset in ASSETS:
                    self.base[customer, asset] = 0
                assert response.get_json()["balances"] == self.expected_balances(customer)
            for customer, first in zip(self.customers, opening):  # something to spend
                if isinstance(first, int):
                    self.post_purchase(self.fresh("O"), customer, first, None, False)
                else:
                    self.post_purchase(self.fresh("O"), customer, 0, first, False)

        # --- purchases and refunds -----------------------------------------------------------

        @rule(data=st.data(), amount=amounts, with_lines=st.integers(0, 2).map(lambda n: n == 0), with_key=keyed,
              paid_with=st.sampled_from([None, None, "points", "cashback"]))
        def purchase(self, data: st.DataObject, amount: int, with_lines: bool, with_key: bool,
                     paid_with: str | None) -> None:
            """A purchase: a new order, or one that points were held for earlier; or the whole storefront
            checkout: hold part of the order's value in points or cashback, capture it, record the purchase."""
            if self.planned and data.draw(st.booleans(), label="an order points were held for"):
                order_id = data.draw(st.sampled_from(sorted(self.planned)))
                customer = self.planned[order_id]
            else:
                order_id, customer = self.fresh("O"), data.draw(st.sampled_from(self.customers))
            lines = None
            if with_lines:
                lines = data.draw(order_lines())
                amount = sum(i["quantity"] * i["unit_price"] - i.get("discount", 0) for i in lines[0]) + sum(lines[1:])
            if paid_with is not None and self.available(customer, paid_with) > 0:
                available = self.available(customer, paid_with)
                body = {"redemption_id": self.fresh("R"), "customer_id": customer, "asset": paid_with,
                        "amount": data.draw(st.sampled_from([1, max(available // 2, 1), available])
                                            | st.integers(1, available)),
                        "order_id": order_id, "order_amount": amount}
                r = self.post_hold(body, with_key)
                if r is not None:
                    self.post_capture(r, "all", data, with_key)
            self.post_purchase(order_id, customer, amount, lines, with_key)

        def post_purchase(self, order_id: str, customer: str, amount: int,
                          lines: tuple[list[dict], int, int] | None, with_key: bool) -> None:
            body: dict[str, Any] = {"order_id": order_id, "customer_id": customer, "currency": "EUR"}
            if lines is not None:
                items, tax, shipping = lines
                amount = sum(i["quantity"] * i["unit_price"] - i.get("discount", 0) for i in items) + tax + shipping
                body.update(lines=items, tax=tax, shipping=shipping)
            body["amount"] = amount
            response, headers = self.post("/v1/purchases", body, with_key)
            data = self.accepted(response, 201, "/v1/purchases", body, headers)
            self.upkeep(customer)
            s, now = self.settings, clock.now()
            rates = {k: s[k] for k in ("points_per_unit", "unit_amount", "cashback_rate_bps")}
            paid_value = min(sum(self.points_value(r.captured) if r.asset == "points" else r.captured
                                 for r in self.redemptions.values()
                                 if r.order_id == order_id and r.status == "captured" and r.customer == customer), amount)
            base = amount - paid_value
            earned = {"points": base * s["points_per_unit"] // s["unit_amount"],
                      "cashback": base * s["cashback_rate_bps"] // 10_000}
            hold_days = {"points": s["points_hold_days"], "cashback": s["cashback_hold_days"]}
            order = Order(order_id, customer, amount, earned, rates, lines[0] if lines is not None else None,
                          paid_value=paid_value)
            assert (data["points_earned"], data["cashback_earned"]) == (earned["points"], earned["cashback"])
            for asset, value in earned.items():
                if value == 0:
                    assert data[f"{asset}_status"] is None
                    continue
                if hold_days[asset]:
                    assert data[f"{asset}_status"] == "pending"
                    grant = Grant(customer, order_id, asset, value, now + timedelta(days=hold_days[asset]))
                    self.grants.append(grant)
                    order.grants[asset] = grant
                else:
                    assert data[f"{asset}_status"] == "available"
                    self.base[customer, asset] += value
                self.house[SOURCE[asset]] -= value
                self.entry_count += 2
            assert (data["transaction_id"] is None) == (not any(earned.values()))
            assert data["balances"] == self.expected_balances(customer)
            self.orders[order_id] = order
            self.planned.pop(order_id, None)

        @precondition(lambda self: any(order.refunded < order.amount for order in self.orders.values()))
        @rule(data=st.data(), how=st.sampled_from(["rest", "all", "part", "part", "one", "over", "lines", "lines"]),
              with_key=keyed)
        def refund(self, data: st.DataObject, how: str, with_key: bool) -> None:
            """The rest of an order, an amount (within or beyond what is left), or lines. Orders that points
            or cashback paid for, and orders with lines for a refund by lines, are drawn more often."""
            paid = sorted({r.order_id for r in self.redemptions.values()
                           if r.status == "captured" and r.order_id in self.orders})
            with_lines = sorted(o for o, order in self.orders.items() if order.lines)
            open_ = sorted(o for o, order in self.orders.items() if order.refunded < order.amount)
            favoured = [o for o in (with_lines if how == "lines" else paid) if o in open_]
            choice = data.draw(st.integers(0, 3), label="favoured, open or any order")
            if favoured and choice < 2:
                order = self.orders[data.draw(st.sampled_from(favoured))]
            elif open_ and choice < 3:
                order = self.orders[data.draw(st.sampled_from(open_))]
            else:
                order = self.orders[data.draw(st.sampled_from(sorted(self.orders)))]
            body: dict[str, Any] = {"refund_id": self.fresh("F")}
            left = order.amount - order.refunded
            if how == "lines":
                bought = order.bought()
                skus = sorted(bought) or ["A"]
                lines = []
                for _ in range(data.draw(st.integers(1, 2))):
                    sku = data.draw(st.sampled_from(skus * 3 + ["Z"]))  # Z: never bought
                    most = bought.get(sku, (1, 0))[0] - order.returned[sku]
                    lines.append({"sku": sku, "quantity": data.draw(st.integers(1, max(most, 0) + 1))})
                body["lines"] = lines
                with_amount = data.draw(st.sampled_from([None, None, "exact", "off"]))
                if with_amount:
                    exact = sum(line["quantity"] * bought[line["sku"]][1] // bought[line["sku"]][0]
                                for line in lines if line["sku"] in bought)
                    if with_amount == "off":
                        body["amount"] = exact + 1
                    elif exact > 0:
                        body["amount"] = exact
            elif how == "all":
                body["amount"] = max(left, 1)
            elif how == "part":
                body["amount"] = data.draw(st.integers(1, max(left, 1)))
            elif how == "one":
                body["amount"] = 1
            elif how == "over":
                body["amount"] = left + 1
            self.post_refund(order, body, with_key)

        def refund_amount(self, order: Order, body: dict) -> tuple[int, str | None]:
            """The amount a refund body comes to, or the code it is refused with."""
            left = order.amount - order.refunded
            if "lines" not in body:
                amount = body.get("amount", left)
            else:
                bought, returned, amount = order.bought(), Counter(order.returned), 0
                for line in body["lines"]:
                    if line["sku"] not in bought:
                        return 0, "refund_exceeds_purchase"
                    quantity, net = bought[line["sku"]]
                    returned[line["sku"]] += line["quantity"]
                    if returned[line["sku"]] > quantity:
                        return 0, "refund_exceeds_purchase"
                    amount += line["quantity"] * net // quantity
                if "amount" in body and body["amount"] != amount:
                    return 0, "lines_mismatch"
            if amount <= 0 or amount > left:
                return 0, "refund_exceeds_purchase"
            return amount, None

        def post_refund(self, order: Order, body: dict, with_key: bool) -> None:
            path = f"/v1/purchases/{order.order_id}/refunds"
            response, headers = self.post(path, body, with_key)
            amount, refusal = self.refund_amount(order, body)
            if refusal:
                self.refused(response, 422, refusal, path, body, headers)
                return
            data = self.accepted(response, 201, path, body, headers)
            customer, now, policy = order.customer, clock.now(), self.settings["clawback_policy"]
            self.upkeep(customer)
            total = order.refunded + amount
            entries = 0
            restored: dict[str, int] = {}
            for asset in ASSETS:  # what paid for the order comes back first
                paid = sum(r.captured for r in self.redemptions.values()
                           if r.order_id == order.order_id and r.asset == asset and r.status == "captured")
                restored[asset] = paid * total // order.amount - order.restored[asset]
                assert restored[asset] >= 0
                order.restored[asset] += restored[asset]
                if restored[asset]:
                    self.base[customer, asset] += restored[asset]
                    self.house[f"house/{asset}/redeemed"] -= restored[asset]
                    entries += 2
            reversed_: dict[str, int] = {}
            uncollected: dict[str, int] = {}
            for asset in ASSETS:
                returned_after = Counter(order.returned)
                for line in body.get("lines", []):
                    returned_after[line["sku"]] += line["quantity"]
                by_amount_after = order.by_amount + (amount if "lines" not in body else 0)
                to_reverse = (order.kept(asset, order.returned, order.by_amount)
                              - order.kept(asset, returned_after, by_amount_after))
                assert to_reverse >= 0
                reversed_[asset], uncollected[asset] = to_reverse, 0
                if to_reverse == 0:
                    continue
                self.house[SOURCE[asset]] += to_reverse
                entries += 1
                grant, from_pending = order.grants.get(asset), 0
                if grant is not None and grant.release_at > now:  # still pending: reversed first
                    from_pending = min(to_reverse, grant.remaining)
                    grant.reversed += from_pending
                    entries += from_pending > 0
                rest = to_reverse - from_pending
                collected = min(rest, max(self.available(customer, asset), 0))
                short = rest - collected
                debit = collected + (short if policy == "allow_negative" else 0)
                if debit:
                    self.base[customer, asset] -= debit
                    entries += 1
                if short and policy == "write_off":
                    self.house[f"house/{asset}/written_off"] -= short
                    entries += 1
                if short and policy == "allow_negative":
                    self.uncollected_allowed[customer, asset] += short
                uncollected[asset] = short
            assert data["refund_id"] == body["refund_id"] and data["order_id"] == order.order_id
            assert data["customer_id"] == customer and data["amount"] == amount
            for asset in ASSETS:
                assert data[f"{asset}_reversed"] == reversed_[asset], asset
                assert data[f"{asset}_restored"] == restored[asset], asset
                assert data[f"{asset}_uncollected"] == uncollected[asset], asset
            assert (data["transaction_id"] is None) == (entries == 0)
            assert data["balances"] == self.expected_balances(customer)
            self.entry_count += entries
            order.refunded = total
            if "lines" not in body:
                order.by_amount += amount
            for line in body.get("lines", []):
                order.returned[line["sku"]] += line["quantity"]
            self.refunds[body["refund_id"]] = (order.order_id, body)
            self.step = ("refund", customer, policy)

        # --- redemptions ---------------------------------------------------------------------

        @rule(data=st.data(), with_key=keyed, ttl=st.sampled_from([None, None, 30, 3_600, 86_400]),
              on_order=st.sampled_from(["none", "bought", "bought", "planned", "planned"]),
              share=st.sampled_from([None, None, None, "order", "small"]),
              then=st.sampled_from([None, None, "all", "part", "void"]))
        def hold(self, data: st.DataObject, with_key: bool, ttl: int | None, on_order: str, share: str | None,
                 then: str | None) -> None:
            """A hold, and then (as a storefront does once payment goes through or fails) its capture or void
            in the same step, or nothing (the capture, void and extend rules act on it later, or it lapses)."""
            s = self.settings
            funded = sorted((c, a) for c in self.customers for a in ASSETS if self.available(c, a) > 0)
            if funded and data.draw(st.integers(0, 3), label="any customer and asset") > 0:
                customer, asset = data.draw(st.sampled_from(funded))
            else:
                customer, asset = data.draw(st.sampled_from(self.customers)), data.draw(st.sampled_from(ASSETS))
            available = self.available(customer, asset)
            if available > 0:  # mostly within what is available, sometimes one more
                amount = data.draw(st.sampled_from(sorted({1, max(available // 2, 1), available, available + 1}))
                                   | st.integers(1, available))
            else:
                amount = data.draw(st.sampled_from([1, 5, 10]))
            step = s["redeem_step_points"]
            if asset == "points" and step > 1 and data.draw(st.booleans(), label="on the step"):
                amount = max(step, amount - amount % step)
            body: dict[str, Any] = {"redemption_id": self.fresh("R"), "customer_id": customer, "asset": asset,
                                    "amount": amount}
            mine = sorted(o for o, order in self.orders.items() if order.customer == customer)
            order_id = None
            if on_order == "bought" and mine:
                order_id = data.draw(st.sampled_from(mine))
            elif on_order == "planned":
                order_id = self.fresh("O")
            if order_id is not None:
                body["order_id"] = order_id
            order_amount = None
            if share == "order":
                order_amount = (self.orders[order_id].amount if order_id in self.orders
                                else data.draw(st.integers(1, 20_000)))
            elif share == "small":
                order_amount = data.draw(st.integers(1, 2_000))
            if order_amount is not None:
                body["order_amount"] = order_amount
            if ttl is not None:
                body["ttl_seconds"] = ttl
            r = self.post_hold(body, with_key)
            if r is not None and then == "void":
                self.post_void(r, with_key)
            elif r is not None and then is not None:
                self.post_capture(r, then, data, with_key)

        def post_hold(self, body: dict, with_key: bool) -> Redemption | None:
            """POST a hold; the model's redemption if it was placed, None if refused."""
            s, now = self.settings, clock.now()
            customer, asset, amount = body["customer_id"], body["asset"], body["amount"]
            order_id, order_amount = body.get("order_id"), body.get("order_amount")
            available = self.available(customer, asset)
            path = "/v1/redemptions"
            response, headers = self.post(path, body, with_key)
            value = self.points_value(amount) if asset == "points" else amount
            if asset == "points" and (amount < s["min_redeem_points"] or amount % s["redeem_step_points"]):
                self.refused(response, 422, "below_min_redeem", path, body, headers)
                return None
            if order_amount is not None and value > order_amount * s["max_redeem_share_bps"] // 10_000:
                self.refused(response, 422, "exceeds_max_redeem_share", path, body, headers)
                return None
            if amount > available:
                self.refused(response, 422, "insufficient_balance", path, body, headers)
                return None
            data_ = self.accepted(response, 201, path, body, headers)
            self.upkeep(customer)
            r = Redemption(body["redemption_id"], customer, asset, amount, value, order_id, body,
                           now + timedelta(seconds=body.get("ttl_seconds") or s["hold_ttl_seconds"]))
            self.redemptions[r.redemption_id] = r
            self.base[customer, asset] -= amount
            self.entry_count += 2
            if order_id is not None and order_id not in self.orders:
                self.planned[order_id] = customer
            self.check_redemption_answer(data_, r)
            return r

        @precondition(lambda self: self.redemptions)
        @rule(data=st.data(), how=st.sampled_from(["all", "all", "part", "zero", "held", "over"]), with_key=keyed)
        def capture(self, data: st.DataObject, how: str, with_key: bool) -> None:
            self.post_capture(self.pick_redemption(data), how, data, with_key)

        def post_capture(self, r: Redemption, how: str, data: st.DataObject, with_key: bool) -> None:
            amount = {"all": r.amount, "zero": 0, "held": r.amount, "over": r.amount + 1}.get(how)
            if how == "part":
                amount = data.draw(st.integers(0, r.amount))
            body = {} if how == "all" else {"amount": amount}
            path = f"/v1/redemptions/{r.redemption_id}/capture"
            response, headers = self.post(path, body, with_key)
            if r.settle is not None:  # the first capture or void won; only its exact repeat replays
                if r.settle[:2] == (path, body):
                    self.replayed(response, r.settle[2], r.settle[3])
                else:
                    self.refused(response, 409, "redemption_not_held", path, body, headers)
            elif r.lapsed(clock.now()):
                self.refused(response, 409, "hold_expired", path, body, headers)
            elif amount > r.amount:
                self.refused(response, 422, "capture_exceeds_hold", path, body, headers)
            else:
                data_ = self.accepted(response, 200, path, body, headers)
                self.upkeep(r.customer)
                self.base[r.customer, r.asset] += r.amount - amount
                self.house[f"house/{r.asset}/redeemed"] += amount
                self.entry_count += 1 + (amount > 0) + (r.amount - amount > 0)
                r.status, r.captured = "captured", amount
                r.value = self.points_value(amount) if r.asset == "points" else amount
                r.settle = (path, body, 200, response.data)
                self.check_redemption_answer(data_, r)
            self.check_redemption(r)

        @precondition(lambda self: self.redemptions)
        @rule(data=st.data(), with_key=keyed)
        def void(self, data: st.DataObject, with_key: bool) -> None:
            self.post_void(self.pick_redemption(data), with_key)

        def post_void(self, r: Redemption, with_key: bool) -> None:
            path, body = f"/v1/redemptions/{r.redemption_id}/void", {}
            response, headers = self.post(path, body, with_key)
            if r.settle is not None:
                if r.settle[:2] == (path, body):
                    self.replayed(response, r.settle[2], r.settle[3])
                else:
                    self.refused(response, 409, "redemption_not_held", path, body, headers)
            elif r.lapsed(clock.now()):
                self.refused(response, 409, "hold_expired", path, body, headers)
            else:
                data_ = self.accepted(response, 200, path, body, headers)
                self.upkeep(r.customer)
                self.base[r.customer, r.asset] += r.amount
                self.entry_count += 2
                r.status = "voided"
                r.settle = (path, body, 200, response.data)
                self.check_redemption_answer(data_, r)
            self.check_redemption(r)

        @precondition(lambda self: self.redemptions)
        @rule(data=st.data(), ttl=st.sampled_from([60, 600, 3_600]), with_key=keyed)
        def extend(self, data: st.DataObject, ttl: int, with_key: bool) -> None:
            r = self.pick_redemption(data)
            path, body = f"/v1/redemptions/{r.redemption_id}/extend", {"ttl_seconds": ttl}
            response, headers = self.post(path, body, with_key)
            if ttl in r.extends:  # keyed by redemption and body: the same extension again is a replay
                self.replayed(response, *r.extends[ttl])
            elif r.lapsed(clock.now()):
                self.refused(response, 409, "hold_expired", path, body, headers)
            elif r.status != "held":
                self.refused(response, 409, "redemption_not_held", path, body, headers)
            else:
                data_ = self.accepted(response, 200, path, body, headers)
                self.upkeep(r.customer)
                r.expires_at = clock.now() + timedelta(seconds=ttl)
                r.extends[ttl] = (200, response.data)
                self.check_redemption_answer(data_, r)
            self.check_redemption(r)

        # --- replays and reused ids ----------------------------------------------------------

        @precondition(lambda self: self.writes and self.repeats < 6)
        @rule(data=st.data(), exact=st.integers(0, 3).map(lambda n: n > 0), with_key=keyed)
        def repeat(self, data: st.DataObject, exact: bool, with_key: bool) -> None:
            """Replay an earlier write exactly (headers included), or reuse a refund or redemption id with
            another body."""
            self.repeats += 1
            ids = [("refund", i) for i in sorted(self.refunds)] + [("redemption", i) for i in sorted(self.redemptions)]
            if exact or not ids:
                write = data.draw(st.sampled_from(self.writes))
                response = client.post(write.path, json=write.body, headers=write.headers)
                self.replayed(response, write.status, write.data)
                return
            kind, id_ = data.draw(st.sampled_from(ids))
            if kind == "refund":
                order_id, first = self.refunds[id_]
                path, body = f"/v1/purchases/{order_id}/refunds", {"refund_id": id_, "amount": first.get("amount", 0) + 1}
            else:
                path, body = "/v1/redemptions", {**self.redemptions[id_].body}
                body["amount"] += 1
            response, headers = self.post(path, body, with_key)
            self.refused(response, 409, f"duplicate_{kind}", path, body, headers)

        # --- settings, time, jobs ------------------------------------------------------------

        @precondition(lambda self: self.patches < 2)
        @rule(changes=patches)
        def patch_settings(self, changes: dict) -> None:
            self.patches += 1
            response = client.patch("/v1/program", json=changes, headers=self.program.headers("admin"))
            assert response.status_code == 200, response.get_data(as_text=True)
            self.settings.update(changes)
            data = response.get_json()
            assert {k: data[k] for k in self.settings} == self.settings

        @rule(data=st.data(), edge=st.sampled_from([None, "expiry", "release"]),
              offset=st.sampled_from([-1, 0, 0, 1]), days=st.sampled_from([0, 0, 0, 1, 7, 8]),
              seconds=st.sampled_from([0, 1, 29, 30, 59, 60, 61, 900, 3_600]), then_jobs=st.booleans())
        def advance_clock(self, data: st.DataObject, edge: str | None, offset: int, days: int, seconds: int,
                          then_jobs: bool) -> None:
            """Onto (or a second either side of) a live hold's expiry or a pending release, else by some
            time; then, or not, the jobs (releases and expiries, one transaction per customer)."""
            now, delta = clock.now(), timedelta(seconds=offset)
            if edge == "release":
                edges = {g.release_at for g in self.grants if g.remaining and g.release_at > now}
            else:
                edges = {r.expires_at for r in self.redemptions.values() if r.status == "held" and r.expires_at > now}
            targets = sorted(t + delta for t in edges if t + delta >= now)
            if edge and targets:
                target = data.draw(st.sampled_from(targets))
                clock.advance(seconds=(target - now).total_seconds())
                assert clock.now() == target
            else:
                clock.advance(days=days, seconds=seconds)
            if then_jobs:
                done = run_jobs(uow_factory, clock)
                releases = expired = 0
                for customer in self.customers:
                    r, e = self.upkeep(customer)
                    releases, expired = releases + r, expired + e
                booked = {k: done[k] for k in ("releases", "expired_holds", "expired_points", "tier_evaluations")}
                assert booked == {"releases": releases, "expired_holds": expired, "expired_points": 0,
                                  "tier_evaluations": 0}

        # --- invariants ----------------------------------------------------------------------

        @invariant()
        def ledger_verifies(self) -> None:
            if self.program is not None:
                verify()

        @invariant()
        def balances_match_and_no_overdraft_but_by_policy(self) -> None:
            if self.program is None:
                return
            for customer in self.customers:
                response = client.get(f"/v1/customers/{customer}/balances", headers=self.program.headers("app"))
                assert response.status_code == 200
                got = response.get_json()
                for asset in ASSETS:  # first the rule itself, independently of the model
                    assert got[asset]["pending"] >= 0 and got[asset]["reserved"] >= 0, (customer, asset)
                    available = got[asset]["available"]
                    assert available >= -self.uncollected_allowed[customer, asset], (customer, asset)
                    before = self.shown.get((customer, asset), 0)
                    if available < 0 and available < before:
                        assert self.step == ("refund", customer, "allow_negative"), (customer, asset, before)
                    self.shown[customer, asset] = available
                assert got == self.expected_balances(customer), customer
            self.step = None

        @invariant()
        def entries_match_the_model(self) -> None:
            if self.program is None:
                return
            entries, cursor = [], None
            while True:
                query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = client.get("/v1/ledger/entries", query_string=query, headers=self.program.headers("finance"))
                assert page.status_code == 200
                body = page.get_json()
                entries += body["items"]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert len(entries) == self.entry_count
            sums: Counter = Counter()
            for e in entries:
                assert e["amount"] != 0
                sums[e["account"]] += e["amount"]
            expected = self.booked_sums()
            assert +sums == +expected and -sums == -expected  # Counter's unary ops drop zero totals

        def teardown(self) -> None:
            # The clock and the database are shared by every example, and the jobs sweep every
            # program: book everything still pending or held so the next example's counts are exact.
            clock.advance(days=400)
            run_jobs(uow_factory, clock)

    run_state_machine_as_test(CheckoutMachine, settings=settings(
        max_examples=20, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    ))
