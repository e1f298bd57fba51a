#!/usr/bin/env python3
"""How long a small commit takes on an archive: RUNS imports of 100 new events each (a new
process each time: open, dedupe, write, commit, merge check), medians reported.

    python3 benches/commit_latency.py BINARY END RUNS ARCHIVE... [-- EXTRA_ARGS]

END is the time the events lead up to (one day of them, e.g. the archive's last day:
`2026-11-01T00:00:00Z`); EXTRA_ARGS go before `import` (e.g. `--no-compact`). The archives
take turns, each import its own events (seeds differ), so every run adds 100 events.
Numbers are reported, nothing asserted.
"""
import os, statistics, subprocess, sys, tempfile, time

args = sys.argv[1:]
extra = args[args.index("--") + 1:] if "--" in args else []
args = args[: args.index("--")] if "--" in args else args
binary, end, runs, archives = args[0], args[1], int(args[2]), args[3:]
work = tempfile.mkdtemp(prefix="auditq-commit-")
times = {a: [] for a in archives}
merges = {a: 0 for a in archives}
seed = 700_000 + os.getpid() % 1000 * 1000
for r in range(runs):
    for a in archives:
        seed += 1
        f = os.path.join(work, f"{seed}.ndjson")
        subprocess.run([binary, "generate", "--events", "100", "--days", "1", "--end", end,
                        "--seed", str(seed), "-o", f], check=True, stdout=subprocess.DEVNULL)
        s = time.perf_counter()
        out = subprocess.run([binary, "--archive", a] + extra + ["import", f],
                             check=True, capture_output=True, text=True).stdout
        times[a].append((time.perf_counter() - s) * 1000)
        merges[a] += "; merged " in out
        os.remove(f)
print(f"{'archive':40} {'median ms':>10} {'p90 ms':>8} {'min':>6} {'merges':>7}")
for a in archives:
    t = sorted(times[a])
    p90 = t[min(len(t) - 1, int(len(t) * 0.9))]
    print(f"{a:40} {statistics.median(t):10.0f} {p90:8.0f} {t[0]:6.0f} {merges[a]:>4}/{len(t)}")
