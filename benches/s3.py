#!/usr/bin/env python3
"""The archive on S3 against the same archive on the local disk, same run.

    ~/.cache/auditq-venv/bin/python benches/s3.py [--runs 3] [--import-events 1000000]
        [--cluster]   # also on a Ballista cluster: needs `cargo build --release --features cluster`

Starts moto's S3 server on 127.0.0.1 (the one the tests use; it keeps objects in memory,
so it stands for a store on a fast local network, not for AWS), copies the 10M-event
archive that `benches/query.py` builds (bench-data/query-10000000) into a bucket, and
runs the 8 benchmark queries of issue 3 on both, alternating, `--runs` times each, as
`auditq query` processes (start-up, Delta log, planning and output included). The local
cache of the S3 archive (`$XDG_CACHE_HOME/auditq/<table id>/`) is built by a first query
that is not timed, as a user's first query would. Then `auditq import` of
`--import-events` generated events into an empty local archive and into an empty S3
prefix: events per second. The peer, in the same run on the same files: delta-rs (the
Python `deltalake` package's QueryBuilder, DataFusion inside, in-process: no start-up)
with equivalent SQL, on the local table and on the S3 one through the same server: its
S3 table opened once outside the timing, and (`delta_rs_s3_with_open_ms`) opened again in
each timed run, as a new process of it would (`--import-events 0` skips the imports).
Besides the 8 queries, four neighbours from issue 13: the latest 20 logins of 30 days,
`count by` actor id and country, a glob then `count by`. With `--cluster`, the same queries on the S3 archive run
on a Ballista cluster of `auditq cluster` processes on this machine: a scheduler and one
executor with 2 task slots, then a scheduler and two executors with 1 slot each (the
same two cores). Prints JSON; nothing here is a test.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query import BIN, COLS, DATA, END, NOW, issue_13, queries, sample  # noqa: E402

PYTHON_BIN = Path(sys.executable).parent


NEIGHBOURS = ("latest 20 logins of 30d", "count by actor.id", "count by country (neighbour)",
              "glob + count by actor.id (neighbour)")


def since(d):
    return f"time >= CAST('{NOW}' AS TIMESTAMP) - INTERVAL '{d} days'"


def peer_sql(name, actor, some_id, day):
    """The query `name` as DataFusion SQL over `ev` (delta-rs's dialect)."""
    x = actor.lower()
    return {
        "actor+glob+7d": f"SELECT {COLS} FROM ev WHERE (lower(actor_id) = '{x}' OR lower(actor_email) = '{x}'"
                         f" OR lower(actor_name) = '{x}') AND action ILIKE 'user\\_%' AND {since(7)} ORDER BY time",
        "count by action": "SELECT action, count(*) FROM ev GROUP BY action ORDER BY action",
        "top 10 actors *delete* 30d": "SELECT coalesce(actor_email, actor_name, actor_id) AS a, count(*) AS c FROM ev"
                                      f" WHERE action ILIKE '%delete%' AND {since(30)} GROUP BY a ORDER BY c DESC, a LIMIT 10",
        "ipv4 /16": "SELECT count(*) FROM ev WHERE ip LIKE '10.20.%'",
        "daily counts of one action": "SELECT date_trunc('day', time) AS d, count(*) FROM ev"
                                      " WHERE lower(action) = 'user_login' GROUP BY d ORDER BY d",
        "actors in > 3 countries": "SELECT coalesce(actor_email, actor_name, actor_id) AS a, count(DISTINCT country) AS n"
                                   " FROM ev GROUP BY a HAVING count(DISTINCT country) > 3 ORDER BY a",
        "one day to CSV": f"SELECT {COLS} FROM ev WHERE date = '{day}' ORDER BY time",
        "point lookup by id": f"SELECT {COLS} FROM ev WHERE id = '{some_id}'",
        "latest 20 logins of 30d": f"SELECT {COLS} FROM ev WHERE lower(action) = 'user_login' AND {since(30)}"
                                   " ORDER BY time DESC LIMIT 20",
        "count by actor.id": "SELECT actor_id, count(*) FROM ev GROUP BY actor_id ORDER BY actor_id",
        "count by country (neighbour)": "SELECT country, count(*) FROM ev GROUP BY country ORDER BY country",
        "glob + count by actor.id (neighbour)": "SELECT actor_id, count(*) FROM ev WHERE action ILIKE '%permission%'"
                                                " GROUP BY actor_id ORDER BY actor_id",
    }[name]


def peer(table, sql, runs):
    """Median seconds of delta-rs running `sql` over `table` (a DeltaTable)."""
    import pyarrow as pa
    from deltalake import QueryBuilder
    qb = QueryBuilder().register("ev", table)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        pa.table(qb.execute(sql).read_all())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peer_open(uri, options, sql, runs):
    """Median seconds of delta-rs opening the table at `uri` and running `sql`: what a
    new process of it pays (the interpreter's start-up aside)."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        qb = QueryBuilder().register("ev", DeltaTable(uri, storage_options=options))
        pa.table(qb.execute(sql).read_all())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    proc = subprocess.Popen([PYTHON_BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def upload(endpoint, bucket, prefix, archive):
    """The table and the checksums, as an S3 archive keeps them."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    n = 0
    for path in sorted((archive / "events").rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/events/{path.relative_to(archive / 'events')}")
            n += 1
    sums = archive / "checksums.jsonl"
    if sums.exists():
        s3.upload_file(str(sums), bucket, f"{prefix}/checksums/local.jsonl")
    return n


def start_cluster(env, executors, slots):
    """A scheduler and `executors` executors with `slots` task slots each; the processes
    and the scheduler's address, once it answers queries."""
    sched = f"127.0.0.1:{free_port()}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs = [subprocess.Popen([BIN, "--quiet", "cluster", "scheduler", "--bind", sched], **quiet)]
    for _ in range(executors):
        procs.append(subprocess.Popen([BIN, "--quiet", "cluster", "executor", "--scheduler", sched,
                                       "--port", str(free_port()), "--grpc-port", str(free_port()),
                                       "--vcores", str(slots)], **quiet))
    deadline = time.time() + 60
    while time.time() < deadline:
        r = subprocess.run([BIN, "--quiet", "--archive", "s3://bench/q10m", "query", "--cluster", sched,
                            "--format", "csv", "--", "| count"], capture_output=True, env=env)
        if r.returncode == 0:
            return procs, sched
        time.sleep(0.5)
    for p in procs:
        p.kill()
    raise SystemExit("the cluster did not answer")


def timed(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def import_rates(env, cache, n):
    """Import throughput: the same `n` generated events into an empty archive each."""
    events = Path(cache) / "events.ndjson"
    subprocess.run([BIN, "generate", "--events", str(n), "--days", "30", "--end", END,
                    "--seed", "9", "-o", events], check=True)
    imports = {}
    with tempfile.TemporaryDirectory() as d:
        for where, archive in (("local", Path(d) / "archive"), ("s3", "s3://bench/import")):
            s = timed([BIN, "--quiet", "--archive", archive, "import", events], env)
            imports[where] = {"seconds": round(s, 1), "events_per_s": round(n / s)}
    return imports


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--import-events", type=int, default=1_000_000)
    ap.add_argument("--cluster", action="store_true", help="also on a Ballista cluster")
    args = ap.parse_args()
    local = DATA / "query-10000000"
    if not (local / "events" / "_delta_log").exists():
        raise SystemExit(f"no {local}: run benches/query.py --sizes 10000000 first")
    moto, endpoint = start_moto()
    cache = tempfile.mkdtemp(prefix="auditq-s3-cache-")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, XDG_CACHE_HOME=cache)
    result = {"endpoint": "moto_server on 127.0.0.1"}
    try:
        t = time.perf_counter()
        result["objects_uploaded"] = upload(endpoint, "bench", "q10m", local)
        result["upload_s"] = round(time.perf_counter() - t, 1)
        remote = "s3://bench/q10m"
        actor, some_id = sample(local)
        # The first query builds the S3 archive's local cache (summaries, checksums).
        t = time.perf_counter()
        subprocess.run([BIN, "--quiet", "--archive", remote, "query", "--now", NOW, "--", "| count"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        result["first_query_s3_s"] = round(time.perf_counter() - t, 2)
        from deltalake import DeltaTable
        from query import DAY
        s3_options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                      "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        tables = {"local": DeltaTable(str(local / "events")),
                  "s3": DeltaTable(f"{remote}/events", storage_options=s3_options)}
        shapes = queries(actor, some_id) + [s for s in issue_13("unused") if s[0] in NEIGHBOURS]
        rows = []
        for name, _kind, q, _sql, out in shapes:
            times = {"local": [], "s3": []}
            for _ in range(args.runs):
                for where, archive in (("local", local), ("s3", remote)):
                    cmd = [BIN, "--quiet", "--archive", archive, "query", "--now", NOW]
                    cmd += ["-o", str(out)] if out else ["--format", "csv"]
                    times[where].append(timed(cmd + ["--", q], env))
            ml, ms = statistics.median(times["local"]), statistics.median(times["s3"])
            sql = peer_sql(name, actor, some_id, DAY)
            pl, ps = peer(tables["local"], sql, args.runs), peer(tables["s3"], sql, args.runs)
            po = peer_open(f"{remote}/events", s3_options, sql, args.runs)
            rows.append({"query": name, "local_ms": round(ml * 1000, 1), "s3_ms": round(ms * 1000, 1),
                         "s3_over_local": round(ms / ml, 2),
                         "delta_rs_local_ms": round(pl * 1000, 1), "delta_rs_s3_ms": round(ps * 1000, 1),
                         "delta_rs_s3_with_open_ms": round(po * 1000, 1),
                         "ratio_local": round(ml / pl, 2), "ratio_s3": round(ms / ps, 2),
                         "ratio_s3_with_open": round(ms / po, 2)})
        result["queries"] = rows
        if args.cluster:
            for executors, slots in ((1, 2), (2, 1)):
                procs, sched = start_cluster(env, executors, slots)
                try:
                    for row, (name, _kind, q, _sql, out) in zip(rows, shapes):
                        cmd = [BIN, "--quiet", "--archive", remote, "query", "--cluster", sched, "--now", NOW]
                        cmd += ["-o", str(out)] if out else ["--format", "csv"]
                        t = statistics.median(timed(cmd + ["--", q], env) for _ in range(args.runs))
                        row[f"cluster_{executors}x{slots}_ms"] = round(t * 1000, 1)
                finally:
                    for p in procs:
                        p.kill()
        if args.import_events:
            result["import"] = import_rates(env, cache, args.import_events)
    finally:
        moto.kill()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
