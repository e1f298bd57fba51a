#!/usr/bin/env bash
# Issue 29's figures on a large archive (a copy of it: the runs import into it):
#   - sealing it from scratch: time and peak memory;
#   - sealing after a commit of 10,000 events (median of RUNS);
#   - `archive prove` of one id (median of 10 ids);
#   - `archive verify --verifier-key` against reading every live file's `id` and `raw`
#     once (DuckDB, in the same run: median of 3), and `archive verify` without a key;
#   - evidence bytes against the archive's.
#
#   benches/evidence.sh ARCHIVE [RUNS]     # e.g. bench-data/ev10m (10M events), 5 runs
#
# Make the archive with: auditq generate --events 10000000 --days 180 --seed 10 |
#   auditq --archive bench-data/ev10m import --quiet -
set -euo pipefail
src=$1
runs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AUDITQ_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/auditq}
py=${AUDITQ_VENV:-$HOME/.cache/auditq-venv}/bin/python
work=$(mktemp -d -p "$(dirname "$src")")
trap 'rm -rf "$work"' EXIT
export AUDITQ_CONFIG="$work/no-config.toml"
unset AUDITQ_ARCHIVE AUDITQ_SIGNING_KEY
a="$work/archive"
cp -r "$src" "$a"
rm -rf "$a/evidence"
verifier=$("$bin" key generate --name bench/evidence --out "$work/k" 2>/dev/null)
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
secs() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }

events=$("$bin" --archive "$a" archive stats --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["events"])')
echo "archive: $events events, $(du -sb "$a" | cut -f1) bytes"
read -r t m < <(secs "$bin" --archive "$a" archive seal --key "$work/k")
echo "seal from scratch: ${t} s, peak ${m} KiB"

for i in $(seq 1 "$runs"); do
    "$bin" generate --events 10000 --days 2 --seed $((1000 + i)) >"$work/more.ndjson"
    "$bin" --archive "$a" import --quiet "$work/more.ndjson"
    secs "$bin" --archive "$a" archive seal --key "$work/k" | cut -d' ' -f1
done | median | sed 's/^/seal after a commit of 10,000 events (median): /; s/$/ s/'

"$py" - "$a/events" >"$work/ids" <<'PY'
import duckdb, sys
rows = duckdb.sql(f"SELECT id FROM read_parquet('{sys.argv[1]}/date=*/*.parquet') USING SAMPLE 10 ROWS").fetchall()
print("\n".join(r[0] for r in rows))
PY
while read -r id; do
    secs "$bin" --archive "$a" archive prove "$id" | cut -d' ' -f1
done <"$work/ids" | median | sed 's/^/prove one id (median of 10): /; s/$/ s/'

for _ in 1 2 3; do
    "$py" - "$a/events" <<'PY'
import duckdb, sys, time
t = time.time()
duckdb.sql(f"SELECT count(*), sum(length(id)), sum(length(raw)) FROM read_parquet('{sys.argv[1]}/date=*/*.parquet')").fetchall()
print(round(time.time() - t, 2))
PY
done | median | sed 's/^/DuckDB reading every id and raw once (median of 3): /; s/$/ s/'
for _ in 1 2 3; do
    secs "$bin" --archive "$a" archive verify --verifier-key "$verifier" | cut -d' ' -f1
done | median | sed 's/^/archive verify --verifier-key (median of 3): /; s/$/ s/'
secs "$bin" --archive "$a" archive verify | sed 's/ / s, peak /; s/^/archive verify without a key: /; s/$/ KiB/'
read -r t m < <(secs "$bin" --archive "$a" archive verify --verifier-key "$verifier")
echo "archive verify --verifier-key peak memory: ${m} KiB"
ev=$(du -sb "$a/evidence" | cut -f1)
all=$(du -sb "$a" | cut -f1)
echo "evidence: $ev bytes of $all ($(awk "BEGIN {printf \"%.2f\", 100 * $ev / $all}") %)"
