#!/usr/bin/env bash
# Full base backups only, Tresor and pgBackRest alternating on one pgbench cluster, with medians.
#
#   bash Benchmarks/pg-basebackup.sh [--scale 60] [--runs 5] [--keep]
#
# One PostgreSQL 15 cluster (pgbench -i -s SCALE) whose archive_command pushes every WAL file to
# both tools, as in pg-vs-pgbackrest.sh. Then RUNS rounds, alternating which tool goes first:
# `tresor pg basebackup` into an emptied repository (packs, index and snapshots removed, the WAL
# archive and keys kept, so nothing dedups) and `pgbackrest backup --type=full`. Also, as lower
# bounds for Tresor's stream: `pg_basebackup -Ft -X none -c fast -D -` to /dev/null (the server
# producing the tar) and a CHECKPOINT on its own. Prints each run and the medians.
set -euo pipefail
SCALE=60 RUNS=5 KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "pg-basebackup: unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/pg-lib.sh"
pg_bench_prelude pg-basebackup

WORK=$(mktemp -d /tmp/pg-basebackup-pgbackrest.XXXXXX)   # pgBackRest wants "pgbackrest" in archive_command
chmod 755 "$WORK"
cleanup() {
    [ -f "$WORK/data/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
    [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
bytes() { du -sb "$@" 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }

PORT=$(free_port)
chown postgres "$WORK"
pgbr_config "$PORT"
tresor_setup "$PORT"
cat > "$WORK/archive.sh" <<SH
#!/bin/sh
set -e
"$TRESOR" --home "$TRESOR_HOME" pg wal-push bench "\$1"
$PGBR archive-push "\$1"
SH
chmod 755 "$WORK/archive.sh"
pg_init "$PORT" "$WORK/archive.sh %p"
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"

echo "pgbench -i -s $SCALE ..."
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
echo "  $($PSQL -c "SELECT pg_size_pretty(pg_database_size('postgres'))") database, $(nproc) cores"
as_pg $PGBR stanza-create >/dev/null
# The WAL pgbench wrote reaches both archives first (each backup waits for its own segment,
# which comes after it), then one checkpoint: the first backup after pgbench -i would otherwise
# pay for flushing what pgbench wrote (pg-vs-pgbackrest.sh's first full backup, Tresor's, does).
seg=$($PSQL -c "SELECT pg_walfile_name(pg_switch_wal())")
until [ "$($PSQL -c "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
c0=$(now); $PSQL -c "CHECKPOINT"; c1=$(now)
echo "  first checkpoint after pgbench -i: $(secs "$c0" "$c1") s"

TENANT_DIR="$WORK/tresor-store/tenants/bench"
tresor_run() {
    local t0 t1
    t0=$(now); "$TRESOR" pg basebackup bench >/dev/null; t1=$(now)
    T+=("$(secs "$t0" "$t1")")
    TB+=("$(bytes "$TENANT_DIR"/data "$TENANT_DIR"/index "$TENANT_DIR"/snapshots)")
    rm -rf "$TENANT_DIR"/data "$TENANT_DIR"/index "$TENANT_DIR"/snapshots
}
pgbr_run() {
    local t0 t1 r0 r1
    r0=$(bytes "$WORK/pgbr-repo/backup")
    t0=$(now); as_pg $PGBR backup --type=full >/dev/null; t1=$(now)
    r1=$(bytes "$WORK/pgbr-repo/backup")
    P+=("$(secs "$t0" "$t1")"); PB+=("$((r1 - r0))")
}
stream_run() {
    local t0 t1 c0 c1
    t0=$(now); PGPASSWORD= "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D - -Ft -X none -c fast >/dev/null; t1=$(now)
    S+=("$(secs "$t0" "$t1")")
    c0=$(now); $PSQL -c "CHECKPOINT"; c1=$(now)
    C+=("$(secs "$c0" "$c1")")
}
T=() TB=() P=() PB=() S=() C=()
for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then tresor_run; pgbr_run; else pgbr_run; tresor_run; fi
    stream_run
    echo "run $i: tresor ${T[-1]} s ($((TB[-1] / 1048576)) MiB)  pgbackrest ${P[-1]} s ($((PB[-1] / 1048576)) MiB)  pg_basebackup to /dev/null ${S[-1]} s  checkpoint ${C[-1]} s"
done
echo "median of $RUNS: tresor $(median "${T[@]}") s  pgbackrest $(median "${P[@]}") s  pg_basebackup to /dev/null $(median "${S[@]}") s  checkpoint $(median "${C[@]}") s"
echo "stored: tresor $(python3 -c "print(f'{$(median "${TB[@]}")/1048576:.1f}')") MiB  pgbackrest $(python3 -c "print(f'{$(median "${PB[@]}")/1048576:.1f}')") MiB"
