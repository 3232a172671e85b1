#!/usr/bin/env bash
# Installs the system packages the test suite needs, only when something is missing (idempotent;
# a warm machine runs no apt at all):
#   prometheus    real Prometheus for the integration tests (/usr/bin/prometheus, started by the
#                 test harness itself on 127.0.0.1 — never as a system service)
#   python3-pulp  + coinor-cbc: independent reference solver for the solver parity test
#   openssl       throwaway PKI of the test control plane
set -euo pipefail

log() { printf '[setup-deps] %s\n' "$*" >&2; }

pkgs=(prometheus python3-pulp coinor-cbc openssl)
missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
# The package being "installed" is not enough if its binary was removed by hand.
[ -x /usr/bin/prometheus ] || { [[ " ${missing[*]:-} " == *" prometheus "* ]] || missing+=(prometheus); }

if [ ${#missing[@]} -eq 0 ]; then
  log "all present: ${pkgs[*]}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "missing system packages: ${missing[*]}"
  log "this script installs them with apt-get and must run as root; run as root:"
  log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "missing system packages: ${missing[*]}, and apt-get is not available to install them"
  exit 2
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# The prometheus package's maintainer scripts would start it as a system service. The tests start
# their own instance on a free loopback port, so forbid service starts during the install via the
# standard policy-rc.d hook (only if the machine has none of its own).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

# Belt and braces: if a service manager started Prometheus anyway, stop and disable it.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  else
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d prometheus disable >/dev/null 2>&1 || true; fi
    if [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi
  fi
fi

[ -x /usr/bin/prometheus ] || { log "prometheus installed but /usr/bin/prometheus is missing"; exit 1; }
log "done"
