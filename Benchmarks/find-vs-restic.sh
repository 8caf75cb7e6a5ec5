#!/usr/bin/env bash
# Find benchmark: `tresor docs find` next to `restic find`, in one run, on the same history of
# daily snapshots of the seeded corpus (day 1 the corpus, each later day mutate.py --seed DAY).
#
#   bash Benchmarks/find-vs-restic.sh [--scale S] [--seed N] [--days N]
#
# Both search every snapshot for one file name (a file of the corpus that mutate.py changes on
# some days); the wall clock and peak RSS (GNU time) of each search are printed. Backups are
# not timed. All state lives in Benchmarks/work/find/ (gitignored).
#
# Environment:
#   TRESOR_BIN   tresor binary (default: the release build if present, else the debug one).
set -euo pipefail

SCALE=1.0
SEED=1
DAYS=31
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --days) DAYS=${2:?--days needs a value}; shift 2 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "find-vs-restic: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$DAYS" =~ ^[0-9]+$ && "$DAYS" -ge 1 && "$DAYS" -le 31 ]] || { echo "find-vs-restic: --days must be 1..31" >&2; exit 2; }

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { echo "find-vs-restic: $*" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$HERE/work
mkdir -p "$WORK"
exec 9>"$WORK/.find-lock"
flock -n 9 || die "another find-vs-restic run holds $WORK/.find-lock"
command -v restic >/dev/null || die "restic is missing (apt-get install -y restic)"
# shellcheck source=Benchmarks/lib.sh
source "$HERE/lib.sh"
# shellcheck source=Benchmarks/tresor-bin.sh
source "$HERE/tresor-bin.sh"
ensure_corpus

RUN=$WORK/find
rm -rf "$RUN"
mkdir -p "$RUN"
cp -a "$PRISTINE" "$RUN/docs"
T=("$BIN" --home "$RUN/home")
"${T[@]}" init >/dev/null
"${T[@]}" store add local --url "file://$RUN/store" --region bench >/dev/null
"${T[@]}" tenant add bench --region bench --store local --docs "$RUN/docs" >/dev/null
export RESTIC_PASSWORD=find-bench RESTIC_REPOSITORY=$RUN/restic
restic init -q >/dev/null

# The file searched for: the first (sorted) regular file the day-2 mutation will touch is not
# known here, so take the 100th file by name; its versions depend on mutate.py's picks.
NAME=$(cd "$RUN/docs" && find . -type f -printf '%f\n' | LC_ALL=C sort | sed -n 100p)
[[ -n "$NAME" ]] || die "the corpus has fewer than 100 files"

for ((d = 1; d <= DAYS; d++)); do
    day=$(printf '2026-10-%02d' "$d")
    if ((d > 1)); then python3 "$HERE/mutate.py" "$RUN/docs" --seed "$d" --fraction 0.01 >/dev/null; fi
    "${T[@]}" --now "${day}T02:00:00Z" docs backup bench >/dev/null
    restic backup -q --time "$day 02:00:00" "$RUN/docs" >/dev/null
    say "day $d backed up"
done

timed() { # timed LABEL CMD...: prints wall seconds and peak RSS
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$RUN/rss" "${@:2}" >"$RUN/$1.out" 2>"$RUN/$1.err" || die "$1 failed: $(tail -3 "$RUN/$1.err")"
    end=$(date +%s%N)
    printf '%-8s %8.3f s  peak RSS %6d KiB\n' "$1" "$(echo "($end - $start) / 1000000000" | bc -l)" "$(tail -1 "$RUN/rss")"
}
say "searching $DAYS snapshots for '$NAME'"
timed tresor "${T[@]}" docs find bench "$NAME" --json
timed restic restic find "$NAME"
python3 - "$RUN/tresor.out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for f in r["files"]:
    print(f"tresor: {f['path']}: {len(f['versions'])} versions, gone in {len(f['deletedIn'])} snapshots; {r['snapshotsSearched']} snapshots, {r['treeBlobsRead']} tree blobs read")
PY
echo "restic: $(grep -c "^Found matching entries in snapshot" "$RUN/restic.out") snapshots with a match"
