#!/usr/bin/env bash
# Restore drill benchmark: `tresor drill run` (restore, recovery and every check) next to
# pgBackRest's bare restore plus recovery to the same target, in one run.
#
#   bash Benchmarks/drill-vs-pgbackrest.sh [--scale 60] [--docs-scale 0.05] [--duration 30] [--keep]
#
# One PostgreSQL 15 cluster made with data checksums (a drill on a cluster without them never
# passes), pgbench -i -s SCALE, archiving every WAL file to both tools (tresor pg wal-push, then
# pgbackrest archive-push). The tenant also has a documents corpus (Benchmarks/corpus.py
# --scale DOCS_SCALE) backed up with `tresor docs backup`. Each tool takes a full base backup,
# pgbench -T DURATION runs, a marker row commits and its time is the target; the cluster stops.
# Then: `tresor drill run bench --target TIME` (restore, pg_verifybackup, recovery, connect,
# target proven from the archived WAL, pg_amcheck --heapallindexed, every table read, checksums,
# a document sample restored and hashed), and pgBackRest's restore --type=time plus the server's
# recovery until promoted and the marker row is there. The drill's own split (restore, recovery,
# checks) comes from its evidence record.
# pgBackRest: compress-type=zst, compress-level=3, process-max=2, a local posix repo.
# Needs root, postgresql-15 (+ contrib for pg_amcheck), pgbackrest, python3.
set -euo pipefail
SCALE=60 DOCS_SCALE=0.05 DURATION=30 KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --docs-scale) DOCS_SCALE=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "drill-vs-pgbackrest: unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/pg-lib.sh"
pg_bench_prelude drill-vs-pgbackrest

WORK=$(mktemp -d /tmp/drill-vs-pgbackrest.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    for d in "$WORK"/data "$WORK"/restore-*; do
        [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    done
    [ -n "${TRESOR_HOME:-}" ] && "$TRESOR" drill clean >/dev/null 2>&1 || true
    [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.1f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }

PORT=$(free_port)
chown postgres "$WORK"
pgbr_config "$PORT"

echo "documents corpus (corpus.py --scale $DOCS_SCALE) ..."
python3 "$ROOT/Benchmarks/corpus.py" "$WORK/docs" --scale "$DOCS_SCALE" >/dev/null
DOCS_BYTES=$(du -sb "$WORK/docs" | cut -f1)
DOCS_FILES=$(find "$WORK/docs" -type f | wc -l)

export TRESOR_HOME=$WORK/tresor-home
"$TRESOR" init >/dev/null
"$TRESOR" store add local --url "file://$WORK/tresor-store" --region bench >/dev/null
"$TRESOR" tenant add bench --region bench --store local --pg "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" --docs "$WORK/docs" >/dev/null
"$TRESOR" pg setup bench >/dev/null

cat > "$WORK/archive.sh" <<SH
#!/bin/sh
set -e
"$TRESOR" --home "$TRESOR_HOME" pg wal-push bench "\$1"
$PGBR archive-push "\$1"
SH
chmod 755 "$WORK/archive.sh"

INITDB_EXTRA=--data-checksums pg_init "$PORT" "$WORK/archive.sh %p"
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"
switch_and_wait() {
    local seg; seg=$($PSQL -c "SELECT pg_walfile_name(pg_switch_wal())")
    until [ "$($PSQL -c "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
}

echo "pgbench -i -s $SCALE ..."
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
DBSIZE=$($PSQL -c "SELECT pg_database_size('postgres')")
as_pg $PGBR stanza-create >/dev/null
switch_and_wait

echo "backups (tresor docs backup + pg basebackup, pgbackrest full) ..."
"$TRESOR" docs backup bench >/dev/null
"$TRESOR" pg basebackup bench >/dev/null
as_pg $PGBR backup --type=full >/dev/null

echo "pgbench -T $DURATION ..."
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T "$DURATION" postgres >/dev/null 2>&1
$PSQL -c "CREATE TABLE bench_marker (at timestamptz)" -c "INSERT INTO bench_marker VALUES (clock_timestamp())"
TARGET=$($PSQL -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
TARGET_PGBR="${TARGET/T/ }"; TARGET_PGBR="${TARGET_PGBR%Z}+00"
sleep 1
$PSQL -c "INSERT INTO bench_marker VALUES (clock_timestamp())"   # a commit after the target
switch_and_wait
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null

echo "tresor drill run bench --target $TARGET ..."
t0=$(now)
set +e
"$TRESOR" --json drill run bench --target "$TARGET" > "$WORK/drill.json"
DRILL_EXIT=$?
set -e
t1=$(now)
D_WALL=$(secs "$t0" "$t1")
read -r D_RESULT D_RTO D_RESTORE D_RECOVERY D_CHECKS D_FAILED <<<"$(python3 - "$WORK/drill.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["record"]
t = r["timings"]; s = lambda ms: f"{(ms or 0) / 1000:.1f}"
bad = ",".join(c["name"] for c in r["checks"] if c["status"] != "passed") or "-"
print(r["result"], s(r["rto_ms"]), s(t["restore_ms"]), s(t["recovery_ms"]), s(t["checks_ms"]), bad)
PY
)"
# Each check's own duration (checks overlap: these need not add up to the checks' wall time).
D_EACH=$(python3 - "$WORK/drill.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["record"]
print(" ".join(f"{c['name']} {c['ms'] / 1000:.1f}" if c.get("ms") is not None else f"{c['name']} -" for c in r["checks"]))
PY
)

echo "pgbackrest restore --type=time + recovery ..."
mkdir -p "$WORK/restore-pgbr"; chown postgres "$WORK/restore-pgbr"; chmod 700 "$WORK/restore-pgbr"
t0=$(now)
as_pg $PGBR restore --pg1-path="$WORK/restore-pgbr" --type=time "--target=$TARGET_PGBR" --target-action=promote >/dev/null
t1=$(now)
port=$(free_port)
as_pg "$BIN/pg_ctl" -D "$WORK/restore-pgbr" -l "$WORK/restore-pgbr.log" -w -t 3600 -o "-p $port -k $WORK/sock -c archive_mode=off" start >/dev/null
until [ "$($BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; do sleep 0.2; done
n=$($BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c 'SELECT count(*) FROM bench_marker')
t2=$(now)
as_pg "$BIN/pg_ctl" -D "$WORK/restore-pgbr" -m immediate -w stop >/dev/null
[ "$n" = 1 ] || { echo "drill-vs-pgbackrest: pgbackrest's restore holds $n marker rows, not 1" >&2; exit 1; }
P_RESTORE=$(secs "$t0" "$t1"); P_RECOVER=$(secs "$t1" "$t2"); P_TOTAL=$(secs "$t0" "$t2")

cat <<REPORT

pgbench -i -s $SCALE ($(mib "$DBSIZE") MiB database, data checksums), pgbench -T $DURATION -c 2,
documents: corpus.py --scale $DOCS_SCALE ($DOCS_FILES files, $(mib "$DOCS_BYTES") MiB), $(nproc) cores, target $TARGET
                                    tresor drill        pgbackrest (zst 3, process-max 2)
result                              $D_RESULT (exit $DRILL_EXIT; not passed: $D_FAILED)
restore                             ${D_RESTORE} s              ${P_RESTORE} s
recovery until promoted             ${D_RECOVERY} s              ${P_RECOVER} s
RTO (start to a usable database)    ${D_RTO} s              ${P_TOTAL} s (restore + recovery, no checks)
  (the drill's scratch server runs with fsync=off: its RTO leaves out the start-up sync pgBackRest's server pays)
checks (verifybackup, amcheck,      ${D_CHECKS} s              -
  tables, checksums, doc sample)
whole drill, wall clock             ${D_WALL} s
each check's own time (s)           ${D_EACH}
REPORT
