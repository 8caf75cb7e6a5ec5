#!/usr/bin/env bash
# Bit-flip harness (not in CI): builds a small repository (documents, two snapshots, and WAL
# objects pushed with `pg wal-push`), then, one at a time, flips one random bit of one random
# object in a fresh copy of the store and runs `tresor check --read-data`. Reports, per object
# kind, the share of flips that were detected, named (the object's name appears in the report)
# and answered with exit 3, and the crashes (exit >= 128 or a timeout).
#
#   bash Benchmarks/bitflip.sh [--flips 200] [--seed 1] [--keep]
#
# TRESOR_BIN: the binary (default .build/debug/tresor, built if missing).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
FLIPS=200
SEED=1
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --flips) FLIPS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "usage: $0 [--flips N] [--seed N] [--keep]" >&2; exit 2 ;;
    esac
done
BIN=${TRESOR_BIN:-$ROOT/.build/debug/tresor}
if [[ ! -x "$BIN" ]]; then
    if [[ -n "${TRESOR_BIN:-}" ]]; then echo "TRESOR_BIN=$BIN does not exist" >&2; exit 2; fi
    (cd "$ROOT" && swift build --product tresor)
fi
WORK=$(mktemp -d /tmp/tresor-bitflip.XXXXXX)
if [[ $KEEP == 0 ]]; then trap 'rm -rf "$WORK"' EXIT; fi
say() { echo "bitflip: $*" >&2; }

HOME_DIR=$WORK/home
STORE=$WORK/store
T() { "$BIN" --home "$HOME_DIR" "$@"; }
say "building the repository in $WORK"
python3 "$HERE/corpus.py" "$WORK/docs" --seed "$SEED" --scale 0.003 >/dev/null
T init >/dev/null
T store add local --url "file://$STORE" --region eu >/dev/null
T tenant add acme --region eu --store local --docs "$WORK/docs" >/dev/null
T docs backup acme >/dev/null
echo "changed" > "$WORK/docs/changed-after-first-backup.txt"
T docs backup acme >/dev/null

# WAL objects: pg setup writes the WAL key for the OS user; wal-push archives files named like
# segments (the archive does not read a segment's contents to store it).
WAL_NOTE="included"
if T pg setup acme --os-user "$(id -un)" >/dev/null 2>"$WORK/pg-setup.err"; then
    for i in 1 2 3; do
        f=$WORK/00000001000000000000000$i
        head -c $((1 << 20)) /dev/urandom > "$f"
        T pg wal-push acme "$f" >/dev/null
    done
else
    WAL_NOTE="NOT included: pg setup failed: $(head -1 "$WORK/pg-setup.err")"
fi
say "wal objects: $WAL_NOTE"

set +e
T check acme --read-data >"$WORK/baseline.out" 2>&1
base=$?
set -e
if [[ $base != 0 ]]; then
    say "the undamaged repository does not pass check (exit $base):"; cat "$WORK/baseline.out" >&2; exit 1
fi
cp -a "$STORE" "$WORK/pristine"

python3 - "$BIN" "$HOME_DIR" "$STORE" "$WORK/pristine" "$FLIPS" "$SEED" <<'PY'
import os, random, shutil, subprocess, sys, collections
bin_, home, store, pristine, flips, seed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
rng = random.Random(seed)
tenant = os.path.join(pristine, "tenants", "acme")
kinds = collections.OrderedDict()
for kind, sub in [("pack", "data"), ("index", "index"), ("snapshot", "snapshots"), ("key envelope", "keys"), ("wal", "wal"), ("config", "config")]:
    files = [os.path.relpath(os.path.join(tenant, sub), pristine)] if os.path.isfile(os.path.join(tenant, sub)) else []
    for d, _, names in os.walk(os.path.join(tenant, sub)):
        files += [os.path.relpath(os.path.join(d, n), pristine) for n in names]
    if files:
        kinds[kind] = sorted(files)
stats = {k: collections.Counter() for k in kinds}
examples = collections.defaultdict(list)
for i in range(flips):
    kind = rng.choice(list(kinds))
    rel = rng.choice(kinds[kind])
    shutil.rmtree(store)
    shutil.copytree(pristine, store, symlinks=True)
    path = os.path.join(store, rel)
    data = bytearray(open(path, "rb").read())
    bit = rng.randrange(len(data) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    open(path, "wb").write(data)
    try:
        p = subprocess.run([bin_, "--home", home, "--json", "check", "acme", "--read-data"],
                           capture_output=True, text=True, timeout=300)
        code, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        code, out = -1, "timeout"
    named = (rel if kind == "config" else os.path.basename(rel)) in out
    if code < 0 or code >= 128:
        outcome = "crash"
    elif code == 3 and named:
        outcome = "ok"
    elif code == 3:
        outcome = "exit 3, not named"
    elif code == 0:
        outcome = "undetected"
    else:
        outcome = "exit %d" % code
    stats[kind][outcome] += 1
    if outcome != "ok" and len(examples[kind]) < 3:
        examples[kind].append("%s bit %d: %s: %s" % (rel, bit, outcome, out.strip().splitlines()[-1][:200] if out.strip() else ""))
total = collections.Counter()
print("%-13s %6s %10s %8s  other" % ("kind", "flips", "named+3", "crashes"))
for k, c in stats.items():
    n = sum(c.values())
    total.update(c)
    other = ", ".join("%s: %d" % (o, v) for o, v in sorted(c.items()) if o not in ("ok", "crash"))
    print("%-13s %6d %9.1f%% %8d  %s" % (k, n, 100.0 * c["ok"] / n if n else 0, c["crash"], other))
n = sum(total.values())
print("%-13s %6d %9.1f%% %8d" % ("all", n, 100.0 * total["ok"] / n if n else 0, total["crash"]))
for k, ex in examples.items():
    for e in ex:
        print("  example (%s): %s" % (k, e))
PY
