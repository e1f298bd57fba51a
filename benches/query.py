#!/usr/bin/env python3
"""Query benchmark: the same analyst queries in auditq and in DuckDB, same files, same run.

    scripts/python-venv.sh                      # once: deltalake, pyarrow, duckdb
    ~/.cache/auditq-venv/bin/python benches/query.py [--sizes 1000000,10000000] [--runs 5]
        [--only 'NAME;NAME'] [--export]

The 8 queries of issue 3, and the shapes of issue 13: the latest N events of a range, a
group-by per actor id over everything, a glob filter with several aggregates, every
column of a busy actor's events (a case-insensitive `=`) written to CSV and to Parquet
(against DuckDB's `COPY … TO`), each with a close neighbour; the shapes of issue 30
(group-bys on two and three text keys, filters on missing values, distinct pairs). The
target of every shape is ≤ 1.0× DuckDB. `--export` also writes the whole archive to CSV
and to Parquet with both tools, measuring time and peak RSS.

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
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "auditq"
DATA = ROOT / "bench-data"
END = "2026-11-01T00:00:00Z"
NOW = END
DAY = "2026-06-01"

COLS = "time, action, actor_name, actor_email, ip, country, message, id"
# `fields *`: every archived column but the fingerprint and the partition.
ALL = ("id, org_id, time, processed_at, action, actor_id, actor_name, actor_email, actor_type, auth_type, "
       "token_label, ip, country, region, city, message, context, container, raw")


def issue_13(busy):
    """The shapes issue 13 asks for, and a close neighbour of each.
    (name, kind, auditq query, DuckDB SQL over `ev`, auditq output file or None)."""
    b = busy.lower()
    since = lambda d: f"time >= TIMESTAMPTZ '{NOW}' - INTERVAL {d} DAY"
    return [
        ("latest 100 of 7d", "selective",
         "since 7d | sort -time | head 100",
         f"SELECT {COLS} FROM ev WHERE {since(7)} ORDER BY time DESC LIMIT 100", None),
        ("latest 20 logins of 30d", "selective",
         "event:user_login since 30d | sort -time | head 20",
         f"SELECT {COLS} FROM ev WHERE lower(action) = 'user_login' AND {since(30)} ORDER BY time DESC LIMIT 20", None),
        ("latest 10 of a busy actor (neighbour)", "selective",
         f'actor.email = "{busy.upper()}" | sort -time | head 10',
         f"SELECT {COLS} FROM ev WHERE lower(actor_email) = '{b}' ORDER BY time DESC LIMIT 10", None),
        ("first 20 deletes of 90d (neighbour)", "selective",
         'event ~ "*delete*" since 90d | sort time | head 20',
         f"SELECT {COLS} FROM ev WHERE action ILIKE '%delete%' AND {since(90)} ORDER BY time LIMIT 20", None),
        ("count by actor.id", "scan",
         "| count by actor.id",
         "SELECT actor_id, count(*) FROM ev GROUP BY actor_id ORDER BY actor_id", None),
        ("count by actor.email (neighbour)", "scan",
         "| count by actor.email",
         "SELECT actor_email, count(*) FROM ev GROUP BY actor_email ORDER BY actor_email", None),
        ("count by country (neighbour)", "scan",
         "| count by country",
         "SELECT country, count(*) FROM ev GROUP BY country ORDER BY country", None),
        ("glob + count by actor.id (neighbour)", "scan",
         'event ~ "*permission*" | count by actor.id',
         "SELECT actor_id, count(*) FROM ev WHERE action ILIKE '%permission%' GROUP BY actor_id ORDER BY actor_id", None),
        ("count by actor.id, action (neighbour)", "scan",
         "| count by actor.id, action",
         "SELECT actor_id, action, count(*) FROM ev GROUP BY actor_id, action ORDER BY actor_id, action", None),
        ("dc(action) by actor.id 90d", "scan",
         "since 90d | dc(action) as actions by actor.id",
         f"SELECT actor_id, count(DISTINCT action) FROM ev WHERE {since(90)} GROUP BY actor_id ORDER BY actor_id", None),
        ("glob + count, dc, dc by country", "scan",
         'event ~ "*permission*" | stats count, dc(actor.id) as actors, dc(ip) as ips by country',
         "SELECT country, count(*), count(DISTINCT actor_id), count(DISTINCT ip) FROM ev"
         " WHERE action ILIKE '%permission%' GROUP BY country ORDER BY country", None),
        ("glob + count, dc by action", "scan",
         'event ~ "user_*" | stats count, dc(country) as countries by action',
         "SELECT action, count(*), count(DISTINCT country) FROM ev WHERE action ILIKE 'user\\_%' ESCAPE '\\'"
         " GROUP BY action ORDER BY action", None),
        ("busy actor, every column, CSV", "selective",
         f'actor.email = "{busy.upper()}" | fields *',
         f"COPY (SELECT {ALL} FROM ev WHERE lower(actor_email) = '{b}' ORDER BY time) TO '{DATA}/duck-busy.csv' (HEADER)",
         DATA / "auditq-busy.csv"),
        ("busy actor, every column, Parquet", "selective",
         f'actor.email = "{busy.upper()}" | fields *',
         f"COPY (SELECT {ALL} FROM ev WHERE lower(actor_email) = '{b}' ORDER BY time) TO '{DATA}/duck-busy.parquet' (FORMAT parquet)",
         DATA / "auditq-busy.parquet"),
        ("busy actor 30d, 8 columns, CSV", "selective",
         f'actor.email = "{busy.upper()}" since 30d',
         f"COPY (SELECT {COLS} FROM ev WHERE lower(actor_email) = '{b}' AND {since(30)} ORDER BY time) TO '{DATA}/duck-busy30.csv' (HEADER)",
         DATA / "auditq-busy30.csv"),
    ]


def issue_30():
    """Shapes issue 30 names as behind DuckDB, and their neighbours: group-bys on several
    text keys, filters on missing values, a 30-day window, distinct pairs."""
    since = lambda d: f"time >= TIMESTAMPTZ '{NOW}' - INTERVAL {d} DAY"
    missing = "(country IS NULL OR country = '')"
    return [
        ("no country, count by actor.id", "scan",
         "not has country | count by actor.id",
         f"SELECT actor_id, count(*) FROM ev WHERE {missing} GROUP BY actor_id ORDER BY actor_id", None),
        ("no country, count by action (neighbour)", "scan",
         "not has country | count by action",
         f"SELECT action, count(*) FROM ev WHERE {missing} GROUP BY action ORDER BY action", None),
        ("30d count by country", "scan",
         "since 30d | count by country",
         f"SELECT country, count(*) FROM ev WHERE {since(30)} GROUP BY country ORDER BY country", None),
        ("count by action, country (neighbour)", "scan",
         "| count by action, country",
         "SELECT action, country, count(*) FROM ev GROUP BY action, country ORDER BY action, country", None),
        ("count by actor.id, action, country (neighbour)", "scan",
         "| count by actor.id, action, country",
         "SELECT actor_id, action, country, count(*) FROM ev GROUP BY actor_id, action, country"
         " ORDER BY actor_id, action, country", None),
        ("distinct country, city (neighbour)", "scan",
         "| distinct country, city",
         "SELECT DISTINCT country, city FROM ev ORDER BY country, city", None),
        ("dc(country) by actor.id (neighbour)", "scan",
         "| dc(country) as countries by actor.id",
         "SELECT actor_id, count(DISTINCT country) FROM ev GROUP BY actor_id ORDER BY actor_id", None),
    ]


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


def busiest(archive, n):
    """A busy actor: the email whose number of events is closest to 2.5% of `n` (250k of
    10M, as issue 13 asks)."""
    out = subprocess.run([BIN, "--archive", archive, "query", "--now", NOW, "--format", "csv", "--",
                          "has actor.email | count by actor.email"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    counts = [(e, int(c)) for e, c in (l.rsplit(",", 1) for l in out[1:])]
    return min(counts, key=lambda ec: abs(ec[1] - n // 40))


def peak(cmd):
    """Wall time (s) and peak RSS (MiB) of a command, from /usr/bin/time -v."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    rss = next(int(l.split(":")[1]) for l in r.stderr.splitlines() if "Maximum resident set size" in l)
    return wall, rss / 1024


def export(archive, runs):
    """The whole archive to CSV and to Parquet: auditq `| fields *` against DuckDB's COPY
    of the same columns (its own process, so that its peak RSS is measured too)."""
    from deltalake import DeltaTable
    files = DeltaTable(str(archive / "events")).file_uris()
    rows = []
    for fmt in ["csv", "parquet"]:
        ours, theirs = [], []
        a_out, d_out = DATA / f"auditq-all.{fmt}", DATA / f"duck-all.{fmt}"
        opts = "(HEADER)" if fmt == "csv" else "(FORMAT parquet)"
        script = (f"import duckdb; c = duckdb.connect(); c.execute(\"SET TimeZone = 'UTC'\"); "
                  f"c.execute(\"COPY (SELECT {ALL} FROM read_parquet({files!r})) TO '{d_out}' {opts}\")")
        for _ in range(runs):
            ours.append(peak([BIN, "--quiet", "--archive", archive, "query", "--now", NOW, "-o", a_out, "--", "| fields *"]))
            theirs.append(peak([sys.executable, "-c", script]))
        rows.append({
            "export": fmt,
            "auditq_s": round(statistics.median(w for w, _ in ours), 2),
            "auditq_peak_rss_mib": round(max(r for _, r in ours)),
            "duckdb_s": round(statistics.median(w for w, _ in theirs), 2),
            "duckdb_peak_rss_mib": round(max(r for _, r in theirs)),
            "ratio": round(statistics.median(w for w, _ in ours) / statistics.median(w for w, _ in theirs), 2),
            "bytes_auditq": a_out.stat().st_size, "bytes_duckdb": d_out.stat().st_size,
        })
        if fmt == "parquet":
            rows[-1]["read_back"] = check_export(archive, a_out)
    return rows


def check_export(archive, path):
    """An exported Parquet file read back by pyarrow and by DuckDB: its row count, and each
    column's type against the archive's own files."""
    import duckdb
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    table = DeltaTable(str(archive / "events"))
    archive_schema = pq.read_schema(table.file_uris()[0])
    out_schema = pq.read_schema(path)
    differ = [f"{f.name}: {f.type} vs archive {archive_schema.field(f.name).type}"
              for f in out_schema if f.type != archive_schema.field(f.name).type]
    con = duckdb.connect()
    return {
        "pyarrow_rows": pq.read_metadata(path).num_rows,
        "duckdb_rows": con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0],
        "archive_rows": sum(table.get_add_actions(flatten=True).column("num_records").to_pylist()),
        "columns": len(out_schema),
        "types_differing_from_archive": differ,
    }


def auditq_time(archive, q, out):
    cmd = [BIN, "--quiet", "--archive", archive, "query", "--now", NOW]
    # An output file's extension names its format (`--format` would win over it).
    cmd += ["-o", out] if out else ["--format", "csv"]
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


def bench(archive, n, runs, only):
    import duckdb
    from deltalake import DeltaTable

    files = DeltaTable(str(archive / "events")).file_uris()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet({files!r})")
    actor, some_id = sample(archive)
    busy, busy_events = busiest(archive, n)
    rows = []
    for name, kind, q, sql, out in queries(actor, some_id) + issue_13(busy) + issue_30():
        if only and name not in only:
            continue
        a, d = [], []
        for _ in range(runs):
            a.append(auditq_time(archive, q, out))
            t = time.perf_counter()
            con.execute(sql).fetchall()
            d.append(time.perf_counter() - t)
        ma, md = statistics.median(a), statistics.median(d)
        rows.append({"query": name, "kind": kind, "auditq_ms": round(ma * 1000, 1),
                     "duckdb_ms": round(md * 1000, 1), "ratio": round(ma / md, 2),
                     "target": "<= 1.0x"})
    rows.append({"busy_actor_events": busy_events})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="", help="query names, separated by `;`")
    ap.add_argument("--export", action="store_true", help="also export the whole archive")
    ap.add_argument("--no-one-day", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use the release binary as it is")
    ap.add_argument("--check-export", metavar="ARCHIVE,FILE", help="only read an export back")
    args = ap.parse_args()
    if args.check_export:
        archive, path = args.check_export.split(",")
        print(json.dumps(check_export(Path(archive), path), indent=2))
        return
    only = set(filter(None, args.only.split(";")))
    if not args.no_build:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    DATA.mkdir(exist_ok=True)
    result = {"cpus": os.cpu_count(), "runs": args.runs}
    for n in [int(s) for s in args.sizes.split(",")]:
        archive = DATA / f"query-{n}"
        build_archive(n, 365, archive)
        result[f"events_{n}"] = bench(archive, n, args.runs, only)
        if args.export:
            result[f"export_{n}"] = export(archive, max(1, min(args.runs, 3)))
    if args.no_one_day:
        print(json.dumps(result, indent=2))
        return
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
