"""Run hand-written SQL with DuckDB over the live Parquet files of an auditq archive.

    python duckdb_queries.py ARCHIVE/events QUERIES.json

QUERIES.json is a list of SQL strings over a view `ev` of the files of the table's current
Delta version (listed by the deltalake package). Prints a JSON list with, for each query,
its rows as lists of strings (NULL as ""). Used by the integration test `differential`.
"""
import json
import sys

import duckdb
from deltalake import DeltaTable

files = DeltaTable(sys.argv[1]).file_uris()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet({files!r})")
out = []
for sql in json.load(open(sys.argv[2])):
    rows = con.execute(sql).fetchall()
    out.append([["" if v is None else str(v) for v in row] for row in rows])
print(json.dumps(out))
