#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the store's contract tests and prints its URL on stdout.
#
#   start-test-postgres.sh [-d DATADIR] [-p PORT]              start; stop later with stop-test-postgres.sh DATADIR
#   start-test-postgres.sh [-d DATADIR] [-p PORT] -- CMD ...   start, run CMD with ORCH_TEST_POSTGRES_URL set, stop
#
# Uses the newest Debian package under /usr/lib/postgresql/<ver>/bin (override with PG_BIN). Runs the
# server as the unprivileged `postgres` user when started as root. Never touches systemd or a system
# cluster: the cluster lives in DATADIR (a fresh temporary directory by default).
set -euo pipefail

PORT="${ORCH_TEST_POSTGRES_PORT:-54329}"
DATADIR=""
DATABASE="orchestrator_test"

die() { echo "start-test-postgres: $*" >&2; exit 1; }
log() { echo "start-test-postgres: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    -d) DATADIR="${2:?-d needs a directory}"; shift 2 ;;
    -p) PORT="${2:?-p needs a port}"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" >&2; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ -z "${PG_BIN:-}" ]]; then
  newest="$(ls -1 /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$newest" ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/<version>); apt-get install postgresql"
  PG_BIN="/usr/lib/postgresql/$newest/bin"
fi
for tool in initdb pg_ctl pg_isready psql; do
  [[ -x "$PG_BIN/$tool" ]] || die "$PG_BIN/$tool is missing; is the PostgreSQL server package installed?"
done

# initdb refuses to run as root, so as root everything server-side runs as `postgres`.
if [[ "$(id -u)" -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server as"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  die "something already answers on 127.0.0.1:$PORT; stop it or pick another port with -p"
fi

CREATED_DATADIR=""
if [[ -z "$DATADIR" ]]; then
  DATADIR="$(mktemp -d "${TMPDIR:-/tmp}/orch-test-pg.XXXXXX")"
  CREATED_DATADIR="$DATADIR"
fi
mkdir -p "$DATADIR"
DATADIR="$(cd "$DATADIR" && pwd)"
if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$DATADIR"; fi
chmod 700 "$DATADIR"

if [[ ! -f "$DATADIR/PG_VERSION" ]]; then
  if ! initdb_output="$(as_pg "$PG_BIN/initdb" -D "$DATADIR" -U postgres --auth-local=trust \
    --auth-host=trust --encoding=UTF8 --no-locale 2>&1)"; then
    echo "$initdb_output" >&2
    if [[ -n "$CREATED_DATADIR" ]]; then rm -rf -- "$CREATED_DATADIR"; fi
    die "initdb failed in $DATADIR"
  fi
fi

stop_server() { as_pg "$PG_BIN/pg_ctl" -D "$DATADIR" -m fast -w stop >/dev/null 2>&1 || true; }
# Failed starts, and runs with a command, leave no server and no temporary directory behind.
stop_and_clean() {
  stop_server
  if [[ -n "$CREATED_DATADIR" ]]; then rm -rf -- "$CREATED_DATADIR"; fi
}

# Durability settings are off: this cluster is thrown away after the tests.
if ! as_pg "$PG_BIN/pg_ctl" -D "$DATADIR" -l "$DATADIR/server.log" -w -t 30 start \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories='$DATADIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  >/dev/null; then
  tail -n 20 "$DATADIR/server.log" >&2 || true
  stop_and_clean
  die "PostgreSQL did not start (data directory $DATADIR)"
fi


for _ in $(seq 1 60); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || { stop_and_clean; die "PostgreSQL started but never answered on 127.0.0.1:$PORT"; }

psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]]; then
  psql_admin -c "CREATE DATABASE $DATABASE" || { stop_and_clean; die "could not create database $DATABASE"; }
fi

URL="postgresql+asyncpg://postgres@127.0.0.1:$PORT/$DATABASE"

if [[ $# -gt 0 ]]; then
  trap stop_and_clean EXIT
  log "running '$*' against $URL"
  set +e
  ORCH_TEST_POSTGRES_URL="$URL" "$@"
  status=$?
  exit "$status"
fi

log "data directory $DATADIR; stop with: $(dirname "$0")/stop-test-postgres.sh $DATADIR"
echo "$URL"
