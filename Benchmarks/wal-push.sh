#!/bin/bash
# Usage: bash Benchmarks/wal-push.sh [TRESOR_BIN] [N]
# Times `tresor pg wal-push` on N distinct 16 MiB WAL-like segments (page headers, tuple text,
# random bytes; seeded) into a local store, one process per segment as archive_command runs it,
# and prints the median, min and max in ms and the bytes stored. A quick check of the
# per-segment latency without a PostgreSQL cluster; pg-vs-pgbackrest.sh measures real WAL.
T=${1:-${TRESOR_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/tresor}}; N=${2:-21}
W=$(mktemp -d); export TRESOR_HOME=$W/h
$T init >/dev/null; $T store add l --url file://$W/s --region eu >/dev/null; $T tenant add b --region eu --store l --pg "host=127.0.0.1" >/dev/null; $T pg setup b >/dev/null 2>&1
python3 - "$W" "$N" <<'PY'
import sys, random
w, n = sys.argv[1], int(sys.argv[2])
r = random.Random(5)
base = bytearray()
while len(base) < 16 << 20:
    # WAL-like: page headers, tuple images with repeated text and some random bytes
    base += b'\x10\xd1\x05\x00' + r.randbytes(20) + (b'aid=%d bid=%d abalance=%d filler ' % (r.randrange(10**6), r.randrange(60), r.randrange(-5000,5000))) * 8
base = bytes(base[:16 << 20])
for i in range(n):
    b = bytearray(base); b[i*1000:(i*1000)+8] = r.randbytes(8)
    open(f"{w}/0000000100000000000000{i+16:02X}", "wb").write(b)
PY
for f in $W/00000001*; do s=$(date +%s%N); $T pg wal-push b $f; e=$(date +%s%N); echo $(( (e-s)/1000000 )); done | sort -n | awk '{a[NR]=$1} END {print "median ms:", a[int((NR+1)/2)], "min:", a[1], "max:", a[NR]}'
du -sb $W/s/tenants/b/wal | awk '{print "stored bytes:", $1}'
rm -rf $W
