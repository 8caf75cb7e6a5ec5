#!/usr/bin/env bash
# Peak memory of a documents restore of many small files, for one or more tresor binaries.
#
#   bash Benchmarks/restore-memory.sh [--files N] [--keep] [BIN...]
#
# Makes N small files (default 120000, 1-3 KiB of text each, 100 per directory) in
# Benchmarks/work/restore-memory/, backs them up once with the first binary, then restores the
# snapshot with each binary in turn into a new directory (verified byte-identical against the
# source with sha256 listings, untimed) under GNU time -v, and prints wall time and peak RSS.
# BIN defaults to TRESOR_BIN or the release binary. Every binary needs its resources beside it.
set -euo pipefail

FILES=120000
KEEP=0
BINS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --files) FILES=${2:?--files needs a number}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) BINS+=("$1"); shift ;;
    esac
done
[[ "$FILES" =~ ^[0-9]+$ && "$FILES" -gt 0 ]] || { echo "restore-memory: --files must be a positive integer" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [[ ${#BINS[@]} -eq 0 ]]; then source "$HERE/tresor-bin.sh"; BINS=("$BIN"); fi
for b in "${BINS[@]}"; do [[ -x "$b" ]] || { echo "restore-memory: $b is not executable" >&2; exit 2; }; done
[[ -x /usr/bin/time ]] || { echo "restore-memory: GNU time (/usr/bin/time) is missing (apt-get install -y time)" >&2; exit 2; }

WORK=$HERE/work/restore-memory
rm -rf "$WORK"
mkdir -p "$WORK"
SRC=$WORK/small
python3 - "$SRC" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(15)
words = [("w%05d" % i) for i in range(5000)]
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%06d.txt" % i), "w") as f:
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(170, 510))))
PY
listing() { (cd "$1" && find . -type d | LC_ALL=C sort | sed 's/^/dir /' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum); }
listing "$SRC" >"$WORK/expected.listing"
BYTES=$(du -sb "$SRC" | cut -f1)
HOME_DIR=$WORK/home
first=${BINS[0]}
"$first" --home "$HOME_DIR" init >/dev/null
"$first" --home "$HOME_DIR" store add local --url "file://$WORK/repo" --region eu >/dev/null
"$first" --home "$HOME_DIR" tenant add mem --region eu --store local --docs "$SRC" >/dev/null
"$first" --home "$HOME_DIR" docs backup mem >/dev/null
echo "restore-memory: $FILES files, $BYTES bytes (du) in $SRC"
status=0
for b in "${BINS[@]}"; do
    target=$WORK/restore
    rm -rf "$target"; sync
    t0=$(date +%s%N)
    /usr/bin/time -v -o "$WORK/time.txt" "$b" --home "$HOME_DIR" docs restore mem --to "$target" >"$WORK/restore.log" 2>&1 || { echo "FAILED: $b"; cat "$WORK/restore.log"; status=1; continue; }
    t1=$(date +%s%N)
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    root=$(find "$target" -maxdepth 1 -mindepth 1 -type d | head -n1)
    if listing "$root" | cmp -s - "$WORK/expected.listing"; then ok=verified; else ok=MISMATCH; status=1; fi
    awk -v b="$b" -v a="$t0" -v z="$t1" -v r="$rss" -v ok="$ok" \
        'BEGIN {printf "%-50s wall %6.2f s  peak RSS %7.1f MiB  %s\n", b, (z - a) / 1e9, r / 1024, ok}'
done
[[ $KEEP -eq 1 ]] || rm -rf "$WORK"
exit $status
