#!/usr/bin/env python3
"""Query benchmark: the same 8 analyst queries in auditq and in DuckDB, same files, same run.

    scripts/python-venv.sh                      # once: deltalake, pyarrow, duckdb
    ~/.cache/auditq-venv/bin/python benches/query.py [--sizes 1000000,10000000] [--runs 5]

For each size: `auditq generate --days 365 | auditq import -`, `auditq archive compact`,
then each query `--runs` times as `auditq query` (a process: start-up, Delta log, planning
and output included) and as DuckDB SQL over the Parquet files of the table's current
version (in-process: no start-up). Prints medians and the ratio auditq / DuckDB, and the
end-to-end time of every query on a one-day archive. Data lives in ./bench-data.
Nothing here is a test: numbers are reported.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "auditq"
DATA = ROOT / "bench-data"
END = "2026-11-01T00:00:00Z"
NOW = END
DAY = "2026-06-01"

COLS = "time, action, actor_name, actor_email, ip, country, message, id"


def queries(actor, some_id, day=DAY):
    """(name, kind, auditq query, DuckDB SQL over `ev`, auditq output file or None)."""
    x = actor.lower()
    return [
        ("actor+glob+7d", "selective",
         f'actor = "{actor}" and event ~ "user_*" since 7d',
         f"SELECT {COLS} FROM ev WHERE (lower(actor_id) = '{x}' OR lower(actor_email) = '{x}' OR lower(actor_name) = '{x}')"
         f" AND action ILIKE 'user\\_%' ESCAPE '\\' AND time >= TIMESTAMPTZ '{NOW}' - INTERVAL 7 DAY ORDER BY time", None),
        ("count by action", "scan",
         "| count by action",
         "SELECT action, count(*) FROM ev GROUP BY action ORDER BY action", None),
        ("top 10 actors *delete* 30d", "scan",
         'event ~ "*delete*" since 30d | top 10 actor',
         "SELECT coalesce(actor_email, actor_name, actor_id) AS a, count(*) AS c FROM ev WHERE action ILIKE '%delete%'"
         f" AND time >= TIMESTAMPTZ '{NOW}' - INTERVAL 30 DAY GROUP BY a ORDER BY c DESC, a LIMIT 10", None),
        ("ipv4 /16", "scan",
         "ip in 10.20.0.0/16 | count",
         "SELECT count(*) FROM ev WHERE ip LIKE '10.20.%'", None),
        ("daily counts of one action", "scan",
         "event:user_login | timechart 1d",
         "SELECT date_trunc('day', time) AS d, count(*) FROM ev WHERE lower(action) = 'user_login' GROUP BY d ORDER BY d", None),
        ("actors in > 3 countries", "scan",
         "| dc(country) as countries by actor | where countries > 3",
         "SELECT coalesce(actor_email, actor_name, actor_id) AS a, count(DISTINCT country) AS n FROM ev GROUP BY a HAVING n > 3 ORDER BY a", None),
        ("one day to CSV", "selective",
         f"on {day}",
         f"COPY (SELECT {COLS} FROM ev WHERE time >= TIMESTAMPTZ '{day} 00:00:00+00' AND time < TIMESTAMPTZ '{day} 00:00:00+00' + INTERVAL 1 DAY ORDER BY time) TO '{DATA}/duck-day.csv' (HEADER)",
         DATA / "auditq-day.csv"),
        ("point lookup by id", "selective",
         f"id == {some_id}",
         f"SELECT {COLS} FROM ev WHERE id = '{some_id}'", None),
    ]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_archive(n, days, archive):
    if (archive / "events" / "_delta_log").exists():
        return
    shutil.rmtree(archive, ignore_errors=True)
    gen = subprocess.Popen([BIN, "generate", "--events", str(n), "--days", str(days), "--end", END, "--seed", "3"],
                           stdout=subprocess.PIPE)
    sh([BIN, "--quiet", "--archive", archive, "import", "-"], stdin=gen.stdout)
    gen.stdout.close()
    gen.wait()
    sh([BIN, "--quiet", "--archive", archive, "archive", "compact"])


def auditq_time(archive, q, out):
    cmd = [BIN, "--quiet", "--archive", archive, "query", "--now", NOW, "--format", "csv"]
    if out:
        cmd += ["-o", out]
    cmd += ["--", q]
    t = time.perf_counter()
    sh(cmd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def sample(archive, day=DAY):
    """An actor and an id that exist, for the selective queries."""
    out = subprocess.run([BIN, "--archive", archive, "query", "--now", NOW, "--format", "csv", "--",
                          "since 7d | count by actor.email | sort -count | head 20"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    actor = out[-1].split(",")[0]
    out = subprocess.run([BIN, "--archive", archive, "query", "--now", NOW, "--format", "csv", "--",
                          f"on {day} | fields id | head 500"], check=True, capture_output=True, text=True).stdout.splitlines()
    return actor, out[-1]


def bench(archive, runs):
    import duckdb
    from deltalake import DeltaTable

    files = DeltaTable(str(archive / "events")).file_uris()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet({files!r})")
    actor, some_id = sample(archive)
    rows = []
    for name, kind, q, sql, out in queries(actor, some_id):
        a, d = [], []
        for _ in range(runs):
            a.append(auditq_time(archive, q, out))
            t = time.perf_counter()
            con.execute(sql).fetchall()
            d.append(time.perf_counter() - t)
        ma, md = statistics.median(a), statistics.median(d)
        rows.append({"query": name, "kind": kind, "auditq_ms": round(ma * 1000, 1),
                     "duckdb_ms": round(md * 1000, 1), "ratio": round(ma / md, 2),
                     "target": "<= 1.0x" if kind == "selective" else "<= 1.5x"})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    DATA.mkdir(exist_ok=True)
    result = {"cpus": os.cpu_count(), "runs": args.runs}
    for n in [int(s) for s in args.sizes.split(",")]:
        archive = DATA / f"query-{n}"
        build_archive(n, 365, archive)
        result[f"events_{n}"] = bench(archive, args.runs)
    # Any query on a one-day archive, end to end (start-up included).
    one_day = DATA / "query-one-day"
    build_archive(20_000, 1, one_day)
    last_day = "2026-10-31"
    actor, some_id = sample(one_day, last_day)
    day_ms = []
    for name, _, q, _, out in queries(actor, some_id, last_day):
        times = [auditq_time(one_day, q, out) for _ in range(args.runs)]
        day_ms.append({"query": name, "auditq_ms": round(statistics.median(times) * 1000, 1), "target": "<= 150 ms"})
    result["one_day_archive"] = day_ms
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
