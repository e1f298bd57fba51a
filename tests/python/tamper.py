"""One kind of tampering with an auditq archive, done as a knowledgeable insider would:
with the Python deltalake package, pyarrow, and by hand on the Delta log, recomputing
the xxh3 checksums auditq keeps and deleting its caches, so that nothing but the
evidence log can tell.

  tamper.py KIND ARCHIVE ID [ID2]

Prints what it did (one line). Used by scripts/tamper.sh.
"""

import glob
import json
import os
import shutil
import sys

import pyarrow.parquet as pq
import xxhash
from deltalake import DeltaTable, write_deltalake


def table(archive):
    return DeltaTable(os.path.join(archive, "events"))


def file_of(archive, event_id):
    """The live data file (relative to the table) holding `event_id`."""
    t = table(archive)
    for rel in t.file_uris():
        path = rel[len("file://"):] if rel.startswith("file://") else rel
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        if event_id in ids:
            return os.path.relpath(path, os.path.join(archive, "events"))
    raise SystemExit("no live file holds %s" % event_id)


def cover_tracks(archive, rel, new_size):
    """Recompute the file's checksum and size where auditq keeps them; drop the caches."""
    path = os.path.join(archive, "events", rel)
    with open(path, "rb") as f:
        digest = xxhash.xxh3_64(f.read()).hexdigest()
    sums = os.path.join(archive, "checksums.jsonl")
    lines = []
    with open(sums) as f:
        for line in f:
            rec = json.loads(line)
            if rec["file"] == rel:
                rec["size"], rec["xxh3"] = new_size, digest
            lines.append(json.dumps(rec))
    with open(sums, "w") as f:
        f.write("\n".join(lines) + "\n")
    for log in glob.glob(os.path.join(archive, "events", "_delta_log", "*.json")):
        changed = False
        out = []
        with open(log) as f:
            for line in f:
                action = json.loads(line)
                add = action.get("add")
                if add and add["path"] == rel:
                    add["size"] = new_size
                    changed = True
                out.append(json.dumps(action))
        if changed:
            with open(log, "w") as f:
                f.write("\n".join(out) + "\n")
    shutil.rmtree(os.path.join(archive, "cache"), ignore_errors=True)


def rewrite_file(archive, rel, change):
    """Rewrite a data file in place through `change(pyarrow table) -> table`."""
    path = os.path.join(archive, "events", rel)
    t = change(pq.read_table(path))
    pq.write_table(t, path, compression="zstd")
    cover_tracks(archive, rel, os.path.getsize(path))


def append_copy(t, event_id, new_id, keep_leaf):
    """Append a copy of event `event_id` under `new_id` (its raw JSON's id too), with the
    original's leaf or none."""
    import pyarrow as pa

    rows = t.to_pyarrow_table(filters=[("id", "=", event_id)])
    fake = rows.to_pylist()[0]
    fake["id"] = new_id
    raw = json.loads(fake["raw"])
    raw["id"] = new_id
    fake["raw"] = json.dumps(raw, separators=(",", ":"))
    if not keep_leaf:
        fake["leaf"] = None
    write_deltalake(t, pa.Table.from_pylist([fake], schema=rows.schema), mode="append")
    return new_id


def main():
    kind, archive, first = sys.argv[1], sys.argv[2], sys.argv[3]
    second = sys.argv[4] if len(sys.argv) > 4 else None
    t = table(archive)
    if kind == "update-derived":
        t.update(predicate="id = '%s'" % first, updates={"action": "'user_login'"})
        print("set action of %s to user_login (raw untouched)" % first)
    elif kind == "delete-event":
        t.delete("id = '%s'" % first)
        print("deleted %s" % first)
    elif kind == "edit-raw":
        rows = t.to_pyarrow_table(filters=[("id", "=", first)]).to_pylist()
        raw = json.loads(rows[0]["raw"])
        raw["attributes"]["action"] = "user_login"
        text = json.dumps(raw, separators=(",", ":")).replace("'", "''")
        t.update(
            predicate="id = '%s'" % first,
            updates={"raw": "'%s'" % text, "action": "'user_login'"},
        )
        print("rewrote the raw JSON and action of %s" % first)
    elif kind == "add-event":
        made = append_copy(t, first, "00000000-0000-4000-8000-000000000000", keep_leaf=False)
        print("appended a made-up event %s" % made)
    elif kind == "duplicate-id":
        append_copy(t, first, first, keep_leaf=False)
        print("appended a second copy of %s" % first)
    elif kind == "copy-leaf":
        append_copy(t, first, "00000000-0000-4000-8000-000000000001", keep_leaf=True)
        print("appended a made-up event claiming the leaf of %s" % first)
    elif kind == "swap-leaves":
        a = t.to_pyarrow_table(filters=[("id", "=", first)]).to_pylist()[0]["leaf"]
        b = t.to_pyarrow_table(filters=[("id", "=", second)]).to_pylist()[0]["leaf"]
        t.update(predicate="id = '%s'" % first, updates={"leaf": str(b)})
        DeltaTable(os.path.join(archive, "events")).update(
            predicate="id = '%s'" % second, updates={"leaf": str(a)}
        )
        print("swapped the places of %s (leaf %d) and %s (leaf %d)" % (first, a, second, b))
    elif kind == "rewrite-file":
        rel = file_of(archive, first)
        rewrite_file(archive, rel, lambda tb: tb.filter(
            __import__("pyarrow.compute", fromlist=["x"]).not_equal(tb["id"], first)))
        print("dropped %s from %s in place, checksum and log size recomputed" % (first, rel))
    elif kind == "drop-file-from-log":
        rel = file_of(archive, first)
        for log in glob.glob(os.path.join(archive, "events", "_delta_log", "*.json")):
            with open(log) as f:
                lines = [l for l in f if '"%s"' % rel not in l]
            with open(log, "w") as f:
                f.writelines(lines)
        for cp in glob.glob(os.path.join(archive, "events", "_delta_log", "*.checkpoint.parquet")):
            os.remove(cp)
        os.remove(os.path.join(archive, "events", rel))
        shutil.rmtree(os.path.join(archive, "cache"), ignore_errors=True)
        print("removed %s from the log and the disk" % rel)
    elif kind == "edit-tile":
        tiles = sorted(glob.glob(os.path.join(archive, "evidence", "tiles", "*")))
        with open(tiles[0], "r+b") as f:
            f.seek(5)
            b = f.read(1)
            f.seek(5)
            f.write(bytes([b[0] ^ 1]))
        print("changed a byte of %s" % os.path.basename(tiles[0]))
    elif kind == "edit-checkpoint":
        cps = sorted(glob.glob(os.path.join(archive, "evidence", "checkpoints", "*")))
        with open(cps[-1]) as f:
            lines = f.read().split("\n")
        root = lines[2]
        lines[2] = ("B" if root[0] == "A" else "A") + root[1:]
        with open(cps[-1], "w") as f:
            f.write("\n".join(lines))
        print("changed the root of checkpoint %s" % os.path.basename(cps[-1]))
    elif kind == "foreign-checkpoint":
        # `first` is a checkpoint of the same size signed by another key.
        cps = sorted(glob.glob(os.path.join(archive, "evidence", "checkpoints", "*")))
        shutil.copy(first, cps[-1])
        print("replaced checkpoint %s with one signed by another key" % os.path.basename(cps[-1]))
    elif kind == "move-to-quarantine":
        # What `archive repair` does to a later copy: out of the table, its raw bytes
        # into quarantine/conflict/ (not tampering: verify must find and explain it).
        raw = t.to_pyarrow_table(filters=[("id", "=", first)]).to_pylist()[0]["raw"]
        t.delete("id = '%s'" % first)
        q = os.path.join(archive, "quarantine", "conflict")
        os.makedirs(q, exist_ok=True)
        name = xxhash.xxh3_64(raw.encode()).hexdigest()
        with open(os.path.join(q, name + ".json"), "w") as f:
            f.write(raw)
        with open(os.path.join(q, name + ".meta.json"), "w") as f:
            json.dump({"kind": "conflict", "reason": "a later copy", "source": "archive repair", "id": first}, f)
        print("moved %s to quarantine/conflict/%s.json" % (first, name))
    elif kind == "rollback":
        logs = sorted(glob.glob(os.path.join(archive, "events", "_delta_log", "0*.json")))
        os.remove(logs[-1])
        for cp in glob.glob(os.path.join(archive, "events", "_delta_log", "*checkpoint*")):
            os.remove(cp)
        cps = sorted(glob.glob(os.path.join(archive, "evidence", "checkpoints", "*")))
        os.remove(cps[-1])
        shutil.rmtree(os.path.join(archive, "cache"), ignore_errors=True)
        print("removed the last commit %s and its checkpoint" % os.path.basename(logs[-1]))
    else:
        raise SystemExit("unknown kind " + kind)


if __name__ == "__main__":
    main()
