#!/usr/bin/env bash
# Browser tests of the operator console (console/, served by ringback-local at /console/): Playwright
# from .venv (PyPI, pinned in requirements-dev.txt) drives Debian's Chromium (installed here when
# missing; no browser download), axe-core from npm (pinned by package-lock.json) checks each page.
# Runner and browser live in a network namespace with only loopback (unshare -n).
#
#   tests/console/run.sh [pytest args]      screenshots: target/console-screenshots/
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$TARGET_DIR/test-logs"

if [[ -z "${RINGBACK_IN_NETNS:-}" ]]; then
  if ! command -v chromium >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || {
      echo "console tests: Debian's chromium is needed (apt-get install chromium)" >&2
      exit 1
    }
    echo "    apt-get install chromium (Debian's; Playwright downloads no browser)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  fi
  stamp=tests/console/node_modules/.package-lock.json.installed
  if ! cmp -s tests/console/package-lock.json "$stamp" 2>/dev/null; then
    echo "    npm ci (axe-core, pinned)"
    npm ci --prefix tests/console --no-audit --no-fund --loglevel=error
    cp tests/console/package-lock.json "$stamp"
  fi
  cargo build -q -p ringback-local
  if [[ $(id -u) -eq 0 ]]; then NS=(unshare -n); else NS=(unshare -rn); fi
  exec "${NS[@]}" env RINGBACK_IN_NETNS=1 "$0" "$@"
fi

ip link set lo up 2>/dev/null || true
exec "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/console "$@"
