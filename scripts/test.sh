#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step functions are called indirectly, through run_step
# The whole test run of ringback: tools, SQS emulator, Rust checks and tests, template checks, Lambda build.
#
#   ./scripts/test.sh                  everything (what CI runs through .ci/run)
#   ./scripts/test.sh --tools-only     install the tools, start moto, probe SQS on it, stop
#   ./scripts/test.sh --template-only  install the tools, lint and check template.yaml
#
# Needs only what a fresh machine has: Rust stable (+ cargo-nextest, optional), Python >= 3.11, Node >= 20 with
# npm (the TypeScript client's pinned packages go to clients/typescript/node_modules), curl, unshare; and for the
# sam local step a Docker engine, or root to install Debian's docker.io and start a private one (tools/sam-local/engine.sh);
# for the console's browser tests Debian's chromium, or root to install it (tests/console/run.sh).
# Everything else is installed into .venv/ from requirements-dev.txt (pinned), once per change of that file.
# Caches stay inside the clone (.venv/, target/). Safe to run again: every step starts from what is there.
#
# Environment:
#   CI=true                        CI mode: no colours, nothing may be skipped
#   RINGBACK_SKIP_LAMBDA_BUILD=1   (local only) skip the template checks, the release Lambda build and sam local
#   RINGBACK_PYTHON=/path/python   the Python used to create .venv (default: python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=full
case "${1:-}" in
  "") ;;
  --tools-only) MODE=tools ;;
  --template-only) MODE=template ;;
  -h | --help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "test.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

IN_CI=false
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then IN_CI=true; fi
if $IN_CI; then
  export CARGO_TERM_COLOR=never NO_COLOR=1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOG_DIR="$CARGO_TARGET_DIR/test-logs"
mkdir -p "$LOG_DIR"

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/requirements-dev.txt"
LAMBDA_BINS=(webhook call-status call-initiator enrichment cleanup)

# ---------------------------------------------------------------------------------------------------
# Bookkeeping: every step is timed and recorded; the summary at the end lists them all.
# ---------------------------------------------------------------------------------------------------
now() { # seconds with a fraction; EPOCHREALTIME follows the locale's decimal separator
  local t=${EPOCHREALTIME:-$(date +%s.%N)}
  printf '%s' "${t/,/.}"
}
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
T_START=$(now)
STEP_NAMES=()
STEP_RESULTS=()
FAILED=0
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0
TESTS_COUNTED=false

record() { # name result
  STEP_NAMES+=("$1")
  STEP_RESULTS+=("$2")
}

# run_step NAME CMD...: runs CMD, times it, records ok/FAILED and goes on (the summary tells what failed).
run_step() {
  local name=$1 t0 rc=0
  shift
  echo
  echo "==> $name"
  t0=$(now)
  "$@" || rc=$?
  if ((rc == 0)); then
    record "$name" "ok      $(elapsed "$t0")"
    echo "<== $name: ok ($(elapsed "$t0"))"
  else
    record "$name" "FAILED  $(elapsed "$t0") (exit $rc)"
    echo "<== $name: FAILED with exit code $rc ($(elapsed "$t0"))"
    FAILED=$((FAILED + 1))
  fi
}

skip_step() { # name reason
  record "$1" "skipped ($2)"
  echo
  echo "==> $1: skipped ($2)"
}

die() {
  echo "test.sh: error: $*" >&2
  exit 1
}

summary() {
  echo
  echo "==================================== summary ===================================="
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-52s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
  done
  echo "  total: $(elapsed "$T_START")   logs: ${LOG_DIR#"$ROOT"/}/"
  if ((FAILED > 0)); then
    echo "  RESULT: $FAILED step(s) failed"
  else
    echo "  RESULT: all steps passed"
  fi
  if $TESTS_COUNTED; then
    # The plain closing line CI reads (Rust tests + doc tests + template checks + the checks' self-test).
    echo "tests: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
  fi
}

# ---------------------------------------------------------------------------------------------------
# 1. Tools in .venv/, from the pinned requirements file. Skipped when the stamp matches.
# ---------------------------------------------------------------------------------------------------
pick_python() {
  local candidate
  for candidate in "${RINGBACK_PYTHON:-}" python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install_tools() {
  [[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
  local python stamp want t0
  python=$(pick_python) || die "Python >= 3.11 is needed to install the test tools (set RINGBACK_PYTHON)"
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
  stamp="$VENV/.requirements.stamp"
  if [[ -x "$VENV/bin/python" ]] && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]] &&
    "$VENV/bin/python" -c 'pass' 2>/dev/null; then
    echo "    tools already installed (requirements-dev.txt unchanged): skipping pip"
    return 0
  fi
  echo "==> installing test tools into .venv/ (moto, cfn-lint, aws-sam-cli, cargo-lambda; ~45 s on a fresh machine)"
  t0=$(now)
  if ! [[ -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'pass' 2>/dev/null; then
    rm -rf "$VENV"
    "$python" -m venv "$VENV" || die "could not create $VENV with $python"
  fi
  rm -f "$stamp"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS" \
    >"$LOG_DIR/pip-install.log" 2>&1; then
    tail -n 40 "$LOG_DIR/pip-install.log" >&2
    die "pip install -r requirements-dev.txt failed (full log: $LOG_DIR/pip-install.log)"
  fi
  echo "$want" >"$stamp"
  echo "    installed in $(elapsed "$t0")"
}

show_versions() {
  echo "    python        $("$VENV/bin/python" --version 2>&1)"
  echo "    moto          $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
  echo "    cfn-lint      $("$VENV/bin/cfn-lint" --version 2>&1)"
  echo "    sam           $("$VENV/bin/sam" --version 2>&1)"
  echo "    cargo-lambda  $("$VENV/bin/cargo-lambda" lambda --version 2>&1 | head -n1)"
  if command -v cargo >/dev/null 2>&1; then
    echo "    cargo         $(cargo --version)"
    echo "    nextest       $(cargo nextest --version 2>/dev/null | head -n1 || echo 'not installed (cargo test is used)')"
  fi
}

# ---------------------------------------------------------------------------------------------------
# 2. moto_server on a free loopback port, stopped on exit; tests get its URL and fake credentials.
# ---------------------------------------------------------------------------------------------------
MOTO_PID=""
stop_moto() {
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  MOTO_PID=""
}
trap 'stop_moto' EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

isolate_from_aws() {
  # Tests must never reach a real AWS account: no profile, no ambient credentials, no instance metadata,
  # no endpoint overrides from the caller's shell (AWS_ENDPOINT_URL would also switch ringback-local to
  # SDK mode). The SQS tests get moto's URL explicitly; the DynamoDB tests embed their own emulator.
  unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN \
    AWS_ROLE_SESSION_NAME AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
    AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_ENDPOINT_URL \
    AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SQS
  export AWS_CONFIG_FILE="$LOG_DIR/aws-config-none" AWS_SHARED_CREDENTIALS_FILE="$LOG_DIR/aws-credentials-none"
  : >"$AWS_CONFIG_FILE"
  : >"$AWS_SHARED_CREDENTIALS_FILE"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
}

start_moto() {
  local port t0 i
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  t0=$(now)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  for ((i = 0; i < 300; i++)); do # 300 x 0.1 s = 30 s
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
      export RINGBACK_TEST_SQS_ENDPOINT="http://127.0.0.1:$port"
      echo "    moto_server (pid $MOTO_PID) answers on $RINGBACK_TEST_SQS_ENDPOINT after $(elapsed "$t0")"
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      cat "$LOG_DIR/moto.log" >&2
      MOTO_PID=""
      die "moto_server exited before it answered (log above)"
    fi
    sleep 0.1
  done
  cat "$LOG_DIR/moto.log" >&2
  die "moto_server did not answer on 127.0.0.1:$port within 30 s (log above)"
}

probe_sqs() {
  # A real SQS round trip on moto (JSON protocol, as the Rust SDK speaks it): create, send, receive, delete.
  "$VENV/bin/python" - "$RINGBACK_TEST_SQS_ENDPOINT" <<'PY'
import sys, time, boto3
t0 = time.monotonic()
sqs = boto3.client("sqs", endpoint_url=sys.argv[1])
url = sqs.create_queue(QueueName=f"probe-{int(time.time() * 1000)}")["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody='{"callId":"probe","attempt":1,"kind":"enrich"}')
msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
assert len(msgs) == 1 and "probe" in msgs[0]["Body"], msgs
sqs.delete_queue(QueueUrl=url)
print(f"    SQS round trip on moto: ok ({time.monotonic() - t0:.2f}s)")
PY
}

# ---------------------------------------------------------------------------------------------------
# 3. Rust: format, lints, tests (nextest when installed), doc tests.
# ---------------------------------------------------------------------------------------------------
count_tests() { # log-file kind
  local line p f s n
  if [[ "$2" == nextest ]]; then
    # "Summary [   1.234s] 57 tests run: 56 passed, 1 failed, 3 skipped"
    line=$(grep -E 'Summary \[.*\] [0-9]+ tests? run:' "$1" | tail -n1 || true)
    [[ -n "$line" ]] || return 0
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    f=0
    for n in $(grep -oE '[0-9]+ (failed|timed out)' <<<"$line" | grep -oE '^[0-9]+' || true); do f=$((f + n)); done
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  else
    # cargo test: one "test result: ok. 3 passed; 0 failed; 1 ignored; ..." line per test binary
    p=0 f=0 s=0
    while read -r line; do
      p=$((p + $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
      f=$((f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
      s=$((s + $(grep -oE '[0-9]+ ignored' <<<"$line" | grep -oE '[0-9]+' || echo 0)))
    done < <(grep -E '^test result: ' "$1" || true)
  fi
  TESTS_PASSED=$((TESTS_PASSED + ${p:-0}))
  TESTS_FAILED=$((TESTS_FAILED + ${f:-0}))
  TESTS_SKIPPED=$((TESTS_SKIPPED + ${s:-0}))
  TESTS_COUNTED=true
}

run_logged() { # log-file cmd...: show the output and keep a copy for counting
  local log=$1 rc
  shift
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

rust_tests() {
  local rc=0
  if cargo nextest --version >/dev/null 2>&1; then
    run_logged "$LOG_DIR/nextest.log" cargo nextest run --workspace --no-fail-fast || rc=$?
    count_tests "$LOG_DIR/nextest.log" nextest
  else
    echo "    cargo-nextest is not installed: falling back to cargo test"
    run_logged "$LOG_DIR/cargo-test.log" cargo test --workspace --all-targets --no-fail-fast || rc=$? # doc tests: next step
    count_tests "$LOG_DIR/cargo-test.log" cargo
  fi
  return "$rc"
}

doc_tests() {
  local rc=0
  run_logged "$LOG_DIR/doctest.log" cargo test --workspace --doc || rc=$?
  count_tests "$LOG_DIR/doctest.log" cargo
  return "$rc"
}

# ---------------------------------------------------------------------------------------------------
# 4. Template: both linters, then the assertions they do not make (and proof that those can fail).
# ---------------------------------------------------------------------------------------------------
export SAM_CLI_TELEMETRY=0

template_checks() {
  local rc=0 log=$LOG_DIR/check-template.log
  run_logged "$log" "$VENV/bin/python" tests/template/check_template.py || rc=$?
  count_plain "$log" 'template checks'
  return "$rc"
}

template_self_test() {
  local rc=0 log=$LOG_DIR/check-template-self-test.log
  run_logged "$log" "$VENV/bin/python" tests/template/check_template.py --self-test || rc=$?
  count_plain "$log" 'self-test'
  return "$rc"
}

count_plain() { # log prefix: reads "<prefix>: N passed, M failed"
  local line
  line=$(grep -E "^$2: [0-9]+ passed, [0-9]+ failed" "$1" | tail -n1 || true)
  [[ -n "$line" ]] || return 0
  TESTS_PASSED=$((TESTS_PASSED + $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')))
  TESTS_FAILED=$((TESTS_FAILED + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
  TESTS_COUNTED=true
}

# Schemathesis against ringback-local from openapi.json, inside a loopback-only network namespace.
contract_tests() {
  run_logged "$LOG_DIR/contract.log" tests/contract/run.sh
}

# The operator console in Debian's Chromium (Playwright, axe-core), in a loopback-only namespace.
console_tests() {
  local rc=0 log=$LOG_DIR/console.log line n
  run_logged "$log" tests/console/run.sh || rc=$?
  # pytest -q's last line: "12 passed, 1 failed, 2 errors in 40.1s" (any of them may be missing)
  line=$(grep -E '^[0-9]+ (passed|failed|errors?)\b' "$log" | tail -n1 || true)
  if [[ -n "$line" ]]; then
    for n in $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '^[0-9]+' || true); do TESTS_PASSED=$((TESTS_PASSED + n)); done
    for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | grep -oE '^[0-9]+' || true); do TESTS_FAILED=$((TESTS_FAILED + n)); done
    TESTS_COUNTED=true
  fi
  return "$rc"
}

readme_flows() {
  "$VENV/bin/python" tests/readme/run_flows.py --self-test && "$VENV/bin/python" tests/readme/run_flows.py
}

# Nothing tracked may name a path outside the clone; the checker's own self-test proves it can fail.
self_contained() {
  "$VENV/bin/python" tests/repo/check_self_contained.py --self-test &&
    "$VENV/bin/python" tests/repo/check_self_contained.py
}

template_steps() {
  run_step "cfn-lint template.yaml" "$VENV/bin/cfn-lint" template.yaml
  run_step "sam validate --lint" "$VENV/bin/sam" validate --lint --region us-east-1
  run_step "template assertions (tests/template)" template_checks
  run_step "template assertions self-test (mutants fail)" template_self_test
}

# ---------------------------------------------------------------------------------------------------
# 5. The five Lambdas as `sam build` makes them from template.yaml (cargo lambda build --release per
#    function), zipped as `sam deploy` would upload them, with their sizes; then those very artifacts
#    under `sam local` (tools/sam-local/), end to end; then the arm64 build (the template's default)
#    started and invoked under the Runtime Interface Emulator through qemu.
# ---------------------------------------------------------------------------------------------------
declare -A FUNCTION_OF=([webhook]=WebhookFunction [call-status]=CallStatusFunction
  [call-initiator]=CallInitiatorFunction [enrichment]=EnrichmentFunction [cleanup]=CleanupFunction)

# Issue 10's budget per zipped function: a regression (a second crypto stack, a heavy feature)
# fails CI rather than being noticed at deploy.
LAMBDA_ZIP_LIMIT=3000000

HOST_ARCH=$([[ $(uname -m) == aarch64 ]] && echo arm64 || echo x86_64)

# lambda_build ARCH BUILD_DIR ZIP_DIR: `sam build` for one instruction set (the template's
# Architecture parameter), then every function zipped as `sam deploy` uploads it, sizes checked.
lambda_build() {
  local arch=$1 build_dir=$2 zip_dir=$3 bin built zip bytes over=0
  sam build --parameter-overrides "Architecture=$arch" --build-dir "$build_dir" || return $?
  for bin in "${LAMBDA_BINS[@]}"; do
    built="$build_dir/${FUNCTION_OF[$bin]}/bootstrap"
    zip="$zip_dir/$bin/bootstrap.zip"
    if [[ ! -x "$built" ]]; then
      echo "    missing $built" >&2
      return 1
    fi
    mkdir -p "$(dirname "$zip")"
    "$VENV/bin/python" - "$built" "$zip" <<'PY' || return $?
import sys, zipfile
src, dst = sys.argv[1:]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o755 << 16  # Lambda runs bootstrap: it must stay executable
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, open(src, "rb").read())
PY
    bytes=$(stat -c %s "$zip")
    printf '    %-7s %-16s %-50s %6.2f MB\n' "$arch" "$bin" "${zip#"$ROOT"/}" "$(awk -v b="$bytes" 'BEGIN { print b / 1000000 }')"
    if ((bytes > LAMBDA_ZIP_LIMIT)); then
      echo "    $bin ($arch): the zip is over the 3 MB budget (see README, 'Package size')" >&2
      over=1
    fi
  done
  return $over
}

# The machine's own instruction set: what the sam local step runs in its containers.
lambda_build_host() {
  lambda_build "$HOST_ARCH" "$ROOT/.aws-sam/build" "$CARGO_TARGET_DIR/lambda"
}

# arm64, the template's default, cross-built by cargo-lambda with zig; then every function started
# under the Runtime Interface Emulator through qemu-user-static and invoked: they must answer.
lambda_arm64() {
  local build_dir="$ROOT/.aws-sam/build-arm64"
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "    rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu || return $?
  fi
  # qemu runs the binaries; they need arm64's loader and glibc, which libc6-arm64-cross provides.
  if ! command -v qemu-aarch64-static >/dev/null 2>&1 || [[ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]]; then
    [[ $(id -u) -eq 0 ]] || {
      echo "    missing: apt-get install qemu-user-static libc6-arm64-cross" >&2
      return 1
    }
    echo "    apt-get install qemu-user-static libc6-arm64-cross"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null || return $?
  fi
  if [[ $HOST_ARCH != arm64 ]]; then
    lambda_build arm64 "$build_dir" "$CARGO_TARGET_DIR/lambda-arm64" || return $?
  else
    build_dir="$ROOT/.aws-sam/build"
  fi
  "$VENV/bin/python" tools/bench/cold_start.py --build-dir "$build_dir" --qemu --check --starts 1 --warm 3 \
    --logs "$LOG_DIR/cold-start-arm64"
}

# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------
# Everything runs from main(), called on the last line: bash has then parsed the whole file, so editing
# or pulling this script while a run is going does not break that run.
main() {
  echo "ringback test run ($MODE mode$($IN_CI && echo ', CI'), $(nproc 2>/dev/null || echo '?') cores) in $ROOT"
  command -v curl >/dev/null 2>&1 || die "curl is needed to wait for moto_server"

  T0=$(now)
  install_tools
  record "install test tools (.venv)" "ok      $(elapsed "$T0")"
  export PATH="$VENV/bin:$PATH" # sam build / cargo lambda find cargo-lambda and zig (ziglang) here
  show_versions

  isolate_from_aws
  if [[ "$MODE" != template ]]; then
    echo
    echo "==> starting moto_server (SQS emulator)"
    T0=$(now)
    start_moto
    record "start moto_server" "ok      $(elapsed "$T0")"
    run_step "SQS round trip on moto" probe_sqs
    run_step "local tables and queues (scripts/local-aws.py)" \
      "$VENV/bin/python" scripts/local-aws.py --endpoint "$RINGBACK_TEST_SQS_ENDPOINT"
  fi

  if [[ "$MODE" == tools ]]; then
    stop_moto
    echo "    moto_server stopped"
    summary
    exit $((FAILED > 0))
  fi

  if [[ "$MODE" == full ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH"
    local fmt_color=()
    if $IN_CI; then fmt_color=(--color never); fi # rustfmt colours its diff even into a file otherwise
    run_step "the repository stands alone (tests/repo)" self_contained
    run_step "openapi.json is valid OpenAPI 3.1 (openapi-spec-validator)" "$VENV/bin/openapi-spec-validator" openapi.json
    run_step "cargo fmt --check" cargo fmt --all -- --check "${fmt_color[@]}"
    run_step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
    run_step "tests (cargo nextest / cargo test)" rust_tests
    run_step "doc tests" doc_tests
    run_step "contract tests: Schemathesis against ringback-local (tests/contract)" contract_tests
    run_step "TypeScript client: types, compile, example against ringback-local" clients/typescript/test.sh
    run_step "the README's flows, as written (tests/readme)" readme_flows
    run_step "console in a browser: Playwright, Chromium, axe-core (tests/console)" console_tests
    stop_moto
  fi

  local SKIP_BUILD=false
  if [[ "$MODE" == full && "${RINGBACK_SKIP_LAMBDA_BUILD:-}" == 1 ]]; then
    if $IN_CI; then
      echo "    RINGBACK_SKIP_LAMBDA_BUILD is ignored under CI: the template and the Lambda build are always checked"
    else
      SKIP_BUILD=true
    fi
  fi

  if $SKIP_BUILD; then
    skip_step "template lint and assertions" "RINGBACK_SKIP_LAMBDA_BUILD=1"
    skip_step "sam build (release) and zips" "RINGBACK_SKIP_LAMBDA_BUILD=1"
    skip_step "sam local end to end (tools/sam-local)" "RINGBACK_SKIP_LAMBDA_BUILD=1"
    skip_step "arm64: sam build, zips, start under qemu" "RINGBACK_SKIP_LAMBDA_BUILD=1"
  else
    template_steps
    if [[ "$MODE" == full ]]; then
      run_step "sam build (release) and zips" lambda_build_host
      run_step "sam local end to end (tools/sam-local)" \
        "$VENV/bin/python" tools/sam-local/stack.py test --no-build
      run_step "arm64: sam build, zips, start under qemu" lambda_arm64
    fi
  fi

  summary
  exit $((FAILED > 0))
}

main "$@"
