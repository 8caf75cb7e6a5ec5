#!/usr/bin/env bash
# Compression study for the documents backup (issue 15): bytes stored and zstd CPU seconds for the
# corpus's chunks under other zstd schemes than one level-3 frame per chunk. See
# Benchmarks/compression-study/study.c for what it models and the MODE syntax, and
# Benchmarks/README.md ("Documents backup: where the time goes") for the figures.
#
#   bash Benchmarks/compression-study.sh [--corpus DIR] [MODE...]
#
# DIR defaults to the full-scale corpus that docs-vs-restic.sh keeps under Benchmarks/work/cache
# (generated with corpus.py if missing). Needs gcc and libzstd's headers (libzstd-dev). Single
# thread; run it under the machine lock like every benchmark.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CORPUS=
if [[ "${1:-}" == --corpus ]]; then CORPUS=${2:?--corpus needs a directory}; shift 2; fi
if [[ -z "$CORPUS" ]]; then
    CORPUS=$(ls -d "$HERE"/work/cache/seed1-scale1.0-*/corpus 2>/dev/null | head -1 || true)
    if [[ -z "$CORPUS" ]]; then
        CORPUS=$HERE/work/study-corpus
        [[ -d "$CORPUS" ]] || python3 "$HERE/corpus.py" "$CORPUS" --seed 1 --scale 1.0
    fi
fi
[[ -d "$CORPUS" ]] || { echo "compression-study: no corpus at $CORPUS" >&2; exit 2; }
command -v gcc >/dev/null || { echo "compression-study: gcc is missing" >&2; exit 2; }
[[ -f /usr/include/zstd.h ]] || { echo "compression-study: zstd.h is missing (apt-get install libzstd-dev)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/tresor-study.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -o "$WORK/study" "$HERE/compression-study/study.c" -lzstd -lm
find "$CORPUS" -type f | LC_ALL=C sort > "$WORK/files"
if [[ $# -eq 0 ]]; then
    # The rows of the README's table.
    set -- 3,3 2,2 1,1 -1,-1 2,3 3,2 5,2 9,2 \
        3,3,h=18,m=6 3,3,h=18,c=12,m=6 3,3,h=18,c=13,m=6 3,3,c=12 \
        3,3,G=4096 2,2,G=4096 2,3,G=4096 3,2,G=4096 1,1,G=4096 \
        3,3,D=112 1,3,D=112
fi
echo "corpus: $CORPUS ($(wc -l < "$WORK/files") files); zstd $(zstd --version | grep -o 'v[0-9.]*')"
"$WORK/study" "$WORK/files" "$@"
