"""The benchmark's "required writes" prototype (bench/prototype_app.py) books what it claims to: its
throughput is the yardstick `make bench` reports the service against, so a prototype that skipped a
write, a check or a replay would flatter the yardstick. PostgreSQL only, as the benchmark."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("LEDGER_TEST_BACKEND", "sqlite") != "postgresql",
                                reason="the benchmark runs on PostgreSQL")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import prototype_app  # noqa: E402

AUTH = {"Authorization": "Bearer k"}


@pytest.mark.parametrize("writes", ["required", "required-locked-first", "required-read-first"])
def test_the_required_writes_prototype_books_checks_and_replays(database_url, monkeypatch, writes):
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    prototype_app.prepare_required(url, 3)
    monkeypatch.setenv("PROTOTYPE_DATABASE_URL", url)
    monkeypatch.setenv("KEY", "k")
    monkeypatch.setenv("PROTOTYPE_WRITES", writes)
    client = prototype_app.create_app().test_client()
    order = {"order_id": "o-1", "customer_id": "c-1", "amount": 12_345, "currency": "EUR"}

    first = client.post("/v1/purchases", json=order, headers=AUTH)
    replay = client.post("/v1/purchases", json=order, headers=AUTH)
    other_body = client.post("/v1/purchases", json={**order, "amount": 500}, headers=AUTH)
    bad = client.post("/v1/purchases", json={**order, "order_id": "o-2", "amount": "12"}, headers=AUTH)

    assert first.status_code == 201 and first.json["points_earned"] == 123 and first.json["cashback_earned"] == 246
    # the seed's purchase credited 10,000 points and 20,000 cents of pending value
    assert first.json["balances"] == {"points": {"pending": 10_123}, "cashback": {"pending": 20_246}}
    assert replay.status_code == 201 and replay.data == first.data
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert other_body.status_code == 409 and bad.status_code == 422
    with psycopg.connect(url, autocommit=True) as conn:
        tx = first.json["transaction_id"]
        entries = conn.execute("SELECT account, asset, amount, balance_after FROM req_entries"
                               " WHERE transaction_id = %s ORDER BY seq", (tx,)).fetchall()
        assert entries == [("customer/c-1/points/pending", "points", 123, 10_123),
                           ("house/points/issued/purchase", "points", -123, None),
                           ("customer/c-1/cashback/pending", "cashback", 246, 20_246),
                           ("house/cashback/funding/purchase", "cashback", -246, None)]
        assert conn.execute("SELECT count(*) FROM req_transactions WHERE ref_id = 'o-1'").fetchone() == (1,)
        assert conn.execute("SELECT points, remaining FROM req_lots WHERE transaction_id = %s", (tx,)).fetchone() \
            == (123, 123)
        assert conn.execute("SELECT answer FROM req_purchases WHERE order_id = 'o-1'").fetchone() \
            == (first.data.decode(),)
        cached = dict(conn.execute("SELECT asset, balance FROM req_accounts WHERE customer_id = 'c-1'"
                                   " AND bucket = 'pending'").fetchall())
        assert cached == {"points": 10_123, "cashback": 20_246}
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="append-only"):
            conn.execute("UPDATE req_entries SET amount = 1 WHERE transaction_id = %s", (tx,))
        with pytest.raises(psycopg.errors.CheckViolation, match="does not balance"):
            with conn.transaction():
                (lonely,), = conn.execute(
                    "INSERT INTO req_transactions (type, ref_kind, ref_id, actor, request_id, occurred_at,"
                    " recorded_at) VALUES ('adjustment', 'adjustment', 'a-1', 't', 't', now(), now())"
                    " RETURNING id").fetchall()
                conn.execute("INSERT INTO req_entries (transaction_id, account, asset, amount, recorded_at)"
                             " VALUES (%s, 'house/points/issued/purchase', 'points', 5, now())", (lonely,))
