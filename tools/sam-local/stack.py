"""ringback as `sam build` makes it, served by `sam local`, offline, on loopback.

    python tools/sam-local/stack.py up     # build, serve until Ctrl-C (scripts/sam-local.sh calls this)
    python tools/sam-local/stack.py test   # build, serve, run the end-to-end checks, stop everything

What runs (ports fixed by events/env.json, the variables every function gets):
  127.0.0.1:5000  moto_server: DynamoDB and SQS, tables (events table included) and queues made from
                  template.yaml (scripts/local-aws.py)
  127.0.0.1:3001  the Vapi simulator, placing calls and POSTing webhooks to start-api
  127.0.0.1:3000  sam local start-api: WebhookFunction, CallStatusFunction, CallInitiatorFunction
  127.0.0.1:3002  sam local start-lambda: EnrichmentFunction and CleanupFunction, invoked by poller.py
                  as the SQS event source mappings (enrichment queue, push queue) and the cleanup
                  schedule would
Lambda containers share the host's network namespace (sam_hostnet.py), so they reach the emulators on
127.0.0.1 and no Docker bridge is needed. Logs and the private Docker engine live in .ringback/sam-local/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = ROOT / ".ringback" / "sam-local"
LOGS = STATE / "logs"
VENV_BIN = Path(sys.executable).parent
# The template defaults to arm64 (Graviton); containers here run the machine's own instruction set.
HOST_ARCH = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
ENV_JSON = ROOT / "events" / "env.json"
PORTS = {"api": 3000, "simulator": 3001, "lambda": 3002, "aws": 5000}


def say(msg: str) -> None:
    print(f"sam-local: {msg}", flush=True)


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 60) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(what: str, probe, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Seconds until `probe()` is true; fails if `proc` exits first or time runs out."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"sam-local: {what} exited with {proc.returncode} (see {LOGS})")
        try:
            if probe():
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"sam-local: {what} not ready after {timeout:.0f} s (see {LOGS})")


class Stack:
    """Everything `up` starts, stopped in reverse order however the run ends."""

    def __init__(self, time_scale: float, cleanup_every: float) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.time_scale = time_scale
        self.cleanup_every = cleanup_every
        self.env = dict(os.environ)
        self.env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # cargo-lambda, zig, sam
            "SAM_CLI_TELEMETRY": "0",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        })
        self.timings: dict[str, float] = {}
        self.private_engine = False
        self.local_flags: list[str] = []

    # -- processes -----------------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], **kw) -> subprocess.Popen:
        LOGS.mkdir(parents=True, exist_ok=True)
        out = open(LOGS / f"{name}.log", "wb")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                start_new_session=True, **kw)
        self.procs.append((name, proc))
        return proc

    def run(self, name: str, cmd: list[str]) -> float:
        LOGS.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(LOGS / f"{name}.log", "wb") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT).returncode
        if rc != 0:
            sys.stdout.write((LOGS / f"{name}.log").read_text(errors="replace")[-4000:])
            raise SystemExit(f"sam-local: {name} failed with exit code {rc}")
        return time.monotonic() - t0

    def sam(self, *args: str) -> list[str]:
        return [sys.executable, str(HERE / "sam_hostnet.py"), *args]

    # -- start ---------------------------------------------------------------------------------
    def engine(self) -> None:
        """A Docker engine: the machine's, or a private one (installed from Debian the first time)."""
        t0 = time.monotonic()
        engine = subprocess.run([str(HERE / "engine.sh"), "start", str(STATE)], env=self.env,
                                capture_output=True, text=True)
        sys.stdout.write(engine.stderr)
        if engine.returncode != 0:
            raise SystemExit("sam-local: no Docker engine (see above)")
        docker_host = engine.stdout.strip()
        if docker_host:
            self.env["DOCKER_HOST"] = docker_host
        self.private_engine = docker_host == f"unix://{STATE}/docker.sock"
        self.timings["engine"] = time.monotonic() - t0

    def start(self, build: bool) -> None:
        t0 = time.monotonic()
        busy = [f"{name} {port}" for name, port in PORTS.items() if not free(port)]
        if busy:
            raise SystemExit(f"sam-local: ports in use on 127.0.0.1: {', '.join(busy)} (events/env.json fixes them)")

        if "engine" not in self.timings:
            self.engine()

        if build:
            say("sam build (cargo lambda build --release for the five functions) ...")
            self.timings["sam build"] = self.run("sam-build", ["sam", "build", "--parameter-overrides",
                                                               f"Architecture={HOST_ARCH}"])
        if not (ROOT / ".aws-sam" / "build" / "template.yaml").exists():
            raise SystemExit("sam-local: no .aws-sam/build: run without --no-build once")
        # With the whole workspace selected, features unify as in the test build, which already built it.
        self.timings["simulator build"] = self.run(
            "simulator-build", ["cargo", "build", "--quiet", "--workspace", "--bin", "vapi-simulator"])

        t1 = time.monotonic()
        aws = f"http://127.0.0.1:{PORTS['aws']}"
        moto = self.spawn("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(PORTS["aws"])])
        wait_for("moto_server", lambda: http("GET", aws + "/", timeout=2)[0] == 200, 30, moto)
        self.run("tables", [sys.executable, str(ROOT / "scripts" / "local-aws.py"), "--endpoint", aws])

        vapi_key = self.function_env("EnrichmentFunction")["VAPI_API_KEY"]
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        sim = self.spawn("simulator", [str(target / "debug" / "vapi-simulator"), "--port", str(PORTS["simulator"]),
                                       "--api-key", vapi_key, "--time-scale", str(self.time_scale)])
        wait_for("the Vapi simulator", lambda: not free(PORTS["simulator"]), 30, sim)

        # The variables in env.json apply only where the template declares them; AWS_ENDPOINT_URL and
        # CALLBACK_SIGNING_SECRET are declared under conditions, so the parameters that switch them on
        # are given as well (pushes on: the functions start as a deployment with Callbacks=on does).
        self.local_flags = ["--skip-pull-image", "--docker-network", "host", "--env-vars", str(ENV_JSON),
                            "--parameter-overrides",
                            f"AwsEndpointUrl={aws} Architecture={HOST_ARCH} Callbacks=on"]
        common = [*self.local_flags, "--host", "127.0.0.1"]
        api = self.spawn("start-api", self.sam("local", "start-api", "--port", str(PORTS["api"]),
                                               "--warm-containers", "EAGER", *common))
        lam = self.spawn("start-lambda", self.sam("local", "start-lambda", "--port", str(PORTS["lambda"]),
                                                  "--warm-containers", "LAZY", *common))
        base = f"http://127.0.0.1:{PORTS['api']}"
        wait_for("start-api", lambda: not free(PORTS["api"]), 180, api)
        wait_for("start-lambda", lambda: not free(PORTS["lambda"]), 180, lam)
        self.spawn("poller", [sys.executable, str(HERE / "poller.py"),
                              "--queue-url", self.function_env("EnrichmentFunction")["ENRICHMENT_QUEUE_URL"],
                              "--queue-url", self.function_env("EnrichmentFunction")["PUSH_QUEUE_URL"],
                              "--sqs-endpoint", aws,
                              "--lambda-endpoint", f"http://127.0.0.1:{PORTS['lambda']}",
                              "--cleanup-every", str(self.cleanup_every)])
        self.timings["services up"] = time.monotonic() - t1
        t2 = time.monotonic()
        wait_for("GET /health", lambda: http("GET", base + "/health", timeout=60)[0] == 200, 120, api)
        self.timings["first request"] = time.monotonic() - t2
        self.timings["set-up"] = time.monotonic() - t0
        say(f"ready: API {base}  (Vapi simulator http://127.0.0.1:{PORTS['simulator']}, "
            f"moto {aws}, start-lambda http://127.0.0.1:{PORTS['lambda']}; logs in {LOGS.relative_to(ROOT)})")

    @staticmethod
    def function_env(function: str) -> dict[str, str]:
        return json.loads(ENV_JSON.read_text())[function]

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT if name.startswith("start-") else signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop: killed")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        if "DOCKER_HOST" in self.env:
            left = subprocess.run(["docker", "ps", "-aq"], env=self.env, capture_output=True, text=True).stdout.split()
            if left:
                say(f"removing {len(left)} container(s) SAM left behind")
                subprocess.run(["docker", "rm", "-f", *left], env=self.env, capture_output=True)
        if self.private_engine:
            subprocess.run([str(HERE / "engine.sh"), "stop", str(STATE)], env=self.env)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["up", "test"])
    ap.add_argument("--no-build", action="store_true", help="serve the last .aws-sam/build as it is")
    ap.add_argument("--time-scale", type=float, default=None,
                    help="the simulator's call phase durations x this (up: 1.0, test: 0.1)")
    ap.add_argument("--cleanup-every", type=float, default=None,
                    help="seconds between scheduled cleanups (up: 60, test: 0 = never; the test invokes it)")
    args = ap.parse_args()
    testing = args.mode == "test"
    stack = Stack(time_scale=args.time_scale or (0.1 if testing else 1.0),
                  cleanup_every=args.cleanup_every if args.cleanup_every is not None else (0 if testing else 60))
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything as Ctrl-C does
    egress = None
    if testing:
        from e2e import Egress, run_checks  # beside this file

    try:
        if testing:
            # Counting starts once the engine is up: installing it the first time is Debian's traffic.
            stack.engine()
            egress = Egress()
        stack.start(build=not args.no_build)
        if testing:
            return run_checks(stack, egress)
        say("Ctrl-C stops everything")
        while all(p.poll() is None for _, p in stack.procs):
            time.sleep(0.5)
        dead = [n for n, p in stack.procs if p.poll() is not None]
        say(f"{', '.join(dead)} stopped: stopping the rest (see {LOGS})")
        return 1
    except KeyboardInterrupt:
        return 130 if testing else 0  # an interrupted test has not passed
    finally:
        stack.stop()
        if egress is not None:
            egress.remove()


if __name__ == "__main__":
    sys.exit(main())
