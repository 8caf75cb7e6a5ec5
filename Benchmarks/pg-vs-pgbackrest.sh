#!/usr/bin/env bash
# PostgreSQL benchmark: Tresor and pgBackRest side by side on one pgbench cluster, in one run.
#
#   bash Benchmarks/pg-vs-pgbackrest.sh [--scale 60] [--duration 60] [--keep] [--relation-chunk BYTES]
#                                       [--heap-level N] [--index-level N] [--page-delta-max BYTES]
#
# One PostgreSQL 15 cluster (pgbench -i -s SCALE) archives every WAL file to both tools: its
# archive_command runs `tresor pg wal-push` and `pgbackrest archive-push` at once, timing each (the
# per-segment archive figures; both run at once, so neither backup's wait for its last segment
# includes the other tool's push). Then, for each tool: a full base backup; pgbench -T DURATION; a
# second base backup (Tresor: a full one, deduplicated against the first; pgBackRest: incr, its
# usual way to keep a second backup small); a third after updating 1% of pgbench_accounts (one
# contiguous key range: 1% of its pages). Tresor always goes first, so before every backup of
# either tool the script runs CHECKPOINT and waits for it: otherwise the first tool after pgbench
# pays the backup's fast checkpoint that flushes pgbench's dirty pages, and the second does not.
# For the same reason it runs VACUUM after pgbench, before the second backups (see there).
# The restore target is a marker row committed right after pgbench, before the second backup,
# so each tool restores its first base backup and replays all of pgbench's WAL: restore into a
# new data directory, then the server's recovery until it is promoted and the marker is there
# (Tresor also with prefetching off).
# pgBackRest: compress-type=zst, compress-level=3, process-max=2, a local posix repo.
# Needs root (initdb and postgres run as the postgres user through runuser), postgresql-15,
# pgbackrest, pgbench (in postgresql-15's bin), python3. TRESOR_BIN or .build/release/tresor.
set -euo pipefail
SCALE=60 DURATION=60 KEEP=0 RELATION_CHUNK= HEAP_LEVEL= INDEX_LEVEL= PAGE_DELTA=
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --relation-chunk) RELATION_CHUNK=${2:?}; shift 2 ;;
        --heap-level) HEAP_LEVEL=${2:?}; shift 2 ;;
        --index-level) INDEX_LEVEL=${2:?}; shift 2 ;;
        --page-delta-max) PAGE_DELTA=${2:?}; shift 2 ;;
        *) echo "pg-vs-pgbackrest: unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/pg-lib.sh"
pg_bench_prelude pg-vs-pgbackrest

WORK=$(mktemp -d /tmp/pg-vs-pgbackrest.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    for d in "$WORK"/data "$WORK"/restore-*; do
        [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    done
    [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.1f}')"; }
# What each tool's base backups occupy, without WAL: autovacuum after pgbench writes WAL while the
# first tool's backup runs, which would otherwise count against that tool only.
tresor_bytes() { du -sb --exclude=wal "$WORK/tresor-store" | cut -f1; }
pgbr_bytes() { du -sb "$WORK/pgbr-repo/backup" | cut -f1; }
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }
ratio() { python3 -c "a, b = ($1), ($2); print(f'{a/b:.2f}' if b else '-')"; }
# Where Tresor's bytes go: packs (data/), index objects (index/), snapshot manifests (snapshots/).
tresor_parts() { for d in data index snapshots; do du -sb "$WORK/tresor-store/tenants/bench/$d" 2>/dev/null | cut -f1 || echo 0; done | paste -sd' '; }

PORT=$(free_port)
chown postgres "$WORK"
pgbr_config "$PORT"

# Tresor: a home, a local store, the tenant, and WAL access for the postgres user.
tresor_setup "$PORT"
# --relation-chunk BYTES, --heap-level N, --index-level N, --page-delta-max BYTES: try another
# [postgres] relation_chunk_bytes, heap_compression_level, index_compression_level or page_delta_max_bytes (0: changed pages stored
# whole, as before page deltas) than the default policy's.
if [ -n "$RELATION_CHUNK$HEAP_LEVEL$INDEX_LEVEL$PAGE_DELTA" ]; then
    { echo '[postgres]'
      [ -z "$RELATION_CHUNK" ] || echo "relation_chunk_bytes = $RELATION_CHUNK"
      [ -z "$HEAP_LEVEL" ] || echo "heap_compression_level = $HEAP_LEVEL"
      [ -z "$INDEX_LEVEL" ] || echo "index_compression_level = $INDEX_LEVEL"
      [ -z "$PAGE_DELTA" ] || echo "page_delta_max_bytes = $PAGE_DELTA"
    } > "$TRESOR_HOME/policies/zz-bench.toml"
fi

# archive_command: both tools at once, each timed (nanoseconds) into a log the postgres user
# writes. At once, not one after the other: each backup ends by waiting for its last WAL segment
# to be archived, and with the pushes in sequence the second tool's wait would include the first
# tool's push (about 80 ms per backup here).
cat > "$WORK/archive.sh" <<SH
#!/bin/sh
set -e
f=\$(basename "\$1")
( a=\$(date +%s%N); "$TRESOR" --home "$TRESOR_HOME" pg wal-push bench "\$1"; echo \$((\$(date +%s%N)-a)) > "$WORK/push-\$f.t" ) &
t=\$!
( a=\$(date +%s%N); $PGBR archive-push "\$1"; echo \$((\$(date +%s%N)-a)) > "$WORK/push-\$f.p" ) &
p=\$!
wait \$t
wait \$p
echo "\$f \$(cat "$WORK/push-\$f.t") \$(cat "$WORK/push-\$f.p")" >> "$WORK/archive-times.log"
rm -f "$WORK/push-\$f.t" "$WORK/push-\$f.p"
SH
chmod 755 "$WORK/archive.sh"
touch "$WORK/archive-times.log"; chown postgres "$WORK/archive-times.log"

pg_init "$PORT" "$WORK/archive.sh %p"
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"
# The fairness step: no backup pays for flushing what the workload (or the other tool) left dirty.
checkpoint() { $PSQL -c "CHECKPOINT"; }
switch_and_wait() {
    local seg; seg=$($PSQL -c "SELECT pg_walfile_name(pg_switch_wal())")
    until [ "$($PSQL -c "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
}

echo "pgbench -i -s $SCALE ..."
t0=$(now); "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1; t1=$(now)
DBSIZE=$($PSQL -c "SELECT pg_database_size('postgres')")
echo "  $(mib "$DBSIZE") MiB database in $(secs "$t0" "$t1") s"
as_pg $PGBR stanza-create >/dev/null
switch_and_wait

echo "full base backups ..."
s0=$(tresor_bytes)
checkpoint; t0=$(now); "$TRESOR" pg basebackup bench >/dev/null; t1=$(now)
s1=$(tresor_bytes)
T_FULL=$(secs "$t0" "$t1"); T_FULL_BYTES=$((s1 - s0))
r0=$(pgbr_bytes)
checkpoint; t0=$(now); as_pg $PGBR backup --type=full >/dev/null; t1=$(now)
r1=$(pgbr_bytes)
P_FULL=$(secs "$t0" "$t1"); P_FULL_BYTES=$((r1 - r0))

echo "pgbench -T $DURATION ..."
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T "$DURATION" postgres >/dev/null 2>&1
switch_and_wait

# The target: right after a marker row commits, before the second base backup, so both tools
# restore the first base backup and replay all the WAL pgbench wrote (the long-replay case).
$PSQL -c "CREATE TABLE bench_marker (at timestamptz)" -c "INSERT INTO bench_marker VALUES (clock_timestamp())"
TARGET=$($PSQL -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
TARGET_PGBR="${TARGET/T/ }"; TARGET_PGBR="${TARGET_PGBR%Z}+00"   # pgBackRest's form of the same instant
sleep 1

# The vacuum pgbench's updates call for, done here, before either backup: left to autovacuum it
# started during the first backup after pgbench (always Tresor's) and slowed that one only.
$PSQL -c "VACUUM"

echo "second base backups ..."
read -r D0 I0 S0 <<<"$(tresor_parts)"
s0=$(tresor_bytes)
checkpoint; t0=$(now); "$TRESOR" pg basebackup bench >/dev/null; t1=$(now)
s1=$(tresor_bytes)
T_SECOND=$(secs "$t0" "$t1"); T_SECOND_BYTES=$((s1 - s0))
read -r D1 I1 S1 <<<"$(tresor_parts)"
r0=$(pgbr_bytes)
checkpoint; t0=$(now); as_pg $PGBR backup --type=incr >/dev/null; t1=$(now)
r1=$(pgbr_bytes)
P_SECOND=$(secs "$t0" "$t1"); P_SECOND_BYTES=$((r1 - r0))

echo "third base backups after updating 1% of pgbench_accounts (one contiguous key range) ..."
$PSQL -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $SCALE * 1000" -c "CHECKPOINT"
switch_and_wait
read -r TD0 TI0 TS0 <<<"$(tresor_parts)"
s0=$(tresor_bytes)
checkpoint; t0=$(now); "$TRESOR" --json pg basebackup bench >"$WORK/third.json"; t1=$(now)
s1=$(tresor_bytes)
T_THIRD=$(secs "$t0" "$t1"); T_THIRD_BYTES=$((s1 - s0))
read -r TD1 TI1 TS1 <<<"$(tresor_parts)"
# What the third backup stored by its own count, and how its relation pages were stored.
THIRD_OWN=$(python3 -c "import json; r = json.load(open('$WORK/third.json')); print(f\"{r['newBytesStored']/1048576:.1f} MiB in packs; pages reused {r['pagesReused']}, stored whole {r['pagesStored']}, as deltas {r['pagesDelta']} ({r['deltaBytes']/1048576:.1f} MiB of deltas)\")")
r0=$(pgbr_bytes)
checkpoint; t0=$(now); as_pg $PGBR backup --type=incr >/dev/null; t1=$(now)
r1=$(pgbr_bytes)
P_THIRD=$(secs "$t0" "$t1"); P_THIRD_BYTES=$((r1 - r0))

"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T 10 postgres >/dev/null 2>&1
switch_and_wait
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null

# Restore + recovery until the server is promoted and takes writes.
restore_and_recover() { # $1 = tool, $2 = dir
    local port; port=$(free_port)
    as_pg "$BIN/pg_ctl" -D "$2" -l "$2.log" -w -t 3600 -o "-p $port -k $WORK/sock -c archive_mode=off" start >/dev/null
    until [ "$($BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; do sleep 0.2; done
    local n; n=$($BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c 'SELECT count(*) FROM bench_marker')
    [ "$n" = 1 ] || { echo "pg-vs-pgbackrest: $1 restore lacks the marker row" >&2; exit 1; }
    as_pg "$BIN/pg_ctl" -D "$2" -m immediate -w stop >/dev/null
}
echo "restores to $TARGET ..."
t0=$(now)
"$TRESOR" pg restore bench --pgdata "$WORK/restore-tresor" --target-time "$TARGET" >/dev/null
t1=$(now)
restore_and_recover tresor "$WORK/restore-tresor"
t2=$(now)
T_RESTORE=$(secs "$t0" "$t1"); T_RECOVER=$(secs "$t1" "$t2")
mkdir -p "$WORK/restore-pgbr"; chown postgres "$WORK/restore-pgbr"; chmod 700 "$WORK/restore-pgbr"
t0=$(now)
as_pg $PGBR restore --pg1-path="$WORK/restore-pgbr" --type=time "--target=$TARGET_PGBR" --target-action=promote >/dev/null
t1=$(now)
restore_and_recover pgbackrest "$WORK/restore-pgbr"
t2=$(now)
P_RESTORE=$(secs "$t0" "$t1"); P_RECOVER=$(secs "$t1" "$t2")

# Tresor again with prefetching off (a policy override), to measure what prefetching buys.
printf '[postgres]\nwal_prefetch_depth = 0\n' > "$TRESOR_HOME/policies/zz-bench-no-prefetch.toml"
t0=$(now)
"$TRESOR" pg restore bench --pgdata "$WORK/restore-tresor-noprefetch" --target-time "$TARGET" >/dev/null
t1=$(now)
restore_and_recover tresor "$WORK/restore-tresor-noprefetch"
t2=$(now)
rm "$TRESOR_HOME/policies/zz-bench-no-prefetch.toml"
N_RECOVER=$(secs "$t1" "$t2")
rm -rf "$WORK/restore-tresor" "$WORK/restore-pgbr" "$WORK/restore-tresor-noprefetch"

# The files of the latest (third) base backup, no recovery: Tresor's is a whole backup whose
# unchanged pages sit in chunks the earlier backups stored; pgBackRest's is an incremental that
# it composes from three backups.
echo "restores of the latest base backup (files only) ..."
t0=$(now)
"$TRESOR" pg restore bench --pgdata "$WORK/restore-tresor-latest" --latest >/dev/null
t1=$(now)
T_LATEST=$(secs "$t0" "$t1")
mkdir -p "$WORK/restore-pgbr-latest"; chown postgres "$WORK/restore-pgbr-latest"; chmod 700 "$WORK/restore-pgbr-latest"
t0=$(now)
as_pg $PGBR restore --pg1-path="$WORK/restore-pgbr-latest" >/dev/null
t1=$(now)
P_LATEST=$(secs "$t0" "$t1")
REPLAYED=$(ls "$WORK/tresor-store/tenants/bench/wal/00000001" | wc -l)

read -r SEGS T_ARCH P_ARCH <<<"$(python3 - "$WORK/archive-times.log" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 3 and len(l.split()[0]) == 24]
t = [int(r[1]) / 1e6 for r in rows]; p = [int(r[2]) / 1e6 for r in rows]
print(len(rows), f"{statistics.median(t):.0f}", f"{statistics.median(p):.0f}")
PY
)"

cat <<REPORT

work directory $WORK ($([ "$KEEP" = 1 ] && echo kept || echo removed)), target time $TARGET
pgbench -i -s $SCALE ($(mib "$DBSIZE") MiB database), pgbench -T $DURATION -c 2, $(nproc) cores
                                    tresor          pgbackrest (zst 3, process-max 2)
full base backup                    ${T_FULL} s          ${P_FULL} s
  stored                            $(mib "$T_FULL_BYTES") MiB        $(mib "$P_FULL_BYTES") MiB
second base backup (tresor full,    ${T_SECOND} s          ${P_SECOND} s
  pgbackrest incr), bytes added     $(mib "$T_SECOND_BYTES") MiB        $(mib "$P_SECOND_BYTES") MiB
third, after a 1% update           ${T_THIRD} s          ${P_THIRD} s
  (same kinds), bytes added         $(mib "$T_THIRD_BYTES") MiB        $(mib "$P_THIRD_BYTES") MiB
archive push, median per segment    ${T_ARCH} ms          ${P_ARCH} ms      ($SEGS segments)
restore to target time              ${T_RESTORE} s          ${P_RESTORE} s
  + recovery until promoted         ${T_RECOVER} s          ${P_RECOVER} s
  (tresor without prefetch)         ${N_RECOVER} s      ($REPLAYED WAL files in the archive)
restore of the third backup (files) ${T_LATEST} s          ${P_LATEST} s

tresor / pgbackrest (one run, $(uptime | sed 's/.*load average: /load /'))
  time: full $(ratio "$T_FULL" "$P_FULL")  second $(ratio "$T_SECOND" "$P_SECOND")  third $(ratio "$T_THIRD" "$P_THIRD")  restore+recovery $(ratio "$T_RESTORE + $T_RECOVER" "$P_RESTORE + $P_RECOVER")  restore of the third $(ratio "$T_LATEST" "$P_LATEST")  recovery $(ratio "$T_RECOVER" "$P_RECOVER")
  bytes: full $(ratio "$T_FULL_BYTES" "$P_FULL_BYTES")  second $(ratio "$T_SECOND_BYTES" "$P_SECOND_BYTES")  third $(ratio "$T_THIRD_BYTES" "$P_THIRD_BYTES")
  tresor's second backup: packs $(mib $((D1 - D0))) MiB, index $(mib $((I1 - I0))) MiB, snapshot manifest $(mib $((S1 - S0))) MiB
  tresor's third backup: packs $(mib $((TD1 - TD0))) MiB, index $(mib $((TI1 - TI0))) MiB, snapshot manifest $(mib $((TS1 - TS0))) MiB; by its own count $THIRD_OWN
REPORT
