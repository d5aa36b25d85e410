"""Finance under real concurrency (PostgreSQL, real parallel connections).

(a) Concurrent reversals of one transaction: exactly one is booked, the others are 409
    `already_reversed` naming it.
(b) A reader paging /v1/ledger/entries while writers commit out of order never misses an entry:
    pages hold only entries whose writers had all finished (xid below the reader's xmin), in
    (xid, seq) order, so an entry that commits after the reader passed its seq is still read later
    from `resume_cursor`.

One Flask test client per thread, so each request gets its own pooled connection. (SQLite
serialises every writer with BEGIN IMMEDIATE: there is nothing to race there.)
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ledger.services import purchases
from ledger.services.ports import BookingContext
from tests.helpers import assert_problem, all_entries
from tests.integration.test_concurrency import run_together

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
N = 10

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="needs real parallel connections and row locks: run with LEDGER_TEST_BACKEND=postgresql "
           "(SQLite serialises writers, so these races cannot happen there)")


def _read_to_end(client: Any, program: Any, cursor: str | None, limit: int = 2) -> tuple[list[dict], str | None]:
    """Page with a small limit until the last page; returns what was read and the resume_cursor."""
    items: list[dict] = []
    while True:
        response = client.get("/v1/ledger/entries", query_string={"limit": limit, **({"cursor": cursor} if cursor
                                                                                     else {})},
                              headers=program.headers("finance"))
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert len(page["items"]) <= limit
        items += page["items"]
        if page["next_cursor"] is None:
            return items, page["resume_cursor"]
        cursor = page["next_cursor"]


# --------------------------------------------------------------------------- (a) one reversal wins


def test_concurrent_reversals_of_one_adjustment_book_exactly_one(app, client, make_program, enrol, buy, verify):
    program = make_program()
    enrol(program, "c-1")
    assert buy(program, "A-1", "c-1", 10_000).status_code == 201  # 100 points
    adj = client.post("/v1/adjustments", json={"adjustment_id": "ADJ-1", "customer_id": "c-1", "asset": "points",
                                               "amount": 50, "reason": "goodwill", "reason_code": "goodwill"},
                      headers=program.headers("finance"))
    assert adj.status_code == 201, adj.get_data(as_text=True)
    adj_tx = adj.get_json()["transaction_id"]

    def reverse(i: int) -> tuple[int, bytes]:
        response = app.test_client().post(f"/v1/transactions/{adj_tx}/reverse", json={"reason": f"attempt {i}"},
                                          headers=program.headers("finance"))
        return response.status_code, response.get_data()

    results = run_together(N, reverse)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (N - 1), [raw[:300] for _, raw in results]
    [winner] = [json.loads(raw) for status, raw in results if status == 201]
    assert winner["reverses"] == adj_tx and winner["balances"]["points"]["available"] == 100
    for status, raw in results:
        if status == 409:
            body = json.loads(raw)
            assert body["code"] == "already_reversed", body
            assert body["reversal_transaction_id"] == winner["transaction_id"]

    entries = all_entries(client, program)
    reversal_txs = {e["transaction_id"] for e in entries if e["transaction_type"] == "reversal"}
    assert reversal_txs == {winner["transaction_id"]}
    assert sorted((e["account"], e["amount"]) for e in entries if e["transaction_id"] == winner["transaction_id"]) == \
        [("customer/c-1/points/available", -50), ("house/points/issued/adjustment/goodwill", 50)]
    tx = client.get(f"/v1/transactions/{adj_tx}", headers=program.headers("finance")).get_json()
    assert tx["reversed_by"] == winner["transaction_id"]
    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["points"] == {"available": 100, "pending": 0, "reserved": 0}
    assert_problem(client.post(f"/v1/transactions/{adj_tx}/reverse", json={"reason": "late"},
                               headers=program.headers("finance")), 409, "already_reversed")
    assert verify().entries == 2 + 2 + 2  # purchase (no cashback), adjustment, one reversal


# --------------------------------------------------------------------------- (b) no entry is skipped


def test_a_reader_never_skips_an_entry_committed_out_of_order(app, client, make_program, enrol, buy, clock, verify):
    program = make_program(cashback_rate_bps=200)  # a purchase books 4 entries
    enrol(program, "c-1")
    enrol(program, "c-2")
    first = buy(program, "P-0", "c-2", 10_000)
    assert first.status_code == 201, first.get_data(as_text=True)
    ledger = app.extensions["ledger"]

    with ledger.uow(write=True) as uow_a:
        # Writer A books a purchase for c-1 and stays open: its entries take the lower seqs.
        cmd = purchases.PurchaseCommand(order_id="A-1", customer_id="c-1", amount=20_000, currency="EUR",
                                        now=clock.now())
        result_a = purchases.record_purchase(uow_a, clock, program.id, cmd, BookingContext(actor="test:writer-a"))
        # The purchase's write waits for the stored answer (driver.defer); any statement sends it
        # first: A's entries are now in the database, uncommitted.
        uow_a.ping()
        tx_a = result_a.transaction_id
        assert tx_a

        # Writer B (another customer, so no lock is shared) commits after A began, through the API.
        with ThreadPoolExecutor(max_workers=1) as pool:
            later = pool.submit(lambda: app.test_client().post(
                "/v1/purchases", json={"order_id": "B-1", "customer_id": "c-2", "amount": 30_000, "currency": "EUR"},
                headers=program.headers("storefront"))).result(timeout=30)
        assert later.status_code == 201, later.get_data(as_text=True)
        tx_b = later.get_json()["transaction_id"]

        # The reader pages to the end while A is still open.
        seen, resume = _read_to_end(client, program, None)
        seen_txs = [e["transaction_id"] for e in seen]
        assert tx_a not in seen_txs  # uncommitted
        assert tx_b not in seen_txs, "an entry committed after an older writer must wait for it"
        assert set(seen_txs) == {first.get_json()["transaction_id"]}
        assert resume is not None

        uow_a.commit()

    # A committed: reading on from resume_cursor returns A's entries, then B's, and nothing twice.
    rest, _ = _read_to_end(client, program, resume)
    assert [e["transaction_id"] for e in rest] == [tx_a] * 4 + [tx_b] * 4
    everything = all_entries(client, program)
    read = seen + rest
    assert len({e["seq"] for e in read}) == len(read), "an entry was read twice"
    assert sorted(e["seq"] for e in read) == sorted(e["seq"] for e in everything)
    assert len(everything) == 12
    a_seqs = [e["seq"] for e in rest if e["transaction_id"] == tx_a]
    b_seqs = [e["seq"] for e in rest if e["transaction_id"] == tx_b]
    assert max(a_seqs) < min(b_seqs)  # in seq order B came after A, yet it committed first
    assert verify().entries == 12


# --------------------------------------------------------------------------- (c) one approval books


def test_concurrent_approvals_book_once_and_answer_alike(app, client, make_program, enrol, buy, verify):
    program = make_program(adjustment_approval_threshold=10)
    enrol(program, "c-1")
    assert buy(program, "A-1", "c-1", 10_000).status_code == 201
    pending = client.post("/v1/adjustments", json={"adjustment_id": "ADJ-1", "customer_id": "c-1",
                                                   "asset": "points", "amount": 60, "reason": "migration gap"},
                          headers=program.headers("finance"))
    assert pending.status_code == 202, pending.get_data(as_text=True)
    created = client.post("/v1/api-keys", json={"role": "finance", "name": "approver"},
                          headers=program.headers("admin"))
    assert created.status_code == 201
    approver = {"Authorization": f"Bearer {created.get_json()['key']}"}

    def approve(i: int) -> tuple[int, bytes, dict]:
        response = app.test_client().post("/v1/adjustments/ADJ-1/approve", headers=approver)
        return response.status_code, response.get_data(), dict(response.headers)

    results = run_together(N, approve)

    assert [status for status, _, _ in results] == [200] * N, [raw[:300] for _, raw, _ in results]
    assert len({raw for _, raw, _ in results}) == 1, "every approval must answer byte for byte the same"
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in results]
    assert replayed.count("true") == N - 1 and replayed.count(None) == 1
    answer = json.loads(results[0][1])
    assert answer["status"] == "booked" and answer["balances"]["points"]["available"] == 160
    entries = all_entries(client, program)
    assert {e["transaction_id"] for e in entries if e["transaction_type"] == "adjustment"} == \
        {answer["transaction_id"]}
    assert verify().entries == 2 + 2


# --------------------------------------------------------------------------- (d) seals chain, never fork

def test_a_seal_made_while_another_is_uncommitted_waits_and_chains_to_it(app, make_program, enrol, buy, clock,
                                                                          verify):
    """Two job runners seal at once: the second waits for the first's seal instead of chaining its own
    to the same predecessor (a fork that `verify` reports as a seal mismatch)."""
    from ledger.services.verify import seal_program
    from ledger.services.writes import transact

    program = make_program()
    enrol(program, "c-1")
    assert buy(program, "P-1", "c-1", 10_000).status_code == 201
    ledger = app.extensions["ledger"]

    with ledger.uow(write=True) as uow_a:
        first = seal_program(uow_a, program.id, clock.now())
        assert first is not None
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(transact, ledger.uow, lambda uow: seal_program(uow, program.id, clock.now()))
            done_early = [second.done() or _settled(second)]
            uow_a.commit()
        assert done_early == [False], "the second seal did not wait for the first"
        assert second.result(timeout=30) is None  # nothing booked since the first seal

    assert buy(program, "P-2", "c-1", 10_000).status_code == 201
    third = transact(ledger.uow, lambda uow: seal_program(uow, program.id, clock.now()))
    assert third is not None and third["previous_digest"] == first["digest"]
    assert verify().seals == 2


def _settled(future: Any, seconds: float = 0.5) -> bool:
    """Whether `future` finishes within `seconds`."""
    try:
        future.result(timeout=seconds)
    except TimeoutError:
        return False
    return True
