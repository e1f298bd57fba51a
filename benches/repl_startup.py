#!/usr/bin/env python3
"""REPL start-up benchmark: time from exec to the first `auditq> ` prompt, in a pty.

Uses the demo archive (`auditq demo --dir bench-data/demo`, made when missing), runs
`auditq repl` --runs times and prints the median. The peer, measured in the same run: the
time DuckDB (the Python package, as in benches/query.py) takes from exec to the answer of
`SELECT 1` on an in-memory database, when AUDITQ_PYTHON (or ~/.cache/auditq-venv) has it.

    python3 benches/repl_startup.py --runs 10
"""
import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "auditq"
DEMO = ROOT / "bench-data" / "demo"


def until_prompt(argv, env, home):
    """Seconds from exec until the prompt shows; then Ctrl-D."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    started = time.perf_counter()
    seen = b""
    while b"auditq> " not in seen:
        ready, _, _ = select.select([fd], [], [], 10)
        if not ready:
            os.kill(pid, 9)
            raise SystemExit("no prompt within 10 s: " + seen.decode(errors="replace"))
        seen += os.read(fd, 4096)
    secs = time.perf_counter() - started
    os.write(fd, b"\x04")
    os.waitpid(pid, 0)
    os.close(fd)
    return secs


def peer(runs):
    python = os.environ.get("AUDITQ_PYTHON") or str(Path.home() / ".cache/auditq-venv/bin/python")
    if not Path(python).exists():
        return None
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([python, "-c", "import duckdb; duckdb.sql('SELECT 1').fetchall()"], check=True)
        times.append(time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if not (DEMO / "events").exists():
        subprocess.run([BIN, "--quiet", "demo", "--dir", DEMO], check=True, stdout=subprocess.DEVNULL)
    home = ROOT / "bench-data" / "repl-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TERM": "xterm", "HOME": str(home),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config")}
    argv = [str(BIN), "--archive", str(DEMO), "repl"]
    times = [until_prompt(argv, env, home) for _ in range(args.runs)]
    duck = peer(args.runs)
    print(json.dumps({
        "runs": args.runs,
        "auditq_repl_to_prompt_ms_median": round(statistics.median(times) * 1000, 1),
        "auditq_all_ms": [round(t * 1000, 1) for t in times],
        "duckdb_python_select1_ms_median": duck and round(statistics.median(duck) * 1000, 1),
        "target_ms": 300,
    }, indent=2))


if __name__ == "__main__":
    main()
