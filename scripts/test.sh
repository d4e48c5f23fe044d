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
  # Every package: the platform, the CLI and each service (service packages live in services/<folder>/).
  MYPYPATH="$(printf '%s:' services/*/ | sed 's/:$//')" python3 -m mypy -p shared -p calhub \
    -p referrals -p authorizations -p claims -p eligibility -p sftp_gateway -p ops
  echo "== tests (parallel part)"
  # End-to-end tests start six service processes each, so they run on their own; tests that stop the broker
  # or restart PostgreSQL run alone at the end, so they cannot disturb the others.
  python3 -m pytest -q -n 2 -m "not broker_outage and not e2e" -p no:cacheprovider
  echo "== tests (end to end)"
  python3 -m pytest -q -m "e2e and not broker_outage" -p no:cacheprovider
  echo "== tests (broker and database outages)"
  python3 -m pytest -q -m broker_outage -p no:cacheprovider
else
  python3 -m pytest -p no:cacheprovider "$@"
fi
