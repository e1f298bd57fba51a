#!/usr/bin/env python3
"""Two auditq binaries on the same archive, interleaved: which is faster, beyond noise.

    python3 benches/ab.py BEFORE AFTER [--archive DIR] [--runs 21] [--only 'NAME;NAME']

Each command runs `--runs` times on each binary, alternating which goes first, so that
a drift of the machine (another process, the page cache, a file just written) falls on
both alike. Sequential runs of benches/query.py cannot tell a 5 % change from such a
drift: between two of them DuckDB's times, which had not changed, moved by up to 1.4x.
Prints the median and the interquartile range of each, and after/before. A command the
BEFORE binary refuses (a stage it does not have) is measured on AFTER alone.
Build the archive first (benches/query.py makes bench-data/query-1000000).
"""
import argparse
import statistics
import subprocess
import time

NOW = "2026-11-01T00:00:00Z"


def commands(archive):
    q = lambda text: ["--archive", archive, "query", "--now", NOW, "--format", "csv", "--", text]
    return [
        ("--version", ["--version"]),
        ("count by action", q("| count by action")),
        ("latest 100 of 7d", q("since 7d | sort -time | head 100")),
        ("glob + top 10 of 30d", q('actor ~ "a*" event ~ "*delete*" since 30d | top 10 actor')),
        ("count by actor.id", q("| count by actor.id")),
        ("stats dc(ip) by actor", q("since 30d | stats count, dc(ip) as ips by actor | sort -ips | head 20")),
        ("timechart 1d by action", q("since 14d | timechart 1d count by action")),
        ("distinct country, city", q("| distinct country, city")),
        ("dedup actor.id", q("event ~ \"*delete*\" | dedup actor.id | fields time, actor.id, action")),
        ("first_seen country", q("since 7d | first_seen country by actor.id | count by country")),
        ("sequence", q("| sequence by actor.id within 1h [event:user_login_failed] [event:user_login] | count")),
        ("top 10 *delete* 30d", q('event ~ "*delete*" since 30d | top 10 actor')),
        ("daily counts of one action", q("event:user_login | timechart 1d")),
        ("glob + count by actor.id", q('event ~ "*permission*" | count by actor.id')),
        ("actors in > 3 countries", q("| dc(country) as countries by actor | where countries > 3")),
        ("fields + rename", q("event:user_login since 30d | fields time, actor.email, ip | rename actor.email as email")),
        ("explain", ["--archive", archive, "explain", "--now", NOW, "| count by action"]),
        ("archive stats", ["--archive", archive, "archive", "stats", "--json"]),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--archive", default="bench-data/query-1000000")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--only", default="", help="command names, separated by `;`")
    args = ap.parse_args()
    only = [n for n in args.only.split(";") if n]
    print(f"{'command':24} {'before ms':>10} {'IQR':>13} {'after ms':>10} {'IQR':>13} {'after/before':>13}")
    for name, argv in commands(args.archive):
        if only and name not in only:
            continue
        binaries = [args.before, args.after]
        if subprocess.run([args.before] + argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            binaries = [args.after]
        times = {b: [] for b in binaries}
        for i in range(args.runs):
            order = binaries if i % 2 == 0 else binaries[::-1]
            for binary in order:
                start = time.perf_counter()
                subprocess.run([binary] + argv, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
                times[binary].append((time.perf_counter() - start) * 1000)
        row = []
        for binary in binaries:
            q = statistics.quantiles(times[binary], n=4)
            row.append((statistics.median(times[binary]), f"{q[0]:.1f}-{q[2]:.1f}"))
        if len(row) == 1:
            (ma, ia), = row
            print(f"{name:24} {'-':>10} {'-':>13} {ma:10.1f} {ia:>13} {'-':>13}")
            continue
        (mb, ib), (ma, ia) = row
        print(f"{name:24} {mb:10.1f} {ib:>13} {ma:10.1f} {ia:>13} {ma / mb:13.2f}")


if __name__ == "__main__":
    main()
