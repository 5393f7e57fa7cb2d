#!/usr/bin/env bash
# Load benchmark of ringback-local over HTTP (tools/bench/http_bench.py), as users drive it.
#
#   ./scripts/bench.sh                      every scenario, 10 s runs, median of 3
#   ./scripts/bench.sh --runs 1 --duration 5 --scenario get-10
#   ./scripts/bench.sh --profile            the same, then a flame graph of each scenario (tools/bench/profiles/)
#   ./scripts/bench.sh --cold-start         the Lambda cold-start benchmark instead (tools/bench/cold_start.py)
#
# Installs wrk and strace (and perf for --profile) from Debian's packages when missing (as root),
# builds ringback-local in release, then runs the benchmark; every other argument goes to it (--help
# lists them). --profile measures a build with symbols and line tables (target/profiling/, otherwise
# the release profile) and installs inferno, pinned, into target/tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=false
if [[ "${1:-}" == "--profile" ]]; then
  PROFILE=true
  shift
fi

missing=()
for tool in wrk strace; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if $PROFILE && ! command -v perf >/dev/null 2>&1; then missing+=(linux-perf); fi
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
if $PROFILE; then
  [[ -x target/tools/bin/inferno-flamegraph ]] ||
    cargo install -q --locked inferno@0.12.8 --no-default-features --features cli --root target/tools
  CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release -q -p ringback-local --target-dir target/profiling
  exec python3 tools/bench/http_bench.py --binary target/profiling/release/ringback-local \
    --profile tools/bench/profiles "$@"
fi
cargo build --release -q -p ringback-local
exec python3 tools/bench/http_bench.py "$@"
