#!/usr/bin/env bash
# Crash harness for the WAL path (not in CI; run by `crash.sh --pg`, or on its own, as root):
# `tresor pg stream` and `tresor pg wal-push` (as archive_command) killed with SIGKILL at random
# points while the cluster writes. After each kill:
#   - `tresor pg window` shows no gap that was not there before the kill, and
#   - `tresor pg restore --latest --run` into a new data directory exits 0 (recovery reached the
#     window's latest LSN and promoted) and the restored cluster's end-of-recovery checkpoint,
#     read with pg_controldata, is at or after the latest LSN the window named.
#
#   bash Benchmarks/crash-pg.sh [--kills 20] [--seed 1] [--keep]
#
# One PostgreSQL 15 cluster (pgbench -i -s 1) whose archive_command is a wrapper around
# `tresor pg wal-push`: while a flag file exists, the wrapper kills wal-push after a random delay
# (0 to 0.45 s: about its whole run in a debug build) and fails, as PostgreSQL sees an archiver child that died; PostgreSQL retries.
# Rounds alternate: odd rounds run `pg stream` beside pgbench and kill it after 0.3 to 6 s; even
# rounds arm the wrapper and force a segment switch. It prints one line:
#   kills= stream= wal_push= wal_push_killed_mid_run= gaps_introduced= restores_short=
# and exits 0 only when gaps_introduced and restores_short are 0. TRESOR_BIN, else the release
# binary, else the debug one. Needs postgresql-15 and python3.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
KILLS=20; SEED=1; KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --kills) KILLS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--kills N] [--seed N] [--keep]" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "crash-pg: run as root (postgres runs through runuser)" >&2; exit 2; }
source "$HERE/tresor-bin.sh"
TRESOR=$BIN
source "$HERE/pg-lib.sh"
BIN=/usr/lib/postgresql/15/bin
RANDOM=$SEED
WORK=$(mktemp -d /tmp/crash-pg.XXXXXX)
chmod 755 "$WORK"; chown postgres "$WORK"
LOG=$WORK/log.txt
STREAM_PID=; LOAD_PID=
cleanup() {
    [[ -n $STREAM_PID ]] && kill -9 "$STREAM_PID" 2>/dev/null
    [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null
    for d in "$WORK"/data "$WORK"/restore-*; do
        [[ -f $d/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    if [[ $KEEP -eq 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { echo "== $*" >&2; }

PORT=$(free_port)
tresor_setup "$PORT"
# The wrapper PostgreSQL runs as archive_command (as postgres).
cat >"$WORK/push.sh" <<SH
#!/usr/bin/env bash
"$TRESOR" --home "$TRESOR_HOME" pg wal-push bench "\$1" &
pid=\$!
if [[ -e "$WORK/arm/kill" ]]; then
    rm -f "$WORK/arm/kill"
    sleep "\$(cat "$WORK/arm/delay")"
    if kill -9 "\$pid" 2>/dev/null; then wait "\$pid"; echo killed >"$WORK/arm/result"; exit 1; fi
    wait "\$pid"; rc=\$?; echo "finished \$rc" >"$WORK/arm/result"; exit \$rc
fi
wait "\$pid"
SH
chmod 755 "$WORK/push.sh"
mkdir -p "$WORK/arm"; chown postgres "$WORK/arm"
pg_init "$PORT" "$WORK/push.sh %p"
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
"$TRESOR" pg basebackup bench >>"$LOG" 2>&1 || { echo "base backup failed (see $LOG)" >&2; KEEP=1; exit 1; }

window_json() { "$TRESOR" --json pg window bench 2>>"$LOG"; }
field() { python3 -c 'import json,sys; w=json.load(sys.stdin); v=w.get(sys.argv[1]); print("\n".join(v) if isinstance(v, list) else (v or ""))' "$1"; }
# Waits until the archiver has pushed every segment up to the current one.
archived_up_to_now() {
    local want; want=$($PSQL -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
    $PSQL -c "SELECT pg_switch_wal()" >/dev/null
    for _ in $(seq 1 600); do
        local last; last=$($PSQL -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ -n $last && ! $last < $want ]] && return 0
        sleep 0.2
    done
    echo "archiver did not reach $want" >&2; return 1
}
lsn_ge() { python3 -c 'import sys
def v(s): a, b = s.split("/"); return int(a, 16) << 32 | int(b, 16)
sys.exit(0 if v(sys.argv[1]) >= v(sys.argv[2]) else 1)' "$1" "$2"; }

archived_up_to_now
stream_n=0; push_n=0; push_mid=0; gaps_new=0; short=0
for round in $(seq 1 "$KILLS"); do
    before_gaps=$(window_json | field gaps | sort)
    "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T 30 postgres >/dev/null 2>&1 &
    LOAD_PID=$!
    if (( round % 2 == 1 )); then
        what=stream; stream_n=$((stream_n + 1))
        delay=$(python3 -c "import random; random.seed($RANDOM); print(round(random.uniform(0.3, 6), 2))")
        "$TRESOR" --home "$TRESOR_HOME" pg stream bench >>"$LOG" 2>&1 &
        STREAM_PID=$!
        sleep "$delay"
        kill -9 "$STREAM_PID" 2>/dev/null; wait "$STREAM_PID" 2>/dev/null; STREAM_PID=
        detail="pg stream killed after ${delay}s"
    else
        what=wal-push; push_n=$((push_n + 1))
        python3 -c "import random; random.seed($RANDOM); print(round(random.uniform(0, 0.45), 3))" >"$WORK/arm/delay"
        rm -f "$WORK/arm/result"; touch "$WORK/arm/kill"; chown postgres "$WORK/arm/kill"
        sleep 1; $PSQL -c "SELECT pg_switch_wal()" >/dev/null
        for _ in $(seq 1 300); do [[ -e $WORK/arm/result ]] && break; sleep 0.1; done
        result=$(cat "$WORK/arm/result" 2>/dev/null || echo "not run")
        [[ $result == killed ]] && push_mid=$((push_mid + 1))
        detail="wal-push after $(cat "$WORK/arm/delay")s: $result"
    fi
    kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; LOAD_PID=
    # What a killed stream stored is checked as it is; a killed push is retried by PostgreSQL:
    # checked once the archiver has caught up.
    [[ $what == wal-push ]] && archived_up_to_now
    w=$(window_json)
    after_gaps=$(echo "$w" | field gaps | sort)
    latest=$(echo "$w" | field latestLSN)
    added=$(comm -13 <(echo "$before_gaps") <(echo "$after_gaps") | grep -c . || true)
    gaps_new=$((gaps_new + added))
    rm -rf "$WORK/restore-$round"
    "$TRESOR" pg restore bench --pgdata "$WORK/restore-$round" --latest --run >>"$LOG" 2>&1; rrc=$?
    reached=no
    if [[ $rrc -eq 0 ]]; then
        ckpt=$("$BIN/pg_controldata" "$WORK/restore-$round" | sed -n 's/^Latest checkpoint location: *//p')
        [[ -n $latest ]] && lsn_ge "$ckpt" "$latest" && reached=yes
    fi
    [[ $reached == yes ]] || { short=$((short + 1)); echo "round $round ($detail): restore exit $rrc, checkpoint ${ckpt:-?} vs latest ${latest:-?}" | tee -a "$LOG" >&2; }
    [[ $added -eq 0 ]] || echo "round $round ($detail): new gaps: $(comm -13 <(echo "$before_gaps") <(echo "$after_gaps") | tr '\n' ' ')" | tee -a "$LOG" >&2
    say "round $round: $detail; new gaps $added; latest $latest; restore $rrc, checkpoint ${ckpt:-?}, reached $reached"
    rm -rf "$WORK/restore-$round"
done
echo "kills=$KILLS stream=$stream_n wal_push=$push_n wal_push_killed_mid_run=$push_mid gaps_introduced=$gaps_new restores_short=$short"
[[ $gaps_new -ne 0 || $short -ne 0 ]] && KEEP=1
[[ $gaps_new -eq 0 && $short -eq 0 ]]
