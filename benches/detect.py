#!/usr/bin/env python3
"""Rule-pack benchmark: `auditq detect` (every rule of examples/detections in one pass
over the archive) against the same rules run one by one (one `detect` per rule, each its
own pass), and `follow --rules` throughput with every rule against one rule.

    ~/.cache/auditq-venv/bin/python benches/detect.py [--events 1000000] [--runs 3] [--no-build]

The archive is `bench-data/query-N` of benches/query.py (365 days, compacted); the
stream is the same generator's NDJSON. Each figure is a process (start-up included).
Medians of --runs. The hits of the one-pass run must equal the sum of the one-by-one
runs: printed. Nothing here is a test: numbers are reported.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query import BIN, DATA, END, NOW, ROOT, build_archive, sh  # noqa: E402

RULES = ROOT / "examples" / "detections"


def timed(cmd, **kw):
    t = time.perf_counter()
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)
    return time.perf_counter() - t, out.stdout


def detect(archive, rules):
    return timed([BIN, "--quiet", "--archive", archive, "detect", rules, "--since", "400d",
                  "--now", NOW, "--format", "json"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only-follow", action="store_true", help="skip the detect figures")
    args = ap.parse_args()
    if not args.no_build:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    archive = DATA / f"query-{args.events}"
    build_archive(args.events, 365, archive)
    rules = sorted(RULES.glob("*.aq"))
    one_pass, by_one = [], []
    hits_all = hits_sum = None
    with tempfile.TemporaryDirectory() as tmp:
        singles = []
        for r in rules:
            d = Path(tmp) / r.stem
            d.mkdir()
            shutil.copy(r, d / r.name)
            singles.append(d)
        for _ in range(0 if args.only_follow else args.runs):
            t, out = detect(archive, RULES)
            one_pass.append(t)
            hits_all = sum(f["hits"] for f in json.loads(out)["rules"])
            total, hits_sum = 0.0, 0
            for d in singles:
                t, out = detect(archive, d)
                total += t
                hits_sum += json.loads(out)["rules"][0]["hits"]
            by_one.append(total)
    # follow --rules over the same generator's events as NDJSON, against one rule.
    stream = DATA / f"events-{args.events}.ndjson"
    if not stream.exists():
        sh([BIN, "generate", "--events", str(args.events), "--days", "365", "--end", END, "--seed", "3",
            "-o", stream])
    # One rule as a pack of one (`--rules` on a directory of just it), and as a plain
    # query (which also gets the literal prefilter: lines that cannot match are not
    # parsed).
    live_all, live_pack, live_one = [], [], []
    with tempfile.TemporaryDirectory() as one_dir:
        shutil.copy(RULES / "impersonation.aq", Path(one_dir) / "impersonation.aq")
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                env = {"XDG_DATA_HOME": tmp, "PATH": "/usr/bin:/bin"}
                for into, pack in [(live_all, RULES), (live_pack, one_dir)]:
                    with open(stream) as f:
                        t, _ = timed([BIN, "--quiet", "follow", "--stdin", "--now", NOW, "--rules", pack],
                                     stdin=f, env=env)
                    into.append(t)
                with open(stream) as f:
                    t, _ = timed([BIN, "--quiet", "follow", "--stdin", "--now", NOW, "--",
                                  "event:user_logged_in_as_user"], stdin=f, env=env)
                live_one.append(t)
    med = statistics.median
    detect_figures = {} if args.only_follow else {
        "detect_one_pass_s": round(med(one_pass), 2),
        "detect_rules_one_by_one_s": round(med(by_one), 2),
        "one_pass_speedup": round(med(by_one) / med(one_pass), 2),
        "hits_one_pass": hits_all, "hits_one_by_one": hits_sum,
    }
    print(json.dumps({
        "events": args.events, "rules": [r.stem for r in rules], "runs": args.runs,
        **detect_figures,
        "follow_rules_all_s": round(med(live_all), 2),
        "follow_rules_all_events_per_s": round(args.events / med(live_all)),
        "follow_one_rule_pack_s": round(med(live_pack), 2),
        "follow_one_rule_pack_events_per_s": round(args.events / med(live_pack)),
        "follow_one_rule_query_s": round(med(live_one), 2),
        "follow_one_rule_query_events_per_s": round(args.events / med(live_one)),
    }, indent=2))


if __name__ == "__main__":
    main()
