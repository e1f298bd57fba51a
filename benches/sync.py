#!/usr/bin/env python3
"""Sync benchmark: `auditq sync` of N events from the fake API (rate limits off).

Starts `auditq fake-api --events N --no-rate-limit` on 127.0.0.1, syncs into a fresh
archive --runs times, and prints the median events/s and the peak RSS of the sync
process (the fake API runs in its own process and is not counted).

    python3 benches/sync.py --events 1000000 --runs 3
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "auditq"
DATA = ROOT / "bench-data"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    DATA.mkdir(exist_ok=True)
    fake = subprocess.Popen([BIN, "fake-api", "--events", str(args.events), "--days", str(args.days),
                             "--no-rate-limit"], stdout=subprocess.PIPE, text=True)
    try:
        info = dict(fake.stdout.readline().split(None, 1) for _ in range(3))
        info = {k: v.strip() for k, v in info.items()}
        rates, rss = [], []
        for _ in range(args.runs):
            archive = DATA / f"sync-{args.events}"
            shutil.rmtree(archive, ignore_errors=True)
            env = {**os.environ, "ATLASSIAN_API_KEY": info["token"]}
            t = time.perf_counter()
            out = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "--archive", archive, "sync",
                                  "--org", info["org"], "--api-url", info["url"], "--since", f"{args.days + 1}d"],
                                 env=env, check=True, capture_output=True, text=True)
            secs = time.perf_counter() - t
            rss.append(int(out.stderr.strip().splitlines()[-1]) / 1024)
            rates.append(args.events / secs)
            print(out.stdout.strip(), flush=True)
        print(json.dumps({"events": args.events, "runs": args.runs,
                          "median_events_per_s": round(statistics.median(rates)),
                          "all_events_per_s": [round(r) for r in rates],
                          "peak_rss_mib": round(max(rss))}, indent=2))
    finally:
        fake.kill()


if __name__ == "__main__":
    main()
