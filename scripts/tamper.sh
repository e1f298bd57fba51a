#!/usr/bin/env bash
# Tamper suite of issue 29: each kind of tampering done as a knowledgeable insider would
# (tests/python/tamper.py: the Python deltalake package, pyarrow, the Delta log edited by
# hand, xxh3 checksums recomputed, caches deleted), each of which `archive verify
# --verifier-key` must catch, naming what and where. The untampered archive must verify
# clean. `tests/it/evidence.rs` runs it on every change.
#
#   scripts/tamper.sh [EVENTS]        # default 3000 events
#
# Needs the test virtualenv (scripts/test makes it; AUDITQ_VENV names it) and a built
# binary (AUDITQ_BIN, default target/release/auditq).
set -euo pipefail
events=${1:-3000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AUDITQ_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/auditq}
py=${AUDITQ_VENV:-$HOME/.cache/auditq-venv}/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AUDITQ_CONFIG="$work/no-config.toml"
unset AUDITQ_ARCHIVE AUDITQ_SIGNING_KEY

verifier=$("$bin" key generate --name audit.example.com/tamper --out "$work/seal.key" 2>/dev/null)
other=$("$bin" key generate --name audit.example.com/tamper --out "$work/other.key" 2>/dev/null)
"$bin" generate --events "$events" --days 20 --seed 29 >"$work/all.ndjson"
base="$work/base"
third=$((events / 3))
head -n "$third" "$work/all.ndjson" >"$work/1.ndjson"
sed -n "$((third + 1)),$((2 * third))p" "$work/all.ndjson" >"$work/2.ndjson"
tail -n +"$((2 * third + 1))" "$work/all.ndjson" >"$work/3.ndjson"
# Three imports, three commits: no small-file merges between them (the rollback case
# removes the last import's commit).
for part in 1 2 3; do
    AUDITQ_SIGNING_KEY="$work/seal.key" "$bin" --archive "$base" --no-compact import --quiet "$work/$part.ndjson"
done
trusted="$(ls "$base/evidence/checkpoints" | tail -1)"
cp "$base/evidence/checkpoints/$trusted" "$work/trusted"
# The same tree signed by another key: a copy sealed with it.
cp -r "$base" "$work/foreign" && rm -rf "$work/foreign/evidence"
"$bin" --archive "$work/foreign" archive seal --key "$work/other.key" >/dev/null
foreign="$work/foreign/evidence/checkpoints/$trusted"

if ! "$bin" --archive "$base" archive verify --verifier-key "$verifier" --trusted "$work/trusted" >"$work/clean.out" 2>&1; then
    echo "FAIL: the untampered archive does not verify:" >&2
    cat "$work/clean.out" >&2
    exit 1
fi
echo "untampered: $(cat "$work/clean.out")"

id() { sed -n "${1}p" "$work/all.ndjson" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
first=$(id 7)
second=$(id $((events - 5)))
middle=$(id $((third + 11)))

failed=0
# kind | arguments | what the report must say
check() {
    local kind=$1 args=$2 want=$3 flags=${4:-}
    local a="$work/t-$kind"
    cp -r "$base" "$a"
    # shellcheck disable=SC2086
    did=$("$py" "$root/tests/python/tamper.py" "$kind" "$a" $args)
    set +e
    # shellcheck disable=SC2086
    "$bin" --archive "$a" archive verify --verifier-key "$verifier" $flags >"$work/out" 2>&1
    code=$?
    set -e
    if [ "$code" != 1 ] || ! grep -q -- "$want" "$work/out"; then
        echo "FAIL $kind ($did): exit $code, wanted \"$want\":" >&2
        sed 's/^/    /' "$work/out" >&2
        failed=$((failed + 1))
        return
    fi
    echo "caught $kind ($did): $(grep -m1 -- "$want" "$work/out")"
}

check update-derived "$first" "column \`action\` says otherwise than its raw JSON"
check delete-event "$middle" "(sealed by checkpoint \`evidence/checkpoints/[0-9]*\`) is in no live file"
check edit-raw "$second" "\`$second\` (leaf [0-9]*) is not the event sealed there"
check add-event "$first" "has no place in the log"
check duplicate-id "$first" "id \`$first\` is stored 2 times"
check copy-leaf "$first" "claims leaf [0-9]*, which .* holds: an event was added or copied"
check swap-leaves "$first $second" "is not the event sealed there"
check rewrite-file "$middle" "leaf [0-9]* (sealed by checkpoint \`evidence/checkpoints/[0-9]*\`) is in no live file"
check drop-file-from-log "$first" "leaf [0-9]* (sealed by checkpoint \`evidence/checkpoints/[0-9]*\`) is in no live file"
check edit-tile "$first" "evidence/tiles/00000000.p[0-9]*: the root of leaves"
check edit-checkpoint "$first" "checkpoints/[0-9]*: checkpoint does not verify with key"
check foreign-checkpoint "$foreign" "checkpoints/$trusted: checkpoint does not verify with key"
check rollback "$first" "the archive was rolled back" "--trusted $work/trusted"

if [ "$failed" != 0 ]; then
    echo "$failed kinds of tampering went unseen" >&2
    exit 1
fi
echo "all 13 kinds of tampering caught; the untampered archive verified clean"
