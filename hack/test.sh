#!/usr/bin/env bash
# `npm test`: everything the test suite needs, then both vitest projects (unit + integration).
#   1. system packages (hack/setup-deps.sh: prometheus, python3-pulp, coinor-cbc, openssl; apt only if missing)
#   2. the control-plane binaries (hack/test-bins.sh: cached by version; a cold build takes 25-45 min
#      on 2 cores, a warm machine runs no Go build)
#   3. npx vitest run "$@" — its exit code is this script's exit code
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test] %s\n' "$*" >&2; }

bash hack/setup-deps.sh

t0=$(date +%s)
if bin=$(bash hack/test-bins.sh --print 2>/dev/null); then
  log "test binaries cached: $bin"
else
  log "building the test control-plane binaries from Go modules (cold build: 25-45 min on 2 cores)..."
  set +e
  bin=$(bash hack/test-bins.sh)
  rc=$?
  set -e
  if [ $rc -ne 0 ] || [ -z "$bin" ]; then
    log "could not build the test binaries (hack/test-bins.sh exit $rc); see the messages above"
    exit $rc
  fi
  log "cold build of the test binaries took $(( $(date +%s) - t0 ))s -> $bin"
fi

export MELANGE_TEST_BIN_DIR="$bin" KUBEBUILDER_ASSETS="$bin"
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}"

set +e
npx vitest run "$@"
rc=$?
set -e
exit $rc
