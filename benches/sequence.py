#!/usr/bin/env python3
"""Sequence benchmark: `| sequence … | count` in auditq against DuckDB SQL that finds the
same sequences with window functions, same files, same run.

    ~/.cache/auditq-venv/bin/python benches/sequence.py [--size 10000000] [--runs 5] [--no-build]

Uses the archive `benches/query.py` builds (bench-data/query-N). Each auditq query is an
`auditq query` process (start-up, Delta log, planning included); DuckDB runs in-process
over the Parquet files of the table's current version. Both answers (the number of
sequences) are printed: they must agree. Nothing here is a test: numbers are reported.

The SQL is the definition of a two-step sequence (EQL's semantics, as in
`query/sequence.rs`): per key, in (time, id) order, a second-step event completes with
the latest first-step event before it, unless an `until` event or another second-step
event lies between them, or the first is more than the span before it.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query import BIN, DATA, NOW, ROOT, build_archive, sh  # noqa: E402

import subprocess  # noqa: E402

# (name, auditq stage, key column, first, second, until (SQL over `action`), span in minutes)
SHAPES = [
    ("grant then delete, 1h",
     '| sequence by actor.id within 1h [event:user_granted_role] [event ~ "*_deleted"] until [event:user_logout]',
     "actor_id", "action = 'user_granted_role'", "action LIKE '%\\_deleted' ESCAPE '\\'",
     "action = 'user_logout'", 60),
    ("failed login then login, 10m (neighbour: many candidates)",
     "| sequence by actor.id within 10m [event:user_login_failed] [event:user_login]",
     "actor_id", "action = 'user_login_failed'", "action = 'user_login'", "false", 10),
    ("token created then deleted by ip, 1d (neighbour: another key)",
     '| sequence by ip within 1d [event ~ "*token_created"] [event ~ "*_deleted"]',
     "ip", "action LIKE '%token\\_created' ESCAPE '\\'", "action LIKE '%\\_deleted' ESCAPE '\\'", "false", 1440),
]


def duck_sql(key, first, second, until, minutes):
    return f"""
WITH c AS (
  SELECT {key} AS k, time, id, ({first}) AS s0, ({second}) AS s1, ({until}) AS u
  FROM ev WHERE {key} IS NOT NULL AND (({first}) OR ({second}) OR ({until}))
), n AS (
  SELECT *, s0 AND NOT u AS st, s1 AND NOT u AS en,
    row_number() OVER w AS rn,
    sum(CASE WHEN s1 AND NOT u THEN 1 ELSE 0 END) OVER w AS ns1,
    sum(CASE WHEN u THEN 1 ELSE 0 END) OVER w AS nu
  FROM c WINDOW w AS (PARTITION BY k ORDER BY time, id ROWS UNBOUNDED PRECEDING)
), m AS (
  SELECT *,
    last_value(CASE WHEN st THEN rn END IGNORE NULLS) OVER p AS a_rn,
    last_value(CASE WHEN st THEN time END IGNORE NULLS) OVER p AS a_time,
    last_value(CASE WHEN st THEN ns1 END IGNORE NULLS) OVER p AS a_ns1,
    last_value(CASE WHEN st THEN nu END IGNORE NULLS) OVER p AS a_nu
  FROM n WINDOW p AS (PARTITION BY k ORDER BY time, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT count(*) FROM m
WHERE en AND a_rn IS NOT NULL AND time - a_time <= INTERVAL {minutes} MINUTE
  AND ns1 - 1 = a_ns1 AND nu = a_nu
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    import duckdb
    from deltalake import DeltaTable

    archive = DATA / f"query-{args.size}"
    build_archive(args.size, 365, archive)
    files = DeltaTable(str(archive / "events")).file_uris()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet({files!r})")
    rows = []
    for name, stage, key, first, second, until, minutes in SHAPES:
        q = stage + " | count"
        sql = duck_sql(key, first, second, until, minutes)
        a, d = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = subprocess.run([BIN, "--quiet", "--archive", archive, "query", "--now", NOW,
                                  "--format", "csv", "--", q], check=True, capture_output=True, text=True)
            a.append(time.perf_counter() - t)
            t = time.perf_counter()
            duck = con.execute(sql).fetchone()[0]
            d.append(time.perf_counter() - t)
        ours = int(out.stdout.splitlines()[1])
        ma, md = statistics.median(a), statistics.median(d)
        rows.append({"query": name, "auditq_ms": round(ma * 1000, 1), "duckdb_ms": round(md * 1000, 1),
                     "ratio": round(ma / md, 2), "auditq_sequences": ours, "duckdb_sequences": duck,
                     "agree": ours == duck})
    print(json.dumps({"events": args.size, "runs": args.runs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
