"""Where a purchase's database time goes: PostgreSQL's own statistics, in-process, one request at a time.

`profile_checkout.py` and `profile_load.py` show the Python side. This shows the server side. It starts
a throwaway PostgreSQL with pg_stat_statements (tracking nested statements too: the lock function's
queries, foreign-key checks, the deferred balance checks) and function statistics, seeds customers
as `make bench` does, warms up, analyses, and then drives N requests through the app's WSGI callable.
It prints, per request:

- wall time, the Python process's CPU time, and the CPU time of this cluster's server processes
  (from /proc: the backend, plus the WAL writer and the rest);
- each statement's execution time (top-level statements marked T, nested ones n; a nested statement's
  time is also inside its caller's), and the calls per request;
- the PL/pgSQL functions' time (the lock call, the balance checks).

Execution time leaves out parsing, planning (plans are generic and cached), the protocol and the
commit, so the statements add up to less than the server's CPU. The statistics cost some CPU
themselves; compare runs of this script with each other, not with `make bench`.

    .venv/bin/python bench/profile_database.py [--requests 3000] [--scenario purchases|balances] [--top 20]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import PG_SCRIPT, seed, throwaway_cluster  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

CUSTOMERS = 2000  # as make bench seeds


def cluster_cpu_seconds(data_dir: Path) -> float:
    """User and system CPU of the cluster's postmaster and its children, from /proc."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone since listed
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def with_statistics(workdir: Path, port: int) -> str:
    """Restart the throwaway cluster with pg_stat_statements preloaded and tracking nested statements,
    and create the database; returns its URL (psycopg's form)."""
    import psycopg

    start = ["bash", str(PG_SCRIPT), "start", str(workdir), str(port)]
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("ALTER SYSTEM SET track_functions = 'pl'")
    subprocess.run(["bash", str(PG_SCRIPT), "stop", str(workdir)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")  # nested statements too
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CREATE DATABASE ledger")
    return f"postgresql://postgres@127.0.0.1:{port}/ledger"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--scenario", choices=["purchases", "balances"], default="purchases")
    parser.add_argument("--top", type=int, default=20, help="how many statements to list")
    args = parser.parse_args()
    import psycopg

    with throwaway_cluster("ledger-profile-db-", quiet=True) as (workdir, port):
        url = with_statistics(workdir, port)
        keys = seed(url.replace("postgresql://", "postgresql+psycopg://"), CUSTOMERS)
        os.environ.setdefault("LEDGER_OPERATOR_TOKEN", "profile")
        from api import create_app

        app = create_app({"DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://")})
        headers = {"Authorization": f"Bearer {keys['storefront']}", "Content-Type": "application/json"}
        rng = random.Random(7)

        def call(tag: str) -> None:
            customer = f"c-{rng.randrange(CUSTOMERS)}"
            if args.scenario == "purchases":
                body = json.dumps({"order_id": f"p-{tag}", "customer_id": customer, "amount": 1234, "currency": "EUR"})
                environ = EnvironBuilder(path="/v1/purchases", method="POST", headers=headers, data=body).get_environ()
                expected = "201"
            else:
                environ = EnvironBuilder(path=f"/v1/customers/{customer}/balances", headers=headers).get_environ()
                expected = "200"
            status: list[str] = []
            data = b"".join(app(environ, lambda status_, headers_, exc_info=None: status.append(status_)))
            assert status[0].startswith(expected), (status, data)

        # Warm up with purchases (so that a balance read has history too), analyse, and start the
        # measured connections afresh so that their generic plans are made on analysed tables.
        for i in range(300):
            body = json.dumps({"order_id": f"w-{i}", "customer_id": f"c-{rng.randrange(CUSTOMERS)}",
                               "amount": 1234, "currency": "EUR"})
            environ = EnvironBuilder(path="/v1/purchases", method="POST", headers=headers, data=body).get_environ()
            b"".join(app(environ, lambda *_: None))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        app.extensions["ledger"].engines.dispose()
        for i in range(50):
            call(f"v-{i}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
            conn.execute("SELECT pg_stat_reset()")

        n = args.requests
        server_before, wall_before, python_before = cluster_cpu_seconds(workdir / "data"), time.perf_counter(), time.process_time()
        for i in range(n):
            call(f"m-{i}")
        wall, python = time.perf_counter() - wall_before, time.process_time() - python_before
        server = cluster_cpu_seconds(workdir / "data") - server_before
        print(f"{args.scenario}: {n} requests; per request: {wall / n * 1e6:.0f} µs wall, "
              f"{python / n * 1e6:.0f} µs of Python CPU, {server / n * 1e6:.0f} µs of PostgreSQL CPU")
        app.extensions["ledger"].engines.dispose()  # a backend reports its last statistics as it exits
        time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT calls, total_exec_time, toplevel, regexp_replace(query, '\\s+', ' ', 'g')"
                "  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'ledger')"
                "   AND query NOT LIKE '%%pg_stat%%' ORDER BY total_exec_time DESC LIMIT %s", (args.top,)).fetchall()
            print("\nstatements (execution time per request; T top-level, n nested):")
            for calls, total_ms, toplevel, query in rows:
                print(f"  {total_ms * 1000 / n:7.1f} µs  {calls / n:5.1f} calls  {'T' if toplevel else 'n'}  {query[:110]}")
            functions = conn.execute("SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions WHERE calls > 0"
                                     " ORDER BY total_time DESC").fetchall()
            print("\nPL/pgSQL functions (per request):")
            for name, calls, total_ms, self_ms in functions:
                print(f"  {total_ms * 1000 / n:7.1f} µs total, {self_ms * 1000 / n:7.1f} µs own  "
                      f"{calls / n:5.1f} calls  {name}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
