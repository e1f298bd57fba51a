"""Run the SQL `auditq explain` prints with DuckDB over the live files of an archive.

    python duckdb_sql.py ARCHIVE/events QUERIES.json

QUERIES.json is a list of SQL strings over a view `events`: the Parquet files of the
table's current Delta version (listed by the deltalake package), with the `date`
partition column from their paths, as auditq's table has it. Prints a JSON list with, for
each query, {"rows": [[str, ...], ...]} in the form auditq's CSV output has (times
RFC 3339 with milliseconds and Z, lists and structs as JSON without nulls, NULL as ""),
or {"error": "..."}. Used by the integration test `differential`.
"""
import datetime
import json
import sys

import duckdb
from deltalake import DeltaTable


def text(v):
    if v is None:
        return ""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc)
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, (list, dict)):
        return json.dumps(drop_nulls(v), separators=(",", ":"), ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def drop_nulls(v):
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


files = DeltaTable(sys.argv[1]).file_uris()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(
    "CREATE VIEW events AS SELECT * FROM read_parquet("
    f"{files!r}, hive_partitioning = true, hive_types_autocast = false)"
)
out = []
for sql in json.load(open(sys.argv[2])):
    try:
        rows = con.execute(sql).fetchall()
        out.append({"rows": [[text(v) for v in row] for row in rows]})
    except Exception as e:  # noqa: BLE001 - every failure is reported to the test
        out.append({"error": f"{type(e).__name__}: {e}"})
print(json.dumps(out))
