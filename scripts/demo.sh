#!/usr/bin/env bash
# Quick start: install CalHub and run it embedded (one process, SQLite, in-process bus) with demo data.
# API and docs on http://127.0.0.1:8080/docs, SFTP on port 2222, data in ./data. Extra arguments go to
# `calhub run`, e.g. `scripts/demo.sh --port 9000`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
exec calhub run --demo "$@"
