#!/usr/bin/env bash
# The sync SIGKILL test with 200 kills instead of CI's 20: `auditq sync` against the fake
# API is killed at 200 random moments, re-run each time, and the archive must end equal
# to the server's events (none lost, none duplicated). About 3–5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
AUDITQ_SYNC_KILLS="${1:-200}" cargo test --release --locked --test it -- --exact \
  sync::sync_survives_sigkill_at_random_moments --nocapture
