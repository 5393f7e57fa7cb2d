#!/usr/bin/env bash
# The whole API under `sam local`, from what `sam build` makes of template.yaml, offline, until Ctrl-C:
#
#   ./scripts/sam-local.sh              sam build, then serve on http://127.0.0.1:3000
#   ./scripts/sam-local.sh --no-build   serve the last build
#
# DynamoDB and SQS come from moto on 127.0.0.1:5000 (tables and queues made from template.yaml), Vapi is
# the simulator on 127.0.0.1:3001, the enrichment and cleanup functions run under `sam local start-lambda`
# driven by tools/sam-local/poller.py as the SQS event source mapping and the schedule would drive them.
# Needs a Docker engine (yours, or a private one without a bridge network that tools/sam-local/engine.sh
# starts as root). The tools come from requirements-dev.txt into .venv/, as for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test.sh --tools-only >/dev/null || { echo "sam-local: installing the tools failed: run ./scripts/test.sh --tools-only" >&2; exit 1; }
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true
exec .venv/bin/python tools/sam-local/stack.py up "$@"
