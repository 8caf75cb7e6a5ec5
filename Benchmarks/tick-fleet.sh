#!/usr/bin/env bash
# A tick with nothing due, on the PostgreSQL (fleet) catalog and on the SQLite one, for 10, 100
# and 1,000 tenants (issue 14's goal: under 2 s on PostgreSQL, under 1 s on SQLite, for 1,000).
#
#   sudo bash Benchmarks/tick-fleet.sh [--sizes "10 100 1000"] [--repeat 5] [--keep]
#
# Per size: a fresh home with one store, N tenants (one document root each) and, for every job
# tick schedules, an `ok` run at the benchmark's instant, so nothing is due; the same state is
# loaded into a fresh PostgreSQL database (with `tresor catalog migrate`). Tenants and runs are
# inserted with SQL (adding 1,000 tenants through the CLI measures the CLI, not tick). Prints the
# median and the best of REPEAT wall-clock runs of `tresor tick --now T` per back end.
# TRESOR_BIN: the binary (default the release build, built if missing). As root: PostgreSQL 15
# runs as the postgres user.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIZES="10 100 1000"
REPEAT=5
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--sizes \"10 100 1000\"] [--repeat N] [--keep]" >&2; exit 2 ;;
    esac
done
TRESOR=${TRESOR_BIN:-$ROOT/.build/release/tresor}
[ -x "$TRESOR" ] || (cd "$ROOT" && swift build -c release --product tresor)
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (postgres runs through runuser)" >&2; exit 2; }
PGBIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/tresor-tick-fleet.XXXXXX)
chmod 755 "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { echo "tick-fleet: $*" >&2; }

mkdir -p "$WORK/data" "$WORK/sock"; chown postgres "$WORK/data" "$WORK/sock"
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$PORT" "$WORK/sock" >> "$WORK/data/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/sock/server.log" -w start >/dev/null
PSQL() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

NOW=2026-11-20T12:00:00Z
NOW_MS=$(( $(date -d "$NOW" +%s) * 1000 ))
# The state both catalogs get: tenants t00001.. with a document root each, and an ok run of every
# job tick schedules (docs-backup per tenant; drill-control and store-clean once) at NOW.
state_sql() {
    local n=$1
    cat <<SQL
INSERT INTO tenants (name, region, store, created_at)
    SELECT printf('t%05d', value), 'eu', 'local', $NOW_MS FROM generate_series(2, $n);
INSERT INTO tenant_doc_roots (tenant, position, path)
    SELECT printf('t%05d', value), 0, '/nonexistent/docs' FROM generate_series(2, $n);
INSERT INTO runs (tenant, kind, started_at, ended_at, status, detail, worker)
    SELECT printf('t%05d', value), 'docs-backup', $NOW_MS, $NOW_MS, 'ok', '{}', 'bench:1' FROM generate_series(1, $n);
INSERT INTO runs (tenant, kind, started_at, ended_at, status, detail, worker)
    VALUES (NULL, 'drill-control', $NOW_MS, $NOW_MS, 'ok', '{}', 'bench:1'),
           (NULL, 'store-clean', $NOW_MS, $NOW_MS, 'ok', '{"store":"local"}', 'bench:1');
SQL
}

# time_tick HOME: REPEAT runs of tick; prints "median best" in seconds. A tick that found
# anything due, or failed, stops the benchmark: it would measure something else.
time_tick() {
    local home=$1 times=() i start end out
    for ((i = 0; i < REPEAT; i++)); do
        start=$(date +%s.%N)
        out=$("$TRESOR" --home "$home" --json tick --now "$NOW")
        end=$(date +%s.%N)
        if ! grep -q '"jobs":\[\]' <<<"$out"; then say "tick found work or failed: $out"; exit 1; fi
        times+=("$(echo "$end - $start" | bc)")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f %.3f\n", a[int((NR+1)/2)], a[1]}'
}

printf "%-8s %-12s %-14s %-14s\n" tenants backend "median (s)" "best (s)"
for n in $SIZES; do
    home=$WORK/home-$n
    T() { "$TRESOR" --home "$home" "$@"; }
    T init >/dev/null
    T store add local --url "file://$WORK/store-$n" --region eu >/dev/null
    mkdir -p "$WORK/docs"
    T tenant add t00001 --region eu --store local --docs "$WORK/docs" >/dev/null
    # The state goes into SQLite (the sqlite3 shell has generate_series); migrate copies it over.
    state_sql "$n" | sqlite3 "$home/catalog.sqlite"
    read -r med best < <(time_tick "$home")
    printf "%-8s %-12s %-14s %-14s\n" "$n" sqlite "$med" "$best"

    PSQL -d postgres -c "CREATE DATABASE fleet_$n" >/dev/null
    T catalog migrate --from sqlite --to "postgresql://postgres@127.0.0.1:$PORT/fleet_$n" >/dev/null
    read -r med best < <(time_tick "$home")
    printf "%-8s %-12s %-14s %-14s\n" "$n" postgresql "$med" "$best"
done
say "binary: $TRESOR"
