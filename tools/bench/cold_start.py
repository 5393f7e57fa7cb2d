#!/usr/bin/env python3
"""Cold start and first request of the five Lambda functions, measured as Lambda runs them.

Each function's `bootstrap` (as `sam build` makes it) runs under the Lambda Runtime Interface Emulator that
ships with the SAM CLI (no Docker), with the environment template.yaml gives it (events/env.json). DynamoDB
and SQS are moto_server behind a TLS-terminating proxy on loopback, one listener per service as AWS has one
host per service, so the functions' rustls handshakes are real and counted. The AWS SDK trusts the proxy's CA
through SSL_CERT_FILE (aws-smithy-http-client loads its roots with rustls-native-certs; the bundle is the
system's plus that CA, so loading it costs what it costs on Lambda). Vapi (the project's simulator) is
reached over plain http by default: a Vapi client built with reqwest's `rustls-tls` trusts only the
compiled-in webpki-roots and refuses the proxy. `--vapi-tls` puts Vapi behind the proxy too: binaries whose
reqwest uses `rustls-tls-native-roots` (which reads SSL_CERT_FILE) then make real Vapi handshakes; the others'
refusals are counted and printed.

Per function, started fresh --starts times (medians): init = the RIE's INIT REPORT (runtime start to its
first /next: main() up to run()); first = the first invocation's round trip minus init (the RIE initialises
on the first invoke, as Lambda does on demand), cold = init + first; warm = p50/p99 round trip of --warm
invocations after the first, in the last start; RSS = VmHWM of the bootstrap (the RIE's child) after them;
TLS = handshakes whose connection carried a request, during init + first / during the warm ones (--json: per
service, and the spare connections hyper sometimes opens while a request waits for a pooled one).
Every invocation gets fresh ids (a new call per webhook, Idempotency-Key per call request, SQS message ids)
so the first and the warm ones take the same path; call-status reads a call the webhook made and enrichment
enriches those calls, hence the order in FUNCTIONS. Warm latencies are mostly moto's (10-20 ms a DynamoDB
call): read first - warm as the cold penalty rather than their ratio.

How to run (loopback only; needs .venv from scripts/test.sh, and `sam build` for the binaries):
    python3 tools/bench/cold_start.py                        # all five, from .aws-sam/build
    python3 tools/bench/cold_start.py --function webhook --starts 3 --warm 50
    python3 tools/bench/cold_start.py --build-dir DIR        # DIR/<Name>Function/bootstrap or DIR/<bin>/bootstrap
    python3 tools/bench/cold_start.py --qemu                 # arm64 binaries through qemu-aarch64-static
    python3 tools/bench/cold_start.py --json out.json        # also the figures as JSON ("-": stdout)
Logs (the RIE's with the function's own lines, moto's, the simulator's) stay in --logs. The figures are this
machine's: at 256 MB Lambda gives a function a fraction of a vCPU, so init and the first TLS set-up take longer.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
CALL_ID = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34"  # in the events, as scripts/make-events.py writes them
IDEMPOTENCY_KEY = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
MESSAGE_IDS = ("4b8d3e0a-6c1f-4f52-9a7e-2d5b8c1e0f34", "9e2f7a1b-3d4c-4e5f-8a6b-7c8d9e0f1a2b")
FUNCTIONS = [  # (name = cargo binary, logical id in template.yaml, event), in the order they run
    ("cleanup", "CleanupFunction", "cleanup-schedule.json"),
    ("webhook", "WebhookFunction", "webhook-end-of-call-report.json"),
    ("call-status", "CallStatusFunction", "call-status.json"),
    ("enrichment", "EnrichmentFunction", "enrichment-sqs.json"),
    ("call-initiator", "CallInitiatorFunction", "call-initiator.json"),
]
# What each function answers when it worked (the outcome column); --check fails on anything else.
SUCCESS = {"cleanup": "ok", "webhook": "200", "call-status": "200", "enrichment": "0 retried",
           "call-initiator": "202"}
SERVICES = ("dynamodb", "sqs", "aws")  # "aws" is AWS_ENDPOINT_URL: any other service (expected: none)
TOOL_ENV = {"AWS_EC2_METADATA_DISABLED": "true", "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cold_start: {what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # polling a port until it answers
    raise SystemExit(f"cold_start: {what} not listening on {port} after {timeout:.0f} s")


def spawn(cmd: list, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # the RIE SIGKILLs its runtime
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1/localhost signed by it (rustls refuses a CA certificate as the
    server's own, which a bare `openssl req -x509` makes); the bundle for SSL_CERT_FILE."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ringback cold-start CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=127.0.0.1")
    (tmp / "ext.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                 "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days",
            "2", "-extfile", "ext.cnf", "-out", "server.pem")
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    (tmp / "bundle.pem").write_text((system.read_text() if system.exists() else "") + (tmp / "ca.pem").read_text())
    return tmp / "server.pem", tmp / "server.key", tmp / "bundle.pem"


def with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]] + [h for h in lines[1:] if h.partition(b":")[0].strip().lower() != name.lower()]
    return b"\r\n".join(kept + [name + b": " + value]) + b"\r\n\r\n"


class TlsProxy:
    """HTTPS listeners on loopback in front of plain-http servers, counting handshakes per listener. It speaks
    HTTP/1.1 so that the client's connection stays open as AWS keeps it, although moto closes after each answer."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def listen(self, name: str, upstream: int) -> int:
        async def start() -> int:
            server = await asyncio.start_server(lambda r, w: self.serve(name, upstream, r, w), "127.0.0.1", 0)
            return server.sockets[0].getsockname()[1]
        return self._on_loop(start())

    def snapshot(self) -> dict[str, dict[str, int]]:
        async def snap() -> dict:  # on the proxy's loop: what it counted before an answer went out is in
            return {name: dict(c) for name, c in self.counts.items()}
        return self._on_loop(snap())

    async def serve(self, name: str, upstream: int, reader, writer) -> None:
        counts = self.counts[name]
        try:
            await writer.start_tls(self.ctx)
        except (ssl.SSLError, OSError):
            counts["refused"] += 1
            writer.close()
            return
        counts["handshakes"] += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
                body = await reader.readexactly(int(length.group(1)) if length else 0)
                counts["requests"] += 1
                counts["used"] += served == 0
                served += 1
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
                up_writer.write(with_header(head, b"Connection", b"close") + body)
                answer = await up_reader.read()  # the upstream closes after its answer
                up_writer.close()
                rhead, _, rbody = answer.partition(b"\r\n\r\n")  # moto and the simulator send Content-Length
                writer.write(with_header(rhead, b"Connection", b"keep-alive") + rbody)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    diffs = {svc: {k: v - before.get(svc, {}).get(k, 0) for k, v in c.items()} for svc, c in after.items()}
    return {svc: {k: v for k, v in d.items() if v} for svc, d in diffs.items() if any(d.values())}


def used(tls: dict) -> int:
    return sum(c.get("used", 0) for c in tls.values())


def elf_machine(path: Path) -> str:
    with open(path, "rb") as f:
        return {62: "x86_64", 183: "aarch64"}.get(int.from_bytes(f.read(20)[18:20], "little"), "unknown")


def child_of(pid: int) -> int | None:
    children = [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()]
    return children[0] if children else None


def memory_mib(pid: int | None) -> dict[str, float]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines() if pid else []
    except OSError:
        lines = []
    return {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in lines)
            if k in ("VmHWM", "VmRSS")}


def outcome(answer: bytes) -> str:
    """What an invocation came to: the function's error, the HTTP status, or the SQS batch's retried items."""
    try:
        data = json.loads(answer)
    except ValueError:
        return "not json"
    data = data if isinstance(data, dict) else {}
    return (f"error {data['errorType']}" if "errorType" in data else str(data["statusCode"]) if "statusCode" in data
            else f"{len(data['batchItemFailures'])} retried" if "batchItemFailures" in data else "ok")


class Events:
    """The committed events with fresh ids for every invocation (see the module docstring)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.to_enrich = iter(self.calls)  # sees what the webhook appends

    def make(self, name: str, event: str) -> bytes:
        if name == "webhook":
            self.calls.append(str(uuid.uuid4()))
            event = event.replace(CALL_ID, self.calls[-1])
        elif name == "call-status":
            event = event.replace(CALL_ID, self.calls[0] if self.calls else CALL_ID)
        elif name == "enrichment":
            event = event.replace(CALL_ID, next(self.to_enrich, None) or str(uuid.uuid4()))
            for message_id in MESSAGE_IDS:
                event = event.replace(message_id, str(uuid.uuid4()))
        elif name == "call-initiator":
            event = event.replace(IDEMPOTENCY_KEY, str(uuid.uuid4()))
        return event.encode()


def one_start(rie_cmd: list, name: str, env: dict, proxy: TlsProxy, events: Events, event: str, log: Path,
              warm: int) -> dict:
    port = free_port()
    rie = spawn([rie_cmd[0], "--log-level", "info", "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                 "--runtime-api-address", f"127.0.0.1:{free_port()}", *rie_cmd[1:]], log, env)
    try:
        wait_port(port, rie, f"the RIE for {name}")
        log_start = log.stat().st_size
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def invoke() -> tuple[float, str]:
            payload = events.make(name, event)
            t0 = time.perf_counter()
            conn.request("POST", "/2015-03-31/functions/function/invocations", body=payload,
                         headers={"content-type": "application/json"})
            answer = conn.getresponse().read()
            return (time.perf_counter() - t0) * 1000, outcome(answer)

        before = proxy.snapshot()
        cold_ms, first_outcome = invoke()
        after_first = proxy.snapshot()
        pid = child_of(rie.pid)
        text = log.read_text(errors="replace")[log_start:]
        init = re.search(r"INIT REPORT\(durationMs: ([\d.]+)\)", text)  # REPORT's "Init Duration" is ~0.2 here
        handler = re.search(r"INVOKE RTDONE\(.*?duration: ([\d.]+)ms\)", text)
        run = {"init_ms": float(init.group(1)) if init else None, "cold_ms": cold_ms,
               "first_ms": cold_ms - float(init.group(1)) if init else None,
               "first_handler_ms": float(handler.group(1)) if handler else None, "first_outcome": first_outcome,
               "tls_first": delta(before, after_first), "memory_after_first": memory_mib(pid)}
        if warm:
            timed = [invoke() for _ in range(warm)]
            run.update(warm_ms=[ms for ms, _ in timed], warm_outcomes=dict(collections.Counter(o for _, o in timed)),
                       tls_warm=delta(after_first, proxy.snapshot()), memory_after_warm=memory_mib(pid))
        conn.close()
        return run
    finally:
        stop(rie)


def summarise(name: str, runs: list[dict]) -> dict:
    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None
    last = runs[-1]
    warm = last.get("warm_ms", [])
    outcomes = collections.Counter(r["first_outcome"] for r in runs) + collections.Counter(last.get("warm_outcomes"))
    return {"function": name, "init_ms": median("init_ms"), "first_ms": median("first_ms"),
            "cold_ms": median("cold_ms"), "warm_p50_ms": statistics.median(warm) if warm else None,
            "warm_p99_ms": statistics.quantiles(warm, n=100)[98] if len(warm) > 1 else None,
            "rss_mib": last.get("memory_after_warm", last["memory_after_first"]).get("VmHWM"),
            "tls_first": statistics.median(used(r["tls_first"]) for r in runs),
            "tls_warm": used(last.get("tls_warm", {})),
            "outcomes": dict(outcomes), "runs": runs}


def table(rows: list[dict]) -> str:
    def f(v) -> str:
        return "-" if v is None else f"{v:.1f}"
    lines = [("function", "init ms", "first ms", "cold ms", "warm p50", "warm p99", "RSS MiB", "TLS first/warm",
              "outcomes")]
    lines += [(r["function"], f(r["init_ms"]), f(r["first_ms"]), f(r["cold_ms"]), f(r["warm_p50_ms"]),
               f(r["warm_p99_ms"]), f(r["rss_mib"]), f"{r['tls_first']:g}/{r['tls_warm']}",
               ", ".join(f"{k}: {v}" for k, v in r["outcomes"].items())) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) if i in (0, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in lines)


def function_envs(aws: dict[str, str], vapi: str, dead_webhook: str) -> dict[str, dict[str, str]]:
    """events/env.json (what template.yaml declares per function) pointed at the proxies and the simulator.
    The per-service endpoints keep DynamoDB and SQS on separate connections, as separate AWS hosts do."""
    envs = json.loads((ROOT / "events" / "env.json").read_text())
    for env in envs.values():
        env.update({k: v.replace("http://127.0.0.1:5000", aws["sqs"]) for k, v in env.items()})  # queue URLs
        env.update(AWS_ENDPOINT_URL=aws["aws"], AWS_ENDPOINT_URL_DYNAMODB=aws["dynamodb"],
                   AWS_ENDPOINT_URL_SQS=aws["sqs"])
        env.update({k: v for k, v in (("VAPI_BASE_URL", vapi), ("VAPI_WEBHOOK_URL", dead_webhook)) if k in env})
    return envs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    ap.add_argument("--function", action="append", choices=[f[0] for f in FUNCTIONS], help="repeatable; default all")
    ap.add_argument("--starts", type=int, default=5, help="fresh starts per function (medians of init/first)")
    ap.add_argument("--warm", type=int, default=200, help="warm invocations after the last start's first")
    ap.add_argument("--qemu", action="store_true", help="run arm64 binaries through qemu-aarch64-static")
    ap.add_argument("--vapi-tls", action="store_true", help="Vapi behind the TLS proxy too")
    ap.add_argument("--json", help="also write the figures as JSON to this file ('-': stdout)")
    ap.add_argument("--logs", type=Path, default=ROOT / ".ringback" / "cold-start")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every invocation of every function succeeded (CI's arm64 check)")
    args = ap.parse_args()
    host = platform.machine()
    rapid = next((VENV / "lib").glob("python3*/site-packages/samcli/local/rapid"), None)
    rie = rapid / f"aws-lambda-rie-{'arm64' if host == 'aarch64' else 'x86_64'}" if rapid else None
    if rie is None or not rie.exists():
        raise SystemExit("cold_start: no RIE in .venv (scripts/test.sh installs the SAM CLI there)")
    selected = [f for f in FUNCTIONS if not args.function or f[0] in args.function]
    commands = {}
    build = args.build_dir = args.build_dir.resolve()  # the RIE runs from ROOT
    for name, logical, _ in selected:
        path = next((p for p in (build / logical / "bootstrap", build / name / "bootstrap") if p.is_file()), None)
        if path is None:
            raise SystemExit(f"cold_start: no bootstrap for {name} in {build} (run `sam build`)")
        commands[name] = [rie, path]
        if elf_machine(path) != host:
            if not (args.qemu and elf_machine(path) == "aarch64"):
                raise SystemExit(f"cold_start: {path} is {elf_machine(path)}, this is {host} (--qemu runs arm64)")
            qemu = shutil.which("qemu-aarch64-static") or sys.exit("cold_start: --qemu needs qemu-aarch64-static")
            # An arm64 binary needs arm64's loader and libc: Debian's libc6-arm64-cross puts them here.
            sysroot = Path("/usr/aarch64-linux-gnu")
            prefix = ["-L", str(sysroot)] if (sysroot / "lib" / "ld-linux-aarch64.so.1").exists() else []
            commands[name] = [rie, qemu, *prefix, path]  # figures and RSS are qemu's: a check, not a benchmark
    simulator = ROOT / "target" / "debug" / "vapi-simulator"
    if not simulator.exists():
        subprocess.run(["nice", "-n", "19", "cargo", "build", "-q", "-p", "vapi-simulator", "-j", "1"], cwd=ROOT,
                       check=True)

    args.logs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="cold-start-"))
    tool_env = {**os.environ, **TOOL_ENV}
    procs: list[subprocess.Popen] = []
    dead = socket.socket()  # bound, never listening: the simulator's webhooks are refused and go nowhere else
    try:
        dead.bind(("127.0.0.1", 0))
        cert, key, bundle = make_certs(tmp)
        proxy = TlsProxy(cert, key)
        moto_port, sim_port = free_port(), free_port()
        procs.append(spawn([VENV / "bin" / "moto_server", "-H", "127.0.0.1", "-p", moto_port], args.logs / "moto.log",
                           tool_env))
        procs.append(spawn([simulator, "--port", sim_port, "--time-scale", "0.05"], args.logs / "simulator.log",
                           {**tool_env, "RUST_LOG": "error"}))
        wait_port(moto_port, procs[0], "moto_server")
        wait_port(sim_port, procs[1], "the Vapi simulator")
        aws = {svc: f"https://127.0.0.1:{proxy.listen(svc, moto_port)}" for svc in SERVICES}
        vapi = (f"https://localhost:{proxy.listen('vapi', sim_port)}" if args.vapi_tls
                else f"http://127.0.0.1:{sim_port}")
        envs = function_envs(aws, vapi, f"http://127.0.0.1:{dead.getsockname()[1]}/api/v1/vapi/webhook")
        (tmp / "env.json").write_text(json.dumps(envs))
        subprocess.run([VENV / "bin" / "python", ROOT / "scripts" / "local-aws.py", "--endpoint",
                        f"http://127.0.0.1:{moto_port}", "--env", tmp / "env.json"], env=tool_env, check=True,
                       stdout=subprocess.DEVNULL)

        rows, events = [], Events()
        for name, logical, event_file in selected:
            env = {"PATH": "/usr/bin:/bin", **TOOL_ENV, **envs[logical], "AWS_SESSION_TOKEN": "test",
                   "AWS_LAMBDA_FUNCTION_NAME": logical, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                   "SSL_CERT_FILE": str(bundle)}
            del env["SAM_CLI_TELEMETRY"]
            log = args.logs / f"{name}.log"
            log.write_bytes(b"")
            event = (ROOT / "events" / event_file).read_text()
            runs = [one_start(commands[name], name, env, proxy, events, event, log,
                              args.warm if i == args.starts - 1 else 0) for i in range(args.starts)]
            rows.append(summarise(name, runs))
            print(f"cold_start: {name} done", file=sys.stderr, flush=True)
        out = sys.stderr if args.json == "-" else sys.stdout
        print(table(rows), file=out)
        refused = {svc: c["refused"] for svc, c in proxy.snapshot().items() if c.get("refused")}
        if refused:
            print(f"TLS handshakes the functions refused, per listener: {refused}", file=out)
        if args.json:
            doc = json.dumps({"load_average": os.getloadavg(), "starts": args.starts, "warm": args.warm,
                              "vapi": vapi, "build_dir": str(args.build_dir), "refused": refused, "functions": rows},
                             indent=2)
            sys.stdout.write(doc + "\n") if args.json == "-" else Path(args.json).write_text(doc + "\n")
        failed = {r["function"]: r["outcomes"] for r in rows
                  if set(r["outcomes"]) != {SUCCESS[r["function"]]}}
        if args.check and failed:
            print(f"cold_start: invocations that did not succeed: {failed} (logs in {args.logs})", file=sys.stderr)
            return 1
        return 0
    finally:
        for proc in reversed(procs):
            stop(proc)
        dead.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    sys.exit(main())
