#!/usr/bin/env bash
# How long `tresor keys rotate-master` takes for N tenants on a local store.
#
#   bash Benchmarks/key-rotation.sh [--tenants 100] [--keep]
#
# Makes a fresh home and file:// store under Benchmarks/work/key-rotation/, N tenants with one
# small document each, backs each up once (so each has a repository and a key envelope), then
# times the rotation, a second (no-op) run and --finish, and checks that every tenant still
# restores with the new key alone. The binary comes from TRESOR_BIN, else .build/release/tresor,
# else .build/debug/tresor (say which in the figures you quote).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
TENANTS=100
KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --tenants) TENANTS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--tenants N] [--keep]" >&2; exit 2 ;;
    esac
done
source "$HERE/tresor-bin.sh"
WORK=$HERE/work/key-rotation
rm -rf "$WORK"; mkdir -p "$WORK/docs"
say() { echo "== $*" >&2; }
t() { "$BIN" --home "$WORK/home" "$@"; }
now() { date +%s.%N; }

say "binary $BIN; $TENANTS tenants"
t init >/dev/null
t store add local --url "file://$WORK/store" --region eu >/dev/null
for i in $(seq 1 "$TENANTS"); do
    name=$(printf 't%03d' "$i")
    mkdir -p "$WORK/docs/$name"
    echo "document of $name" >"$WORK/docs/$name/a.txt"
    t tenant add "$name" --region eu --store local --docs "$WORK/docs/$name" >/dev/null
    t docs backup "$name" >/dev/null
done
envelopes=$(find "$WORK/store/tenants" -path '*/keys/*' -type f | wc -l)
data_before=$(find "$WORK/store/tenants" -type f ! -path '*/keys/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)

start=$(now); t --json keys rotate-master >"$WORK/rotate.json"; end=$(now)
rotate=$(echo "$end - $start" | bc)
start=$(now); t --json keys rotate-master >"$WORK/again.json"; end=$(now)
again=$(echo "$end - $start" | bc)
start=$(now); t --json keys rotate-master --finish >"$WORK/finish.json"; end=$(now)
finish=$(echo "$end - $start" | bc)

data_after=$(find "$WORK/store/tenants" -type f ! -path '*/keys/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
[[ "$data_before" == "$data_after" ]] || { echo "FAIL: a data object changed" >&2; exit 1; }
[[ ! -e "$WORK/home/keys/master.key.previous" ]] || { echo "FAIL: previous key still there" >&2; exit 1; }
for i in $(seq 1 "$TENANTS"); do
    name=$(printf 't%03d' "$i")
    t docs restore "$name" --to "$WORK/restore/$name" >/dev/null
    cmp -s "$WORK/docs/$name/a.txt" "$WORK/restore/$name/docs/a.txt" || cmp -s "$WORK/docs/$name/a.txt" "$(find "$WORK/restore/$name" -name a.txt | head -1)" \
        || { echo "FAIL: $name restores differently" >&2; exit 1; }
done
rewrapped=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rewrapped"])' "$WORK/rotate.json")
echo "tenants=$TENANTS envelopes=$envelopes rewrapped=$rewrapped rotate_s=$rotate rerun_s=$again finish_s=$finish data_unchanged=yes all_restore=yes"
[[ $KEEP -eq 1 ]] || rm -rf "$WORK"
