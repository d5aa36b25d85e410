"""`make bench`: the service against the database's and the web stack's own limits, in one run.

1. starts a throwaway PostgreSQL (scripts/pg-test-server.sh);
2. baselines: pgbench's built-in TPC-B-like script, a bare Flask app under the same gunicorn settings, and
   the featureless raw-SQL prototype the targets are pegged to (bench/prototype_app.py: the same purchase
   and balance-read scripts; one statement per request), and the same prototype's purchase booking what the
   ledger model requires of any purchase (`PROTOTYPE_WRITES=required`, still one statement), those writes
   after reading the customer's state (`required-read-first`: guarded by its version) and after locking the
   customer (`required-locked-first`: BEGIN, SELECT ... FOR UPDATE, the write, COMMIT); all measured again
   after the scenarios, and the ratios use the mean, since this machine's speed drifts;
3. the service under gunicorn (gunicorn.conf.py, production settings) and wrk scenarios: checkout accrual
   with Zipf-distributed customers, balance reads, hold then capture, one hot customer, a mixed profile;
4. after every scenario, `ledger verify` (the ledger sums to zero, cached balances equal entries), then
   VACUUM ANALYZE and CHECKPOINT before the next one (see `settle`), and ANALYZE again after each
   warm-up, so that plans are made on tables with rows in them (see `warm_up`);
5. a soak run (default 600 s) sampling worker memory;
6. writes bench/results/<timestamp>.json and bench/results/latest.md, and prints the table.

Options: --duration S (per scenario, default 20), --connections N (16), --customers N (2000),
--workers N (gunicorn processes, default 3), --threads N (per process, default 2), --soak S (600; 0 skips it),
--only a,b (just these scenarios; latest.md is then left alone).
Workers and threads apply to the bare Flask baseline and the service alike. 3 x 2 gave the lowest
purchase p99 of 2x4, 3x2, 3x3, 4x2 and 4x4 on this 2-core machine (throughput within noise of each other).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from prototype_app import customer_ids
from prototype_app import prepare as prepare_prototype
from prototype_app import prepare_required as prepare_required_prototype

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
PG_SCRIPT = ROOT / "scripts" / "pg-test-server.sh"


# The load scenarios, in the order they run: (name, wrk script under bench/lua).
SCENARIOS = [("purchase_accrual_zipf", "accrual_zipf.lua"), ("balance_reads", "balances.lua"),
             ("hold_then_capture", "hold_capture.lua"), ("hot_customer_purchases", "hot_customer.lua"),
             ("mixed_storefront_app", "mixed.lua")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_cluster(prefix: str, quiet: bool = False) -> Iterator[tuple[Path, int]]:
    """A PostgreSQL cluster of our own (`scripts/pg-test-server.sh`) in a new temporary directory, on
    a free port: (that directory, the port). Stopped and removed on leaving, whatever happened."""
    workdir, port = Path(tempfile.mkdtemp(prefix=prefix)), free_port()
    out = subprocess.DEVNULL if quiet else None
    try:
        subprocess.run(["bash", str(PG_SCRIPT), "start", str(workdir), str(port)], check=True, stdout=out)
        yield workdir, port
    finally:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", str(workdir)], check=False, stdout=out)
        shutil.rmtree(workdir, ignore_errors=True)


def pg_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)
    if candidates:
        return candidates[0].parent
    return Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return shutil.which("wrk")
    raise SystemExit("bench needs wrk (apt-get install wrk)")


def worker_pids(master: int) -> list[int]:
    try:
        out = subprocess.check_output(["ps", "-o", "pid=", "--ppid", str(master)], text=True)
    except subprocess.CalledProcessError:
        return []
    return [int(p) for p in out.split()]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(master: int) -> dict[str, float]:
    """CPU time (user + system) so far of the gunicorn master and its workers, and of every
    PostgreSQL process (`postgres` is the throwaway cluster's own user)."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int | str) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return 0.0

    try:
        out = subprocess.check_output(["ps", "-u", "postgres", "-o", "pid="], text=True)
    except subprocess.CalledProcessError:
        out = ""
    return {"gunicorn": used(master) + sum(used(pid) for pid in worker_pids(master)),
            "postgres": sum(used(pid) for pid in out.split())}


class MemorySampler:
    """Samples every gunicorn worker's RSS twice a second; keeps the peak and the per-sample totals."""

    def __init__(self, master: int) -> None:
        self.master, self.peak_kib, self.samples = master, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [rss_kib(pid) for pid in worker_pids(self.master)]
            if sizes:
                self.peak_kib = max(self.peak_kib, max(sizes))
                self.samples.append((time.monotonic(), max(sizes), sum(sizes)))
            self._stop.wait(0.5)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Gunicorn:
    def __init__(self, app: str, port: int, workers: int, threads: int, env: dict[str, str]) -> None:
        self.port = port
        # Kept only when gunicorn did not start or did not stop cleanly (see `stop`).
        self.log = tempfile.NamedTemporaryFile("w", prefix="bench-gunicorn-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--threads", str(threads), "--access-logfile", "/dev/null", app],
            cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        path = "/readyz" if "create_app()" in app and "bare" not in app else "/"
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn {app} did not start; log: {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        if self.proc.returncode == 0:
            os.unlink(self.log.name)
        else:
            print(f"gunicorn {self.proc.args[-1]} exited with {self.proc.returncode}; log: {self.log.name}", flush=True)


def connections_per_worker(port: int) -> list[int] | None:
    """How wrk's keep-alive connections sit on the gunicorn workers right now, most first; None without `ss`.

    A gthread worker accepts whatever connections arrive while it is awake, so one worker may hold all
    of them: the run then has one process's CPU (one GIL) and reads at about half the rate of an even
    spread. The table shows the spread so that such a run can be recognised."""
    try:
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def run_wrk(wrk: str, script: str, url: str, seconds: int, connections: int, env: dict[str, str],
            master: int | None = None) -> dict:
    """wrk's summary, with where its connections sat on the workers half-way through the run and,
    given the gunicorn master's pid, the CPU time per request of gunicorn and of PostgreSQL."""
    cpu_before = cpu_seconds(master) if master else None
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    samples: list[list[int] | None] = []
    sampler = threading.Timer(seconds / 2, lambda: samples.append(connections_per_worker(port)))
    sampler.start()
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(BENCH / "lua" / script), url],
            capture_output=True, text=True, env={**os.environ, "BENCH_LUA": str(BENCH / "lua"), **env}, check=True)
    finally:
        sampler.cancel()
        sampler.join()
    match = re.search(r"WRK_JSON (\{.*\})", out.stdout)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    stats = {**json.loads(match.group(1)), "connections_per_worker": samples[0] if samples else None}
    if cpu_before is not None and stats["requests"]:
        cpu_after = cpu_seconds(master)
        stats["cpu_us_per_request"] = {name: round((cpu_after[name] - cpu_before[name]) / stats["requests"] * 1e6)
                                       for name in cpu_after}
    return stats


def verify(env: dict[str, str]) -> dict:
    out = subprocess.run([str(VENV_BIN / "ledger"), "verify"], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=ROOT)
    report = json.loads(out.stdout)
    return {"ok": report["ok"], "entries": report["entries"]}


def _sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def settle(url: str) -> None:
    """VACUUM ANALYZE and CHECKPOINT, so that a scenario does not pay for the previous one's cleanup
    (autovacuum after a burst of writes halved the balance reads that followed it), as pgbench -i
    vacuums before its own run."""
    _sql(url, "VACUUM ANALYZE", "CHECKPOINT")


def warm_up(wrk: str, script: str, http_url: str, connections: int, env: dict[str, str], db_url: str) -> None:
    """`settle`, 3 s of the scenario's own load, then ANALYZE. A table analysed while empty (by
    `settle` before a scenario's first run) gets plans that scan it whole, and a connection keeps a
    prepared statement's generic plan until the table's statistics change: seen here as an idempotency
    record's UPDATE by id reading 470 pages a call. Statistics taken after the warm-up rebuild those
    plans on tables with rows in them, as in production, where the tables have history and
    autovacuum analyses them."""
    settle(db_url)
    run_wrk(wrk, script, http_url, 3, connections, env)
    _sql(db_url, "ANALYZE")


def pgbench(bindir: Path, port: int, seconds: int, connections: int, init: bool = True) -> dict:
    common = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    if init:
        subprocess.run([str(bindir / "createdb"), *common, "pgbench"], check=True)
        subprocess.run([str(bindir / "pgbench"), *common, "-i", "-s", "10", "-q", "pgbench"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run([str(bindir / "pgbench"), *common, "-c", str(connections), "-j", "2", "-T", str(seconds),
                          "-b", "tpcb-like", "pgbench"], capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    latency = float(re.search(r"latency average = ([0-9.]+) ms", out).group(1))
    return {"tps": tps, "latency_avg_ms": latency}


def seed(url: str, customers: int) -> dict[str, str]:
    """A program and its customers, each with points to redeem, booked through the use cases."""
    sys.path.insert(0, str(ROOT))
    from ledger.cli import upgrade_database
    from ledger.clock import SystemClock
    from ledger.domain.programs import ProgramSettings
    from ledger.services.customers import enrol_or_update
    from ledger.services.ports import BookingContext
    from ledger.services.programs import create_program
    from ledger.services.purchases import PurchaseCommand, record_purchase
    from ledger.services.writes import transact
    from ledger.storage.engine import make_engines
    from ledger.storage.uow import SqlUnitOfWorkFactory

    upgrade_database(url)
    engines = make_engines(url, pool_size=2)
    uows, clock = SqlUnitOfWorkFactory(engines), SystemClock()
    settings = ProgramSettings(name="Bench", currency="EUR", cashback_rate_bps=200)
    created = transact(uows, lambda uow: create_program(uow, clock, settings))
    program_id = created.program.id
    ctx = BookingContext(actor="bench:seed")
    ids = customer_ids(customers)
    for start in range(0, len(ids), 500):
        def batch(uow, chunk=ids[start:start + 500]):  # noqa: ANN001, ANN202
            for customer_id in chunk:
                enrol_or_update(uow, clock, program_id, customer_id, {})
                record_purchase(uow, clock, program_id, PurchaseCommand(
                    order_id=f"seed-{customer_id}", customer_id=customer_id, amount=1_000_000, currency="EUR",
                    now=clock.now()), ctx)
        transact(uows, batch)
    engines.dispose()
    return {role: issued.secret for role, issued in created.keys.items()}


def spread(stats: dict) -> str:
    counts = stats.get("connections_per_worker")
    return "/".join(str(n) for n in counts) if counts else "?"


def cpu(stats: dict) -> str:
    used = stats.get("cpu_us_per_request")
    return f"{used['gunicorn']} / {used['postgres']}" if used else "?"


# The prototype's purchases that book what the ledger model requires (bench/prototype_app.py,
# PROTOTYPE_WRITES): the key in the results, the mode, and the name in the tables.
REQUIRED_WRITES = [
    ("prototype_required", "required", "required writes in one statement"),
    ("prototype_required_read", "required-read-first", "required writes, the customer's state read first"),
    ("prototype_required_locked", "required-locked-first", "required writes, the customer locked first"),
]


def baseline_rows(result: dict) -> list[str]:
    """The baselines, before and after the scenarios, as rows of one table."""
    rows = ["| baseline | measured | throughput | latency ms | connections per worker "
            "| CPU µs per request, gunicorn / PostgreSQL |", "|---|---|---|---|---|---|"]
    for when, key in (("before", "baselines"), ("after", "baselines_after")):
        base = result.get(key)
        if not base:
            continue
        rows.append(f"| pgbench TPC-B-like | {when} | {base['pgbench']['tps']:.0f} TPS | "
                    f"avg {base['pgbench']['latency_avg_ms']:.1f} | | |")
        measured = [("bare Flask", base["bare_flask"])]
        if "prototype" in base:
            measured += [("prototype: purchases", base["prototype"]["purchases"]),
                         ("prototype: balance reads", base["prototype"]["balance_reads"])]
        measured += [(f"prototype, {label}: purchases", base[key]["purchases"])
                     for key, _mode, label in REQUIRED_WRITES if key in base]
        for name, s in measured:
            rows.append(f"| {name} | {when} | {s['rps']:.0f} req/s | p99 {s['p99_ms']:.1f} | {spread(s)} | {cpu(s)} |")
    return rows


def markdown(result: dict) -> str:
    mean, ratios = result.get("baselines_mean", {}), result.get("prototype_ratios")
    lines = [
        f"Benchmark {result['started_at']} on {result['machine']}: {result['connections']} connections, "
        f"gunicorn {result['workers']} gthread workers x {result.get('threads', 4)} threads for the bare Flask "
        f"app, the prototype and the service alike"
        + (f", GUNICORN_CMD_ARGS `{result['gunicorn_cmd_args']}`" if result.get("gunicorn_cmd_args") else "")
        + ". The prototype (bench/prototype_app.py) is the featureless raw-SQL app the targets are pegged to: "
        "one statement per request, no idempotency, validation, rules or stored answers. Its \"required writes\" "
        "purchase books what the ledger model requires of any purchase, still in one statement: a transaction "
        "claimed by its order id, entries with balances after them checked at COMMIT, append-only triggers, "
        "cached balances, the points lot, the purchase with its fingerprint and stored answer. A service that "
        "decides what to write from the customer's state must read it first: \"state read first\" reads it, "
        "then sends the write guarded by the state's version (optimistic, retried); \"customer locked first\" "
        "sends the write after `SELECT ... FOR UPDATE` of the customer, in BEGIN ... COMMIT.",
        "",
        *baseline_rows(result),
        "",
    ]
    if "pgbench_tps" in mean:
        text = (f"Ratios use the mean of before and after: pgbench {mean['pgbench_tps']:.0f} TPS, "
                f"bare Flask {mean['bare_flask_rps']:.0f} req/s")
        if ratios:
            text += (f"; the prototype reaches {ratios['purchases_x_pgbench']:.2f} x pgbench on purchases and "
                     f"{ratios['balance_reads_x_bare_flask']:.2f} x bare Flask on balance reads")
            if "required_writes_x_pgbench" in ratios:
                text += "; on purchases, " + ", ".join(f"{label} {ratios['required_writes_x_pgbench'][key]:.2f} x"
                                                      for key, _mode, label in REQUIRED_WRITES)
        lines += [text + ".", ""]
    lines += [
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | peak worker RSS MiB | connections per worker "
        "| CPU µs per request, gunicorn / PostgreSQL | ratio | ledger verified |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in result["scenarios"].items():
        errors = s["non_2xx"] + s["socket_errors"]
        ratio = s.get("ratio_note", "")
        kinds = [f"{n} {kind}" for kind, n in s.get("socket_errors_by_kind", {}).items() if n]
        kinds += [f"{s['non_2xx']} not 2xx"] if s["non_2xx"] and kinds else []
        lines.append(f"| {name} | {s['rps']:.0f} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | "
                     f"{errors} ({100 * errors / max(s['requests'], 1):.2f}%{': ' + ', '.join(kinds) if kinds else ''}) | "
                     f"{s['peak_worker_rss_mib']:.0f} | "
                     f"{spread(s)} | {cpu(s)} | {ratio} | {'yes' if s['verify']['ok'] else 'NO'} |")
    lines += ["", "Targets:"]
    for target in result["targets"]:
        lines.append(f"- {target['name']}: {target['measured']} (target {target['target']}): "
                     f"{'met' if target['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "3")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", "2")))
    parser.add_argument("--soak", type=int, default=600)
    parser.add_argument("--only", default="", help="comma-separated scenario names, for a quick look "
                        "(bench/results/latest.* are then left alone)")
    args = parser.parse_args()

    wrk = ensure_wrk()
    bindir = pg_bindir()
    started = datetime.now(timezone.utc)
    servers: list[Gunicorn] = []
    with throwaway_cluster("ledger-bench-") as (_workdir, pg_port):
        try:
            result: dict = {"started_at": started.isoformat(), "machine": f"{os.cpu_count()} cores",
                            "connections": args.connections, "customers": args.customers, "workers": args.workers,
                            "threads": args.threads, "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
                            "duration_s": args.duration, "baselines": {}, "scenarios": {}}
            print(f"pgbench TPC-B-like, {args.connections} connections, {args.duration}s ...", flush=True)
            result["baselines"]["pgbench"] = pgbench(bindir, pg_port, args.duration, args.connections)

            def bare_flask() -> dict:
                bare = Gunicorn("bench.bare_app:create_app()", free_port(), args.workers, args.threads, {})
                servers.append(bare)
                try:
                    run_wrk(wrk, "bare.lua", f"http://127.0.0.1:{bare.port}", 3, args.connections, {})
                    return run_wrk(wrk, "bare.lua", f"http://127.0.0.1:{bare.port}", args.duration, args.connections, {},
                                   bare.proc.pid)
                finally:
                    bare.stop()
                    servers.remove(bare)

            print("bare Flask baseline ...", flush=True)
            result["baselines"]["bare_flask"] = bare_flask()

            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres",
                            "prototype"], check=True)
            proto_url = f"postgresql://postgres@127.0.0.1:{pg_port}/prototype"
            prepare_prototype(proto_url, args.customers)
            prepare_required_prototype(proto_url, args.customers)

            def prototype(writes: str = "featureless") -> dict:
                """The featureless raw-SQL prototype (bench/prototype_app.py): the same purchase and balance
                read scripts, under the same gunicorn settings. With writes="required..." (REQUIRED_WRITES), its
                purchase books what the ledger model requires, and only purchases are measured (its reads are
                the same)."""
                server = Gunicorn("bench.prototype_app:create_app()", free_port(), args.workers, args.threads,
                                  {"PROTOTYPE_DATABASE_URL": proto_url, "KEY": "prototype", "PROTOTYPE_WRITES": writes})
                servers.append(server)
                proto_env = {"KEY": "prototype", "CUSTOMERS": str(args.customers)}
                proto_http = f"http://127.0.0.1:{server.port}"
                scripts = [("purchases", "accrual_zipf.lua")]
                if writes == "featureless":
                    scripts.append(("balance_reads", "balances.lua"))
                try:
                    measured = {}
                    for name, script in scripts:
                        warm_up(wrk, script, proto_http, args.connections, {**proto_env, "RUN_ID": f"pw{time.time_ns()}"},
                                proto_url)
                        measured[name] = run_wrk(wrk, script, proto_http, args.duration, args.connections,
                                                 {**proto_env, "RUN_ID": f"p{time.time_ns()}"}, server.proc.pid)
                    return measured
                finally:
                    server.stop()
                    servers.remove(server)

            print("featureless raw-SQL prototype ...", flush=True)
            result["baselines"]["prototype"] = prototype()
            for key, mode, label in REQUIRED_WRITES:
                print(f"prototype, {label} ...", flush=True)
                result["baselines"][key] = prototype(mode)

            admin = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/postgres"
            subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "ledger"],
                           check=True)
            url = admin.rsplit("/", 1)[0] + "/ledger"
            print(f"seeding {args.customers} customers ...", flush=True)
            keys = seed(url, args.customers)
            env = {"LEDGER_DATABASE_URL": url, "LEDGER_OPERATOR_TOKEN": "bench"}
            service = Gunicorn("api:create_app()", free_port(), args.workers, args.threads, env)
            servers.append(service)
            base_url = f"http://127.0.0.1:{service.port}"
            wrk_env = {"KEY": keys["storefront"], "CUSTOMERS": str(args.customers)}

            scenarios = SCENARIOS
            only = {name for name in args.only.split(",") if name}
            unknown = only - {name for name, _script in scenarios}
            if unknown:
                raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
            for name, script in scenarios:
                if only and name not in only:
                    continue
                print(f"scenario {name} ...", flush=True)
                run_env = {**wrk_env, "RUN_ID": f"{name[:4]}w{int(time.time())}"}
                warm_up(wrk, script, base_url, args.connections, run_env, url)
                run_env["RUN_ID"] = f"{name[:4]}{int(time.time())}"
                with MemorySampler(service.proc.pid) as memory:
                    stats = run_wrk(wrk, script, base_url, args.duration, args.connections, run_env, service.proc.pid)
                stats["peak_worker_rss_mib"] = memory.peak_kib / 1024
                stats["verify"] = verify(env)
                result["scenarios"][name] = stats

            # This machine's speed drifts (a bare Flask baseline once measured 3,022 req/s, 7,188 in the run
            # before): both baselines are measured again after the scenarios, and ratios use the mean.
            print("baselines again ...", flush=True)
            result["baselines_after"] = {"pgbench": pgbench(bindir, pg_port, args.duration, args.connections, init=False),
                                         "bare_flask": bare_flask(), "prototype": prototype()}
            for key, mode, _label in REQUIRED_WRITES:
                result["baselines_after"][key] = prototype(mode)
            pg_tps = (result["baselines"]["pgbench"]["tps"] + result["baselines_after"]["pgbench"]["tps"]) / 2
            bare_rps = (result["baselines"]["bare_flask"]["rps"] + result["baselines_after"]["bare_flask"]["rps"]) / 2
            proto = {name: {key: (result["baselines"]["prototype"][name][key]
                                  + result["baselines_after"]["prototype"][name][key]) / 2 for key in ("rps", "p99_ms")}
                     for name in ("purchases", "balance_reads")}
            required = {name: {key: (result["baselines"][name]["purchases"][key]
                                     + result["baselines_after"][name]["purchases"][key]) / 2
                               for key in ("rps", "p99_ms")}
                        for name, _mode, _label in REQUIRED_WRITES}
            result["baselines_mean"] = {"pgbench_tps": pg_tps, "bare_flask_rps": bare_rps, "prototype": proto,
                                        "required_writes_purchases": required}
            result["prototype_ratios"] = {"purchases_x_pgbench": proto["purchases"]["rps"] / pg_tps,
                                          "balance_reads_x_bare_flask": proto["balance_reads"]["rps"] / bare_rps,
                                          "required_writes_x_pgbench": {name: r["rps"] / pg_tps
                                                                        for name, r in required.items()}}
            targets = []
            accrual = result["scenarios"].get("purchase_accrual_zipf")
            reads = result["scenarios"].get("balance_reads")
            if accrual:
                accrual["ratio_note"] = (f"{accrual['rps'] / pg_tps:.2f} x pgbench; "
                                         f"{accrual['rps'] / proto['purchases']['rps']:.2f} x prototype; "
                                         f"{accrual['rps'] / required['prototype_required']['rps']:.2f} x required "
                                         "writes in one statement; "
                                         f"{accrual['rps'] / required['prototype_required_locked']['rps']:.2f} x "
                                         "locked first")
                targets += [
                    {"name": "POST /v1/purchases throughput", "measured": f"{accrual['rps'] / pg_tps:.2f} x pgbench TPS",
                     "target": ">= 0.30 x", "met": accrual["rps"] >= 0.3 * pg_tps},
                    {"name": "POST /v1/purchases p99", "measured": f"{accrual['p99_ms']:.1f} ms", "target": "< 40 ms",
                     "met": accrual["p99_ms"] < 40},
                ]
            if reads:
                reads["ratio_note"] = (f"{reads['rps'] / bare_rps:.2f} x bare Flask; "
                                       f"{reads['rps'] / proto['balance_reads']['rps']:.2f} x prototype")
                targets.append({"name": "GET balances throughput", "measured": f"{reads['rps'] / bare_rps:.2f} x bare Flask",
                                "target": ">= 0.50 x", "met": reads["rps"] >= 0.5 * bare_rps})
            if args.soak > 0:
                print(f"soak: mixed profile for {args.soak}s ...", flush=True)
                settle(url)
                with MemorySampler(service.proc.pid) as memory:
                    soak = run_wrk(wrk, "mixed.lua", base_url, args.soak, args.connections,
                                   {**wrk_env, "RUN_ID": f"soak{int(time.time())}"})
                warm = [total for t, _peak, total in memory.samples if t - memory.samples[0][0] >= 60] or \
                    [total for _t, _peak, total in memory.samples]
                first = sum(warm[:10]) / len(warm[:10])
                last = sum(warm[-10:]) / len(warm[-10:])
                growth = (last - first) / first * 100 if first else 0.0
                soak.update({"workers_rss_first_mib": first / 1024, "workers_rss_last_mib": last / 1024,
                             "growth_pct": growth, "peak_worker_rss_mib": memory.peak_kib / 1024, "verify": verify(env)})
                result["soak"] = soak
                targets.append({"name": f"worker memory over a {args.soak}s run",
                                "measured": f"{growth:+.1f}% (after the first minute)", "target": "< 10% growth",
                                "met": growth < 10})
            result["targets"] = targets
            out_dir = BENCH / "results"
            out_dir.mkdir(exist_ok=True)
            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            (out_dir / f"{stamp}.json").write_text(json.dumps(result, indent=2))
            table = markdown(result)
            if not only:
                (out_dir / "latest.md").write_text(table)
                (out_dir / "latest.json").write_text(json.dumps(result, indent=2))
            print(table)
            return 0 if all(s["verify"]["ok"] for s in result["scenarios"].values()) else 1
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
