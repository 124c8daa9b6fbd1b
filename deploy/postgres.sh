#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: a new cluster (initdb) in a temporary folder,
# on a free port of 127.0.0.1, trusted local connections, removed at the end.
#
#   deploy/postgres.sh run COMMAND...   starts it, runs COMMAND with SPRITEFORGE_TEST_POSTGRES
#                                       set to its URL, stops it; exits with COMMAND's status
#   SPRITEFORGE_POSTGRES_DURABLE=1      keep fsync and synchronous commit on (off by default)
#
# PostgreSQL refuses to run as root; as root the server runs as the "postgres" user (made by
# Debian's postgresql package), else "nobody", owning its folder. Fails (status 3) when the
# server cannot start, so a test run never silently skips the PostgreSQL suite.
set -euo pipefail

fail() { echo "postgres.sh: $*" >&2; exit 3; }

[ "${1:-}" = run ] && [ $# -ge 2 ] || { echo "usage: deploy/postgres.sh run COMMAND..." >&2; exit 2; }
shift

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || fail "no PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)"

as_owner=()
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || owner=nobody
  as_owner=(runuser -u "$owner" --)
fi

dir=$(mktemp -d /tmp/spriteforge-postgres.XXXXXX)
chmod 755 "$dir"
[ ${#as_owner[@]} -eq 0 ] || chown "$owner" "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U spriteforge --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; fail "initdb failed"; }
# Durability settings off: the cluster lives for one test run. SPRITEFORGE_POSTGRES_DURABLE=1
# keeps PostgreSQL's defaults (fsync, synchronous commit), for measurements.
durability="-c fsync=off -c synchronous_commit=off"
[ "${SPRITEFORGE_POSTGRES_DURABLE:-}" = 1 ] && durability=""
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=200" \
  start >/dev/null || { cat "$dir/server.log" >&2; fail "the server did not start"; }
"$bin/psql" -h 127.0.0.1 -p "$port" -U spriteforge -d postgres -qc "CREATE DATABASE spriteforge" >/dev/null ||
  fail "cannot create the test database"

export SPRITEFORGE_TEST_POSTGRES="postgresql://spriteforge@127.0.0.1:$port/spriteforge"
echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $SPRITEFORGE_TEST_POSTGRES"
set +e
"$@"
status=$?
set -e
exit $status
