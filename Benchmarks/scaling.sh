#!/usr/bin/env bash
# How cost grows: Tresor and restic on many small files (files axis, bytes held constant) and
# on more bytes (bytes axis, file count held constant), in one run.
#
#   bash Benchmarks/scaling.sh [--points LIST] [--only tresor|restic] [--quick] [--keep]
#                              [--files-bytes B] [--base-bytes B] [--bytes-files N] [--no-verify]
#                              [--steps backup,rerun,restore,check] [--work DIR] [--tree DIR]
#                              [--no-drop-caches] [--no-warm]
#
# Points (comma-separated, default all): files:20k files:200k files:2m bytes:1 bytes:4 bytes:16
#   files:N   N small text files totalling --files-bytes (default 1 GiB) in a 2-level fan-out
#   bytes:K   --bytes-files files (default 5000) totalling K x --base-bytes (default 200 MiB),
#             half of them incompressible
# --quick: points files:2k,files:20k,bytes:1,bytes:4 with --base-bytes 16 MiB and --files-bytes
#          64 MiB (a smoke run of a few minutes). Sizes take k/m/g suffixes (powers of 1024 for
#          bytes, of 1000 for file counts).
# At each point, for each tool (order alternating per step): backup, unchanged re-run, restore
# of the latest snapshot into a new ext4 filesystem after sync and drop_caches (verified by
# content digest, untimed), check --read-data. GNU time -v gives wall, user, sys and peak RSS.
# --steps runs a subset (backup always runs). Everything of a point is deleted before the next
# one unless --keep. State: --work DIR (default Benchmarks/work/scaling/; one run per DIR).
# --tree DIR: measure an existing manyfiles.py tree (a kept run's corpus/tree, with the
# tree.gen line beside it) instead of generating one; one point only, never deleted.
# --no-drop-caches: restores start with the page cache as it is (drop_caches is machine-wide:
# it would also make a second, concurrent scaling run's steps read cold). --no-warm: no tar read
# of the tree before the first backup (it is cached anyway right after generation).
set -euo pipefail

usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

POINTS=""
ONLY=both
KEEP=0
VERIFY=1
QUICK=0
FILES_BYTES=1g
BASE_BYTES=200m
BYTES_FILES=5000
SEED=1
STEPS=backup,rerun,restore,check
WORK=""
REUSE=""
DROP=1
WARM=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --points) POINTS=${2:?--points needs a list}; shift 2 ;;
        --points=*) POINTS=${1#*=}; shift ;;
        --only) ONLY=${2:?--only needs tresor or restic}; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --quick) QUICK=1; shift ;;
        --keep) KEEP=1; shift ;;
        --no-verify) VERIFY=0; shift ;;
        --no-drop-caches) DROP=0; shift ;;
        --no-warm) WARM=0; shift ;;
        --files-bytes) FILES_BYTES=${2:?}; shift 2 ;;
        --base-bytes) BASE_BYTES=${2:?}; shift 2 ;;
        --bytes-files) BYTES_FILES=${2:?}; shift 2 ;;
        --seed) SEED=${2:?}; shift 2 ;;
        --steps) STEPS=${2:?}; shift 2 ;;
        --work) WORK=${2:?}; shift 2 ;;
        --tree) REUSE=$(realpath -- "${2:?}"); shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "scaling: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
if [[ $QUICK -eq 1 ]]; then
    POINTS=${POINTS:-files:2k,files:20k,bytes:1,bytes:4}
    BASE_BYTES=16m FILES_BYTES=64m
fi
POINTS=${POINTS:-files:20k,files:200k,files:2m,bytes:1,bytes:4,bytes:16}
case "$ONLY" in
    both) TOOLS=(tresor restic) ;;
    tresor|restic) TOOLS=("$ONLY") ;;
    *) echo "scaling: --only takes tresor or restic, not '$ONLY'" >&2; exit 2 ;;
esac

die() { echo "scaling: $*" >&2; exit 1; }
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# size N[k|m|g] BASE: integer (BASE 1024 for bytes, 1000 for counts).
size() {
    python3 -c 'import sys,re; m=re.fullmatch(r"([0-9.]+)([kmgKMG]?)", sys.argv[1]); b=int(sys.argv[2])
assert m; print(int(float(m[1]) * b ** " kmg".index((m[2] or " ").lower())))' "$1" "$2" 2>/dev/null \
        || die "bad size '$1'"
}
FILES_BYTES=$(size "$FILES_BYTES" 1024)
BASE_BYTES=$(size "$BASE_BYTES" 1024)
BYTES_FILES=$(size "$BYTES_FILES" 1000)

[[ $(id -u) -eq 0 ]] || die "needs root (each tree lives on a loop-mounted ext4 filesystem of its own)"
for c in python3 restic mkfs.ext4 losetup /usr/bin/time; do
    command -v "$c" >/dev/null || [[ "${TOOLS[*]}" != *restic* && "$c" == restic ]] || die "$c is missing"
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-$HERE/work/scaling}
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock -n 9 || die "another scaling run holds $WORK/.lock"

TRESOR=""
if [[ " ${TOOLS[*]} " == *" tresor "* ]]; then
    TRESOR=$(realpath -m -- "${TRESOR_BIN:-$ROOT/.build/release/tresor}")
    [[ -x "$TRESOR" ]] || die "no tresor binary at $TRESOR (swift build -c release --static-swift-stdlib, or set TRESOR_BIN)"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$WORK/run
LOGS=$WORK/logs-$STAMP
TSV=$LOGS/results.tsv
mkdir -p "$LOGS"
: >"$TSV"
export RESTIC_PASSWORD=bench

MOUNTS=()
unmount_all() { local m; for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done; MOUNTS=(); }
unmount_under() { local m; for m in $(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount "$m" || true; done; }
trap unmount_all EXIT

# new_fs DIR FILES BYTES: a new ext4 filesystem at DIR (sparse image DIR.img) with room and
# inodes for FILES files of BYTES in all. 1 KiB blocks when files are small (2 M files of
# 500 bytes would take 8 GB in 4 KiB blocks).
new_fs() {
    local dir=$1 files=$2 bytes=$3 blk=4096 mib
    (( bytes / files < 16384 )) && blk=1024
    mib=$(( (bytes * 3 / 2 + files * (blk + 512)) / 1048576 + 256 ))
    rm -rf "$dir" "$dir.img"; mkdir -p "$dir"
    truncate -s "${mib}M" "$dir.img"
    mkfs.ext4 -q -F -b "$blk" -N $(( files * 11 / 10 + 10000 )) "$dir.img" || die "mkfs.ext4 $dir.img failed"
    mount -o loop "$dir.img" "$dir" || die "mount $dir.img failed"
    MOUNTS+=("$dir")
}
drop_fs() { umount "$1" 2>/dev/null || true; rm -rf "$1" "$1.img"; }
warm() { tar -cf - -C "$(dirname "$1")" "$(basename "$1")" | cat >/dev/null; }

# record POINT STEP TOOL STATUS WALL RSS_KB USER SYS FILES BYTES NOTE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"; }

# measure NAME COMMAND...: under GNU time -v; sets WALL, RSS (KiB), USR, SYS; returns status.
measure() {
    local name=$1; shift
    local log=$LOGS/$name.log tf=$LOGS/$name.time t0 t1 rc=0
    printf '$ %s\n' "$*" >"$log"
    t0=$(date +%s%N)
    /usr/bin/time -v -o "$tf" "$@" </dev/null >>"$log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf"); RSS=${RSS:-0}
    USR=$(awk -F': ' '/User time/ {print $2}' "$tf"); USR=${USR:-0}
    SYS=$(awk -F': ' '/System time/ {print $2}' "$tf"); SYS=${SYS:-0}
    if [[ $rc -ne 0 ]]; then say "FAILED ($rc): $*"; tail -n 15 "$log" | sed 's/^/    /'; fi
    return $rc
}
setup() { local name=$1; shift; printf '$ %s\n' "$*" >"$LOGS/$name.log"; "$@" </dev/null >>"$LOGS/$name.log" 2>&1 || { say "FAILED: $*"; tail -n 15 "$LOGS/$name.log"; return 1; }; }

order() { if (( $1 % 2 == 0 )); then printf '%s\n' "${TOOLS[@]}"; else printf '%s\n' "${TOOLS[@]}" | tac; fi; }

run_point() { # AXIS VALUE
    local axis=$1 value=$2 files bytes rf pt t step
    case "$axis" in
        files) files=$(size "$value" 1000); bytes=$FILES_BYTES; rf=0 ;;
        bytes) files=$BYTES_FILES; bytes=$(python3 -c "print(int(float('$value') * $BASE_BYTES))"); rf=0.5 ;;
        *) die "unknown axis '$axis' (files:N or bytes:K)" ;;
    esac
    pt="$axis:$value"
    local P=$RUN/$axis-$value
    unmount_under "$RUN"; rm -rf "$RUN"; mkdir -p "$P"
    local CORPUS=$P/corpus gen TREE=$P/corpus/tree
    if [[ -n "$REUSE" ]]; then
        [[ -f "$REUSE.gen" ]] || die "--tree $REUSE: no $REUSE.gen (the line manyfiles.py printed)"
        TREE=$REUSE
        gen=$(cat "$REUSE.gen")
        say "$pt: reusing $TREE: $gen"
        # The tree's own filesystem image, read once so the loop device is served from memory.
        local img; img=$(awk -v m="$(dirname "$TREE")" '$2 == m {print $1}' /proc/mounts)
        if [[ "$img" == /dev/loop* ]]; then cat "$(losetup -n -O BACK-FILE "$img")" >/dev/null; fi
    else
        new_fs "$CORPUS" "$files" "$bytes"
        say "$pt: generating $files files, $bytes bytes"
        gen=$(python3 "$HERE/manyfiles.py" "$TREE" --files "$files" --bytes "$bytes" --seed "$SEED" --random-fraction "$rf" --jobs 4) \
            || die "manyfiles.py failed"
        echo "$gen" >"$TREE.gen"
        say "$pt: $gen"
    fi
    local expected=${gen##*digest=} real_bytes
    real_bytes=$(sed 's/.* bytes=\([0-9]*\).*/\1/' <<<"$gen")
    local THOME=$P/tresor-home TREPO=$P/tresor-repo RREPO=$P/restic-repo
    export RESTIC_CACHE_DIR=$P/restic-cache
    declare -A failed=()
    for t in "${TOOLS[@]}"; do
        case "$t" in
            tresor) mkdir -p "$TREPO"
                setup "$pt-tresor-init" "$TRESOR" --home "$THOME" init &&
                setup "$pt-tresor-store" "$TRESOR" --home "$THOME" store add local --url "file://$TREPO" --region eu &&
                setup "$pt-tresor-tenant" "$TRESOR" --home "$THOME" tenant add bench --region eu --store local --docs "$TREE" \
                    || failed[$t]=1 ;;
            restic) setup "$pt-restic-init" restic -r "$RREPO" init --repository-version 2 || failed[$t]=1 ;;
        esac
    done
    if [[ $WARM -eq 1 ]]; then warm "$TREE"; fi
    local i=0
    for step in backup rerun restore check; do
        [[ $step == backup || ",$STEPS," == *",$step,"* ]] || continue
        for t in $(order $i); do
            [[ -n "${failed[$t]:-}" ]] && { record "$pt" "$step" "$t" skipped "" "" "" "" "$files" "$real_bytes" "earlier step failed"; continue; }
            local name="$pt-$t-$step" note="" target="" ok=1
            case "$step" in
                backup|rerun)
                    case "$t" in
                        tresor) measure "$name" "$TRESOR" --home "$THOME" docs backup bench || ok=0 ;;
                        restic) measure "$name" restic -r "$RREPO" backup "$TREE" || ok=0 ;;
                    esac ;;
                restore)
                    new_fs "$P/restore-$t" "$files" "$bytes"
                    target=$P/restore-$t/data; mkdir -p "$target"
                    if [[ $DROP -eq 1 ]]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
                    case "$t" in
                        tresor) measure "$name" "$TRESOR" --home "$THOME" docs restore bench --to "$target" || ok=0 ;;
                        restic) measure "$name" restic -r "$RREPO" restore latest --target "$target" || ok=0 ;;
                    esac ;;
                check)
                    warm "$([[ $t == tresor ]] && echo "$TREPO" || echo "$RREPO")"
                    case "$t" in
                        tresor) measure "$name" "$TRESOR" --home "$THOME" check bench --read-data || ok=0 ;;
                        restic) measure "$name" restic -r "$RREPO" check --read-data || ok=0 ;;
                    esac ;;
            esac
            local w=$WALL r=$RSS u=$USR s=$SYS
            if [[ $ok -eq 1 && $step == restore ]]; then
                if [[ $VERIFY -eq 1 ]]; then
                    local c root="" got
                    for c in "$target$TREE" "$target/tree" "$target"; do
                        [[ -f "$c/d0000/d0000/f000000.txt" ]] && { root=$c; break; }
                    done
                    got=$([[ -n "$root" ]] && python3 "$HERE/manyfiles.py" "$root" --digest --jobs 4 || echo "none")
                    if [[ "$got" == *"digest=$expected" ]]; then note="verified"; else
                        say "$pt: $t RESTORE MISMATCH: expected $expected, got $got"; ok=0; note="restore differs"; fi
                else
                    note="NOT verified (--no-verify)"
                fi
                [[ $KEEP -eq 1 ]] || drop_fs "$P/restore-$t"
            fi
            if [[ $ok -eq 1 ]]; then
                say "$pt: $t $step ${w}s $((r / 1024)) MiB ${note}"
                record "$pt" "$step" "$t" ok "$w" "$r" "$u" "$s" "$files" "$real_bytes" "$note"
            else
                failed[$t]=1
                record "$pt" "$step" "$t" failed "$w" "$r" "$u" "$s" "$files" "$real_bytes" "${note:-see $LOGS/$name.log}"
            fi
        done
        i=$((i + 1))
    done
    local sizes=""
    for t in "${TOOLS[@]}"; do
        sizes+=" $t-repo=$(du -sb "$([[ $t == tresor ]] && echo "$TREPO" || echo "$RREPO")" | cut -f1)"
    done
    say "$pt: repository bytes:$sizes"
    echo "$pt$sizes" >>"$LOGS/repo-sizes.txt"
    if [[ $KEEP -eq 0 ]]; then unmount_under "$RUN"; MOUNTS=(); rm -rf "$RUN" || say "could not remove $RUN (still mounted?)"; fi
    FAILED_ANY+=${!failed[*]}
}

FAILED_ANY=""
say "points=$POINTS steps=$STEPS tools=${TOOLS[*]} files-axis bytes=$FILES_BYTES bytes-axis base=$BASE_BYTES files=$BYTES_FILES logs=$LOGS"
{
    echo "restic: $(restic version 2>&1 | head -n1)"
    [[ -n "$TRESOR" ]] && echo "tresor: $TRESOR ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null))"
    echo "host: $(uname -srm), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$LOGS/versions.txt"
IFS=, read -ra PTS <<<"$POINTS"
for p in "${PTS[@]}"; do
    [[ "$p" == *:* ]] || die "point '$p' is not AXIS:VALUE"
    run_point "${p%%:*}" "${p#*:}"
done

python3 "$HERE/scaling-report.py" "$TSV" | tee "$LOGS/report.txt"
cat "$LOGS/versions.txt"
[[ -z "$FAILED_ANY" ]] || { echo "scaling: failures ($FAILED_ANY); logs in $LOGS" >&2; exit 1; }
