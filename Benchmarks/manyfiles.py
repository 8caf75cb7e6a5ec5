#!/usr/bin/env python3
"""Seeded, fast generator of N files totalling about B bytes, for the scaling benchmark.

    python3 Benchmarks/manyfiles.py OUT_DIR --files N --bytes B [--seed 1]
                                    [--random-fraction 0.0] [--jobs N]

Files sit in a two-level fan-out of directories (about 100 files per leaf directory, at most
100 leaves per parent), named d0000/d0000/f000000.txt. Sizes are uniform in [0.5, 1.5] x B/N
(at least 1 byte). A file is incompressible random bytes with probability --random-fraction,
else text-like: random bytes mapped onto a 16-character alphabet of letters, spaces and
newlines (about 4 bits of entropy per byte, so zstd halves it; no two files share a chunk).

Same seed and arguments give a byte-identical tree (each file has its own RNG seeded from
(seed, file number); every file and directory gets the mtime 2024-01-01T00:00:00Z), whatever
--jobs is. OUT_DIR must be missing or empty.

Prints one line: `files=N bytes=B dirs=D digest=HEX`, where the digest is SHA-256 over
(relative path, NUL, size, NUL, SHA-256 of contents) of every file in C-locale path order;
`manyfiles.py --digest DIR` computes the same digest of an existing tree (for verifying a restore).
"""

import argparse
import hashlib
import multiprocessing
import os
import random
import sys

FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z
PER_DIR = 100
PER_PARENT = 100
ALPHABET = b"etaoin shrdlu\ncm"  # 16 symbols: 4 bits of entropy per byte
TABLE = bytes(ALPHABET[i % 16] for i in range(256))


def layout(i):
    leaf = i // PER_DIR
    return "d%04d/d%04d/f%06d.txt" % (leaf // PER_PARENT, leaf % PER_PARENT, i)


def file_bytes(seed, i, avg, random_fraction):
    rng = random.Random(seed * 1_000_003 + i)
    size = max(1, int(avg * rng.uniform(0.5, 1.5)))
    data = rng.randbytes(size)
    if rng.random() >= random_fraction:
        data = data.translate(TABLE)
    return data


def work(args):
    out, seed, avg, random_fraction, lo, hi = args
    entries = []
    for i in range(lo, hi):
        rel = layout(i)
        data = file_bytes(seed, i, avg, random_fraction)
        path = os.path.join(out, rel)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        entries.append((rel, len(data), hashlib.sha256(data).hexdigest()))
    return entries


def combine(entries):
    h = hashlib.sha256()
    for rel, size, digest in sorted(entries, key=lambda e: e[0].encode()):
        h.update(rel.encode() + b"\0" + str(size).encode() + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()


def digest_dir(args):
    root, dirpath, names = args
    out = []
    for name in names:
        path = os.path.join(dirpath, name)
        with open(path, "rb") as fh:
            data = fh.read()
        out.append((os.path.relpath(path, root), len(data), hashlib.sha256(data).hexdigest()))
    return out


def digest_tree(root, jobs):
    tasks = [(root, dirpath, files) for dirpath, _dirs, files in os.walk(root) if files]
    entries = []
    with multiprocessing.Pool(jobs) as pool:
        for part in pool.imap_unordered(digest_dir, tasks, chunksize=16):
            entries.extend(part)
    return entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--files", type=int)
    ap.add_argument("--bytes", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--random-fraction", type=float, default=0.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--digest", action="store_true", help="print the digest of an existing tree OUT")
    a = ap.parse_args()
    if a.digest:
        entries = digest_tree(a.out, a.jobs)
        print("files=%d bytes=%d digest=%s" % (len(entries), sum(e[1] for e in entries), combine(entries)))
        return 0
    if not a.files or a.files < 1 or not a.bytes or a.bytes < 1:
        ap.error("--files and --bytes must be positive")
    if os.path.exists(a.out) and os.listdir(a.out):
        ap.error("%s is not empty" % a.out)
    os.makedirs(a.out, exist_ok=True)
    leaves = sorted({os.path.dirname(layout(i)) for i in range(0, a.files, PER_DIR)}
                    | {os.path.dirname(layout(a.files - 1))})
    for d in leaves:
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    avg = a.bytes / a.files
    step = max(1, min(20_000, a.files // (a.jobs * 4) or 1))
    tasks = [(a.out, a.seed, avg, a.random_fraction, lo, min(lo + step, a.files))
             for lo in range(0, a.files, step)]
    entries = []
    with multiprocessing.Pool(a.jobs) as pool:
        for part in pool.imap_unordered(work, tasks):
            entries.extend(part)
    dirs = set()
    for d in leaves:
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    for d in sorted(dirs, key=len, reverse=True) + [""]:
        p = os.path.join(a.out, d)
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    print("files=%d bytes=%d dirs=%d digest=%s" % (len(entries), sum(e[1] for e in entries), len(dirs), combine(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
