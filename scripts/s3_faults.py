#!/usr/bin/env python3
"""Issue 27's S3 fault rounds: auditq writing to moto (S3 on 127.0.0.1) through
tests/python/s3_fault_proxy.py, which drops replies after forwarding, stalls, resets
connections and answers 500 or 503 SlowDown, at random.

    s3_faults.py --bin BIN [--rounds 50] [--events 20000] [--seed 1]

Each round, one of:
  import       a fresh archive imported through the faults
  sync         the fake API synced through the faults
  compact      an archive of small commits compacted through the faults
  compact|vacuum  a compaction through the faults, its commit held back 4 s (and its
               reply then lost) while `vacuum --older-than 0d --force` runs beside it
Besides the random faults (5-15% of all requests), the reply to one commit of the first
three is always dropped after the store wrote it.
A command the faults made fail (retries exhausted) is run again without faults, as a
user would. Then: every event once by an independent reader (delta-rs from Python, on
the server directly), the same count by auditq, and `archive verify` ok. Exits 1 at the
first round that fails. Needs the test virtualenv (moto, deltalake): scripts/test makes
it. Every server is on 127.0.0.1 and killed at the end.
"""

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMIT = r"_delta_log/\d{20}\.json$"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {seconds} s")


class World:
    def __init__(self, bin_path, work):
        self.bin = bin_path
        self.work = work
        py = os.path.dirname(sys.executable)
        self.s3_port = free_port()
        self.moto = subprocess.Popen(
            [os.path.join(py, "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.s3_port)
        self.proxy = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests/python/s3_fault_proxy.py"), str(self.s3_port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.proxy_port = int(self.proxy.stdout.readline().split()[1])
        self.direct = f"http://127.0.0.1:{self.s3_port}"
        self.faulty = f"http://127.0.0.1:{self.proxy_port}"
        req = urllib.request.Request(f"{self.direct}/audit", method="PUT", headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"})
        urllib.request.urlopen(req).read()

    def env(self, endpoint):
        e = dict(os.environ)
        e.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                  "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                  "AWS_ALLOW_HTTP": "true", "XDG_CACHE_HOME": os.path.join(self.work, "cache"),
                  "AUDITQ_CONFIG": os.path.join(self.work, "none.toml"), "NO_COLOR": "1"})
        e.pop("AUDITQ_ARCHIVE", None)
        return e

    def auditq(self, url, args, faulty=False, timeout=600, **kw):
        return subprocess.run([self.bin, "--archive", url, *args], capture_output=True, text=True,
                              env=self.env(self.faulty if faulty else self.direct), timeout=timeout, **kw)

    def spawn(self, url, args):
        return subprocess.Popen([self.bin, "--archive", url, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(self.faulty))

    def arm(self, plan):
        urllib.request.urlopen(urllib.request.Request(
            f"{self.faulty}/__faults", data=json.dumps(plan).encode(), method="POST")).read()

    def injected(self):
        return json.loads(urllib.request.urlopen(f"{self.faulty}/__faults").read())["injected"]

    def counts(self, url):
        """(rows, distinct ids) by delta-rs, and auditq's `| count, dc(id)`."""
        code = ("import json,sys; import pyarrow.compute as pc; from deltalake import DeltaTable;"
                "t=DeltaTable(sys.argv[1]).to_pyarrow_table(columns=['id']);"
                "print(json.dumps([t.num_rows, len(pc.unique(t['id']))]), flush=True);"
                "import os; os._exit(0)")
        # The reader sometimes aborts in its teardown ("terminate called without an active
        # exception"): it leaves by os._exit once it has answered, and one that failed
        # anyway is asked again, three times at most.
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", code, f"{url}/events"],
                                 capture_output=True, text=True, env=self.env(self.direct),
                                 timeout=300)
            if out.returncode == 0 and out.stdout.strip():
                break
        else:
            return None, out.stderr.strip()[-400:]
        q = self.auditq(url, ["query", "--format", "csv", "--", "| count, dc(id) as ids"])
        return tuple(json.loads(out.stdout)), q.stdout.strip().splitlines()[-1:] or q.stderr

    def close(self):
        for p in (self.proxy, self.moto):
            p.kill()
            p.wait()


def random_plan(rng, seed):
    """Random faults on every kind of request, and the reply to one commit (of the first
    three) dropped after the store wrote it."""
    p = rng.choice([0.05, 0.1, 0.15])
    return {"rules": [{"method": "PUT", "path": COMMIT, "action": "drop_reply",
                       "skip": rng.randint(0, 2), "times": 1}],
            "random": {"seed": seed, "methods": ["PUT", "DELETE", "GET", "HEAD", "POST"],
                       "seconds": rng.choice([0.2, 0.5, 1.0]),
                       "p": {"drop_reply": p, "stall": p / 2, "stall_reply": p / 2,
                             "reset": p / 3, "error500": p / 3, "slowdown503": p / 3}}}


def until_done(world, url, args, faulty_first=True):
    """Run through the faults; if that failed, again without (a user's retry)."""
    first = world.auditq(url, args, faulty=faulty_first)
    if "panicked" in first.stderr:
        raise SystemExit(f"auditq panicked: {first.stderr}")
    if first.returncode == 0:
        return first, None
    again = world.auditq(url, args)
    if again.returncode != 0:
        raise SystemExit(f"{args[0]} failed even without faults: {again.stderr}")
    why = (first.stderr.strip().splitlines() or ["(nothing said)"])[-1][:300]
    return again, f"{first.returncode} ({why})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="auditq-s3-faults-")
    world = World(a.bin, work)
    events = os.path.join(work, "e.ndjson")
    subprocess.run([a.bin, "generate", "--events", str(a.events), "--days", "20", "--seed",
                    str(a.seed), "-o", events], check=True)
    api_port = free_port()
    api = subprocess.Popen([a.bin, "fake-api", "--port", str(api_port), "--events", str(a.events),
                            "--seed", str(a.seed), "--no-rate-limit"], stdout=subprocess.PIPE, text=True)
    info = dict(api.stdout.readline().split() for _ in range(3))
    # What the API holds, synced once to a local archive without faults.
    sync_args = ["sync", "--org", info["org"], "--api-url", info["url"], "--since", "60d",
                 "--page-size", "500"]
    local = os.path.join(work, "local")
    env = dict(os.environ, ATLASSIAN_API_KEY=info["token"])
    subprocess.run([a.bin, "--archive", local, *sync_args], check=True, env=env, capture_output=True)
    api_events = int(subprocess.run([a.bin, "--archive", local, "query", "--format", "csv", "--",
                                     "| count"], capture_output=True, text=True).stdout.split()[-1])
    os.environ["ATLASSIAN_API_KEY"] = info["token"]
    kinds = ["import", "sync", "compact", "compact|vacuum"]
    failures, injected_total, commit_faults = 0, 0, 0
    try:
        for rnd in range(1, a.rounds + 1):
            kind = kinds[(rnd - 1) % len(kinds)]
            url = f"s3://audit/round-{rnd}"
            started = time.time()
            retried = None
            want = a.events
            if kind == "import":
                world.arm(random_plan(rng, rnd))
                _, retried = until_done(world, url, ["import", "--batch-size", "2000", events])
            elif kind == "sync":
                world.arm(random_plan(rng, rnd))
                _, retried = until_done(world, url, sync_args)
                want = api_events
            else:
                r = world.auditq(url, ["import", "--batch-size", "1500", events])
                if r.returncode != 0:
                    raise SystemExit(f"round {rnd}: the clean import failed: {r.stderr}")
                if kind == "compact":
                    world.arm(random_plan(rng, rnd))
                    _, retried = until_done(world, url, ["archive", "compact"])
                else:
                    # The commit held back long enough for a vacuum to run beside it.
                    plan = random_plan(rng, rnd)
                    # (and its reply lost, after the store wrote it).
                    plan["rules"] = [{"method": "PUT", "path": COMMIT, "action": "stall_drop",
                                      "seconds": 4, "times": 1}]
                    world.arm(plan)
                    compact = world.spawn(url, ["archive", "compact"])
                    deadline = time.time() + 120
                    while not any(f["action"] == "stall_drop"
                                  for f in world.injected()):
                        if time.time() > deadline or compact.poll() is not None:
                            break
                        time.sleep(0.05)
                    v = world.auditq(url, ["archive", "vacuum", "--older-than", "0d", "--force"])
                    if v.returncode != 0:
                        raise SystemExit(f"round {rnd}: vacuum failed: {v.stderr}")
                    _, err = compact.communicate(timeout=600)
                    if compact.returncode != 0:
                        why = (err.strip().splitlines() or ["(nothing said)"])[-1][:300]
                        retried = f"{compact.returncode} ({why})"
                        r = world.auditq(url, ["archive", "compact"])
                        if r.returncode != 0:
                            raise SystemExit(f"round {rnd}: compact failed again: {r.stderr}")
            faults = world.injected()
            injected_total += len(faults)
            world.arm({})
            (py, ours) = world.counts(url)
            verify = world.auditq(url, ["archive", "verify"])
            good = (py == (want, want) and ours == [f"{want},{want}"]
                    and verify.returncode == 0 and verify.stdout.startswith("ok:"))
            actions = {}
            for f in faults:
                actions[f["action"]] = actions.get(f["action"], 0) + 1
            on_commits = sum(1 for f in faults if f["method"] == "PUT" and re.search(COMMIT, f["path"]))
            actions["on commits"] = on_commits
            commit_faults += on_commits
            print(f"round {rnd:2} {kind:15} faults {json.dumps(actions, sort_keys=True):70} "
                  f"{'retried' if retried else 'first try':10} "
                  f"delta-rs {py} auditq {ours} verify {'ok' if verify.returncode == 0 else 'FAILED'} "
                  f"{time.time() - started:.1f}s", flush=True)
            if retried:
                print(f"         the first try: exit {retried}", flush=True)
            if not good:
                failures += 1
                print(verify.stdout, verify.stderr, file=sys.stderr)
                raise SystemExit(1)
        print(f"all {a.rounds} rounds: nothing lost, nothing twice, verify ok "
              f"({injected_total} faults injected, {commit_faults} of them on commits)")
    finally:
        api.kill()
        world.close()


if __name__ == "__main__":
    main()
