#!/usr/bin/env bash
# Contract tests: Schemathesis drives ringback-local from openapi.json, every operation, with valid and
# invalid credentials, generated bodies, headers and query strings, and the document's links
# (POST /calls -> its pollUrl -> /events). It fails on any 5xx, any answer the document does not
# describe (status, headers, content type, body) and any request the server wrongly accepts or refuses.
#
#   tests/contract/run.sh             what CI runs (a few hundred examples per operation)
#   tests/contract/run.sh --long      a longer hunt: many more examples, ten minutes of fuzzing
#
# Both the runner and Schemathesis live in a network namespace of their own with only loopback
# (unshare -n): generated callback URLs and hosts can never reach another machine.
# Needs: .venv with the pinned Schemathesis (scripts/test.sh installs it), cargo, unshare.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

EXAMPLES=${CONTRACT_EXAMPLES:-300}
EXTRA=()
if [[ "${1:-}" == "--long" ]]; then
  EXAMPLES=3000
  EXTRA=(--max-time 600)
elif [[ -n "${1:-}" ]]; then
  echo "contract/run.sh: unknown argument '$1' (try --long)" >&2
  exit 2
fi

if [[ -z "${RINGBACK_IN_NETNS:-}" ]]; then
  cargo build -q -p ringback-local
  # Root gets a plain network namespace; anyone else one inside a user namespace.
  if [[ $(id -u) -eq 0 ]]; then NS=(unshare -n); else NS=(unshare -rn); fi
  exec "${NS[@]}" env RINGBACK_IN_NETNS=1 "$0" "$@"
fi

ip link set lo up 2>/dev/null || true
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOG_DIR=$TARGET_DIR/test-logs
mkdir -p "$LOG_DIR"
PORT=3900
TOKEN=contract-api-token
SECRET=contract-webhook-secret

PORT=$PORT RINGBACK_IN_MEMORY=1 API_TOKEN=$TOKEN VAPI_WEBHOOK_SECRET=$SECRET RUST_LOG=warn \
  CALLBACK_SIGNING_SECRET="whsec_jnC31S+M/DGxOOBz48KRYUZrJlSbJ7T4Uw8JgtIt2iY=" \
  "$TARGET_DIR/debug/ringback-local" > "$LOG_DIR/contract-runner.log" 2>&1 &
RUNNER=$!
trap 'kill $RUNNER 2>/dev/null; wait $RUNNER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/health" > /dev/null 2>&1; then break; fi
  if ! kill -0 $RUNNER 2>/dev/null; then
    echo "ringback-local did not start:" >&2
    tail -n 20 "$LOG_DIR/contract-runner.log" >&2
    exit 1
  fi
  sleep 0.1
done

# The webhook authenticates with X-Vapi-Secret, every other route with the bearer token: each
# request carries both, and the ignored_auth check sends them wrong or missing to see a 401.
NO_COLOR=1 "$ROOT/.venv/bin/schemathesis" --config-file tests/contract/schemathesis.toml run openapi.json \
  --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $TOKEN" \
  --header "X-Vapi-Secret: $SECRET" \
  --max-examples "$EXAMPLES" \
  --workers 2 \
  --request-timeout 10 \
  --seed 20261204 \
  --generation-database none \
  --report junit --report-dir "$LOG_DIR/contract" \
  "${EXTRA[@]}"
