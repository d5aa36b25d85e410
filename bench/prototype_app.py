"""A featureless, hand-written raw-SQL prototype of the two hot routes, for `make bench` to measure.

The issue behind `make bench` sets its targets at what "a minimal hand-written raw-SQL prototype without
any features reaches on this machine". This is that prototype, so that the claim is measured in the same
run instead of assumed. It has none of the service's features on purpose: no idempotency keys, no body
validation beyond what the SQL needs, no tiers, rules, holds, lots, expiry, hash chain or stored answers,
no problem+json, a fixed bearer token. A purchase books points and cashback as one double-entry
transaction (an entry per leg, the customer's cached balances updated) in one autocommit statement; a
balance read is one SELECT. psycopg directly, one connection per thread, server-side prepared statements.

Never used by the service: bench/run.py starts it under the same gunicorn settings as the service.
"""
from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, abort, jsonify, request

SCHEMA = """
CREATE TABLE IF NOT EXISTS proto_accounts (
    customer_id text NOT NULL, asset text NOT NULL, balance bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, asset));
CREATE TABLE IF NOT EXISTS proto_transactions (
    id bigserial PRIMARY KEY, order_id text NOT NULL UNIQUE, customer_id text NOT NULL,
    amount bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS proto_entries (
    id bigserial PRIMARY KEY, transaction_id bigint NOT NULL REFERENCES proto_transactions (id),
    account text NOT NULL, asset text NOT NULL, amount bigint NOT NULL);
"""

# One statement, so one round trip and its own transaction: the purchase row (a repeated order_id books
# nothing), four entries that sum to zero per asset, and the customer's two cached balances.
PURCHASE = """
WITH tx AS (
    INSERT INTO proto_transactions (order_id, customer_id, amount)
    VALUES (%(order_id)s, %(customer_id)s, %(amount)s)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING id),
legs AS (
    INSERT INTO proto_entries (transaction_id, account, asset, amount)
    SELECT tx.id, leg.account, leg.asset, leg.amount
    FROM tx, (VALUES ('customer:' || %(customer_id)s, 'points', %(points)s::bigint),
                     ('house:points_issued', 'points', -%(points)s::bigint),
                     ('customer:' || %(customer_id)s, 'cashback', %(cashback)s::bigint),
                     ('house:cashback_expense', 'cashback', -%(cashback)s::bigint)) AS leg (account, asset, amount))
UPDATE proto_accounts
SET balance = balance + CASE asset WHEN 'points' THEN %(points)s::bigint ELSE %(cashback)s::bigint END
WHERE customer_id = %(customer_id)s AND EXISTS (SELECT 1 FROM tx)
RETURNING asset, balance
"""

BALANCES = "SELECT asset, balance FROM proto_accounts WHERE customer_id = %s"


def prepare(conninfo: str, customers: int) -> None:
    """The prototype's tables, with `customers` customers (c-0 ... c-{n-1}, and c-hot), each with one
    purchase booked, as bench/run.py seeds the service; then VACUUM ANALYZE. (Measured on tables
    analysed while empty, the prototype's first run spent 1.4 ms of PostgreSQL CPU per purchase instead
    of 0.16 ms and reached a third of its later throughput: plans made for empty tables.)"""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        ids = [f"c-{i}" for i in range(customers)] + ["c-hot"]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO proto_accounts (customer_id, asset) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(customer_id, asset) for customer_id in ids for asset in ("points", "cashback")])
            cur.executemany(PURCHASE, [{"order_id": f"seed-{customer_id}", "customer_id": customer_id,
                                        "amount": 1_000_000, "points": 10_000, "cashback": 20_000}
                                       for customer_id in ids])
        conn.execute("VACUUM ANALYZE")


def create_app() -> Flask:
    conninfo = os.environ["PROTOTYPE_DATABASE_URL"]
    token = "Bearer " + os.environ.get("KEY", "")
    local = threading.local()
    app = Flask(__name__)

    def connection() -> psycopg.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(conninfo, autocommit=True)
        return conn

    @app.before_request
    def authenticate():  # noqa: ANN202
        if request.path != "/readyz" and request.headers.get("Authorization") != token:
            abort(401)

    @app.get("/readyz")
    def ready():  # noqa: ANN202
        connection().execute("SELECT 1")
        return jsonify(status="ok")

    @app.post("/v1/purchases")
    def purchase():  # noqa: ANN202
        body = request.get_json()
        amount = int(body["amount"])
        if amount <= 0:
            abort(422)
        params = {"order_id": str(body["order_id"]), "customer_id": str(body["customer_id"]), "amount": amount,
                  "points": amount // 100, "cashback": amount * 200 // 10_000}
        rows = connection().execute(PURCHASE, params).fetchall()
        if not rows:
            return jsonify(order_id=params["order_id"], replayed=True), 200
        return jsonify(order_id=params["order_id"], points_earned=params["points"],
                       cashback_earned=params["cashback"], balances=dict(rows)), 201

    @app.get("/v1/customers/<customer_id>/balances")
    def balances(customer_id: str):  # noqa: ANN202
        rows = connection().execute(BALANCES, (customer_id,)).fetchall()
        if not rows:
            abort(404)
        return jsonify(customer_id=customer_id, **{asset: {"available": balance} for asset, balance in rows})

    return app
