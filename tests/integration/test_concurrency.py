"""Concurrent writers: every purchase lands, and a duplicated order books exactly once.

- PostgreSQL, with real parallel connections: one Flask test client per thread, all released
  together by a barrier; the app's engine pool gives each request its own connection.
- SQLite, through gunicorn (3 worker processes, threads): what `make run` serves. Concurrent
  writers must wait their turn (BEGIN IMMEDIATE + busy timeout), never fail with "database is locked".
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from functools import partial
from typing import Any, Callable

import pytest

from tests.integration.servers import free_port as _free_port, http, ledger_cli as _ledger_cli

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BARRIER_TIMEOUT = 20
REQUEST_TIMEOUT = 30
_http = partial(http, timeout=REQUEST_TIMEOUT)

N_PURCHASES = 20
N_COPIES = 10


def points_for(amount: int) -> int:  # the default program: 1 point per euro
    return amount // 100


def cashback_for(amount: int) -> int:  # 2% cashback (cashback_rate_bps=200)
    return amount * 200 // 10_000


def run_together(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run `call(i)` for i in range(n) in n threads released at the same moment; results in order."""
    barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

    def task(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(task, i) for i in range(n)]
        return [f.result(timeout=BARRIER_TIMEOUT + REQUEST_TIMEOUT * 2) for f in futures]


# =========================================================================== PostgreSQL, in process


pg_only = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="needs real parallel connections: run with LEDGER_TEST_BACKEND=postgresql "
           "(SQLite concurrency is tested through gunicorn below)")


def _post_purchase(app: Any, program: Any, body: dict, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    client = app.test_client()  # one client per thread
    response = client.post("/v1/purchases", json=body, headers=program.headers("storefront", **(headers or {})))
    return response.status_code, response.get_data(), dict(response.headers)


def _purchase_transactions(client: Any, program: Any, customer_id: str) -> list[dict]:
    activity = client.get(f"/v1/customers/{customer_id}/activity?limit=500", headers=program.headers("app"))
    assert activity.status_code == 200
    assert activity.get_json()["next_cursor"] is None
    return [item for item in activity.get_json()["items"] if item["type"] == "purchase_accrual"]


def _entries_by_transaction(client: Any, program: Any) -> dict[str, list[dict]]:
    response = client.get("/v1/ledger/entries?limit=500", headers=program.headers("finance"))
    assert response.status_code == 200
    assert response.get_json()["next_cursor"] is None
    grouped: dict[str, list[dict]] = {}
    for entry in response.get_json()["items"]:
        grouped.setdefault(entry["transaction_id"], []).append(entry)
    return grouped


@pg_only
def test_concurrent_purchases_for_one_customer_all_land(app, client, program, enrol, verify) -> None:
    enrol(program, "c-1")
    amounts = [1_000 * (i + 1) + 37 * i for i in range(N_PURCHASES)]

    def purchase(i: int) -> tuple[int, bytes, dict]:
        return _post_purchase(app, program, {"order_id": f"P-{i}", "customer_id": "c-1", "amount": amounts[i],
                                             "currency": "EUR"})

    results = run_together(N_PURCHASES, purchase)

    assert [status for status, _, _ in results] == [201] * N_PURCHASES, [r[1][:300] for r in results]
    assert not any("Idempotent-Replayed" in headers for _, _, headers in results)
    answers = [json.loads(body) for _, body, _ in results]
    assert len({a["transaction_id"] for a in answers}) == N_PURCHASES
    assert [a["points_earned"] for a in answers] == [points_for(a) for a in amounts]

    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["points"] == {"available": sum(map(points_for, amounts)), "pending": 0, "reserved": 0}
    assert balances["cashback"] == {"available": 0, "pending": sum(map(cashback_for, amounts)), "reserved": 0}
    # The balances each answer showed are a serial history: every one a distinct partial sum.
    seen_points = sorted(a["balances"]["points"]["available"] for a in answers)
    assert seen_points[-1] == sum(map(points_for, amounts))
    assert len(set(seen_points)) == N_PURCHASES

    transactions = _purchase_transactions(client, program, "c-1")
    assert len(transactions) == N_PURCHASES
    assert sorted(t["reference"]["id"] for t in transactions) == sorted(f"P-{i}" for i in range(N_PURCHASES))
    entries = _entries_by_transaction(client, program)
    assert len(entries) == N_PURCHASES and all(len(legs) == 4 for legs in entries.values())
    report = verify()
    assert report.entries == 4 * N_PURCHASES


@pg_only
def test_concurrent_copies_of_one_order_book_once(app, client, program, enrol, verify) -> None:
    enrol(program, "c-1")
    body = {"order_id": "DUP-1", "customer_id": "c-1", "amount": 4_999, "currency": "EUR"}

    results = run_together(N_COPIES, lambda i: _post_purchase(app, program, body))

    statuses = [status for status, _, _ in results]
    assert statuses == [201] * N_COPIES, [r[1][:300] for r in results]
    assert len({raw for _, raw, _ in results}) == 1, "every copy must answer byte for byte the same"
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in results]
    assert replayed.count("true") == N_COPIES - 1 and replayed.count(None) == 1

    transactions = _purchase_transactions(client, program, "c-1")
    assert [t["reference"]["id"] for t in transactions] == ["DUP-1"]
    assert list(_entries_by_transaction(client, program)) == [json.loads(results[0][1])["transaction_id"]]
    balances = client.get("/v1/customers/c-1/balances", headers=program.headers("app")).get_json()
    assert balances["points"]["available"] == points_for(4_999)
    assert verify().entries == 4


@pg_only
def test_concurrent_copies_with_one_idempotency_key_answer_identically(app, client, program, enrol, verify) -> None:
    enrol(program, "c-1")
    body = {"order_id": "IK-1", "customer_id": "c-1", "amount": 2_500, "currency": "EUR"}

    results = run_together(N_COPIES, lambda i: _post_purchase(app, program, body, {"Idempotency-Key": "key-IK-1"}))

    assert [status for status, _, _ in results] == [201] * N_COPIES, [r[1][:300] for r in results]
    assert len({raw for _, raw, _ in results}) == 1
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in results]
    assert replayed.count("true") == N_COPIES - 1 and replayed.count(None) == 1
    assert [t["reference"]["id"] for t in _purchase_transactions(client, program, "c-1")] == ["IK-1"]
    assert verify().entries == 4


@pg_only
def test_concurrent_copies_for_an_unknown_customer_under_one_key_answer_identically(app, client, program, verify) -> None:
    """A business-rule failure under an Idempotency-Key is stored and replayed: same status and body."""
    body = {"order_id": "NC-1", "customer_id": "nobody", "amount": 2_500, "currency": "EUR"}

    results = run_together(N_COPIES, lambda i: _post_purchase(app, program, body, {"Idempotency-Key": "key-NC-1"}))

    assert [status for status, _, _ in results] == [404] * N_COPIES, [r[1][:300] for r in results]
    assert len({raw for _, raw, _ in results}) == 1
    assert json.loads(results[0][1])["code"] == "customer_not_found"
    assert [h.get("Idempotent-Replayed") for _, _, h in results].count("true") == N_COPIES - 1
    assert verify().entries == 0


# =========================================================================== SQLite, through gunicorn


sqlite_only = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the gunicorn + SQLite test runs once, in the SQLite run (it does not use the PostgreSQL test database)")





@pytest.fixture
def gunicorn_sqlite(tmp_path: Path):
    """A migrated SQLite file, a program created with the CLI, and gunicorn with 3 workers serving it."""
    from ledger.cli import upgrade_database

    url = f"sqlite:///{tmp_path}/x.db"
    upgrade_database(url)
    created = _ledger_cli(url, "programs", "create", "--name", "T", "--currency", "EUR")
    assert created.returncode == 0, created.stderr
    program = json.loads(created.stdout)

    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_OPERATOR_TOKEN": "gunicorn-test-operator-token"}
    env.pop("PORT", None)
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "-w", "3",
         "api:create_app()"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text(errors="replace")[-3000:]
            try:
                if _http("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 30 s"
            time.sleep(0.1)
        yield {"base": base, "url": url, "program": program, "log": tmp_path / "gunicorn.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@sqlite_only
def test_gunicorn_on_sqlite_queues_concurrent_writers(gunicorn_sqlite) -> None:
    base, url, program = gunicorn_sqlite["base"], gunicorn_sqlite["url"], gunicorn_sqlite["program"]
    storefront = {"Authorization": f"Bearer {program['api_keys']['storefront']}"}
    finance = {"Authorization": f"Bearer {program['api_keys']['finance']}"}

    status, raw, _ = _http("PUT", f"{base}/v1/customers/c-1", {}, storefront)
    assert status == 201, raw

    # 20 concurrent purchases for one customer.
    amounts = [1_000 * (i + 1) + 37 * i for i in range(N_PURCHASES)]
    results = run_together(N_PURCHASES, lambda i: _http(
        "POST", f"{base}/v1/purchases",
        {"order_id": f"P-{i}", "customer_id": "c-1", "amount": amounts[i], "currency": "EUR"}, storefront))
    assert [s for s, _, _ in results] == [201] * N_PURCHASES, [(s, r[:300]) for s, r, _ in results if s != 201]

    # 10 concurrent copies of one order.
    body = {"order_id": "DUP-1", "customer_id": "c-1", "amount": 4_999, "currency": "EUR"}
    copies = run_together(N_COPIES, lambda i: _http("POST", f"{base}/v1/purchases", body, storefront))
    assert [s for s, _, _ in copies] == [201] * N_COPIES, [(s, r[:300]) for s, r, _ in copies if s != 201]
    assert len({r for _, r, _ in copies}) == 1, "every copy must answer byte for byte the same"
    replayed = [h.get("Idempotent-Replayed") for _, _, h in copies]
    assert replayed.count("true") == N_COPIES - 1 and replayed.count(None) == 1

    # 10 concurrent copies under one Idempotency-Key.
    keyed = {"order_id": "IK-1", "customer_id": "c-1", "amount": 2_500, "currency": "EUR"}
    keyed_copies = run_together(N_COPIES, lambda i: _http(
        "POST", f"{base}/v1/purchases", keyed, {**storefront, "Idempotency-Key": "key-IK-1"}))
    assert [s for s, _, _ in keyed_copies] == [201] * N_COPIES, [(s, r[:300]) for s, r, _ in keyed_copies]
    assert len({r for _, r, _ in keyed_copies}) == 1

    # What the ledger holds: 22 purchase transactions, one per order, of 2 entries each (a CLI-created
    # program earns 1 point per euro and no cashback).
    status, raw, _ = _http("GET", f"{base}/v1/ledger/entries?limit=500", headers=finance)
    assert status == 200, raw
    page = json.loads(raw)
    assert page["next_cursor"] is None
    per_transaction = Counter(e["transaction_id"] for e in page["items"])
    assert program["cashback_rate_bps"] == 0
    assert len(per_transaction) == N_PURCHASES + 2 and set(per_transaction.values()) == {2}
    status, raw, _ = _http("GET", f"{base}/v1/customers/c-1/activity?limit=500", headers=storefront)
    assert status == 200, raw
    orders = Counter(item["reference"]["id"] for item in json.loads(raw)["items"])
    assert orders["DUP-1"] == 1 and orders["IK-1"] == 1
    assert sorted(orders) == sorted([f"P-{i}" for i in range(N_PURCHASES)] + ["DUP-1", "IK-1"])
    status, raw, _ = _http("GET", f"{base}/v1/customers/c-1/balances", headers=storefront)
    expected_points = sum(map(points_for, amounts)) + points_for(4_999) + points_for(2_500)
    assert json.loads(raw)["points"] == {"available": expected_points, "pending": 0, "reserved": 0}

    log = gunicorn_sqlite["log"].read_text(errors="replace")
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]

    verified = _ledger_cli(url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
