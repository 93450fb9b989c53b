#!/usr/bin/env bash
# The README's first command: set up .venv and run stream-rec's main job on the embedded default
# (a local Kafka broker on 127.0.0.1 that this starts by itself). Extra arguments go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh train
exec .venv/bin/stream-rec demo "$@"
