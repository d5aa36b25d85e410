"""Where a checkout request spends its time, in-process (no gunicorn, no load generator).

Starts a throwaway PostgreSQL (scripts/pg-test-server.sh), seeds customers through the use cases,
then drives `POST /v1/purchases` and `GET /v1/customers/{id}/balances` through the app's WSGI
callable, as gunicorn calls it (`--test-client`: through Flask's test client, which adds its own
cost), and prints, per request: the SQL statements issued, wall time, the Python process's CPU time,
and the time spent inside the driver's execute (the database's share plus the wire); the best of three
rounds. With --profile, one round and the top functions by own CPU time (cProfile on process time,
so that waiting on the database does not rank first).

    .venv/bin/python bench/profile_checkout.py [--requests 1000] [--profile] [--test-client]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import pg_bindir, seed, throwaway_cluster  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

CUSTOMERS = 200


def measure(name: str, call, requests: int, engines, profile: bool, sort: str = "tottime",  # noqa: ANN001
            top: int = 25) -> dict:
    """The best of three rounds of `requests` calls (this machine's speed drifts between rounds)."""
    from sqlalchemy import event

    statements: list[str] = []
    in_execute = [0.0]
    started: list[float] = []  # statements on one connection never overlap

    def before(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ANN202
        statements.append(" ".join(statement.split()[:4]))
        started.append(time.perf_counter())

    def after(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ANN202
        in_execute[0] += time.perf_counter() - (started.pop() if started else time.perf_counter())

    for i in range(50):  # warm up: caches, prepared statements
        call(f"warm-{i}")
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
    try:
        call("one")
        one = list(statements)
        rounds = []
        profiler = cProfile.Profile(time.process_time) if profile else None
        for round_ in range(1 if profile else 3):
            statements.clear()
            in_execute[0] = 0.0
            if profiler:
                profiler.enable()
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(requests):
                call(f"{round_}-{i}")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if profiler:
                profiler.disable()
            rounds.append((cpu, wall, in_execute[0]))
        cpu, wall, in_execute[0] = min(rounds)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
    result = {"statements_per_request": len(one), "statements": one,
              "wall_ms": round(wall / requests * 1000, 3), "python_cpu_ms": round(cpu / requests * 1000, 3),
              "in_execute_ms": round(in_execute[0] / requests * 1000, 3)}
    print(f"\n{name}: {result['statements_per_request']} statements, {result['wall_ms']} ms wall, "
          f"{result['python_cpu_ms']} ms Python CPU, {result['in_execute_ms']} ms inside execute (per request)")
    for statement in one:
        print(f"    {statement}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
        print(out.getvalue()[out.getvalue().index("ncalls"):])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"],
                        help="with --profile: rank functions by own time (default) or including callees")
    parser.add_argument("--top", type=int, default=25, help="with --profile: how many functions to list")
    parser.add_argument("--idempotency-key", action="store_true",
                        help="send a new Idempotency-Key with every purchase, as a storefront that retries would")
    parser.add_argument("--test-client", action="store_true",
                        help="go through Flask's test client (as before 2026-11-27) instead of the WSGI callable")
    args = parser.parse_args()
    with throwaway_cluster("ledger-profile-", quiet=True) as (_workdir, port):
        subprocess.run([str(pg_bindir() / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "ledger"], check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/ledger"
        keys = seed(url, CUSTOMERS)
        os.environ.setdefault("LEDGER_OPERATOR_TOKEN", "profile")
        from api import create_app

        app = create_app({"DATABASE_URL": url})
        client = app.test_client()
        engines = app.extensions["ledger"].engines
        engines = list({id(e): e for e in (engines.read, engines.write, engines.autocommit_read)}.values())
        headers = {"Authorization": f"Bearer {keys['storefront']}", "Content-Type": "application/json"}
        rng = random.Random(7)

        def call(method: str, path: str, body: str | None, expected: int, extra: dict | None = None) -> None:
            headers_ = {**headers, **(extra or {})}
            if args.test_client:
                response = client.open(path, method=method, headers=headers_, data=body)
                status, data = response.status_code, response.get_data()
            else:  # as gunicorn calls it: the WSGI callable, no test client around it
                environ = EnvironBuilder(path=path, method=method, headers=headers_, data=body).get_environ()
                answer: list[str] = []
                data = b"".join(app(environ, lambda status_, headers_, exc_info=None: answer.append(status_)))
                status = int(answer[0].split()[0])
            assert status == expected, data

        def purchase(tag: str) -> None:
            body = {"order_id": f"p-{tag}", "customer_id": f"c-{rng.randrange(CUSTOMERS)}", "amount": 1234,
                    "currency": "EUR"}
            call("POST", "/v1/purchases", json.dumps(body), 201,
                 {"Idempotency-Key": f"key-{tag}"} if args.idempotency_key else None)

        def balances(_tag: str) -> None:
            call("GET", f"/v1/customers/c-{rng.randrange(CUSTOMERS)}/balances", None, 200)

        measure("POST /v1/purchases", purchase, args.requests, engines, args.profile, args.sort, args.top)
        measure("GET /v1/customers/{id}/balances", balances, args.requests, engines, args.profile, args.sort, args.top)
        app.extensions["ledger"].engines.dispose()
        return 0


if __name__ == "__main__":
    sys.exit(main())
