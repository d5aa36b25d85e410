#!/usr/bin/env bash
# Run the test suite against PostgreSQL (throwaway cluster) and then SQLite.
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

DIR=$(mktemp -d "${TMPDIR:-/tmp}/ledger-pg.XXXXXX")
cleanup() {
    bash "$PG" stop "$DIR" || true
    rm -rf "$DIR"
}
child=""
on_signal() {
    # Stop a running pytest right away instead of waiting for it to finish.
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
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

echo "=== pytest: postgresql ($PG_URL) ==="
pg_rc=0
LEDGER_TEST_BACKEND=postgresql LEDGER_TEST_PG_URL="$PG_URL" \
    run "$PYTEST" -q -p no:cacheprovider "$@" || pg_rc=$?

echo "=== pytest: sqlite ==="
sqlite_rc=0
LEDGER_TEST_BACKEND=sqlite \
    run "$PYTEST" -q -p no:cacheprovider "$@" || sqlite_rc=$?

summary() {
    if [ "$2" -eq 0 ]; then echo "  $1: PASSED"; else echo "  $1: FAILED (pytest exit $2)"; fi
}
echo "=== test summary ==="
summary postgresql "$pg_rc"
summary sqlite "$sqlite_rc"

[ "$pg_rc" -eq 0 ] && [ "$sqlite_rc" -eq 0 ]
