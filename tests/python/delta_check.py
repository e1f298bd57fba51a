"""Read an auditq archive's Delta table with the deltalake package (delta-rs via Python).

Prints {"rows", "distinct_ids", "days", "version"} as JSON. Used by the integration test
`python_delta` as an independent reader of the archive.
"""
import json
import os
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable

table = DeltaTable(sys.argv[1])
data = table.to_pyarrow_table(columns=["id", "date"])
print(json.dumps({
    "rows": data.num_rows,
    "distinct_ids": len(pc.unique(data["id"])),
    "days": len(pc.unique(data["date"])),
    "version": table.version(),
}))
# Skip the interpreter's teardown: delta-rs's runtime threads sometimes abort the process
# there ("terminate called without an active exception") after the answer is printed.
sys.stdout.flush()
os._exit(0)
