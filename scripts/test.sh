#!/usr/bin/env bash
# The test command: installs CalHub with its dev tools, starts real PostgreSQL and Apache Kafka
# (scripts/dev-services.sh), then runs lint, type checks and every test, integration tests included.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k outbox`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CALHUB_SKIP_INSTALL:-}" ]; then
  python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
scripts/os-deps.sh
scripts/dev-services.sh up
eval "$(scripts/dev-services.sh env)"

if [ "$#" -eq 0 ]; then
  echo "== ruff"
  python3 -m ruff check .
  echo "== mypy"
  python3 -m mypy shared calhub
  echo "== tests (parallel part)"
  # Tests that stop the broker run alone afterwards, so they cannot disturb the others.
  python3 -m pytest -q -n 2 -m "not broker_outage" -p no:cacheprovider
  echo "== tests (broker outage)"
  python3 -m pytest -q -m broker_outage -p no:cacheprovider
else
  python3 -m pytest -p no:cacheprovider "$@"
fi
