#!/usr/bin/env python3
"""Random damage to data files: every query either fails naming the file or answers
exactly as on the undamaged archive; never a different answer with exit 0.

    scripts/corrupt.py [--rounds 100] [--events 200000] [--bin target/release/auditq]

Each round copies a clean archive, overwrites 4 KiB (zeros or random bytes, about a page)
at a random place in one random live data file, and runs a set of queries. Prints the
counts and exits 1 on any silently wrong answer. Standard library only.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-01T00:00:00Z"
QUERIES = [
    "| count",
    "| count by action",
    "on 2026-10-15 | count",
    "on 2026-10-30 | count by actor.id",
    'event ~ "user_*" | stats count, dc(actor.id) as actors by country',
    "since 7d | sort -time | head 20",
    "| fields *",
    "| timechart 1d",
]


def run(binary, archive, q):
    p = subprocess.run([binary, "--archive", archive, "query", "--now", NOW, "--format", "csv", "--", q],
                       capture_output=True, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "auditq"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp())
    try:
        events = work / "e.ndjson"
        with open(events, "wb") as f:
            subprocess.run([args.bin, "generate", "--events", str(args.events), "--days", "30", "--end", NOW,
                            "--seed", str(args.seed)], stdout=f, check=True)
        clean = work / "clean"
        subprocess.run([args.bin, "--archive", clean, "import", events], check=True, capture_output=True)
        want = {q: run(args.bin, clean, q) for q in QUERIES}
        assert all(code == 0 for code, _, _ in want.values()), want
        files = sorted(p for p in (clean / "events").rglob("*.parquet"))
        named = correct = wrong = 0
        for r in range(args.rounds):
            victim_archive = work / f"r{r}"
            shutil.copytree(clean, victim_archive)
            victim = victim_archive / rng.choice(files).relative_to(clean)
            size = victim.stat().st_size
            at = rng.randrange(0, max(1, size - 4096))
            damage = bytes(4096) if rng.random() < 0.5 else rng.randbytes(4096)
            with open(victim, "r+b") as f:
                f.seek(at)
                f.write(damage[: size - at])
            for q in QUERIES:
                code, out, err = run(args.bin, victim_archive, q)
                if code == 0 and out == want[q][1]:
                    correct += 1
                elif code != 0 and victim.name in err:
                    named += 1
                else:
                    wrong += 1
                    print(f"round {r}: `{q}` on {victim.name} @ {at}: exit {code}\n{err[:500]}", file=sys.stderr)
            shutil.rmtree(victim_archive)
        print(f"{args.rounds} damaged files x {len(QUERIES)} queries: {named} failed naming the file, "
              f"{correct} answered correctly, {wrong} wrong or unnamed")
        sys.exit(1 if wrong else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
