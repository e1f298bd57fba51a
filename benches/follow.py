#!/usr/bin/env python3
"""`auditq follow` benchmark: filter throughput on stdin against jq and DuckDB, and the
latency from a new event on the fake API to the sink.

Throughput: 1M generated events (NDJSON, 365 days) in one file; each tool reads the
whole file and writes the matching events as JSON lines to /dev/null, with the same
filter. `auditq follow --stdin 'Q' < FILE`, `jq -c 'select(…)' FILE` and DuckDB's
`COPY (SELECT * FROM read_json(FILE) WHERE …) TO '/dev/null'`. The match counts of the
three are checked to be equal first. Medians of --runs runs, all in the same run of
this script.

Latency: `auditq fake-api` on 127.0.0.1 and `auditq follow --org … --poll P --sink
file:…`; once it is caught up, one event at a time is appended to the fake API and the
time until its id is in the sink file is measured. The target is P + 1 s.

    ~/.cache/auditq-venv/bin/python benches/follow.py [--events 1000000] [--runs 5]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "auditq"
DATA = ROOT / "bench-data"

# (auditq query, jq filter, DuckDB WHERE): the same events each way. The data's
# actions and e-mail addresses are lower case, so auditq's case-insensitive `~`
# selects what the case-sensitive jq and DuckDB forms do (the counts are checked).
FILTERS = [
    ("action == user_login_failed",
     'select(.attributes.action == "user_login_failed")',
     "attributes.action = 'user_login_failed'"),
    ('actor.email ~ "ada*" and action ~ "*delete*"',
     'select((.attributes.actor.email // "" | startswith("ada")) and (.attributes.action | contains("delete")))',
     "attributes.actor.email LIKE 'ada%' AND attributes.action LIKE '%delete%'"),
    ('country:Germany -event:user_login*',
     'select(.attributes.location.countryName == "Germany" and (.attributes.action | startswith("user_login") | not))',
     "attributes.location.countryName = 'Germany' AND attributes.action NOT LIKE 'user_login%'"),
    # No word to look for: every line is parsed (the prefilter does not apply).
    ('not has region',
     'select((.attributes.location.regionName // "") == "")',
     "coalesce(attributes.location.regionName, '') = ''"),
]


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t


def lines(cmd, **kw):
    out = subprocess.run(cmd, check=True, capture_output=True, **kw).stdout
    return out.count(b"\n")


def throughput(path, n, runs, only=None):
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    results = []
    env = {**os.environ, "XDG_DATA_HOME": tempfile.mkdtemp()}
    for q, jq, where in FILTERS if only is None else [FILTERS[only]]:
        sql = f"SELECT * FROM read_json('{path}', format='newline_delimited') WHERE {where}"
        counts = {
            "auditq": lines([BIN, "--quiet", "follow", "--stdin", q], stdin=open(path, "rb"), env=env),
            "jq": lines(["jq", "-c", jq, str(path)]),
            "duckdb": con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0],
        }
        assert len(set(counts.values())) == 1, f"{q}: counts differ {counts}"
        t_a, t_j, t_d = [], [], []
        for _ in range(runs):
            with open(path, "rb") as f:
                t_a.append(timed([BIN, "--quiet", "follow", "--stdin", q], stdin=f,
                                 stdout=subprocess.DEVNULL, env=env))
            t_j.append(timed(["jq", "-c", jq, str(path)], stdout=subprocess.DEVNULL))
            t = time.perf_counter()
            con.execute(f"COPY ({sql}) TO '/dev/null' (FORMAT json)")
            t_d.append(time.perf_counter() - t)
        a, j, d = (statistics.median(x) for x in (t_a, t_j, t_d))
        r = {"query": q, "matches": counts["auditq"],
             "auditq_events_per_s": round(n / a), "jq_events_per_s": round(n / j),
             "duckdb_events_per_s": round(n / d),
             "vs_jq": round(j / a, 1), "vs_duckdb": round(d / a, 2)}
        print(json.dumps(r), flush=True)
        results.append(r)
    return results


def latency(poll, samples):
    fake = subprocess.Popen([BIN, "fake-api", "--events", "1000", "--days", "2", "--no-rate-limit"],
                            stdout=subprocess.PIPE, text=True)
    work = Path(tempfile.mkdtemp())
    follower = None
    try:
        info = dict(fake.stdout.readline().split(None, 1) for _ in range(3))
        info = {k: v.strip() for k, v in info.items()}
        sink = work / "out.ndjson"
        env = {**os.environ, "ATLASSIAN_API_KEY": info["token"], "XDG_DATA_HOME": str(work)}
        follower = subprocess.Popen([BIN, "--quiet", "follow", "--org", info["org"], "--api-url", info["url"],
                                     "--since", "3d", "--poll", f"{poll}s", "--state", work / "state",
                                     "--sink", f"file:{sink}", ""], env=env)
        # Caught up: the backlog is in the sink.
        deadline = time.time() + 60
        while time.time() < deadline and (not sink.exists() or sink.read_text().count("\n") < 990):
            time.sleep(0.1)
        out = []
        for i in range(samples):
            # A random phase against the poll.
            time.sleep(0.37 * (i % 7))
            req = urllib.request.Request(f"{info['url']}/_fake/append?n=1", method="POST", data=b"")
            t0 = time.perf_counter()
            ids = json.loads(urllib.request.urlopen(req).read())["added"]
            while ids[0] not in sink.read_text():
                time.sleep(0.01)
                if time.perf_counter() - t0 > poll + 30:
                    raise SystemExit("an event never reached the sink")
            out.append(time.perf_counter() - t0)
        r = {"poll_s": poll, "samples": samples, "median_s": round(statistics.median(out), 3),
             "max_s": round(max(out), 3), "target_s": poll + 1}
        print(json.dumps(r), flush=True)
        return r
    finally:
        if follower:
            follower.terminate()
            follower.wait()
        fake.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--poll", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--only", type=int, help="run only this filter (0-based), no latency")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    DATA.mkdir(exist_ok=True)
    path = DATA / f"follow-{args.events}.ndjson"
    if not path.exists():
        subprocess.run([BIN, "generate", "--events", str(args.events), "--days", "365",
                        "--end", "2026-11-01T00:00:00Z", "--seed", "1", "-o", path], check=True)
    results = {"events": args.events, "runs": args.runs,
               "throughput": throughput(path, args.events, args.runs, args.only)}
    if args.only is None:
        results["latency"] = latency(args.poll, args.samples)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
