#!/usr/bin/env bash
# Runs unit/acl, unit/acl-v2 and unit/auth of Redis 7.0.15's suite with the
# `external:skip` tag taken off the first `start_server` block of each (the block
# that needs no server of its own), through scripts/redis_suite.sh (skip list
# included). In the suite's plain external mode these units run no test at all;
# this way real redis-server 7.0.15 passes 72 tests of unit/acl, 29 of unit/acl-v2
# and 2 of unit/auth (`--tags -needs:repl`), and every one of them must pass here
# unless scripts/redis_suite.skip names it with its reason. The blocks that start
# servers with their own aclfile or `user` directives are covered by
# crates/server/tests/acl.rs.
#
# Usage: scripts/redis_suite_acl.sh   (environment as scripts/redis_suite.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${REDIS_SUITE:-../shared/redis-suite}
if [ ! -x "$SUITE/run.sh" ]; then
  echo "redis_suite_acl: no Redis test suite at $SUITE (set REDIS_SUITE); not run" >&2
  exit 0
fi
COPY=$(mktemp -d /tmp/redis-suite-acl.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp -r "$SUITE/redis-tests/." "$COPY/"
chmod -R u+w "$COPY"
for u in acl acl-v2 auth; do
  sed -i '1s/ external:skip"/"/' "$COPY/tests/unit/$u.tcl"
  grep -q 'external:skip' <(head -1 "$COPY/tests/unit/$u.tcl") && {
    echo "redis_suite_acl: unexpected first line in unit/$u" >&2
    exit 1
  }
done
REDIS_TESTS_DIR="$COPY" scripts/redis_suite.sh unit/acl unit/acl-v2 unit/auth
