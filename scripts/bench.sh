#!/usr/bin/env bash
# Load benchmark of ringback-local over HTTP (tools/bench/http_bench.py), as users drive it.
#
#   ./scripts/bench.sh                      every scenario, 10 s runs, median of 3
#   ./scripts/bench.sh --runs 1 --duration 5 --scenario get-10
#   ./scripts/bench.sh --cold-start         the Lambda cold-start benchmark instead (tools/bench/cold_start.py)
#
# Installs wrk and strace from Debian's packages when missing (as root), builds ringback-local in
# release, then runs the benchmark; every other argument goes to it (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in wrk strace; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench.sh: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--cold-start" ]]; then
  shift
  [[ -x .venv/bin/moto_server ]] || ./scripts/test.sh --tools-only
  exec python3 tools/bench/cold_start.py "$@"
fi
cargo build --release -q -p ringback-local
exec python3 tools/bench/http_bench.py "$@"
