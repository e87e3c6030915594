#!/usr/bin/env bash
# Make sure the server programs the test suite starts are installed on this machine.
# The tests start their own private servers on free ports; this only installs the
# programs: redis-server (Debian package) and SecantusDB (a MongoDB wire-protocol
# server from PyPI, installed into the test environment by hatch).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it (apt-get install redis-server)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing redis-server needs root; run: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# lightflow-rest: the browser tests drive Debian's headless Chromium through chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium/chromedriver not found: installing them (apt-get install chromium chromium-driver)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing chromium needs root; run: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
