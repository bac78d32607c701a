#!/usr/bin/env bash
# Stops a PostgreSQL started by start-test-postgres.sh, given its data directory; --remove deletes it.
set -euo pipefail

die() { echo "stop-test-postgres: $*" >&2; exit 1; }

DATADIR="${1:-}"
[[ -n "$DATADIR" ]] || die "usage: stop-test-postgres.sh DATADIR [--remove]"
[[ -f "$DATADIR/PG_VERSION" ]] || die "$DATADIR is not a PostgreSQL data directory"

if [[ -z "${PG_BIN:-}" ]]; then
  PG_BIN="/usr/lib/postgresql/$(cat "$DATADIR/PG_VERSION")/bin"
fi
[[ -x "$PG_BIN/pg_ctl" ]] || die "$PG_BIN/pg_ctl is missing"

if [[ "$(id -u)" -eq 0 ]]; then
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DATADIR" -m fast -w stop >/dev/null
else
  "$PG_BIN/pg_ctl" -D "$DATADIR" -m fast -w stop >/dev/null
fi

if [[ "${2:-}" == "--remove" ]]; then
  rm -rf -- "$DATADIR"
fi
