# Shared by the document benchmarks (sourced, not run). Expects HERE, WORK, SEED, SCALE and a
# `say` function; defines the corpus cache, tree helpers and fresh restore filesystems.

tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
tree_files() { find "$1" -type f | wc -l; }
# Reads a tree once so the page cache holds it (tar to /dev/null would skip the reads).
warm() { tar -cf - -C "$(dirname "$1")" "$(basename "$1")" | cat >/dev/null; }
# Directories, then every file's SHA-256, sorted: equal listings mean identical trees.
listing() {
    (cd "$1" && find . -type d | LC_ALL=C sort | sed 's/^/dir /' \
        && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# ensure_corpus: generates the seeded corpus once per (seed, scale, corpus.py) into
# $WORK/cache/<key>/corpus with a tar of it beside; sets PRISTINE and TARBALL.
ensure_corpus() {
    local gen_hash key stale
    gen_hash=$(sha256sum "$HERE/corpus.py" | cut -c1-12)
    key="seed$SEED-scale$SCALE-gen$gen_hash"
    CACHE=$WORK/cache/$key
    PRISTINE=$CACHE/corpus
    TARBALL=$CACHE/corpus.tar
    if [[ ! -f "$CACHE/.done" ]]; then
        # Entries for the same seed and scale made by an older corpus.py are stale: drop them.
        for stale in "$WORK/cache/seed$SEED-scale$SCALE-gen"*; do
            if [[ -e "$stale" && "$stale" != "$CACHE" ]]; then rm -rf "$stale"; fi
        done
        rm -rf "$CACHE"
        mkdir -p "$CACHE"
        say "generating corpus $key"
        python3 "$HERE/corpus.py" "$CACHE/corpus.tmp" --seed "$SEED" --scale "$SCALE"
        mv "$CACHE/corpus.tmp" "$PRISTINE"
        tar --sort=name --format=gnu -cf "$TARBALL.tmp" -C "$CACHE" corpus
        mv "$TARBALL.tmp" "$TARBALL"
        touch "$CACHE/.done"
    else
        say "using cached corpus $key"
    fi
}

# Restore targets. Run as root, each restore goes into a new ext4 filesystem of its own (a
# loop-mounted sparse file) after `sync` and dropping the page cache, so no tool inherits the
# filesystem state (ext4 inode allocation after large deletes) or dirty pages an earlier step
# left: perf showed most of a restore's time in the kernel, and without this the restore ratio
# swung between runs. A new filesystem's root holds lost+found, so tools restore into `data/`.
FRESH_FS=0
if [[ $(id -u) -eq 0 ]] && command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null; then FRESH_FS=1; fi
MOUNTS=()
unmount_all() { local m; for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done; MOUNTS=(); }
# Unmounts restore filesystems that a kept earlier run left under DIR.
unmount_under() { local m; for m in $(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts); do umount "$m" || true; done; }
# RESTORE_FS=ordinary (set by the caller) restores instead into a new directory on the filesystem
# the run directory is on, after `sync` and with the page cache left as it is: what a user's
# restore meets (issue 15's method).
# fresh_restore_target DIR BYTES: sets RESTORE_TARGET to DIR/data, on a new filesystem sized for
# BYTES when possible. (Not in a subshell: MOUNTS must remember the mount.)
fresh_restore_target() {
    local fs=$1 bytes=$2
    rm -rf "$fs" "$fs.img"; mkdir -p "$fs"
    if [[ "${RESTORE_FS:-fresh}" == ordinary ]]; then
        mkdir -p "$fs/data"; sync
        RESTORE_TARGET=$fs/data
        return 0
    fi
    if [[ $FRESH_FS -eq 1 ]]; then
        truncate -s $(( 3 * bytes / 1000000 + 512 ))M "$fs.img"
        if mkfs.ext4 -q -F "$fs.img" && mount -o loop "$fs.img" "$fs"; then MOUNTS+=("$fs"); else FRESH_FS=0; fi
    fi
    sync; if [[ $FRESH_FS -eq 1 ]]; then echo 3 > /proc/sys/vm/drop_caches; fi
    mkdir -p "$fs/data"
    RESTORE_TARGET=$fs/data
}
