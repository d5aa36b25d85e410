"""A featureless, hand-written raw-SQL prototype of the two hot routes, for `make bench` to measure.

The issue behind `make bench` sets its targets at what "a minimal hand-written raw-SQL prototype without
any features reaches on this machine". This is that prototype, so that the claim is measured in the same
run instead of assumed. It has none of the service's features on purpose: no idempotency keys, no body
validation beyond what the SQL needs, no tiers, rules, holds, lots, expiry, hash chain or stored answers,
no problem+json, a fixed bearer token. A purchase books points and cashback as one double-entry
transaction (an entry per leg, the customer's cached balances updated) in one autocommit statement; a
balance read is one SELECT. psycopg directly, one connection per thread, server-side prepared statements.

With `PROTOTYPE_WRITES=required` its purchase route books instead what the ledger model and the request
rules (ARCHITECTURE.md §1 and §2) require of any purchase, still by hand and in one autocommit statement
(see `REQUIRED_PURCHASE`): it measures what those writes cost, apart from how the service is built. A
service that decides what to write from the customer's state (tier, caps, value due, overdraft) must read
that state first: `required-read-first` reads it and sends the same write guarded by the state's version
(optimistic concurrency: a write that lost the race writes nothing and is tried again);
`required-locked-first` sends it after locking the customer (BEGIN, SELECT ... FOR UPDATE, the write,
COMMIT), as the service does.

Never used by the service: bench/run.py starts it under the same gunicorn settings as the service.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone

import psycopg
from flask import Flask, Response, abort, jsonify, request

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

# What the ledger model (ARCHITECTURE.md §1 and §2) requires of a purchase, and nothing
# more: a transaction with its type, reference, actor, request id and both instants, unique per order
# (the natural key's claim); entries with the customer accounts' balance after them, append-only
# (row and TRUNCATE triggers) and checked at COMMIT to sum to zero per asset (a deferred constraint
# trigger); the customer's cached pending balances, whose row locks serialise the customer's writes;
# the points lot; the purchase row with its return window, the request's fingerprint and the answer a
# replay returns byte for byte. Foreign keys as a ledger would have them.
REQUIRED_SCHEMA = """
CREATE TABLE IF NOT EXISTS req_customers (customer_id text PRIMARY KEY, status text NOT NULL DEFAULT 'active',
                                          version bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS req_accounts (
    customer_id text NOT NULL REFERENCES req_customers, asset text NOT NULL, bucket text NOT NULL,
    balance bigint NOT NULL DEFAULT 0, PRIMARY KEY (customer_id, asset, bucket));
CREATE TABLE IF NOT EXISTS req_transactions (
    id bigserial PRIMARY KEY, type text NOT NULL, ref_kind text NOT NULL, ref_id text NOT NULL,
    actor text NOT NULL, request_id text NOT NULL, idempotency_key text,
    occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL, UNIQUE (type, ref_kind, ref_id));
CREATE TABLE IF NOT EXISTS req_entries (
    seq bigserial PRIMARY KEY, transaction_id bigint NOT NULL REFERENCES req_transactions,
    account text NOT NULL, asset text NOT NULL, amount bigint NOT NULL CHECK (amount <> 0),
    balance_after bigint, recorded_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS req_entries_by_account ON req_entries (account, seq);
CREATE INDEX IF NOT EXISTS req_entries_by_transaction ON req_entries (transaction_id);
CREATE TABLE IF NOT EXISTS req_lots (
    id bigserial PRIMARY KEY, customer_id text NOT NULL REFERENCES req_customers,
    transaction_id bigint NOT NULL REFERENCES req_transactions, points bigint NOT NULL,
    remaining bigint NOT NULL, issued_at timestamptz NOT NULL, expires_at timestamptz);
CREATE INDEX IF NOT EXISTS req_lots_spending_order ON req_lots (customer_id, expires_at, id);
CREATE TABLE IF NOT EXISTS req_purchases (
    order_id text PRIMARY KEY, customer_id text NOT NULL REFERENCES req_customers,
    transaction_id bigint NOT NULL REFERENCES req_transactions, amount bigint NOT NULL,
    currency text NOT NULL, points bigint NOT NULL, cashback bigint NOT NULL,
    release_at timestamptz NOT NULL, fingerprint text NOT NULL, answer text NOT NULL);
CREATE OR REPLACE FUNCTION req_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '55000';
END $$;
CREATE OR REPLACE FUNCTION req_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM req_entries WHERE transaction_id = NEW.transaction_id
               GROUP BY asset HAVING sum(amount) <> 0) THEN
        RAISE EXCEPTION 'transaction % does not balance', NEW.transaction_id USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS req_entries_balanced ON req_entries;
CREATE CONSTRAINT TRIGGER req_entries_balanced AFTER INSERT ON req_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION req_check_balanced();
""" + "".join(f"""
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION req_refuse_change();
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION req_refuse_change();
""" for table in ("req_entries", "req_transactions"))

# One statement, so one round trip and its own transaction. The transaction's unique reference is the
# order id's claim: a repeated order books nothing (a concurrent one waits for the first to commit),
# and the route then replays the stored answer.
_REQUIRED_PURCHASE = """
WITH {guard}tx AS (
    INSERT INTO req_transactions (type, ref_kind, ref_id, actor, request_id, occurred_at, recorded_at)
    {transaction}
    ON CONFLICT (type, ref_kind, ref_id) DO NOTHING
    RETURNING id, recorded_at),
bal AS (
    UPDATE req_accounts
    SET balance = balance + CASE asset WHEN 'points' THEN %(points)s::bigint ELSE %(cashback)s::bigint END
    WHERE customer_id = %(customer_id)s AND bucket = 'pending' AND EXISTS (SELECT 1 FROM tx)
    RETURNING asset, balance),
legs AS (
    INSERT INTO req_entries (transaction_id, account, asset, amount, balance_after, recorded_at)
    SELECT tx.id, leg.account, leg.asset, leg.amount, bal.balance, tx.recorded_at
    FROM tx CROSS JOIN (VALUES ('customer/' || %(customer_id)s || '/points/pending', 'points', %(points)s::bigint, true),
                               ('house/points/issued/purchase', 'points', -%(points)s::bigint, false),
                               ('customer/' || %(customer_id)s || '/cashback/pending', 'cashback', %(cashback)s::bigint, true),
                               ('house/cashback/funding/purchase', 'cashback', -%(cashback)s::bigint, false))
                        AS leg (account, asset, amount, customer)
    LEFT JOIN bal ON leg.customer AND bal.asset = leg.asset),
lot AS (
    INSERT INTO req_lots (customer_id, transaction_id, points, remaining, issued_at, expires_at)
    SELECT %(customer_id)s, tx.id, %(points)s, %(points)s, tx.recorded_at, tx.recorded_at + interval '365 days'
    FROM tx),
answer AS (
    SELECT json_build_object('order_id', %(order_id)s::text, 'customer_id', %(customer_id)s::text,
                             'transaction_id', tx.id, 'points_earned', %(points)s::bigint,
                             'cashback_earned', %(cashback)s::bigint,
                             'balances', (SELECT json_object_agg(asset, json_build_object('pending', balance)) FROM bal)
                             )::text AS body
    FROM tx)
INSERT INTO req_purchases (order_id, customer_id, transaction_id, amount, currency, points, cashback, release_at,
                           fingerprint, answer)
SELECT %(order_id)s, %(customer_id)s, tx.id, %(amount)s, %(currency)s, %(points)s, %(cashback)s,
       tx.recorded_at + interval '14 days', %(fingerprint)s, answer.body
FROM tx, answer
RETURNING answer
"""
_TRANSACTION = "'purchase_accrual', 'order', %(order_id)s, 'prototype', %(request_id)s, %(now)s, %(now)s"
REQUIRED_PURCHASE = _REQUIRED_PURCHASE.format(guard="", transaction=f"VALUES ({_TRANSACTION})")
# The same write, guarded by the version of the customer's state read before it (optimistic concurrency):
# if another write moved the customer on since, it writes nothing and the route reads and tries again.
REQUIRED_PURCHASE_IF_UNCHANGED = _REQUIRED_PURCHASE.format(guard="""guard AS (
    UPDATE req_customers SET version = version + 1
    WHERE customer_id = %(customer_id)s AND version = %(version)s RETURNING 1),
""", transaction=f"SELECT {_TRANSACTION} FROM guard")

CUSTOMER_STATE = """
SELECT c.version, array_agg(a.balance ORDER BY a.asset, a.bucket)
FROM req_customers c JOIN req_accounts a USING (customer_id)
WHERE c.customer_id = %s AND c.status = 'active' GROUP BY c.version
"""
STORED_ANSWER = "SELECT fingerprint, answer FROM req_purchases WHERE order_id = %s"


def customer_ids(customers: int) -> list[str]:
    """The customers every benchmark database is seeded with, as the wrk scripts address them."""
    return [f"c-{i}" for i in range(customers)] + ["c-hot"]


def prepare(conninfo: str, customers: int) -> None:
    """The prototype's tables, with `customers` customers (c-0 ... c-{n-1}, and c-hot), each with one
    purchase booked, as bench/run.py seeds the service; then VACUUM ANALYZE. (Measured on tables
    analysed while empty, the prototype's first run spent 1.4 ms of PostgreSQL CPU per purchase instead
    of 0.16 ms and reached a third of its later throughput: plans made for empty tables.)"""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        ids = customer_ids(customers)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO proto_accounts (customer_id, asset) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(customer_id, asset) for customer_id in ids for asset in ("points", "cashback")])
            cur.executemany(PURCHASE, [{"order_id": f"seed-{customer_id}", "customer_id": customer_id,
                                        "amount": 1_000_000, "points": 10_000, "cashback": 20_000}
                                       for customer_id in ids])
        conn.execute("VACUUM ANALYZE")


def prepare_required(conninfo: str, customers: int) -> None:
    """The required-writes prototype's tables, seeded as `prepare` seeds the featureless one."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(REQUIRED_SCHEMA)
        ids = customer_ids(customers)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO req_customers (customer_id) VALUES (%s) ON CONFLICT DO NOTHING",
                            [(customer_id,) for customer_id in ids])
            cur.executemany("INSERT INTO req_accounts (customer_id, asset, bucket) VALUES (%s, %s, %s)"
                            " ON CONFLICT DO NOTHING",
                            [(customer_id, asset, bucket) for customer_id in ids
                             for asset in ("points", "cashback") for bucket in ("available", "pending")])
            now = datetime.now(timezone.utc)
            cur.executemany(REQUIRED_PURCHASE, [
                {"order_id": f"seed-{customer_id}", "customer_id": customer_id, "amount": 1_000_000,
                 "currency": "EUR", "points": 10_000, "cashback": 20_000, "request_id": "seed", "now": now,
                 "fingerprint": "seed"} for customer_id in ids])
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

    if os.environ.get("PROTOTYPE_WRITES", "").startswith("required"):
        counter = iter(range(1 << 62))
        locked_first = os.environ["PROTOTYPE_WRITES"] == "required-locked-first"
        read_first = os.environ["PROTOTYPE_WRITES"] == "required-read-first"

        @app.post("/v1/purchases")
        def required_purchase():  # noqa: ANN202
            body = request.get_json()
            if not (isinstance(body, dict) and isinstance(body.get("order_id"), str)
                    and isinstance(body.get("customer_id"), str) and type(body.get("amount")) is int
                    and body["amount"] > 0 and isinstance(body.get("currency"), str) and len(body["currency"]) == 3):
                abort(422)
            amount = body["amount"]
            fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            params = {"order_id": body["order_id"], "customer_id": body["customer_id"], "amount": amount,
                      "currency": body["currency"], "points": amount // 100, "cashback": amount * 200 // 10_000,
                      "request_id": f"r-{os.getpid()}-{next(counter)}", "now": datetime.now(timezone.utc),
                      "fingerprint": fingerprint}
            conn, stored = connection(), None
            if locked_first:
                # The same writes in a transaction block that locks the customer first, as a service that
                # reads the customer's state before deciding what to write must: BEGIN, the lock, the
                # write, COMMIT; four round trips instead of one.
                with conn.transaction():
                    conn.execute("SELECT 1 FROM req_customers WHERE customer_id = %s FOR UPDATE",
                                 (params["customer_id"],))
                    row = conn.execute(REQUIRED_PURCHASE, params).fetchone()
            elif read_first:
                while True:
                    state = conn.execute(CUSTOMER_STATE, (params["customer_id"],)).fetchone()
                    if state is None:
                        abort(404)
                    row = conn.execute(REQUIRED_PURCHASE_IF_UNCHANGED, {**params, "version": state[0]}).fetchone()
                    if row is not None:
                        break
                    stored = conn.execute(STORED_ANSWER, (params["order_id"],)).fetchone()
                    if stored is not None:  # booked before: a replay; otherwise the version moved on
                        break
            else:
                row = conn.execute(REQUIRED_PURCHASE, params).fetchone()
            if row is not None:
                return Response(row[0], 201, mimetype="application/json")
            stored = stored or conn.execute(STORED_ANSWER, (params["order_id"],)).fetchone()
            if stored is None or stored[0] != fingerprint:
                abort(409)
            return Response(stored[1], 201, mimetype="application/json", headers={"Idempotent-Replayed": "true"})
    else:
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
