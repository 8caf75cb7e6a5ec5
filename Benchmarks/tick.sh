#!/usr/bin/env bash
# A tick with nothing due (not in CI): for 10, 100 and 1,000 tenants (or the counts given),
# fills a fresh home's SQLite catalog with the tenants and 30 days of history in which every
# job ran (document and base backups, replication, retention, a drill, the daily control and
# store clean), then times `tresor tick` at a moment when nothing is due. Prints one line per
# count: tenants, runs in the catalog, the best and the median of 5 ticks, and the jobs the
# tick found due (0 expected).
#
#   [KEEP=1] bash Benchmarks/tick.sh [COUNT...]     (KEEP: leave the homes in /tmp)
#
# TRESOR_BIN: the binary (default: the release build, else the debug one; build with
# `swift build -c release --product tresor`; the 1 s goal is for a release build).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
source "$HERE/tresor-bin.sh"
COUNTS=("$@")
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(10 100 1000)
WORK=$(mktemp -d /tmp/tresor-tick-bench.XXXXXX)
[[ -n "${KEEP:-}" ]] && echo "keeping $WORK" || trap 'rm -rf "$WORK"' EXIT
echo "binary: $BIN"
printf '%8s %9s %10s %10s %5s\n' tenants runs best_s median_s due

for N in "${COUNTS[@]}"; do
    H=$WORK/home-$N
    T() { "$BIN" --home "$H" "$@"; }
    T init >/dev/null
    T store add local --url "file://$WORK/store-$N" --region eu >/dev/null
    T store add off --url "file://$WORK/off-$N" --region eu >/dev/null
    DB=$H/catalog.sqlite
    [[ -f "$DB" ]] || { echo "no catalog at $DB" >&2; exit 1; }
    # Now is 2027-03-31T12:00:00Z; every job of the day ran at 00:05, the drill 3 days ago.
    python3 - "$DB" "$N" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
day = 86400000
now = 1806494400000          # 2027-03-31T12:00:00Z in ms
today = now - now % day
created = today - 40 * day
tenants, roots, runs = [], [], []
for i in range(n):
    t = f"t{i:05d}"
    tenants.append((t, "eu", "local", "off", f"host=/nonexistent dbname={t}", created))
    roots.append((t, 0, f"/nonexistent/{t}"))
    for d in range(30):
        start = today - d * day + 300000
        for kind in ("docs-backup", "pg-basebackup", "replicate", "retention"):
            runs.append((t, kind, start, start + 60000, "ok", "{}", "bench:1"))
    runs.append((t, "drill", today - 3 * day, today - 3 * day + 600000, "ok", "{}", "bench:1"))
for d in range(30):
    start = today - d * day + 300000
    runs.append((None, "drill-control", start, start + 1000, "ok", "{}", "bench:1"))
    for s in ("local", "off"):
        runs.append((None, "store-clean", start, start + 1000, "ok", '{"store":"%s"}' % s, "bench:1"))
con.executemany("INSERT INTO tenants (name, region, store, offsite_store, pg_dsn, created_at) VALUES (?,?,?,?,?,?)", tenants)
con.executemany("INSERT INTO tenant_doc_roots (tenant, position, path) VALUES (?,?,?)", roots)
con.executemany("INSERT INTO runs (tenant, kind, started_at, ended_at, status, detail, worker) VALUES (?,?,?,?,?,?,?)", runs)
con.commit()
PY
    # Drills every 30 days, so the one 3 days ago covers this month for every tenant.
    printf '[drills]\ninterval = "30d"\n' > "$H/policies/zz-bench.toml"
    RUNS=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from runs').fetchone()[0])" "$DB")
    TIMES=()
    DUE=?
    for k in 1 2 3 4 5; do
        S=$(date +%s.%N)
        OUT=$(T tick --json --now 2027-03-31T12:00:00Z) || { echo "tick exited $?: $OUT" >&2; exit 1; }
        E=$(date +%s.%N)
        TIMES+=("$(echo "$E - $S" | bc)")
        DUE=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["jobs"]))' "$OUT")
    done
    SORTED=($(printf '%s\n' "${TIMES[@]}" | sort -n))
    printf '%8d %9d %10.3f %10.3f %5s\n' "$N" "$RUNS" "${SORTED[0]}" "${SORTED[2]}" "$DUE"
done
