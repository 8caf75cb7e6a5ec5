#!/usr/bin/env bash
# Peak memory of tresor export against the size of what it exports: a tenant whose only document
# is a sparse file of SIZE (default 3 GiB: a hole, then "end"), exported live and from backup
# (--from-backup, read back through the repository's tree reader), each under GNU time -v.
#
#   bash Benchmarks/export-memory.sh [--size-gib 3] [--format tar.zst]
#
# Prints "live|backup wall_s maxrss_kib archive_bytes". Peak RSS should not grow with SIZE
# (compare --size-gib 1 with --size-gib 3).
set -euo pipefail
SIZE_GIB=3 FORMAT=tar.zst
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size-gib) SIZE_GIB=${2:?}; shift 2 ;;
        --format) FORMAT=${2:?}; shift 2 ;;
        *) echo "export-memory: unknown argument: $1" >&2; exit 2 ;;
    esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TRESOR=${TRESOR_BIN:-$ROOT/.build/release/tresor}
[[ -x "$TRESOR" ]] || (cd "$ROOT" && swift build -c release --product tresor --static-swift-stdlib)
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
RUN=$(mktemp -d /tmp/tresor-export-mem.XXXXXX)
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/docs"
truncate -s "$((SIZE_GIB << 30))" "$RUN/docs/sparse.img"
printf end | dd of="$RUN/docs/sparse.img" bs=1 seek=$(((SIZE_GIB << 30) - 3)) conv=notrunc status=none
export TRESOR_HOME=$RUN/home
"$TRESOR" init >/dev/null
"$TRESOR" store add local --url "file://$RUN/store" --region bench >/dev/null
"$TRESOR" tenant add mem --region bench --store local --docs "$RUN/docs" >/dev/null
"$TRESOR" docs backup mem >/dev/null
measure() {
    local name=$1; shift
    /usr/bin/time -v -o "$RUN/time.txt" "$@" >/dev/null
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$RUN/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RUN/time.txt")
    echo "$name $wall $rss $(stat -c %s "${@: -1}")"
}
measure live "$TRESOR" export mem --out "$RUN/live.$FORMAT"
measure backup "$TRESOR" export mem --from-backup --out "$RUN/backup.$FORMAT"
