"""The finance reads of the ledger (issue 6): entries with their filters and cursors, one
transaction, the export, balances as of an instant, and the trial balance with its daily roll-ups.

Every expectation is computed by hand from the booking table in ../shared/ARCHITECTURE.md §1 and
the program of the `program` fixture (1 point per euro, 2% cashback pending 30 days, points
available at once). `as_of` and `to` exclude their instant, `from` includes it (§6).
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import BACKEND, T0
from tests.helpers import assert_problem, all_entries

UTC = timezone.utc
US = timedelta(microseconds=1)
EXPORT_COLUMNS = ["seq", "transaction_id", "transaction_type", "customer_id", "reference_kind", "reference_id",
                  "account", "asset", "amount", "balance_after", "occurred_at", "recorded_at", "actor", "request_id",
                  "description", "chain_hash"]
ENTRY_FIELDS = {"seq", "transaction_id", "transaction_type", "customer_id", "reference_kind", "reference_id",
                "account", "asset", "amount", "balance_after", "recorded_at", "chain_hash"}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def sums(rows: list[dict]) -> Counter:
    total: Counter = Counter()
    for row in rows:
        total[row["account"]] += row["amount"]
    return total


def before(rows: list[dict], as_of: datetime) -> list[dict]:
    return [r for r in rows if at(r["recorded_at"]) < as_of]


def trial_lines(rows: list[dict], as_of: datetime) -> Counter:
    """What a trial balance as of `as_of` must show: house accounts as they are, customer accounts
    summed per bucket as `customer/*/{asset}/{bucket}`."""
    lines: Counter = Counter()
    for r in before(rows, as_of):
        parts = r["account"].split("/")
        key = f"customer/*/{parts[2]}/{parts[3]}" if parts[0] == "customer" else r["account"]
        lines[key] += r["amount"]
    return lines


def per_transaction_and_asset(rows: list[dict]) -> Counter:
    total: Counter = Counter()
    for r in rows:
        total[r["transaction_id"], r["asset"]] += r["amount"]
    return total


def seqs(rows: list[dict]) -> list[int]:
    return [r["seq"] for r in rows]


def legs(rows: list[dict]) -> list[tuple[str, list[tuple[str, int]]]]:
    """The rows as (transaction, its legs in any order), transactions in the order listed: what a
    list in seq order must show, whatever the order of the legs inside one transaction."""
    assert seqs(rows) == sorted(seqs(rows))
    out: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        out.setdefault(r["transaction_id"], []).append((r["account"], r["amount"]))
    return [(tx, sorted(items)) for tx, items in out.items()]


def key_id(client: Any, program: Any, role: str) -> str:
    listed = client.get("/v1/api-keys", headers=program.headers("admin"))
    assert listed.status_code == 200, listed.get_data(as_text=True)
    (found,) = [k["id"] for k in listed.get_json()["items"] if k["role"] == role and k["revoked_at"] is None]
    return found


@dataclass
class Book:
    """The bookings of `book`, with when they were recorded and their transaction ids."""

    times: dict[str, datetime] = field(default_factory=dict)
    tx: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def book(client, program, enrol, buy, clock) -> Book:
    """One day of business for c-1 and c-2, on 2026-11-26 (UTC):

    | when  | what                              | entries                                              |
    |-------|-----------------------------------|------------------------------------------------------|
    | 13:00 | O-1: c-1 buys for 100.00 EUR      | issued/purchase -100, c-1 points/available +100;     |
    |       |                                   | funding/purchase -200, c-1 cashback/pending +200     |
    | 14:00 | O-2: c-2 buys for 50.00 EUR       | issued/purchase -50, c-2 available +50;              |
    |       |                                   | funding/purchase -100, c-2 pending +100              |
    | 15:00 | RF-1: 25.00 EUR of O-1 refunded   | issued/purchase +25, c-1 available -25;              |
    |       |                                   | funding/purchase +50, c-1 pending -50                |
    | 16:00 | R-1: c-1 holds 40 points          | c-1 available -40, c-1 reserved +40                  |
    | 16:01 | R-1 captured: 30                  | c-1 reserved -40, redeemed +30, c-1 available +10    |
    | 17:00 | A-1: finance gives c-2 15 points  | issued/adjustment/goodwill -15, c-2 available +15    |

    19 entries in all.
    """
    shop, b = program.headers("storefront"), Book()
    enrol(program, "c-1")
    enrol(program, "c-2")

    def step(name: str, when: datetime, call) -> dict:  # noqa: ANN001
        clock.set(when)
        response = call()
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        b.times[name] = when
        b.tx[name] = response.get_json().get("transaction_id")
        return response.get_json()

    day = T0.replace(hour=0)
    step("O-1", day.replace(hour=13), lambda: buy(program, "O-1", "c-1", 10_000))
    step("O-2", day.replace(hour=14), lambda: buy(program, "O-2", "c-2", 5_000))
    step("RF-1", day.replace(hour=15), lambda: client.post("/v1/purchases/O-1/refunds",
                                                           json={"refund_id": "RF-1", "amount": 2_500}, headers=shop))
    hold = step("hold", day.replace(hour=16), lambda: client.post(
        "/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points", "amount": 40},
        headers=shop))
    assert hold["balances"]["points"] == {"available": 35, "pending": 0, "reserved": 40}
    # the answers to a hold and a capture are the redemption: their transactions are in its history below
    step("capture", day.replace(hour=16, minute=1),
         lambda: client.post("/v1/redemptions/R-1/capture", json={"amount": 30}, headers=shop))
    step("A-1", day.replace(hour=17), lambda: client.post(
        "/v1/adjustments", json={"adjustment_id": "A-1", "customer_id": "c-2", "asset": "points", "amount": 15,
                                 "reason": "parcel was late", "reason_code": "goodwill"},
        headers=program.headers("finance")))
    history = client.get("/v1/redemptions/R-1", headers=shop).get_json()["history"]
    b.tx["hold"], b.tx["capture"] = [e["transaction_id"] for e in history if e["event"] in ("held", "captured")]
    assert all(b.tx.values()) and len(set(b.tx.values())) == 6
    return b


# --- GET /v1/ledger/entries ------------------------------------------------------------------------

def test_every_entry_of_the_day_with_its_fields(client, program, book):
    rows = all_entries(client, program)
    assert len(rows) == 19
    assert seqs(rows) == sorted(seqs(rows)) and len(set(seqs(rows))) == 19
    for row in rows:
        assert set(row) == ENTRY_FIELDS, row
        assert row["amount"] != 0
        assert row["balance_after"] is None if row["account"].startswith("house/") else isinstance(
            row["balance_after"], int)
        assert isinstance(row["chain_hash"], str) and len(row["chain_hash"]) == 64
    by_tx = defaultdict(set)
    for row in rows:
        by_tx[row["transaction_id"]].add((row["account"], row["amount"], at(row["recorded_at"]),
                                          row["transaction_type"], row["customer_id"], row["reference_kind"],
                                          row["reference_id"]))
    t, tx = book.times, book.tx
    assert by_tx == {
        tx["O-1"]: {("house/points/issued/purchase", -100, t["O-1"], "purchase_accrual", "c-1", "order", "O-1"),
                    ("customer/c-1/points/available", 100, t["O-1"], "purchase_accrual", "c-1", "order", "O-1"),
                    ("house/cashback/funding/purchase", -200, t["O-1"], "purchase_accrual", "c-1", "order", "O-1"),
                    ("customer/c-1/cashback/pending", 200, t["O-1"], "purchase_accrual", "c-1", "order", "O-1")},
        tx["O-2"]: {("house/points/issued/purchase", -50, t["O-2"], "purchase_accrual", "c-2", "order", "O-2"),
                    ("customer/c-2/points/available", 50, t["O-2"], "purchase_accrual", "c-2", "order", "O-2"),
                    ("house/cashback/funding/purchase", -100, t["O-2"], "purchase_accrual", "c-2", "order", "O-2"),
                    ("customer/c-2/cashback/pending", 100, t["O-2"], "purchase_accrual", "c-2", "order", "O-2")},
        tx["RF-1"]: {("house/points/issued/purchase", 25, t["RF-1"], "refund", "c-1", "refund", "RF-1"),
                     ("customer/c-1/points/available", -25, t["RF-1"], "refund", "c-1", "refund", "RF-1"),
                     ("house/cashback/funding/purchase", 50, t["RF-1"], "refund", "c-1", "refund", "RF-1"),
                     ("customer/c-1/cashback/pending", -50, t["RF-1"], "refund", "c-1", "refund", "RF-1")},
        tx["hold"]: {("customer/c-1/points/available", -40, t["hold"], "redemption_hold", "c-1", "redemption", "R-1"),
                     ("customer/c-1/points/reserved", 40, t["hold"], "redemption_hold", "c-1", "redemption", "R-1")},
        tx["capture"]: {
            ("customer/c-1/points/reserved", -40, t["capture"], "redemption_capture", "c-1", "redemption", "R-1"),
            ("house/points/redeemed", 30, t["capture"], "redemption_capture", "c-1", "redemption", "R-1"),
            ("customer/c-1/points/available", 10, t["capture"], "redemption_capture", "c-1", "redemption", "R-1")},
        tx["A-1"]: {("house/points/issued/adjustment/goodwill", -15, t["A-1"], "adjustment", "c-2", "adjustment",
                     "A-1"),
                    ("customer/c-2/points/available", 15, t["A-1"], "adjustment", "c-2", "adjustment", "A-1")},
    }
    # the admin reads the same; the other roles may not
    assert all_entries(client, program, role="admin") == rows
    for role in ("storefront", "app"):
        assert_problem(client.get("/v1/ledger/entries", headers=program.headers(role)), 403, "forbidden")


def test_filter_by_exact_account_with_balances_after(client, program, book):
    rows = all_entries(client, program, account="customer/c-1/points/available")
    assert [(r["amount"], r["balance_after"]) for r in rows] == [(100, 100), (-25, 75), (-40, 35), (10, 45)]
    assert [r["transaction_id"] for r in rows] == [book.tx["O-1"], book.tx["RF-1"], book.tx["hold"],
                                                   book.tx["capture"]]
    rows = all_entries(client, program, account="house/points/issued/purchase")
    assert [r["amount"] for r in rows] == [-100, -50, 25]
    assert all(r["balance_after"] is None for r in rows)
    assert all_entries(client, program, account="house/points") == []  # exact: not a prefix without the *
    assert all_entries(client, program, account="customer/c-3/points/available") == []


def test_filter_by_account_prefix(client, program, book):
    house_points = all_entries(client, program, account="house/points/*")
    assert sorted((r["account"], r["amount"]) for r in house_points) == sorted([
        ("house/points/issued/purchase", -100), ("house/points/issued/purchase", -50),
        ("house/points/issued/purchase", 25), ("house/points/redeemed", 30),
        ("house/points/issued/adjustment/goodwill", -15)])
    c1 = all_entries(client, program, account="customer/c-1/*")
    assert legs(c1) == [
        (book.tx["O-1"], [("customer/c-1/cashback/pending", 200), ("customer/c-1/points/available", 100)]),
        (book.tx["RF-1"], [("customer/c-1/cashback/pending", -50), ("customer/c-1/points/available", -25)]),
        (book.tx["hold"], [("customer/c-1/points/available", -40), ("customer/c-1/points/reserved", 40)]),
        (book.tx["capture"], [("customer/c-1/points/available", 10), ("customer/c-1/points/reserved", -40)])]
    assert len(all_entries(client, program, account="customer/*")) == 8 + 3  # c-2: O-2's two legs and A-1's
    assert all_entries(client, program, account="customer/c-*") == all_entries(client, program, account="customer/*")
    assert all_entries(client, program, account="customer/*/points/available") == []  # a prefix, not a glob
    assert sums(all_entries(client, program, account="customer/c-2/*")) == Counter({
        "customer/c-2/points/available": 65, "customer/c-2/cashback/pending": 100})
    assert len(all_entries(client, program, account="*")) == 19
    assert all_entries(client, program, account="house/points/issued/*") == [
        r for r in house_points if r["account"].startswith("house/points/issued/")]


def test_account_prefix_treats_like_wildcards_literally(client, program, enrol, buy):
    """`_` and `%` in a customer id are not LIKE wildcards: customer/x_1/* does not match xy1."""
    for customer, order in (("x_1", "O-x"), ("xy1", "O-y"), ("x_10", "O-z")):
        enrol(program, customer)
        assert buy(program, order, customer, 1_000).status_code == 201
    rows = all_entries(client, program, account="customer/x_1/*")
    assert {r["account"] for r in rows} == {"customer/x_1/points/available", "customer/x_1/cashback/pending"}
    assert {r["account"].split("/")[1] for r in all_entries(client, program, account="customer/x_1*")} == {"x_1", "x_10"}


def test_filter_by_customer_includes_the_house_legs(client, program, book):
    c1 = all_entries(client, program, customer_id="c-1")
    assert len(c1) == 13  # O-1 4, RF-1 4, hold 2, capture 3
    assert {r["transaction_id"] for r in c1} == {book.tx[k] for k in ("O-1", "RF-1", "hold", "capture")}
    assert {r["customer_id"] for r in c1} == {"c-1"}
    assert sums(r for r in c1 if r["account"].startswith("house/")) == Counter({
        "house/points/issued/purchase": -75, "house/cashback/funding/purchase": -150, "house/points/redeemed": 30})
    c2 = all_entries(client, program, customer_id="c-2")
    assert {r["transaction_id"] for r in c2} == {book.tx["O-2"], book.tx["A-1"]} and len(c2) == 6
    assert all(v == 0 for v in per_transaction_and_asset(c1 + c2).values())
    assert seqs(c1 + c2) != sorted(seqs(c1 + c2))  # they interleave; together they are everything
    assert sorted(seqs(c1 + c2)) == seqs(all_entries(client, program))
    assert all_entries(client, program, customer_id="nobody") == []


def test_filter_by_asset_type_and_reference(client, program, book):
    cashback = all_entries(client, program, asset="cashback")
    assert len(cashback) == 6 and {r["asset"] for r in cashback} == {"cashback"}
    assert sums(cashback) == Counter({"house/cashback/funding/purchase": -250, "customer/c-1/cashback/pending": 150,
                                      "customer/c-2/cashback/pending": 100})
    assert len(all_entries(client, program, asset="points")) == 13
    refunds = all_entries(client, program, type="refund")
    assert {r["transaction_id"] for r in refunds} == {book.tx["RF-1"]} and len(refunds) == 4
    assert len(all_entries(client, program, type="redemption_capture")) == 3
    assert all_entries(client, program, type="points_expiry") == []
    o1 = all_entries(client, program, reference_kind="order", reference_id="O-1")
    assert {r["transaction_id"] for r in o1} == {book.tx["O-1"]} and len(o1) == 4
    r1 = all_entries(client, program, reference_kind="redemption", reference_id="R-1")
    assert [tx for tx, _ in legs(r1)] == [book.tx["hold"], book.tx["capture"]] and len(r1) == 5
    assert all_entries(client, program, reference_kind="refund", reference_id="O-1") == []  # kind and id together
    assert len(all_entries(client, program, reference_kind="order")) == 8
    assert len(all_entries(client, program, reference_id="A-1")) == 2


def test_filter_by_recorded_time_window(client, program, book):
    t = book.times
    assert all_entries(client, program, **{"from": iso(t["O-2"]), "to": iso(t["RF-1"])}) == \
        all_entries(client, program, customer_id="c-2", type="purchase_accrual")  # [from, to): RF-1 left out
    window = all_entries(client, program, **{"from": iso(t["O-2"]), "to": iso(t["RF-1"] + US)})
    assert {r["transaction_id"] for r in window} == {book.tx["O-2"], book.tx["RF-1"]} and len(window) == 8
    assert all_entries(client, program, **{"from": iso(t["O-2"] + US), "to": iso(t["RF-1"])}) == []
    after = all_entries(client, program, **{"from": iso(t["hold"])})
    assert {r["transaction_id"] for r in after} == {book.tx["hold"], book.tx["capture"], book.tx["A-1"]}
    until = all_entries(client, program, to=iso(t["O-2"]))
    assert {r["transaction_id"] for r in until} == {book.tx["O-1"]}
    # the same instant written with another offset
    assert all_entries(client, program, to="2026-11-26T16:00:00+02:00") == until
    assert all_entries(client, program, to=iso(t["O-1"])) == []


def test_combined_filters(client, program, book):
    rows = all_entries(client, program, customer_id="c-1", asset="points", **{"from": iso(book.times["RF-1"])})
    assert legs(rows) == [
        (book.tx["RF-1"], [("customer/c-1/points/available", -25), ("house/points/issued/purchase", 25)]),
        (book.tx["hold"], [("customer/c-1/points/available", -40), ("customer/c-1/points/reserved", 40)]),
        (book.tx["capture"], [("customer/c-1/points/available", 10), ("customer/c-1/points/reserved", -40),
                              ("house/points/redeemed", 30)])]
    rows = all_entries(client, program, account="house/*", type="purchase_accrual", asset="cashback",
                   to=iso(book.times["O-2"] + US))
    assert [(r["account"], r["amount"], r["customer_id"]) for r in rows] == [
        ("house/cashback/funding/purchase", -200, "c-1"), ("house/cashback/funding/purchase", -100, "c-2")]
    assert all_entries(client, program, customer_id="c-2", type="refund") == []
    assert all_entries(client, program, customer_id="c-1", reference_kind="order", reference_id="O-2") == []


def test_pages_return_every_entry_once_in_order(client, program, book):
    everything = all_entries(client, program)
    for limit in (1, 4, 5, 18, 19, 20):
        pages, cursor = [], None
        while True:
            query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/ledger/entries", query_string=query, headers=program.headers("finance")).get_json()
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(page["items"]) == limit
            assert page["resume_cursor"] == cursor
        assert [len(p) for p in pages] == [limit] * (19 // limit) + ([19 % limit] if 19 % limit else []), limit
        assert [r for p in pages for r in p] == everything, limit
    default = client.get("/v1/ledger/entries", headers=program.headers("finance")).get_json()
    assert default["items"] == everything and default["next_cursor"] is None  # 50 a page by default


def test_pages_of_a_filtered_list(client, program, book):
    everything = all_entries(client, program, customer_id="c-1")
    first = client.get("/v1/ledger/entries?customer_id=c-1&limit=5", headers=program.headers("finance")).get_json()
    second = client.get("/v1/ledger/entries", query_string={"customer_id": "c-1", "limit": 5,
                                                            "cursor": first["next_cursor"]},
                        headers=program.headers("finance")).get_json()
    third = client.get("/v1/ledger/entries", query_string={"customer_id": "c-1", "limit": 5,
                                                           "cursor": second["next_cursor"]},
                       headers=program.headers("finance")).get_json()
    assert [len(p["items"]) for p in (first, second, third)] == [5, 5, 3]
    assert first["next_cursor"] and second["next_cursor"] and third["next_cursor"] is None
    assert first["items"] + second["items"] + third["items"] == everything


def test_resume_cursor_returns_only_what_was_committed_since(client, program, book, buy, clock):
    finance = program.headers("finance")
    last = client.get("/v1/ledger/entries?customer_id=c-1&limit=50", headers=finance).get_json()
    assert len(last["items"]) == 13 and last["next_cursor"] is None and last["resume_cursor"]
    nothing = client.get("/v1/ledger/entries", query_string={"customer_id": "c-1", "cursor": last["resume_cursor"]},
                         headers=finance).get_json()
    assert nothing["items"] == [] and nothing["next_cursor"] is None
    assert nothing["resume_cursor"] == last["resume_cursor"]  # nothing read: the position stays
    clock.advance(hours=1)
    assert buy(program, "O-3", "c-1", 3_000).status_code == 201  # 30 points, 60 cashback pending
    assert buy(program, "O-4", "c-2", 1_000).status_code == 201  # another customer: filtered out
    new = client.get("/v1/ledger/entries", query_string={"customer_id": "c-1", "cursor": last["resume_cursor"]},
                     headers=finance).get_json()
    assert sorted((r["account"], r["amount"]) for r in new["items"]) == sorted([
        ("house/points/issued/purchase", -30), ("customer/c-1/points/available", 30),
        ("house/cashback/funding/purchase", -60), ("customer/c-1/cashback/pending", 60)])
    assert {r["reference_id"] for r in new["items"]} == {"O-3"} and new["next_cursor"] is None
    # unfiltered: a resume cursor read at the end of everything picks up later bookings only
    everything = client.get("/v1/ledger/entries?limit=500", headers=finance).get_json()
    assert len(everything["items"]) == 27
    clock.advance(hours=1)
    assert buy(program, "O-5", "c-2", 2_000).status_code == 201
    later = client.get("/v1/ledger/entries", query_string={"cursor": everything["resume_cursor"]},
                       headers=finance).get_json()
    assert [r["reference_id"] for r in later["items"]] == ["O-5"] * 4
    assert later["items"] == all_entries(client, program)[27:]


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL writers commit concurrently; SQLite's one at a time")
def test_resume_cursor_never_skips_a_writer_that_commits_late(client, program, enrol, buy, database_url):
    """A purchase for c-1 is held up on c-1's row lock (another connection holds it) while a purchase for
    c-2 commits, and the list is read in between: reading on from the resume cursors, every entry of
    both purchases comes exactly once, whichever committed first."""
    import threading
    import time as wall

    from sqlalchemy import create_engine, text

    finance = program.headers("finance")
    enrol(program, "c-1")
    enrol(program, "c-2")
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201
    start = client.get("/v1/ledger/entries", headers=finance).get_json()
    assert len(start["items"]) == 4 and start["next_cursor"] is None
    engine = create_engine(database_url)
    answers: dict[str, Any] = {}
    try:
        with engine.connect() as blocker:
            held = blocker.begin()
            blocker.execute(text("SELECT pk FROM customers WHERE program_id = :p AND customer_id = 'c-1' FOR UPDATE"),
                            {"p": program.id})
            slow = threading.Thread(target=lambda: answers.setdefault("O-2", buy(
                program, "O-2", "c-1", 2_000, headers={"Idempotency-Key": "slow-writer"})))
            slow.start()
            with engine.connect() as probe:  # until the slow writer waits on the lock
                deadline = wall.monotonic() + 10
                while not probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                             " AND wait_event_type = 'Lock'")).scalar_one():
                    assert wall.monotonic() < deadline, "the slow writer never waited on the lock"
                    wall.sleep(0.02)
            assert buy(program, "O-3", "c-2", 3_000).status_code == 201
            during = client.get("/v1/ledger/entries", query_string={"cursor": start["resume_cursor"]},
                                headers=finance).get_json()
            held.commit()
        slow.join(30)
        assert not slow.is_alive() and answers["O-2"].status_code == 201, answers
        after = client.get("/v1/ledger/entries", query_string={"cursor": during["resume_cursor"] or
                                                               start["resume_cursor"]}, headers=finance).get_json()
    finally:
        engine.dispose()
    read = during["items"] + after["items"]
    everything = all_entries(client, program)
    assert len(everything) == 12
    assert sorted(seqs(read)) == sorted(seqs(everything[4:])) and len(set(seqs(read))) == 8
    assert sorted(r["reference_id"] for r in read) == ["O-2"] * 4 + ["O-3"] * 4


def test_cursors_and_bad_filters_are_refused(client, program, book):
    finance = program.headers("finance")
    page = client.get("/v1/ledger/entries?customer_id=c-1&limit=2", headers=finance).get_json()
    cursor = page["next_cursor"]
    for other in ({"customer_id": "c-2"}, {}, {"customer_id": "c-1", "asset": "points"},
                  {"customer_id": "c-1", "from": iso(T0)}):
        assert_problem(client.get("/v1/ledger/entries", query_string={**other, "cursor": cursor}, headers=finance),
                       400, "invalid_cursor")
    for garbage in ("abc", "!!!", "eyJwIjpbMCwiYSJdLCJmIjoieCJ9", cursor[:-3]):
        assert_problem(client.get("/v1/ledger/entries", query_string={"customer_id": "c-1", "cursor": garbage},
                                  headers=finance), 400, "invalid_cursor")
    bad = [({"asset": "gold"}, "asset"), ({"from": "2026-11-26T15:00:00Z", "to": "2026-11-26T14:00:00Z"}, "to"),
           ({"from": "2026-11-26T15:00:00Z", "to": "2026-11-26T17:00:00+02:00"}, "to"),  # the same instant
           ({"from": "2026-11-26T15:00:00"}, "from"), ({"to": "yesterday"}, "to"), ({"limit": 0}, "limit"),
           ({"limit": 501}, "limit"), ({"limit": "ten"}, "limit"), ({"account": ""}, "account"),
           ({"customer_id": "no spaces"}, "customer_id")]
    for query, name in bad:
        assert_problem(client.get("/v1/ledger/entries", query_string=query, headers=finance), 422,
                       "validation_error", field=name)
    empty = client.get("/v1/ledger/entries?customer_id=unknown", headers=finance)
    assert empty.status_code == 200
    assert empty.get_json() == {"items": [], "next_cursor": None, "resume_cursor": None}


def test_entries_of_another_program_are_not_shown(client, program, make_program, enrol, buy, book):
    other = make_program()
    enrol(other, "c-1")
    assert buy(other, "O-1", "c-1", 90_000).status_code == 201
    assert len(all_entries(client, program)) == 19
    assert len(all_entries(client, other)) == 2  # no cashback in the other program
    assert all_entries(client, other, customer_id="c-2") == []


# --- GET /v1/transactions/{id} ---------------------------------------------------------------------

def test_a_purchase_accrual_in_full(client, program, enrol, buy, clock):
    enrol(program, "c-1")
    clock.advance(minutes=7)
    bought = buy(program, "O-1", "c-1", 12_345, headers={"X-Request-Id": "req-reads.1"},
                 occurred_at="2026-11-20T10:00:00+02:00")
    assert bought.status_code == 201 and bought.headers["X-Request-Id"] == "req-reads.1"
    tx_id = bought.get_json()["transaction_id"]
    for role in ("admin", "finance"):
        response = client.get(f"/v1/transactions/{tx_id}", headers=program.headers(role, **{"X-Request-Id": "r-2"}))
        assert response.status_code == 200 and response.headers["X-Request-Id"] == "r-2"
        tx = response.get_json()
        assert tx["transaction_id"] == tx_id and tx["type"] == "purchase_accrual" and tx["customer_id"] == "c-1"
        assert tx["reference"] == {"kind": "order", "id": "O-1"}
        assert "O-1" in tx["description"] and "123 points" in tx["description"]
        assert tx["actor"] == f"api_key:{key_id(client, program, 'storefront')}"
        assert tx["request_id"] == "req-reads.1" and tx["idempotency_key"] is None
        assert at(tx["occurred_at"]) == datetime(2026, 11, 20, 8, tzinfo=UTC)
        assert at(tx["recorded_at"]) == T0 + timedelta(minutes=7)
        assert tx["reason"] is None and tx["reversed_by"] is None and tx["reverses"] is None
        assert sorted((e["account"], e["asset"], e["amount"], e["balance_after"]) for e in tx["entries"]) == sorted([
            ("house/points/issued/purchase", "points", -123, None),
            ("customer/c-1/points/available", "points", 123, 123),
            ("house/cashback/funding/purchase", "cashback", -246, None),  # floor(12_345 * 2%)
            ("customer/c-1/cashback/pending", "cashback", 246, 246)])
        per_asset = Counter()
        for e in tx["entries"]:
            per_asset[e["asset"]] += e["amount"]
        assert per_asset == Counter({"points": 0, "cashback": 0})
        assert [e["seq"] for e in tx["entries"]] == seqs(all_entries(client, program))
    for role in ("storefront", "app"):
        assert_problem(client.get(f"/v1/transactions/{tx_id}", headers=program.headers(role)), 403, "forbidden")


def test_an_adjustment_its_reversal_and_unknown_transactions(client, program, make_program, enrol, buy, clock):
    finance = program.headers("finance")
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201
    clock.advance(hours=1)
    adj = client.post("/v1/adjustments", json={"adjustment_id": "A-1", "customer_id": "c-1", "asset": "points",
                                               "amount": -20, "reason": "double booking", "reason_code": "correction"},
                      headers={**finance, "Idempotency-Key": "adj-key-1"})
    assert adj.status_code == 201, adj.get_data(as_text=True)
    adj_id = adj.get_json()["transaction_id"]
    tx = client.get(f"/v1/transactions/{adj_id}", headers=finance).get_json()
    assert (tx["type"], tx["reason"], tx["customer_id"]) == ("adjustment", "double booking", "c-1")
    assert tx["reference"] == {"kind": "adjustment", "id": "A-1"} and tx["idempotency_key"] == "adj-key-1"
    assert tx["actor"] == f"api_key:{key_id(client, program, 'finance')}"
    assert sorted((e["account"], e["amount"], e["balance_after"]) for e in tx["entries"]) == [
        ("customer/c-1/points/available", -20, 80), ("house/points/issued/adjustment/correction", 20, None)]
    clock.advance(hours=1)
    rev = client.post(f"/v1/transactions/{adj_id}/reverse", json={"reason": "it was right"}, headers=finance)
    assert rev.status_code == 201, rev.get_data(as_text=True)
    rev_id = rev.get_json()["transaction_id"]
    original = client.get(f"/v1/transactions/{adj_id}", headers=finance).get_json()
    assert original["reversed_by"] == rev_id and original["reverses"] is None and original["reason"] == "double booking"
    reversal = client.get(f"/v1/transactions/{rev_id}", headers=program.headers("admin")).get_json()
    assert reversal["type"] == "reversal" and reversal["reverses"] == adj_id and reversal["reversed_by"] is None
    assert reversal["reason"] == "it was right" and reversal["reference"] == {"kind": "transaction", "id": adj_id}
    assert at(reversal["recorded_at"]) == T0 + timedelta(hours=2)
    assert sorted((e["account"], e["amount"], e["balance_after"]) for e in reversal["entries"]) == [
        ("customer/c-1/points/available", 20, 100), ("house/points/issued/adjustment/correction", -20, None)]

    assert_problem(client.get("/v1/transactions/txn_000000000000000000000000", headers=finance), 404,
                   "transaction_not_found")
    assert_problem(client.get("/v1/transactions/nope", headers=finance), 404, "transaction_not_found")
    other = make_program()
    enrol(other, "c-1")
    theirs = buy(other, "O-1", "c-1", 10_000).get_json()["transaction_id"]
    assert_problem(client.get(f"/v1/transactions/{theirs}", headers=finance), 404, "transaction_not_found")
    assert_problem(client.get(f"/v1/transactions/{adj_id}", headers=other.headers("finance")), 404,
                   "transaction_not_found")
    assert client.get(f"/v1/transactions/{theirs}", headers=other.headers("finance")).status_code == 200


# --- GET /v1/ledger/export -------------------------------------------------------------------------

def _ndjson(client: Any, program: Any, **query: Any) -> list[dict]:
    response = client.get("/v1/ledger/export", query_string={"format": "ndjson", **query},
                          headers=program.headers("finance"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == f'attachment; filename="ledger-{program.id}.ndjson"'
    text = response.get_data(as_text=True)
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _csv(client: Any, program: Any, **query: Any) -> tuple[list[str], list[dict]]:
    response = client.get("/v1/ledger/export", query_string={"format": "csv", **query},
                          headers=program.headers("admin"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="ledger-{program.id}.csv"'
    reader = csv.reader(io.StringIO(response.get_data(as_text=True), newline=""))
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def test_export_ndjson_rows_match_the_entries_and_their_transactions(client, program, book):
    rows = _ndjson(client, program)
    listed = all_entries(client, program)
    assert len(rows) == len(listed) == 19
    txs = {}
    for row, entry in zip(rows, listed):
        assert list(row) == EXPORT_COLUMNS
        assert {k: row[k] for k in ENTRY_FIELDS} == entry
        tx = txs.setdefault(row["transaction_id"], client.get(f"/v1/transactions/{row['transaction_id']}",
                                                              headers=program.headers("finance")).get_json())
        assert (row["occurred_at"], row["actor"], row["request_id"], row["description"]) == \
            (tx["occurred_at"], tx["actor"], tx["request_id"], tx["description"])
    assert {r["actor"] for r in rows} == {f"api_key:{key_id(client, program, 'storefront')}",
                                          f"api_key:{key_id(client, program, 'finance')}"}
    assert all(v == 0 for v in per_transaction_and_asset(rows).values())
    assert sum(r["amount"] for r in rows if r["asset"] == "points") == 0
    assert sum(r["amount"] for r in rows if r["asset"] == "cashback") == 0
    assert _ndjson(client, program) == _ndjson(client, program, format="ndjson")
    assert client.get("/v1/ledger/export", headers=program.headers("finance")).mimetype == "application/x-ndjson"


def test_export_filters_match_the_entries_api(client, program, book):
    t = book.times
    for query in ({"customer_id": "c-1"}, {"customer_id": "c-2", "asset": "points"},
                  {"from": iso(t["O-2"]), "to": iso(t["capture"])}, {"to": iso(t["capture"] + US)},
                  {"account": "customer/c-1/*", "from": iso(t["RF-1"])}, {"type": "redemption_capture"},
                  {"reference_kind": "order", "reference_id": "O-2"}):
        listed = all_entries(client, program, **query)
        exported = _ndjson(client, program, **query)
        assert [{k: r[k] for k in ENTRY_FIELDS} for r in exported] == listed, query
        header, csv_rows = _csv(client, program, **query)
        assert header == EXPORT_COLUMNS
        assert [int(r["seq"]) for r in csv_rows] == seqs(listed)
    window = _ndjson(client, program, **{"from": iso(t["O-2"]), "to": iso(t["capture"])})
    assert {r["transaction_id"] for r in window} == {book.tx["O-2"], book.tx["RF-1"], book.tx["hold"]}
    assert len(window) == 10
    assert all(v == 0 for v in per_transaction_and_asset(_ndjson(client, program, customer_id="c-1")).values())
    assert _ndjson(client, program, customer_id="ghost") == []
    assert _csv(client, program, customer_id="ghost") == (EXPORT_COLUMNS, [])
    assert_problem(client.get("/v1/ledger/export?format=xml", headers=program.headers("finance")), 422,
                   "validation_error", field="format")
    assert_problem(client.get("/v1/ledger/export?asset=gold", headers=program.headers("finance")), 422,
                   "validation_error", field="asset")
    assert_problem(client.get("/v1/ledger/export", query_string={"from": iso(t["O-2"]), "to": iso(t["O-2"])},
                              headers=program.headers("finance")), 422, "validation_error", field="to")
    assert_problem(client.get("/v1/ledger/export", headers=program.headers("storefront")), 403, "forbidden")


def test_export_csv_rows_parse(client, program, book):
    header, rows = _csv(client, program)
    assert header == EXPORT_COLUMNS and len(rows) == 19
    listed = {e["seq"]: e for e in all_entries(client, program)}
    adjustment = next(r for r in rows if r["transaction_type"] == "adjustment")
    assert "parcel was late" in adjustment["description"]
    for row in rows:
        entry = listed[int(row["seq"])]
        assert row["transaction_id"] == entry["transaction_id"] and row["account"] == entry["account"]
        assert int(row["amount"]) == entry["amount"] and row["asset"] == entry["asset"]
        assert row["balance_after"] == ("" if entry["balance_after"] is None else str(entry["balance_after"]))
        assert at(row["recorded_at"]) == at(entry["recorded_at"]) and row["chain_hash"] == entry["chain_hash"]
        assert (row["transaction_type"], row["customer_id"], row["reference_kind"], row["reference_id"]) == \
            (entry["transaction_type"], entry["customer_id"], entry["reference_kind"], entry["reference_id"])
        assert at(row["occurred_at"]).tzinfo is not None and row["actor"].startswith("api_key:")
        assert row["request_id"]
    total: Counter = Counter()
    for row in rows:
        total[row["transaction_id"], row["asset"]] += int(row["amount"])
    assert all(v == 0 for v in total.values())


def test_export_csv_quotes_awkward_text(client, program, enrol, clock):
    """A reason with a comma, quotes and a newline ends up in the description: the CSV still parses."""
    enrol(program, "c-1")
    reason = 'late, "very" late\nand damaged'
    adj = client.post("/v1/adjustments", json={"adjustment_id": "A-9", "customer_id": "c-1", "asset": "cashback",
                                               "amount": 150, "reason": reason}, headers=program.headers("finance"))
    assert adj.status_code == 201, adj.get_data(as_text=True)
    header, rows = _csv(client, program)
    assert len(rows) == 2 and all(reason in r["description"] for r in rows)
    assert sorted((r["account"], int(r["amount"])) for r in rows) == [
        ("customer/c-1/cashback/available", 150), ("house/cashback/funding/adjustment/correction", -150)]
    assert [r["description"] for r in _ndjson(client, program)] == [r["description"] for r in rows]


# --- GET /v1/customers/{id}/balances?as_of= -------------------------------------------------------

def _as_of(client: Any, program: Any, customer: str, when: datetime, role: str = "finance") -> dict:
    response = client.get(f"/v1/customers/{customer}/balances", query_string={"as_of": iso(when)},
                          headers=program.headers(role))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert at(body["as_of"]) == when and body["currency"] == "EUR"
    return body


def _from_entries(rows: list[dict], customer: str, when: datetime) -> dict:
    total = sums(before(rows, when))
    return {asset: {bucket: total[f"customer/{customer}/{asset}/{bucket}"] for bucket in
                    ("available", "pending", "reserved")} for asset in ("points", "cashback")}


def test_balances_as_of_are_the_entries_recorded_before(client, app, program, enrol, buy, clock):
    shop = program.headers("storefront")
    clock.advance(minutes=30)
    enrol(program, "c-1")  # 12:30
    clock.set(T0.replace(hour=13))
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201  # 100 points, 200 cashback pending until 12-26 13:00
    clock.set(T0.replace(hour=14))
    assert buy(program, "O-2", "c-1", 2_000).status_code == 201  # 20 points, 40 cashback pending until 12-26 14:00
    clock.set(T0.replace(hour=15))
    hold = client.post("/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points",
                                                "amount": 50}, headers=shop)
    assert hold.status_code == 201
    clock.set(T0.replace(hour=15) + timedelta(days=31))  # the hold lapsed, both purchases' windows passed
    from ledger.services.releases import run_jobs
    done = run_jobs(app.extensions["ledger"].uow, clock)
    assert (done["releases"], done["expired_holds"]) == (2, 1)
    jobs_at = clock.now()

    def points(a: int, p: int, r: int) -> dict:
        return {"available": a, "pending": p, "reserved": r}

    expected = [
        (T0 - timedelta(days=1), points(0, 0, 0), points(0, 0, 0)),  # long before enrolment
        (T0 + timedelta(minutes=30), points(0, 0, 0), points(0, 0, 0)),  # the enrolment's instant
        (T0.replace(hour=13), points(0, 0, 0), points(0, 0, 0)),  # exactly O-1's recorded_at: excluded
        (T0.replace(hour=13) + US, points(100, 0, 0), points(0, 200, 0)),
        (T0.replace(hour=14), points(100, 0, 0), points(0, 200, 0)),
        (T0.replace(hour=14, second=1), points(120, 0, 0), points(0, 240, 0)),
        (T0.replace(hour=15), points(120, 0, 0), points(0, 240, 0)),
        (T0.replace(hour=15) + US, points(70, 0, 50), points(0, 240, 0)),
        (T0.replace(hour=15) + timedelta(hours=1), points(70, 0, 50), points(0, 240, 0)),  # lapsed, not booked yet
        (jobs_at - timedelta(hours=1), points(70, 0, 50), points(0, 240, 0)),  # windows passed, not booked yet
        (jobs_at, points(70, 0, 50), points(0, 240, 0)),
        (jobs_at + US, points(120, 0, 0), points(240, 0, 0)),
        (jobs_at + timedelta(days=400), points(120, 0, 0), points(240, 0, 0)),
    ]
    rows = all_entries(client, program)
    releases = all_entries(client, program, type="release")
    assert sorted((r["reference_id"], r["account"], r["amount"]) for r in releases) == [
        ("O-1", "customer/c-1/cashback/available", 200), ("O-1", "customer/c-1/cashback/pending", -200),
        ("O-2", "customer/c-1/cashback/available", 40), ("O-2", "customer/c-1/cashback/pending", -40)]
    release = client.get(f"/v1/transactions/{releases[0]['transaction_id']}", headers=program.headers("finance"))
    release = release.get_json()
    assert (release["type"], release["actor"], release["reference"]) == ("release", "job:run",
                                                                         {"kind": "order", "id": "O-1"})
    assert at(release["occurred_at"]) == T0.replace(hour=13) + timedelta(days=30)  # when the window ended
    assert at(release["recorded_at"]) == jobs_at  # when the job booked it
    for when, pts, cb in expected:
        got = _as_of(client, program, "c-1", when)
        assert (got["points"], got["cashback"]) == (pts, cb), when
        assert {k: got[k] for k in ("points", "cashback")} == _from_entries(rows, "c-1", when), when
    for role in ("admin", "storefront", "app"):
        assert _as_of(client, program, "c-1", T0.replace(hour=14, second=1), role=role)["points"] == points(120, 0, 0)
    now = client.get("/v1/customers/c-1/balances", headers=program.headers("finance")).get_json()
    assert {k: now[k] for k in ("points", "cashback")} == _from_entries(rows, "c-1", jobs_at + US)


def test_balances_as_of_for_unknown_customers_and_bad_instants(client, program, make_program, enrol, buy):
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201
    finance = program.headers("finance")
    assert_problem(client.get("/v1/customers/ghost/balances?as_of=2026-11-27T00:00:00Z", headers=finance), 404,
                   "customer_not_found")
    other = make_program()
    enrol(other, "c-9")
    assert_problem(client.get("/v1/customers/c-9/balances?as_of=2026-11-27T00:00:00Z", headers=finance), 404,
                   "customer_not_found")
    assert_problem(client.get("/v1/customers/c-1/balances?as_of=2026-11-27T00:00:00", headers=finance), 422,
                   "validation_error", field="as_of")
    assert_problem(client.get("/v1/customers/c-1/balances?as_of=tomorrow", headers=finance), 422,
                   "validation_error", field="as_of")
    assert _as_of(client, other, "c-9", T0 + US)["points"] == {"available": 0, "pending": 0, "reserved": 0}


# --- GET /v1/ledger/trial-balance and the roll-ups --------------------------------------------------

def _trial(client: Any, program: Any, when: datetime | None = None, role: str = "finance") -> dict:
    query = {"as_of": iso(when)} if when is not None else {}
    response = client.get("/v1/ledger/trial-balance", query_string=query, headers=program.headers(role))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _check_trial(tb: dict, rows: list[dict], when: datetime, customers: int) -> None:
    """Totals zero per asset; every line the sum of the entries before `when`; every line that is
    not zero is listed; customer lines count the customers enrolled before `when`."""
    assert tb["totals"] == {"points": 0, "cashback": 0}, when
    lines = {line["account"]: line for line in tb["accounts"]}
    assert len(lines) == len(tb["accounts"])
    expected = trial_lines(rows, when)
    for account, total in expected.items():
        assert account in lines, (when, account)
    for account, line in lines.items():
        assert line["balance"] == expected[account], (when, account)
        assert line["asset"] == account.split("/")[2 if account.startswith("customer/") else 1]
        assert line["accounts"] == (customers if account.startswith("customer/") else None), (when, account)
    for asset in ("points", "cashback"):
        for bucket in ("available", "pending", "reserved"):
            assert f"customer/*/{asset}/{bucket}" in lines


@dataclass
class Days:
    times: dict[str, datetime] = field(default_factory=dict)
    enrolled: dict[str, datetime] = field(default_factory=dict)


@pytest.fixture
def days(client, program, enrol, buy, clock) -> Days:
    """Four days of business, around UTC midnights:

    | when (UTC)              | what                                      |
    |-------------------------|-------------------------------------------|
    | 11-26 12:00             | c-1 enrols                                |
    | 11-26 13:00             | O-1: c-1 100.00 EUR: 100 points, 200 cashback pending |
    | 11-27 00:00:00          | c-2 enrols; O-2: c-2 50.00 EUR: 50 points, 100 pending |
    | 11-27 00:02             | RF-1: 25.00 EUR of O-1: -25 points, -50 cashback |
    | 11-28 09:00             | R-1: c-1 holds 40 points                   |
    | 11-28 09:01             | captured: 30                               |
    | 11-29 23:59:59.999999   | A-1: c-2 +15 points (goodwill)             |
    | 11-30 00:00             | O-3: c-2 10.00 EUR: 10 points, 20 pending  |
    """
    shop, d = program.headers("storefront"), Days()
    midnight = datetime(2026, 11, 27, tzinfo=UTC)

    def step(name: str, when: datetime, call) -> None:  # noqa: ANN001
        clock.set(when)
        response = call()
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        d.times[name] = when

    enrol(program, "c-1")
    d.enrolled["c-1"] = clock.now()
    step("O-1", T0.replace(hour=13), lambda: buy(program, "O-1", "c-1", 10_000))
    clock.set(midnight)
    enrol(program, "c-2")
    d.enrolled["c-2"] = midnight
    step("O-2", midnight, lambda: buy(program, "O-2", "c-2", 5_000))
    step("RF-1", midnight + timedelta(minutes=2), lambda: client.post(
        "/v1/purchases/O-1/refunds", json={"refund_id": "RF-1", "amount": 2_500}, headers=shop))
    step("hold", midnight + timedelta(days=1, hours=9), lambda: client.post(
        "/v1/redemptions", json={"redemption_id": "R-1", "customer_id": "c-1", "asset": "points", "amount": 40},
        headers=shop))
    step("capture", midnight + timedelta(days=1, hours=9, minutes=1), lambda: client.post(
        "/v1/redemptions/R-1/capture", json={"amount": 30}, headers=shop))
    step("A-1", midnight + timedelta(days=3) - US, lambda: client.post(
        "/v1/adjustments", json={"adjustment_id": "A-1", "customer_id": "c-2", "asset": "points", "amount": 15,
                                 "reason": "parcel was late", "reason_code": "goodwill"},
        headers=program.headers("finance")))
    step("O-3", midnight + timedelta(days=3), lambda: buy(program, "O-3", "c-2", 1_000))
    return d


def _instants(d: Days) -> list[datetime]:
    points = {T0 - timedelta(days=1), T0, datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)}
    for when in d.times.values():
        points |= {when - US, when, when + US, when + timedelta(minutes=1)}
    for day in range(26, 31):
        midnight = datetime(2026, 11, day, tzinfo=UTC)
        points |= {midnight - US, midnight, midnight + US, midnight + timedelta(minutes=5)}
    return sorted(points)


def _customers_before(d: Days, when: datetime) -> int:
    return sum(1 for enrolled in d.enrolled.values() if enrolled < when)


def test_trial_balance_by_hand(client, program, days):
    end = _trial(client, program, datetime(2026, 12, 1, tzinfo=UTC))
    lines = {line["account"]: (line["balance"], line["accounts"]) for line in end["accounts"]}
    assert end["totals"] == {"points": 0, "cashback": 0} and end["rollup_as_of"] is None
    assert at(end["as_of"]) == datetime(2026, 12, 1, tzinfo=UTC)
    nonzero = {k: v for k, v in lines.items() if v[0] != 0}
    assert nonzero == {
        "house/points/issued/purchase": (-135, None),  # -100 - 50 + 25 - 10
        "house/points/redeemed": (30, None),
        "house/points/issued/adjustment/goodwill": (-15, None),
        "customer/*/points/available": (120, 2),  # c-1: 100 - 25 - 40 + 10; c-2: 50 + 15 + 10
        "house/cashback/funding/purchase": (-270, None),  # -200 - 100 + 50 - 20
        "customer/*/cashback/pending": (270, 2),  # c-1: 150, c-2: 120
    }
    assert lines["customer/*/points/reserved"] == (0, 2) and lines["customer/*/cashback/available"] == (0, 2)
    assert lines["house/points/expired"] == (0, None) and lines["house/cashback/written_off"] == (0, None)
    # customer lines first, then house accounts, per asset (cashback before points)
    order = [(line["asset"], not line["account"].startswith("customer/"), line["account"]) for line in end["accounts"]]
    assert order == sorted(order)

    during_hold = _trial(client, program, days.times["hold"] + timedelta(seconds=30))
    lines = {line["account"]: line["balance"] for line in during_hold["accounts"]}
    assert (lines["customer/*/points/available"], lines["customer/*/points/reserved"]) == (75 + 50 - 40, 40)
    assert lines["house/points/issued/purchase"] == -125 and lines["house/points/redeemed"] == 0

    midnight = _trial(client, program, datetime(2026, 11, 27, tzinfo=UTC))  # O-2 and c-2 not yet
    lines = {line["account"]: (line["balance"], line["accounts"]) for line in midnight["accounts"]}
    assert lines["customer/*/points/available"] == (100, 1) and lines["house/points/issued/purchase"] == (-100, None)
    first = _trial(client, program, datetime(2026, 11, 27, tzinfo=UTC) + US)
    lines = {line["account"]: (line["balance"], line["accounts"]) for line in first["accounts"]}
    assert lines["customer/*/points/available"] == (150, 2) and lines["customer/*/cashback/pending"] == (300, 2)

    empty = _trial(client, program, T0)
    assert all(line["balance"] == 0 for line in empty["accounts"]) and empty["totals"] == {"points": 0, "cashback": 0}
    assert {line["accounts"] for line in empty["accounts"] if line["account"].startswith("customer/")} == {0}
    assert_problem(client.get("/v1/ledger/trial-balance?as_of=2026-11-27T00:00:00", headers=program.headers("admin")),
                   422, "validation_error", field="as_of")
    for role in ("storefront", "app"):
        assert_problem(client.get("/v1/ledger/trial-balance", headers=program.headers(role)), 403, "forbidden")


def test_trial_balance_equals_the_entries_and_is_unchanged_by_roll_ups(client, app, program, days, clock, buy):
    from ledger.services.releases import run_jobs

    rows = all_entries(client, program)
    assert len(rows) == 4 + 4 + 4 + 2 + 3 + 2 + 4
    instants = _instants(days)
    before_jobs = {}
    for when in instants:
        tb = _trial(client, program, when)
        assert tb["rollup_as_of"] is None
        _check_trial(tb, rows, when, _customers_before(days, when))
        before_jobs[when] = tb

    clock.set(datetime(2026, 12, 2, 0, 10, tzinfo=UTC))
    done = run_jobs(app.extensions["ledger"].uow, clock)
    # the end of each day with entries, up to 12-02: 11-27, 11-28, 11-29, 11-30, 12-01 (12-01 has none)
    assert (done["rollups"], done["seals"], done["releases"], done["expired_holds"]) == (5, 1, 0, 0)
    again = run_jobs(app.extensions["ledger"].uow, clock)
    assert (again["rollups"], again["seals"]) == (0, 0)
    assert all_entries(client, program) == rows  # roll-ups and seals book nothing
    rollups = [datetime(2026, 11, day, tzinfo=UTC) for day in range(27, 31)] + [datetime(2026, 12, 1, tzinfo=UTC)]
    for when in instants:
        tb = _trial(client, program, when)
        used = max((r for r in rollups if r <= when), default=None)
        assert (at(tb["rollup_as_of"]) if tb["rollup_as_of"] else None) == used, when
        assert {**tb, "rollup_as_of": None} == before_jobs[when], when

    # after the last roll-up: the roll-up plus the entries since
    clock.set(datetime(2026, 12, 2, 0, 20, tzinfo=UTC))
    assert buy(program, "O-4", "c-1", 4_000).status_code == 201
    rows = all_entries(client, program)
    for when in (clock.now(), clock.now() + US, None):
        tb = _trial(client, program, when)
        assert at(tb["rollup_as_of"]) == datetime(2026, 12, 1, tzinfo=UTC)  # 12-01 had no entries to roll up
        _check_trial(tb, rows, when or clock.now() + US, 2)
    lines = {line["account"]: line["balance"] for line in _trial(client, program)["accounts"]}
    assert lines["house/points/issued/purchase"] == -175 and lines["customer/*/cashback/pending"] == 350
    done = run_jobs(app.extensions["ledger"].uow, clock)  # a booking since the last seal: a new seal, no roll-up
    assert (done["rollups"], done["seals"]) == (0, 1)
    assert (run_jobs(app.extensions["ledger"].uow, clock)["seals"]) == 0
    assert at(_trial(client, program)["as_of"]) == clock.now() + US  # default: everything up to now


def test_a_day_is_rolled_up_five_minutes_after_it_ends(client, app, make_program, enrol, buy, clock):
    """UTC days, whatever the program's timezone (Auckland is 13 hours ahead of UTC in November)."""
    from ledger.services.releases import run_jobs

    program = make_program(cashback_rate_bps=200, timezone="Pacific/Auckland")
    uow = app.extensions["ledger"].uow
    midnight = datetime(2026, 11, 27, tzinfo=UTC)
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 10_000).status_code == 201  # 11-26 12:00
    clock.set(midnight - US)
    assert buy(program, "O-2", "c-1", 1_000).status_code == 201  # the day's last instant: in the roll-up
    clock.set(midnight)
    assert buy(program, "O-3", "c-1", 2_000).status_code == 201  # the next day's first: after it
    clock.set(midnight + timedelta(minutes=2))
    assert buy(program, "O-4", "c-1", 3_000).status_code == 201
    clock.set(midnight + timedelta(minutes=5) - US)
    assert run_jobs(uow, clock)["rollups"] == 0
    assert _trial(client, program, midnight + timedelta(minutes=3))["rollup_as_of"] is None
    clock.set(midnight + timedelta(minutes=5))
    done = run_jobs(uow, clock)
    assert done["rollups"] == 1
    assert run_jobs(uow, clock)["rollups"] == 0
    rows = all_entries(client, program)
    for when, pending, used in ((midnight - US, 200, None), (midnight, 220, midnight), (midnight + US, 260, midnight),
                                (midnight + timedelta(minutes=2), 260, midnight),
                                (midnight + timedelta(minutes=3), 320, midnight)):
        tb = _trial(client, program, when)
        _check_trial(tb, rows, when, 1)
        lines = {line["account"]: line["balance"] for line in tb["accounts"]}
        assert lines["customer/*/cashback/pending"] == pending, when
        assert (at(tb["rollup_as_of"]) if tb["rollup_as_of"] else None) == used, when
    # 11-27 (O-3, O-4) is rolled up at its end; the days after it have no entries and need no roll-up
    clock.set(midnight + timedelta(days=3, minutes=5))
    assert run_jobs(uow, clock)["rollups"] == 1
    assert run_jobs(uow, clock)["rollups"] == 0
    for offset in (1, 2, 3):
        when = midnight + timedelta(days=offset)
        tb = _trial(client, program, when)
        assert at(tb["rollup_as_of"]) == midnight + timedelta(days=1)
        _check_trial(tb, rows, when, 1)


def test_trial_balance_of_a_program_without_entries(client, app, program, clock):
    from ledger.services.releases import run_jobs

    tb = _trial(client, program)
    assert tb["totals"] == {"points": 0, "cashback": 0} and tb["rollup_as_of"] is None
    assert all(line["balance"] == 0 for line in tb["accounts"])
    clock.advance(days=3)
    assert run_jobs(app.extensions["ledger"].uow, clock)["rollups"] == 0  # nothing to roll up before a first entry
    assert _trial(client, program)["rollup_as_of"] is None


# --- instants that do not exist in UTC ---------------------------------------------------------------------------------

OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00"]  # valid ISO 8601; not in UTC's range


def test_instants_out_of_range_in_utc_are_a_validation_error(client, program, enrol):
    enrol(program, "c-1")
    for path, name in (("/v1/ledger/entries", "from"), ("/v1/ledger/entries", "to"),
                       ("/v1/ledger/trial-balance", "as_of"), ("/v1/customers/c-1/balances", "as_of")):
        for value in OUT_OF_RANGE:
            response = client.get(path, query_string={name: value}, headers=program.headers("finance"))
            assert_problem(response, 422, "validation_error", field=name)


def test_export_with_an_instant_out_of_range_in_utc_is_a_validation_error(client, program, enrol, buy):
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 1_000).status_code == 201
    for value in OUT_OF_RANGE:
        response = client.get("/v1/ledger/export", query_string={"to": value}, headers=program.headers("finance"))
        assert_problem(response, 422, "validation_error", field="to")


def test_a_misspelled_filter_is_refused_not_ignored(client, program, enrol, buy):
    """`?customer=c-1` would otherwise answer the whole ledger as if it were one customer's."""
    enrol(program, "c-1")
    assert buy(program, "O-1", "c-1", 1_000).status_code == 201
    for path in ("/v1/ledger/entries", "/v1/ledger/export", "/v1/ledger/trial-balance", "/v1/reports/liability",
                 "/v1/reports/activity", "/v1/customers/c-1/balances"):
        response = client.get(path, query_string={"customer": "c-1"}, headers=program.headers("finance"))
        assert_problem(response, 422, "validation_error", field="customer")


def test_a_cursor_survives_the_same_instant_written_with_another_offset(client, program, enrol, buy):
    enrol(program, "c-1")
    for n in range(3):
        assert buy(program, f"O-{n}", "c-1", 1_000).status_code == 201
    finance = program.headers("finance")
    first = client.get("/v1/ledger/entries", query_string={"from": "2026-11-26T00:00:00Z", "limit": 2},
                       headers=finance).get_json()
    rest = client.get("/v1/ledger/entries", query_string={"from": "2026-11-26T02:00:00+02:00", "limit": 50,
                                                          "cursor": first["next_cursor"]}, headers=finance)
    assert rest.status_code == 200, rest.get_data(as_text=True)
    seqs = [e["seq"] for e in first["items"] + rest.get_json()["items"]]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) == 12
