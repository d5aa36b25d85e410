"""Fault tests (issue 7, "Reliability tests in the suite"): a gunicorn worker killed with SIGKILL
during a load of purchases, and PostgreSQL restarted during a load of purchases.

Each test starts its own throwaway PostgreSQL cluster (scripts/pg-test-server.sh, in a fresh
directory under /tmp on a free port: it may stop and restart it), migrates it, creates a program
with the CLI, serves it with gunicorn as in production (gunicorn.conf.py, gthread, 2 workers) and
enrols ten customers. Then N purchases, each with its own order_id and Idempotency-Key, are sent by
several threads over HTTP while the fault is injected midway. Afterwards:

- every acknowledged (2xx) purchase is in the ledger exactly once: GET /v1/purchases/{order_id}
  shows the acknowledged transaction, and exactly one `purchase_accrual` per order in the activity;
- no transaction is partial and the invariants hold (`ledger verify` exits 0);
- every acknowledged request sent again replays its first answer byte for byte;
- every unacknowledged request sent again with the same order_id and key succeeds (201, fresh or
  replayed), after which each order exists exactly once, and the customers' points equal the sum
  over the orders;
- after a PostgreSQL restart, `/readyz` answers 200 again by itself (gunicorn is not restarted).

PostgreSQL only: SQLite has no server to restart, and its file survives a worker's death by
construction (tests/integration/test_concurrency.py covers SQLite under gunicorn).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from functools import partial
from http.client import HTTPException
from typing import Any, Callable, Iterator

import pytest

from tests.integration.servers import http, ledger_cli as _ledger_cli

BACKEND = os.environ.get("LEDGER_TEST_BACKEND", "sqlite")
REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_SCRIPT = REPO_ROOT / "scripts" / "pg-test-server.sh"
OPERATOR_TOKEN = "fault-test-operator-token"

N_CUSTOMERS = 10
N_PURCHASES = 150
LOAD_THREADS = 6          # paced, for the restart: the load outlasts the outage
KILL_LOAD_THREADS = 12    # unpaced, more than gunicorn's 2 workers x 2 threads: the killed worker has requests in hand
REQUEST_TIMEOUT = 15       # one HTTP request
_http = partial(http, timeout=REQUEST_TIMEOUT)
LOAD_TIMEOUT = 45          # the whole load
READY_TIMEOUT = 20         # /readyz after the restart
RESERVED_PORTS = range(55433, 55441)  # other engineers' clusters: never ours

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="fault tests need PostgreSQL (a server to restart and real parallel connections): "
           "run with LEDGER_TEST_BACKEND=postgresql")


# =========================================================================== plumbing


def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _pg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PG_SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=90)




def _children(pid: int) -> set[int]:
    """Child pids of `pid` (the gunicorn master's workers)."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found |= {int(c) for c in (task / "children").read_text().split()}
        return found
    except (FileNotFoundError, PermissionError):
        pass
    for stat in Path("/proc").glob("[0-9]*/stat"):  # no /proc/.../children: scan the parents
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.add(int(stat.parent.name))
    return found


def _wait_for(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


@dataclass
class Service:
    """A throwaway PostgreSQL cluster and gunicorn serving one program on it."""

    pg_dir: Path
    pg_port: int
    url: str
    base: str
    program: dict[str, Any]
    gunicorn: subprocess.Popen
    log_path: Path

    def headers(self, role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.program['api_keys'][role]}", **extra}

    def get(self, path: str, role: str = "app") -> tuple[int, Any]:
        status, raw, _ = _http("GET", f"{self.base}{path}", headers=self.headers(role))
        return status, json.loads(raw) if raw else None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextmanager
def throwaway_service() -> Iterator[Service]:
    """Cluster + migration + program + gunicorn (2 gthread workers) + ten customers; all torn down after."""
    from ledger.cli import upgrade_database

    # Under /tmp, not pytest's tmp_path: as root, the script runs PostgreSQL as the "postgres" user,
    # which cannot traverse /tmp/pytest-of-root (mode 0700). Short, too: the socket path is limited.
    pg_dir = Path(tempfile.mkdtemp(prefix="lfault.", dir="/tmp"))
    process: subprocess.Popen | None = None
    log = None
    try:
        for attempt in range(3):  # the free port may be taken between picking and binding
            pg_port = _free_port()
            started = _pg("start", str(pg_dir), str(pg_port))
            if started.returncode == 0:
                break
        assert started.returncode == 0, started.stderr[-3000:]
        url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/postgres"
        upgrade_database(url)
        created = _ledger_cli(url, "programs", "create", "--name", "T", "--currency", "EUR")
        assert created.returncode == 0, created.stderr
        program = json.loads(created.stdout)
        assert program["points_per_unit"] == 1 and program["cashback_rate_bps"] == 0
        assert program["points_hold_days"] == 0

        port = _free_port()
        log_path = pg_dir / "gunicorn.log"
        log = open(log_path, "wb")
        env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_OPERATOR_TOKEN": OPERATOR_TOKEN}
        for name in ("PORT", "WEB_CONCURRENCY", "LEDGER_DB_POOL_SIZE"):
            env.pop(name, None)
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "-w", "2",
             "api:create_app()"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        service = Service(pg_dir=pg_dir, pg_port=pg_port, url=url, base=base, program=program, gunicorn=process,
                          log_path=log_path)

        def healthy() -> bool:
            assert process.poll() is None, service.log_tail()
            try:
                return _http("GET", f"{base}/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        _wait_for("gunicorn answering /readyz", healthy, 30)
        _wait_for("two gunicorn workers", lambda: len(_children(process.pid)) == 2, 15)
        for i in range(N_CUSTOMERS):
            status, raw, _ = _http("PUT", f"{base}/v1/customers/c-{i}", {}, service.headers("storefront"))
            assert status == 201, raw
        yield service
    finally:
        try:
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if log is not None:
                log.close()
        finally:
            _pg("stop", str(pg_dir))
            shutil.rmtree(pg_dir, ignore_errors=True)


# =========================================================================== the load


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    amount: int
    key: str

    @property
    def body(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "customer_id": self.customer_id, "amount": self.amount,
                "currency": "EUR"}

    @property
    def points(self) -> int:  # the CLI's program: 1 point per euro, no cashback, available at once
        return self.amount // 100


@dataclass
class Outcome:
    status: int | None  # None: no HTTP answer at all (connection refused or reset, timeout)
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    at: float = field(default_factory=time.monotonic)  # when the answer (or the failure) came

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def make_orders(tag: str) -> list[Order]:
    return [Order(order_id=f"{tag}-{i}", customer_id=f"c-{i % N_CUSTOMERS}", amount=1_000 + 137 * i,
                  key=f"key-{tag}-{i}") for i in range(N_PURCHASES)]


def send(service: Service, order: Order) -> Outcome:
    try:
        status, raw, headers = _http("POST", f"{service.base}/v1/purchases", order.body,
                                     service.headers("storefront", **{"Idempotency-Key": order.key}))
    except (OSError, ConnectionError, HTTPException) as exc:
        # No answer: refused, reset (RemoteDisconnected is a ConnectionResetError), or cut off after the
        # status line (IncompleteRead: the worker died while writing the body). The client must retry.
        return Outcome(status=None, error=repr(exc))
    return Outcome(status=status, raw=raw, headers=headers)


def run_load(service: Service, orders: list[Order], threads: int, pace: float, fault_at: int,
             fault: Callable[[], None]) -> dict[str, Outcome]:
    """Send every order from `threads` threads (`pace` s apart per thread); once `fault_at`
    answers are in, run `fault()` while the rest of the load goes on."""
    todo: queue.SimpleQueue[Order] = queue.SimpleQueue()
    for order in orders:
        todo.put(order)
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def worker() -> None:
        while True:
            try:
                order = todo.get_nowait()
            except queue.Empty:
                return
            outcome = send(service, order)
            with lock:
                outcomes[order.order_id] = outcome
            done.release()
            time.sleep(pace)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        deadline = time.monotonic() + LOAD_TIMEOUT
        for _ in range(fault_at):
            assert done.acquire(timeout=max(0.0, deadline - time.monotonic())), "the load stalled before the fault"
        fault()
        for future in futures:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
    assert sorted(outcomes) == sorted(o.order_id for o in orders)
    return outcomes


# =========================================================================== the checks


def all_pages(service: Service, path: str, role: str) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        status, page = service.get(path + (f"&cursor={cursor}" if cursor else ""), role)
        assert status == 200, page
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path}: more than 100 pages")


def accruals_per_order(service: Service) -> Counter:
    """How many purchase_accrual transactions each order has, over every customer's activity."""
    seen: Counter = Counter()
    for i in range(N_CUSTOMERS):
        for item in all_pages(service, f"/v1/customers/c-{i}/activity?limit=500", "app"):
            assert item["type"] == "purchase_accrual", item  # nothing else is booked in these tests
            assert item["reference"]["kind"] == "order", item
            seen[item["reference"]["id"]] += 1
    return seen


def assert_verified(service: Service) -> None:
    verified = _ledger_cli(service.url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def check_after_fault(service: Service, orders: list[Order], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """The checks shared by both faults; returns numbers for the report."""
    by_id = {o.order_id: o for o in orders}
    acked = [o for o in orders if outcomes[o.order_id].acknowledged]
    unacked = [o for o in orders if not outcomes[o.order_id].acknowledged]

    # Every acknowledged write: a 201 (a purchase answers nothing else), in the ledger exactly once,
    # under the transaction it acknowledged.
    for order in acked:
        outcome = outcomes[order.order_id]
        assert outcome.status == 201, (order, outcome)
        answer = json.loads(outcome.raw)
        assert (answer["order_id"], answer["customer_id"], answer["amount"], answer["points_earned"]) == (
            order.order_id, order.customer_id, order.amount, order.points), answer
        status, shown = service.get(f"/v1/purchases/{order.order_id}")
        assert status == 200, (order, shown)
        assert shown["transaction_id"] == answer["transaction_id"] and shown["amount"] == order.amount, shown
    accruals = accruals_per_order(service)
    assert all(accruals[o.order_id] == 1 for o in acked), {o.order_id: accruals[o.order_id] for o in acked
                                                           if accruals[o.order_id] != 1}
    assert set(accruals) <= set(by_id), set(accruals) - set(by_id)
    assert all(n == 1 for n in accruals.values()), [k for k, n in accruals.items() if n != 1]
    # No partial transaction: every transaction balances and has entries, cached balances equal entries.
    assert_verified(service)

    # Sent again, an acknowledged request replays its first answer byte for byte.
    with ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
        replays = dict(zip([o.order_id for o in acked], pool.map(lambda o: send(service, o), acked)))
    for order_id, replay in replays.items():
        assert (replay.status, replay.headers.get("Idempotent-Replayed")) == (201, "true"), (order_id, replay)
        assert replay.raw == outcomes[order_id].raw, order_id

    # Every unacknowledged request sent again with the same order_id and key succeeds: a fresh 201
    # (it was never booked) or a replayed 201 (it was booked but its answer was lost).
    fresh = replayed = 0
    for order in unacked:
        retry = send(service, order)
        assert retry.status == 201, (order, retry, service.log_tail())
        answer = json.loads(retry.raw)
        assert (answer["order_id"], answer["customer_id"], answer["amount"]) == (
            order.order_id, order.customer_id, order.amount)
        if retry.headers.get("Idempotent-Replayed") == "true":
            replayed += 1
        else:
            fresh += 1
        status, shown = service.get(f"/v1/purchases/{order.order_id}")
        assert status == 200 and shown["transaction_id"] == answer["transaction_id"], shown
        again = send(service, order)  # and a second retry books nothing more
        assert (again.status, again.headers.get("Idempotent-Replayed"), again.raw) == (201, "true", retry.raw)

    # Afterwards each order exists exactly once, and the customers hold exactly what the orders earned.
    accruals = accruals_per_order(service)
    assert accruals == Counter({o.order_id: 1 for o in orders}), (
        sorted(set(by_id) - set(accruals)), [k for k, n in accruals.items() if n != 1])
    entries = all_pages(service, "/v1/ledger/entries?limit=500", "finance")
    per_transaction = Counter(e["transaction_id"] for e in entries)
    assert len(per_transaction) == N_PURCHASES and set(per_transaction.values()) == {2}, per_transaction
    total = 0
    for i in range(N_CUSTOMERS):
        status, balances = service.get(f"/v1/customers/c-{i}/balances")
        assert status == 200, balances
        expected = sum(o.points for o in orders if o.customer_id == f"c-{i}")
        assert balances["points"] == {"available": expected, "pending": 0, "reserved": 0}, (i, balances)
        assert balances["cashback"] == {"available": 0, "pending": 0, "reserved": 0}, (i, balances)
        total += balances["points"]["available"]
    assert total == sum(o.points for o in orders)
    assert_verified(service)
    return {"acknowledged": len(acked), "unacknowledged": len(unacked), "retried_fresh": fresh,
            "retried_replayed": replayed}


def postmaster_started(url: str) -> Any:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT pg_postmaster_start_time()")).scalar_one()
    finally:
        engine.dispose()


def failure_kinds(outcomes: dict[str, Outcome]) -> Counter:
    return Counter(o.error.split("(")[0] if o.status is None else o.status
                   for o in outcomes.values() if not o.acknowledged)


# =========================================================================== the tests


def test_kill_9_of_a_worker_during_a_load_loses_and_duplicates_nothing() -> None:
    orders = make_orders("K")
    with throwaway_service() as service:
        master = service.gunicorn.pid
        workers_before = _children(master)
        assert len(workers_before) == 2, workers_before
        killed: list[int] = []

        def kill_a_worker() -> None:
            victim = min(_children(master))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        outcomes = run_load(service, orders, threads=KILL_LOAD_THREADS, pace=0, fault_at=N_PURCHASES // 3,
                            fault=kill_a_worker)

        # The fault happened: the worker is gone and the master replaced it (the service stays up).
        assert killed and service.gunicorn.poll() is None
        _wait_for("the master replacing the killed worker",
                  lambda: len(_children(master)) == 2 and killed[0] not in _children(master), 30)
        # The worker died with requests in hand (12 unpaced clients keep both workers busy)...
        assert any(not o.acknowledged for o in outcomes.values()), "the killed worker had no request in hand"
        # ...and what did not get an answer was lost with the worker (a reset connection), or answered as a
        # server error: never a client error.
        for order_id, outcome in outcomes.items():
            if not outcome.acknowledged:
                assert outcome.status is None or outcome.status >= 500, (order_id, outcome)
        report = check_after_fault(service, orders, outcomes)
        print(f"\nkill -9: {report}, failures {dict(failure_kinds(outcomes))}")
        assert "Traceback" not in service.log_path.read_text(errors="replace"), service.log_tail()


def test_postgresql_restart_during_a_load_recovers_by_itself() -> None:
    orders = make_orders("R")
    with throwaway_service() as service:
        restarted: dict[str, Any] = {}

        def restart_postgresql() -> None:
            t0 = time.monotonic()
            stopped = _pg("stop", str(service.pg_dir))
            assert stopped.returncode == 0, stopped.stderr
            restarted["down_at"] = time.monotonic()
            time.sleep(0.5)  # a real outage: requests meanwhile find nobody listening
            started = _pg("start", str(service.pg_dir), str(service.pg_port))
            assert started.returncode == 0, started.stderr[-3000:]
            restarted["up_at"] = time.monotonic()
            restarted["seconds"] = round(restarted["up_at"] - t0, 2)

        started_before = postmaster_started(service.url)
        outcomes = run_load(service, orders, threads=LOAD_THREADS, pace=0.15, fault_at=N_PURCHASES // 3,
                            fault=restart_postgresql)
        assert restarted.get("seconds") is not None
        assert postmaster_started(service.url) > started_before  # it really was a new server

        # During the outage some requests fail: as 5xx problem answers or without an answer. Never as
        # a client error (401 for a key that could not be looked up, 409, 422...).
        for order_id, outcome in outcomes.items():
            if outcome.acknowledged:
                continue
            if outcome.status is not None:
                assert outcome.status >= 500, (order_id, outcome)
                assert outcome.headers.get("Content-Type", "").startswith("application/problem+json"), outcome
                assert json.loads(outcome.raw)["status"] == outcome.status

        # /readyz recovers by itself (gunicorn is not restarted) within a bounded time, and stays ready
        # whichever worker answers: ten 200s in a row.
        gunicorn_pid, workers = service.gunicorn.pid, _children(service.gunicorn.pid)
        t0 = time.monotonic()
        answers: list[int | None] = []

        def ready() -> bool:
            try:
                status, raw, headers = _http("GET", f"{service.base}/readyz", timeout=5)
            except OSError:
                status = None
            else:
                if status != 200:  # not ready yet: a 503 problem, never anything else
                    assert status == 503 and json.loads(raw)["code"] == "not_ready", (status, raw)
            answers.append(status)
            return answers[-10:] == [200] * 10

        _wait_for("/readyz answering 200 ten times in a row after the PostgreSQL restart", ready, READY_TIMEOUT,
                  interval=0.05)
        recovered_in = round(time.monotonic() - t0, 2)
        assert service.gunicorn.pid == gunicorn_pid and _children(gunicorn_pid) == workers  # nobody restarted

        report = check_after_fault(service, orders, outcomes)
        after = sum(o.acknowledged and o.at > restarted["up_at"] for o in outcomes.values())
        print(f"\npostgresql restart ({restarted['seconds']} s): {report}, {after} acknowledged after the restart "
              f"during the load, readyz steady after {recovered_in} s "
              f"({answers.count(200)}/{len(answers)} polls 200), "
              f"failures {dict(failure_kinds(outcomes))}")
