"""A burst of 200 concurrent requests for ten customers ends with exact, explainable balances (issue 7).

Ten customers start with known balances (two purchases each, one hold captured against the first
order, four holds still held). Then 200 requests are fired at once from 32 threads released by a
barrier: new purchases, holds (some must fail `insufficient_balance`), captures and voids of the
earlier holds (a capture racing a void of the same hold, a capture sent twice, a capture of a hold
placed in the same burst), and refunds of the earlier orders (full and partial, some of which
must fail `refund_exceeds_purchase` depending on which commits first).

Every answer is recorded. The expected final balances are computed from the answers alone (what was
acknowledged, and what each refund says it reversed and restored) and must equal the API's balances
exactly, per customer, asset and bucket. The answers must also agree with each other and with what
the rules say whatever the order of commits was (e.g. an order's refunds reverse in total exactly
what the refunded part earned). `verify()` must hold, and nothing answers 5xx.

Both backends, in process: one `app.test_client()` per thread. On PostgreSQL the requests run in
parallel on the app's connection pool; on SQLite the writers queue on BEGIN IMMEDIATE.
"""
from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

N_CUSTOMERS = 10
THREADS = 32
BARRIER_TIMEOUT = 20
BURST_TIMEOUT = 120
SETUP_HOLD = 20           # points in each of the four holds still held when the burst starts
PAID = 50                 # points captured against each customer's first order before the burst
BURST_HOLDS = (40, 70, 100, 130)  # more than anyone has available, all together
ASSETS = ("points", "cashback")
BUCKETS = ("available", "pending", "reserved")


@dataclass
class Call:
    kind: str                 # purchase | hold | capture | void | refund
    path: str
    body: dict[str, Any]
    customer: str
    target: str = ""          # the redemption or order it acts on
    status: int = 0
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def answer(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def replayed(self) -> bool:
        return self.headers.get("Idempotent-Replayed") == "true"


def first_order(i: int) -> int:
    return 30_000 + 100 * i


SECOND_ORDER = 12_345


def points_for(amount: int) -> int:  # the `program` fixture: 1 point per euro, available at once
    return amount // 100


def cashback_for(amount: int) -> int:  # 2% cashback, pending for 30 days
    return amount * 200 // 10_000


def call(client: Any, program: Any, c: Call) -> Call:
    response = client.post(c.path, json=c.body, headers=program.headers("storefront"))
    c.status, c.raw, c.headers = response.status_code, response.get_data(), dict(response.headers)
    return c


def setup_calls(i: int) -> list[Call]:
    cid = f"c-{i}"
    calls = [
        Call("purchase", "/v1/purchases", {"order_id": f"S-{i}-0", "customer_id": cid, "amount": first_order(i),
                                           "currency": "EUR"}, cid, f"S-{i}-0"),
        Call("purchase", "/v1/purchases", {"order_id": f"S-{i}-1", "customer_id": cid, "amount": SECOND_ORDER,
                                           "currency": "EUR"}, cid, f"S-{i}-1"),
        Call("hold", "/v1/redemptions", {"redemption_id": f"H-{i}-0", "customer_id": cid, "asset": "points",
                                         "amount": PAID, "order_id": f"S-{i}-0"}, cid, f"H-{i}-0"),
        Call("capture", f"/v1/redemptions/H-{i}-0/capture", {}, cid, f"H-{i}-0"),
    ]
    calls += [Call("hold", "/v1/redemptions", {"redemption_id": f"H-{i}-{k}", "customer_id": cid, "asset": "points",
                                               "amount": SETUP_HOLD}, cid, f"H-{i}-{k}") for k in (1, 2, 3, 4)]
    return calls


def burst_calls(i: int) -> list[Call]:
    """Twenty requests for customer c-{i}."""
    cid = f"c-{i}"
    calls = [Call("purchase", "/v1/purchases", {"order_id": f"B-{i}-{k}", "customer_id": cid,
                                                "amount": 2_000 + 1_111 * k + 7 * i, "currency": "EUR"}, cid,
                  f"B-{i}-{k}") for k in range(4)]
    calls += [Call("hold", "/v1/redemptions", {"redemption_id": f"BH-{i}-{k}", "customer_id": cid, "asset": "points",
                                               "amount": amount}, cid, f"BH-{i}-{k}")
              for k, amount in enumerate(BURST_HOLDS)]
    # Cashback is all pending (30-day hold): a cashback hold can only be refused.
    calls.append(Call("hold", "/v1/redemptions", {"redemption_id": f"BH-{i}-cb", "customer_id": cid,
                                                  "asset": "cashback", "amount": 100}, cid, f"BH-{i}-cb"))
    calls += [
        Call("capture", f"/v1/redemptions/H-{i}-1/capture", {}, cid, f"H-{i}-1"),           # races the void
        Call("void", f"/v1/redemptions/H-{i}-1/void", {}, cid, f"H-{i}-1"),
        Call("capture", f"/v1/redemptions/H-{i}-2/capture", {"amount": 7}, cid, f"H-{i}-2"),  # sent twice
        Call("capture", f"/v1/redemptions/H-{i}-2/capture", {"amount": 7}, cid, f"H-{i}-2"),
        Call("void", f"/v1/redemptions/H-{i}-3/void", {}, cid, f"H-{i}-3"),
        Call("capture", f"/v1/redemptions/BH-{i}-0/capture", {}, cid, f"BH-{i}-0"),         # placed in this burst
    ]
    refund = lambda rid, order, amount: Call(  # noqa: E731
        "refund", f"/v1/purchases/{order}/refunds",
        {"refund_id": rid, **({"amount": amount} if amount is not None else {})}, cid, order)
    calls += [
        refund(f"RF-{i}-0", f"S-{i}-0", 10_000),   # two partial refunds and one of the rest: whichever
        refund(f"RF-{i}-1", f"S-{i}-0", 10_000),   # order they commit in, the order ends fully refunded
        refund(f"RF-{i}-2", f"S-{i}-0", None),
        refund(f"RF-{i}-3", f"S-{i}-1", 5_000),    # together more than the order: exactly one succeeds
        refund(f"RF-{i}-4", f"S-{i}-1", 8_000),
    ]
    assert len(calls) == 20
    return calls


def fire(app: Any, program: Any, calls: list[Call]) -> float:
    """All calls from THREADS threads released together by a barrier; returns the seconds it took."""
    todo: queue.SimpleQueue[Call] = queue.SimpleQueue()
    for c in calls:
        todo.put(c)
    barrier = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT)

    def worker() -> None:
        client = app.test_client()  # one client per thread
        barrier.wait()
        while True:
            try:
                c = todo.get_nowait()
            except queue.Empty:
                return
            call(client, program, c)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for future in [pool.submit(worker) for _ in range(THREADS)]:
            future.result(timeout=BARRIER_TIMEOUT + BURST_TIMEOUT)
    return time.monotonic() - t0


class Model:
    """Expected balances, from the acknowledged answers only."""

    def __init__(self, clawback_policy: str) -> None:
        self.policy = clawback_policy
        self.balances: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: {asset: dict.fromkeys(BUCKETS, 0) for asset in ASSETS})
        self.holds: dict[str, dict[str, Any]] = {}         # redemption_id -> hold answer, with its fate
        self.pending_of_order: dict[str, dict[str, int]] = {}

    def apply(self, c: Call) -> None:
        if c.status >= 300 or c.replayed:
            return  # refused, or the same request answered again: nothing (more) was booked
        a = c.answer
        b = self.balances[c.customer]
        if c.kind == "purchase":
            self.pending_of_order[a["order_id"]] = {}
            for asset in ASSETS:
                earned, status = a[f"{asset}_earned"], a[f"{asset}_status"]
                if earned:
                    b[asset][status] += earned
                self.pending_of_order[a["order_id"]][asset] = earned if status == "pending" else 0
        elif c.kind == "hold":
            b[a["asset"]]["available"] -= a["amount"]
            b[a["asset"]]["reserved"] += a["amount"]
            self.holds[a["redemption_id"]] = {"asset": a["asset"], "amount": a["amount"], "status": "held",
                                              "customer": c.customer}
        elif c.kind in ("capture", "void"):
            hold = self.holds[c.target]
            assert hold["status"] == "held", (c, hold)  # one settlement per hold
            assert a["status"] == {"capture": "captured", "void": "voided"}[c.kind], a
            captured = a["captured_amount"] if c.kind == "capture" else 0
            b[hold["asset"]]["reserved"] -= hold["amount"]
            b[hold["asset"]]["available"] += hold["amount"] - captured
            hold.update(status=a["status"], captured=captured)
        elif c.kind == "refund":
            for asset in ASSETS:
                b[asset]["available"] += a[f"{asset}_restored"]
                reversed_ = a[f"{asset}_reversed"]
                from_pending = min(reversed_, self.pending_of_order[a["order_id"]][asset])
                self.pending_of_order[a["order_id"]][asset] -= from_pending
                b[asset]["pending"] -= from_pending
                rest = reversed_ - from_pending
                b[asset]["available"] -= rest if self.policy == "allow_negative" else rest - a[f"{asset}_uncollected"]
        else:
            raise AssertionError(c.kind)


def test_a_burst_of_200_mixed_requests_ends_with_exact_explainable_balances(app, client, program, enrol, verify):
    assert program.body["clawback_policy"] == "allow_negative"
    assert (program.body["points_hold_days"], program.body["cashback_hold_days"]) == (0, 30)
    model = Model(program.body["clawback_policy"])
    for i in range(N_CUSTOMERS):
        enrol(program, f"c-{i}")
        for c in setup_calls(i):
            call(client, program, c)
            assert c.status in (200, 201) and not c.replayed, (c.path, c.status, c.raw)
            model.apply(c)
    for i in range(N_CUSTOMERS):  # the known starting point
        assert model.balances[f"c-{i}"] == {
            "points": {"available": points_for(first_order(i)) + points_for(SECOND_ORDER) - PAID - 4 * SETUP_HOLD,
                       "pending": 0, "reserved": 4 * SETUP_HOLD},
            "cashback": {"available": 0, "pending": cashback_for(first_order(i)) + cashback_for(SECOND_ORDER),
                         "reserved": 0}}

    calls = [c for i in range(N_CUSTOMERS) for c in burst_calls(i)]
    random.Random(7).shuffle(calls)
    seconds = fire(app, program, calls)

    # Every request answered, each with a status its rules allow; no 5xx.
    allowed = {
        "purchase": {(201, None)},
        "hold": {(201, None), (422, "insufficient_balance")},
        "capture": {(200, None), (409, "redemption_not_held"), (404, "redemption_not_found")},
        "void": {(200, None), (409, "redemption_not_held")},
        "refund": {(201, None), (422, "refund_exceeds_purchase")},
    }
    for c in calls:
        assert c.status, c
        code = c.answer.get("code") if c.status >= 400 else None
        assert (c.status, code) in allowed[c.kind], (c.kind, c.path, c.body, c.status, c.raw[:500])

    by_target: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        by_target[c.target].append(c)
    # Holds before their settlements (a hold of this burst may be captured in it too); the order is
    # otherwise free: every booking adds to the balances.
    phase = {"purchase": 0, "hold": 0, "capture": 1, "void": 1, "refund": 2}
    for c in sorted(calls, key=lambda c: phase[c.kind]):
        model.apply(c)

    for i in range(N_CUSTOMERS):
        cid = f"c-{i}"
        # Purchases earn what the rules say.
        for k in range(4):
            [c] = by_target[f"B-{i}-{k}"]
            a = c.answer
            assert (a["points_earned"], a["cashback_earned"]) == (points_for(c.body["amount"]),
                                                                  cashback_for(c.body["amount"])), a
            assert (a["points_status"], a["cashback_status"]) == ("available", "pending"), a
        # A hold never overdraws; a refused one asked for more than was available.
        for k in range(len(BURST_HOLDS)):
            [c] = [c for c in by_target[f"BH-{i}-{k}"] if c.kind == "hold"]
            if c.status == 201:
                assert c.answer["balances"]["points"]["available"] >= 0, c.answer
            else:
                assert c.answer["available"] < c.body["amount"], c.answer
        [cashback_hold] = by_target[f"BH-{i}-cb"]
        assert cashback_hold.status == 422 and cashback_hold.answer["available"] == 0, cashback_hold.raw
        # A capture racing a void: exactly one wins.
        race = by_target[f"H-{i}-1"]
        assert sorted(c.status for c in race) == [200, 409], [(c.kind, c.status, c.raw) for c in race]
        # The same capture twice: booked once, answered twice byte for byte.
        twice = by_target[f"H-{i}-2"]
        assert [c.status for c in twice] == [200, 200] and sorted(c.replayed for c in twice) == [False, True]
        assert twice[0].raw == twice[1].raw
        assert twice[0].answer["captured_amount"] == 7
        [voided] = by_target[f"H-{i}-3"]
        assert voided.status == 200 and voided.answer["status"] == "voided", voided.raw
        # A capture of a hold placed in the same burst: found only if the hold was booked first.
        [hold] = [c for c in by_target[f"BH-{i}-0"] if c.kind == "hold"]
        [capture] = [c for c in by_target[f"BH-{i}-0"] if c.kind == "capture"]
        if capture.status == 200:
            assert hold.status == 201 and capture.answer["captured_amount"] == hold.body["amount"], capture.raw
        # The first order ends fully refunded whatever the order of commits: its refunds reverse all it
        # earned and give back all that paid for it.
        refunds = [c for c in by_target[f"S-{i}-0"] if c.kind == "refund"]
        ok = [c for c in refunds if c.status == 201]
        assert sum(c.answer["amount"] for c in ok) == first_order(i), [c.raw for c in refunds]
        assert any(c.body.get("amount") is None for c in ok)
        assert sum(c.answer["points_reversed"] for c in ok) == points_for(first_order(i))
        assert sum(c.answer["cashback_reversed"] for c in ok) == cashback_for(first_order(i))
        assert sum(c.answer["points_restored"] for c in ok) == PAID
        assert sum(c.answer["cashback_restored"] for c in ok) == 0
        for c in refunds:
            if c.status == 422:  # a partial refund that came after the refund of the rest
                assert c.answer["refundable"] == 0, c.raw
        # The second order: its two partial refunds come to more than it: exactly one succeeds, and
        # reverses what the refunded part earned.
        refunds = [c for c in by_target[f"S-{i}-1"] if c.kind == "refund"]
        [ok_refund] = [c for c in refunds if c.status == 201]
        [refused] = [c for c in refunds if c.status == 422]
        assert refused.answer["refundable"] == SECOND_ORDER - ok_refund.body["amount"], refused.raw
        left = SECOND_ORDER - ok_refund.body["amount"]
        a = ok_refund.answer
        assert a["points_reversed"] == points_for(SECOND_ORDER) - points_for(left), a
        assert a["cashback_reversed"] == cashback_for(SECOND_ORDER) - cashback_for(left), a
        assert a["points_restored"] == a["cashback_restored"] == 0, a

        # The balances the API shows are exactly those the answers explain.
        response = client.get(f"/v1/customers/{cid}/balances", headers=program.headers("app"))
        assert response.status_code == 200, response.get_data(as_text=True)
        shown = response.get_json()
        assert {asset: shown[asset] for asset in ASSETS} == model.balances[cid], (cid, shown, model.balances[cid])

    # Every hold is in the state its answers say.
    for redemption_id, hold in model.holds.items():
        response = client.get(f"/v1/redemptions/{redemption_id}", headers=program.headers("app"))
        assert response.status_code == 200, response.get_data(as_text=True)
        shown = response.get_json()
        assert shown["status"] == hold["status"], (redemption_id, shown, hold)
        if hold["status"] != "held":
            assert shown["captured_amount"] == hold["captured"], (redemption_id, shown, hold)
    # Refused holds booked nothing.
    for c in calls:
        if c.kind == "hold" and c.status != 201:
            response = client.get(f"/v1/redemptions/{c.target}", headers=program.headers("app"))
            assert response.status_code == 404, response.get_data(as_text=True)

    verify()
    statuses = sorted((c.kind, c.status) for c in calls)
    print(f"\nburst: 200 requests in {seconds:.2f} s; "
          f"{ {k: statuses.count(k) for k in sorted(set(statuses))} }")
