#!/usr/bin/env bash
# Fault suite of issue 14, at full size (the integration tests run each fault smaller,
# on every change).
#
#   scripts/faults.sh [ROUNDS] [EVENTS]      # default 20 rounds of 300,000 events
#
# Sections: 1. two writers without the lock; 2. damaged data files; 3. S3 through a
# fault-injecting proxy (issue 27: 50 rounds of lost replies, stalls, resets, 500s and
# 503s during imports, syncs, compactions, and compaction beside vacuum). Section 3 needs
# the test virtualenv (scripts/test makes it; AUDITQ_VENV names it).
#
# 1. Two writers after `LOCK` is removed. Each round imports the same
# events twice at once (the lock file removed under the first writer) and checks that
# the archive holds every id exactly once and `archive verify` passes. Uses the release
# binary (`cargo build --release` first). Exits 1 at the first failed round.
set -euo pipefail
rounds=${1:-20}
events=${2:-300000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AUDITQ_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/auditq}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" generate --events "$events" --days 60 --seed 1 >"$work/e.ndjson"
for round in $(seq 1 "$rounds"); do
    a="$work/dl-$round"
    "$bin" --archive "$a" import --batch-size 3000 "$work/e.ndjson" >/dev/null 2>"$work/first.err" &
    first=$!
    # Bounded wait for the first writer's LOCK and a commit or two.
    for _ in $(seq 1 300); do
        [ -e "$a/LOCK" ] && [ "$(ls "$a/events/_delta_log" 2>/dev/null | wc -l)" -ge 3 ] && break
        sleep 0.01
    done
    rm -f "$a/LOCK"
    set +e
    "$bin" --archive "$a" import --batch-size 3000 "$work/e.ndjson" >/dev/null 2>"$work/second.err"
    second=$?
    wait "$first"
    first=$?
    set -e
    counts=$("$bin" --archive "$a" query --format csv -- '| count, dc(id) as ids' | tail -1)
    if "$bin" --archive "$a" archive verify >/dev/null 2>&1; then verify=ok; else verify=FAILED; fi
    echo "round $round: exit codes $first $second, rows,ids $counts, verify $verify"
    if [ "$first" != 0 ] || [ "$second" != 0 ] || [ "$counts" != "$events,$events" ] || [ "$verify" != ok ]; then
        cat "$work/first.err" "$work/second.err" >&2
        exit 1
    fi
    rm -rf "$a"
done
echo "all $rounds rounds: exactly $events ids, none twice"

# 2. Damaged data files: 100 random 4 KiB overwrites, every query named or right.
AUDITQ_BIN="$bin" python3 "$root/scripts/corrupt.py" --rounds 100 --events 200000 --bin "$bin"

# 3. S3 through a fault-injecting proxy: 50 rounds, each checked by delta-rs from Python.
venv="${AUDITQ_VENV:-$HOME/.cache/auditq-venv}"
"$venv/bin/python" "$root/scripts/s3_faults.py" --bin "$bin" --rounds "${S3_ROUNDS:-50}"
