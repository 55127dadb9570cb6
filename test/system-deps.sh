#!/usr/bin/env bash
# What the test suites need from the machine beyond npm: a nats-server (the NATS tests start their
# own, with JetStream, on a free port) and Chromium (the dashboard's browser tests, driven by
# playwright-core). Installs the missing Debian packages when it can (root with apt-get), else says
# what to install. `npm test` and `npm run test:slow` run it first; so does .ci/run.
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for the tests: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "the tests need these Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
