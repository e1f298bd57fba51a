"""Write the events of an auditq archive as a table of schema version 1 (no `leaf`), the
way auditq wrote them before the evidence log: `legacy_table.py SRC_TABLE DST_TABLE`."""

import sys

from deltalake import DeltaTable, write_deltalake

src, dst = sys.argv[1], sys.argv[2]
t = DeltaTable(src).to_pyarrow_table()
t = t.drop_columns(["leaf"])
write_deltalake(dst, t, partition_by=["date"])
print(t.num_rows)
