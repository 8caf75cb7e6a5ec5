#!/usr/bin/env bash
# WAL push latency: `tresor pg wal-push` and `pgbackrest archive-push` on the same real WAL
# segments, in one run.
#
#   bash Benchmarks/wal-push.sh [TRESOR_BIN] [N]        (N segments, default 30)
#
# A scratch PostgreSQL 15 cluster (pgbench -i, then pgbench -c 2 with checkpoints: see below)
# archives with `cp` into a directory, so the segments are real pgbench WAL that both tools
# accept (pgBackRest checks the system identifier in each segment's header). The cluster is then
# stopped, so only the pushes run. Each segment is pushed once by each tool, as the postgres user
# that runs archive_command, one process per segment, into a fresh Tresor store and a fresh
# pgBackRest repo (zst level 3, process-max 2, posix repo, as pg-vs-pgbackrest.sh sets it up).
# The tools alternate: even segments Tresor first, odd ones pgBackRest first, so machine noise
# and page-cache state hit both alike. Prints both medians, min and max, the ratio
# (tresor / pgbackrest; <= 1 means Tresor is no slower) and the bytes each stored.
# Needs root, postgresql-15, pgbackrest, python3. KEEP=1 keeps the working directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TRESOR=${1:-${TRESOR_BIN:-$ROOT/.build/release/tresor}}; N=${2:-30}
BIN=/usr/lib/postgresql/15/bin
[ "$(id -u)" -eq 0 ] || { echo "wal-push: run as root (postgres runs through runuser)" >&2; exit 2; }
[ -x "$TRESOR" ] || { echo "wal-push: no tresor binary at $TRESOR (swift build -c release --product tresor --static-swift-stdlib)" >&2; exit 2; }
command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null

W=$(mktemp -d /tmp/wal-push.XXXXXX)
chmod 755 "$W"; chown postgres "$W"
WORK=$W
source "$ROOT/Benchmarks/pg-lib.sh"
cleanup() {
    [ -f "$W/data/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$W/data" -m immediate -w stop >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
PORT=$(free_port)
mkdir -p "$W/segs"; chown postgres "$W/segs"
pg_init "$PORT" "cp %p $W/segs/%f"
pgbr_config "$PORT"
as_pg $PGBR stanza-create >/dev/null

export TRESOR_HOME=$W/tresor-home
"$TRESOR" init >/dev/null
"$TRESOR" store add l --url "file://$W/tresor-store" --region eu >/dev/null
"$TRESOR" tenant add b --region eu --store l --pg "host=127.0.0.1 port=$PORT" >/dev/null
"$TRESOR" pg setup b >/dev/null

# Real WAL, two kinds: pgbench -i's bulk load (about one segment per scale unit), then pgbench
# transactions with a checkpoint every 3 s (so updates log full-page images, as on a busy server)
# until the last N segments are about half of each.
segs() { ls "$W/segs" | grep -cE '^[0-9A-F]{24}$' || true; }
"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s $(( (N + 1) / 2 )) -q postgres >/dev/null 2>&1
PSQL="$BIN/psql -X -h 127.0.0.1 -p $PORT -U postgres -d postgres -Atq"
until [ "$(segs)" -ge $(( N + 2 )) ]; do
    $PSQL -c CHECKPOINT
    "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 2 -j 2 -T 3 postgres >/dev/null 2>&1
done
as_pg "$BIN/pg_ctl" -D "$W/data" -m fast -w stop >/dev/null
ls "$W/segs" | grep -E '^[0-9A-F]{24}$' | sort | tail -n "$N" > "$W/list"

cat > "$W/run.sh" <<SH
#!/bin/bash
# Runs as postgres: tool, segment; prints "tool ns".
i=0
while read -r f; do
    p=$W/segs/\$f
    if [ \$((i % 2)) -eq 0 ]; then order="tresor pgbackrest"; else order="pgbackrest tresor"; fi
    for tool in \$order; do
        a=\$(date +%s%N)
        if [ \$tool = tresor ]; then
            "$TRESOR" --home "$TRESOR_HOME" pg wal-push b "\$p"
        else
            $PGBR archive-push "\$p"
        fi
        b=\$(date +%s%N)
        echo "\$tool \$((b - a))"
    done
    i=\$((i + 1))
done < "$W/list"
SH
chmod 755 "$W/run.sh"
as_pg "$W/run.sh" > "$W/times"

SEG_BYTES=$(cd "$W/segs" && cat "$W/list" | xargs du -cb | tail -1 | cut -f1)
T_BYTES=$(du -sb "$W/tresor-store/tenants/b/wal" | cut -f1)
P_BYTES=$(du -sb "$W/pgbr-repo/archive" | cut -f1)
python3 - "$W/times" "$SEG_BYTES" "$T_BYTES" "$P_BYTES" <<'PY'
import sys, statistics
t = {"tresor": [], "pgbackrest": []}
for line in open(sys.argv[1]):
    tool, ns = line.split()
    t[tool].append(int(ns) / 1e6)
seg, tb, pb = (int(x) for x in sys.argv[2:5])
def row(name, v, b):
    print(f"{name:<26} median {statistics.median(v):6.1f} ms   min {min(v):6.1f}   max {max(v):6.1f}   stored {b / 1048576:6.1f} MiB")
print(f"{len(t['tresor'])} real pgbench WAL segments ({seg / 1048576:.0f} MiB), one process per push, alternating order")
row("tresor pg wal-push", t["tresor"], tb)
row("pgbackrest archive-push", t["pgbackrest"], pb)
print(f"ratio tresor / pgbackrest (median): {statistics.median(t['tresor']) / statistics.median(t['pgbackrest']):.2f}")
PY
