#!/usr/bin/env bash
# Prepares a machine for stream-rec: checks Python, Java and Maven (installing Java and Maven,
# and Chromium for the `dev` extra's browser test, with apt-get when run as root on
# Debian/Ubuntu), then creates .venv in the repository root and installs stream-rec into it with
# the extras given as arguments, e.g. `deploy/setup.sh train dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${*:-train}"
extras="${extras// /,}"

say() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing $* with apt-get"
    if [ -z "${STREAM_REC_APT_UPDATED:-}" ]; then
      apt-get update -qq
      export STREAM_REC_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    say "please install: $* (needs root and apt-get to do it automatically)"
    exit 1
  fi
}

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "Python >= 3.11 is required (found: $("$python_bin" --version 2>&1 || echo none))"
  exit 1
fi

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  apt_install openjdk-17-jre-headless
fi
command -v mvn >/dev/null || apt_install maven
# The test extra brings the demo page's end-to-end test, which drives headless Chromium (it is
# skipped, saying why, where no chromium is installed).
if [[ ",$extras," == *,dev,* ]] && ! command -v chromium >/dev/null \
    && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_install chromium || say "could not install chromium: the browser test will be skipped"
  else
    say "no chromium found: the demo page's browser test will be skipped"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python_bin" -m venv .venv
fi
say "installing stream-rec[$extras] into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# The constraints pin every package to the versions the tests passed with, so that every machine
# runs the tested set (an existing .venv is brought back to it too). To move to a new Faust or
# Kafka client version: install it into .venv, run the integration tests, widen its range in
# pyproject.toml, regenerate deploy/constraints.txt (see "Moving to a new Faust or Kafka client
# version" in deploy/kafka/README.md).
.venv/bin/python -m pip install -q -c deploy/constraints.txt -e ".[$extras]"
