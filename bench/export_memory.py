"""Exporting a million entries with flat worker memory (issue #6), measured, not timed in tests.

1. starts a throwaway PostgreSQL and migrates it (`ledger db upgrade`);
2. creates a program and generates N entries in SQL (N/2 balanced two-leg transactions, written
   with the triggers off for speed: this measures the export, not the booking path);
3. serves the app under gunicorn (gunicorn.conf.py, one worker) and streams
   `GET /v1/ledger/export?format=ndjson` and `format=csv` to /dev/null while sampling the worker's RSS;
4. runs `ledger export` on the command line and reads its peak RSS;
5. writes bench/results/export-<timestamp>.json and prints a table.

Usage: .venv/bin/python bench/export_memory.py [--entries 1000000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import (  # noqa: E402
    ROOT, VENV_BIN, Gunicorn, MemorySampler, free_port, pg_bindir, rss_kib, throwaway_cluster,
)


def generate(url: str, program_id: str, entries: int) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    transactions = entries // 2
    with engine.begin() as conn:
        conn.execute(sa.text("SET session_replication_role = replica"))  # skip the per-row triggers
        conn.execute(sa.text("INSERT INTO customers (program_id, customer_id, leaderboard_opt_in, status, created_at, "
                             "updated_at) VALUES (:p, 'bench-c', false, 'active', now(), now())"), {"p": program_id})
        pk = conn.execute(sa.text("SELECT pk FROM customers WHERE customer_id = 'bench-c'")).scalar_one()
        customer_account = conn.execute(sa.text(
            "INSERT INTO accounts (program_id, path, asset, customer_pk, balance, bucket) "
            "VALUES (:p, 'customer/bench-c/points/available', 'points', :pk, 0, 'available') RETURNING id"),
            {"p": program_id, "pk": pk}).scalar_one()
        house = conn.execute(sa.text("SELECT id FROM accounts WHERE program_id = :p AND path = "
                                     "'house/points/issued/purchase'"), {"p": program_id}).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO transactions (id, program_id, customer_pk, type, reference_kind, reference_id, description, "
            "actor, occurred_at, recorded_at, details) "
            "SELECT 'txn_bench_' || g, :p, :pk, 'purchase_accrual', 'order', 'B-' || g, "
            "'Earned ' || (g % 500 + 1) || ' points on order B-' || g, 'bench', "
            "timestamptz '2026-01-01' + g * interval '10 ms', timestamptz '2026-01-01' + g * interval '10 ms', '{}' "
            "FROM generate_series(1, :n) g"), {"p": program_id, "pk": pk, "n": transactions})
        conn.execute(sa.text(
            "INSERT INTO entries (program_id, transaction_id, account_id, asset, amount, balance_after, recorded_at) "
            "SELECT :p, 'txn_bench_' || g, CASE WHEN leg = 0 THEN :house ELSE :acct END, 'points', "
            "CASE WHEN leg = 0 THEN -(g % 500 + 1) ELSE g % 500 + 1 END, NULL, "
            "timestamptz '2026-01-01' + g * interval '10 ms' "
            "FROM generate_series(1, :n) g CROSS JOIN (VALUES (0), (1)) AS legs(leg) ORDER BY g, leg"),
            {"p": program_id, "house": house, "acct": customer_account, "n": transactions})
    engine.dispose()


def stream(url: str, key: str) -> dict:
    started = time.monotonic()
    size = lines = 0
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            lines += chunk.count(b"\n")
    return {"seconds": round(time.monotonic() - started, 1), "bytes": size, "lines": lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    bindir = pg_bindir()
    with throwaway_cluster("ledger-export-bench-") as (_workdir, port):
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "ledger"],
                       check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/ledger"
        env = {"LEDGER_DATABASE_URL": url, "LEDGER_OPERATOR_TOKEN": "bench"}
        subprocess.run([str(VENV_BIN / "ledger"), "--database-url", url, "db", "upgrade"], check=True,
                       stdout=subprocess.DEVNULL)
        created = json.loads(subprocess.check_output(
            [str(VENV_BIN / "ledger"), "--database-url", url, "programs", "create", "--name", "Export bench",
             "--currency", "EUR"], text=True))
        print(f"generating {args.entries:,} entries ...", flush=True)
        t0 = time.monotonic()
        generate(url, created["id"], args.entries)
        result: dict = {"started_at": datetime.now(timezone.utc).isoformat(), "entries": args.entries,
                        "generate_seconds": round(time.monotonic() - t0, 1), "http": {}}
        service = Gunicorn("api:create_app()", free_port(), 1, 4, env)
        try:
            key = created["api_keys"]["finance"]
            for fmt in ("ndjson", "csv"):
                with MemorySampler(service.proc.pid) as memory:
                    time.sleep(1.0)
                    before = memory.samples[-1][1] if memory.samples else 0
                    stats = stream(f"http://127.0.0.1:{service.port}/v1/ledger/export?format={fmt}", key)
                    time.sleep(1.0)
                samples = [peak for _t, peak, _total in memory.samples]
                stats.update(rss_before_mib=round(before / 1024, 1), rss_peak_mib=round(max(samples) / 1024, 1),
                             rss_growth_pct=round(100 * (max(samples) - before) / before, 1) if before else None)
                result["http"][fmt] = stats
                print(fmt, stats, flush=True)
        finally:
            service.stop()
        t0 = time.monotonic()
        peak = 0
        with open("/dev/null", "w") as devnull:
            cli = subprocess.Popen([str(VENV_BIN / "ledger"), "--database-url", url, "export", "--program",
                                    created["id"], "--format", "ndjson"], stdout=devnull, env={**env})
            while cli.poll() is None:
                peak = max(peak, rss_kib(cli.pid))
                time.sleep(0.2)
        result["cli"] = {"seconds": round(time.monotonic() - t0, 1), "peak_rss_mib": round(peak / 1024, 1),
                         "exit": cli.returncode}
        print("cli", result["cli"], flush=True)
    out = ROOT / "bench" / "results" / f"export-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\n| export | entries | seconds | worker RSS before | peak | growth |\n|---|---|---|---|---|---|")
    for fmt, s in result["http"].items():
        print(f"| HTTP {fmt} | {s['lines']:,} lines | {s['seconds']} | {s['rss_before_mib']} MiB | "
              f"{s['rss_peak_mib']} MiB | {s['rss_growth_pct']}% |")
    print(f"| CLI ndjson | {args.entries:,} | {result['cli']['seconds']} | | {result['cli']['peak_rss_mib']} MiB | |")
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
