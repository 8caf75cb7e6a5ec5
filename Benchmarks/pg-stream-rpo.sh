#!/usr/bin/env bash
# Streaming RPO: how much committed work a crash of the primary loses, Tresor (`pg stream` next to
# archive_command) against pgBackRest (archive-push; it has no streaming), on one cluster in one run.
#
#   bash Benchmarks/pg-stream-rpo.sh [--scale 10] [--load 30] [--kill-stream] [--quiet]
#
# One PostgreSQL 15 cluster (pgbench -i -s SCALE) whose archive_command runs `tresor pg wal-push`
# and `pgbackrest archive-push`, with archive_timeout = 60s as `tresor pg setup` prints it. Both
# tools take a full base backup; `tresor pg stream` runs with the default policy
# (stream_flush_interval = 2s). Then pgbench writes for LOAD seconds while a marker row with its
# commit time is inserted every 100 ms; right after a marker commits the postmaster gets kill -9
# (the data directory counts as lost). Each tool restores its latest state into a new data
# directory; the RPO is the crash time minus the commit time of the newest marker that came back.
# With --kill-stream, `pg stream` gets kill -9 at the same moment (both on one machine that died),
# so it cannot store what it received since its last flush: the worst case of the flush interval.
# With --quiet, no pgbench runs beside the markers: a quiet server, where a WAL segment takes
# long to fill and archive_command alone loses up to archive_timeout.
# Also reported: the stream's CPU time and peak RSS, and the WAL it received.
# Needs root, postgresql-15, pgbackrest, python3, /usr/bin/time. TRESOR_BIN or .build/release/tresor.
set -euo pipefail
SCALE=10 LOAD=30 KILL_STREAM=0 QUIET=0
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --load) LOAD=${2:?}; shift 2 ;;
        --kill-stream) KILL_STREAM=1; shift ;;
        --quiet) QUIET=1; shift ;;
        *) echo "pg-stream-rpo: unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/pg-lib.sh"
pg_bench_prelude pg-stream-rpo
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null

WORK=$(mktemp -d /tmp/pg-stream-rpo.XXXXXX)
chmod 755 "$WORK"
STREAM_PID=
cleanup() {
    [ -n "$STREAM_PID" ] && pkill -TERM -P "$STREAM_PID" 2>/dev/null || true
    for d in "$WORK"/data "$WORK"/restore-*; do
        [ -f "$d/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(free_port)
chown postgres "$WORK"
pgbr_config "$PORT"
tresor_setup "$PORT"
pg_init "$PORT" "\"$TRESOR\" --home \"$TRESOR_HOME\" pg wal-push bench %p && $PGBR archive-push %p"
# The RPO of archive_command alone, as tresor pg setup prints it.
$BIN/psql -X -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atq -c "ALTER SYSTEM SET archive_timeout = '60s'" -c "SELECT pg_reload_conf()" >/dev/null
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"

echo "pgbench -i -s $SCALE, base backups ..."
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
$PSQL -c "CREATE TABLE rpo_marker (id int PRIMARY KEY, at timestamptz NOT NULL)"
as_pg $PGBR stanza-create >/dev/null
as_pg $PGBR backup --type=full >/dev/null
"$TRESOR" pg basebackup bench >/dev/null

/usr/bin/time -f "%U %S %M" -o "$WORK/stream.time" "$TRESOR" pg stream bench > "$WORK/stream.log" 2>&1 &
STREAM_PID=$!
until [ "$($PSQL -c "SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = 'tresor_bench')::text, 'f')")" = true ]; do sleep 0.2; done

echo "$([ "$QUIET" = 1 ] && echo "no load" || echo "pgbench -T $LOAD"), a marker every 100 ms for $LOAD s, then kill -9 of the postmaster ..."
LOAD_PID=
if [ "$QUIET" = 0 ]; then
    "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T $((LOAD + 30)) postgres >/dev/null 2>&1 &
    LOAD_PID=$!
fi
end=$(( $(date +%s) + LOAD )); i=0; CRASH=; FIRST=
while [ "$(date +%s)" -lt "$end" ]; do
    i=$((i + 1))
    CRASH=$($PSQL -c "INSERT INTO rpo_marker VALUES ($i, clock_timestamp()) RETURNING extract(epoch FROM at)")
    FIRST=${FIRST:-$CRASH}
    sleep 0.1
done
CRASH=$($PSQL -c "INSERT INTO rpo_marker VALUES ($((i + 1)), clock_timestamp()) RETURNING extract(epoch FROM at)")
kill -9 "$(head -1 "$WORK/data/postmaster.pid")"
[ "$KILL_STREAM" = 1 ] && pkill -KILL -P "$STREAM_PID"
[ -n "$LOAD_PID" ] && { wait "$LOAD_PID" 2>/dev/null || true; }
sleep 3
# SIGTERM to pg stream itself (a child of /usr/bin/time): it stores what it holds and exits.
pkill -TERM -P "$STREAM_PID" || true; wait "$STREAM_PID" || true; STREAM_PID=
# The crashed cluster's data directory is gone with the machine: only the repositories remain.
rm -rf "$WORK/data"

newest_marker() { # $1 = data dir: start it, wait for the end of recovery, print max(at) as epoch
    local port; port=$(free_port)
    as_pg "$BIN/pg_ctl" -D "$1" -l "$1.log" -w -t 3600 -o "-p $port -k $WORK/sock -c archive_mode=off" start >/dev/null
    until [ "$($BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; do sleep 0.2; done
    $BIN/psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atq -c "SELECT coalesce(extract(epoch FROM max(at)), 0) FROM rpo_marker"
    as_pg "$BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null
}
echo "restores of the latest state ..."
"$TRESOR" pg restore bench --pgdata "$WORK/restore-tresor" --latest >/dev/null
T_NEWEST=$(newest_marker "$WORK/restore-tresor")
mkdir -p "$WORK/restore-pgbr"; chown postgres "$WORK/restore-pgbr"; chmod 700 "$WORK/restore-pgbr"
as_pg $PGBR restore --pg1-path="$WORK/restore-pgbr" --type=default >/dev/null
P_NEWEST=$(newest_marker "$WORK/restore-pgbr")

read -r S_USER S_SYS S_RSS < <(tail -1 "$WORK/stream.time")
python3 - "$CRASH" "$T_NEWEST" "$P_NEWEST" "$LOAD" "$S_USER" "$S_SYS" "$S_RSS" "$WORK/stream.log" "$KILL_STREAM" "$FIRST" <<'PY'
import sys
crash, t, p, load = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
user, sys_, rss = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
log = open(sys.argv[8]).read().splitlines()
print(f"| | Tresor (pg stream + wal-push) | pgBackRest (archive-push) |")
print(f"| --- | --- | --- |")
first = float(sys.argv[10])
def rpo(newest):
    # No marker back: everything since the first one is lost (and more).
    return f"{crash - newest:.2f} s" if newest > 0 else f"> {crash - first:.1f} s (no marker came back)"
print(f"| RPO: crash minus newest recovered commit{' (pg stream killed too)' if sys.argv[9] == '1' else ''} | {rpo(t)} | {rpo(p)} |")
print(f"pg stream over ~{load:.0f} s: {user:.2f} s user + {sys_:.2f} s system CPU, peak RSS {rss / 1024:.0f} MiB")
print("pg stream's last line:", log[-1] if log else "(none)")
PY
