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

# Client libraries for the real-client tests (redis-py, ioredis) and the
# frameworks for the real-framework tests (RQ, django-redis, Celery/kombu, BullMQ). Each
# package is checked on its own, so a machine that has some of them gets the rest.
pip_install() {
  # Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
  python3 -m pip install -q "$@" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "$@"
}
need_py() { # need_py REQUIREMENTS_FILE MODULE...
  local req=$1; shift
  for mod in "$@"; do
    if ! python3 -c "import $mod" >/dev/null 2>&1; then
      echo "installing $req (python module $mod missing)"
      pip_install -r "$req"
      return
    fi
  done
}
need_npm() { # need_npm DIR PACKAGE...
  local dir=$1; shift
  for pkg in "$@"; do
    if [ ! -d "$dir/node_modules/$pkg" ]; then
      (cd "$dir" && npm install --silent --no-audit --no-fund)
      return
    fi
  done
}
if [ -d tests/clients ]; then
  need_py tests/clients/requirements.txt redis
  need_npm tests/clients ioredis
fi
if [ -d tests/frameworks ]; then
  need_py tests/frameworks/requirements.txt redis rq django django_redis celery kombu
  need_npm tests/frameworks bullmq ioredis
fi

cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2

# Redis's own test suite against a redsnap started here: every test of the units
# issue 12 names must pass, apart from those scripts/redis_suite.skip lists with
# their reasons (scripts/redis_suite.sh).
scripts/redis_suite.sh
