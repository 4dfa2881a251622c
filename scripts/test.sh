#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs every test.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v tclsh >/dev/null 2>&1 || need_apt+=(tcl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian's packages"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# A redis-server started by the Debian package would hold port 6379; tests use free ports anyway.

# Client libraries for the real-client tests (redis-py, ioredis).
if [ -d tests/clients ]; then
  if ! python3 -c 'import redis' >/dev/null 2>&1; then
    python3 -m pip install -q -r tests/clients/requirements.txt
  fi
  if [ -f tests/clients/package.json ] && [ ! -d tests/clients/node_modules/ioredis ]; then
    (cd tests/clients && npm install --silent --no-audit --no-fund)
  fi
fi

cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2

# Redis's own test suite against a redsnap started here: every test of the units
# issue 12 names must pass, apart from those scripts/redis_suite.skip lists with
# their reasons (scripts/redis_suite.sh).
scripts/redis_suite.sh
