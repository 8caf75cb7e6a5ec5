#!/usr/bin/env bash
# Document-backup benchmark: Tresor and restic side by side, in one run, on the same corpus.
#
#   bash Benchmarks/docs-vs-restic.sh [--scale S] [--seed N] [--only tresor|restic] [--keep]
#                                     [--restore-fs ordinary|fresh]
#
# Steps (each timed with GNU time for peak RSS, wall clock from date +%s%N):
#   zstd -3 -T2 over a tar of the corpus (the compression ceiling for our pipeline),
#   initial backup, mutate.py on the corpus, incremental backup, restore of the latest
#   snapshot (verified byte-identical, untimed), dd oflag=direct of as many bytes (the disk's
#   sequential write time, for the durable restore), check --read-data.
# --restore-fs ordinary (default): each restore goes into a new directory on the run directory's
# filesystem after `sync`, caches as they are, and no sooner than 361 s after the last large
# deletion of this script's runs (see settle); fresh: into a new loop-mounted ext4 (as root).
# All state lives in Benchmarks/work/ (gitignored). See Benchmarks/README.md.
#
# Environment:
#   TRESOR_BIN   tresor binary (default: <repo>/.build/release/tresor; that default is built
#                with `swift build -c release --static-swift-stdlib` if missing, an explicit TRESOR_BIN never is).
set -euo pipefail

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

SCALE=1.0
SEED=1
ONLY=both
KEEP=0
RESTORE_FS=ordinary
MUTATE_SEED=2
MUTATE_FRACTION=0.01
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --seed=*) SEED=${1#*=}; shift ;;
        --only) ONLY=${2:?--only needs tresor or restic}; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --restore-fs) RESTORE_FS=${2:?--restore-fs needs ordinary or fresh}; shift 2 ;;
        --restore-fs=*) RESTORE_FS=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "docs-vs-restic: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
case "$ONLY" in
    both) TOOLS=(tresor restic) ;;
    tresor|restic) TOOLS=("$ONLY") ;;
    *) echo "docs-vs-restic: --only takes tresor or restic, not '$ONLY'" >&2; exit 2 ;;
esac
[[ "$RESTORE_FS" == ordinary || "$RESTORE_FS" == fresh ]] \
    || { echo "docs-vs-restic: --restore-fs takes ordinary or fresh, not '$RESTORE_FS'" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "docs-vs-restic: --seed must be a non-negative integer" >&2; exit 2; }

die() { echo "docs-vs-restic: $*" >&2; exit 1; }
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
has() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$HERE/work
mkdir -p "$WORK"

# One run at a time: the run directory is shared.
exec 9>"$WORK/.lock"
flock -n 9 || die "another docs-vs-restic run holds $WORK/.lock"

# ---------------------------------------------------------------- prerequisites

need_pkg() { # need_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing $2 (for $1)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; } \
            || die "could not install $2"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing (apt-get install -y $2)"
}
need_pkg python3 python3
need_pkg zstd zstd
need_pkg tar tar
[[ -x /usr/bin/time ]] || need_pkg /usr/bin/time time
has restic && need_pkg restic restic

SCALE=$(python3 -c 'import sys; s=float(sys.argv[1]); assert s > 0; print("%g" % s)' "$SCALE" 2>/dev/null) \
    || die "--scale must be a positive number"

TRESOR=""
if has tresor; then
    if [[ -n "${TRESOR_BIN:-}" ]]; then
        TRESOR=$(realpath -m -- "$TRESOR_BIN")
        [[ -x "$TRESOR" ]] || die "TRESOR_BIN=$TRESOR_BIN is not an executable file (use --only restic to skip Tresor)"
    else
        TRESOR=$ROOT/.build/release/tresor
        if [[ ! -x "$TRESOR" ]]; then
            command -v swift >/dev/null 2>&1 \
                || die "tresor binary missing at $TRESOR and swift is not installed; set TRESOR_BIN or use --only restic"
            say "tresor binary missing at $TRESOR: swift build -c release --static-swift-stdlib"
            (cd "$ROOT" && swift build -c release --static-swift-stdlib) || die "swift build -c release failed"
            [[ -x "$TRESOR" ]] || die "swift build -c release did not produce $TRESOR"
        fi
    fi
fi

# ---------------------------------------------------------------- corpus (cached)

source "$HERE/lib.sh"
ensure_corpus

# ---------------------------------------------------------------- run directory

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$WORK/run
LOGS=$WORK/logs-$STAMP
RESULTS_TSV=$LOGS/results.tsv
JSON_OUT=$WORK/results-$STAMP.json
CORPUS=$RUN/corpus
# ext4 without a journal (this machine's root filesystem) does not reuse an inode freed less
# than 60 s ago, or 360 s while its inode table block is dirty: each file a tool creates then
# scans past the recently freed ones (recently_deleted() in perf, most of a restore's system time
# right after tens of thousands of deletions). A sync after the deletion does not end the longer
# window: the restore itself dirties the inode table blocks it allocates in. Measured on
# 2026-12-01 (08:00-08:04 UTC, two back-to-back runs that waited only 61 s): Tresor's restore took
# 1.86 s in the first run and 4.16 s in the second, which followed the first run's deletion of
# its 20,000-file run directory by about 90 s; restic, restoring second, did not slow down. So
# remove_tree marks the time of every large deletion (over 1,000 files) in $WORK, for this run
# and the next, and no timed restore starts within 361 s of a marked deletion, or 61 s of this
# run's own start-up deletion: settle waits out what is left. Restores are deleted only after
# both tools ran.
LARGE_DELETION_MARK=$WORK/last-large-deletion
remove_tree() { # DIR
    local files=0
    [[ -e "$1" ]] && files=$(find "$1" -xdev | wc -l)
    rm -rf "$1"
    sync
    if (( files > 1000 )); then date +%s >"$LARGE_DELETION_MARK"; fi
    return 0
}
unmount_under "$RUN"   # restore filesystems a kept run left mounted
remove_tree "$RUN"
DELETED_AT=$(date +%s)
settle() {
    [[ "$RESTORE_FS" == ordinary ]] || return 0   # a new filesystem per restore has freed nothing
    local until=$(( DELETED_AT + 61 )) large
    if [[ -f "$LARGE_DELETION_MARK" ]]; then
        large=$(( $(cat "$LARGE_DELETION_MARK") + 361 ))
        (( large > until )) && until=$large
    fi
    local left=$(( until - $(date +%s) ))
    if (( left > 0 )); then
        say "waiting ${left} s: ext4 skips inodes freed shortly before (see settle)"
        sleep "$left"
    fi
}
mkdir -p "$RUN" "$LOGS"
: >"$RESULTS_TSV"

say "copying the pristine corpus to $CORPUS (cp -a; the cache is never modified)"
cp -a "$PRISTINE" "$CORPUS"

TRESOR_HOME=$RUN/tresor-home
TRESOR_REPO=$RUN/tresor-repo
RESTIC_REPO=$RUN/restic-repo
export RESTIC_PASSWORD=bench
export RESTIC_CACHE_DIR=$RUN/restic-cache

dir_bytes() { if [[ -d "$1" ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }

# Listing of file contents and directory names, relative to a tree root, in a stable order.

# record STEP TOOL STATUS WALL_S RSS_KB REPO_BYTES AUX_BYTES CORPUS_BYTES NOTE
# (AUX_BYTES: Tresor's home directory, restic's cache directory.)
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS_TSV"; }

declare -A FAILED=()

# measure STEP TOOL COMMAND... : run under GNU time, stdin from /dev/null, output to the log.
# Sets WALL and RSS; returns the command's status.
measure() {
    local step=$1 tool=$2; shift 2
    local log=$LOGS/$tool-$step.log tf=$LOGS/$tool-$step.time t0 t1 rc=0
    printf '$ %s\n' "$*" >"$log"
    t0=$(date +%s%N)
    /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null >>"$log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    RSS=$(tail -n1 "$tf" 2>/dev/null | awk '{print $2}')
    [[ -n "$RSS" ]] || RSS=0
    if [[ $rc -ne 0 ]]; then
        say "FAILED ($rc): $*"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
    return $rc
}

# setup TOOL NAME COMMAND... : untimed, logged, must succeed.
setup() {
    local tool=$1 name=$2; shift 2
    local log=$LOGS/$tool-setup-$name.log
    printf '$ %s\n' "$*" >"$log"
    if ! "$@" </dev/null >>"$log" 2>&1; then
        say "FAILED: $*"
        tail -n 20 "$log" | sed 's/^/    /'
        return 1
    fi
}

fail_tool() { # fail_tool TOOL STEP
    FAILED[$1]=1
    record "$2" "$1" failed "$WALL" "$RSS" "" "" "" "see $LOGS/$1-$2.log"
}

# Where inside a restore target the corpus landed (tools differ: restic keeps the absolute path).
restored_root() {
    local dir=$1 sentinel=$2 c
    for c in "$dir$CORPUS" "$dir/$(basename "$CORPUS")" "$dir"; do
        if [[ -f "$c/$sentinel" ]]; then echo "$c"; return 0; fi
    done
    return 1
}

# ---------------------------------------------------------------- tool steps

tool_init() {
    case "$1" in
        tresor)
            mkdir -p "$TRESOR_REPO"
            setup tresor init "$TRESOR" --home "$TRESOR_HOME" init &&
            setup tresor store "$TRESOR" --home "$TRESOR_HOME" store add local \
                --url "file://$TRESOR_REPO" --region eu &&
            setup tresor tenant "$TRESOR" --home "$TRESOR_HOME" tenant add bench \
                --region eu --store local --docs "$CORPUS" ;;
        restic)
            setup restic init restic -r "$RESTIC_REPO" init --repository-version 2 ;;
    esac
}

tool_backup() { # TOOL STEP
    case "$1" in
        tresor) measure "$2" tresor "$TRESOR" --home "$TRESOR_HOME" docs backup bench ;;
        restic) measure "$2" restic restic -r "$RESTIC_REPO" backup "$CORPUS" ;;
    esac
}

tool_restore() { # TOOL TARGET
    case "$1" in
        tresor) measure restore tresor "$TRESOR" --home "$TRESOR_HOME" docs restore bench --to "$2" ;;
        restic) measure restore restic restic -r "$RESTIC_REPO" restore latest --target "$2" ;;
    esac
}

tool_check() {
    case "$1" in
        tresor) measure check tresor "$TRESOR" --home "$TRESOR_HOME" check bench --read-data ;;
        restic) measure check restic restic -r "$RESTIC_REPO" check --read-data ;;
    esac
}

repo_of() { case "$1" in tresor) echo "$TRESOR_REPO" ;; restic) echo "$RESTIC_REPO" ;; esac; }
aux_of() { case "$1" in tresor) echo "$TRESOR_HOME" ;; restic) echo "$RESTIC_CACHE_DIR" ;; esac; }

# Tools alternate who goes first from one step to the next, so slow drift on the shared
# machine does not always favour the same tool.
order() { # STEP_INDEX
    if (( $1 % 2 == 0 )); then printf '%s\n' "${TOOLS[@]}"; else printf '%s\n' "${TOOLS[@]}" | tac; fi
}

# ---------------------------------------------------------------- run

say "scale=$SCALE seed=$SEED tools=${TOOLS[*]} work=$WORK logs=$LOGS"
INITIAL_BYTES=$(tree_bytes "$CORPUS")
INITIAL_FILES=$(tree_files "$CORPUS")
say "corpus: $INITIAL_FILES files, $INITIAL_BYTES bytes"

# zstd ceiling on the same bytes.
TAR_BYTES=$(stat -c %s "$TARBALL")
warm "$TARBALL"
say "zstd -3 -T2 over the corpus tar ($TAR_BYTES bytes)"
measure zstd zstd sh -c 'exec zstd -q -3 -T2 -c "$1" >/dev/null' sh "$TARBALL" \
    || die "zstd failed"
ZSTD_WALL=$WALL ZSTD_RSS=$RSS
ZSTD_OUT=$(zstd -q -3 -T2 -c "$TARBALL" | wc -c)
record zstd zstd ok "$ZSTD_WALL" "$ZSTD_RSS" "$ZSTD_OUT" "" "$TAR_BYTES" "repo_bytes: zstd output size"

for t in "${TOOLS[@]}"; do
    say "$t: init"
    tool_init "$t" || { FAILED[$t]=1; record init "$t" failed "" "" "" "" "" "see $LOGS/$t-setup-*.log"; }
done

# Step 0: initial backup.
for t in $(order 0); do
    [[ -n "${FAILED[$t]:-}" ]] && continue
    warm "$CORPUS"
    say "$t: initial backup"
    if tool_backup "$t" initial; then
        record initial "$t" ok "$WALL" "$RSS" "$(dir_bytes "$(repo_of "$t")")" \
            "$(dir_bytes "$(aux_of "$t")")" "$INITIAL_BYTES" ""
    else
        fail_tool "$t" initial
    fi
done

# Mutation happens once, after every tool's initial backup, on the shared working copy.
python3 "$HERE/mutate.py" "$CORPUS" --seed "$MUTATE_SEED" --fraction "$MUTATE_FRACTION" | tee "$LOGS/mutate.log"
sync
DELETED_AT=$(date +%s)   # mutate.py deletes files too
FINAL_BYTES=$(tree_bytes "$CORPUS")
FINAL_FILES=$(tree_files "$CORPUS")
EXPECTED=$LOGS/expected.listing
listing "$CORPUS" >"$EXPECTED"
SENTINEL=$(awk '!/^dir / {sub(/^[0-9a-f]+  \.\//, ""); print; exit}' "$EXPECTED")

# Step 1: incremental backup.
for t in $(order 1); do
    [[ -n "${FAILED[$t]:-}" ]] && continue
    warm "$CORPUS"
    say "$t: incremental backup"
    if tool_backup "$t" incremental; then
        record incremental "$t" ok "$WALL" "$RSS" "$(dir_bytes "$(repo_of "$t")")" \
            "$(dir_bytes "$(aux_of "$t")")" "$FINAL_BYTES" ""
    else
        fail_tool "$t" incremental
    fi
done

# Step 2: restore the latest snapshot into a fresh filesystem (lib.sh), after reading the
# repository once, then verify it (untimed).
trap unmount_all EXIT
MISMATCH=0
VERIFIED=()
for t in $(order 2); do
    [[ -n "${FAILED[$t]:-}" ]] && continue
    fresh_restore_target "$RUN/restore-$t" "$FINAL_BYTES"
    target=$RESTORE_TARGET
    warm "$(repo_of "$t")"
    settle
    say "$t: restore"
    if tool_restore "$t" "$target"; then
        r_wall=$WALL r_rss=$RSS
        if root=$(restored_root "$target" "$SENTINEL") && listing "$root" >"$LOGS/$t-restore.listing" \
            && cmp -s "$EXPECTED" "$LOGS/$t-restore.listing"; then
            say "$t: restore verified byte-identical (corpus found at $root)"
            record restore "$t" ok "$r_wall" "$r_rss" "" "" "$FINAL_BYTES" "verified byte-identical"
            VERIFIED+=("$target")
        else
            say "$t: RESTORE MISMATCH (expected $EXPECTED, got $LOGS/$t-restore.listing)"
            [[ -f "$LOGS/$t-restore.listing" ]] \
                && { diff "$EXPECTED" "$LOGS/$t-restore.listing" | head -n 20 | sed 's/^/    /' || true; }
            record restore "$t" mismatch "$r_wall" "$r_rss" "" "" "$FINAL_BYTES" "restore differs from corpus"
            FAILED[$t]=1
            MISMATCH=1
        fi
    else
        fail_tool "$t" restore
    fi
done
# Deleted only now, so the other tool's restore did not follow 20 000 deletions (see settle).
if [[ $KEEP -eq 0 ]]; then for d in "${VERIFIED[@]}"; do remove_tree "$d"; done; fi

# The disk's sequential write time for the restored bytes, on the restore's filesystem: the limit
# a durable restore (Tresor syncs before it returns) is compared with.
DD_BS=$((4 << 20))
DD_COUNT=$(( (FINAL_BYTES + DD_BS - 1) / DD_BS ))
fresh_restore_target "$RUN/restore-dd" "$FINAL_BYTES"
say "dd oflag=direct: $DD_COUNT x $DD_BS bytes"
if measure dd dd dd if=/dev/zero of="$RESTORE_TARGET/dd.bin" bs=$DD_BS count=$DD_COUNT oflag=direct conv=fsync; then
    record dd dd ok "$WALL" "$RSS" "" "" "$((DD_BS * DD_COUNT))" "dd oflag=direct conv=fsync"
fi
rm -rf "$RUN/restore-dd"

# Step 3: check --read-data.
for t in $(order 3); do
    [[ -n "${FAILED[$t]:-}" ]] && continue
    warm "$(repo_of "$t")"
    say "$t: check --read-data"
    if tool_check "$t"; then
        record check "$t" ok "$WALL" "$RSS" "" "" "$FINAL_BYTES" ""
    else
        fail_tool "$t" check
    fi
done

# ---------------------------------------------------------------- report

VERSIONS=$LOGS/versions.txt
{
    echo "zstd: $(zstd --version 2>&1 | head -n1)"
    has restic && echo "restic: $(restic version 2>&1 | head -n1)"
    has tresor && echo "tresor: $("$TRESOR" --version 2>&1 | head -n1 || true) ($TRESOR)"
    echo "host: $(uname -srm), $(nproc) cpus, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
} >"$VERSIONS" 2>/dev/null || true

python3 - "$RESULTS_TSV" "$JSON_OUT" "$VERSIONS" "$STAMP" "$SCALE" "$SEED" "$ONLY" \
    "$INITIAL_FILES" "$INITIAL_BYTES" "$FINAL_FILES" "$FINAL_BYTES" "$TAR_BYTES" \
    "$MUTATE_SEED" "$MUTATE_FRACTION" "$LOGS" "$(order 0 | paste -sd,)" "$RESTORE_FS" <<'PY'
import json, sys

(tsv, json_out, versions, stamp, scale, seed, only, init_files, init_bytes, final_files,
 final_bytes, tar_bytes, mseed, mfrac, logs, first_order, restore_fs) = sys.argv[1:]
rows = {}
for line in open(tsv, encoding="utf-8"):
    step, tool, status, wall, rss, repo, aux, cbytes, note = line.rstrip("\n").split("\t")
    f = lambda x, conv: conv(x) if x not in ("", None) else None
    rows[(step, tool)] = dict(step=step, tool=tool, status=status, wall_s=f(wall, float),
                              peak_rss_kb=f(rss, int), repo_bytes=f(repo, int), aux_bytes=f(aux, int),
                              corpus_bytes=f(cbytes, int), note=note)
    r = rows[(step, tool)]
    if r["status"] == "ok" and r["wall_s"] and r["corpus_bytes"]:
        r["throughput_mb_s"] = r["corpus_bytes"] / 1e6 / r["wall_s"]

MB = 1e6
steps = [("initial", "initial backup", 3.0), ("incremental", "incremental backup", 3.0),
         ("restore", "restore latest", 2.5), ("check", "check --read-data", 1.5)]
RSS_TARGET, SIZE_TARGET = 1.0, 1.05

def get(step, tool):
    r = rows.get((step, tool))
    return r if r and r["status"] == "ok" else None

def verdict(ok):
    return "" if ok is None else ("PASS" if ok else "MISS")

table, summary = [], []
def add(label, a, b, ratio, target, ok):
    table.append((label, a, b, ratio, target, verdict(ok)))

def cell_time(r):
    if r is None:
        return "-"
    return "%.2f s  %7.1f MB/s" % (r["wall_s"], r.get("throughput_mb_s", 0))

def status_cell(step, tool):
    r = rows.get((step, tool))
    if r is None:
        return "-"
    return r["status"].upper() if r["status"] != "ok" else None

for step, label, target in steps:
    t, r = get(step, "tresor"), get(step, "restic")
    ct = status_cell(step, "tresor") or cell_time(t)
    cr = status_cell(step, "restic") or cell_time(r)
    ratio = (r["wall_s"] / t["wall_s"]) if t and r and t["wall_s"] > 0 else None
    add(label + " time", ct, cr, "%.2fx" % ratio if ratio else "-", ">= %.1fx" % target,
        None if ratio is None else ratio >= target)
    summary.append(dict(step=step, target_speed_ratio=target, speed_ratio=ratio,
                        pass_speed=None if ratio is None else ratio >= target))
    rt = t["peak_rss_kb"] if t else None
    rr = r["peak_rss_kb"] if r else None
    rss_ratio = rt / rr if rt and rr else None
    add("  peak RSS", "%.0f MiB" % (rt / 1024) if rt else "-", "%.0f MiB" % (rr / 1024) if rr else "-",
        "%.2f" % rss_ratio if rss_ratio else "-", "<= 1.00", None if rss_ratio is None else rss_ratio <= RSS_TARGET)
    summary[-1].update(rss_ratio=rss_ratio, pass_rss=None if rss_ratio is None else rss_ratio <= RSS_TARGET)
    if step in ("initial", "incremental"):
        st = t["repo_bytes"] if t else None
        sr = r["repo_bytes"] if r else None
        size_ratio = st / sr if st and sr else None
        add("  repo size", "%.1f MB" % (st / MB) if st else "-", "%.1f MB" % (sr / MB) if sr else "-",
            "%.3f" % size_ratio if size_ratio else "-", "<= 1.05",
            None if size_ratio is None else size_ratio <= SIZE_TARGET)
        summary[-1].update(repo_size_ratio=size_ratio,
                           pass_repo_size=None if size_ratio is None else size_ratio <= SIZE_TARGET)

peak = {}
for tool in ("tresor", "restic"):
    vals = [r["peak_rss_kb"] for (s, tl), r in rows.items() if tl == tool and r["peak_rss_kb"] and s != "zstd"]
    peak[tool] = max(vals) if vals else None
overall_rss = peak["tresor"] / peak["restic"] if peak["tresor"] and peak["restic"] else None
add("peak RSS, all steps", "%.0f MiB" % (peak["tresor"] / 1024) if peak["tresor"] else "-",
    "%.0f MiB" % (peak["restic"] / 1024) if peak["restic"] else "-",
    "%.2f" % overall_rss if overall_rss else "-", "<= 1.00",
    None if overall_rss is None else overall_rss <= RSS_TARGET)

d, tr = rows.get(("dd", "dd")), get("restore", "tresor")
durable = None
if d and d["status"] == "ok" and tr:
    durable = tr["wall_s"] / d["wall_s"]
    add("durable restore / dd", "%.2f s" % tr["wall_s"], "dd %.2f s" % d["wall_s"], "%.2f" % durable, "<= 1.3",
        durable <= 1.3)
summary.append(dict(step="restore-vs-dd", target_ratio=1.3, ratio=durable,
                    dd_wall_s=d["wall_s"] if d else None, pass_ratio=None if durable is None else durable <= 1.3))

z = rows.get(("zstd", "zstd"))
zstd = None
if z:
    zstd = dict(wall_s=z["wall_s"], peak_rss_kb=z["peak_rss_kb"], input_bytes=int(tar_bytes),
                output_bytes=z["repo_bytes"], throughput_mb_s=int(tar_bytes) / MB / z["wall_s"])

print()
print("docs-vs-restic  %s  scale=%s seed=%s  corpus: %s files, %.1f MB (after mutation: %s files, %.1f MB)"
      % (stamp, scale, seed, init_files, int(init_bytes) / MB, final_files, int(final_bytes) / MB))
if zstd:
    print("zstd -3 -T2 ceiling: %.1f MB/s of input (%.2f s for %.1f MB tar; output %.1f MB, ratio %.2f)"
          % (zstd["throughput_mb_s"], zstd["wall_s"], zstd["input_bytes"] / MB, zstd["output_bytes"] / MB,
             zstd["input_bytes"] / zstd["output_bytes"]))
ceiling = {}
if zstd:
    # The same bytes through zstd -3 on both cores: no pipeline that compresses them at that
    # level can be faster, so this is the limit an initial backup is compared with.
    for tool in ("tresor", "restic"):
        r = get("initial", tool)
        if r:
            ceiling[tool] = dict(wall_s=r["wall_s"], time_over_ceiling=r["wall_s"] / zstd["wall_s"],
                                 share_of_ceiling_throughput=r["throughput_mb_s"] / zstd["throughput_mb_s"])
            print("initial backup against the zstd ceiling, %s: %.2f s = %.2fx the ceiling's %.2f s (%.0f%% of its throughput)"
                  % (tool, r["wall_s"], ceiling[tool]["time_over_ceiling"], zstd["wall_s"],
                     100 * ceiling[tool]["share_of_ceiling_throughput"]))
print()
w = [max(len(str(row[i])) for row in table + [("step", "tresor", "restic", "ratio", "target", "")])
     for i in range(6)]
hdr = ("step", "tresor", "restic", "ratio", "target", "")
fmt = "  ".join("%%-%ds" % x for x in w)
print(fmt % hdr)
print("  ".join("-" * x for x in w))
for row in table:
    print(fmt % row)
print()
print("ratio: time = restic / tresor (>1 means Tresor is faster); RSS and repo size = tresor / restic;")
print("durable restore / dd = Tresor's restore (synced to disk before it returns) / dd oflag=direct conv=fsync of as many bytes.")
print("restore target: %s" % ("a new directory on the run directory's filesystem after sync, caches as they were"
                              if restore_fs == "ordinary" else "a new loop-mounted ext4 per restore, after sync and drop_caches"))
print("throughput = corpus bytes / wall time (MB = 10^6 bytes); restore verified byte-identical, untimed.")
print("Warm cache: the page cache cannot be flushed here, so every timed step ran warm: the corpus was")
print("read once (tar | cat) before each backup and the repository before each restore and check.")
print("Tools ran one after the other, never concurrently; first tool alternates per step (step 1: %s)."
      % first_order)
print("One run on a shared, noisy machine: compare the ratios within this run, not absolute times across runs.")

doc = dict(
    timestamp=stamp, scale=float(scale), seed=int(seed), only=only,
    versions=[l.strip() for l in open(versions, encoding="utf-8") if l.strip()],
    corpus=dict(initial_files=int(init_files), initial_bytes=int(init_bytes),
                final_files=int(final_files), final_bytes=int(final_bytes),
                mutation=dict(seed=int(mseed), fraction=float(mfrac))),
    conditions="warm page cache (flush impossible); corpus read before each backup, repository before "
               "each restore/check; tools sequential, order alternating per step",
    zstd_ceiling=zstd,
    initial_vs_ceiling=ceiling,
    steps=[r for (s, t), r in rows.items() if s != "zstd"],
    ratios=summary, peak_rss_kb=peak, peak_rss_ratio=overall_rss,
    restore_fs=restore_fs,
    targets=dict(initial=">= 3x", incremental=">= 3x", restore=">= 2.5x", restore_vs_dd="<= 1.3", check=">= 1.5x",
                 peak_rss="tresor <= restic", repo_size="tresor <= 1.05 x restic"),
    logs=logs,
)
with open(json_out, "w", encoding="utf-8") as fh:
    json.dump(doc, fh, indent=2, ensure_ascii=False)
print("results: %s" % json_out)
PY

STATUS=0
for t in "${TOOLS[@]}"; do
    if [[ -n "${FAILED[$t]:-}" ]]; then
        echo "docs-vs-restic: $t failed (logs in $LOGS)" >&2
        STATUS=1
    fi
done
[[ $MISMATCH -eq 0 ]] || STATUS=1

if [[ $STATUS -eq 0 && $KEEP -eq 0 ]]; then
    unmount_all
    remove_tree "$RUN"
else
    say "kept $RUN for inspection"
fi
exit $STATUS
