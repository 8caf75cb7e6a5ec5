#!/usr/bin/env bash
# Retention benchmark: `tresor retention apply` next to `restic forget --keep-daily 31 --prune`
# on the same 40-day history, in one run.
#
#   bash Benchmarks/retention-vs-restic.sh [--scale S] [--seed N] [--days 40]
#
# The corpus (corpus.py, cached like the other document benchmarks) is backed up by both tools
# once per day for --days days, mutate.py changing it between days (seed 100+day, 1 %); Tresor's
# clock and restic's --time carry the same day. Then both keep 31 daily snapshots and prune;
# each is timed with GNU time (wall seconds, peak RSS). State lives in Benchmarks/work/.
# TRESOR_BIN as in tresor-bin.sh (release binary, else debug).
set -euo pipefail
SCALE=0.05
SEED=1
DAYS=40
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --seed) SEED=${2:?}; shift 2 ;;
        --days) DAYS=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "retention-vs-restic: unknown argument: $1" >&2; exit 2 ;;
    esac
done
die() { echo "retention-vs-restic: $*" >&2; exit 1; }
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$HERE/work
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock -n 9 || die "another benchmark run holds $WORK/.lock"
command -v restic >/dev/null || die "restic is missing (apt-get install -y restic)"
[[ -x /usr/bin/time ]] || die "GNU time is missing (apt-get install -y time)"
source "$HERE/tresor-bin.sh"
source "$HERE/lib.sh"
ensure_corpus

RUN=$WORK/retention-run
rm -rf "$RUN"
mkdir -p "$RUN"
cp -a "$PRISTINE" "$RUN/corpus"
export RESTIC_PASSWORD=benchmark RESTIC_CACHE_DIR=$RUN/restic-cache
RESTIC_REPO=$RUN/restic-repo
T=("$BIN" --home "$RUN/home")
"${T[@]}" init >/dev/null
"${T[@]}" store add local --url "file://$RUN/store" --region bench >/dev/null
"${T[@]}" tenant add acme --region bench --store local --docs "$RUN/corpus" >/dev/null
restic -r "$RESTIC_REPO" init --repository-version 2 >/dev/null

day0=$(date -u -d 2026-01-01 +%s)
for ((d = 0; d < DAYS; d++)); do
    when=$((day0 + d * 86400 + 12 * 3600))
    [[ $d -gt 0 ]] && python3 "$HERE/mutate.py" "$RUN/corpus" --seed $((100 + d)) --fraction 0.01 >/dev/null
    "${T[@]}" --now "@$when" docs backup acme >/dev/null
    restic -r "$RESTIC_REPO" backup --quiet --time "$(date -u -d "@$when" '+%Y-%m-%d %H:%M:%S')" "$RUN/corpus" >/dev/null
done
say "$DAYS daily snapshots in each repository ($(tree_files "$RUN/corpus") files, $(tree_bytes "$RUN/corpus") bytes)"
now=$((day0 + (DAYS - 1) * 86400 + 20 * 3600))
before_t=$(du -sb "$RUN/store" | cut -f1)
before_r=$(du -sb "$RESTIC_REPO" | cut -f1)
/usr/bin/time -f '%e %M' -o "$RUN/time-tresor" "${T[@]}" --now "@$now" retention apply acme >"$RUN/tresor.out"
# restic decides "daily" in local time: run it in UTC like Tresor.
TZ=UTC /usr/bin/time -f '%e %M' -o "$RUN/time-restic" restic -r "$RESTIC_REPO" forget --keep-daily 31 --prune >"$RUN/restic.out"
read -r tw tm <"$RUN/time-tresor"
read -r rw rm_ <"$RUN/time-restic"
after_t=$(du -sb "$RUN/store" | cut -f1)
after_r=$(du -sb "$RESTIC_REPO" | cut -f1)
"${T[@]}" check acme --read-data >/dev/null || die "tresor check --read-data failed after retention"
printf '%-8s %10s %12s %14s %14s %10s\n' tool wall_s peak_rss_kib bytes_before bytes_after snapshots
printf '%-8s %10s %12s %14s %14s %10s\n' tresor "$tw" "$tm" "$before_t" "$after_t" \
    "$("${T[@]}" --json snapshots acme | grep -o '"kind"' | wc -l)"
printf '%-8s %10s %12s %14s %14s %10s\n' restic "$rw" "$rm_" "$before_r" "$after_r" \
    "$(restic -r "$RESTIC_REPO" snapshots --json | grep -o '"time"' | wc -l)"
