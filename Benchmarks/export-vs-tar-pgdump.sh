#!/usr/bin/env bash
# tresor export next to `tar` of the same folder plus `pg_dump` of the same database, one after
# the other, with wall time and peak memory (GNU time's maximum resident set size).
#
#   bash Benchmarks/export-vs-tar-pgdump.sh [--scale 1.0] [--pgbench-scale 60] [--format tar.zst] [--level 3] [--runs 3] [--keep]
#
# As root. The document corpus is corpus.py's (cached in Benchmarks/work/cache, ~1.5 GiB at scale
# 1.0); the database a PostgreSQL 15 cluster after `pgbench -i -s PGBENCH_SCALE`. Each round runs
# both sides, alternating which goes first, on a warm page cache:
#   tresor: tresor export bench --out X.FORMAT   (documents, schema.sql, dump.sql, one CSV per
#           table, all hashed, BagIt tag files; one pass)
#   pair:   tar -cf X.tar (or tar --zstd -cf X.tar.zst) of the corpus, then pg_dump -f dump.sql
#           (or pg_dump | zstd -LEVEL for tar.zst; pg_dump's plain SQL format, as dump.sql)
# --level (tar.zst only, default 3) is the zstd level of both sides: the zstd CLI's (ZSTD_CLEVEL
# for tar's) and the export's (policy exports.zstd_level). Both sides' zstd is libzstd 1.5.4; the
# CLI compresses on one worker thread (its default -T1), the export on one per core.
# Besides wall time and peak RSS, each line has the command's CPU seconds (user + system, its
# children included) and the PostgreSQL backends' CPU seconds (the postmaster's reaped children).
# The export does more work than the pair (it writes the database twice: dump.sql and the CSVs,
# plus schema.sql, and hashes everything), so "no slower than the pair" is a demanding goal.
set -euo pipefail
SCALE=1.0 SEED=1 PGSCALE=60 FORMAT=tar.zst RUNS=3 KEEP=0 LEVEL=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --pgbench-scale) PGSCALE=${2:?}; shift 2 ;;
        --format) FORMAT=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --level) LEVEL=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "export-vs-tar-pgdump: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$FORMAT" in tar|tar.zst|zip) ;; *) echo "export-vs-tar-pgdump: --format takes tar, tar.zst or zip" >&2; exit 2 ;; esac
[[ $(id -u) -eq 0 ]] || { echo "export-vs-tar-pgdump: run as root (postgres runs through runuser)" >&2; exit 2; }
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=/usr/lib/postgresql/15/bin
TRESOR=${TRESOR_BIN:-$ROOT/.build/release/tresor}
[[ -x "$TRESOR" ]] || (cd "$ROOT" && swift build -c release --product tresor --static-swift-stdlib)
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
mkdir -p "$HERE/work"
WORK=$HERE/work
source "$HERE/lib.sh"
source "$HERE/pg-lib.sh"
ensure_corpus

RUN=$(mktemp -d /tmp/tresor-export-bench.XXXXXX)
chmod 755 "$RUN"; chown postgres "$RUN"   # initdb runs as postgres
WORK=$RUN   # pg-lib.sh's cluster lives in the run directory
cleanup() {
    [[ -f "$RUN/data/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$RUN/data" -m immediate -w stop >/dev/null 2>&1 || true
    [[ "$KEEP" = 1 ]] || rm -rf "$RUN"
}
trap cleanup EXIT
PORT=$(free_port)
pg_init "$PORT" "/bin/true"
say "pgbench -i -s $PGSCALE"
"$BIN/pgbench" -i -q -s "$PGSCALE" -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null 2>&1
DSN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
export TRESOR_HOME=$RUN/home
"$TRESOR" init >/dev/null
"$TRESOR" store add local --url "file://$RUN/store" --region bench >/dev/null
"$TRESOR" tenant add bench --region bench --store local --docs "$PRISTINE" --pg "$DSN" >/dev/null
# Older builds do not know the key: write it only when it changes the default.
[[ "$LEVEL" = 3 ]] || printf '[exports]\nzstd_level = %s\n' "$LEVEL" > "$TRESOR_HOME/policies/zz-bench.toml"
DB_BYTES=$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Atc "SELECT pg_database_size('postgres')" postgres)
say "corpus $(tree_bytes "$PRISTINE") bytes in $(tree_files "$PRISTINE") files; database $DB_BYTES bytes"
warm "$PRISTINE"

# The CPU ticks of the postmaster's reaped children (the backends that served a command).
pg_ticks() { awk '{print $16 + $17}' "/proc/$(head -1 "$RUN/data/postmaster.pid")/stat"; }
# measure NAME CMD...: runs CMD under GNU time; prints
# "NAME wall_s maxrss_kib out_bytes cpu_s postgres_cpu_s load".
measure() {
    local name=$1; shift
    rm -rf "$RUN/out"; mkdir -p "$RUN/out"; sync
    local pg0 pg1
    pg0=$(pg_ticks)
    /usr/bin/time -v -o "$RUN/time.txt" "$@" >/dev/null
    sleep 1   # backends exit after their client, and the postmaster then reaps them
    pg1=$(pg_ticks)
    local wall rss bytes cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$RUN/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RUN/time.txt")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.1f", u + s}' "$RUN/time.txt")
    bytes=$(du -sb "$RUN/out" | cut -f1)
    echo "$name $wall $rss $bytes $cpu $(awk -v a="$pg0" -v b="$pg1" -v t="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b - a) / t}') $(cut -d' ' -f1 /proc/loadavg)"
}
pair() {
    if [[ "$FORMAT" = tar.zst ]]; then
        ZSTD_CLEVEL=$LEVEL tar --zstd -cf "$RUN/out/docs.tar.zst" -C "$(dirname "$PRISTINE")" "$(basename "$PRISTINE")"
        "$BIN/pg_dump" --dbname="$DSN" | zstd "-$LEVEL" -q -o "$RUN/out/dump.sql.zst"
    elif [[ "$FORMAT" = zip ]]; then
        (cd "$(dirname "$PRISTINE")" && zip -q -r "$RUN/out/docs.zip" "$(basename "$PRISTINE")")
        "$BIN/pg_dump" --dbname="$DSN" -f "$RUN/out/dump.sql"
    else
        tar -cf "$RUN/out/docs.tar" -C "$(dirname "$PRISTINE")" "$(basename "$PRISTINE")"
        "$BIN/pg_dump" --dbname="$DSN" -f "$RUN/out/dump.sql"
    fi
}
export -f pair; export RUN FORMAT PRISTINE BIN DSN LEVEL
RESULTS=$RUN/results.txt
for ((i = 1; i <= RUNS; i++)); do
    if (( i % 2 )); then order=(tresor pair); else order=(pair tresor); fi
    for side in "${order[@]}"; do
        if [[ $side = tresor ]]; then
            line=$(measure tresor "$TRESOR" export bench --out "$RUN/out/bench.$FORMAT" --by bench)
        else
            line=$(measure pair bash -c pair)
        fi
        say "run $i: $line"
        echo "$line" >> "$RESULTS"
    done
done
for side in tresor pair; do
    grep "^$side " "$RESULTS" | sort -k2 -n | awk -v s="$side" '{w[NR]=$2; r[NR]=$3; b[NR]=$4} END {m=int((NR+1)/2); printf "median %-6s wall %6.1f s  peak RSS %7d KiB  output %d bytes  (%d runs)\n", s, w[m], r[m], b[m], NR}'
    grep "^$side " "$RESULTS" | sort -k5 -n | awk -v s="$side" '{c[NR]=$5} END {m=int((NR+1)/2); printf "median %-6s CPU %6.1f s\n", s, c[m]}'
    grep "^$side " "$RESULTS" | sort -k6 -n | awk -v s="$side" '{c[NR]=$6} END {m=int((NR+1)/2); printf "median %-6s PostgreSQL backends CPU %6.1f s\n", s, c[m]}'
done
