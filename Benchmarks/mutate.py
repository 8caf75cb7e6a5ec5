#!/usr/bin/env python3
"""Deterministically modify a corpus tree in place, as a day of document edits would.

    python3 Benchmarks/mutate.py OUT_DIR [--seed 2] [--fraction 0.01]

Picks round(fraction * files) existing files (at least 1) and
  * appends to 45% of them (text to text files, random bytes to binary ones),
  * overwrites a region in place in 45% (same size afterwards),
  * deletes the remaining 10%;
adds new text files numbering 10% of the picked files (at least 1), and always
appends to one file of 1 MiB or more and overwrites the middle of another, so
that chunk-level incremental work is exercised even at small fractions.

Modified and added files, and the directories whose entries changed, get the
fixed mtime corpus.FIXED_MTIME + 1 day (so a size-preserving overwrite is still
visible to mtime-based change detection, and the result is reproducible). Files
are listed in sorted order, so the same tree, seed and fraction always give the
same result. A file with more than one hard link is replaced by a private copy
before it is changed, so a `cp -al` snapshot of the tree is never modified.
"""

import argparse
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402  (text pools and constants)

MUTATED_MTIME = corpus.FIXED_MTIME + 86400
BIG = corpus.MIB
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".html", ".csv", ".tsv", ".json", ".jsonl", ".log"}


def list_tree(root):
    files, dirs = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        dirs.append(rel)
        for name in filenames:
            files.append(os.path.join(rel, name))
    return sorted(files), sorted(dirs)


def kind_of(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in TEXT_SUFFIXES:
        return None
    return {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".log": "log"}.get(ext, "text")


def unshare(path):
    """Give path its own inode if it is hard-linked, keeping metadata."""
    if os.stat(path).st_nlink > 1:
        parent = os.path.dirname(path)
        pst = os.stat(parent)
        tmp = path + ".mutate-tmp"
        shutil.copy2(path, tmp)
        os.replace(tmp, path)
        os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns))  # the swap is not an edit


def payload(rng, pools, kind, n):
    return rng.randbytes(n) if kind is None else pools.text(rng, kind, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.01)
    a = ap.parse_args()
    root = a.out_dir
    if not os.path.isdir(root):
        sys.exit("mutate.py: %s is not a directory" % root)

    rng = random.Random(corpus.sub_seed(a.seed, "mutate"))
    pools = corpus.Pools(a.seed, lines_per_pool=5000)
    files, dirs = list_tree(root)
    if not files:
        sys.exit("mutate.py: %s has no files" % root)
    sizes = {f: os.path.getsize(os.path.join(root, f)) for f in files}

    n = max(1, round(a.fraction * len(files)))
    picked = rng.sample(files, min(n, len(files)))
    n_delete = max(1, round(len(picked) * 0.1)) if len(picked) >= 3 else 0
    n_append = (len(picked) - n_delete + 1) // 2
    n_overwrite = len(picked) - n_delete - n_append
    appends = picked[:n_append]
    overwrites = picked[n_append:n_append + n_overwrite]
    deletes = picked[n_append + n_overwrite:]
    big = [f for f in files if sizes[f] >= BIG and f not in picked]
    if big:
        f = rng.choice(big)
        appends.append(f)
        big.remove(f)
    if big:
        overwrites.append(rng.choice(big))

    touched_dirs = set()
    stats = {"appended": 0, "overwritten": 0, "deleted": 0, "added": 0,
             "bytes_appended": 0, "bytes_overwritten": 0, "bytes_deleted": 0, "bytes_added": 0}

    for f in appends:
        p = os.path.join(root, f)
        unshare(p)
        n = rng.randint(64 * 1024, 1024 * 1024) if sizes[f] >= BIG else rng.randint(100, 4096)
        with open(p, "ab") as fh:
            fh.write(payload(rng, pools, kind_of(f), n))
        os.utime(p, (MUTATED_MTIME, MUTATED_MTIME))
        stats["appended"] += 1
        stats["bytes_appended"] += n

    for f in overwrites:
        p = os.path.join(root, f)
        unshare(p)
        size = sizes[f]
        if size >= BIG:
            n = rng.randint(4096, 256 * 1024)
            off = size // 2 + rng.randrange(-size // 4, size // 4 + 1)
        else:
            n = rng.randint(16, 4096)
            off = rng.randrange(0, max(1, size))
        n = min(n, size)
        off = max(0, min(off, size - n))
        with open(p, "r+b") as fh:
            fh.seek(off)
            fh.write(payload(rng, pools, kind_of(f), n))
        os.utime(p, (MUTATED_MTIME, MUTATED_MTIME))
        stats["overwritten"] += 1
        stats["bytes_overwritten"] += n

    for f in deletes:
        os.unlink(os.path.join(root, f))
        touched_dirs.add(os.path.dirname(f))
        stats["deleted"] += 1
        stats["bytes_deleted"] += sizes[f]

    n_new = max(1, round(len(picked) * 0.1))
    for i in range(n_new):
        d = rng.choice(dirs)
        name = "new-%d-%03d %s.txt" % (a.seed, i, rng.choice(pools.words[:500]))
        p = os.path.join(root, d, name)
        if os.path.exists(p):
            continue
        size = rng.randint(1000, 30000)
        with open(p, "wb") as fh:
            fh.write(pools.text(rng, "text", size))
        os.utime(p, (MUTATED_MTIME, MUTATED_MTIME))
        touched_dirs.add(d)
        stats["added"] += 1
        stats["bytes_added"] += size

    for d in touched_dirs:
        os.utime(os.path.join(root, d) if d else root, (MUTATED_MTIME, MUTATED_MTIME))

    print("mutate: %s seed=%d fraction=%g of %d files: %s" % (
        root, a.seed, a.fraction, len(files),
        " ".join("%s=%d" % kv for kv in stats.items())))


if __name__ == "__main__":
    main()
