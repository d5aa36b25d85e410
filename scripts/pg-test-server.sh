#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests.
#
#   scripts/pg-test-server.sh start DIR PORT   # init (if needed) + start, wait until ready
#   scripts/pg-test-server.sh stop DIR         # fast shutdown; no-op if not running
#   scripts/pg-test-server.sh url PORT         # print the SQLAlchemy URL
#
# Layout under DIR: data/ (cluster), sock/ (unix socket dir), postgres.log.
# The server listens only on 127.0.0.1:PORT; superuser "postgres", trust auth.
# PostgreSQL refuses to run as root, so as root everything runs as the
# "postgres" system user (created if missing) via runuser.
set -euo pipefail

PROG=$(basename "$0")
READY_TIMEOUT=30

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

usage() {
    cat >&2 <<EOF
usage: $PROG start DIR PORT
       $PROG stop DIR
       $PROG url PORT
EOF
    exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Newest /usr/lib/postgresql/*/bin with initdb, else `pg_config --bindir`
# (on Debian that may be /usr/bin, which has no initdb), else initdb on PATH.
find_bindir() {
    local d best
    best=$(for d in /usr/lib/postgresql/*/bin; do
               if [ -x "$d/initdb" ]; then echo "$d"; fi
           done | sort -V | tail -n 1)
    if [ -n "$best" ]; then echo "$best"; return 0; fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    fi
    if d=$(command -v initdb 2>/dev/null); then
        d=$(dirname "$(readlink -f "$d")")
        if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    fi
    return 1
}

ensure_bindir() {
    if BINDIR=$(find_bindir); then return 0; fi
    if ! is_root; then
        die "no PostgreSQL server binaries (initdb/pg_ctl) found, and not root so cannot install them.
Install them first, e.g.: sudo apt-get install -y postgresql"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "no PostgreSQL server binaries found and apt-get is not available; install PostgreSQL manually"
    log "no PostgreSQL server binaries found; installing the 'postgresql' package via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends postgresql
    BINDIR=$(find_bindir) || die "installed 'postgresql' but still cannot find initdb/pg_ctl"
}

ensure_postgres_user() {
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating system user 'postgres'"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres 2>/dev/null \
            || useradd --system --user-group --shell /bin/false postgres
    fi
}

# Run a PostgreSQL command: as "postgres" when root, else as ourselves.
# Runs from DIR so the (possibly root-only) caller cwd does not matter.
as_pg() {
    if is_root; then
        (cd "$DIR" && runuser -u postgres -- "$@")
    else
        (cd "$DIR" && "$@")
    fi
}

abs_dir() {
    mkdir -p -- "$1"
    (cd -- "$1" && pwd -P)
}

check_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "invalid port: '$1'"
}

is_running() {
    [ -f "$DIR/data/PG_VERSION" ] || return 1
    as_pg "$BINDIR/pg_ctl" status -D "$DIR/data" >/dev/null 2>&1
}

cmd_start() {
    [ $# -eq 2 ] || usage
    local port=$2
    check_port "$port"
    ensure_bindir
    DIR=$(abs_dir "$1")
    local data="$DIR/data" sock="$DIR/sock" logfile="$DIR/postgres.log"
    # Unix socket paths are limited to ~107 bytes.
    [ ${#sock} -le 90 ] || die "DIR path too long for a unix socket dir ($sock); use a shorter DIR"

    if is_root; then
        ensure_postgres_user
        chown -R postgres:postgres "$DIR"
        # Every parent directory must be traversable by the postgres user.
        runuser -u postgres -- test -x "$DIR" -a -w "$DIR" \
            || die "user 'postgres' cannot access $DIR (a parent directory is not traversable?); use a directory under /tmp"
    fi

    if is_running; then
        log "cluster in $DIR already running; nothing to do"
        return 0
    fi

    as_pg mkdir -p "$sock"

    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb in $data (binaries: $BINDIR)"
        as_pg "$BINDIR/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
        as_pg tee -a "$data/postgresql.conf" >/dev/null <<'EOF'

# --- throwaway test cluster settings (scripts/pg-test-server.sh) ---
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
EOF
    fi

    log "starting PostgreSQL on 127.0.0.1:$port (data: $data)"
    if ! as_pg "$BINDIR/pg_ctl" start -D "$data" -l "$logfile" -w -t "$READY_TIMEOUT" \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$sock'" >/dev/null; then
        tail -n 30 "$logfile" >&2 || true
        die "pg_ctl start failed (is port $port already in use?)"
    fi

    local deadline=$((SECONDS + READY_TIMEOUT))
    until (cd "$DIR" && "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"); do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$logfile" >&2 || true
            die "PostgreSQL not ready on 127.0.0.1:$port after ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "ready: $(cmd_url "$port")"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    [ -d "$1" ] || return 0
    DIR=$(cd -- "$1" && pwd -P)
    [ -f "$DIR/data/PG_VERSION" ] || return 0
    BINDIR=$(find_bindir) || { log "no PostgreSQL binaries found; nothing to stop"; return 0; }
    if is_running; then
        as_pg "$BINDIR/pg_ctl" stop -D "$DIR/data" -m fast -w >/dev/null \
            || log "warning: pg_ctl stop failed for $DIR/data"
    fi
    return 0
}

cmd_url() {
    [ $# -eq 1 ] || usage
    check_port "$1"
    echo "postgresql+psycopg://postgres@127.0.0.1:$1/postgres"
}

[ $# -ge 1 ] || usage
sub=$1; shift
case "$sub" in
    start) cmd_start "$@" ;;
    stop)  cmd_stop "$@" ;;
    url)   cmd_url "$@" ;;
    *)     usage ;;
esac
