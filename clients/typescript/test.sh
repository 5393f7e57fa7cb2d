#!/usr/bin/env bash
# The TypeScript client, as scripts/test.sh runs it: its pinned packages (npm ci), its types still what
# openapi.json generates, a strict compile, and its example placing and following a simulated call
# against ringback-local (loopback only).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

npm ci --no-audit --no-fund --loglevel=error
npx --no-install openapi-typescript ../../openapi.json --output "$TARGET_DIR/schema.generated.ts" > /dev/null
if ! diff -q src/schema.ts "$TARGET_DIR/schema.generated.ts" > /dev/null; then
  echo "clients/typescript/src/schema.ts is not what openapi.json generates: run npm run generate there" >&2
  exit 1
fi
npm run --silent build

(cd "$ROOT" && cargo build -q -p ringback-local)
PORT=3950
TOKEN=client-api-token
SECRET="whsec_jnC31S+M/DGxOOBz48KRYUZrJlSbJ7T4Uw8JgtIt2iY="
mkdir -p "$TARGET_DIR/test-logs"
PORT=$PORT RINGBACK_IN_MEMORY=1 API_TOKEN=$TOKEN VAPI_WEBHOOK_SECRET=client-webhook-secret \
  CALLBACK_SIGNING_SECRET=$SECRET RUST_LOG=warn \
  "$TARGET_DIR/debug/ringback-local" > "$TARGET_DIR/test-logs/client-runner.log" 2>&1 &
RUNNER=$!
trap 'kill $RUNNER 2>/dev/null; wait $RUNNER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && break
  kill -0 $RUNNER 2>/dev/null || { tail -n 20 "$TARGET_DIR/test-logs/client-runner.log" >&2; exit 1; }
  sleep 0.1
done
cd "$HERE"
RINGBACK_URL=http://127.0.0.1:$PORT RINGBACK_TOKEN=$TOKEN RINGBACK_SIGNING_SECRET=$SECRET node dist/example.js
