#!/usr/bin/env bash
# Throughput of POST /v1/purchases against gunicorn + a throwaway PostgreSQL, measured with wrk.
#
#   bash bench/purchases.sh [DURATION_S=20] [CONNECTIONS=16] [CUSTOMERS=1000]
#
# Prints wrk's summary as JSON, then `ledger verify` on the database afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DURATION=${1:-20}; CONNECTIONS=${2:-16}; CUSTOMERS=${3:-1000}
VENV=${VENV:-.venv}
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y wrk >/dev/null; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DIR=$(mktemp -d); PGPORT=$(free_port); WEBPORT=$(free_port)
gunicorn_pid=""
cleanup() { [ -n "$gunicorn_pid" ] && kill "$gunicorn_pid" 2>/dev/null; wait 2>/dev/null || true; bash scripts/pg-test-server.sh stop "$DIR" >/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
bash scripts/pg-test-server.sh start "$DIR" "$PGPORT" >/dev/null
export LEDGER_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"
export LEDGER_OPERATOR_TOKEN=bench-operator
"$VENV/bin/ledger" db upgrade >/dev/null
STOREFRONT=$("$VENV/bin/ledger" programs create --name Bench --currency EUR | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["api_keys"]["storefront"])')

WEB_CONCURRENCY=${WEB_CONCURRENCY:-4} "$VENV/bin/gunicorn" -c gunicorn.conf.py --bind "127.0.0.1:$WEBPORT" \
  --access-logfile /dev/null "api:create_app()" 2>"$DIR/gunicorn.log" &
gunicorn_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$WEBPORT/readyz" >/dev/null && break; sleep 0.1; done

"$VENV/bin/python" - "$WEBPORT" "$STOREFRONT" "$CUSTOMERS" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
port, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def enrol(i):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/customers/c-{i}", data=b"{}", method="PUT",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(enrol, range(n)))
PY
KEY=$STOREFRONT CUSTOMERS=$CUSTOMERS wrk -t2 -c"$CONNECTIONS" -d5s -s bench/purchase.lua "http://127.0.0.1:$WEBPORT" >/dev/null  # warm-up
echo "POST /v1/purchases, ${CONNECTIONS} connections, ${DURATION}s, ${CUSTOMERS} customers, ${WEB_CONCURRENCY:-4} gthread workers:"
KEY=$STOREFRONT CUSTOMERS=$CUSTOMERS wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/purchase.lua "http://127.0.0.1:$WEBPORT" | tail -1
"$VENV/bin/ledger" verify | "$VENV/bin/python" -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"verify_ok": r["ok"], "entries": r["entries"]}))'
