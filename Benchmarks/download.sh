#!/usr/bin/env bash
# Download throughput of tresor serve with curl on loopback, for a file in the page cache.
#
#   bash Benchmarks/download.sh [--size-mib 2048] [--runs 3] [--keep]
#
# Makes a throwaway home with one tenant, puts a random file of SIZE MiB into
# HOME/exports/bench/, prints a link, reads the file once (page cache warm, digest cached), then
# downloads it RUNS times with `curl -s -o /dev/null` and prints curl's own average speed
# (%{speed_download}) per run, and the server's peak RSS (goal: >= 1 GB/s; memory independent
# of the file size).
set -euo pipefail
SIZE=2048 RUNS=3 KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-mib) SIZE=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "download: unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Benchmarks/tresor-bin.sh"
WORK=$(mktemp -d /tmp/tresor-download.XXXXXX)
HOME_DIR=$WORK/home
SERVER=
cleanup() {
    [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
    [[ $KEEP -eq 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
t() { "$BIN" --home "$HOME_DIR" "$@"; }

mkdir -p "$WORK/docs"
echo hello > "$WORK/docs/a.txt"
t init >/dev/null
t store add local --url "file://$WORK/store" --region eu-central >/dev/null
t tenant add bench --region eu-central --store local --docs "$WORK/docs" >/dev/null
mkdir -p "$HOME_DIR/exports/bench"
head -c $((SIZE << 20)) /dev/urandom > "$HOME_DIR/exports/bench/big.bin"

mkfifo "$WORK/out"
# The binary itself, not the shell function: $! must be tresor's pid, for its RSS and to stop it.
"$BIN" --home "$HOME_DIR" serve --listen 127.0.0.1:0 > "$WORK/out" &
SERVER=$!
read -r line < "$WORK/out"
BASE=${line#listening on }
LINK=$(t --json export link bench big.bin --base "$BASE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["link"])')
cat "$HOME_DIR/exports/bench/big.bin" > /dev/null
echo "binary: $BIN"
echo "file: $SIZE MiB, in the page cache"
for i in $(seq 1 "$RUNS"); do
    curl -s -o /dev/null -w "%{size_download} %{time_total} %{speed_download}\n" "$LINK" |
        awk -v i="$i" '{ printf "run %d: %.0f bytes in %.3f s = %.2f GB/s\n", i, $1, $2, $3 / 1e9 }'
done
echo "server peak RSS: $(awk '/VmHWM/ { print $2, $3 }' /proc/$SERVER/status)"
