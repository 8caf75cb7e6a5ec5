#!/usr/bin/env python3
"""Table, ratios and linearity summary of a scaling.sh run.

    python3 Benchmarks/scaling-report.py results.tsv [more.tsv ...]

Several files (runs of different points or tools) are merged; a later row for the same point,
step and tool replaces an earlier one.

Columns of results.tsv: point step tool status wall_s rss_kb user_s sys_s files bytes note.
"""

import sys
from collections import OrderedDict

STEPS = ["backup", "rerun", "restore", "check"]
GIB = 1024 ** 3


def num(x):
    return float(x) if x not in ("", None) else None


def main(paths):
    rows = OrderedDict()
    meta = {}
    lines = [line for path in paths for line in open(path, encoding="utf-8")]
    for line in lines:
        point, step, tool, status, wall, rss, usr, sys_, files, nbytes, note = line.rstrip("\n").split("\t")
        rows[(point, step, tool)] = dict(status=status, wall=num(wall), rss=num(rss), usr=num(usr),
                                         sys=num(sys_), note=note)
        meta[point] = (int(files), int(nbytes))
    points = list(meta)
    tools = [t for t in ("tresor", "restic") if any(k[2] == t for k in rows)]

    def cell(p, s, t):
        r = rows.get((p, s, t))
        if r is None:
            return "-"
        if r["status"] != "ok":
            return r["status"].upper()
        return "%7.1f s %5.0f MiB" % (r["wall"], r["rss"] / 1024)

    print("\nscaling: wall time and peak RSS per step (restore verified by content digest unless noted)\n")
    hdr = ["point", "files", "GiB", "step"] + tools + (["time t/r", "RSS t/r"] if len(tools) == 2 else [])
    out = [hdr]
    for p in points:
        files, nbytes = meta[p]
        for s in STEPS:
            line = [p, str(files), "%.2f" % (nbytes / GIB), s] + [cell(p, s, t) for t in tools]
            if len(tools) == 2:
                a, b = rows.get((p, s, "tresor")), rows.get((p, s, "restic"))
                if a and b and a["status"] == b["status"] == "ok" and b["wall"] and b["rss"]:
                    line += ["%.2f" % (a["wall"] / b["wall"]), "%.2f" % (a["rss"] / b["rss"])]
                else:
                    line += ["-", "-"]
            out.append(line)
    w = [max(len(r[i]) for r in out) for i in range(len(hdr))]
    for i, r in enumerate(out):
        print("  ".join(c.ljust(w[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in w))
    print("\nt/r = tresor / restic (time < 1: Tresor faster; RSS < 1: Tresor smaller).")

    print("\nCPU (user+sys seconds), less sensitive than wall time to other load on the machine:\n")
    for p in points:
        parts = []
        for s in STEPS:
            for t in tools:
                r = rows.get((p, s, t))
                if r and r["status"] == "ok":
                    parts.append("%s %s %.1f" % (t, s, r["usr"] + r["sys"]))
        print("  %-12s %s" % (p, "; ".join(parts)))

    print("\nlinearity: cost per unit at each point (files axis: per 1000 files; bytes axis: per GiB);"
          "\nwall s / CPU s, and peak RSS; a flat row means linear time and constant memory.\n")
    for axis, unit in (("files", 1000), ("bytes", None)):
        pts = [p for p in points if p.startswith(axis + ":")]
        if not pts:
            continue
        for t in tools:
            for s in STEPS:
                cells = []
                for p in pts:
                    files, nbytes = meta[p]
                    r = rows.get((p, s, t))
                    if not r or r["status"] != "ok":
                        cells.append("%s: -" % p)
                        continue
                    per = files / 1000 if axis == "files" else nbytes / GIB
                    cells.append("%s: %.3f/%.3f s, %.0f MiB" % (p, r["wall"] / per, (r["usr"] + r["sys"]) / per,
                                                                 r["rss"] / 1024))
                print("  %-6s %-7s %s" % (t, s, " | ".join(cells)))
            print()


if __name__ == "__main__":
    main(sys.argv[1:])
