#!/usr/bin/env python3
"""Seeded, reproducible generator of a document-like corpus for backup benchmarks.

    python3 Benchmarks/corpus.py OUT_DIR [--seed 1] [--scale 1.0] [--jobs N]

At scale 1.0 the tree is about 1.5 GiB:

  * ~20,000 small text-like files (0.5-50 KB, log-uniform): prose (.txt/.md),
    CSV and JSON-lines content built from a seeded, Zipf-weighted word list,
    spread over ~300 nested directories, some with unicode names;
  * ~220 medium files (1-10 MiB, log-uniform): half incompressible (random bytes,
    named like photos/PDFs/archives), half compressible (text, CSV, JSON, logs);
  * 5 large files of 100 MiB: two incompressible, two compressible, one mixed
    (alternating 1 MiB runs of random bytes and text).

--scale multiplies the total size. Small and medium file counts (and the number
of directories) scale with it; below 1.0 the five large files keep their count
and shrink, above 1.0 their count grows. --scale 0.02 gives a ~27 MB smoke corpus.

Same seed and scale give a byte-identical tree: every file draws from its own
random.Random seeded from (seed, file number), the text pools depend on the seed
only, and every file and directory gets the same fixed mtime. Work is split over
--jobs processes (default: all cores); the output does not depend on --jobs.
"""

import argparse
import math
import os
import random
import sys
import time
import multiprocessing

FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z
KIB = 1024
MIB = 1024 * 1024

SMALL_COUNT = 20_000
SMALL_MIN, SMALL_MAX = 512, 50_000
MEDIUM_COUNT = 220
MEDIUM_MIN, MEDIUM_MAX = 1 * MIB, 10 * MIB
LARGE_COUNT = 5
LARGE_SIZE = 100 * MIB
DIR_COUNT = 300

IO_BLOCK = 4 * MIB  # generation and write unit for medium/large files

# A handful of real-world-looking unicode names (NFC), used for some directories and files.
UNICODE_NAMES = [
    "Bücher", "Réunions", "Año 2023", "資料", "Документы", "Ελληνικά", "naïve café",
    "Präsentationen", "Überweisungen", "Çalışma", "Zürich Büro", "Projets été",
    "会议记录", "テスト", "Ålesund", "Øvelser", "Straße", "📁 Archiv", "Niño", "Škola",
]
TOP_LEVEL = [
    "Projects", "Finance", "HR", "Legal", "Marketing", "Engineering", "Sales",
    "Operations", "Archive", "Shared", "Personal", "Research",
]
TEXT_EXT = [".txt", ".md", ".txt", ".md", ".rst", ".html"]
CSV_EXT = [".csv", ".tsv"]
JSON_EXT = [".json", ".jsonl"]
BINARY_EXT = [".jpg", ".png", ".pdf", ".zip", ".docx", ".xlsx", ".mp4", ".heic"]


def sub_seed(seed, *parts):
    """A stable integer seed for a sub-generator (str seeds hash with SHA-512 in CPython)."""
    return random.Random("/".join(str(p) for p in (seed,) + parts)).getrandbits(64)


# --------------------------------------------------------------------------- text pools

def make_words(rng, count=6000):
    """Pseudo-words from syllables, plus a few accented ones; Zipf weights by rank."""
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t",
              "v", "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr"]
    vowels = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "io", "ie"]
    codas = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng", "rt"]
    accented = ["é", "ü", "ö", "ä", "ñ", "ç", "ø", "å", "è", "ß"]
    words, seen = [], set()
    while len(words) < count:
        n = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n))
        if rng.random() < 0.03:
            i = rng.randrange(len(w))
            w = w[:i] + rng.choice(accented) + w[i + 1:]
        if w and w not in seen:
            seen.add(w)
            words.append(w)
    # Frequent words tend to be short, as in real languages: rank by length plus seeded jitter.
    jitter = {w: rng.uniform(0, 6) for w in words}
    words.sort(key=lambda w: (len(w) + jitter[w], w))
    weights = [1.0 / (rank + 1) ** 1.07 for rank in range(count)]
    cum, total = [], 0.0
    for x in weights:
        total += x
        cum.append(total)
    return words, cum


class Pools:
    """Pre-built lines of each content type; files are made by sampling whole lines."""

    def __init__(self, seed, lines_per_pool=60_000):
        rng = random.Random(sub_seed(seed, "pools"))
        self.words, cum = make_words(rng)
        n = lines_per_pool
        # One big draw of Zipf-distributed words, then cut into lines (no per-word Python loop
        # beyond the joins).
        stream = rng.choices(self.words, cum_weights=cum, k=n * 13)
        lens = [rng.randint(5, 21) for _ in range(n)]
        prose, pos = [], 0
        for i, ln in enumerate(lens):
            seg = stream[pos:pos + ln]
            pos = (pos + ln) % (len(stream) - 40)
            s = " ".join(seg)
            if i % 7 == 0:
                s += " %d" % rng.randrange(1, 100000)
            prose.append(s[0].upper() + s[1:] + (".\n" if i % 5 else ".\n\n"))
        self.prose = prose

        cats = self.words[200:240]
        csv = []
        for i in range(n):
            w = stream[(i * 5) % (len(stream) - 5):(i * 5) % (len(stream) - 5) + 4]
            csv.append("2%03d-%02d-%02d,%s,%s %s,%d.%02d,%s,%d\n" % (
                rng.randrange(0, 30), rng.randint(1, 12), rng.randint(1, 28),
                w[0], w[1].capitalize(), w[2].capitalize(),
                rng.randrange(0, 100000), rng.randrange(100), rng.choice(cats),
                rng.randrange(1, 10**7)))
        self.csv = csv

        js = []
        for i in range(n):
            w = stream[(i * 7) % (len(stream) - 8):(i * 7) % (len(stream) - 8) + 7]
            js.append('{"id": %d, "name": "%s %s", "tags": ["%s", "%s"], "score": %.4f, '
                      '"active": %s, "note": "%s %s %s"}\n' % (
                          rng.randrange(10**9), w[0], w[1], w[2], w[3], rng.random(),
                          "true" if rng.random() < 0.7 else "false", w[4], w[5], w[6]))
        self.json = js

        levels = ["INFO"] * 8 + ["DEBUG"] * 4 + ["WARN", "ERROR"]
        services = self.words[300:325]
        logs = []
        for i in range(n):
            w = stream[(i * 3) % (len(stream) - 8):(i * 3) % (len(stream) - 8) + 6]
            logs.append("2024-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s[%d]: %s %s %s id=%08x took=%dms\n" % (
                rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24), rng.randrange(60),
                rng.randrange(60), rng.randrange(1000), rng.choice(levels), rng.choice(services),
                rng.randrange(100, 9999), w[0], w[1], w[2], rng.getrandbits(32),
                rng.randrange(1, 5000)))
        self.log = logs

    def pool(self, kind):
        return {"text": self.prose, "csv": self.csv, "json": self.json, "log": self.log}[kind]

    def text(self, rng, kind, nbytes):
        """About nbytes of text (exactly nbytes once encoded) sampled line-wise from a pool."""
        pool = self.pool(kind)
        out, have = [], 0
        while have < nbytes:
            k = max(4, (nbytes - have) // 60 + 4)
            chunk = "".join(rng.choices(pool, k=k)).encode("utf-8")
            out.append(chunk)
            have += len(chunk)
        data = b"".join(out)
        return data[:nbytes]


# --------------------------------------------------------------------------- layout

def unique_name(base, taken):
    name, n = base, 2
    while name.casefold() in taken:
        name = "%s %d" % (base, n)
        n += 1
    taken.add(name.casefold())
    return name


def plan(seed, scale):
    """Directory list and file specs (relpath, kind, size, file_seed), all from the master RNG."""
    rng = random.Random(sub_seed(seed, "layout"))
    words, _ = make_words(random.Random(sub_seed(seed, "pools")))
    common = words[:800]

    n_dirs = max(40, round(DIR_COUNT * scale))
    dirs = [""]  # relative paths; "" is the root
    depth = {"": 0}
    children = {"": set()}
    for name in TOP_LEVEL[:min(len(TOP_LEVEL), max(3, n_dirs // 10))]:
        children[""].add(name.casefold())
        dirs.append(name)
        depth[name] = 1
        children[name] = set()
    while len(dirs) - 1 < n_dirs:
        candidates = [d for d in dirs[1:] if depth[d] < 5]
        parent = rng.choice(candidates)
        if len(dirs) % 12 == 0:  # every 12th directory has a unicode name
            base = rng.choice(UNICODE_NAMES)
        elif rng.random() < 0.3:
            base = "%s %s" % (rng.choice(common).capitalize(), rng.choice(common))
        else:
            base = "%s_%s" % (rng.choice(common), rng.choice(common))
        name = unique_name(base, children[parent])
        path = parent + "/" + name
        dirs.append(path)
        depth[path] = depth[parent] + 1
        children[path] = set()

    specs = []
    file_dirs = dirs[1:]

    def fname(d, ext, tag):
        if rng.random() < 0.03:
            base = "%s %s" % (rng.choice(UNICODE_NAMES), rng.choice(common))
        else:
            base = "%s-%s_%s" % (rng.choice(common), rng.choice(common), tag)
        return d + "/" + unique_name(base + ext, children[d])

    n_small = max(1, round(SMALL_COUNT * scale))
    lo, hi = math.log(SMALL_MIN), math.log(SMALL_MAX)
    for i in range(n_small):
        d = rng.choice(file_dirs)
        size = int(math.exp(rng.uniform(lo, hi)))
        r = rng.random()
        kind, ext = (("text", rng.choice(TEXT_EXT)) if r < 0.6 else
                     ("csv", rng.choice(CSV_EXT)) if r < 0.8 else
                     ("json", rng.choice(JSON_EXT)))
        specs.append([fname(d, ext, "%05d" % i), kind, size])

    n_medium = max(2, round(MEDIUM_COUNT * scale))
    lo, hi = math.log(MEDIUM_MIN), math.log(MEDIUM_MAX)
    for i in range(n_medium):
        d = rng.choice(file_dirs)
        size = int(math.exp(rng.uniform(lo, hi)))
        if i % 2 == 0:
            kind, ext = "random", rng.choice(BINARY_EXT)
        else:
            kind = rng.choice(["text", "csv", "json", "log"])
            ext = {"text": ".txt", "csv": ".csv", "json": ".jsonl", "log": ".log"}[kind]
        specs.append([fname(d, ext, "m%03d" % i), kind, size])

    if scale < 1.0:
        n_large, large_size = LARGE_COUNT, max(64 * KIB, int(LARGE_SIZE * scale))
    else:
        n_large, large_size = max(1, round(LARGE_COUNT * scale)), LARGE_SIZE
    large_kinds = [("random", "footage.mov"), ("log", "server.log"), ("random", "backup.zip"),
                   ("csv", "ledger-export.csv"), ("mixed", "mailbox.pst")]
    for i in range(n_large):
        kind, base = large_kinds[i % len(large_kinds)]
        d = rng.choice(TOP_LEVEL[:3])
        specs.append([d + "/" + unique_name("%d-%s" % (i, base), children[d]), kind, large_size])

    return dirs, [(p, k, s, sub_seed(seed, "file", i)) for i, (p, k, s) in enumerate(specs)]


# --------------------------------------------------------------------------- writing

_POOLS = None  # set in the parent before forking; workers inherit it
_ROOT = None


def write_file(spec):
    rel, kind, size, fseed = spec
    rng = random.Random(fseed)
    path = os.path.join(_ROOT, rel)
    with open(path, "wb", buffering=0) as f:
        left = size
        block = 0
        while left > 0:
            n = min(IO_BLOCK if kind != "mixed" else MIB, left)
            if kind == "random" or (kind == "mixed" and block % 2 == 0):
                f.write(rng.randbytes(n))
            else:
                f.write(_POOLS.text(rng, "text" if kind == "mixed" else kind, n))
            left -= n
            block += 1
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return size


def generate(out, seed, scale, jobs):
    global _POOLS, _ROOT
    if os.path.exists(out) and os.listdir(out):
        sys.exit("corpus.py: %s exists and is not empty" % out)
    os.makedirs(out, exist_ok=True)
    t0 = time.monotonic()
    dirs, specs = plan(seed, scale)
    _POOLS = Pools(seed)
    _ROOT = out
    for d in dirs[1:]:
        os.mkdir(os.path.join(out, d))
    # Biggest first so the slow files do not end up alone at the tail of the pool.
    order = sorted(specs, key=lambda s: -s[2])
    total = 0
    if jobs > 1:
        # fork: workers inherit the pools built above instead of rebuilding them.
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for n in pool.imap_unordered(write_file, order, chunksize=16):
                total += n
    else:
        for s in order:
            total += write_file(s)
    for d in sorted(dirs, key=lambda d: -d.count("/")):
        p = os.path.join(out, d) if d else out
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    dt = time.monotonic() - t0
    print("corpus: %s seed=%d scale=%g files=%d dirs=%d bytes=%d (%.2f GiB) in %.1fs" % (
        out, seed, scale, len(specs), len(dirs), total, total / 2**30, dt))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if a.scale <= 0:
        ap.error("--scale must be positive")
    generate(a.out_dir, a.seed, a.scale, max(1, a.jobs))


if __name__ == "__main__":
    main()
