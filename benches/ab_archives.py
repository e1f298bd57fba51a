#!/usr/bin/env python3
"""The same commands (benches/ab.py's) on two archives with one binary: how much the layout
of an archive costs (e.g. one as 35,000 commits left it against its compacted copy).

    python3 benches/ab_archives.py BINARY ARCHIVE_1 ARCHIVE_2 RUNS

Medians of RUNS, the two archives alternating. Numbers are reported, nothing asserted.
"""
import sys, statistics, subprocess, time
sys.path.insert(0, "benches")
import ab
binary, a1, a2, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c1, c2 = ab.commands(a1), ab.commands(a2)
print(f"{'command':24} {'v1 ms':>8} {'v2 ms':>8} {'v2/v1':>6}")
for (name, argv1), (_, argv2) in zip(c1, c2):
    t = {0: [], 1: []}
    for r in range(runs):
        order = [(0, argv1), (1, argv2)] if r % 2 == 0 else [(1, argv2), (0, argv1)]
        for k, argv in order:
            s = time.perf_counter()
            subprocess.run([binary] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t[k].append((time.perf_counter() - s) * 1000)
    m1, m2 = statistics.median(t[0]), statistics.median(t[1])
    print(f"{name:24} {m1:8.1f} {m2:8.1f} {m2/m1:6.2f}")
