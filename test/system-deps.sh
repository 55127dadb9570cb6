#!/usr/bin/env bash
# What the test suites need from the machine beyond npm: a nats-server (the NATS tests start their
# own, with JetStream, on a free port), Chromium (the dashboard's browser tests, driven by
# playwright-core) and promtool (checks the monitoring component's alert rules; Debian ships it in
# the `prometheus` package). Installs the missing Debian packages when it can (root with apt-get), else says
# what to install. `npm test` and `npm run test:slow` run it first; so does .ci/run.
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for the tests: ${missing[*]}"
  apt-get update -qq
  # The prometheus package would start a Prometheus server (:9090) where an init system runs; the tests
  # need only its promtool. A policy-rc.d that refuses starts (exit 101) keeps any service from starting
  # during this install; one already in place is left as it is.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
else
  echo "the tests need these Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
