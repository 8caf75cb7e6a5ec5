#!/usr/bin/env bash
# What each restore_command call costs during one Tresor recovery, on a work directory that
# `pg-vs-pgbackrest.sh --keep` left.
#
#   bash Benchmarks/restore-command-calls.sh WORK TARGET_TIME
#
# Runs `tresor pg restore bench --target-time TARGET_TIME` into WORK/restore-calls (TRESOR_BIN,
# as pg-vs-pgbackrest.sh), then replaces its restore_command by a wrapper that runs the very
# command the restore wrote through /bin/sh, as PostgreSQL does, and logs the file name, exit
# status and wall time (bash's $EPOCHREALTIME, no extra process) of each call; starts the
# server, waits for promotion, stops it, and prints: calls, their total, the recovery's wall
# time, the median and 90th percentile per segment. Needs root (postgres runs through runuser).
set -euo pipefail
WORK=${1:?work directory of pg-vs-pgbackrest.sh --keep}
TARGET=${2:?target time}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/pg-lib.sh"
pg_bench_prelude restore-command-calls
export TRESOR_HOME=$WORK/tresor-home
DIR=$WORK/restore-calls
LOG=$WORK/restore-calls.times
rm -rf "$DIR" "$LOG" "$DIR.log"
"$TRESOR" --home "$TRESOR_HOME" pg restore bench --pgdata "$DIR" --target-time "$TARGET" >/dev/null
# The restore_command written (the last such line), unquoted from postgresql.auto.conf.
python3 - "$DIR/postgresql.auto.conf" "$WORK/restore-calls.cmd" <<'PY'
import sys
line = [l for l in open(sys.argv[1]) if l.startswith("restore_command = '")][-1].rstrip("\n")
open(sys.argv[2], "w").write(line[len("restore_command = '"):-1].replace("''", "'").replace("\\\\", "\\"))
PY
cat > "$WORK/restore-calls.sh" <<'SH'
#!/bin/bash
# $1 = %f, $2 = %p, $3 = the command template, $4 = the log
cmd=$(<"$3"); line=""
while [ -n "$cmd" ]; do
    c=${cmd:0:1}; cmd=${cmd:1}
    if [ "$c" = % ]; then
        n=${cmd:0:1}; cmd=${cmd:1}
        case $n in f) line+=$1 ;; p) line+=$2 ;; %) line+=% ;; *) line+=%$n ;; esac
    else
        line+=$c
    fi
done
t0=$EPOCHREALTIME
/bin/sh -c "$line"
rc=$?
t1=$EPOCHREALTIME
echo "$1 $rc $t0 $t1" >> "$4"
exit $rc
SH
chmod 755 "$WORK/restore-calls.sh"; touch "$LOG"; chown postgres "$LOG"; chmod 644 "$WORK/restore-calls.cmd"
echo "restore_command = 'bash $WORK/restore-calls.sh %f %p $WORK/restore-calls.cmd $LOG'" >> "$DIR/postgresql.auto.conf"
PORT=$(free_port)
t0=$EPOCHREALTIME
as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR.log" -w -t 3600 -o "-p $PORT -k $WORK/sock -c archive_mode=off" start >/dev/null
until [ "$($BIN/psql -X -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atq -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; do sleep 0.05; done
t1=$EPOCHREALTIME
as_pg "$BIN/pg_ctl" -D "$DIR" -m immediate -w stop >/dev/null
python3 - "$LOG" "$t0" "$t1" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
ms = lambda r: (float(r[3]) - float(r[2])) * 1000
seg = [ms(r) for r in rows if len(r[0]) == 24 and r[1] == "0"]
other = [(r[0], r[1], round(ms(r), 1)) for r in rows if not (len(r[0]) == 24 and r[1] == "0")]
q = statistics.quantiles(seg, n=10) if len(seg) > 1 else [0] * 9
print(f"recovery until promoted {float(sys.argv[3]) - float(sys.argv[2]):.2f} s; {len(rows)} restore_command calls, "
      f"{sum(ms(r) for r in rows) / 1000:.2f} s together")
print(f"  {len(seg)} segments delivered: median {statistics.median(seg):.1f} ms, 90th percentile {q[8]:.1f} ms, "
      f"min {min(seg):.1f} ms, max {max(seg):.1f} ms, total {sum(seg) / 1000:.2f} s")
print(f"  other calls (file, exit status, ms): {other}")
PY
rm -rf "$DIR"
