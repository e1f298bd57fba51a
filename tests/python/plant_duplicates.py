"""Plant duplicate ids in an auditq archive's Delta table, as a writer without checks would:
append the first N rows of the table again, as one ordinary Delta commit (deltalake).

    plant_duplicates.py TABLE_URL N

The store is reached through the standard AWS environment (AWS_ENDPOINT_URL, …). Used by
the S3 fault tests to give `archive repair` something to do.
"""
import os
import sys

from deltalake import DeltaTable, write_deltalake

url, n = sys.argv[1], int(sys.argv[2])
table = DeltaTable(url)
rows = table.to_pyarrow_table().slice(0, n)
write_deltalake(url, rows, mode="append", partition_by=["date"])
print(DeltaTable(url).version())
sys.stdout.flush()
os._exit(0)  # past delta-rs's runtime teardown, which sometimes aborts (see delta_check.py)
