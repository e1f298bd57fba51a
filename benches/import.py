#!/usr/bin/env python3
"""Import benchmark: auditq vs DuckDB on the same generated NDJSON, same run.

    scripts/python-venv.sh                       # once: deltalake, pyarrow, duckdb
    ~/.cache/auditq-venv/bin/python benches/import.py [--events 1000000] [--runs 3] [--rss-events 10000000]

Measures, with medians of --runs runs:
  * `auditq generate` throughput (events/s, to /dev/null);
  * `auditq import` of the file into a fresh archive (events/s);
  * DuckDB `COPY (SELECT … FROM read_json(…)) TO … (FORMAT parquet, PARTITION_BY date)`
    on the same file (events/s) — the peer;
  * peak RSS of `auditq generate --events N | auditq import -` for --rss-events events.
Data lives in ./bench-data (git-ignored). Nothing here is a test: numbers are reported.
"""
import argparse
import json
import os
import resource
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


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def generate(n, path):
    if not path.exists():
        with open(path, "wb") as out:
            sh([BIN, "generate", "--events", str(n), "--days", "365", "--end", END, "--seed", "1"], stdout=out)
    return path


def auditq_import(src, archive):
    shutil.rmtree(archive, ignore_errors=True)
    sh([BIN, "--quiet", "--archive", archive, "import", src])


def duckdb_copy(src, out):
    import duckdb

    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        COPY (
          SELECT id,
                 attributes.time::TIMESTAMPTZ AS time,
                 attributes.processedAt::TIMESTAMPTZ AS processed_at,
                 attributes.action AS action,
                 attributes.actor.id AS actor_id,
                 attributes.actor.name AS actor_name,
                 attributes.actor.email AS actor_email,
                 attributes.actor.auth.authType AS auth_type,
                 attributes.actor.auth.tokenLabel AS token_label,
                 attributes.location.ip AS ip,
                 attributes.location.countryName AS country,
                 attributes.location.regionName AS region,
                 attributes.location.city AS city,
                 message.content AS message,
                 attributes.context AS context,
                 attributes.container AS container,
                 strftime(attributes.time::TIMESTAMPTZ, '%Y-%m-%d') AS date
          FROM read_json('{src}', format = 'newline_delimited')
          ORDER BY time
        ) TO '{out}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd)
        """
    )
    con.close()


def peak_rss_pipeline(n):
    """Peak RSS (MiB) of `auditq import -` fed by `auditq generate` through a pipe."""
    archive = DATA / "rss-archive"
    shutil.rmtree(archive, ignore_errors=True)
    gen = subprocess.Popen(
        [BIN, "generate", "--events", str(n), "--days", "365", "--end", END, "--seed", "2"],
        stdout=subprocess.PIPE,
    )
    t = time.perf_counter()
    imp = subprocess.Popen(
        ["/usr/bin/time", "-f", "%M", BIN, "--quiet", "--archive", archive, "import", "-"],
        stdin=gen.stdout,
        stderr=subprocess.PIPE,
    )
    gen.stdout.close()
    _, err = imp.communicate()
    gen.wait()
    secs = time.perf_counter() - t
    if imp.returncode != 0:
        sys.exit(f"import failed: {err.decode()}")
    kib = int(err.decode().strip().splitlines()[-1])
    shutil.rmtree(archive, ignore_errors=True)
    return kib / 1024, n / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-events", type=int, default=10_000_000, help="0 to skip")
    args = ap.parse_args()

    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    DATA.mkdir(exist_ok=True)
    n = args.events
    src = generate(n, DATA / f"events-{n}.ndjson")
    size_mib = src.stat().st_size / 2**20

    gen_s = [
        timed(lambda: sh([BIN, "generate", "--events", str(n), "--days", "365", "--end", END],
                         stdout=subprocess.DEVNULL))
        for _ in range(args.runs)
    ]
    imp_s = [timed(lambda: auditq_import(src, DATA / "archive")) for _ in range(args.runs)]
    duck_s = [timed(lambda: duckdb_copy(src, DATA / "duckdb-out")) for _ in range(args.runs)]

    result = {
        "events": n,
        "input_mib": round(size_mib, 1),
        "runs": args.runs,
        "generate_events_per_s": round(n / statistics.median(gen_s)),
        "auditq_import_events_per_s": round(n / statistics.median(imp_s)),
        "auditq_import_seconds": [round(s, 2) for s in imp_s],
        "duckdb_copy_events_per_s": round(n / statistics.median(duck_s)),
        "duckdb_copy_seconds": [round(s, 2) for s in duck_s],
        "cpus": os.cpu_count(),
    }
    if args.rss_events:
        rss, rate = peak_rss_pipeline(args.rss_events)
        result["rss_events"] = args.rss_events
        result["rss_peak_mib"] = round(rss)
        result["rss_pipeline_events_per_s"] = round(rate)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
