#!/usr/bin/env bash
# Fuzzes the parsers that read stored or received bytes with libFuzzer (not in CI):
#
#   bash Benchmarks/fuzz.sh [--seconds 60] [--targets "tree index ..."] [--no-build]
#
# Targets (Benchmarks/fuzz/Sources/tresor-fuzz/Fuzz.swift, one binary, TRESOR_FUZZ_TARGET picks):
# tree (TTR1/TTR2 tree streams), index (index objects), pack (a stored pack's trailer and header,
# and a header's plaintext behind authentication), wal (WAL object header, and open() behind
# authentication), s3xml (listing, error and multipart answers), tar (base backup stream),
# evidence (evidence log lines), walrecords (WAL page and record walker).
# Builds Benchmarks/fuzz (its own package and .build, `-sanitize=fuzzer,address`), makes seeds
# from real objects once (a home with a small document repository made with the tresor binary:
# TRESOR_BIN, else .build/release, else .build/debug; WAL objects sealed as wal-push seals them
# from a segment that initdb wrote and a history file), then runs each target for --seconds with its corpus in
# Benchmarks/work/fuzz/corpus/<target>/ (kept between runs). Crashes are written to
# Benchmarks/work/fuzz/crashes/<target>/. Prints one line per target:
#   target=T execs=N crashes=N corpus=N
# and exits 0 only when no target crashed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SECONDS_EACH=60; BUILD=1
TARGETS="tree index pack wal s3xml tar evidence walrecords"
while [[ $# -gt 0 ]]; do
    case $1 in
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "usage: $0 [--seconds N] [--targets \"T ...\"] [--no-build]" >&2; exit 2 ;;
    esac
done
source "$HERE/tresor-bin.sh"
WORK=$HERE/work/fuzz
FUZZ=$HERE/fuzz/.build/debug/tresor-fuzz
MAXLEN=65536
if [[ $BUILD -eq 1 ]]; then
    (cd "$HERE/fuzz" && swift build -Xswiftc -sanitize=fuzzer,address) || { echo "fuzz build failed" >&2; exit 2; }
fi
[[ -x $FUZZ ]] || { echo "no fuzz binary at $FUZZ" >&2; exit 2; }

seeds() {
    local S=$WORK/seeds; rm -rf "$S"; mkdir -p "$S/docs/sub" "$WORK/corpus"
    local t=("$BIN" --home "$S/home")
    # Documents with what the tree format carries: a symlink, a hard link, a sparse file, an
    # extended attribute, a name that is not UTF-8, an empty file and a directory.
    printf 'hello\n' >"$S/docs/a.txt"; head -c 300000 /dev/urandom >"$S/docs/sub/random.bin"
    ln -s a.txt "$S/docs/link"; ln "$S/docs/a.txt" "$S/docs/hard"; : >"$S/docs/empty"
    truncate -s 1M "$S/docs/sparse"; printf 'x' | dd of="$S/docs/sparse" bs=1 seek=600000 conv=notrunc status=none
    printf 'y\n' >"$S/docs/$(printf 'caf\xe9.txt')"
    setfattr -n user.note -v seed "$S/docs/a.txt" 2>/dev/null || true
    "${t[@]}" init >/dev/null
    "${t[@]}" store add local --url "file://$S/store" --region eu >/dev/null
    "${t[@]}" tenant add acme --region eu --store local --docs "$S/docs" >/dev/null
    "${t[@]}" docs backup acme >/dev/null
    printf 'more\n' >>"$S/docs/a.txt"
    "${t[@]}" docs backup acme >/dev/null
    # A WAL segment as initdb writes it (sealed by the fuzz binary as wal-push seals it).
    # initdb runs as postgres (as root it refuses), in a directory of its own under /tmp.
    local pgtmp; pgtmp=$(mktemp -d /tmp/fuzz-initdb.XXXXXX); chmod 755 "$pgtmp"; chown postgres "$pgtmp" 2>/dev/null
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$pgtmp/data" -U postgres --auth=trust >/dev/null 2>&1
    else
        /usr/lib/postgresql/15/bin/initdb -D "$pgtmp/data" -U postgres --auth=trust >/dev/null 2>&1
    fi
    local seg=
    if ls "$pgtmp/data/pg_wal/"0* >/dev/null 2>&1; then
        seg=$S/$(basename "$(ls "$pgtmp/data/pg_wal/"0* | head -1)")
        cp "$(ls "$pgtmp/data/pg_wal/"0* | head -1)" "$seg"
    else
        echo "note: initdb failed; no WAL segment seeds" >&2
    fi
    rm -rf "$pgtmp"
    printf '1\t0/3000000\tno recovery target specified\n' >"$S/00000002.history"
    local walfiles=$S/00000002.history
    if [[ -n $seg ]]; then
        walfiles+=":$seg"
        mkdir -p "$WORK/corpus/walrecords"
        { printf '\x01\x00\x00\x00'; head -c $((MAXLEN - 4)) "$seg"; } >"$WORK/corpus/walrecords/initdb-segment"
    fi
    TRESOR_FUZZ_SEEDS=$WORK/corpus TRESOR_FUZZ_STORE=$S/store TRESOR_FUZZ_TENANT=acme TRESOR_FUZZ_MASTER=$S/home/keys/master.key \
        TRESOR_FUZZ_POLICIES=$ROOT/Sources/TresorCore/Resources/policies TRESOR_FUZZ_WALFILES=$walfiles TRESOR_FUZZ_TARGET=tree "$FUZZ" 2>&1 | grep '^seeds' >&2
    mkdir -p "$WORK/corpus/tar" "$WORK/corpus/evidence" "$WORK/corpus/s3xml"
    (cd "$S/docs" && tar --format=ustar -cf - a.txt link sub/ | head -c $MAXLEN) | { printf '\x40'; cat; } >"$WORK/corpus/tar/ustar"
    # Evidence log lines: those of the home when it has any, and one of each kind's shape.
    local i=0
    if [[ -f $S/home/evidence/log.jsonl ]]; then
        while IFS= read -r line && [[ $i -lt 20 ]]; do i=$((i + 1)); printf '%s' "$line" >"$WORK/corpus/evidence/line-$i"; done <"$S/home/evidence/log.jsonl"
    fi
    local sig; sig=$(printf 'ab%.0s' $(seq 64)); local h; h=$(printf 'c%.0s' $(seq 64))
    printf '{"sig":"%s","record":{"v":1,"seq":1,"time":"2026-11-30T10:00:00.000Z","kind":"drill","tenant":"acme","key":"%s","prev":"%s","payload":{"ok":true,"n":3,"s":"x","a":[1,"b"],"o":{"k":null}}}}' \
        "$sig" "$h" "$(printf '0%.0s' $(seq 64))" >"$WORK/corpus/evidence/drill"
    printf '{"sig":"%s","record":{"v":1,"seq":2,"time":"2026-11-30T10:00:01.000Z","kind":"key-rotation","key":"%s","prev":"%s","payload":{"new_key":"%s"}}}' \
        "$sig" "$h" "$h" "$h" >"$WORK/corpus/evidence/rotation"
    cat >"$WORK/corpus/s3xml/list" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>tenants/acme/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1x&amp;y</NextContinuationToken><Contents><Key>tenants/acme/data/ab/ab12</Key><LastModified>2026-11-30T10:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>4242</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>tenants/acme/caf&#xe9;&#233;&lt;</Key><Size>0</Size></Contents></ListBucketResult>
XML
    cat >"$WORK/corpus/s3xml/error" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&amp;b</Key><RequestId>tx0</RequestId></Error>
XML
    cat >"$WORK/corpus/s3xml/uploads" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult><Bucket>b</Bucket><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker><IsTruncated>false</IsTruncated><Upload><Key>tenants/acme/data/aa/aa</Key><UploadId>2~abc</UploadId><Initiated>2026-11-30T10:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>
XML
    printf '<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>' >"$WORK/corpus/s3xml/initiate"
}
[[ -d $WORK/corpus ]] || seeds
mkdir -p "$WORK/crashes"
status=0
for target in $TARGETS; do
    mkdir -p "$WORK/corpus/$target" "$WORK/crashes/$target"
    touch "$WORK/$target.start"
    TRESOR_FUZZ_TARGET=$target "$FUZZ" "$WORK/corpus/$target" -max_total_time="$SECONDS_EACH" -max_len=$MAXLEN \
        -artifact_prefix="$WORK/crashes/$target/" -print_final_stats=1 -rss_limit_mb=4096 >"$WORK/$target.log" 2>&1
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$target.log" | tail -1)
    # libFuzzer stops at the first crash (crash-, leak-, timeout- or oom- file).
    crashes=$(find "$WORK/crashes/$target" -type f -newer "$WORK/$target.start" | grep -c . || true)
    echo "target=$target execs=${execs:-?} crashes=$crashes corpus=$(ls "$WORK/corpus/$target" | wc -l)"
    [[ $crashes -eq 0 ]] || status=1
done
exit $status
