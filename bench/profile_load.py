"""Where the service's Python time goes under load: py-spy sampling gunicorn's workers during a wrk scenario.

`bench/profile_checkout.py` profiles one request at a time in-process, with cProfile, which inflates
code made of many small calls. This one profiles what `make bench` measures: it starts a throwaway
PostgreSQL and the service under gunicorn (the same settings, seed and warm-up as `bench/run.py`),
runs a scenario with wrk and, meanwhile, samples every worker with py-spy, counting only threads
that hold the GIL (`--gil`): Python's own CPU time, not time waiting on the database or the network.

It prints the share of samples per function, including callees ("inclusive") and on its own
("self"), and keeps py-spy's collapsed stacks (one line per stack and its count, the input of
flamegraph tools) under bench/results/profile-<scenario>-<timestamp>.txt. Sampling costs CPU, so
the throughput it prints is lower than `make bench`'s.

    .venv/bin/python bench/profile_load.py [--scenario purchase_accrual_zipf] [--duration 15] [--top 40]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

from run import (
    BENCH, SCENARIOS, VENV_BIN, Gunicorn, ensure_wrk, free_port, pg_bindir, run_wrk, seed, throwaway_cluster,
    warm_up,
)

_LINE_NUMBER = re.compile(r":\d+\)$")


def shares(collapsed: list[str]) -> tuple[int, Counter, Counter]:
    """(samples, inclusive count per function, self count per function) from collapsed stacks
    (`_without_processes`). A function is `name (file)`, line numbers dropped; a recursive function
    counts once per stack."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in collapsed:  # "frame;frame;... count"
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_LINE_NUMBER.sub(")", f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    return total, inclusive, own


def _without_processes(collapsed: list[str]) -> list[str]:
    """The stacks with py-spy's per-process root frames dropped (the workers are alike) and equal
    stacks merged: what flamegraph tools read, a few hundred KiB instead of megabytes."""
    merged: Counter = Counter()
    for line in collapsed:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if count.isdigit():
            merged[";".join(f for f in stack.split(";") if f and not f.startswith("process "))] += int(count)
    return [f"{stack} {n}" for stack, n in merged.most_common() if stack]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="purchase_accrual_zipf", choices=[name for name, _ in SCENARIOS])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed (make install installs it)")
    script = dict(SCENARIOS)[args.scenario]
    wrk, bindir = ensure_wrk(), pg_bindir()
    with throwaway_cluster("ledger-profile-load-", quiet=True) as (workdir, pg_port):
        raw = workdir / "collapsed.txt"
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "ledger"],
                       check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/ledger"
        keys = seed(url, args.customers)
        server = Gunicorn("api:create_app()", free_port(), 3, 2, {"LEDGER_DATABASE_URL": url,
                                                                   "LEDGER_OPERATOR_TOKEN": "bench"})
        try:
            http = f"http://127.0.0.1:{server.port}"
            env = {"KEY": keys["storefront"], "CUSTOMERS": str(args.customers), "RUN_ID": f"w{time.time_ns()}"}
            warm_up(wrk, script, http, args.connections, env, url)
            env["RUN_ID"] = f"p{time.time_ns()}"
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--gil", "--nonblocking",
                 "--rate", str(args.rate), "--duration", str(max(1, args.duration - 2)), "--format", "raw",
                 "--output", str(raw)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stats = run_wrk(wrk, script, http, args.duration, args.connections, env, server.proc.pid)
            errors, _ = sampler.communicate(timeout=60)
            if not raw.exists():
                raise SystemExit(f"py-spy recorded nothing (it needs ptrace: root or CAP_SYS_PTRACE):\n{errors}")
        finally:
            server.stop()
        collapsed = _without_processes(raw.read_text(errors="replace").splitlines())
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept = BENCH / "results" / f"profile-{args.scenario}-{stamp}.txt"
    kept.write_text("\n".join(collapsed) + "\n")

    total, inclusive, own = shares(collapsed)
    print(f"\n{args.scenario}: {stats['rps']:.0f} req/s while sampled, {total} samples of GIL-holding threads; "
          f"stacks kept in {kept.relative_to(BENCH.parent)}")
    for title, counter in (("including callees", inclusive), ("own time", own)):
        print(f"\n% of samples, {title}:")
        for frame, n in counter.most_common(args.top):
            print(f"{100 * n / total:6.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
