#!/usr/bin/env bash
# The README's second command (and what CI runs): set up .venv with the test tools, then lint,
# type-check and run the test suite against a real local Kafka broker the tests start themselves.
# Exits non-zero when anything fails or when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh train dev ann
# Fetch the broker's jars up front so a network problem shows here, not inside a test.
.venv/bin/python -c 'from stream_rec.tools.broker import ensure_jars; from stream_rec.config import load_settings; ensure_jars(load_settings())'
.venv/bin/ruff check stream_rec training tests
.venv/bin/mypy
# The slowest tests are listed so a test that grows is seen in the CI log.
exec .venv/bin/python -m pytest --durations=15 "$@"
