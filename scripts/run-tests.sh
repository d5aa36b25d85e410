#!/usr/bin/env bash
# Run the test suite against PostgreSQL (throwaway cluster) and SQLite, side by side.
#
#   scripts/run-tests.sh [pytest args...]
#
# Runs from the repo root. VENV (default .venv, relative to the repo root)
# selects the virtualenv whose pytest is used. Both backends always run;
# exit status is non-zero if either failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=${VENV:-.venv}
PYTEST="$VENV/bin/pytest"
PG="$ROOT/scripts/pg-test-server.sh"

[ -x "$PYTEST" ] || { echo "run-tests: $PYTEST not found; run 'make install' first" >&2; exit 1; }

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pytest-xdist arguments for N workers (0: one process).
xdist() { if [ "$1" != "0" ]; then echo "-n $1"; fi; }

# The cluster lives in memory (/dev/shm) when there is room: every test creates and drops a database
# of about 470 files, and on a disk file system (ext4 mounted with `discard` here) creating them grew
# from 15 ms to over 400 ms per database as the run went on; on tmpfs it stays at 10 ms.
# LEDGER_TEST_PG_PARENT picks the parent directory instead.
pg_parent() {
    if [ -n "${LEDGER_TEST_PG_PARENT:-}" ]; then echo "$LEDGER_TEST_PG_PARENT"; return; fi
    local shm=/dev/shm free_kb
    if [ -d "$shm" ] && [ -w "$shm" ]; then
        free_kb=$(df -Pk "$shm" 2>/dev/null | awk 'NR == 2 { print $4 }')
        if [ -n "$free_kb" ] && [ "$free_kb" -ge $((2 * 1024 * 1024)) ]; then echo "$shm"; return; fi
    fi
    echo "${TMPDIR:-/tmp}"
}
DIR=$(mktemp -d "$(pg_parent)/ledger-pg.XXXXXX")
cleanup() {
    bash "$PG" stop "$DIR" || true
    rm -rf "$DIR"
}
child=""
sqlite_pid=""
on_signal() {
    # Stop a running pytest right away instead of waiting for it to finish.
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
    if [ -n "$sqlite_pid" ]; then kill -TERM "$sqlite_pid" 2>/dev/null || true; wait "$sqlite_pid" 2>/dev/null || true; fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Run a command in the background and wait for it, so INT/TERM are handled
# immediately (bash defers traps while a foreground child runs). stdin is
# passed through explicitly so e.g. `--pdb` still works.
run() {
    "$@" <&0 &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}

# The port could be grabbed between picking and binding; retry a few times.
started=""
for _ in 1 2 3; do
    PORT=$(free_port)
    if bash "$PG" start "$DIR" "$PORT"; then started=1; break; fi
    echo "run-tests: PostgreSQL failed to start on port $PORT, retrying" >&2
done
[ -n "$started" ] || { echo "run-tests: could not start PostgreSQL" >&2; exit 1; }
PG_URL=$(bash "$PG" url "$PORT")

# The two backends run at the same time: the PostgreSQL run mostly waits on round trips, so the
# SQLite run fits beside it on two cores (about 5.5 minutes in all on this 2-core machine).
# RUN_TESTS_SERIAL=1 runs them one after the other.
sqlite_rc=0
# Two xdist workers for SQLite as well: once the PostgreSQL run ends, its core would otherwise sit idle.
read -ra sqlite_parallel <<<"$(xdist "${RUN_TESTS_SQLITE_WORKERS:-2}")"
sqlite_log="$DIR/sqlite.log"
if [ -z "${RUN_TESTS_SERIAL:-}" ]; then
    echo "=== pytest: sqlite (in the background; its output follows the PostgreSQL run) ==="
    LEDGER_TEST_BACKEND=sqlite "$PYTEST" -q -p no:cacheprovider "${sqlite_parallel[@]}" "$@" </dev/null >"$sqlite_log" 2>&1 &
    sqlite_pid=$!
fi

# The PostgreSQL run waits on round trips more than it computes: two xdist workers (each test has
# its own database) keep the whole run near 5.5 minutes. RUN_TESTS_PG_WORKERS=0 runs it in one process.
read -ra pg_parallel <<<"$(xdist "${RUN_TESTS_PG_WORKERS:-2}")"
echo "=== pytest: postgresql ($PG_URL, data in $DIR) ==="
pg_rc=0
LEDGER_TEST_BACKEND=postgresql LEDGER_TEST_PG_URL="$PG_URL" \
    run "$PYTEST" -q -p no:cacheprovider "${pg_parallel[@]}" "$@" || pg_rc=$?

echo "=== pytest: sqlite ==="
if [ -n "${sqlite_pid:-}" ]; then
    wait "$sqlite_pid" || sqlite_rc=$?
    sqlite_pid=""
    cat "$sqlite_log"
else
    LEDGER_TEST_BACKEND=sqlite \
        run "$PYTEST" -q -p no:cacheprovider "${sqlite_parallel[@]}" "$@" || sqlite_rc=$?
fi

summary() {
    if [ "$2" -eq 0 ]; then echo "  $1: PASSED"; else echo "  $1: FAILED (pytest exit $2)"; fi
}
echo "=== test summary ==="
summary postgresql "$pg_rc"
summary sqlite "$sqlite_rc"

[ "$pg_rc" -eq 0 ] && [ "$sqlite_rc" -eq 0 ]
