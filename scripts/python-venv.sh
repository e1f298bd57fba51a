#!/usr/bin/env bash
# Make the virtualenv with the Python deltalake package (independent archive reader) and
# DuckDB (benchmark peer). Prints the line to export for the tests.
set -euo pipefail
venv="${1:-$HOME/.cache/auditq-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check deltalake pyarrow duckdb cryptography xxhash
echo "export AUDITQ_PYTHON=$venv/bin/python"
