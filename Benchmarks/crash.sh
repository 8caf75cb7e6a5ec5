#!/usr/bin/env bash
# Crash harness (not in CI): kill -9 at random points across `docs backup`, `replicate`,
# `store clean` and `keys rotate-master`; after each kill, the same command run again must
# complete (exit 0) and `check --read-data` must pass for the primary store and the offsite copy.
#
#   bash Benchmarks/crash.sh [--kills 50] [--seed 1] [--mb 40] [--keep]
#   bash Benchmarks/crash.sh --pg [--kills 20] [--seed 1] [--keep]
#
# With --pg it runs crash-pg.sh instead (as root): `pg stream` and `wal-push` killed at random
# points, the recovery window and a restore to --latest checked after each kill.
#
# A fresh home under Benchmarks/work/crash/ with two local stores (primary and offsite), one
# tenant whose documents (--mb MiB of random and text files) change a little before every
# backup. Round by round it takes the commands in turn, starts one, kills it with SIGKILL after a
# random delay (0 to 90% of its last measured duration), reruns it, then checks. It counts:
#   corrupt   rounds after which `check --read-data` (primary or offsite) did not exit 0
#   lost      snapshots listed before a kill that are missing afterwards
#   incomplete reruns that did not exit 0
# and prints one line: kills= killed_mid_run= corrupt= lost= incomplete= by_command=... (a kill
# that came after the command had already finished is counted in kills, not killed_mid_run).
# Exit 0 only when corrupt, lost and incomplete are all 0. Uses TRESOR_BIN, else the release
# binary, else the debug one.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
[[ ${1:-} == --pg ]] && { shift; exec bash "$HERE/crash-pg.sh" "$@"; }
KILLS=50; SEED=1; MB=40; KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --kills) KILLS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --mb) MB=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--kills N] [--seed N] [--mb N] [--keep]" >&2; exit 2 ;;
    esac
done
source "$HERE/tresor-bin.sh"
WORK=$HERE/work/crash
rm -rf "$WORK"; mkdir -p "$WORK/docs"
RANDOM=$SEED
say() { echo "== $*" >&2; }
t() { "$BIN" --home "$WORK/home" "$@"; }
LOG=$WORK/log.txt

# The corpus: random (incompressible) files and text files, in a few directories.
python3 - "$WORK/docs" "$MB" "$SEED" <<'PY'
import os, random, sys
root, mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
total = 0
i = 0
while total < mb << 20:
    d = os.path.join(root, f"dir{i % 7}")
    os.makedirs(d, exist_ok=True)
    size = rng.choice([2000, 30000, 300000, 3000000])
    data = rng.randbytes(size) if i % 2 else (" ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(size // 6))).encode()
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        f.write(data)
    total += size
    i += 1
PY
mutate() {
    python3 - "$WORK/docs" "$RANDOM" <<'PY'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
for p in rng.sample(files, max(1, len(files) // 20)):
    with open(p, "r+b") as f:
        f.seek(rng.randrange(max(1, os.path.getsize(p))))
        f.write(rng.randbytes(4096))
with open(os.path.join(root, f"new-{seed}.bin"), "wb") as f:
    f.write(rng.randbytes(rng.randrange(1000, 2000000)))
PY
}

t init >/dev/null
mkdir -p "$WORK/home/policies"
printf '[store]\nincomplete_upload_age = "2s"\n' >"$WORK/home/policies/zz-crash.toml"
t store add primary --url "file://$WORK/primary" --region eu >/dev/null
t store add off --url "file://$WORK/off" --region eu >/dev/null
t tenant add acme --region eu --store primary --docs "$WORK/docs" >/dev/null
t docs backup acme >/dev/null || { echo "first backup failed" >&2; exit 1; }
# More tenants (one small document each) so that a key rotation takes long enough to be killed
# in the middle.
for i in $(seq 1 40); do
    mkdir -p "$WORK/small/t$i"; echo "t$i" >"$WORK/small/t$i/a.txt"
    t tenant add "t$i" --region eu --store primary --docs "$WORK/small/t$i" >/dev/null
    t docs backup "t$i" >/dev/null || { echo "backup of t$i failed" >&2; exit 1; }
done
t replicate acme --to off >/dev/null || { echo "first replicate failed" >&2; exit 1; }

# The offsite copy is checked as its own installation's tenant: a second home whose only store
# is the offsite directory, sharing the master key file (rotation changes it in place).
mkdir -p "$WORK/home2"
"$BIN" --home "$WORK/home2" init >/dev/null
rm -f "$WORK/home2/keys/master.key"
ln -s "$WORK/home/keys/master.key" "$WORK/home2/keys/master.key"
"$BIN" --home "$WORK/home2" store add off --url "file://$WORK/off" --region eu >/dev/null
"$BIN" --home "$WORK/home2" tenant add acme --region eu --store off --docs "$WORK/docs" >/dev/null
check_off() {
    # The offsite home sees the previous key too while a rotation is unfinished.
    if [[ -e "$WORK/home/keys/master.key.previous" ]]; then
        ln -sf "$WORK/home/keys/master.key.previous" "$WORK/home2/keys/master.key.previous"
    else
        rm -f "$WORK/home2/keys/master.key.previous"
    fi
    "$BIN" --home "$WORK/home2" check acme --read-data
}

snapshots() { t --json snapshots acme | python3 -c 'import json,sys; print("\n".join(s["id"] for s in json.load(sys.stdin)))'; }
commands=("docs backup acme" "replicate acme --to off" "store clean primary" "keys rotate-master" "keys rotate-master --finish")
declare -A duration
for c in "${commands[@]}"; do duration[$c]=0.5; done
corrupt=0; lost=0; incomplete=0; mid=0
declare -A count
for round in $(seq 1 "$KILLS"); do
    c=${commands[$(( (round - 1) % ${#commands[@]} ))]}
    count[$c]=$(( ${count[$c]:-0} + 1 ))
    [[ $c == "docs backup acme" ]] && mutate
    # Leave temporaries for store clean to find: a backup killed a moment ago made some.
    before=$(snapshots)
    delay=$(python3 -c "import random; random.seed($RANDOM); print(round(random.uniform(0, 0.9 * ${duration[$c]}), 3))")
    start=$(date +%s.%N)
    # The binary itself in the background (not the shell function, whose subshell would be
    # what the kill hits while tresor runs on).
    # shellcheck disable=SC2086
    "$BIN" --home "$WORK/home" $c >>"$LOG" 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then killed=1; mid=$((mid + 1)); else killed=0; fi
    wait "$pid" 2>/dev/null
    rerun_start=$(date +%s.%N)
    # shellcheck disable=SC2086
    t $c >>"$LOG" 2>&1; rc=$?
    end=$(date +%s.%N)
    # --finish with nothing to finish is a usage error (2), not a failure.
    if [[ $rc -ne 0 && ! ( $c == "keys rotate-master --finish" && $rc -eq 2 ) ]]; then
        incomplete=$((incomplete + 1)); echo "round $round: rerun of '$c' exited $rc" | tee -a "$LOG" >&2
    fi
    # Kill points spread over the command's whole run: its last uninterrupted duration.
    [[ $killed -eq 0 ]] && duration[$c]=$(echo "$rerun_start - $start" | bc)
    [[ $killed -eq 1 ]] && duration[$c]=$(echo "if ($end - $rerun_start > ${duration[$c]}) $end - $rerun_start else ${duration[$c]}" | bc)
    t check acme --read-data >>"$LOG" 2>&1; rc1=$?
    t replicate acme --to off >>"$LOG" 2>&1
    check_off >>"$LOG" 2>&1; rc2=$?
    if [[ $rc1 -ne 0 || $rc2 -ne 0 ]]; then
        corrupt=$((corrupt + 1)); echo "round $round ('$c', killed after ${delay}s): check primary=$rc1 offsite=$rc2" | tee -a "$LOG" >&2
    fi
    after=$(snapshots)
    missing=$(comm -23 <(echo "$before" | sort) <(echo "$after" | sort) | grep -c . || true)
    lost=$((lost + missing))
    say "round $round: '$c' killed=$killed after ${delay}s; rerun=$rc check=$rc1/$rc2 lost=$missing"
done
by=""; for c in "${commands[@]}"; do by+="${c// /_}:${count[$c]:-0},"; done
echo "kills=$KILLS killed_mid_run=$mid corrupt=$corrupt lost=$lost incomplete=$incomplete by_command=${by%,}"
[[ $KEEP -eq 1 || $corrupt -ne 0 || $lost -ne 0 || $incomplete -ne 0 ]] || rm -rf "$WORK"
[[ $corrupt -eq 0 && $lost -eq 0 && $incomplete -eq 0 ]]
